/**
 * The native 'tensorflow' backend (ml/backends/native.ts) computes what the cpu backend computes: the
 * output of a convolution followed by ReLU and both of its gradients, at stride 1 'same' and stride 2
 * 'valid', agree within 1e-5 of the largest magnitude in each result (float32 sums taken in another
 * order, by oneDNN, differ in the last bits, ~1e-7; a wrong padding, stride, layout or operand order
 * differs by whole units).
 *
 * Runs only where `npm run setup:native` has built the addon; elsewhere the test is skipped and says why
 * (in CI, or with PARAMTRAIL_REQUIRE_NATIVE=1, a missing build fails it). Runs on it record its version
 * and intra-op thread count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { availableParallelism } from 'node:os';
import { initBackend, intraOpThreads, selectBackend } from '../../ml/backend.js';
import { nativeBuild } from '../../ml/backends/native.js';
import { activateNativeBackend, assertClose, nativeTestGuard, randomUniformValues } from '../support/backends.js';

interface Case {
  name: string;
  strides: 1 | 2;
  pad: 'same' | 'valid';
}
const CASES: Case[] = [
  { name: '3x3 stride 1 same', strides: 1, pad: 'same' },
  { name: '3x3 stride 2 valid', strides: 2, pad: 'valid' },
];
const X_SHAPE: [number, number, number, number] = [2, 9, 9, 3];
const W_SHAPE: [number, number, number, number] = [3, 3, 3, 5];

/** Output, input gradient and filter gradient of sum(relu(conv(x, w)) * dy) on the active backend. */
function convAndGrads(c: Case, x: Float32Array, w: Float32Array, dy: Float32Array): Float32Array[] {
  return tf.tidy(() => {
    const xt = tf.tensor4d(x, X_SHAPE);
    const wt = tf.tensor4d(w, W_SHAPE);
    // ReLU after the convolution, as in every model: its gradient runs TensorFlow's ReluGrad natively.
    const f = (a: tf.Tensor4D, b: tf.Tensor4D) => tf.relu(tf.conv2d(a, b, c.strides, c.pad));
    const y = f(xt, wt);
    const dyt = tf.tensor(dy, y.shape);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor4D, b as tf.Tensor4D), dyt)))([xt, wt]);
    return [y, dx!, dw!].map((t) => t.dataSync() as Float32Array);
  });
}

const native = nativeTestGuard('native.test');

test('the native backend matches the cpu backend on conv2d + relu forward and backward', { skip: native.skip }, async () => {
  native.assertBuilt();
  await initBackend();
  const x = randomUniformValues(X_SHAPE, 1);
  const w = randomUniformValues(W_SHAPE, 2);
  const dys = CASES.map((c, i) => {
    const out = tf.tidy(() => tf.conv2d(tf.zeros(X_SHAPE) as tf.Tensor4D, tf.zeros(W_SHAPE) as tf.Tensor4D, c.strides, c.pad).shape);
    return randomUniformValues(out, 3 + i);
  });
  const expected = CASES.map((c, i) => convAndGrads(c, x, w, dys[i]!));

  await activateNativeBackend();
  const before = tf.memory().numTensors;
  CASES.forEach((c, i) => {
    const actual = convAndGrads(c, x, w, dys[i]!);
    ['output', 'input gradient', 'filter gradient'].forEach((what, k) => assertClose(actual[k]!, expected[i]![k]!, `${c.name} ${what}`, { backend: 'native' }));
  });
  assert.equal(tf.memory().numTensors, before, 'the native kernels leaked tensors');
});

test('intraOpThreads reads TF_NUM_INTRAOP_THREADS as TensorFlow does: a positive integer, else every core', () => {
  assert.equal(intraOpThreads({ TF_NUM_INTRAOP_THREADS: '1' }), 1);
  assert.equal(intraOpThreads({ TF_NUM_INTRAOP_THREADS: ' 3 ' }), 3);
  for (const unset of [undefined, '', '0', 'two', '1.5', '-2']) {
    assert.equal(intraOpThreads({ TF_NUM_INTRAOP_THREADS: unset }), availableParallelism(), JSON.stringify(unset));
  }
});

test('runs on the native backend record its intra-op threads with its version', { skip: native.skip }, async () => {
  native.assertBuilt();
  const threads = intraOpThreads();
  assert.equal(await selectBackend('tensorflow'), `tensorflow ${nativeBuild()!.tfVersion}, ${threads} intra-op thread${threads === 1 ? '' : 's'}`);
  await initBackend();
});
