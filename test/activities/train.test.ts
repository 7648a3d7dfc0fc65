/**
 * The train activity in a MockActivityEnvironment on real data and a real local store: heartbeats carry
 * progress, and a retry after a cancelled attempt resumes from the last stored checkpoint and ends with
 * the weights of an uninterrupted run, also with early stopping (whose best epoch falls between snapshot
 * epochs), a schedule, normalisation and label noise; a diverging run returns as "diverged". The next
 * epoch trains while a checkpoint is written, and a failed write fails the attempt once nothing is in
 * flight. Two attempts of one run at once (a duplicate after a timeout) both end with the same weights.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { LocalStore } from '../../artifacts/local.js';
import type { ArtifactStore } from '../../artifacts/store.js';
import { snapshotFromArrow } from '../../artifacts/snapshot.js';
import { expandRuns, type RunSpec } from '../../config/grid.js';
import { createActivities } from '../../activities/index.js';
import { checkpointKey } from '../../activities/keys.js';
import type { Checkpoint, DownloadResult, TrainHeartbeat, TrainResult } from '../../activities/types.js';
import { requireFashionMnist, tempDir, tinyExperiment } from '../support/fixtures.js';
import { activityEnvironment, runIn } from '../support/logs.js';

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
  data = await runIn(activityEnvironment(), activities.download, { experimentId: 'e', runId: 'e/r', dataset: run.dataset });
});

/** The store with every call passed through `call` (whose `real` calls the store), by method and key. */
function storeThrough(call: (method: string, key: string, real: () => Promise<unknown>) => Promise<unknown>): ArtifactStore {
  return new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      const method = (value as (...a: unknown[]) => unknown).bind(target);
      if (prop === 'locate') return method;
      return (...args: unknown[]) => call(String(prop), String(args[0]), () => method(...args) as Promise<unknown>);
    },
  });
}

/** The store with its puts passed through `put` (which calls the real one), everything else as it is. */
function storeWithPut(put: (key: string, real: () => ReturnType<ArtifactStore['put']>) => ReturnType<ArtifactStore['put']>): ArtifactStore {
  return storeThrough((method, key, real) => (method === 'put' ? put(key, real as () => ReturnType<ArtifactStore['put']>) : real()));
}

async function weightsOf(result: TrainResult): Promise<string[]> {
  const snap = snapshotFromArrow(await store.get(result.final.key, { sha256: result.final.sha256 }));
  return snap.tensors.map((t) => `${t.layer}/${t.name}:${t.sha256}`);
}

/**
 * A first attempt of a training, cancelled at the first heartbeat for which `when` holds (by default
 * partway through epoch 2, once the epoch-1 checkpoint is stored); returns the last heartbeat it sent.
 */
async function cancelledAttempt(
  input: { experimentId: string; runId: string; run: RunSpec },
  when: (d: TrainHeartbeat) => boolean = (d) => d.checkpointEpoch === 1 && d.batch >= 3,
): Promise<TrainHeartbeat | undefined> {
  const first = activityEnvironment({ attempt: 1 });
  let lastBeat: TrainHeartbeat | undefined;
  first.on('heartbeat', (d: TrainHeartbeat) => {
    lastBeat = d;
    if (when(d)) first.cancel();
  });
  await assert.rejects(runIn(first, activities.train, { ...input, data }), (err: Error) => err.name === 'CancelledFailure');
  return lastBeat;
}

test('download stores each file under its sha256 and a second call fetches nothing', async () => {
  assert.equal(data.fetched, 4);
  const again = await runIn(activityEnvironment(), activities.download, { experimentId: 'e', runId: 'e/r', dataset: run.dataset });
  assert.equal(again.fetched, 0);
  assert.equal(again.cached, 4);
  assert.deepEqual(again.files.map((f) => f.sha256), data.files.map((f) => f.sha256));
});

test('heartbeats carry epoch, batch and the last stored checkpoint', async () => {
  const env = activityEnvironment();
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
  const lastBeat = await cancelledAttempt({ experimentId: 'retry', runId, run });
  assert.equal(lastBeat?.checkpointEpoch, 1);

  const second = activityEnvironment({ attempt: 2, heartbeatDetails: lastBeat });
  const resumed = await runIn(second, activities.train, { experimentId: 'retry', runId, run, data });
  assert.deepEqual(
    resumed.attempts.map((a) => [a.attempt, a.startedFromEpoch, a.resumed]),
    [
      [1, 0, false],
      [2, 1, true],
    ],
  );
  assert.deepEqual(resumed.history.map((h) => h.epoch), [0, 1, 2, 3]);

  const clean = await runIn(activityEnvironment(), activities.train, { experimentId: 'clean', runId: 'clean/run', run, data });
  assert.deepEqual(await weightsOf(resumed), await weightsOf(clean));
  assert.notDeepEqual(
    (await weightsOf(resumed)).slice(0, 1),
    snapshotFromArrow(await store.get(resumed.snapshots[0].key)).tensors.slice(0, 1).map((t) => `${t.layer}/${t.name}:${t.sha256}`),
    'training moved the weights',
  );
});

