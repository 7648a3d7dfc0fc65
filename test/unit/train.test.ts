/**
 * The training loop on a small real Fashion-MNIST subset: determinism (same seed, same bits), resuming
 * (1 epoch + 2 resumed == 3 epochs, bit for bit, for SGD with momentum and for Adam), learning (the
 * loss goes down), no leaked tensors, cancellation, and weight/optimizer state checks.
 *
 * Reads the Debian copy of Fashion-MNIST (package dataset-fashion-mnist, installed by `npm run setup`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs-core';
import type { NamedTensor } from '../../artifacts/snapshot.js';
import { initBackend } from '../../ml/backend.js';
import { decodeDataset, getDataset, type FileRole } from '../../ml/data/datasets.js';
import { seededSubset, take, trainValSplit } from '../../ml/data/split.js';
import { buildModel } from '../../ml/models/registry.js';
import { evaluate, train, type EpochMetrics, type TrainArgs, type TrainData, type TrainState } from '../../ml/train/loop.js';
import { createOptimizer } from '../../ml/train/optimizers.js';
import { modelToTensors, modelVariables, tensorsToModel } from '../../ml/train/weights.js';

const DATA_DIR = '/usr/share/datasets/fashion-mnist/';

await initBackend();

function loadFashionMnist() {
  const def = getDataset('fashion-mnist');
  const missing = def.files.filter((f) => !existsSync(DATA_DIR + f.name)).map((f) => f.name);
  if (missing.length > 0) {
    throw new Error(
      `Fashion-MNIST files missing from ${DATA_DIR}: ${missing.join(', ')}. ` +
        'Install the Debian package dataset-fashion-mnist (npm run setup does this where apt works).',
    );
  }
  const raw = Object.fromEntries(def.files.map((f) => [f.role, new Uint8Array(gunzipSync(readFileSync(DATA_DIR + f.name)))])) as Record<FileRole, Uint8Array>;
  return decodeDataset(def, raw);
}

const fashion = loadFashionMnist();

/** A seeded subset of n examples, a quarter of it held out for validation. */
function subset(n: number, seed = 1): TrainData {
  const sub = take(fashion.train, seededSubset(fashion.train.n, n, seed));
  const { train: tr, val } = trainValSplit(sub.n, 0.25, seed);
  return { train: take(sub, tr), val: take(sub, val), inputShape: [28, 28, 1], numClasses: 10 };
}

const small = subset(160);
const ctx = { inputShape: [28, 28, 1] as [number, number, number], numClasses: 10 };

interface Run { state: TrainState; history: EpochMetrics[]; epochs: TrainState[] }

async function run(
  modelName: string,
  overrides: Partial<TrainArgs> & Pick<TrainArgs, 'optimizer' | 'epochs'>,
  data: TrainData = small,
): Promise<Run> {
  const model = buildModel({ name: modelName, args: {} }, ctx);
  const epochs: TrainState[] = [];
  try {
    const result = await train({
      model, data, batchSize: 32, seed: 42,
      onEpoch: async (s) => { epochs.push(s); },
      ...overrides,
    });
    return { ...result, epochs };
  } finally {
    model.dispose();
  }
}

function assertSameTensors(a: NamedTensor[], b: NamedTensor[], what: string): void {
  assert.equal(a.length, b.length, `${what}: tensor count`);
  a.forEach((t, i) => {
    const u = b[i]!;
    assert.equal(`${t.layer}/${t.name}`, `${u.layer}/${u.name}`);
    assert.deepEqual(t.shape, u.shape);
    assert.ok(Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength).equals(
      Buffer.from(u.values.buffer, u.values.byteOffset, u.values.byteLength)), `${what}: ${t.layer}/${t.name} differs`);
  });
}

