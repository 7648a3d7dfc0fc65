/**
 * The fast CPU kernels (ml/kernels/) against the built-in kernels of @tensorflow/tfjs-backend-cpu.
 *
 * Tolerance: none. Each fast kernel adds the same terms in the same order and precision as the kernel
 * it replaces (see ml/kernels/conv2d.ts), so the outputs must be equal bit for bit; any reordering
 * would show up here as a difference in the last bits. Bit equality is also what lets a run give the
 * same weights whether or not the fast kernels are installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { FAST_KERNELS, builtinKernel, initBackend, setFastKernels } from '../../ml/backend.js';
import { Rng } from '../../ml/rng.js';

await initBackend();
const backend = tf.backend() as MathBackendCPU;

function randomTensor(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) values[i] = rng.next() * 2 - 1;
  return tf.tensor(values, shape);
}

function fastKernel(name: string) {
  const k = FAST_KERNELS.find((f) => f.kernelName === name);
  assert.ok(k, `no fast kernel named ${name}`);
  return k;
}

/** Runs the fast and the built-in kernel on the same inputs and asserts bit-identical outputs. */
function assertSameAsBuiltin(name: string, inputs: Record<string, tf.Tensor>, attrs: NamedAttrMap, label: string): void {
  const fast = fastKernel(name).run({ inputs, backend, attrs });
  assert.ok(fast, `${label}: the fast ${name} kernel declined a case it should handle`);
  const ref = builtinKernel(name)({ inputs, backend, attrs }) as TensorInfo;
  try {
    assert.deepEqual(fast.shape, ref.shape, `${label}: shape`);
    const a = backend.readSync(fast.dataId) as Float32Array;
    const b = backend.readSync(ref.dataId) as Float32Array;
    assert.equal(a.length, b.length);
    let nonzero = 0;
    for (let i = 0; i < a.length; i++) {
      if (!Object.is(a[i], b[i])) assert.fail(`${label}: element ${i} is ${a[i]}, built-in gives ${b[i]}`);
      if (a[i] !== 0) nonzero++;
    }
    // Guard against comparing two empty or all-zero results.
    assert.ok(nonzero > a.length / 2, `${label}: output is mostly zeros`);
  } finally {
    backend.disposeData(fast.dataId);
    backend.disposeData(ref.dataId);
  }
}

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
interface ConvCase { x: [number, number, number, number]; f: [number, number, number, number]; strides: [number, number]; pad: Pad; dilations?: [number, number] }

const CONV_CASES: ConvCase[] = [
  { x: [3, 28, 28, 1], f: [5, 5, 1, 6], strides: [1, 1], pad: 'same' }, // LeNet conv1
  { x: [3, 14, 14, 6], f: [5, 5, 6, 16], strides: [1, 1], pad: 'valid' }, // LeNet conv2
  { x: [2, 9, 9, 3], f: [3, 3, 3, 4], strides: [2, 2], pad: 'same' },
  { x: [2, 10, 7, 2], f: [4, 2, 2, 3], strides: [2, 3], pad: 'same' }, // even filter: asymmetric padding
  { x: [2, 11, 8, 3], f: [3, 3, 3, 5], strides: [3, 2], pad: 'valid' },
  { x: [1, 8, 9, 2], f: [3, 2, 2, 2], strides: [1, 2], pad: [[0, 0], [2, 1], [0, 3], [0, 0]] },
  { x: [2, 16, 16, 4], f: [4, 4, 4, 4], strides: [2, 2], pad: [[0, 0], [1, 1], [1, 1], [0, 0]] }, // ResNet-style stem
];

test('Conv2D equals the built-in kernel bit for bit', () => {
  const cases: ConvCase[] = [...CONV_CASES, { x: [2, 12, 12, 2], f: [3, 3, 2, 3], strides: [1, 1], pad: 'same', dilations: [2, 2] }];
  cases.forEach((c, i) => {
    tf.tidy(() => {
      const x = randomTensor(c.x, 10 + i);
      const filter = randomTensor(c.f, 100 + i);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dilations: c.dilations ?? [1, 1], dimRoundingMode: undefined } as unknown as NamedAttrMap;
      assertSameAsBuiltin('Conv2D', { x, filter }, attrs, `Conv2D case ${i} ${JSON.stringify(c)}`);
    });
  });
});

test('Conv2DBackpropFilter equals the built-in kernel bit for bit', () => {
  CONV_CASES.forEach((c, i) => {
    tf.tidy(() => {
      const x = randomTensor(c.x, 20 + i);
      const outShape = tf.conv2d(x as tf.Tensor4D, tf.zeros(c.f) as tf.Tensor4D, c.strides, c.pad).shape;
      const dy = randomTensor(outShape, 200 + i);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: c.f } as unknown as NamedAttrMap;
      assertSameAsBuiltin('Conv2DBackpropFilter', { x, dy }, attrs, `Conv2DBackpropFilter case ${i} ${JSON.stringify(c)}`);
    });
  });
});