test('an attempt numbered 1 again (a local activity replayed after its worker died) records itself beside the first', async () => {
  const runId = 'replayed/run';
  const lastBeat = await cancelledAttempt({ experimentId: 'replayed', runId, run });
  assert.equal(lastBeat?.checkpointEpoch, 1);
  const again = await runIn(activityEnvironment({ attempt: 1 }), activities.train, { experimentId: 'replayed', runId, run, data });
  assert.deepEqual(
    again.attempts.map((a) => [a.attempt, a.activity, a.startedFromEpoch, a.resumed]),
    [
      [1, 'unknown', 0, false],
      [1, 'unknown', 1, true],
    ],
  );
  assert.deepEqual(await store.list(`runs/${runId}/attempts/`), [`runs/${runId}/attempts/attempt-0001.json`, `runs/${runId}/attempts/attempt-0002.json`]);
  assert.deepEqual(again.history.map((h) => h.epoch), [0, 1, 2, 3]);
});

test('SGD without momentum stores no optimizer state, and a retry still ends bit-identical; with momentum it stores the buffers', async () => {
  const sgd = (momentum: number) =>
    expandRuns(tinyExperiment({ training: { epochs: 3, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.05, momentum } } }))[0];
  const checkpoints = async (runId: string) =>
    Promise.all([0, 1, 2, 3].map(async (e) => JSON.parse(new TextDecoder().decode(await store.get(checkpointKey(runId, e)))) as Checkpoint));

  const lastBeat = await cancelledAttempt({ experimentId: 'sgd', runId: 'sgd/run', run: sgd(0) });
  const resumed = await runIn(activityEnvironment({ attempt: 2, heartbeatDetails: lastBeat }), activities.train, { experimentId: 'sgd', runId: 'sgd/run', run: sgd(0), data });
  assert.deepEqual(resumed.attempts.map((a) => a.startedFromEpoch), [0, 1]);
  const clean = await runIn(activityEnvironment(), activities.train, { experimentId: 'sgd', runId: 'sgd/clean', run: sgd(0), data });
  assert.deepEqual(await weightsOf(resumed), await weightsOf(clean));
  assert.deepEqual((await checkpoints('sgd/run')).map((cp) => cp.optimizer), [undefined, undefined, undefined, undefined]);

  await runIn(activityEnvironment(), activities.train, { experimentId: 'sgd', runId: 'sgd/momentum', run: sgd(0.9), data });
  for (const cp of await checkpoints('sgd/momentum')) {
    const state = snapshotFromArrow(await store.get(cp.optimizer!.key, { sha256: cp.optimizer!.sha256 }));
    assert.equal(state.tensors.length, state.tensors.filter((t) => t.name.includes('momentum')).length);
    assert.ok(state.tensors.length > 0, `expected momentum buffers at epoch ${cp.epoch}`);
  }
});