test('the same seed gives bit-identical weights; another seed does not (LeNet-5, SGD)', async () => {
  const opt = { name: 'sgd' as const, learningRate: 0.05, momentum: 0.9 };
  const a = await run('lenet5', { optimizer: opt, epochs: 2 });
  const b = await run('lenet5', { optimizer: opt, epochs: 2 });
  const c = await run('lenet5', { optimizer: opt, epochs: 2, seed: 43 });
  assertSameTensors(a.state.weights, b.state.weights, 'same seed');
  assert.deepEqual(a.history.map((m) => m.valLoss), b.history.map((m) => m.valLoss));
  const differs = a.state.weights.some((t, i) => !t.values.every((v, j) => v === c.state.weights[i]!.values[j]));
  assert.ok(differs, 'a different seed gave identical weights');
  // Training moved the weights away from the initial ones.
  assert.ok(a.epochs[0]!.weights.some((t, i) => !t.values.every((v, j) => v === a.state.weights[i]!.values[j])));
});

for (const optimizer of [
  { name: 'sgd' as const, learningRate: 0.05, momentum: 0.9 },
  { name: 'adam' as const, learningRate: 1e-3 },
]) {
  for (const model of ['mlp', 'lenet5']) {
    test(`3 epochs == 1 epoch + 2 resumed epochs, bit for bit (${model}, ${optimizer.name})`, async () => {
      const full = await run(model, { optimizer, epochs: 3 });
      const first = await run(model, { optimizer, epochs: 1 });
      assert.equal(first.state.epoch, 1);
      assert.ok(first.state.optimizer.length > 0, 'the optimizer exported no state');
      // A fresh model, so nothing carries over except the stored state.
      const resumed = await run(model, { optimizer, epochs: 3, resume: first.state });
      assert.deepEqual(resumed.epochs.map((s) => s.epoch), [2, 3], 'resuming must not call onEpoch for epoch 0 or 1');
      assert.equal(resumed.state.step, full.state.step);
      assertSameTensors(resumed.state.weights, full.state.weights, 'weights');
      assertSameTensors(resumed.state.optimizer, full.state.optimizer, 'optimizer state');
      assert.deepEqual(resumed.history.map((m) => m.valLoss), full.history.slice(2).map((m) => m.valLoss));
    });
  }
}

test('the loss decreases on real data (LeNet-5, Adam)', async () => {
  const r = await run('lenet5', { optimizer: { name: 'adam', learningRate: 2e-3 }, epochs: 3 }, subset(1024, 5));
  const [e0, , , e3] = r.history;
  assert.equal(r.history.length, 4);
  assert.equal(e0!.epoch, 0);
  assert.ok(e0!.valLoss > 2.0, `initial validation loss should be near ln 10, found ${e0!.valLoss}`);
  assert.ok(e3!.valLoss < e0!.valLoss - 0.7, `validation loss ${e0!.valLoss} -> ${e3!.valLoss}`);
  assert.ok(e3!.valAccuracy > 0.55, `validation accuracy after 3 epochs: ${e3!.valAccuracy}`);
  assert.ok(r.history[3]!.trainLoss < r.history[1]!.trainLoss);
});

test('train() leaves no tensor behind', async () => {
  const model = buildModel({ name: 'lenet5', args: {} }, ctx);
  const before = tf.memory().numTensors;
  await train({ model, data: small, epochs: 1, batchSize: 32, seed: 1, optimizer: { name: 'adam', learningRate: 1e-3 }, onEpoch: async () => {} });
  await train({ model, data: small, epochs: 1, batchSize: 32, seed: 1, optimizer: { name: 'sgd', learningRate: 0.1, momentum: 0.5 }, onEpoch: async () => {} });
  assert.equal(tf.memory().numTensors, before);
  model.dispose();
});

test('an aborted signal stops training between batches with its reason, leaking nothing', async () => {
  const model = buildModel({ name: 'mlp', args: {} }, ctx);
  const before = tf.memory().numTensors;
  const controller = new AbortController();
  let batches = 0;
  await assert.rejects(
    train({
      model, data: small, epochs: 3, batchSize: 16, seed: 1, optimizer: { name: 'adam', learningRate: 1e-3 },
      onEpoch: async () => {},
      onBatch: () => { batches++; if (batches === 2) controller.abort(new Error('stop now')); },
      signal: controller.signal,
    }),
    /stop now/,
  );
  assert.equal(batches, 2);
  assert.equal(tf.memory().numTensors, before);
  model.dispose();
});