test('Conv2DBackpropInput equals the built-in kernel bit for bit', () => {
  CONV_CASES.forEach((c, i) => {
    tf.tidy(() => {
      const filter = randomTensor(c.f, 30 + i);
      const outShape = tf.conv2d(tf.zeros(c.x) as tf.Tensor4D, filter as tf.Tensor4D, c.strides, c.pad).shape;
      const dy = randomTensor(outShape, 300 + i);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, inputShape: c.x } as unknown as NamedAttrMap;
      assertSameAsBuiltin('Conv2DBackpropInput', { dy, filter }, attrs, `Conv2DBackpropInput case ${i} ${JSON.stringify(c)}`);
    });
  });
});

test('AvgPoolGrad equals the built-in kernel bit for bit', () => {
  const cases: Array<{ x: [number, number, number, number]; size: [number, number]; strides: [number, number]; pad: 'same' | 'valid' }> = [
    { x: [3, 28, 28, 6], size: [2, 2], strides: [2, 2], pad: 'valid' }, // LeNet pool1
    { x: [2, 9, 9, 3], size: [3, 3], strides: [2, 2], pad: 'same' }, // overlapping windows
    { x: [2, 7, 10, 2], size: [2, 3], strides: [1, 2], pad: 'valid' },
    { x: [1, 5, 6, 4], size: [3, 2], strides: [3, 1], pad: 'same' },
  ];
  cases.forEach((c, i) => {
    tf.tidy(() => {
      const input = randomTensor(c.x, 40 + i);
      const outShape = tf.avgPool(input as tf.Tensor4D, c.size, c.strides, c.pad).shape;
      const dy = randomTensor(outShape, 400 + i);
      const attrs = { filterSize: c.size, strides: c.strides, pad: c.pad, dimRoundingMode: undefined } as unknown as NamedAttrMap;
      assertSameAsBuiltin('AvgPoolGrad', { dy, input }, attrs, `AvgPoolGrad case ${i} ${JSON.stringify(c)}`);
    });
  });
});

/** Gradients of a small conv + pool network through tfjs's own ops (the attributes tfjs really passes). */
function networkGradients(): Float32Array[] {
  return tf.tidy(() => {
    const x = randomTensor([4, 12, 12, 2], 7) as tf.Tensor4D;
    const w1 = randomTensor([3, 3, 2, 4], 8) as tf.Tensor4D;
    const w2 = randomTensor([2, 2, 4, 3], 9) as tf.Tensor4D;
    const f = (xx: tf.Tensor4D, a: tf.Tensor4D, b: tf.Tensor4D) => {
      const h = tf.avgPool(tf.relu(tf.conv2d(xx, a, 1, 'same')), 2, 2, 'valid');
      return tf.sum(tf.square(tf.conv2d(h, b, [2, 1], 'valid')));
    };
    const grads = tf.grads(f as (...args: tf.Tensor[]) => tf.Tensor)([x, w1, w2]);
    return grads.map((g) => g.dataSync().slice() as Float32Array);
  });
}

test('a network gradient is bit-identical with and without the fast kernels', () => {
  try {
    setFastKernels(false);
    const builtin = networkGradients();
    setFastKernels(true);
    const fast = networkGradients();
    assert.equal(fast.length, 3);
    fast.forEach((g, i) => assert.deepEqual(g, builtin[i], `gradient ${i} differs`));
  } finally {
    setFastKernels(true);
  }
});

test('initBackend installs the fast kernels and falls back for NCHW', async () => {
  assert.equal(await initBackend(), 'cpu');
  for (const k of FAST_KERNELS) {
    assert.notEqual(tf.getKernel(k.kernelName, 'cpu').kernelFunc, builtinKernel(k.kernelName), `${k.kernelName} not replaced`);
  }
  tf.tidy(() => {
    const x = randomTensor([1, 2, 5, 5], 1) as tf.Tensor4D;
    const w = randomTensor([3, 3, 2, 2], 2) as tf.Tensor4D;
    // The fast kernel declines NCHW; the built-in kernel answers, and matches the NHWC result transposed.
    const nchw = tf.conv2d(x, w, 1, 'valid', 'NCHW');
    const nhwc = tf.conv2d(tf.transpose(x, [0, 2, 3, 1]), w, 1, 'valid', 'NHWC');
    const a = nchw.dataSync();
    const b = tf.transpose(nhwc, [0, 3, 1, 2]).dataSync();
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-6 * (1 + Math.abs(b[i]!)));
  });
});
