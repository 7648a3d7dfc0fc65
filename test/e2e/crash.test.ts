/**
 * A worker process killed mid-training: a new worker takes the run over, training resumes from the last
 * stored checkpoint (not epoch 0), and every snapshot, the final one included, is bit-identical to the
 * same run without a crash. Also for a pack of local runs, whose local activity the new worker runs
 * again from attempt 1. A worker stopped with SIGTERM instead hands its training over at once.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { S3Store } from '../../artifacts/s3.js';
import { experimentWorkflow } from '../../workflows/index.js';
import type { ExperimentConfig } from '../../config/experiment.js';
import { expandRuns } from '../../config/grid.js';
import { queueNames, type ExperimentResult } from '../../workflows/types.js';
import { requireFashionMnist, tempDir, tinyExperiment, FASHION_MNIST_SOURCES } from '../support/fixtures.js';
import { spawnWorker, type Spawned } from '../support/processes.js';
import { assertSameWeights } from '../support/weights.js';
import { startTestS3, type TestS3 } from '../support/s3.js';
import { startTestTemporal } from '../support/temporal.js';

let temporal: TestWorkflowEnvironment;
// At the top level: startTestS3 stops its server in an after() hook of the scope it is called in.
const s3: TestS3 = await startTestS3();
const store: S3Store = s3.store;
const spawned: Spawned[] = [];

before(async () => {
  requireFashionMnist();
  temporal = await startTestTemporal();
});

after(async () => {
  for (const s of spawned) s.child.kill('SIGKILL');
  await temporal?.teardown();
});

async function workerEnvFor(prefix: string): Promise<NodeJS.ProcessEnv> {
  return {
    ...process.env,
    TEMPORAL_ADDRESS: temporal.address,
    PARAMTRAIL_TASK_QUEUE: prefix,
    PARAMTRAIL_STORE: `s3://${s3.server.bucket}`,
    PARAMTRAIL_S3_ENDPOINT: s3.server.endpoint,
    AWS_ACCESS_KEY_ID: s3.server.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.server.secretAccessKey,
    AWS_REGION: 'us-east-1',
    PARAMTRAIL_STATE_DIR: await tempDir(),
    // Bit-identical across processes is the CPU backend's promise; the native one's depends on threads.
    PARAMTRAIL_BACKEND: 'cpu',
  };
}

/** Kills `worker` (SIGKILL unless told) once `runId` has stored its epoch-1 checkpoint. */
async function killAfterEpoch1(worker: Spawned, runId: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    const keys = await store.list(`runs/${runId}/checkpoints/`);
    if (keys.some((k) => k.endsWith('epoch-000001.json'))) break;
    assert.ok(worker.child.exitCode === null, `the first worker exited early:\n${worker.output()}`);
    assert.ok(Date.now() < deadline, `no checkpoint after epoch 1 in time; worker output:\n${worker.output()}`);
    await sleep(50);
  }
  worker.child.kill(signal);
  await worker.exited;
}

/**
 * Runs `config` on a worker, kills the worker once the first run has stored its epoch-1 checkpoint, and
 * lets a new worker finish; then runs it again without a crash (forced: the crashed runs' trainings
 * have the same reuse keys and must not stand in for these), each run trained in one attempt.
 */
async function crashedAndClean(name: string, config: ExperimentConfig): Promise<{ crashed: ExperimentResult; clean: ExperimentResult }> {
  const prefix = `${name}-${randomUUID().slice(0, 8)}`;
  const queues = queueNames(prefix);
  const workerEnv = await workerEnvFor(prefix);
  const first = spawnWorker(workerEnv);
  spawned.push(first);
  const crashedId = `crashed-${name}-${randomUUID()}`;
  const handle = await temporal.client.workflow.start(experimentWorkflow, {
    workflowId: crashedId,
    taskQueue: queues.workflows,
    args: [{ experimentId: crashedId, config, queues, store: store.location }],
  });
  await killAfterEpoch1(first, `${crashedId}/${expandRuns(config)[0]!.name}`);
  const second = spawnWorker(workerEnv);
  spawned.push(second);
  const crashed: ExperimentResult = await handle.result();
  assert.equal(crashed.status, 'completed', `${JSON.stringify(crashed.runs.map((r) => r.error))}\n${second.output()}`);

  const cleanId = `clean-${name}-${randomUUID()}`;
  const clean: ExperimentResult = await temporal.client.workflow.execute(experimentWorkflow, {
    workflowId: cleanId,
    taskQueue: queues.workflows,
    args: [{ experimentId: cleanId, config, queues, store: store.location, force: true }],
  });
  assert.equal(clean.status, 'completed');
  for (const run of clean.runs) {
    assert.equal(run.result!.train.attempts.length, 1, `the uninterrupted run was retried: ${JSON.stringify(run.result!.train.attempts)}\n${second.output()}`);
  }
  second.child.kill('SIGTERM');
  await second.exited;
  return { crashed, clean };
}

