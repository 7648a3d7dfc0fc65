/**
 * The kernels paramtrail registers on the 'wasm' backend (ml/backends/wasm.ts) against a reference:
 * the built-in kernel of @tensorflow/tfjs-backend-cpu on the same inputs.
 *
 * Tolerance: none. The wasm Conv2DBackpropFilter is ml/kernels/conv2d.ts's flat-array kernel reading and
 * writing the wasm heap; it sums the same terms in the same order and precision as the cpu built-in, so
 * the outputs must be equal bit for bit. A wrong heap offset or a transposed filter shows up as a
 * different value. The gradient of a whole convolution taken by tf.grads
 * on wasm, which goes through the kernel registry, is checked the same way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { builtinKernel, initBackend } from '../../ml/backend.js';
import { WASM_BACKEND, WASM_KERNELS, initWasmBackend } from '../../ml/backends/wasm.js';
import { Rng } from '../../ml/rng.js';

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
interface ConvCase { x: Shape4; f: Shape4; strides: [number, number]; pad: Pad }

const CASES: ConvCase[] = [
  { x: [3, 28, 28, 1], f: [5, 5, 1, 6], strides: [1, 1], pad: 'same' }, // LeNet conv1
  { x: [3, 14, 14, 6], f: [5, 5, 6, 16], strides: [1, 1], pad: 'valid' }, // LeNet conv2
  { x: [2, 9, 9, 3], f: [3, 3, 3, 4], strides: [2, 2], pad: 'same' },
  { x: [2, 10, 7, 2], f: [4, 2, 2, 3], strides: [2, 3], pad: 'same' }, // even filter: asymmetric padding
  { x: [2, 11, 8, 3], f: [3, 3, 3, 5], strides: [3, 2], pad: 'valid' },
  { x: [2, 16, 16, 4], f: [4, 4, 4, 4], strides: [2, 2], pad: [[0, 0], [1, 1], [1, 1], [0, 0]] },
  { x: [2, 32, 32, 16], f: [3, 3, 16, 16], strides: [1, 1], pad: 'same' }, // a ResNet stage-1 convolution

];

function randomValues(shape: number[], seed: number): Float32Array {
  const rng = new Rng(seed);
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) values[i] = rng.next() * 2 - 1;
  return values;
}

function outShape(c: ConvCase): number[] {
  return tf.tidy(() => tf.conv2d(tf.zeros(c.x) as tf.Tensor4D, tf.zeros(c.f) as tf.Tensor4D, c.strides, c.pad).shape);
}

function assertBitEqual(actual: Float32Array, expected: Float32Array, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  let nonzero = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) assert.fail(`${label}: element ${i} is ${actual[i]} on wasm, ${expected[i]} on the reference`);
    if (expected[i] !== 0) nonzero++;
  }
  assert.ok(nonzero > expected.length / 2, `${label}: the reference is mostly zeros`);
}

test('every kernel registered on wasm is one the wasm backend lacks', async () => {
  await initWasmBackend();
  assert.equal(tf.getBackend(), WASM_BACKEND);
  assert.deepEqual(WASM_KERNELS.map((k) => k.kernelName), ['Conv2DBackpropFilter']);
  for (const k of WASM_KERNELS) assert.ok(tf.getKernel(k.kernelName, WASM_BACKEND), `${k.kernelName} is not registered on wasm`);
});

test('Conv2DBackpropFilter on wasm equals the cpu built-in kernel bit for bit', async () => {
  const inputs = CASES.map((c, i) => ({ x: randomValues(c.x, 10 + i), dy: randomValues(outShape(c), 100 + i) }));
  await initBackend();
  const attrsOf = (c: ConvCase) => ({ strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: c.f }) as unknown as NamedAttrMap;
  const backend = tf.backend();
  const expected = CASES.map((c, i) =>
    tf.tidy(() => {
      const x = tf.tensor(inputs[i]!.x, c.x);
      const dy = tf.tensor(inputs[i]!.dy, outShape(c));
      const out = builtinKernel('Conv2DBackpropFilter')({ inputs: { x, dy }, backend, attrs: attrsOf(c) }) as TensorInfo;
      const values = backend.readSync(out.dataId) as Float32Array;
      backend.disposeData(out.dataId);
      return values;
    }),
  );
  await initWasmBackend();
  const before = tf.memory().numTensors;
  CASES.forEach((c, i) => {
    const actual = tf.tidy(() => {
      const x = tf.tensor(inputs[i]!.x, c.x);
      const dy = tf.tensor(inputs[i]!.dy, outShape(c));
      const out = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, attrsOf(c)) as tf.Tensor;
      assert.deepEqual(out.shape, c.f);
      return out.dataSync() as Float32Array;
    });
    assertBitEqual(actual, expected[i]!, `case ${i} ${JSON.stringify(c)}`);
  });
  assert.equal(tf.memory().numTensors, before, 'the wasm kernel leaked tensors');
});

test('the filter gradient of a convolution taken by tf.grads on wasm equals the cpu one', async () => {
  const c = CASES[2]!;
  const x = randomValues(c.x, 7);
  const w = randomValues(c.f, 8);
  const dy = randomValues(outShape(c), 9);
  const grad = () =>
    tf.tidy(() => {
      const dyt = tf.tensor(dy, outShape(c));
      const f = (wt: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(tf.tensor(x, c.x) as tf.Tensor4D, wt as tf.Tensor4D, c.strides, c.pad), dyt));
      return tf.grad(f)(tf.tensor(w, c.f)).dataSync() as Float32Array;
    });
  await initBackend();
  const expected = grad();
  await initWasmBackend();
  assertBitEqual(grad(), expected, 'filter gradient');
});

test('an NCHW filter gradient on wasm fails and says what it expected', async () => {
  await initWasmBackend();
  const x = tf.zeros([1, 2, 5, 5]);
  const dy = tf.zeros([1, 3, 5, 5]);
  assert.throws(
    () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 2, 3] } as unknown as NamedAttrMap),
    /expected float32 NHWC tensors/,
  );
  tf.dispose([x, dy]);
});
