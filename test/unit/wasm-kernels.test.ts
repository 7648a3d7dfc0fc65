/**
 * The kernels paramtrail registers on the 'wasm' backend (ml/backends/wasm.ts, ml/kernels/im2col.ts)
 * against a reference: the built-in kernel of @tensorflow/tfjs-backend-cpu on the same inputs.
 *
 * Tolerance: 1e-5 of the largest magnitude in the reference. The wasm kernels are matrix products that
 * sum the same terms in another order, so they differ from the reference by float32 rounding (~1e-7
 * relative); a wrong heap offset, padding, stride or a transposed operand differs by whole units. The
 * gradients of a whole convolution taken by tf.grads on wasm, which go through the kernel registry, are
 * checked the same way, and an unsupported case (NCHW) says so or falls back to the built-in kernel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { builtinKernel, initBackend, selectBackend } from '../../ml/backend.js';
import { WASM_BACKEND, WASM_KERNELS, initWasmBackend } from '../../ml/backends/wasm.js';
import { Rng } from '../../ml/rng.js';
import { assertClose } from '../support/backends.js';

const wasm = { backend: 'wasm', nonZeroReference: true };

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

test('PARAMTRAIL_BACKEND=wasm (selectBackend) activates wasm with our kernels registered', async () => {
  await initBackend();
  assert.equal(await selectBackend('wasm'), WASM_BACKEND);
  assert.equal(tf.getBackend(), WASM_BACKEND);
  assert.deepEqual(WASM_KERNELS.map((k) => k.kernelName), ['Conv2DBackpropFilter', 'Conv2DBackpropInput']);
  for (const k of WASM_KERNELS) assert.ok(tf.getKernel(k.kernelName, WASM_BACKEND), `${k.kernelName} is not registered on wasm`);
});

/** One convolution-gradient kernel: its inputs and attributes for a case. */
const GRADIENTS = {
  Conv2DBackpropFilter: (c: ConvCase, x: tf.Tensor, dy: tf.Tensor, _w: tf.Tensor) => ({ inputs: { x, dy }, attrs: { filterShape: c.f } }),
  Conv2DBackpropInput: (c: ConvCase, _x: tf.Tensor, dy: tf.Tensor, filter: tf.Tensor) => ({ inputs: { dy, filter }, attrs: { inputShape: c.x } }),
};

for (const [name, argsOf] of Object.entries(GRADIENTS)) {
  test(`${name} on wasm equals the cpu built-in kernel`, async () => {
    const values = CASES.map((c, i) => ({ x: randomValues(c.x, 10 + i), dy: randomValues(outShape(c), 100 + i), w: randomValues(c.f, 200 + i) }));
    const call = (c: ConvCase, i: number, kernel: (inputs: Record<string, tf.Tensor>, attrs: NamedAttrMap) => TensorInfo) =>
      tf.tidy(() => {
        const v = values[i]!;
        const { inputs, attrs } = argsOf(c, tf.tensor(v.x, c.x), tf.tensor(v.dy, outShape(c)), tf.tensor(v.w, c.f));
        const all = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, ...attrs } as unknown as NamedAttrMap;
        const out = kernel(inputs, all);
        assert.deepEqual(out.shape, name === 'Conv2DBackpropFilter' ? c.f : c.x);
        // The built-in kernel returns a bare TensorInfo; wrapping it lets tidy release it.
        const result = out instanceof tf.Tensor ? out : tf.engine().makeTensorFromTensorInfo(out);
        return result.dataSync() as Float32Array;
      });
    await initBackend();
    const backend = tf.backend();
    const expected = CASES.map((c, i) => call(c, i, (inputs, attrs) => builtinKernel(name)({ inputs, backend, attrs }) as TensorInfo));
    await initWasmBackend();
    const before = tf.memory().numTensors;
    CASES.forEach((c, i) => {
      const actual = call(c, i, (inputs, attrs) => tf.engine().runKernel(name, inputs, attrs) as tf.Tensor);
      assertClose(actual, expected[i]!, `${name} case ${i} ${JSON.stringify(c)}`, wasm);
    });
    assert.equal(tf.memory().numTensors, before, `the wasm ${name} leaked tensors`);
  });
}

test('both gradients of a convolution taken by tf.grads on wasm equal the cpu ones', async () => {
  const c = CASES[2]!;
  const x = randomValues(c.x, 7);
  const w = randomValues(c.f, 8);
  const dy = randomValues(outShape(c), 9);
  const grads = () =>
    tf.tidy(() => {
      const dyt = tf.tensor(dy, outShape(c));
      const f = (xt: tf.Tensor, wt: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xt as tf.Tensor4D, wt as tf.Tensor4D, c.strides, c.pad), dyt));
      return tf.grads(f)([tf.tensor(x, c.x), tf.tensor(w, c.f)]).map((g) => g.dataSync() as Float32Array);
    });
  await initBackend();
  const expected = grads();
  await initWasmBackend();
  const actual = grads();
  assertClose(actual[0]!, expected[0]!, 'input gradient', wasm);
  assertClose(actual[1]!, expected[1]!, 'filter gradient', wasm);
});

test('an NCHW filter gradient on wasm fails and says what it expected; an NCHW input gradient falls back', async () => {
  await initWasmBackend();
  const x = tf.zeros([1, 2, 5, 5]);
  const dy = tf.zeros([1, 3, 5, 5]);
  assert.throws(
    () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 2, 3] } as unknown as NamedAttrMap),
    /expected float32 NHWC tensors/,
  );
  // tfjs-backend-wasm's own Conv2DBackpropInput handles NCHW; ours hands such a case back to it.
  const filter = tf.ones([3, 3, 2, 3]);
  const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy: tf.ones([1, 3, 5, 5]), filter }, { strides: 1, pad: 'same', dataFormat: 'NCHW', inputShape: [1, 2, 5, 5] } as unknown as NamedAttrMap) as tf.Tensor;
  assert.deepEqual(dx.shape, [1, 2, 5, 5]);
  assert.equal(dx.dataSync()[12], 27, 'centre of the NCHW input gradient: 3 output channels x 9 taps');
  tf.dispose([x, dy, filter, dx]);
});
