/**
 * The operator commands on a real Temporal server, a real worker process and a local store:
 * `verify` finds a snapshot altered by one byte (and the readers refuse it), `lineage` walks the
 * manifests both ways, `cancel` stops a training run without leaving partial objects behind, and
 * `schedule` creates, triggers, pauses and deletes a Temporal Schedule whose execution completes.
 *
 * Each command runs as its own process, as a user would run it, through the exported `cmdX` function.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { stringify } from 'yaml';
import { attemptKey } from '../../activities/keys.js';
import { sha256Hex } from '../../artifacts/hash.js';
import { LocalStore } from '../../artifacts/local.js';
import { snapshotFromArrow } from '../../artifacts/snapshot.js';
import { IntegrityError } from '../../artifacts/store.js';
import { cliCommand } from '../../cli/connect.js';
import { PROJECT_ROOT } from '../../infra/tools.js';
import type { LineageNode, LineageReport } from '../../cli/lineage.js';
import type { VerifyReport } from '../../cli/verify.js';
import { FASHION_MNIST_SOURCES, requireFashionMnist, tempDir } from '../support/fixtures.js';
import { runCli, spawnWorker, type CliResult, type Spawned } from '../support/processes.js';
import { startTestTemporal } from '../support/temporal.js';

const COMMANDS = {
  verify: ['../../cli/verify.ts', 'cmdVerify'],
  lineage: ['../../cli/lineage.ts', 'cmdLineage'],
  cancel: ['../../cli/cancel.ts', 'cmdCancel'],
  schedule: ['../../cli/schedule.ts', 'cmdSchedule'],
} as const;

/** Runs `paramtrail <command> ...args` in a process of its own through the command's exported function. */
function runCommand(command: keyof typeof COMMANDS, args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  const [file, fn] = COMMANDS[command];
  const [node, , loader] = cliCommand([]);
  const url = new URL(file, import.meta.url).href;
  const code = `const m = await import(${JSON.stringify(url)}); process.exitCode = await m.${fn}(JSON.parse(process.env.OPS_TEST_ARGV), process.env);`;
  const child = spawn(node, ['--import', loader, '--input-type=module', '-e', code], {
    cwd: PROJECT_ROOT,
    env: { ...env, OPS_TEST_ARGV: JSON.stringify(args) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('exit', (c) => resolve({ code: c, stdout, stderr })));
}

async function writeExperiment(value: unknown): Promise<string> {
  const file = join(await tempDir(), `${randomUUID()}.yaml`);
  await writeFile(file, stringify(value));
  return file;
}

/** A file of one tiny run, for commands that are refused or wait before any training. */
function smallExperiment(name: string): Promise<string> {
  return writeExperiment({
    name,
    models: [{ name: 'mlp', args: { hidden: [8] } }],
    datasets: [{ name: 'fashion-mnist', subset: { train: 64, test: 32 }, sources: FASHION_MNIST_SOURCES }],
    training: { epochs: 1, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.05 } },
  });
}

/** Every key in a lineage tree, following `field` (inputs upstream, outputs downstream). */
function keysIn(nodes: LineageNode[], field: 'inputs' | 'outputs', out: LineageNode[] = []): LineageNode[] {
  for (const n of nodes) {
    out.push(n);
    keysIn(n[field] ?? [], field, out);
  }
  return out;
}

async function filesUnder(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

interface Stack {
  temporal: TestWorkflowEnvironment;
  worker: Spawned;
  env: NodeJS.ProcessEnv;
  storeDir: string;
}

async function startStack(): Promise<Stack> {
  requireFashionMnist();
  const temporal = await startTestTemporal();
  const dir = await tempDir();
  const storeDir = join(dir, 'store');
  const env = {
    ...process.env,
    TEMPORAL_ADDRESS: temporal.address,
    PARAMTRAIL_TASK_QUEUE: `ops-${randomUUID().slice(0, 8)}`,
    PARAMTRAIL_STORE: `file://${storeDir}`,
    PARAMTRAIL_STATE_DIR: join(dir, 'state'),
    // One training slot: the other engineers and CI share the machine.
    PARAMTRAIL_TRAIN_SLOTS: '1',
  };
  return { temporal, worker: spawnWorker(env), env, storeDir };
}

async function stopStack(s: Stack | undefined): Promise<void> {
  s?.worker.child.kill('SIGTERM');
  await s?.worker.exited;
  await s?.temporal.teardown();
}

describe('usage', () => {
  for (const command of Object.keys(COMMANDS) as Array<keyof typeof COMMANDS>) {
    test(`${command} --help prints usage and exits 0; no arguments exits 2`, async () => {
      const env = { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:9' };
      const help = await runCommand(command, ['--help'], env);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, new RegExp(`^usage: paramtrail ${command}`));
      const bad = await runCommand(command, [], env);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /expected one/);
    });
  }
});

describe('verify and lineage on a finished experiment', () => {
  let stack: Stack;
  let report: {
    experimentId: string;
    runs: Array<{ runId: string; snapshots: Array<{ epoch: number; key: string; sha256: string }>; distanceTable: { key: string; sha256: string }; figures: Array<{ key: string }> }>;
  };

  before(async () => {
    stack = await startStack();
    const file = await writeExperiment({
      name: 'ops-test',
      models: [{ name: 'mlp', args: { hidden: [16] } }],
      datasets: [{ name: 'fashion-mnist', subset: { train: 400, test: 100 }, sources: FASHION_MNIST_SOURCES }],
      training: { epochs: 2, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.1 } },
      execution: { heartbeatTimeout: '10s' },
    });
    const res = await runCli(['run', file, '--json'], stack.env);
    assert.equal(res.code, 0, `stderr:\n${res.stderr}\nworker:\n${stack.worker.output()}`);
    report = JSON.parse(res.stdout);
  });

  after(() => stopStack(stack));

  test('lineage of the distance table reaches its snapshots and the dataset files', async () => {
    const run = report.runs[0];
    const res = await runCommand('lineage', [run.distanceTable.key, '--json'], stack.env);
    assert.equal(res.code, 0, res.stderr);
    const lineage = JSON.parse(res.stdout) as LineageReport;
    assert.equal(lineage.artifact.kind, 'distance-table');
    assert.equal(lineage.artifact.sha256, run.distanceTable.sha256);
    const up = keysIn(lineage.upstream, 'inputs');
    for (const s of run.snapshots) assert.ok(up.some((n) => n.key === s.key && n.kind === 'snapshot'), `upstream names snapshot ${s.key}`);
    const datasetFiles = up.filter((n) => n.kind === 'dataset-file');
    assert.ok(datasetFiles.length >= 2, `upstream names the dataset files, found ${datasetFiles.map((n) => n.key)}`);
    for (const d of datasetFiles) assert.ok(existsSync(join(stack.storeDir, d.key)), `${d.key} is in the store`);
    const down = keysIn(lineage.downstream, 'outputs');
    for (const f of run.figures) assert.ok(down.some((n) => n.key === f.key && n.kind === 'figure'), `downstream names figure ${f.key}`);
  });

  test('lineage of a snapshot, by sha256, reaches the table and the figures downstream; --dot and the tree agree', async () => {
    const run = report.runs[0];
    const snap = run.snapshots[1];
    const res = await runCommand('lineage', [snap.sha256, '--json'], stack.env);
    assert.equal(res.code, 0, res.stderr);
    const lineage = JSON.parse(res.stdout) as LineageReport;
    assert.equal(lineage.artifact.key, snap.key);
    const down = keysIn(lineage.downstream, 'outputs').map((n) => n.key);
    assert.ok(down.includes(run.distanceTable.key), 'downstream names the distance table');
    for (const f of run.figures) assert.ok(down.includes(f.key), `downstream names figure ${f.key}`);
    assert.ok(keysIn(lineage.upstream, 'inputs').every((n) => n.kind === 'dataset-file'), 'a trained snapshot comes from the data');
    // Queries so far filled the lineage cache under the state folder; --refresh reads the store again and agrees.
    const caches = await readdir(join(stack.env.PARAMTRAIL_STATE_DIR!, 'cache', 'lineage'));
    assert.equal(caches.filter((f) => f.endsWith('.json')).length, 1, `one lineage cache file, found ${caches}`);
    const refreshed = await runCommand('lineage', [snap.sha256, '--json', '--refresh'], stack.env);
    assert.equal(refreshed.code, 0, refreshed.stderr);
    assert.deepEqual(JSON.parse(refreshed.stdout), lineage);

    const dot = await runCommand('lineage', [snap.key, '--dot'], stack.env);
    assert.equal(dot.code, 0, dot.stderr);
    assert.match(dot.stdout, /^digraph lineage \{/);
    assert.ok(dot.stdout.includes(`"${snap.sha256.slice(0, 16)}" -> "${run.distanceTable.sha256.slice(0, 16)}"`), 'an edge from the snapshot to the table');

    const tree = await runCommand('lineage', [snap.key], stack.env);
    assert.equal(tree.code, 0, tree.stderr);
    assert.match(tree.stdout, /made from:/);
    assert.ok(tree.stdout.includes(run.distanceTable.key));
  });

  test('lineage of a run id lists what the run produced; of an experiment id, the same', async () => {
    const run = report.runs[0];
    for (const [id, kind] of [[run.runId, 'run'], [report.experimentId, 'experiment']]) {
      const res = await runCommand('lineage', [id, '--json'], stack.env);
      assert.equal(res.code, 0, res.stderr);
      const lineage = JSON.parse(res.stdout) as LineageReport;
      assert.deepEqual([lineage.artifact.key, lineage.artifact.kind], [id, kind]);
      const made = lineage.downstream.map((n) => n.key);
      for (const key of [...run.snapshots.map((s) => s.key), run.distanceTable.key, ...run.figures.map((f) => f.key)]) {
        assert.ok(made.includes(key), `${id} produced ${key}`);
      }
      assert.ok(lineage.downstream.every((n) => n.producer?.experimentId === report.experimentId), 'only its own artifacts');
    }
    const none = await runCommand('lineage', [`${report.experimentId}/no-such-run`], stack.env);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no object, run or experiment/);
  });

  test('lineage of something with no manifest exits 1; of what cannot be a key, 2', async () => {
    const res = await runCommand('lineage', ['0'.repeat(64)], stack.env);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /no lineage manifest for sha256 0{64}/);
    const invalid = await runCommand('lineage', ['../outside'], stack.env);
    assert.equal(invalid.code, 2, invalid.stderr);
    assert.equal(invalid.stderr.trim(), 'lineage: expected an artifact key or a sha256, found "../outside"');
  });

  test('verify passes, then names a snapshot altered by one byte, which its readers refuse', async () => {
    const ok = await runCommand('verify', [report.experimentId, '--json'], stack.env);
    assert.equal(ok.code, 0, `${ok.stdout}\n${ok.stderr}`);
    const clean = JSON.parse(ok.stdout) as VerifyReport;
    assert.equal(clean.ok, true);
    // The workflow's state, and once it completed, whether every run did.
    assert.deepEqual([clean.state, clean.status], ['COMPLETED', 'completed']);
    assert.deepEqual(clean.problems, []);
    // Snapshots, table, figures, dataset files, optimizer states, checkpoints and attempts.
    assert.ok(clean.checked >= 3 + 1 + 2 + 2 + 2, `checked ${clean.checked}`);

    const snap = report.runs[0].snapshots[1];
    const path = join(stack.storeDir, snap.key);
    const bytes = new Uint8Array(await readFile(path));
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    await chmod(path, 0o644);
    await writeFile(path, bytes);

    const bad = await runCommand('verify', [report.experimentId], stack.env);
    assert.equal(bad.code, 1, `${bad.stdout}\n${bad.stderr}`);
    assert.match(bad.stdout, new RegExp(`^experiment ${report.experimentId} \\(completed\\), store `));
    assert.match(bad.stdout, new RegExp(`ALTERED ${snap.key}: expected sha256 ${snap.sha256}, found ${sha256Hex(bytes)}`));
    const badJson = JSON.parse((await runCommand('verify', [report.experimentId, '--json'], stack.env)).stdout) as VerifyReport;
    assert.deepEqual(
      badJson.problems.map((p) => [p.problem, p.key]),
      [['altered', snap.key]],
      'the one altered object and nothing else',
    );

    const store = new LocalStore(stack.storeDir);
    await assert.rejects(store.get(snap.key, { sha256: snap.sha256 }), (err) => err instanceof IntegrityError && err.key === snap.key);
    assert.throws(() => snapshotFromArrow(bytes, { source: snap.key }));

    // A record in the experiment's runs folder that is not JSON is named too, beside the snapshot.
    const junk = attemptKey(report.runs[0].runId, 9999);
    await store.put(junk, new TextEncoder().encode('{"torn'));
    try {
      const both = JSON.parse((await runCommand('verify', [report.experimentId, '--json'], stack.env)).stdout) as VerifyReport;
      assert.deepEqual(
        both.problems.map((p) => [p.problem, p.key]).sort(),
        [['altered', snap.key], ['unreadable', junk]].sort(),
      );
      assert.equal(both.checked, badJson.checked + 1);
    } finally {
      await store.delete(junk);
    }
  });

  test('verify of an unknown experiment exits 1', async () => {
    const res = await runCommand('verify', ['no-such-experiment'], stack.env);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /no experiment with id no-such-experiment/);
  });
});

