/**
 * The train activity in a MockActivityEnvironment on real data and a real local store: heartbeats carry
 * progress, and a retry after a cancelled attempt resumes from the last stored checkpoint and ends with
 * the weights of an uninterrupted run.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { LocalStore } from '../../artifacts/local.js';
import { snapshotFromArrow } from '../../artifacts/snapshot.js';
import { expandRuns } from '../../config/grid.js';
import { createActivities } from '../../activities/index.js';
import type { DownloadResult, TrainHeartbeat, TrainResult } from '../../activities/types.js';
import { requireFashionMnist, tempDir, tinyExperiment } from '../support/fixtures.js';

/** MockActivityEnvironment.run does not infer the result type; this keeps it. */
function runIn<A extends unknown[], R>(env: MockActivityEnvironment, fn: (...args: A) => Promise<R>, ...args: A): Promise<R> {
  return env.run(fn as never, ...(args as unknown as never[])) as Promise<R>;
}

let store: LocalStore;
let activities: ReturnType<typeof createActivities>;
let data: DownloadResult;
const run = expandRuns(
  tinyExperiment({ training: { epochs: 3, batchSize: 32, optimizer: { name: 'adam', learningRate: 0.001 } } }),
)[0];

before(async () => {
  requireFashionMnist();
  store = new LocalStore(await tempDir());
  activities = createActivities({ store });
  data = await runIn(new MockActivityEnvironment(), activities.download, { experimentId: 'e', runId: 'e/r', dataset: run.dataset });
});

async function weightsOf(result: TrainResult): Promise<string[]> {
  const snap = snapshotFromArrow(await store.get(result.final.key, { sha256: result.final.sha256 }));
  return snap.tensors.map((t) => `${t.layer}/${t.name}:${t.sha256}`);
}

test('download stores each file under its sha256 and a second call fetches nothing', async () => {
  assert.equal(data.fetched, 4);
  const again = await runIn(new MockActivityEnvironment(), activities.download, { experimentId: 'e', runId: 'e/r', dataset: run.dataset });
  assert.equal(again.fetched, 0);
  assert.equal(again.cached, 4);
  assert.deepEqual(again.files.map((f) => f.sha256), data.files.map((f) => f.sha256));
});

test('heartbeats carry epoch, batch and the last stored checkpoint', async () => {
  const env = new MockActivityEnvironment();
  const beats: TrainHeartbeat[] = [];
  env.on('heartbeat', (d: TrainHeartbeat) => beats.push(d));
  const result = await runIn(env, activities.train, { experimentId: 'hb', runId: 'hb/run', run, data });
  assert.deepEqual(result.snapshots.map((s) => s.epoch), [0, 1, 2, 3]);
  const batches = beats.filter((b) => b.batches > 0);
  assert.ok(batches.length > 10, `expected a heartbeat per batch, got ${beats.length}`);
  assert.ok(batches.every((b) => b.epochs === 3 && b.batch <= b.batches));
  const stored = beats.map((b) => b.checkpointEpoch);
  assert.ok(stored.every((e, i) => i === 0 || e >= stored[i - 1]), 'the stored checkpoint only moves forward');
  assert.equal(beats.at(-1)!.checkpointEpoch, 3);
});

test('a retry resumes from the last snapshot and ends bit-identical to an uninterrupted run', async () => {
  const runId = 'retry/run';
  const first = new MockActivityEnvironment({ attempt: 1 });
  let lastBeat: TrainHeartbeat | undefined;
  first.on('heartbeat', (d: TrainHeartbeat) => {
    lastBeat = d;
    // Cancel partway through epoch 2, once the epoch-1 checkpoint is stored.
    if (d.checkpointEpoch === 1 && d.batch >= 3) first.cancel();
  });
  await assert.rejects(runIn(first, activities.train, { experimentId: 'retry', runId, run, data }), (err: Error) => err.name === 'CancelledFailure');
  assert.equal(lastBeat?.checkpointEpoch, 1);

  const second = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: lastBeat });
  const resumed = await runIn(second, activities.train, { experimentId: 'retry', runId, run, data });
  assert.deepEqual(
    resumed.attempts.map((a) => [a.attempt, a.startedFromEpoch, a.resumed]),
    [
      [1, 0, false],
      [2, 1, true],
    ],
  );
  assert.deepEqual(resumed.history.map((h) => h.epoch), [0, 1, 2, 3]);

  const clean = await runIn(new MockActivityEnvironment(), activities.train, { experimentId: 'clean', runId: 'clean/run', run, data });
  assert.deepEqual(await weightsOf(resumed), await weightsOf(clean));
  assert.notDeepEqual(
    (await weightsOf(resumed)).slice(0, 1),
    snapshotFromArrow(await store.get(resumed.snapshots[0].key)).tensors.slice(0, 1).map((t) => `${t.layer}/${t.name}:${t.sha256}`),
    'training moved the weights',
  );
});