test('resuming with another seed or mismatched state fails clearly', async () => {
  const first = await run('mlp', { optimizer: { name: 'adam', learningRate: 1e-3 }, epochs: 1 });
  await assert.rejects(run('mlp', { optimizer: { name: 'adam', learningRate: 1e-3 }, epochs: 2, seed: 7, resume: first.state }), /seed 42, but this run's seed is 7/);
  await assert.rejects(
    run('mlp', { optimizer: { name: 'sgd', learningRate: 0.1, momentum: 0.9 }, epochs: 2, resume: first.state }),
    /SGD state: expected 4 tensors .*found 9/,
  );
});

test('evaluate gives the loss and accuracy TensorFlow ops give on the same logits; NaN weights give a NaN loss', async () => {
  const model = buildModel({ name: 'lenet5', args: {} }, ctx);
  try {
    await train({ model, data: small, batchSize: 32, seed: 42, epochs: 3, optimizer: { name: 'adam', learningRate: 0.003 }, onEpoch: async () => undefined });
    const split = small.train; // 120 examples: batches of 50 leave a partial one
    const ours = await evaluate(model, split, 50);
    const [loss, hits] = tf.tidy(() => {
      const logits = model.predict(tf.tensor4d(split.x, [split.n, 28, 28, 1])) as tf.Tensor;
      const y = tf.tensor1d(split.y, 'int32');
      const xent = tf.neg(tf.sum(tf.mul(tf.oneHot(y, 10), tf.logSoftmax(logits)), -1));
      return [tf.mean(xent).dataSync()[0]!, tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), y), 'int32')).dataSync()[0]!];
    });
    assert.equal(ours.accuracy, hits / split.n);
    assert.ok(Math.abs(ours.loss - loss) <= 1e-6 * loss, `loss: evaluate ${ours.loss}, TensorFlow ops ${loss}`);
    assert.ok(ours.accuracy > 0.2 && ours.accuracy < 1, `a trained model, not a constant one: accuracy ${ours.accuracy}`);
    assert.deepEqual(await evaluate(model, { ...split, n: 0 }, 50), { loss: NaN, accuracy: NaN });
    tensorsToModel(model, modelToTensors(model).map((t) => ({ ...t, values: t.values.map(() => NaN) })));
    assert.ok(Number.isNaN((await evaluate(model, split, 50)).loss), 'a diverged model evaluates to a NaN loss');
  } finally {
    model.dispose();
  }
});

test('weights round-trip through named tensors; mismatches are named', () => {
  const a = buildModel({ name: 'mlp', args: { hidden: [8] } }, ctx);
  const b = buildModel({ name: 'mlp', args: { hidden: [8] } }, ctx);
  const ta = modelToTensors(a);
  tensorsToModel(b, ta);
  assertSameTensors(modelToTensors(b), ta, 'round trip');
  assert.throws(() => tensorsToModel(b, ta.slice(1)), /has 4 weights .*found 3 tensors/);
  const renamed = ta.map((t, i) => (i === 1 ? { ...t, name: 'beta' } : t));
  assert.throws(() => tensorsToModel(b, renamed), /weight 1 of model .*: expected fc1\/bias, found fc1\/beta/);
  const reshaped = ta.map((t, i) => (i === 0 ? { ...t, shape: [8, 784] } : t));
  assert.throws(() => tensorsToModel(b, reshaped), /fc1\/kernel: expected shape \[784, 8\], found \[8, 784\]/);
  a.dispose();
  b.dispose();
});

test('Adam state records its integer step count and restores it', () => {
  const model = buildModel({ name: 'mlp', args: { hidden: [4] } }, ctx);
  const params = modelVariables(model).filter((v) => v.trainable);
  const adam = createOptimizer({ name: 'adam', learningRate: 0.01 }, params);
  tf.tidy(() => {
    const grads = params.map((p) => tf.onesLike(p.variable));
    adam.apply(grads);
    adam.apply(grads);
  });
  const state = adam.state();
  assert.deepEqual(state.map((t) => `${t.layer}/${t.name}`).slice(0, 3), ['adam/step', 'fc1/kernel/m', 'fc1/bias/m']);
  assert.equal(state[0]!.values[0], 2);
  const other = createOptimizer({ name: 'adam', learningRate: 0.01 }, params);
  other.loadState(state);
  assertSameTensors(other.state(), state, 'adam state');
  adam.dispose();
  other.dispose();
  model.dispose();
});