describe('cancel stops a training experiment cleanly', () => {
  let stack: Stack;
  let cancelled: CliResult | undefined;
  let experimentId: string;
  before(async () => {
    stack = await startStack();
  });
  after(() => stopStack(stack));

  test('status shows the training run at its epoch; cancel stops it, and every checkpoint names whole objects', { timeout: 300_000 }, async () => {
    const file = await writeExperiment({
      name: 'ops-cancel',
      models: [{ name: 'lenet5' }],
      datasets: [{ name: 'fashion-mnist', subset: { train: 3000, test: 200 }, sources: FASHION_MNIST_SOURCES }],
      // Momentum, so that every checkpoint also names an optimizer-state object.
      training: { epochs: 200, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.05, momentum: 0.9 } },
      execution: { heartbeatTimeout: '10s' },
    });
    experimentId = `ops-cancel-${randomUUID().slice(0, 8)}`;
    // Followed by `run` as a user would, in the terminal where cancel is not typed.
    const following = runCli(['run', file, '--json', '--id', experimentId], stack.env);

    // Training has started once its first trained epoch is checkpointed.
    const runsDir = join(stack.storeDir, 'runs', experimentId);
    const checkpoints = async () => (await filesUnder(runsDir)).filter((f) => /\/checkpoints\/epoch-\d+\.json$/.test(f));
    const deadline = Date.now() + 240_000;
    while (!(await checkpoints()).some((f) => /epoch-0*[1-9]\d*\.json$/.test(f))) {
      assert.ok(Date.now() < deadline, `no trained checkpoint appeared; worker:\n${stack.worker.output()}`);
      await new Promise((r) => setTimeout(r, 500));
    }

    // While it trains, status shows where the run is: its epoch from the training's heartbeat.
    const running = await runCli(['status', experimentId], stack.env);
    assert.equal(running.code, 0, running.stderr);
    assert.match(running.stdout, /: running\n/);
    assert.match(running.stdout, /: train epoch \d+\/200 batch \d+\/\d+\n/);
    const runningJson = JSON.parse((await runCli(['status', experimentId, '--json'], stack.env)).stdout) as { runs: Array<{ status: string; progress?: string }> };
    assert.match(runningJson.runs[0]!.progress ?? '', /^train epoch \d+\/200/, JSON.stringify(runningJson.runs[0]));

    cancelled = await runCommand('cancel', [experimentId, '--json'], stack.env);
    const report = JSON.parse(cancelled.stdout) as { state: string; cancelRequested: boolean };
    assert.equal(report.cancelRequested, true, cancelled.stderr);
    assert.notEqual(report.state, 'RUNNING', 'cancel waits until the experiment has closed');
    // The run's own workflow closed too, without completing (the list is eventually consistent: a few seconds).
    let runs: Array<{ state: string }> = [];
    for (const until = Date.now() + 15_000; Date.now() < until; await new Promise((r) => setTimeout(r, 500))) {
      const listed = await runCli(['ls', '--experiment', experimentId, '--json'], stack.env);
      assert.equal(listed.code, 0, listed.stderr);
      runs = JSON.parse(listed.stdout) as Array<{ state: string }>;
      if (runs.length > 0 && runs.every((r) => r.state !== 'RUNNING')) break;
    }
    assert.equal(runs.length, 1, JSON.stringify(runs));
    assert.ok(['CANCELLED', 'TERMINATED'].includes(runs[0]!.state), `the run did not go on to complete: ${JSON.stringify(runs)}`);
    // The `run` that followed it says it was cancelled, as status does, and exits 1: no stack trace.
    const ran = await following;
    assert.equal(ran.code, 1, ran.stderr);
    assert.deepEqual(JSON.parse(ran.stdout), { experimentId, status: 'cancelled', store: `file://${stack.storeDir}`, runs: [] });
    assert.doesNotMatch(ran.stderr, /^\s+at /m);
    assert.doesNotMatch(ran.stderr, /no worker polls/, 'the worker polls every queue');

    // Nothing is still training: the checkpoints stay as they were.
    const before = (await checkpoints()).length;
    await new Promise((r) => setTimeout(r, 3000));
    const ckpts = await checkpoints();
    assert.equal(ckpts.length, before, 'no checkpoint was written after the experiment closed');
    assert.ok(ckpts.length >= 2, `checkpoints: ${ckpts}`);

    // Every checkpoint names objects that exist and hash to what it says; verify agrees.
    for (const f of ckpts) {
      const c = JSON.parse(await readFile(f, 'utf8')) as { weights: { key: string; sha256: string }; optimizer: { key: string; sha256: string } };
      for (const ref of [c.weights, c.optimizer]) {
        assert.equal(sha256Hex(await readFile(join(stack.storeDir, ref.key))), ref.sha256, `${relative(stack.storeDir, f)} names ${ref.key}`);
      }
    }
    const verify = await runCommand('verify', [experimentId, '--json'], stack.env);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    // Content-addressed objects hash to their names: none was left half written under its final key.
    // (`~` names are the local store's own records and temporary files, never objects.)
    const tensors = (await filesUnder(join(stack.storeDir, 'tensors'))).filter((f) => !f.split('/').at(-1)!.includes('~'));
    assert.ok(tensors.length >= 4, `tensors: ${tensors}`);
    for (const f of tensors) {
      const name = f.split('/').at(-1)!;
      assert.match(name, /^[0-9a-f]{64}\./);
      assert.equal(sha256Hex(await readFile(f)), name.slice(0, 64), `${relative(stack.storeDir, f)} is whole`);
    }
  });

  test('the experiment closes as CANCELLED and cancel exits 0', async () => {
    assert.ok(cancelled, 'the cancel above ran');
    assert.equal(cancelled.code, 0, cancelled.stdout + cancelled.stderr);
    assert.deepEqual(JSON.parse(cancelled.stdout), { experimentId, state: 'CANCELLED', cancelRequested: true });
    const desc = await stack.temporal.client.workflow.getHandle(experimentId).describe();
    assert.equal(desc.status.name, 'CANCELLED');
  });

  test('run names each task queue no worker polls, and the worker that would serve it', { timeout: 60_000 }, async () => {
    const file = await smallExperiment('ops-unpolled');
    // Queues of a prefix no worker serves, as with a mistyped PARAMTRAIL_TASK_QUEUE.
    const prefix = `unserved-${randomUUID().slice(0, 8)}`;
    const res = await runCli(['run', file, '--detach', '--json'], { ...stack.env, PARAMTRAIL_TASK_QUEUE: prefix });
    assert.equal(res.code, 0, res.stderr);
    const { experimentId: id } = JSON.parse(res.stdout) as { experimentId: string };
    try {
      for (const [role, name] of [['workflows', prefix], ['train', `${prefix}-train`], ['analysis', `${prefix}-analysis`]]) {
        assert.match(res.stderr, new RegExp(`no worker polls task queue ${name} \\(${role}\\).*PARAMTRAIL_TASK_QUEUE=${prefix} paramtrail worker --task-queue ${role}`));
      }
      // With no worker to answer where it is, status still says it runs, and why it cannot say more.
      const status = await runCli(['status', id], stack.env);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`^${id}: running; no worker answered where it is \\(.+\\)\\n$`));
      // verify checks what the store holds under the experiment, and says what it could not check.
      const verified = await runCommand('verify', [id], stack.env);
      assert.equal(verified.code, 1, verified.stderr);
      assert.match(verified.stdout, /\nthe \d+ artifacts checked verify; not checked: its runs' results: it is running and no worker answered where it is \(.+\)\n$/);
      const report = await runCli(['report', id], stack.env);
      assert.equal(report.code, 1, report.stderr);
      assert.match(report.stderr, new RegExp(`^experiment ${id} is running: the report is written when it completes`));
    } finally {
      await stack.temporal.client.workflow.getHandle(id).terminate('the test is over');
    }
  });

  test('run --id refuses an id already used, by Temporal or by the store, and changes nothing stored', async () => {
    const file = await smallExperiment('ops-id');
    const storeFiles = async () => (await filesUnder(stack.storeDir)).sort();
    const before = await storeFiles();

    // The cancelled experiment above: closed, but its runs' checkpoints are in the store.
    const closed = await runCli(['run', file, '--detach', '--id', experimentId, '--force'], stack.env);
    assert.equal(closed.code, 2, closed.stdout + closed.stderr);
    assert.match(closed.stderr, new RegExp(`experiment ${experimentId} already exists \\(cancelled\\); choose another id`));

    // An id Temporal does not know, whose objects the store holds (an experiment of another cluster).
    const elsewhere = `ops-id-${randomUUID().slice(0, 8)}`;
    const note = await new LocalStore(stack.storeDir).put(`runs/${elsewhere}/mlp--fashion-mnist--s0/attempts/attempt-0001.json`, new TextEncoder().encode('{}'));
    const stored = await runCli(['run', file, '--detach', '--id', elsewhere], stack.env);
    assert.equal(stored.code, 2, stored.stdout + stored.stderr);
    assert.match(stored.stderr, new RegExp(`already holds objects of an experiment ${elsewhere} \\(${note.key}\\)`));

    // An id that cannot be a key segment is refused before anything is asked of the server.
    const slash = await runCli(['run', file, '--detach', '--id', 'a/b'], stack.env);
    assert.equal(slash.code, 2, slash.stdout + slash.stderr);
    assert.match(slash.stderr, /run --id: expected letters, digits.*found "a\/b"/);

    for (const id of [experimentId, elsewhere]) {
      const { executions } = await stack.temporal.client.workflowService.listWorkflowExecutions({ namespace: 'default', query: `WorkflowId = "${id}"` });
      assert.equal(executions.length, id === experimentId ? 1 : 0, `no experiment was started under ${id}`);
    }
    assert.deepEqual(await storeFiles(), [...before, join(stack.storeDir, note.key)].sort(), 'nothing stored changed but the object this test put');
  });
});

