/**
 * The BatchNorm comparison that test/unit/native-batchnorm.test.ts and test/unit/wasm-batchnorm.test.ts
 * make against the cpu backend: training-mode output, gradients for the input, gamma and beta, and
 * updated running statistics, for an image batch, a dense batch with non-default momentum and epsilon,
 * and a frozen layer, whose running statistics stay as they were.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../ml/backend.js';
import { fusedBatchNormAvailable } from '../../ml/kernels/batchnorm.js';
import { BatchNorm } from '../../ml/models/layers.js';
import { assertClose, randomUniformValues } from './backends.js';

interface Case {
  name: string;
  shape: number[];
  momentum?: number;
  epsilon?: number;
  trainable: boolean;
}
const CASES: Case[] = [
  { name: 'image batch, defaults', shape: [4, 5, 5, 3], trainable: true },
  { name: 'dense batch, momentum 0.3, epsilon 1e-3', shape: [6, 7], momentum: 0.3, epsilon: 1e-3, trainable: true },
  { name: 'frozen image batch', shape: [4, 5, 5, 3], trainable: false },
];
const RESULTS = ['output', 'input gradient', 'gamma gradient', 'beta gradient', 'running mean', 'running variance'];

/** Every result of one training-mode call of a fresh layer on the active backend, as plain arrays. */
function run(c: Case, x: Float32Array, dy: Float32Array, init: Float32Array[]): Float32Array[] {
  const layer = new BatchNorm({ name: 'bn', momentum: c.momentum, epsilon: c.epsilon });
  const xv = tf.tidy(() => tf.variable(tf.tensor(x, c.shape), true, `bn_x_${tf.getBackend()}_${c.name}`));
  const dyt = tf.tensor(dy, c.shape);
  tf.dispose(layer.apply(xv, { training: false }) as tf.Tensor); // builds the variables
  const initTensors = init.map((v) => tf.tensor1d(v));
  layer.setWeights(initTensors);
  tf.dispose(initTensors);
  layer.trainable = c.trainable;
  let y: Float32Array = new Float32Array(0);
  const [gamma, beta] = layer.weights.slice(0, 2).map((w) => w.read() as tf.Variable);
  const varList = c.trainable ? [xv, gamma!, beta!] : [xv];
  const { grads, value } = tf.variableGrads(() => {
    const out = layer.apply(xv, { training: true }) as tf.Tensor;
    y = out.dataSync() as Float32Array;
    return tf.sum(tf.mul(out, dyt)) as tf.Scalar;
  }, varList);
  const channels = c.shape[c.shape.length - 1]!;
  const grad = (v: tf.Variable | undefined) => (v && grads[v.name] ? (grads[v.name]!.dataSync() as Float32Array) : new Float32Array(channels));
  const stats = layer.getWeights().slice(2).map((w) => w.dataSync() as Float32Array);
  const results = [y, grad(xv), c.trainable ? grad(gamma) : new Float32Array(channels), c.trainable ? grad(beta) : new Float32Array(channels), ...stats];
  tf.dispose([value, dyt, xv, ...Object.values(grads)]);
  layer.dispose();
  return results;
}

export interface BatchNormComparison {
  /** The backend under test, as messages name it. */
  backend: string;
  /** Makes that backend the active one (after the cpu results are taken). */
  activate(): Promise<void>;
  /** Why `fusedBatchNormAvailable()` must be true once it is active. */
  kernels: string;
}

/**
 * Runs every case on cpu (through tfjs ops), then on the backend under test (through its batch-norm
 * kernels), and asserts the results agree within RELATIVE_TOLERANCE and no tensor leaks.
 */
export async function assertBatchNormMatchesCpu({ backend, activate, kernels }: BatchNormComparison): Promise<void> {
  await initBackend();
  assert.equal(fusedBatchNormAvailable(), false, 'the cpu backend must keep the tfjs-op path');
  const inputs = CASES.map((c, i) => {
    const channels = c.shape[c.shape.length - 1]!;
    // Off-centre inputs, so a missing mean subtraction or a wrong variance shows.
    const x = randomUniformValues(c.shape, 10 * i + 1, -1, 3);
    const dy = randomUniformValues(c.shape, 10 * i + 2);
    const init = [
      randomUniformValues([channels], 10 * i + 3, 0.5, 1.5),
      randomUniformValues([channels], 10 * i + 4),
      randomUniformValues([channels], 10 * i + 5),
      randomUniformValues([channels], 10 * i + 6, 0.5, 2),
    ];
    return { x, dy, init };
  });
  const expected = CASES.map((c, i) => run(c, inputs[i]!.x, inputs[i]!.dy, inputs[i]!.init));
  // A frozen layer's running statistics stay as they were.
  CASES.forEach((c, i) => {
    if (!c.trainable) for (const k of [4, 5]) assert.deepEqual(expected[i]![k], inputs[i]!.init[k - 2], `${c.name}: cpu ${RESULTS[k]} changed`);
  });

  await activate();
  assert.equal(fusedBatchNormAvailable(), true, kernels);
  const before = tf.memory().numTensors;
  CASES.forEach((c, i) => {
    const actual = run(c, inputs[i]!.x, inputs[i]!.dy, inputs[i]!.init);
    RESULTS.forEach((what, k) => assertClose(actual[k]!, expected[i]![k]!, `${c.name} ${what}`, { backend }));
  });
  assert.equal(tf.memory().numTensors, before, `the ${backend} batch norm leaked tensors`);
}