test('early stopping, a step schedule, normalisation and label noise: a retry ends bit-identical, final is the best epoch', async () => {
  const config = tinyExperiment({
    datasets: [{ ...run.dataset, normalize: 'per-channel', labelNoise: 0.2 }],
    training: {
      epochs: 6, batchSize: 32, snapshotEvery: 2,
      optimizer: { name: 'adam', learningRate: 0.003, weightDecay: 1e-4, schedule: { name: 'step', everyEpochs: 2, gamma: 0.5 } },
      init: { kernel: 'kaiming-uniform' },
      // minDelta makes the small late improvements not count, so the run stops between snapshot epochs.
      earlyStopping: { patience: 2, minDelta: 0.05 },
    },
  });
  const options = expandRuns(config)[0];
  // Epoch 2's checkpoint holds the early-stopping state; cancel partway through epoch 3.
  const lastBeat = await cancelledAttempt({ experimentId: 'opts', runId: 'opts/run', run: options }, (d) => d.checkpointEpoch === 2 && d.epoch === 3 && d.batch >= 3);
  const resumed = await runIn(activityEnvironment({ attempt: 2, heartbeatDetails: lastBeat }), activities.train, { experimentId: 'opts', runId: 'opts/run', run: options, data });
  assert.deepEqual(resumed.attempts.map((a) => a.startedFromEpoch), [0, 2]);
  const clean = await runIn(activityEnvironment(), activities.train, { experimentId: 'opts', runId: 'opts/clean', run: options, data });

  assert.deepEqual(await weightsOf(resumed), await weightsOf(clean));
  assert.deepEqual(resumed.history, clean.history.map((h, i) => ({ ...h, seconds: resumed.history[i]!.seconds })));
  assert.deepEqual([resumed.status, resumed.bestEpoch, resumed.stoppedAtEpoch], [clean.status, clean.bestEpoch, clean.stoppedAtEpoch]);

  // Replay the rule on the recorded validation losses: final holds the best trained epoch (the first
  // trained epoch is the first best; the initial weights never are), the stop comes `patience` epochs after it.
  const losses = clean.history.map((h) => h.valLoss);
  let best = 1;
  let wait = 0;
  let lastEpoch = 1;
  while (lastEpoch < 6 && wait < 2) {
    lastEpoch++;
    if (losses[lastEpoch]! < losses[best]! - 0.05) {
      best = lastEpoch;
      wait = 0;
    } else wait++;
  }
  assert.equal(clean.history.at(-1)!.epoch, lastEpoch);
  assert.equal(clean.bestEpoch, best);
  assert.equal(clean.final.epoch, best);
  // This run stops early (its validation loss stops falling by minDelta before epoch 6).
  assert.equal(lastEpoch < 6 ? 'stopped-early' : 'completed', 'stopped-early', `validation losses ${losses.join(', ')}`);
  assert.equal(clean.status, 'stopped-early');
  assert.equal(clean.stoppedAtEpoch, best + 2);
  const finalSnap = snapshotFromArrow(await store.get(clean.final.key, { sha256: clean.final.sha256 }));
  assert.equal(finalSnap.epoch, best);
  // Snapshots every 2 epochs and at the stop.
  assert.deepEqual(clean.snapshots.map((s) => s.epoch), [...new Set([0, 2, 4, 6].filter((e) => e <= lastEpoch).concat(lastEpoch))]);
  assert.deepEqual(clean.history.map((h) => h.learningRate).slice(1, 6), [0.003, 0.003, 0.0015, 0.0015, 0.00075].slice(0, lastEpoch));

  // The data record: one channel's training statistics, and the realised label noise.
  assert.equal(clean.data.normalization!.mean.length, 1);
  assert.ok(clean.data.normalization!.mean[0]! > 0.1 && clean.data.normalization!.std[0]! > 0.1);
  const noise = clean.data.labelNoise!;
  assert.equal(noise.replaced, Math.round(0.2 * 540));
  assert.ok(noise.changed <= noise.replaced && noise.realisedFraction === noise.changed / 540 && noise.changed > 0.7 * noise.replaced);
});

test('a diverging run returns status diverged with the epoch, its snapshots so far and finite test metrics', async () => {
  const diverging = expandRuns(tinyExperiment({ training: { epochs: 3, batchSize: 32, optimizer: { name: 'sgd', learningRate: 1e37, momentum: 0.9 } } }))[0];
  const result = await runIn(activityEnvironment(), activities.train, { experimentId: 'div', runId: 'div/run', run: diverging, data });
  assert.equal(result.status, 'diverged');
  assert.equal(result.divergedAtEpoch, 1);
  assert.deepEqual(result.snapshots.map((s) => s.epoch), [0]);
  assert.equal(result.final.epoch, 0);
  assert.deepEqual(result.history.map((h) => h.epoch), [0]);
  assert.ok(Number.isFinite(result.test.loss), `test loss of the last good weights: ${result.test.loss}`);
});

