/**
 * The `paramtrail` command as a user types it: bad experiment files are refused before anything starts,
 * with the field named and a non-zero exit; a good one runs on a real server and `--json` reports every
 * artifact, and `status --json` says the same; `run --dry-run` says beforehand which runs would train.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { stringify } from 'yaml';
import { sha256Hex } from '../../artifacts/hash.js';
import { findNativeBuild } from '../../ml/backends/native.js';
import { readFile } from 'node:fs/promises';
import { FASHION_MNIST_SOURCES, requireFashionMnist, tempDir } from '../support/fixtures.js';
import { runCli, spawnWorker, type Spawned } from '../support/processes.js';
import { startTestTemporal } from '../support/temporal.js';

const good = {
  name: 'cli-test',
  models: [{ name: 'mlp', args: { hidden: [16] } }],
  datasets: [{ name: 'fashion-mnist', subset: { train: 400, test: 100 }, sources: FASHION_MNIST_SOURCES }],
  training: { epochs: 2, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.1 } },
  execution: { heartbeatTimeout: '10s' },
};

async function writeExperiment(dir: string, value: unknown): Promise<string> {
  const file = join(dir, `${randomUUID()}.yaml`);
  await writeFile(file, stringify(value));
  return file;
}

describe('paramtrail run refuses bad experiment files before anything starts', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['unknown model', { ...good, models: [{ name: 'resnet-9000' }] }, /models\.0\.name: unknown model "resnet-9000"/],
    ['negative epochs', { ...good, training: { ...good.training, epochs: -3 } }, /training\.epochs/],
    ['missing dataset', { ...good, datasets: undefined }, /datasets/],
    ['unknown dataset', { ...good, datasets: [{ name: 'imagenet-22k' }] }, /datasets\.0\.name: unknown dataset "imagenet-22k"/],
    ['subset above the dataset', { ...good, datasets: [{ name: 'fashion-mnist', subset: { train: 100000 } }] }, /datasets\.0\.subset\.train: 100000 examples asked, but fashion-mnist has 60000/],
    ['unknown field', { ...good, trainng: {} }, /trainng/],
  ];
  for (const [what, value, message] of cases) {
    test(what, async () => {
      const dir = await tempDir();
      const stateDir = join(dir, 'state');
      // Nothing listens on port 9: if the CLI tried to reach Temporal it would fail differently.
      const env = { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:9', PARAMTRAIL_STATE_DIR: stateDir };
      const res = await runCli(['run', await writeExperiment(dir, value)], env);
      assert.equal(res.code, 3, `exit code; stderr:\n${res.stderr}`);
      assert.match(res.stderr, message);
      assert.equal(existsSync(stateDir), false, 'nothing was started or written');
    });
  }

  test('an empty file, or one of comments only, is said to be empty', async () => {
    const dir = await tempDir();
    for (const text of ['', '# a study, one day\n\n']) {
      const file = join(dir, `${randomUUID()}.yaml`);
      await writeFile(file, text);
      const res = await runCli(['run', file], { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:9' });
      assert.equal(res.code, 3);
      assert.equal(res.stderr.trim(), `${file}: invalid experiment: the file is empty; expected name, models, datasets and training`);
    }
  });

  test('a file that does not exist', async () => {
    const res = await runCli(['run', '/nonexistent/experiment.yaml'], { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:9' });
    assert.equal(res.code, 3);
    assert.match(res.stderr, /\/nonexistent\/experiment\.yaml: cannot read/);
  });

  test('a server that cannot be reached is exit 4, with the address tried and no stack trace', async () => {
    const dir = await tempDir();
    const env = { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:9', PARAMTRAIL_STATE_DIR: join(dir, 'state') };
    const file = await writeExperiment(dir, good);
    const results = await Promise.all([runCli(['run', file], env), runCli(['status', 'some-experiment'], env), runCli(['ls'], env)]);
    for (const res of results) {
      assert.equal(res.code, 4, `exit code; stderr:\n${res.stderr}`);
      assert.match(res.stderr, /^cannot reach the Temporal server at 127\.0\.0\.1:9 \(TEMPORAL_ADDRESS\): .+; check that it runs/);
      assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  test('an S3 store that cannot be reached is exit 4, naming the store and endpoint but never the keys', async () => {
    const secret = 'not-a-real-secret-0123456789';
    const env = {
      ...process.env,
      PARAMTRAIL_STORE: 's3://lineage-bucket/prefix',
      PARAMTRAIL_S3_ENDPOINT: 'http://someone:hunter2@127.0.0.1:9',
      AWS_ACCESS_KEY_ID: 'AKIANOTAREALKEY',
      AWS_SECRET_ACCESS_KEY: secret,
      AWS_REGION: 'us-east-1',
    };
    const res = await runCli(['lineage', 'tensors/ab/abcd.arrow'], env);
    assert.equal(res.code, 4, `exit code; stderr:\n${res.stderr}`);
    assert.match(res.stderr, /^cannot reach the store s3:\/\/lineage-bucket\/prefix at http:\/\/127\.0\.0\.1:9: /);
    for (const leak of [secret, 'hunter2', 'AKIANOTAREALKEY']) assert.doesNotMatch(res.stderr + res.stdout, new RegExp(leak));
    assert.doesNotMatch(res.stderr, /NodeVersionSupportWarning/, "the S3 client's notice about its future releases is not printed");
  });

  test('run --dry-run needs no Temporal server and writes nothing; --detach or --id with it is a usage error', async () => {
    const dir = await tempDir();
    const stateDir = join(dir, 'state');
    const env = { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:9', PARAMTRAIL_STATE_DIR: stateDir };
    const file = await writeExperiment(dir, good);
    const res = await runCli(['run', file, '--dry-run'], env);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^cli-test: 1 run, 1 to train, 0 to reuse\n/);
    assert.match(res.stdout, /\nmlp--fashion-mnist--s0 {2}train: fashion-mnist is not in the store yet\nnothing was started\n$/);
    assert.equal(existsSync(stateDir), false, 'nothing was started or written');
    for (const extra of [['--detach'], ['--id', 'mine']]) {
      const refused = await runCli(['run', file, '--dry-run', ...extra], env);
      assert.equal(refused.code, 2, extra.join(' '));
      assert.match(refused.stderr, /^run --dry-run starts nothing: --detach and --id do not apply/);
    }
    const invalid = await runCli(['run', await writeExperiment(dir, { ...good, training: { ...good.training, epochs: -3 } }), '--dry-run'], env);
    assert.equal(invalid.code, 3, invalid.stderr);
  });

  test('an unknown command is a usage error', async () => {
    const res = await runCli(['frobnicate'], process.env);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /unknown command "frobnicate"/);
  });
});

describe('paramtrail run --json and status --json on a real server', () => {
  let temporal: TestWorkflowEnvironment;
  let worker: Spawned;
  let env: NodeJS.ProcessEnv;
  let storeDir: string;

  before(async () => {
    requireFashionMnist();
    temporal = await startTestTemporal();
    const dir = await tempDir();
    storeDir = join(dir, 'store');
    env = {
      ...process.env,
      TEMPORAL_ADDRESS: temporal.address,
      PARAMTRAIL_TASK_QUEUE: `cli-${randomUUID().slice(0, 8)}`,
      PARAMTRAIL_STORE: `file://${storeDir}`,
      PARAMTRAIL_STATE_DIR: join(dir, 'state'),
    };
    worker = spawnWorker(env);
  });

  after(async () => {
    worker?.child.kill('SIGTERM');
    await worker?.exited;
    await temporal?.teardown();
  });

  test('reports experiment id, store, snapshots, distance table, figures and attempts', { timeout: 300_000 }, async () => {
    const file = await writeExperiment(await tempDir(), good);
    const res = await runCli(['run', file, '--json'], env);
    assert.equal(res.code, 0, `stderr:\n${res.stderr}\nworker:\n${worker.output()}`);
    const report = JSON.parse(res.stdout);
    assert.match(report.experimentId, /^cli-test-/);
    assert.equal(report.status, 'completed');
    assert.equal(report.store, `file://${storeDir}`);
    assert.equal(report.runs.length, 1);
    const run = report.runs[0];
    assert.equal(run.status, 'completed');
    assert.deepEqual(run.snapshots.map((s: { epoch: number }) => s.epoch), [0, 1, 2]);
    for (const s of run.snapshots) {
      assert.equal(sha256Hex(await readFile(join(storeDir, s.key))), s.sha256, `${s.key} on disk matches the report`);
    }
    assert.ok(existsSync(join(storeDir, run.distanceTable.key)));
    const svg = run.figures.find((f: { format: string }) => f.format === 'svg');
    assert.ok(svg && existsSync(svg.path), 'the figure path printed exists');
    assert.deepEqual(run.training.attempts.map((a: { startedFromEpoch: number }) => a.startedFromEpoch), [0]);
    assert.equal(run.trainingStatus, 'completed');
    // The worker picks the fastest backend it has: native TensorFlow where it was built (CI builds it).
    assert.match(run.backend, 'missing' in findNativeBuild() ? /^cpu$/ : /^tensorflow \d+\.\d+/);

    const status = await runCli(['status', report.experimentId, '--json'], env);
    assert.equal(status.code, 0, status.stderr);
    assert.deepEqual(JSON.parse(status.stdout), report);
    // A run's workflow id (as `ls` lists it) is not an experiment's: said so, with the experiment's.
    for (const command of ['status', 'verify', 'report']) {
      const wrong = await runCli([command, run.workflowId], env);
      assert.equal(wrong.code, 2, `${command}: ${wrong.stderr}`);
      assert.equal(wrong.stderr.trim(), `${run.workflowId} is a runWorkflow, not an experiment; its experiment is ${report.experimentId}`);
    }
    assert.ok(readdirSync(storeDir).includes('tensors'));
  });

  test('run --dry-run finds the trainings a rerun reuses, by the keys the runs recorded, and not once a snapshot is altered', { timeout: 300_000 }, async () => {
    // Two runs, the second starting from the first's final weights: its key depends on them.
    const chained = {
      ...good,
      name: 'cli-plan',
      models: [{ name: 'mlp', args: { hidden: [12] } }],
      training: { ...good.training, epochs: 1 },
      variants: [{ label: 'base' }, { label: 'again', training: { init: { from: { run: '{model}--base--{dataset}--s{seed}' } } } }],
    };
    const file = await writeExperiment(await tempDir(), chained);
    const plan = async () => {
      const res = await runCli(['run', file, '--dry-run', '--json'], env);
      assert.equal(res.code, 0, res.stderr);
      return JSON.parse(res.stdout) as { totals: { train: number; reuse: number }; runs: Array<{ run: string; action: string; reusedFrom?: string; configHash?: string; reason?: string }> };
    };
    assert.deepEqual((await plan()).totals, { runs: 2, train: 2, reuse: 0 });

    const res = await runCli(['run', file, '--json'], env);
    assert.equal(res.code, 0, `stderr:\n${res.stderr}\nworker:\n${worker.output()}`);
    const report = JSON.parse(res.stdout) as { runs: Array<{ name: string; runId: string; configHash: string; final: { key: string } }> };

    const rerun = await plan();
    assert.deepEqual(rerun.totals, { runs: 2, train: 0, reuse: 2 });
    assert.deepEqual(
      rerun.runs.map((r) => [r.run, r.action, r.reusedFrom, r.configHash]),
      report.runs.map((r) => [r.name, 'reuse', r.runId, r.configHash]),
    );

    const base = report.runs.find((r) => r.name === 'mlp--base--fashion-mnist--s0')!;
    const path = join(storeDir, base.final.key);
    const bytes = await readFile(path);
    bytes[bytes.length >> 1]! ^= 0xff;
    await writeFile(path, bytes);
    const altered = await plan();
    assert.deepEqual(altered.totals, { runs: 2, train: 2, reuse: 0 });
    assert.match(altered.runs[0]!.reason!, new RegExp(`^a finished training did not verify \\(${base.runId}: ${base.final.key}: .*sha256`));
    assert.equal(altered.runs[1]!.reason, 'starts from mlp--base--fashion-mnist--s0, which trains first');
  });
});
