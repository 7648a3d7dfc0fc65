/**
 * Two workers as separate processes, one per kind of work, on a real Temporal dev server and a real S3
 * server (versitygw), as they would run on two machines sharing a cluster and a bucket:
 *
 *   worker A: `paramtrail worker --task-queue workflows,train`  (orchestration, download, training)
 *   worker B: `paramtrail worker --task-queue analysis`         (distances, figures, the report)
 *
 * An experiment that needs both completes, and the lineage manifests in the bucket show each activity
 * ran where its queue is served: download and train in A's process, distance, plot and report in B's.
 *
 * `paramtrail ls` is tested on the same server: it finds runs by model, dataset, optimizer, status and
 * experiment, and refuses values that would break out of a query literal.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { stringify } from 'yaml';
import type { ArtifactManifest } from '../../artifacts/manifest.js';
import { workerCommand } from '../../cli/connect.js';
import type { LsRow } from '../../cli/ls.js';
import { PROJECT_ROOT } from '../../infra/tools.js';
import { runSearchAttributes } from '../../workflows/search.js';
import { FASHION_MNIST_SOURCES, requireFashionMnist, tempDir } from '../support/fixtures.js';
import { runCli, type Spawned } from '../support/processes.js';
import { startTestS3 } from '../support/s3.js';
import { startTestTemporal } from '../support/temporal.js';

const s3 = await startTestS3();

function spawnWorkerFor(queues: string, env: NodeJS.ProcessEnv): Spawned {
  const [cmd, ...args] = workerCommand(['--task-queue', queues]);
  const child = spawn(cmd!, args, { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function stopWorker(w: Spawned | undefined): Promise<void> {
  if (!w || w.child.exitCode !== null) return;
  w.child.kill('SIGTERM');
  await w.exited;
}

/** Every lineage manifest in the bucket. */
async function manifests(): Promise<ArtifactManifest[]> {
  const keys = await s3.store.list('manifests/');
  return Promise.all(keys.map(async (k) => JSON.parse(new TextDecoder().decode(await s3.store.get(k))) as ArtifactManifest));
}

/** Visibility is eventually consistent: asks until `ok` holds for the rows or ~10 s pass, then returns the last answer. */
async function lsUntil(args: string[], env: NodeJS.ProcessEnv, ok: (rows: LsRow[]) => boolean): Promise<LsRow[]> {
  let rows: LsRow[] = [];
  for (let i = 0; i < 20; i++) {
    const res = await runCli(['ls', ...args, '--json'], env);
    assert.equal(res.code, 0, `ls ${args.join(' ')}: ${res.stderr}`);
    rows = JSON.parse(res.stdout) as LsRow[];
    if (ok(rows)) return rows;
    await new Promise((r) => setTimeout(r, 500));
  }
  return rows;
}