test('the next epoch trains while a checkpoint is written, and heartbeats count it stored only once it is', async () => {
  const runId = 'overlap/run';
  const env = activityEnvironment();
  const beats: TrainHeartbeat[] = [];
  let trainingOn!: () => void;
  const epochOneTraining = new Promise<void>((resolve) => (trainingOn = resolve));
  env.on('heartbeat', (d: TrainHeartbeat) => {
    beats.push(d);
    if (d.epoch === 1 && d.batch >= 3) trainingOn();
  });
  // The epoch-0 checkpoint's index is held until epoch 1 has trained three batches (or 20 s pass).
  let released: 'by training' | 'by timeout' | undefined;
  const slow = storeWithPut(async (key, real) => {
    if (key === checkpointKey(runId, 0)) {
      released = await Promise.race([epochOneTraining.then(() => 'by training' as const), new Promise<'by timeout'>((r) => setTimeout(() => r('by timeout'), 20_000).unref())]);
    }
    return real();
  });
  const result = await runIn(env, createActivities({ store: slow }).train, { experimentId: 'overlap', runId, run, data });
  assert.equal(released, 'by training', 'epoch 1 trained while the epoch-0 checkpoint was being written');
  assert.deepEqual(result.snapshots.map((s) => s.epoch), [0, 1, 2, 3]);
  const whileWriting = beats.filter((b) => b.epoch === 1 && b.batch >= 1 && b.batch <= 3);
  assert.ok(whileWriting.length > 0 && whileWriting.every((b) => b.checkpointEpoch === -1), 'a checkpoint being written is not reported as stored');
  assert.equal(beats.at(-1)!.checkpointEpoch, 3);
  // Trained as an attempt that waited for every write: the same weights as the uninterrupted run above.
  const plain = await runIn(activityEnvironment(), activities.train, { experimentId: 'overlap', runId: 'overlap/plain', run, data });
  assert.deepEqual(await weightsOf(result), await weightsOf(plain));
});

test('a fresh training lists its run once and reads back nothing it stored', async () => {
  // Every request is a round trip on S3: a sweep of tiny runs pays each one per run.
  const calls: string[] = [];
  const recording = storeThrough((method, key, real) => {
    calls.push(`${method} ${key}`);
    return real();
  });
  const runId = 'requests/r0';
  const result = await runIn(activityEnvironment(), createActivities({ store: recording }).train, { experimentId: 'requests', runId, run, data });
  assert.equal(result.snapshots.length, 4);
  assert.deepEqual(result.attempts.map((a) => [a.attempt, a.startedFromEpoch]), [[1, 0]]);
  const made = calls.filter((c) => !c.includes(' datasets/'));
  assert.deepEqual(made.filter((c) => !c.startsWith('put ')), [`list runs/${runId}/`]);
  // Per checkpoint: the weights, the optimizer state (Adam), their manifests, the index.
  assert.equal(made.length, 1 + 1 + 4 * 5);
});

test('a checkpoint write that fails fails the attempt, once no write of it is in flight', async () => {
  const runId = 'failing-write/run';
  let inFlight = 0;
  const failing = storeWithPut(async (key, real) => {
    inFlight++;
    try {
      if (key === checkpointKey(runId, 1)) {
        await new Promise((r) => setTimeout(r, 200));
        throw new Error('disk full (injected)');
      }
      return await real();
    } finally {
      inFlight--;
    }
  });
  await assert.rejects(
    runIn(activityEnvironment(), createActivities({ store: failing }).train, { experimentId: 'failing-write', runId, run, data }),
    (err: Error) => {
      assert.match(err.message, /disk full \(injected\)/);
      assert.equal(inFlight, 0, 'no put of the attempt is still running when it fails');
      return true;
    },
  );
  assert.ok(await store.head(checkpointKey(runId, 0)), 'the epoch-0 checkpoint is stored');
  assert.equal(await store.head(checkpointKey(runId, 1)), undefined, 'the failed one is not');
  assert.equal(await store.head(checkpointKey(runId, 2)), undefined, 'and nothing after it');
});

test('two attempts of one run at once (a duplicate after a heartbeat timeout) both end, with the same weights', async () => {
  const runId = 'duplicate/run';
  let met = 0;
  const counting = storeThrough(async (method, key, real) => {
    try {
      return await real();
    } catch (err) {
      if (method === 'put' && key.includes('/checkpoints/') && (err as Error).name === 'ObjectConflictError') met++;
      throw err;
    }
  });
  const train = createActivities({ store: counting }).train;
  const input = { experimentId: 'duplicate', runId, run, data };
  const [a, b] = await Promise.all([runIn(activityEnvironment({ attempt: 1 }), train, input), runIn(activityEnvironment({ attempt: 2 }), train, input)]);
  assert.ok(met > 0, "one attempt met a checkpoint the other had stored");
  assert.deepEqual(await weightsOf(a), await weightsOf(b));
  assert.deepEqual(a.snapshots, b.snapshots);
});