describe('schedule: create, trigger, see the experiment complete, delete', () => {
  let stack: Stack;
  let executed: { workflowId: string; result: { experimentId: string } } | undefined;
  before(async () => {
    stack = await startStack();
  });
  after(() => stopStack(stack));

  test('a triggered execution completes under a workflow id named after the schedule', { timeout: 300_000 }, async () => {
    const file = await writeExperiment({
      name: 'ops-schedule',
      models: [{ name: 'mlp', args: { hidden: [8] } }],
      datasets: [{ name: 'fashion-mnist', subset: { train: 200, test: 100 }, sources: FASHION_MNIST_SOURCES }],
      training: { epochs: 1, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.1 } },
      execution: { heartbeatTimeout: '10s' },
    });
    const scheduleId = `ops-sched-${randomUUID().slice(0, 8)}`;
    const bad = await runCommand('schedule', ['create', file, '--every', 'often', '--id', scheduleId], stack.env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--every: expected a duration/);
    // Its executions' ids, and so their keys, start with the schedule id.
    const badId = await runCommand('schedule', ['create', file, '--every', '1d', '--id', 'nightly/v2'], stack.env);
    assert.equal(badId.code, 2, badId.stderr);
    assert.match(badId.stderr, /--id: expected letters, digits.*found "nightly\/v2"/);
    const tooOften = await runCommand('schedule', ['create', file, '--every', '500ms', '--id', scheduleId], stack.env);
    assert.equal(tooOften.code, 2, tooOften.stderr);
    assert.match(tooOften.stderr, /--every: expected at least 1s \(Temporal's shortest interval\), found "500ms"/);
    // Temporal parses cron expressions; one it refuses is a usage error, and no schedule is left.
    const badCron = await runCommand('schedule', ['create', file, '--cron', '* * *', '--id', scheduleId], stack.env);
    assert.equal(badCron.code, 2, badCron.stderr);
    assert.match(badCron.stderr, /--cron: Temporal refused "\* \* \*": CronString does not have 5-7 fields/);
    assert.equal((await runCommand('schedule', ['describe', scheduleId], stack.env)).code, 1);

    // Daily: nothing runs on its own during the test; the execution comes from trigger.
    const created = await runCommand('schedule', ['create', file, '--every', '1d', '--id', scheduleId, '--json'], stack.env);
    assert.equal(created.code, 0, created.stderr);
    const report = JSON.parse(created.stdout);
    assert.equal(report.scheduleId, scheduleId);
    assert.equal(report.paused, false);
    assert.deepEqual(report.every, [86_400_000]);
    assert.equal(report.overlap, 'SKIP');

    const again = await runCommand('schedule', ['create', file, '--every', '1d', '--id', scheduleId], stack.env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists/);

    const listed = await runCommand('schedule', ['list', '--json'], stack.env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(JSON.parse(listed.stdout).some((s: { scheduleId: string }) => s.scheduleId === scheduleId));

    const triggered = await runCommand('schedule', ['trigger', scheduleId], stack.env);
    assert.equal(triggered.code, 0, triggered.stderr);
    let workflowId: string | undefined;
    const deadline = Date.now() + 60_000;
    while (!workflowId) {
      assert.ok(Date.now() < deadline, 'the trigger started no execution');
      const d = await runCommand('schedule', ['describe', scheduleId, '--json'], stack.env);
      assert.equal(d.code, 0, d.stderr);
      workflowId = (JSON.parse(d.stdout).recent as Array<{ workflowId: string }>)[0]?.workflowId;
      if (!workflowId) await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(workflowId.startsWith(`${scheduleId}-`), `execution ${workflowId} is named after the schedule`);
    const result = (await stack.temporal.client.workflow.getHandle(workflowId).result()) as { status: string; experimentId: string };
    assert.equal(result.status, 'completed', JSON.stringify(result));
    executed = { workflowId, result };
    const status = await runCli(['status', workflowId, '--json'], stack.env);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).status, 'completed');
    // Its workflow id has the time's colons, its experiment id (keys, manifests, search attributes) not:
    // the audit commands take either.
    assert.notEqual(result.experimentId, workflowId);
    for (const id of [workflowId, result.experimentId]) {
      const verified = await runCommand('verify', [id, '--json'], stack.env);
      assert.equal(verified.code, 0, `verify ${id}: ${verified.stdout}${verified.stderr}`);
      assert.equal(JSON.parse(verified.stdout).experimentId, result.experimentId);
      const traced = await runCommand('lineage', [id, '--json'], stack.env);
      assert.equal(traced.code, 0, `lineage ${id}: ${traced.stderr}`);
      // Visibility follows the workflows within a moment.
      let rows = 0;
      for (let i = 0; i < 20 && rows === 0; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 500));
        const listed = await runCli(['ls', '--experiment', id, '--json'], stack.env);
        assert.equal(listed.code, 0, listed.stderr);
        rows = (JSON.parse(listed.stdout) as unknown[]).length;
      }
      assert.equal(rows, 1, `ls --experiment ${id}`);
      const byExperimentId = await runCli(['status', id], stack.env);
      assert.equal(byExperimentId.code, 0, byExperimentId.stderr);
    }

    const paused = await runCommand('schedule', ['pause', scheduleId, '--note', 'maintenance'], stack.env);
    assert.equal(paused.code, 0, paused.stderr);
    const described = JSON.parse((await runCommand('schedule', ['describe', scheduleId, '--json'], stack.env)).stdout);
    assert.equal(described.paused, true);
    assert.equal(described.note, 'maintenance');
    assert.equal((await runCommand('schedule', ['unpause', scheduleId], stack.env)).code, 0);

    const deleted = await runCommand('schedule', ['delete', scheduleId], stack.env);
    assert.equal(deleted.code, 0, deleted.stderr);
    const gone = await runCommand('schedule', ['describe', scheduleId], stack.env);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, new RegExp(`no schedule with id ${scheduleId}`));

    // A cron schedule is described by its expression as given; an interval in its largest unit.
    const cronId = `${scheduleId}-cron`;
    const cron = await runCommand('schedule', ['create', file, '--cron', '0 3 * * *', '--id', cronId, '--paused', '--json'], stack.env);
    assert.equal(cron.code, 0, cron.stderr);
    assert.deepEqual(JSON.parse(cron.stdout).cron, ['0 3 * * *']);
    const cronText = (await runCommand('schedule', ['describe', cronId], stack.env)).stdout;
    assert.match(cronText, /\n {2}cron 0 3 \* \* \*\n/);
    assert.deepEqual(cronText.match(/^ {2}next .*T03:00:00\.000Z$/gm)?.length, 3, cronText);
    assert.equal((await runCommand('schedule', ['delete', cronId], stack.env)).code, 0);
    const every = await runCommand('schedule', ['create', file, '--every', '90m', '--id', `${scheduleId}-90m`, '--paused'], stack.env);
    assert.match(every.stdout, /\n {2}every 90m\n/);
    assert.equal((await runCommand('schedule', ['delete', `${scheduleId}-90m`], stack.env)).code, 0);
  });

  test('each scheduled execution is its own experiment id', () => {
    assert.ok(executed, 'the triggered execution above completed');
    assert.equal(executed.result.experimentId, executed.workflowId.replace(/:/g, ''));
    assert.match(executed.result.experimentId, /^ops-sched-[0-9a-f]{8}-\d{4}-\d\d-\d\dT\d{6}Z$/);
  });
});
