/**
 * The native 'tensorflow' backend (ml/backends/native.ts) computes what the cpu backend computes: the
 * output of a convolution followed by ReLU and both of its gradients, at stride 1 'same' and stride 2
 * 'valid', agree within 1e-5 of the largest magnitude in each result (float32 sums taken in another
 * order, by oneDNN, differ in the last bits, ~1e-7; a wrong padding, stride, layout or operand order
 * differs by whole units).
 *
 * Runs only where `npm run setup:native` has built the addon; elsewhere the test is skipped and says why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../ml/backend.js';
import { NATIVE_BACKEND, findNativeBuild, loadNativeBackend } from '../../ml/backends/native.js';

const RELATIVE_TOLERANCE = 1e-5;

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

function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: expected ${expected.length} values, found ${actual.length}`);
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  let worst = 0;
  let at = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= worst)) [worst, at] = [d, i]; // NaN lands here too
  }
  assert.ok(
    worst <= RELATIVE_TOLERANCE * scale,
    `${what}: expected |native - cpu| <= ${RELATIVE_TOLERANCE} * ${scale.toPrecision(4)}, found ${worst} at index ${at} (native ${actual[at]}, cpu ${expected[at]})`,
  );
}

const found = findNativeBuild();
// CI builds the addon (`npm run setup:native` in .ci/run), so there a missing build is a failure; on a
// machine where nobody built it, the test is skipped and says why.
const required = process.env.CI === 'true' || process.env.PARAMTRAIL_REQUIRE_NATIVE === '1';
if ('missing' in found && !required) console.log(`native.test: skipped because ${found.missing}`);

test('the native backend matches the cpu backend on conv2d + relu forward and backward', { skip: 'missing' in found && !required ? found.missing : false }, async () => {
  if ('missing' in found) assert.fail(`the native backend is required here (CI or PARAMTRAIL_REQUIRE_NATIVE=1) but ${found.missing}`);
  await initBackend();
  const random = (shape: number[], seed: number) => tf.tidy(() => tf.randomUniform(shape, -1, 1, 'float32', seed).dataSync() as Float32Array);
  const x = random(X_SHAPE, 1);
  const w = random(W_SHAPE, 2);
  const dys = CASES.map((c, i) => {
    const out = tf.tidy(() => tf.conv2d(tf.zeros(X_SHAPE) as tf.Tensor4D, tf.zeros(W_SHAPE) as tf.Tensor4D, c.strides, c.pad).shape);
    return random(out, 3 + i);
  });
  const expected = CASES.map((c, i) => convAndGrads(c, x, w, dys[i]!));

  const reasons: string[] = [];
  assert.equal(await loadNativeBackend({ onMissing: (r) => reasons.push(r) }), true, `loadNativeBackend failed: ${reasons.join('; ')}`);
  assert.equal(tf.getBackend(), NATIVE_BACKEND);
  const before = tf.memory().numTensors;
  CASES.forEach((c, i) => {
    const actual = convAndGrads(c, x, w, dys[i]!);
    ['output', 'input gradient', 'filter gradient'].forEach((what, k) => assertClose(actual[k]!, expected[i]![k]!, `${c.name} ${what}`));
  });
  assert.equal(tf.memory().numTensors, before, 'the native kernels leaked tensors');
});
