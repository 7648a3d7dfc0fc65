/**
 * Same seed, same backend, same bits on 'wasm': two trainings of LeNet-5 (convolutions, average pooling,
 * dense layers) and of a small ResNet (batch norm, strided convolutions, shortcuts) from one seed end
 * with bit-identical weights and validation losses, and a different seed ends elsewhere. This holds
 * because the wasm backend runs on one thread under Node and every kernel on it, ours included
 * (ml/backends/wasm.ts), is a deterministic function of its inputs.
 *
 * Synthetic data (a seeded pattern per class), so the test needs no dataset on disk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import type { NamedTensor } from '../../artifacts/snapshot.js';
import { WASM_BACKEND, initWasmBackend } from '../../ml/backends/wasm.js';
import type { Split } from '../../ml/data/datasets.js';
import { buildModel } from '../../ml/models/registry.js';
import { train, type TrainData } from '../../ml/train/loop.js';
import { Rng } from '../../ml/rng.js';

await initWasmBackend();

/** n examples of shape `shape`: class k is a fixed random image for k plus noise, so the models can learn. */
function synthetic(n: number, shape: [number, number, number], classes: number, seed: number): Split {
  const rng = new Rng(seed);
  const size = shape[0] * shape[1] * shape[2];
  const prototypes = Array.from({ length: classes }, () => Float32Array.from({ length: size }, () => rng.next()));
  const x = new Float32Array(n * size);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % classes;
    for (let j = 0; j < size; j++) x[i * size + j] = 0.7 * prototypes[y[i]!]![j]! + 0.3 * rng.next();
  }
  return { x, y, n };
}

const MODELS = [
  { label: 'LeNet-5', spec: { name: 'lenet5', args: {} }, inputShape: [28, 28, 1] as [number, number, number] },
  {
    label: 'ResNet with batch norm',
    spec: {
      name: 'resnet',
      args: {
        preset: 'resnet18', block: 'basic', blocks: [1, 1], width: 8, growth: 'constant', strides: [1, 2],
        stem: { filters: 8, kernelSize: 3, strides: 1, maxPool: false }, batchNorm: true, activation: 'relu',
      },
    },
    inputShape: [16, 16, 3] as [number, number, number],
  },
];

function weightsEqual(a: NamedTensor[], b: NamedTensor[]): string | undefined {
  assert.equal(a.length, b.length, 'tensor count');
  for (let i = 0; i < a.length; i++) {
    const [t, u] = [a[i]!, b[i]!];
    assert.equal(`${t.layer}/${t.name}`, `${u.layer}/${u.name}`);
    const same = Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength).equals(Buffer.from(u.values.buffer, u.values.byteOffset, u.values.byteLength));
    if (!same) return `${t.layer}/${t.name}`;
  }
  return undefined;
}

for (const m of MODELS) {
  test(`the same seed gives bit-identical weights on wasm; another seed does not (${m.label})`, async () => {
    const data: TrainData = { train: synthetic(96, m.inputShape, 10, 1), val: synthetic(32, m.inputShape, 10, 2), inputShape: m.inputShape, numClasses: 10 };
    const run = async (seed: number) => {
      const model = buildModel(m.spec, { inputShape: m.inputShape, numClasses: 10 });
      try {
        return await train({ model, data, epochs: 2, batchSize: 32, seed, optimizer: { name: 'sgd', learningRate: 0.05, momentum: 0.9 }, onEpoch: async () => {} });
      } finally {
        model.dispose();
      }
    };
    const before = tf.memory().numTensors;
    const a = await run(7);
    const b = await run(7);
    const c = await run(8);
    assert.equal(tf.getBackend(), WASM_BACKEND);
    assert.equal(weightsEqual(a.state.weights, b.state.weights), undefined, 'same seed: a weight differs');
    assert.deepEqual(a.history.map((h) => h.valLoss), b.history.map((h) => h.valLoss));
    assert.ok(a.history.every((h) => Number.isFinite(h.valLoss)), `non-finite validation loss: ${a.history.map((h) => h.valLoss).join(', ')}`);
    assert.notEqual(weightsEqual(a.state.weights, c.state.weights), undefined, 'a different seed gave identical weights');
    assert.equal(tf.memory().numTensors, before, 'training on wasm leaked tensors');
  });
}