describe('a train worker and an analysis worker in separate processes', () => {
  let temporal: TestWorkflowEnvironment;
  let env: NodeJS.ProcessEnv;
  let trainer: Spawned;
  let analyst: Spawned;
  let report: { experimentId: string; status: string; runs: Array<{ runId: string; name: string }> };

  before(async () => {
    requireFashionMnist();
    temporal = await startTestTemporal();
    const dir = await tempDir();
    env = {
      ...process.env,
      TEMPORAL_ADDRESS: temporal.address,
      PARAMTRAIL_TASK_QUEUE: `queues-${randomUUID().slice(0, 8)}`,
      PARAMTRAIL_STORE: `s3://${s3.server.bucket}`,
      PARAMTRAIL_S3_ENDPOINT: s3.server.endpoint,
      AWS_ACCESS_KEY_ID: s3.server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.server.secretAccessKey,
      AWS_REGION: 'us-east-1',
      PARAMTRAIL_STATE_DIR: join(dir, 'state'),
      // One training at a time: the machine is shared.
      PARAMTRAIL_TRAIN_SLOTS: '1',
    };
    trainer = spawnWorkerFor('workflows,train', env);
    analyst = spawnWorkerFor('analysis', env);
    const file = join(dir, 'queues.yaml');
    await writeFile(
      file,
      stringify({
        name: 'queues-test',
        models: [{ name: 'mlp', args: { hidden: [16] } }],
        datasets: [{ name: 'fashion-mnist', subset: { train: 300, test: 100 }, sources: FASHION_MNIST_SOURCES }],
        seeds: [0, 1],
        training: { epochs: 1, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.1 } },
        execution: { concurrency: 2, heartbeatTimeout: '10s' },
      }),
    );
    const res = await runCli(['run', file, '--json'], env);
    assert.equal(res.code, 0, `stderr:\n${res.stderr}\ntrain worker:\n${trainer.output()}\nanalysis worker:\n${analyst.output()}`);
    report = JSON.parse(res.stdout);
  });

  after(async () => {
    await stopWorker(trainer);
    await stopWorker(analyst);
    await temporal?.teardown();
  });

  test('the experiment completes with both workers alive', () => {
    assert.equal(report.status, 'completed');
    assert.equal(report.runs.length, 2);
    assert.equal(trainer.child.exitCode, null, 'the train worker is still running');
    assert.equal(analyst.child.exitCode, null, 'the analysis worker is still running');
    assert.match(trainer.output(), /workflows, train on /);
    assert.match(analyst.output(), /: analysis on /);
  });

  test('the train worker keeps the decoded dataset under the state folder, for the next worker on its machine', async () => {
    const kept = await readdir(join(env.PARAMTRAIL_STATE_DIR!, 'cache', 'decoded'));
    assert.equal(kept.filter((name) => name.endsWith('.decoded')).length, 1, kept.join(', '));
  });

  test('training ran only in the train worker, distances and figures only in the analysis worker', async () => {
    const host = hostname();
    const trainerId = `${trainer.child.pid}@${host}`;
    const analystId = `${analyst.child.pid}@${host}`;
    const mine = (await manifests()).filter((m) => m.producer.experimentId === report.experimentId);
    const byActivity = new Map<string, Set<string>>();
    for (const m of mine) {
      const workers = byActivity.get(m.producer.activity) ?? new Set<string>();
      workers.add(m.producer.worker);
      byActivity.set(m.producer.activity, workers);
    }
    const seen = Object.fromEntries([...byActivity].map(([a, w]) => [a, [...w]]));
    for (const activity of ['train', 'distance', 'plot']) {
      assert.ok(byActivity.has(activity), `a manifest produced by ${activity}; found ${JSON.stringify(seen)}`);
    }
    const trainQueue = new Set(['download', 'train']);
    for (const [activity, workers] of byActivity) {
      const expected = trainQueue.has(activity) ? trainerId : analystId;
      assert.deepEqual([...workers], [expected], `${activity} ran in ${expected}; found ${JSON.stringify(seen)}`);
    }
    // Both runs trained, each in the train worker.
    const trainedRuns = new Set(mine.filter((m) => m.producer.activity === 'train').map((m) => m.producer.runId));
    assert.deepEqual([...trainedRuns].sort(), report.runs.map((r) => r.runId).sort());
  });

  test('paramtrail ls finds the finished runs by model and status', async () => {
    const want = report.runs.map((r) => r.runId).sort();
    const args = ['--experiment', report.experimentId, '--model', 'mlp', '--status', 'completed'];
    const rows = await lsUntil(args, env, (r) => r.length >= want.length);
    assert.deepEqual(
      rows.map((r) => r.runId).sort(),
      want,
      'every run of the experiment carries its search attributes (runSearchAttributes at start, upsertRunStatus as it goes)',
    );
    for (const r of rows) assert.deepEqual([r.dataset, r.optimizer, r.state], ['fashion-mnist', 'sgd', 'COMPLETED']);
    assert.deepEqual(await lsUntil(['--experiment', report.experimentId, '--model', 'lenet5'], env, () => true), []);
  });
});