test('an attempt that meets a checkpoint of another training state gives way, retryably', async () => {
  const runId = 'diverged-duplicate/run';
  const key = checkpointKey(runId, 1);
  // Just before this attempt stores its epoch-1 checkpoint, "another attempt" stores one a step further on.
  const racing = new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (prop !== 'put') return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      return async (k: string, bytes: Uint8Array, opts?: object) => {
        if (k === key && !(await target.head(k))) {
          const theirs = JSON.parse(new TextDecoder().decode(bytes)) as Checkpoint;
          await target.put(k, new TextEncoder().encode(JSON.stringify({ ...theirs, step: theirs.step + 1 })));
        }
        return target.put(k, bytes, opts);
      };
    },
  });
  await assert.rejects(
    runIn(activityEnvironment(), createActivities({ store: racing }).train, { experimentId: 'diverged-duplicate', runId, run, data }),
    (err: Error & { nonRetryable?: boolean }) => {
      assert.match(err.message, new RegExp(`^${key}: another attempt of this run stored this epoch's checkpoint meanwhile, with another training state`));
      assert.notEqual(err.nonRetryable, true, 'Temporal retries it');
      return true;
    },
  );
  assert.equal(await store.head(checkpointKey(runId, 2)), undefined, 'the attempt stopped there');
});

test('init from a stored snapshot by key or by run and epoch: chosen layers are loaded, the rest seeded; a missing key fails for good', async () => {
  const one = expandRuns(tinyExperiment({ training: { epochs: 1, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.05 } } }))[0];
  const source = await runIn(activityEnvironment(), activities.train, { experimentId: 'src', runId: 'src/run', run: one, data });
  const tensorsAt = async (ref: { key: string }) => snapshotFromArrow(await store.get(ref.key)).tensors.map((t) => `${t.layer}/${t.name}:${t.sha256}`);
  const sourceWeights = await tensorsAt(source.final);

  const all = expandRuns(tinyExperiment({ training: { ...one.training, init: { from: { key: source.final.key, sha256: source.final.sha256 } } } }))[0];
  const loaded = await runIn(activityEnvironment(), activities.train, { experimentId: 'ft', runId: 'ft/all', run: all, data });
  assert.deepEqual(await tensorsAt(loaded.snapshots[0]!), sourceWeights, 'epoch 0 is the stored snapshot');

  const byRun = expandRuns(tinyExperiment({ training: { ...one.training, init: { from: { run: 'src/run', epoch: 1 } } } }))[0];
  const fromRun = await runIn(activityEnvironment(), activities.train, { experimentId: 'ft', runId: 'ft/by-run', run: byRun, data });
  assert.deepEqual(await tensorsAt(fromRun.snapshots[0]!), sourceWeights, 'by run and epoch: the same snapshot');
  const noEpoch = expandRuns(tinyExperiment({ training: { ...one.training, init: { from: { run: 'src/run', epoch: 7 } } } }))[0];
  await assert.rejects(
    runIn(activityEnvironment(), activities.train, { experimentId: 'ft', runId: 'ft/no-epoch', run: noEpoch, data }),
    /training\.init\.from: expected a checkpoint of run "src\/run" at epoch 7, found no object/,
  );

  const head = expandRuns(tinyExperiment({ training: { ...one.training, init: { from: { key: source.final.key, layers: ['fc1'] } } } }))[0];
  const partial = await runIn(activityEnvironment(), activities.train, { experimentId: 'ft', runId: 'ft/partial', run: head, data });
  const start = await tensorsAt(partial.snapshots[0]!);
  assert.deepEqual(start.filter((t) => t.startsWith('fc1/')), sourceWeights.filter((t) => t.startsWith('fc1/')));
  assert.notDeepEqual(start.filter((t) => t.startsWith('out/kernel')), sourceWeights.filter((t) => t.startsWith('out/kernel')));

  const missing = expandRuns(tinyExperiment({ training: { ...one.training, init: { from: { key: 'tensors/no/such.arrow' } } } }))[0];
  await assert.rejects(
    runIn(activityEnvironment(), activities.train, { experimentId: 'ft', runId: 'ft/missing', run: missing, data }),
    (err: Error & { type?: string; nonRetryable?: boolean }) =>
      err.type === 'InvalidExperiment' && err.nonRetryable === true && /training\.init\.from\.key: expected a stored snapshot, found no object at "tensors\/no\/such\.arrow"/.test(err.message),
  );
});

test('a freeze pattern that matches no layer fails for good, naming the field and the layers', async () => {
  const bad = expandRuns(tinyExperiment({ training: { epochs: 1, optimizer: { name: 'sgd', learningRate: 0.05 }, freeze: { layers: ['conv*'] } } }))[0];
  await assert.rejects(
    runIn(activityEnvironment(), activities.train, { experimentId: 'fz', runId: 'fz/run', run: bad, data }),
    (err: Error & { type?: string; nonRetryable?: boolean }) =>
      err.type === 'InvalidExperiment' && err.nonRetryable === true && /freeze\.layers: "conv\*" matches no layer of the model \(layers: flatten, fc1, out\)/.test(err.message),
  );
});
