/**
 * The probe-set analyses on real Fashion-MNIST and a real local store, in MockActivityEnvironments:
 * two LeNet-5 runs of different seeds trained for one epoch on a small subset, then features ->
 * correlation -> compare. Checks the shapes, that the features are the model's own activations, that
 * every run shares one probe object, CKA of a run with itself, the stored tables and lineage, and that
 * features of different probe sets, unknown layers and cancellation fail as they should.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { ApplicationFailure } from '@temporalio/common';
import { CKA_TABLE, CORRELATION_TABLE } from '../../artifacts/analysis-tables.js';
import { featuresFromArrow, probeFromArrow } from '../../artifacts/features.js';
import { LocalStore } from '../../artifacts/local.js';
import { readManifest } from '../../artifacts/manifest.js';
import { recordsFromArrow } from '../../artifacts/records.js';
import { snapshotFromArrow } from '../../artifacts/snapshot.js';
import { expandRuns, type RunSpec } from '../../config/grid.js';
import { createCompare, createCompareBatch } from '../../activities/compare.js';
import { createCorrelation } from '../../activities/correlation.js';
import { DATA_SEED, loadRunData } from '../../activities/data.js';
import { createDownload } from '../../activities/download.js';
import { createFeatures, type FeaturesHeartbeat } from '../../activities/features.js';
import { createPutRunResult, loadCompareOutcomes } from '../../activities/results.js';
import { createTrain } from '../../activities/train.js';
import type { CompareInput, DownloadResult, FeaturesResult, TrainResult } from '../../activities/types.js';
import { seededSubset, take } from '../../ml/data/split.js';
import { buildModel } from '../../ml/models/registry.js';
import { tensorsToModel } from '../../ml/train/weights.js';
import type { RunResult } from '../../workflows/types.js';
import { FASHION_MNIST_SOURCES, requireFashionMnist, tempDir, tinyExperiment } from '../support/fixtures.js';
import { activityEnvironment, runIn } from '../support/logs.js';

const mock = () => activityEnvironment();

const config = (probeSize: number) =>
  tinyExperiment({
    models: [{ name: 'lenet5', args: {} }],
    datasets: [{ name: 'fashion-mnist', subset: { train: 300, test: 200 }, sources: FASHION_MNIST_SOURCES }],
    seeds: [0, 1],
    training: { epochs: 1, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.05, momentum: 0.9 } },
    analyses: { probe: { size: probeSize } },
  });
const [runA, runB] = expandRuns(config(100)) as [RunSpec, RunSpec];

let store: LocalStore;
let data: DownloadResult;
let features: ReturnType<typeof createFeatures>;
let correlation: ReturnType<typeof createCorrelation>;
let compare: ReturnType<typeof createCompare>;
const trained: TrainResult[] = [];
const feats: FeaturesResult[] = [];

before(async () => {
  requireFashionMnist();
  store = new LocalStore(await tempDir());
  features = createFeatures({ store });
  correlation = createCorrelation({ store });
  compare = createCompare({ store });
  data = await runIn(mock(), createDownload({ store }), { experimentId: 'e', runId: 'e/download', dataset: runA.dataset });
  const train = createTrain({ store });
  for (const run of [runA, runB]) {
    const result = await runIn(mock(), train, { experimentId: 'e', runId: `e/${run.name}`, run, data });
    trained.push(result);
    feats.push(await runIn(mock(), features, { experimentId: 'e', runId: `e/${run.name}`, run, data, snapshot: result.final }));
  }
});

const pair = (a: FeaturesResult, b: FeaturesResult, layers?: string[]): CompareInput => ({
  experimentId: 'e',
  runId: 'e',
  a: { runId: `e/${runA.name}`, name: runA.name, features: a },
  b: { runId: `e/${runB.name}`, name: runB.name, features: b },
  ...(layers ? { layers } : {}),
});

function isPermanent(err: unknown, message: RegExp): boolean {
  assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, found ${String(err)}`);
  assert.equal(err.nonRetryable, true);
  assert.equal(err.type, 'InvalidExperiment');
  assert.match(err.message, message);
  return true;
}

test('features: every layer with parameters by depth, pooled; the classifier input; 100 probe examples', async () => {
  const f = feats[0]!;
  assert.equal(f.examples, 100);
  assert.deepEqual(f.layers, [
    { layer: 'conv1', depth: 0, features: 6 },
    { layer: 'conv2', depth: 1, features: 16 },
    { layer: 'fc1', depth: 2, features: 120 },
    { layer: 'fc2', depth: 3, features: 84 },
    { layer: 'fc3', depth: 4, features: 10 },
  ]);
  assert.equal(f.penultimate, 'fc2');
  assert.deepEqual(f.snapshot, trained[0]!.final);
  const file = featuresFromArrow(await store.get(f.features.key, { sha256: f.features.sha256 }));
  assert.equal(file.probe, f.probe.sha256);
  assert.equal(file.labels.length, 100);
  assert.deepEqual(file.layers.map((l) => [l.layer, l.features.rows, l.features.cols]), f.layers.map((l) => [l.layer, 100, l.features]));
  assert.equal(file.penultimate, file.layers[3]);
});

test('the probe set: one object for every run, a seeded subset of the test split inside the run\'s test subset', async () => {
  assert.deepEqual(feats[1]!.probe, feats[0]!.probe);
  const probe = probeFromArrow(await store.get(feats[0]!.probe.key, { sha256: feats[0]!.probe.sha256 }));
  assert.deepEqual([probe.dataset, probe.dataSeed, probe.testExamples, probe.indices.length], ['fashion-mnist', DATA_SEED, 10_000, 100]);
  assert.deepEqual(probe.indices, seededSubset(10_000, 100, DATA_SEED));
  const testSubset = new Set(seededSubset(10_000, 200, DATA_SEED));
  assert.ok(Array.from(probe.indices).every((i) => testSubset.has(i)), 'probe examples are among the run\'s test examples');
  const file = featuresFromArrow(await store.get(feats[0]!.features.key));
  assert.deepEqual(file.labels, Float32Array.from(probe.labels));
  assert.ok(new Set(probe.labels).size > 5, 'the probe holds many classes');
});

test('the features are the model\'s activations: the last layer\'s equal the logits of model.predict', async () => {
  const full = await loadRunData(store, { ...runA.dataset, subset: { train: 300 } }, data);
  const probe = probeFromArrow(await store.get(feats[0]!.probe.key));
  const x = take(full.test, probe.indices);
  const model = buildModel(runA.model, { inputShape: full.def.inputShape, numClasses: 10 }) as tfl.LayersModel;
  tensorsToModel(model, snapshotFromArrow(await store.get(trained[0]!.final.key)).tensors);
  const logits = tf.tidy(() => (model.predict(tf.tensor4d(x.x, [x.n, 28, 28, 1])) as tf.Tensor).dataSync() as Float32Array);
  model.dispose();
  const file = featuresFromArrow(await store.get(feats[0]!.features.key));
  const fc3 = file.layers[4]!.features.values;
  assert.equal(fc3.length, logits.length);
  const worst = fc3.reduce((m, v, i) => Math.max(m, Math.abs(v - logits[i]!)), 0);
  assert.ok(worst < 1e-4, `features of fc3 differ from the logits by up to ${worst}`);
  assert.ok(fc3.some((v) => v !== 0));
});

test('correlation: a histogram of r for the penultimate layer, stored with its summary and lineage', async () => {
  const r = await runIn(mock(), correlation, { experimentId: 'e', runId: `e/${runA.name}`, features: feats[0]!, spec: { layer: 'penultimate', bins: 20 } });
  assert.equal(r.layer, 'fc2');
  assert.equal(r.features, 84);
  assert.ok(r.meanAbs > 0 && r.meanAbs < 1, `mean |r| ${r.meanAbs}`);
  const { rows, meta } = recordsFromArrow(CORRELATION_TABLE, await store.get(r.table.key, { sha256: r.table.sha256 }));
  assert.equal(rows.length, 20);
  assert.equal(rows[0]!.binStart, -1);
  assert.equal(rows.at(-1)!.binEnd, 1);
  const usable = 84 - r.constant;
  assert.equal(rows.reduce((s, row) => s + row.count, 0), (usable * (usable - 1)) / 2, 'every pair of non-constant features is in a bin');
  assert.deepEqual([meta['runId'], meta['layer'], Number(meta['meanAbs']), Number(meta['features']), Number(meta['constant'])], [`e/${runA.name}`, 'fc2', r.meanAbs, 84, r.constant]);
  const manifest = await readManifest(store, r.table.sha256);
  assert.ok(manifest, 'the correlation table has a lineage manifest');
  assert.deepEqual(manifest.inputs.map((i) => i.sha256), [feats[0]!.features.sha256, feats[0]!.probe.sha256]);
  // A convolution layer, by name.
  const conv = await runIn(mock(), correlation, { experimentId: 'e', runId: `e/${runA.name}`, features: feats[0]!, spec: { layer: 'conv2', bins: 10 } });
  assert.equal(conv.features, 16);
  await assert.rejects(
    runIn(mock(), correlation, { experimentId: 'e', runId: 'e/x', features: feats[0]!, spec: { layer: 'fc9', bins: 10 } }),
    (err) => isPermanent(err, /expected "penultimate" or one of conv1, conv2, fc1, fc2, fc3; found "fc9"/),
  );
});

test('compare of a run with itself: CKA 1 on the diagonal and mean |r| of its penultimate features with themselves', async () => {
  const self = await runIn(mock(), compare, pair(feats[0]!, feats[0]!));
  assert.deepEqual(self.diagonal.map((d) => d.layer), ['conv1', 'conv2', 'fc1', 'fc2', 'fc3']);
  for (const d of self.diagonal) assert.ok(Math.abs(d.cka - 1) < 1e-9, `CKA of ${d.layer} with itself: ${d.cka}`);
  const { rows } = recordsFromArrow(CKA_TABLE, await store.get(self.table.key));
  assert.equal(rows.length, 25);
  // Same features on both sides: the cross-correlation matrix is the Pearson matrix, diagonal included.
  const within = await runIn(mock(), correlation, { experimentId: 'e', runId: 'e/x', features: feats[0]!, spec: { layer: 'penultimate', bins: 20 } });
  assert.ok(self.penultimateMeanAbs > within.meanAbs, 'the 1s of the diagonal raise the mean');
  // Each feature with itself: the matched correlation is 1 (features constant over the probe are left out).
  assert.ok(Math.abs(self.penultimateMatched! - 1) < 1e-9, `matched r of a run with itself: ${self.penultimateMatched}`);
  // The signed mean, recorded beside mean |r| in the result and the table.
  assert.ok(Number.isFinite(within.mean) && Math.abs(within.mean!) <= within.meanAbs + 1e-12, `mean r ${within.mean}, mean |r| ${within.meanAbs}`);
  assert.equal(recordsFromArrow(CORRELATION_TABLE, await store.get(within.table.key)).meta['mean'], String(within.mean));
});

test('compare of two seeds: every pair of layers, a diagonal below 1, metadata and lineage; a layer filter', async () => {
  const c = await runIn(mock(), compare, pair(feats[0]!, feats[1]!));
  assert.equal(c.a, runA.name);
  assert.equal(c.b, runB.name);
  const { rows, meta } = recordsFromArrow(CKA_TABLE, await store.get(c.table.key, { sha256: c.table.sha256 }));
  assert.equal(rows.length, 25);
  assert.deepEqual(rows.slice(0, 2).map((r) => [r.layerA, r.depthA, r.layerB, r.depthB]), [['conv1', 0, 'conv1', 0], ['conv1', 0, 'conv2', 1]]);
  assert.ok(rows.every((r) => r.cka >= 0 && r.cka <= 1 + 1e-12), 'CKA in [0, 1]');
  assert.equal(c.diagonal.length, 5);
  assert.ok(c.diagonal.some((d) => d.cka < 0.999), 'different seeds give different representations');
  assert.ok(c.diagonal.every((d) => d.cka > 0.1), 'but related ones, after training on the same data');
  assert.deepEqual([meta['runA'], meta['runB']], [`e/${runA.name}`, `e/${runB.name}`]);
  assert.ok(c.penultimateMeanAbs > 0 && c.penultimateMeanAbs < 1);
  assert.ok(c.penultimateMatched! > -1 && c.penultimateMatched! < 1, `matched r of two seeds: ${c.penultimateMatched}`);
  assert.equal(meta['penultimateMatched'], String(c.penultimateMatched));
  const manifest = await readManifest(store, c.table.sha256);
  assert.deepEqual(manifest?.inputs.map((i) => i.sha256), [feats[0]!.features.sha256, feats[1]!.features.sha256, feats[0]!.probe.sha256]);

  const fc = await runIn(mock(), compare, pair(feats[0]!, feats[1]!, ['fc*']));
  assert.deepEqual(fc.diagonal.map((d) => [d.layer, d.depth]), [['fc1', 2], ['fc2', 3], ['fc3', 4]]);
  assert.equal(recordsFromArrow(CKA_TABLE, await store.get(fc.table.key)).rows.length, 9);
  await assert.rejects(runIn(mock(), compare, pair(feats[0]!, feats[1]!, ['dense*'])), (err) => isPermanent(err, /\[dense\*\] to match layers/));
});

test('features of another probe set: compare fails for good, naming both runs', async () => {
  const small = { ...runA, analyses: expandRuns(config(50))[0]!.analyses };
  const other = await runIn(mock(), features, { experimentId: 'e', runId: `e/${runA.name}`, run: small, data, snapshot: trained[0]!.final });
  assert.equal(other.examples, 50);
  assert.notEqual(other.probe.sha256, feats[1]!.probe.sha256);
  await assert.rejects(
    runIn(mock(), compare, pair(other, feats[1]!)),
    (err) => isPermanent(err, new RegExp(`${runA.name} .*and ${runB.name} .*same probe set; found probe ${other.probe.sha256} and probe ${feats[1]!.probe.sha256}`)),
  );
  // A result whose refs were edited to agree still fails on the files themselves.
  await assert.rejects(runIn(mock(), compare, pair({ ...other, probe: feats[1]!.probe }, feats[1]!)), (err) => isPermanent(err, /same probe set/));
});

test('compareBatch: each pair as compare gives it, each features file read once, pairs it cannot compare recorded', async () => {
  const small = { ...runA, analyses: expandRuns(config(50))[0]!.analyses };
  const other = await runIn(mock(), features, { experimentId: 'e', runId: `e/${runA.name}`, run: small, data, snapshot: trained[0]!.final });
  // A run whose result is in the store, read by the batch.
  const resultRef = await runIn(mock(), createPutRunResult({ store }), { experimentId: 'e', runId: 'e', result: { analyses: { features: feats[1]! } } as RunResult });
  const reads = new Map<string, number>();
  const counting = Object.create(store, {
    get: { value: (key: string, opts?: object) => (reads.set(key, (reads.get(key) ?? 0) + 1), store.get(key, opts)) },
  }) as LocalStore;
  const runs = [
    { name: runA.name, runId: `e/${runA.name}`, features: feats[0]! },
    { name: runB.name, runId: `e/${runB.name}`, resultRef },
    { name: 'failed', runId: 'e/failed' },
    { name: 'small-probe', runId: 'e/small-probe', features: other },
  ];
  const pairs: Array<[number, number]> = [[0, 1], [1, 0], [0, 2], [0, 3], [1, 1]];
  const batch = await runIn(mock(), createCompareBatch({ store: counting }), { experimentId: 'e', runId: 'e', runs, pairs });
  assert.deepEqual([batch.pairs, batch.failed], [5, 2]);
  assert.deepEqual(batch.errors.map((e) => [e.a, e.b]), [[runA.name, 'failed'], [runA.name, 'small-probe']]);
  assert.match(batch.errors[0]!.message, /failed has no probe features/);
  assert.match(batch.errors[1]!.message, /same probe set/);

  const outcomes = await loadCompareOutcomes(store, [batch]);
  assert.deepEqual(outcomes.map((o) => ('compared' in o ? 'compared' : 'error')), ['compared', 'compared', 'error', 'error', 'compared']);
  const one = await runIn(mock(), compare, pair(feats[0]!, feats[1]!));
  assert.deepEqual(outcomes[0], { compared: one });
  const self = outcomes[4] && 'compared' in outcomes[4] ? outcomes[4].compared.diagonal.map((d) => d.cka) : [];
  assert.ok(self.length === one.diagonal.length && self.every((c) => Math.abs(c - 1) < 1e-9), `CKA of a run with itself: ${self.join(', ')}`);
  // Each features file once, however many pairs it is in; the stored result once.
  assert.deepEqual([reads.get(feats[0]!.features.key), reads.get(feats[1]!.features.key), reads.get(resultRef.key)], [1, 1, 1]);

  // A read that may succeed on retry fails the batch (to be retried) rather than being recorded as a pair's error.
  const flaky = Object.create(store, {
    get: { value: (key: string, opts?: object) => (key === feats[1]!.features.key ? Promise.reject(new Error('connection reset')) : store.get(key, opts)) },
  }) as LocalStore;
  await assert.rejects(runIn(mock(), createCompareBatch({ store: flaky }), { experimentId: 'e', runId: 'e', runs, pairs }), (err) => {
    assert.ok(!(err instanceof ApplicationFailure && err.nonRetryable), `expected a failure to retry, found ${String(err)}`);
    return true;
  });
});

test('features: lineage names the snapshot, the dataset files and the probe; heartbeats; cancellation', async () => {
  const manifest = await readManifest(store, feats[0]!.features.sha256);
  assert.ok(manifest, 'the features file has a lineage manifest');
  assert.equal(manifest.kind, 'features');
  assert.deepEqual(manifest.inputs.map((i) => i.sha256), [trained[0]!.final.sha256, ...data.files.map((f) => f.sha256), feats[0]!.probe.sha256]);
  assert.equal((await readManifest(store, feats[0]!.probe.sha256))?.kind, 'probe-set');

  const env = mock();
  const beats: FeaturesHeartbeat[] = [];
  env.on('heartbeat', (d: FeaturesHeartbeat) => {
    beats.push(d);
    if (d.stage === 'features' && d.done > 0) env.cancel();
  });
  await assert.rejects(
    runIn(env, features, { experimentId: 'e', runId: `e/${runB.name}`, run: runB, data, snapshot: trained[1]!.final }),
    (err: Error) => err.name === 'CancelledFailure',
  );
  // The timer may repeat a beat; what matters is that no batch ran after the cancellation.
  const batches = new Set(beats.filter((b) => b.stage === 'features' && b.done > 0).map((b) => `${b.done}/${b.total}`));
  assert.deepEqual([...batches], ['32/100']);
});
