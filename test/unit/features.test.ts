/**
 * Features of small models with hand-set weights (ml/train/features.ts): every layer with parameters in
 * depth order, post-activation where an activation layer follows, batch norm on its running statistics,
 * dropout looked through, both pooling modes, the penultimate features, and no tensor left behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../ml/backend.js';
import type { Split } from '../../ml/data/datasets.js';
import { BatchNorm, SeededDropout } from '../../ml/models/layers.js';
import { buildMlpModel } from '../../ml/models/mlp.js';
import { featurePlan, modelFeatures, type LayerFeatures } from '../../ml/train/features.js';
import { modelToTensors, tensorsToModel } from '../../ml/train/weights.js';

await initBackend();

/** Sets the named weights (`layer/name` -> values); every weight of the model must be given. */
function setWeights(model: tfl.LayersModel, values: Record<string, number[]>): void {
  const tensors = modelToTensors(model).map((t) => {
    const v = values[`${t.layer}/${t.name}`];
    assert.ok(v, `test gives no values for ${t.layer}/${t.name}`);
    return { ...t, values: Float32Array.from(v) };
  });
  tensorsToModel(model, tensors);
}

function split(examples: number[][]): Split {
  return { x: Float32Array.from(examples.flat()), y: new Int32Array(examples.length), n: examples.length };
}

/** The matrix as rows, for readable comparisons. */
function rows(f: LayerFeatures): number[][] {
  const { values, rows: n, cols: d } = f.features;
  return Array.from({ length: n }, (_, i) => Array.from(values.subarray(i * d, (i + 1) * d)));
}

function assertClose(actual: number[][], expected: number[][], what: string, tol = 1e-4): void {
  assert.equal(actual.length, expected.length, `${what}: rows`);
  actual.forEach((row, i) => {
    assert.equal(row.length, expected[i]!.length, `${what}: columns of row ${i}`);
    row.forEach((v, j) => assert.ok(Math.abs(v - expected[i]![j]!) <= tol, `${what}[${i}][${j}]: expected ${expected[i]![j]}, found ${v}`));
  });
}

// MLP 2 -> 2 (relu) -> 2 on inputs [1, 2], [-1, 0], [0.5, -2]:
//   fc1 = relu(x W1 + b1), W1 = [[1, -1], [2, 0.5]], b1 = [0, 1]  -> [5, 1], [0, 2], [0, 0]
//   out = h W2 + b2,       W2 = [[1, 0], [0, -1]],  b2 = [0.5, 0] -> [5.5, -1], [0.5, -2], [0.5, 0]
function tinyMlp(hidden: number[]): tfl.LayersModel {
  return buildMlpModel({ hidden, activation: 'relu' }, { inputShape: [1, 2, 1], numClasses: 2 });
}
const mlpInputs = split([[1, 2], [-1, 0], [0.5, -2]]);

test('MLP: each dense layer after its built-in activation; the classifier reads the hidden layer', async () => {
  const model = tinyMlp([2]);
  setWeights(model, { 'fc1/kernel': [1, -1, 2, 0.5], 'fc1/bias': [0, 1], 'out/kernel': [1, 0, 0, -1], 'out/bias': [0.5, 0] });
  const f = await modelFeatures(model, mlpInputs);
  assert.deepEqual(f.layers.map((l) => [l.layer, l.depth, l.from]), [['fc1', 0, 'fc1'], ['out', 1, 'out']]);
  assertClose(rows(f.layers[0]!), [[5, 1], [0, 2], [0, 0]], 'fc1');
  assertClose(rows(f.layers[1]!), [[5.5, -1], [0.5, -2], [0.5, 0]], 'out');
  assert.equal(f.penultimate.layer, 'fc1');
  assert.equal(f.penultimate, f.layers[0], 'the penultimate features are the hidden layer\'s, not a copy');
  assert.ok(f.layers[0]!.features.values instanceof Float32Array);
  model.dispose();
});

test('a linear classifier: the penultimate features are its (flattened) input, an extra entry of depth -1', async () => {
  const model = tinyMlp([]);
  setWeights(model, { 'out/kernel': [1, 0, 0, -1], 'out/bias': [0, 0] });
  const f = await modelFeatures(model, mlpInputs);
  assert.deepEqual(f.layers.map((l) => l.layer), ['out']);
  assert.deepEqual([f.penultimate.layer, f.penultimate.depth], ['flatten', -1]);
  assertClose(rows(f.penultimate), [[1, 2], [-1, 0], [0.5, -2]], 'penultimate');
  assertClose(rows(f.layers[0]!), [[1, -2], [-1, 0], [0.5, 2]], 'out');
  model.dispose();
});

// conv (1x1, 2 filters: c0 = x, c1 = 0.5 - x) -> batch norm -> relu -> global average -> dense (identity)
// -> dropout -> dense (sum), on two 2x2 images [1, 2, 3, 4] and [0, -1, 2, -2].
function convModel(): tfl.LayersModel {
  const model = tfl.sequential({
    name: 'convtest',
    layers: [
      tfl.layers.conv2d({ name: 'conv', inputShape: [2, 2, 1], filters: 2, kernelSize: 1 }),
      new BatchNorm({ name: 'bn' }),
      tfl.layers.reLU({ name: 'relu' }),
      tfl.layers.globalAveragePooling2d({ name: 'gap' }),
      tfl.layers.dense({ name: 'hidden', units: 2 }),
      new SeededDropout({ name: 'drop', rate: 0.5 }),
      tfl.layers.dense({ name: 'out', units: 1 }),
    ],
  });
  setWeights(model, {
    'conv/kernel': [1, -1],
    'conv/bias': [0, 0.5],
    // Running statistics: channel 0 -> (x - 1) / 2 * 2 = x - 1, channel 1 -> x (up to epsilon 1e-5).
    'bn/gamma': [2, 1],
    'bn/beta': [0, 0],
    'bn/moving_mean': [1, 0],
    'bn/moving_variance': [4, 1],
    'hidden/kernel': [1, 0, 0, 1],
    'hidden/bias': [0, 0],
    'out/kernel': [1, 1],
    'out/bias': [0],
  });
  return model;
}
const images = split([[1, 2, 3, 4], [0, -1, 2, -2]]);

