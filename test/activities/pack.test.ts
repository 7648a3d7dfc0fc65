/**
 * The trainPack activity on real data and a real local store: it does each run's lookup, training and
 * distances as the three activities do them, stops before a run whose steps fail, returns once past its
 * budget, tells a run's own recorded training (an earlier attempt's) from a reuse, and stops when
 * cancelled.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import type { MockActivityEnvironment } from '@temporalio/testing';
import { LocalStore } from '../../artifacts/local.js';
import { snapshotFromArrow } from '../../artifacts/snapshot.js';
import { expandRuns, type RunSpec } from '../../config/grid.js';
import { createActivities } from '../../activities/index.js';
import { createTrainPack } from '../../activities/pack.js';
import type { DownloadResult, TrainPackInput, TrainPackResult, TrainResult } from '../../activities/types.js';
import { requireFashionMnist, tempDir, tinyExperiment } from '../support/fixtures.js';
import { activityEnvironment } from '../support/logs.js';

let store: LocalStore;
let activities: ReturnType<typeof createActivities>;
let data: DownloadResult;
const runs = expandRuns(tinyExperiment({ seeds: [1, 2, 3], training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } } }));
const missing = 'tensors/00/0000000000000000000000000000000000000000000000000000000000000000.arrow';

before(async () => {
  requireFashionMnist();
  store = new LocalStore(await tempDir());
  activities = createActivities({ store });
  data = (await activityEnvironment().run(activities.download as never, { experimentId: 'e', runId: 'e/r', dataset: runs[0]!.dataset } as never)) as DownloadResult;
});

function trainPack(env: MockActivityEnvironment, input: TrainPackInput, fn = activities.trainPack): Promise<TrainPackResult> {
  return env.run(fn as never, input as never) as Promise<TrainPackResult>;
}

const packOf = (experimentId: string, specs: RunSpec[]) => specs.map((run) => ({ runId: `${experimentId}/${run.name}`, run }));

async function weightsOf(result: TrainResult): Promise<string[]> {
  const snap = snapshotFromArrow(await store.get(result.final.key, { sha256: result.final.sha256 }));
  return snap.tensors.map((t) => `${t.layer}/${t.name}:${t.sha256}`);
}

test('each run is looked up, trained and measured as the three activities do it', async () => {
  const done = await trainPack(activityEnvironment(), { experimentId: 'packed', runs: packOf('packed', runs), data });
  assert.equal(done.stoppedAt, undefined);
  assert.deepEqual(done.runs.map((r) => r.runId), runs.map((r) => `packed/${r.name}`));
  const env = () => activityEnvironment();
  for (const [i, run] of runs.entries()) {
    const packed = done.runs[i]!;
    const runId = `alone/${run.name}`;
    const lookup = (await env().run(activities.lookupRun as never, { experimentId: 'alone', runId, run, data } as never)) as Awaited<ReturnType<typeof activities.lookupRun>>;
    assert.equal(packed.configHash, lookup.configHash);
    assert.equal(packed.codeVersion, lookup.codeVersion);
    assert.equal(lookup.found?.runId, packed.runId, 'the packed training is recorded for reuse');
    assert.equal(packed.reusedFrom, undefined);
    const alone = (await env().run(activities.train as never, { experimentId: 'alone', runId, run, data } as never)) as TrainResult;
    assert.deepEqual(await weightsOf(packed.train), await weightsOf(alone), `${run.name}: the same weights`);
    assert.deepEqual(packed.train.history, alone.history.map((h) => ({ ...h, seconds: packed.train.history[h.epoch]!.seconds })));
    assert.equal(packed.train.snapshots.length, 2);
    for (const s of packed.train.snapshots) await store.get(s.key, { sha256: s.sha256 });
    const alike = (await env().run(activities.distance as never, { experimentId: 'alone', runId: packed.runId, snapshots: packed.train.snapshots, p: run.analyses.distance.p } as never)) as { table: { sha256: string }; rows: number };
    assert.deepEqual([packed.distance.table.sha256, packed.distance.rows], [alike.table.sha256, alike.rows], `${run.name}: the same distance table`);
    assert.deepEqual(packed.train.attempts.map((a) => a.activity), ['unknown']);
  }
});

test('a run whose steps fail ends the call before it; the runs before it are returned', async () => {
  const bad: RunSpec = { ...runs[1]!, name: 'bad', training: { ...runs[1]!.training, init: { ...runs[1]!.training.init, from: { key: missing } } } };
  const done = await trainPack(activityEnvironment(), { experimentId: 'stops', runs: packOf('stops', [runs[0]!, bad, runs[2]!]), data });
  assert.deepEqual(done.runs.map((r) => r.runId), [`stops/${runs[0]!.name}`]);
  assert.equal(done.stoppedAt?.runId, 'stops/bad');
  assert.match(done.stoppedAt!.message, /training\.init\.from\.key/);
  assert.deepEqual(await store.list('runs/stops/bad/checkpoints/'), [], 'the failed run stored no checkpoint');
  assert.deepEqual(await store.list(`runs/stops/${runs[2]!.name}/`), [], 'nothing of the run after it was started');
  // The first run failing: nothing done.
  const first = await trainPack(activityEnvironment(), { experimentId: 'stops-first', runs: packOf('stops-first', [bad, runs[0]!]), data });
  assert.deepEqual(first.runs, []);
  assert.equal(first.stoppedAt?.runId, 'stops-first/bad');
});

test('a call returns after the run that takes it past its budget, in time or in bytes of results', async () => {
  const steps = { lookupRun: activities.lookupRun, train: activities.train, distance: activities.distance };
  const input = (experimentId: string) => ({ experimentId, runs: packOf(experimentId, runs), data, force: true });
  const byTime = await trainPack(activityEnvironment(), input('budget-ms'), createTrainPack(steps, { ms: 0, bytes: Infinity }));
  assert.deepEqual(byTime.runs.map((r) => r.runId), [`budget-ms/${runs[0]!.name}`]);
  const one = JSON.stringify(byTime.runs[0]).length;
  const byBytes = await trainPack(activityEnvironment(), input('budget-bytes'), createTrainPack(steps, { ms: Infinity, bytes: 1.5 * one }));
  assert.equal(byBytes.runs.length, 2, 'the second run takes it past the bytes');
  assert.equal(byBytes.stoppedAt, undefined);
});

test('a retry finds the runs its earlier attempt trained as their own, not as reuses, also under force', async () => {
  // Seeds no other test trains, so no earlier training is recorded under their keys.
  const fresh = expandRuns(tinyExperiment({ seeds: [7, 8], training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } } }));
  const pack = packOf('retried', fresh);
  const first = await trainPack(activityEnvironment({ attempt: 1 }), { experimentId: 'retried', runs: pack, data, force: true });
  for (const force of [false, true]) {
    const again = await trainPack(activityEnvironment({ attempt: 2 }), { experimentId: 'retried', runs: pack, data, force });
    assert.deepEqual(again.runs.map((r) => r.reusedFrom), [undefined, undefined]);
    assert.deepEqual(again.runs.map((r) => r.train.final.sha256), first.runs.map((r) => r.train.final.sha256));
    assert.deepEqual(again.runs.map((r) => r.train.attempts.length), [1, 1], `force ${force}: found, not trained again`);
  }
  // Another experiment's run reuses them, unless forced.
  const other = packOf('other', fresh.slice(0, 1));
  const reused = await trainPack(activityEnvironment(), { experimentId: 'other', runs: other, data });
  assert.equal(reused.runs[0]!.reusedFrom, pack[0]!.runId);
  const forced = await trainPack(activityEnvironment(), { experimentId: 'other', runs: other, data, force: true });
  assert.equal(forced.runs[0]!.reusedFrom, undefined);
  assert.equal(forced.runs[0]!.train.runId, other[0]!.runId);
});

test('cancelled, it stops with the cancellation rather than returning what it has', async () => {
  const env = activityEnvironment();
  const long = runs.map((r) => ({ ...r, training: { ...r.training, epochs: 200 } }));
  const call = trainPack(env, { experimentId: 'cancelled', runs: packOf('cancelled', long), data });
  setTimeout(() => env.cancel(), 300);
  await assert.rejects(call, (err: Error) => err.name === 'CancelledFailure');
  assert.deepEqual(await store.list(`runs/cancelled/${long[1]!.name}/`), [], 'the second run never started');
});