describe('paramtrail ls', () => {
  let temporal: TestWorkflowEnvironment;
  let env: NodeJS.ProcessEnv;
  const experimentId = `ls-${randomUUID().slice(0, 8)}`;
  const started: string[] = [];

  before(async () => {
    temporal = await startTestTemporal();
    env = { ...process.env, TEMPORAL_ADDRESS: temporal.address, PARAMTRAIL_STATE_DIR: join(await tempDir(), 'state') };
    // Runs as the experiment workflow starts them, attributes included, on a queue nobody polls: they
    // stay `pending`, which is what ls should then report.
    const specs = [
      { name: 'mlp--fashion-mnist--s0', model: { name: 'mlp', args: {} }, dataset: { name: 'fashion-mnist' }, training: { optimizer: { name: 'sgd' } } },
      { name: 'lenet5--fashion-mnist--s0', model: { name: 'lenet5', args: {} }, dataset: { name: 'fashion-mnist' }, training: { optimizer: { name: 'adam' } } },
      { name: 'mlp--cifar10--s0', model: { name: 'mlp', args: {} }, dataset: { name: 'cifar10' }, training: { optimizer: { name: 'adam' } } },
    ];
    for (const spec of specs) {
      const runId = `${experimentId}/${spec.name}`;
      await temporal.client.workflow.start('runWorkflow', {
        workflowId: runId,
        taskQueue: `nobody-${randomUUID()}`,
        args: [],
        typedSearchAttributes: runSearchAttributes(experimentId, runId, spec as never),
      });
      started.push(runId);
    }
    // A workflow of another type with the same attributes is not a run.
    await temporal.client.workflow.start('experimentWorkflow', {
      workflowId: experimentId,
      taskQueue: `nobody-${randomUUID()}`,
      args: [],
      typedSearchAttributes: runSearchAttributes(experimentId, experimentId, specs[0] as never),
    });
    started.push(experimentId);
  });

  after(async () => {
    for (const id of started) await temporal.client.workflow.getHandle(id).terminate('test over').catch(() => undefined);
    await temporal?.teardown();
  });

  test('finds runs by model, dataset, optimizer, status and experiment', async () => {
    const names = (rows: LsRow[]) => rows.map((r) => r.runId.split('/')[1]).sort();
    const mlp = await lsUntil(['--model', 'mlp', '--experiment', experimentId], env, (r) => r.length >= 2);
    assert.deepEqual(names(mlp), ['mlp--cifar10--s0', 'mlp--fashion-mnist--s0']);
    const row = mlp.find((r) => r.runId.endsWith('mlp--fashion-mnist--s0'))!;
    assert.deepEqual(
      [row.experiment, row.model, row.dataset, row.optimizer, row.status, row.state],
      [experimentId, 'mlp', 'fashion-mnist', 'sgd', 'pending', 'RUNNING'],
    );
    assert.ok(!Number.isNaN(Date.parse(row.startTime)));

    assert.deepEqual(names(await lsUntil(['--model', 'mlp', '--dataset', 'cifar10'], env, (r) => r.length >= 1)), ['mlp--cifar10--s0']);
    assert.deepEqual(names(await lsUntil(['--optimizer', 'adam', '--experiment', experimentId], env, (r) => r.length >= 2)), ['lenet5--fashion-mnist--s0', 'mlp--cifar10--s0']);
    assert.equal((await lsUntil(['--status', 'pending', '--experiment', experimentId], env, (r) => r.length >= 3)).length, 3, 'the experiment workflow is not listed');
    assert.deepEqual(await lsUntil(['--status', 'completed', '--experiment', experimentId], env, () => true), []);
    assert.deepEqual(await lsUntil(['--model', 'resnet'], env, () => true), []);
  });

  test('the table names each run once, under a header', async () => {
    await lsUntil(['--experiment', experimentId], env, (r) => r.length >= 3);
    const res = await runCli(['ls', '--experiment', experimentId, '--model', 'lenet5'], env);
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^RUN\s+MODEL\s+DATASET\s+OPTIMIZER\s+STATUS\s+STATE\s+STARTED\s+CLOSED$/);
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, new RegExp(`^${experimentId}/lenet5--fashion-mnist--s0\\s+lenet5\\s+fashion-mnist\\s+adam\\s+pending\\s+RUNNING\\s`));
  });

  test('refuses quotes and unknown statuses with a usage exit, before reaching the server', async () => {
    // Nothing listens on port 9: a query that got that far would fail with exit 1, not 2.
    const offline = { ...env, TEMPORAL_ADDRESS: '127.0.0.1:9' };
    for (const [args, message] of [
      [['--model', 'mlp" OR WorkflowType = "x'], /--model: expected a non-empty value without quotes/],
      [['--experiment', "a'b"], /--experiment: expected a non-empty value without quotes/],
      [['--dataset', 'a\\b'], /--dataset: expected/],
      [['--status', 'done'], /--status: expected one of pending, /],
      [['--limit', '0'], /--limit: expected a positive integer/],
      [['extra'], /ls: /],
    ] as const) {
      const res = await runCli(['ls', ...args], offline);
      assert.equal(res.code, 2, `ls ${args.join(' ')}: ${res.stderr}`);
      assert.match(res.stderr, message);
    }
    const help = await runCli(['ls', '--help'], offline);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^usage: paramtrail ls/);
  });
});