test('SIGKILL of the worker after the first snapshot: the run resumes and ends bit-identical', { timeout: 600_000 }, async () => {
  const config = tinyExperiment({
    models: [{ name: 'lenet5' }],
    datasets: [{ name: 'fashion-mnist', subset: { train: 1600, test: 200 }, sources: FASHION_MNIST_SOURCES }],
    training: { epochs: 5, batchSize: 32, optimizer: { name: 'adam', learningRate: 0.001 } },
    // A dead worker's attempt is given up after this long; keep the test short.
    execution: { concurrency: 1, heartbeatTimeout: '5s', maxAttempts: 5 },
  });
  const { crashed, clean } = await crashedAndClean('run', config);
  const train = crashed.runs[0]!.result!.train;
  assert.ok(train.attempts.length >= 2, `expected a retry, found attempts ${JSON.stringify(train.attempts)}`);
  const last = train.attempts.at(-1)!;
  assert.ok(last.resumed && last.startedFromEpoch >= 1, `the retry must resume from a stored epoch, found ${JSON.stringify(last)}`);
  assert.notEqual(last.worker, train.attempts[0]!.worker, 'another worker process took the run over');
  assert.deepEqual(train.snapshots.map((s) => s.epoch), [0, 1, 2, 3, 4, 5]);
  await assertSameWeights(store, train, clean.runs[0]!.result!.train);
});

test('SIGKILL of the worker running a pack of local runs: the new worker runs trainPack again, resuming the run it was on', { timeout: 600_000 }, async () => {
  const config = tinyExperiment({
    models: [{ name: 'lenet5' }],
    datasets: [{ name: 'fashion-mnist', subset: { train: 400, test: 100 }, sources: FASHION_MNIST_SOURCES }],
    seeds: [0, 1],
    training: { epochs: 3, batchSize: 32, optimizer: { name: 'adam', learningRate: 0.001 } },
    analyses: { runFigures: false },
    execution: { concurrency: 1, heartbeatTimeout: '5s', maxAttempts: 5, local: true, runsPerWorkflow: 2 },
  });
  // The pack's workflow task times out (3 s with execution.local) and the new worker replays it: its
  // local activity, which left no marker, starts again at attempt 1.
  const { crashed, clean } = await crashedAndClean('pack', config);
  const [resumed, after] = crashed.runs.map((r) => r.result!.train);
  assert.equal(crashed.runs[0]!.workflowId, crashed.runs[1]!.workflowId, 'one pack');
  assert.ok(resumed!.attempts.length >= 2, `expected a retry, found attempts ${JSON.stringify(resumed!.attempts)}`);
  assert.ok(resumed!.attempts.every((a) => a.activity === 'trainPack' && a.attempt === 1), JSON.stringify(resumed!.attempts));
  const last = resumed!.attempts.at(-1)!;
  assert.ok(last.resumed && last.startedFromEpoch >= 1, `the retry must resume from a stored epoch, found ${JSON.stringify(last)}`);
  assert.notEqual(last.worker, resumed!.attempts[0]!.worker, 'another worker process took the run over');
  assert.deepEqual(after!.attempts.map((a) => a.worker), [last.worker], 'the second run trained once, on the new worker');
  for (const [i, run] of clean.runs.entries()) await assertSameWeights(store, crashed.runs[i]!.result!.train, run.result!.train);
});

test('SIGTERM of the worker mid-training (a rolling restart): the next worker resumes the run at once, not after its heartbeat timeout', { timeout: 600_000 }, async () => {
  const config = tinyExperiment({
    models: [{ name: 'mlp', args: { hidden: [64] } }],
    datasets: [{ name: 'fashion-mnist', subset: { train: 4000, test: 200 }, sources: FASHION_MNIST_SOURCES }],
    training: { epochs: 6, batchSize: 32, optimizer: { name: 'adam', learningRate: 0.001 } },
    analyses: { runFigures: false },
    // Long, so that a hand-over that waited for it would show as a heartbeat timeout.
    execution: { concurrency: 1, heartbeatTimeout: '10m', maxAttempts: 5 },
  });
  const prefix = `sigterm-${randomUUID().slice(0, 8)}`;
  const queues = queueNames(prefix);
  const workerEnv = await workerEnvFor(prefix);
  const first = spawnWorker(workerEnv);
  spawned.push(first);
  const experimentId = `sigterm-${randomUUID()}`;
  const handle = await temporal.client.workflow.start(experimentWorkflow, {
    workflowId: experimentId,
    taskQueue: queues.workflows,
    args: [{ experimentId, config, queues, store: store.location }],
  });
  await killAfterEpoch1(first, `${experimentId}/${expandRuns(config)[0]!.name}`, 'SIGTERM');
  assert.equal(first.child.exitCode, 0, `the worker stops cleanly on SIGTERM:\n${first.output()}`);
  const second = spawnWorker(workerEnv);
  spawned.push(second);
  const result: ExperimentResult = await handle.result();
  second.child.kill('SIGTERM');
  await second.exited;
  assert.equal(result.status, 'completed', JSON.stringify(result.runs.map((r) => r.error)));
  const { workflowId, result: run } = result.runs[0]!;
  const attempts = run!.train.attempts;
  assert.equal(attempts.length, 2, JSON.stringify(attempts));
  assert.ok(attempts[1]!.resumed && attempts[1]!.startedFromEpoch >= 1, `the next worker resumes from a stored epoch: ${JSON.stringify(attempts)}`);
  assert.notEqual(attempts[1]!.worker, attempts[0]!.worker);

  // The train activity's second attempt started after the failure the stopping worker reported.
  const events = (await temporal.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const trainScheduled = new Set(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'train').map((e) => String(e.eventId)));
  const started = events.map((e) => e.activityTaskStartedEventAttributes).find((a) => a && trainScheduled.has(String(a.scheduledEventId)));
  assert.equal(started?.attempt, 2, JSON.stringify(started));
  assert.equal(started.lastFailure?.applicationFailureInfo?.type, 'WorkerShutdown', `the first attempt ended by the worker's report, not a timeout: ${JSON.stringify(started.lastFailure)}`);
});
