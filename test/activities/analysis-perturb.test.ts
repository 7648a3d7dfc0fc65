/**
 * The distance (table version 2), perturb, norms and reinit activities in a MockActivityEnvironment on
 * a tiny run trained on real Fashion-MNIST and a real local store: the new distance columns against an
 * independent count, a sign flip (every non-zero parameter changed, distance 2 |theta1|), a tiny offset,
 * seeded noise, a layer put back to its initial weights, a retraining from perturbed weights, and
 * re-initialisation robustness (one row per layer, the baseline being the run's own test metrics).
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { NORMS_TABLE, REINIT_TABLE } from '../../artifacts/analysis-tables.js';
import { LocalStore } from '../../artifacts/local.js';
import { readManifest } from '../../artifacts/manifest.js';
import { recordsFromArrow } from '../../artifacts/records.js';
import type { SnapshotRef } from '../../artifacts/refs.js';
import { snapshotFromArrow, snapshotToArrow, tensorSha256, type NamedTensor } from '../../artifacts/snapshot.js';
import { putContentAddressed } from '../../artifacts/store.js';
import { distanceTableFromArrow } from '../../artifacts/table.js';
import { expandRuns } from '../../config/grid.js';
import { createActivities } from '../../activities/index.js';
import { createDistance } from '../../activities/distance.js';
import { createNorms, createPerturb } from '../../activities/perturb.js';
import { createReinit, type ReinitHeartbeat } from '../../activities/reinit.js';
import type { DownloadResult, NormsInput, PerturbInput, TrainResult } from '../../activities/types.js';
import { closeIdleGraphSessions, idleGraphSessionCount } from '../../ml/graph/trainer.js';
import { selectBackend } from '../../ml/backend.js';
import { nativeTestGuard } from '../support/backends.js';
import { FASHION_MNIST_SOURCES, requireFashionMnist, tempDir, tinyExperiment } from '../support/fixtures.js';
import { activityEnvironment, runIn } from '../support/logs.js';

const native = nativeTestGuard('analysis-perturb.test');

const dataset = { name: 'fashion-mnist', subset: { train: 300, test: 200 }, sources: FASHION_MNIST_SOURCES };
const training = { epochs: 2, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.05, momentum: 0.9 } };
const run = expandRuns(tinyExperiment({ datasets: [dataset], training }))[0]!;

let store: LocalStore;
let data: DownloadResult;
let trained: TrainResult;
let theta1: NamedTensor[];
let theta0: NamedTensor[];
const producer = { experimentId: 'pt', runId: 'pt/run' };

async function tensorsOf(ref: SnapshotRef): Promise<NamedTensor[]> {
  return snapshotFromArrow(await store.get(ref.key, { sha256: ref.sha256 })).tensors;
}

const perturb = (input: Omit<PerturbInput, 'snapshot' | 'initial' | 'experimentId' | 'runId' | 'seed'> & { seed?: number }) =>
  runIn(activityEnvironment(), createPerturb({ store }), {
    ...producer,
    snapshot: trained.final,
    initial: trained.snapshots[0]!,
    seed: 4,
    ...input,
  });

const norms = (input: Omit<NormsInput, 'experimentId' | 'runId'>) => runIn(activityEnvironment(), createNorms({ store }), { ...producer, ...input });

before(async () => {
  requireFashionMnist();
  store = new LocalStore(await tempDir());
  const activities = createActivities({ store });
  data = await runIn(activityEnvironment(), activities.download, { ...producer, dataset: run.dataset });
  trained = await runIn(activityEnvironment(), activities.train, { ...producer, run, data });
  theta1 = await tensorsOf(trained.final);
  theta0 = await tensorsOf(trained.snapshots[0]!);
});

test('analyses.distance.layers "weights" measures the layers with a kernel only, depth counted over them', async () => {
  // conv -> batch norm -> dense, at epoch 0 and 1: each value moves by 1 in the conv, 10 in the batch norm, 2 in the dense layer.
  const at = (epoch: number): NamedTensor[] => [
    { layer: 'conv', name: 'kernel', shape: [2], values: Float32Array.of(1 + epoch, 2 + epoch) },
    { layer: 'conv', name: 'bias', shape: [1], values: Float32Array.of(epoch) },
    { layer: 'bn', name: 'gamma', shape: [1], values: Float32Array.of(1 + 10 * epoch) },
    { layer: 'bn', name: 'beta', shape: [1], values: Float32Array.of(10 * epoch) },
    { layer: 'bn', name: 'moving_mean', shape: [1], values: Float32Array.of(100 * epoch) },
    { layer: 'bn', name: 'moving_variance', shape: [1], values: Float32Array.of(1) },
    { layer: 'fc', name: 'kernel', shape: [1], values: Float32Array.of(2 * epoch) },
  ];
  const snapshots: SnapshotRef[] = [];
  for (const epoch of [0, 1]) {
    const ref = await putContentAddressed(store, 'tensors', snapshotToArrow({ runId: 'layers/run', epoch, step: epoch, kind: 'weights', tensors: at(epoch) }), '.arrow');
    snapshots.push({ ...ref, epoch, step: epoch });
  }
  const distance = createDistance({ store });
  const table = async (layers?: 'all' | 'weights') => {
    const result = await runIn(activityEnvironment(), distance, { experimentId: 'layers', runId: 'layers/run', snapshots, p: [1], ...(layers ? { layers } : {}) });
    return distanceTableFromArrow(await store.get(result.table.key)).filter((r) => r.epoch === 1 && r.against === 'init').map((r) => [r.layer, r.depth, r.params, r.distance]);
  };
  // All layers with parameters: the batch norm's gamma and beta (not its running statistics) at depth 1.
  assert.deepEqual(await table(), [['conv', 0, 3, 3], ['bn', 1, 2, 20], ['fc', 2, 1, 2], ['__model__', -1, 6, 25]]);
  assert.deepEqual(await table('all'), await table());
  // Weights only: conv and fc, at depths 0 and 1, and the whole-model row over them.
  assert.deepEqual(await table('weights'), [['conv', 0, 3, 3], ['fc', 1, 1, 2], ['__model__', -1, 4, 5]]);
});

test('the distance table holds the per-parameter mean, the relative change and the share changed', async () => {
  const distance = createDistance({ store });
  const result = await runIn(activityEnvironment(), distance, { ...producer, snapshots: trained.snapshots, p: [1, 2] });
  const rows = distanceTableFromArrow(await store.get(result.table.key, { sha256: result.table.sha256 }));
  assert.equal(result.rows, rows.length);
  // Independently: the first layer's kernel and bias, epoch 2 against init, p = 2.
  const fc1 = (ts: NamedTensor[]) => ts.filter((t) => t.layer === 'fc1');
  const [w2, w0] = [fc1(theta1), fc1(theta0)];
  let d2 = 0;
  let n2 = 0;
  let changed = 0;
  let params = 0;
  w2.forEach((t, j) =>
    t.values.forEach((v, i) => {
      const r = w0[j]!.values[i]!;
      d2 += (v - r) ** 2;
      n2 += r * r;
      changed += v !== r ? 1 : 0;
      params++;
    }),
  );
  const row = rows.find((r) => r.layer === 'fc1' && r.epoch === 2 && r.against === 'init' && r.p === '2')!;
  assert.equal(row.params, params);
  assert.ok(Math.abs(row.distance - Math.sqrt(d2)) <= 1e-9 * Math.sqrt(d2));
  assert.equal(row.meanDistance, row.distance / params);
  assert.ok(Math.abs(row.relative - Math.sqrt(d2) / Math.sqrt(n2)) <= 1e-9);
  assert.equal(row.changed, changed / params);
  assert.ok(row.changed > 0.5, 'training moved most of the first layer');
  // Epoch 0 against itself: nothing changed. p = 1 and p = 2 rows share the share changed.
  for (const r of rows.filter((r) => r.epoch === 0)) assert.deepEqual([r.distance, r.changed], [0, 0]);
  const p1 = rows.find((r) => r.layer === 'fc1' && r.epoch === 2 && r.against === 'init' && r.p === '1')!;
  assert.equal(p1.changed, row.changed);

  // A tolerance larger than any move counts nothing as changed.
  const loose = await runIn(activityEnvironment(), distance, { ...producer, snapshots: trained.snapshots, p: [1], changed: { atol: 1e3, rtol: 0 } });
  const looseRows = distanceTableFromArrow(await store.get(loose.table.key));
  assert.ok(looseRows.every((r) => r.changed === 0));
  assert.deepEqual((await readManifest(store, loose.table.sha256))!.attrs.changed, { atol: 1e3, rtol: 0 });
});

test('a sign flip changes every non-zero parameter and lands at distance 2 |theta1|', async () => {
  const result = await perturb({ perturbation: { kind: 'sign-flip' }, label: 'sign-flip' });
  const nonZero = theta1.reduce((n, t) => n + t.values.filter((v) => v !== 0).length, 0);
  assert.equal(result.changed, nonZero);
  const flipped = await tensorsOf(result.perturbed);
  assert.deepEqual(flipped.map((t) => `${t.layer}/${t.name}`), theta1.map((t) => `${t.layer}/${t.name}`));
  flipped.forEach((t, j) => assert.deepEqual(Array.from(t.values), Array.from(theta1[j]!.values, (v) => -v)));
  assert.deepEqual(result.perturbed.epoch, trained.final.epoch);
  const manifest = (await readManifest(store, result.perturbed.sha256))!;
  assert.equal(manifest.kind, 'perturbed-snapshot');
  assert.deepEqual(manifest.inputs.map((i) => i.sha256), [trained.final.sha256]);

  // Before any retraining (theta2 = the perturbed start): |theta1 - theta2| = 2 |theta1|, exactly.
  for (const p of [1, 2] as const) {
    const n = await norms({ label: 'sign-flip', original: trained.final, perturbed: result.perturbed, retrained: result.perturbed, p });
    const { rows, meta } = recordsFromArrow(NORMS_TABLE, await store.get(n.table.key, { sha256: n.table.sha256 }));
    assert.deepEqual(meta, { runId: producer.runId, label: 'sign-flip', p: String(p) });
    assert.deepEqual(rows.map((r) => [r.layer, r.depth]), [['fc1', 0], ['out', 1], ['__model__', -1]]);
    for (const r of rows) {
      assert.equal(r.distance, 2 * r.theta1, `${r.layer} p=${p}`);
      assert.equal(r.perturbed, r.theta1);
      assert.equal(r.relative, 2);
    }
    const model = rows.at(-1)!;
    assert.deepEqual(n.model, { theta1: model.theta1, perturbed: model.perturbed, theta2: model.theta2, distance: model.distance, relative: model.relative });
  }
});

test('retraining from the flipped weights: theta2 moves away from the start, and the norms say by how much', async () => {
  const flipped = await perturb({ perturbation: { kind: 'sign-flip' }, label: 'sign-flip' });
  const retrainRun = expandRuns(
    tinyExperiment({ datasets: [dataset], training: { ...training, epochs: 1, init: { from: { key: flipped.perturbed.key, sha256: flipped.perturbed.sha256 } } } }),
  )[0]!;
  const activities = createActivities({ store });
  const retrained = await runIn(activityEnvironment(), activities.train, { ...producer, runId: 'pt/run--sign-flip', run: retrainRun, data });
  const start = await tensorsOf(retrained.snapshots[0]!);
  assert.deepEqual(Array.from(start[0]!.values.subarray(0, 5)), Array.from(theta1[0]!.values.subarray(0, 5), (v) => -v), 'the retraining starts at the perturbed weights');
  const n = await norms({ label: 'sign-flip', original: trained.final, perturbed: flipped.perturbed, retrained: retrained.final, p: 2 });
  assert.ok(n.model.theta2 > 0 && n.model.theta2 !== n.model.perturbed, 'retraining moved the weights');
  assert.ok(n.model.distance > 0 && Number.isFinite(n.model.distance));
  assert.equal(n.model.relative, n.model.distance / n.model.theta1);
  const manifest = (await readManifest(store, n.table.sha256))!;
  assert.deepEqual(manifest.inputs.map((i) => i.sha256), [trained.final.sha256, flipped.perturbed.sha256, retrained.final.sha256]);
});

test('an offset of 1e-6 moves the weights by a tiny relative distance', async () => {
  const result = await perturb({ perturbation: { kind: 'offset', value: 1e-6 }, label: 'offset-1e-6' });
  const params = theta1.reduce((n, t) => n + t.values.length, 0);
  assert.ok(result.changed > 0.99 * params, `expected nearly every parameter changed; found ${result.changed} of ${params}`);
  const n = await norms({ label: 'offset-1e-6', original: trained.final, perturbed: result.perturbed, retrained: result.perturbed, p: 1 });
  assert.ok(n.model.relative > 0 && n.model.relative < 1e-4, `relative distance ${n.model.relative}`);
  // Per parameter, the distance is the offset up to float32 rounding.
  assert.ok(Math.abs(n.model.distance / params - 1e-6) < 1e-7, `mean move ${n.model.distance / params}`);
});

test('noise is the same for the same seed and label, another for another seed, of the given scale', async () => {
  const spec = { perturbation: { kind: 'noise' as const, scale: 0.01 }, label: 'noise-0-01' };
  const a = await perturb(spec);
  const b = await perturb(spec);
  const c = await perturb({ ...spec, seed: 5 });
  assert.equal(a.perturbed.sha256, b.perturbed.sha256);
  assert.notEqual(a.perturbed.sha256, c.perturbed.sha256);
  const noisy = await tensorsOf(a.perturbed);
  let sq = 0;
  let n = 0;
  noisy.forEach((t, j) => t.values.forEach((v, i) => { sq += (v - theta1[j]!.values[i]!) ** 2; n++; }));
  const std = Math.sqrt(sq / n);
  assert.ok(Math.abs(std - 0.01) < 0.001, `noise standard deviation ${std}, expected about 0.01`);
});

test('reinit-layer puts that layer back to its initial weights and leaves the others trained', async () => {
  const result = await perturb({ perturbation: { kind: 'reinit-layer', layer: 'fc1' }, label: 'reinit-fc1' });
  const out = await tensorsOf(result.perturbed);
  out.forEach((t, j) => {
    const expected = t.layer === 'fc1' ? theta0[j]! : theta1[j]!;
    assert.deepEqual(Array.from(t.values), Array.from(expected.values), `${t.layer}/${t.name}`);
  });
  const manifest = (await readManifest(store, result.perturbed.sha256))!;
  assert.deepEqual(manifest.inputs.map((i) => i.sha256), [trained.final.sha256, trained.snapshots[0]!.sha256]);

  await assert.rejects(perturb({ perturbation: { kind: 'reinit-layer', layer: 'conv*' }, label: 'reinit-conv' }), (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure);
    assert.equal(err.type, 'InvalidExperiment');
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /"conv\*" matches no layer of the snapshot \(layers: fc1, out\)/);
    return true;
  });
});

test('reinit robustness: one row per layer, the baseline is the run test metrics, heartbeats per layer', async () => {
  const reinit = createReinit({ store });
  const env = activityEnvironment();
  const beats: ReinitHeartbeat[] = [];
  env.on('heartbeat', (d: ReinitHeartbeat) => beats.push(d));
  const input = { ...producer, run, data, initial: trained.snapshots[0]!, final: trained.final };
  const result = await runIn(env, reinit, input);
  assert.deepEqual(result.baseline, trained.test);
  assert.deepEqual(result.layers.map((l) => [l.layer, l.depth]), [['fc1', 0], ['out', 1]]);
  for (const l of result.layers) assert.ok(l.accuracy >= 0 && l.accuracy <= 1 && Number.isFinite(l.loss));
  assert.ok(result.layers[0]!.accuracy < result.baseline.accuracy, 'a trained layer put back to its initial weights hurts');
  // A beat after each layer (timer beats repeat the latest progress, before the first layer with none done).
  const progress = beats.map((b) => b.done.length).filter((n, i, all) => n > 0 && n !== all[i - 1]);
  assert.deepEqual(progress, [1, 2]);
  assert.deepEqual(beats.at(-1)!.done, result.layers);
  const { rows, meta } = recordsFromArrow(REINIT_TABLE, await store.get(result.table.key, { sha256: result.table.sha256 }));
  assert.deepEqual(rows, result.layers);
  assert.deepEqual(meta, { runId: producer.runId, baselineLoss: String(trained.test.loss), baselineAccuracy: String(trained.test.accuracy) });

  // A retry skips the layers its heartbeat says are done (the marker value shows it was not recomputed).
  const marker = { layer: 'fc1', depth: 0, loss: 9, accuracy: 0.125 };
  const resumed = await runIn(activityEnvironment({ heartbeatDetails: { done: [marker], layers: 2 } }), reinit, input);
  assert.deepEqual(resumed.layers, [marker, result.layers[1]]);

  // Only the layers asked for; a pattern that matches nothing is bad input.
  const out = await runIn(activityEnvironment(), reinit, { ...input, layers: ['ou*'] });
  assert.deepEqual(out.layers, [result.layers[1]]);
  await assert.rejects(runIn(activityEnvironment(), reinit, { ...input, layers: ['conv1'] }), /"conv1" matches no layer with parameters \(layers: fc1, out\)/);

  // Cancelled after the first layer: ends as cancelled, not with a partial table.
  const cancelled = activityEnvironment();
  cancelled.on('heartbeat', (d: ReinitHeartbeat) => d.done.length > 0 && cancelled.cancel());
  await assert.rejects(runIn(cancelled, reinit, input), (err: Error) => err.name === 'CancelledFailure');
});

test('reinit robustness on the native backend evaluates in a graph session, to the cpu backend figures', { skip: native.skip }, async () => {
  native.assertBuilt();
  const input = { ...producer, run, data, initial: trained.snapshots[0]!, final: trained.final };
  try {
    const cpu = await runIn(activityEnvironment(), createReinit({ store }), input);
    closeIdleGraphSessions();
    const graph = await runIn(activityEnvironment(), createReinit({ store, backend: 'tensorflow' }), input);
    assert.equal(idleGraphSessionCount(), 1, 'the reinit activity evaluated in a graph session, which it left for reuse');
    assert.deepEqual(graph.layers.map((l) => l.layer), cpu.layers.map((l) => l.layer));
    for (const [a, b] of [[graph.baseline, cpu.baseline], ...graph.layers.map((l, i) => [l, cpu.layers[i]!] as const)] as const) {
      assert.ok(Math.abs(a.loss - b.loss) <= 1e-5 * b.loss, `loss: native ${a.loss}, cpu ${b.loss}`);
      assert.equal(a.accuracy, b.accuracy);
    }
  } finally {
    closeIdleGraphSessions();
    await selectBackend('cpu');
  }
});

test('distances count parameters only: batch-norm running statistics are left out', async () => {
  const bn = (gamma: number, mean: number): NamedTensor[] =>
    [
      ['gamma', gamma],
      ['beta', 0],
      ['moving_mean', mean],
      ['moving_variance', mean + 1],
    ].map(([name, v]) => {
      const values = new Float32Array(4).fill(v as number);
      return { layer: 'bn1', name: name as string, shape: [4], values, sha256: tensorSha256(values) };
    });
  const put = async (epoch: number, tensors: NamedTensor[]): Promise<SnapshotRef> => ({
    ...(await putContentAddressed(store, 'tensors', snapshotToArrow({ runId: 'pt/bn', epoch, step: epoch, kind: 'weights', tensors }), '.arrow')),
    epoch,
    step: epoch,
  });
  // Only the running statistics move between epoch 0 and 1; gamma moves by 1 between 1 and 2.
  const snapshots = [await put(0, bn(1, 0)), await put(1, bn(1, 5)), await put(2, bn(2, 9))];
  const result = await runIn(activityEnvironment(), createDistance({ store }), { ...producer, runId: 'pt/bn', snapshots, p: [1] });
  const rows = distanceTableFromArrow(await store.get(result.table.key)).filter((r) => r.against === 'init' && r.layer === 'bn1');
  assert.deepEqual(rows.map((r) => [r.epoch, r.params, r.distance, r.changed]), [
    [0, 8, 0, 0],
    [1, 8, 0, 0],
    [2, 8, 4, 0.5],
  ]);
});