test('conv: raw output before batch norm, batch norm after its ReLU on running statistics, mean pooling', async () => {
  const model = convModel();
  assert.deepEqual(featurePlan(model), {
    layers: [
      { layer: 'conv', depth: 0, from: 'conv' },
      { layer: 'bn', depth: 1, from: 'relu' },
      { layer: 'hidden', depth: 2, from: 'hidden' },
      { layer: 'out', depth: 3, from: 'out' },
    ],
    penultimate: { layer: 'hidden', depth: 2, from: 'hidden' },
    classifier: 'out',
  });
  const f = await modelFeatures(model, images, { pool: 'mean', batchSize: 1 });
  // conv: c0 = [1, 2, 3, 4] and c1 = [-0.5, -1.5, -2.5, -3.5]; c0 = [0, -1, 2, -2] and c1 = [0.5, 1.5, -1.5, 2.5].
  assertClose(rows(f.layers[0]!), [[2.5, -2], [-0.25, 0.75]], 'conv');
  // relu(bn): [0, 1, 2, 3] and [0, 0, 0, 0]; [0, 0, 1, 0] and [0.5, 1.5, 0, 2.5].
  assertClose(rows(f.layers[1]!), [[1.5, 0], [0.25, 1.125]], 'bn');
  assertClose(rows(f.layers[2]!), [[1.5, 0], [0.25, 1.125]], 'hidden');
  assertClose(rows(f.layers[3]!), [[1.5], [1.375]], 'out');
  assert.equal(f.penultimate, f.layers[2], 'dropout is looked through: the classifier reads the hidden layer');
  model.dispose();
});

test('conv: flatten pooling keeps every position and channel in NHWC order', async () => {
  const model = convModel();
  const f = await modelFeatures(model, images, { pool: 'flatten' });
  assertClose(rows(f.layers[0]!), [[1, -0.5, 2, -1.5, 3, -2.5, 4, -3.5], [0, 0.5, -1, 1.5, 2, -1.5, -2, 2.5]], 'conv');
  assertClose(rows(f.layers[1]!), [[0, 0, 1, 0, 2, 0, 3, 0], [0, 0.5, 0, 1.5, 1, 0, 0, 2.5]], 'bn');
  assert.deepEqual(f.layers.map((l) => l.features.cols), [8, 8, 2, 1]);
  model.dispose();
});

test('a global pooling before the classifier: the penultimate features are the pooling output', async () => {
  const model = tfl.sequential({
    layers: [
      tfl.layers.conv2d({ name: 'conv', inputShape: [2, 2, 1], filters: 2, kernelSize: 1 }),
      tfl.layers.reLU({ name: 'relu' }),
      tfl.layers.globalAveragePooling2d({ name: 'gap' }),
      tfl.layers.dense({ name: 'out', units: 1 }),
    ],
  });
  setWeights(model, { 'conv/kernel': [1, -1], 'conv/bias': [0, 0.5], 'out/kernel': [1, -1], 'out/bias': [0] });
  const f = await modelFeatures(model, images);
  assert.deepEqual(f.layers.map((l) => [l.layer, l.from]), [['conv', 'relu'], ['out', 'out']]);
  assertClose(rows(f.layers[0]!), [[2.5, 0], [0.5, 1.125]], 'conv');
  assert.deepEqual([f.penultimate.layer, f.penultimate.depth], ['gap', -1]);
  assertClose(rows(f.penultimate), [[2.5, 0], [0.5, 1.125]], 'penultimate');
  assertClose(rows(f.layers[1]!), [[2.5], [-0.625]], 'out');
  model.dispose();
});

test('batching does not change the features, and no tensor is left behind', async () => {
  const model = convModel();
  const many = split(Array.from({ length: 7 }, (_, i) => [i, -i, i / 2, 3 - i]));
  const before = tf.memory().numTensors;
  const one = await modelFeatures(model, many, { batchSize: 1 });
  const three = await modelFeatures(model, many, { batchSize: 3, pool: 'flatten' });
  const all = await modelFeatures(model, many, { batchSize: 100 });
  assert.equal(tf.memory().numTensors, before, 'tensors left after computing features');
  one.layers.forEach((l, i) => assert.deepEqual(l.features, all.layers[i]!.features, `${l.layer}: batch 1 vs 100`));
  assert.equal(three.layers[0]!.features.rows, 7);
  model.dispose();
});

test('cancellation stops between batches; bad arguments are named', async () => {
  const model = convModel();
  const controller = new AbortController();
  controller.abort(new Error('stop'));
  await assert.rejects(modelFeatures(model, images, { signal: controller.signal }), /stop/);
  await assert.rejects(modelFeatures(model, images, { pool: 'max' as never }), /expected pool 'mean' or 'flatten', found "max"/);
  await assert.rejects(modelFeatures(model, { ...images, n: 3 }), /expected 3 examples of 4 values/);
  model.dispose();
});
