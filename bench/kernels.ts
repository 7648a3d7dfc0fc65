/**
 * Benchmark of paramtrail's fast CPU kernels against the built-in ones of @tensorflow/tfjs-backend-cpu:
 * each replaced kernel on LeNet-5's shapes (batch 64, 28x28x1), then a whole LeNet-5 training step.
 *
 * Run: node --import tsx bench/kernels.ts [steps]
 * Prints milliseconds per call for built-in and fast kernels and their ratio, and training images/s.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { FAST_KERNELS, builtinKernel, initBackend, setFastKernels } from '../ml/backend.js';
import { buildModel } from '../ml/models/registry.js';
import { initializeWeights } from '../ml/train/init.js';
import { modelVariables } from '../ml/train/weights.js';
import { createOptimizer } from '../ml/train/optimizers.js';

const BATCH = 64;

function timeMs(fn: () => void, reps: number): number {
  fn(); // warm-up: JIT compilation
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / reps;
}

async function main(): Promise<void> {
  const steps = Number(process.argv[2] ?? 3);
  console.log(`backend: ${await initBackend()}`);
  const backend = tf.backend() as MathBackendCPU;
  const r = (shape: number[]) => tf.randomUniform(shape, -1, 1, 'float32', 1);
  const conv = { strides: [1, 1], dataFormat: 'NHWC', dimRoundingMode: undefined };
  const cases: Array<[string, string, Record<string, tf.Tensor>, NamedAttrMap]> = [
    ['Conv2D', 'conv1', { x: r([BATCH, 28, 28, 1]), filter: r([5, 5, 1, 6]) }, { ...conv, pad: 'same', dilations: [1, 1] } as unknown as NamedAttrMap],
    ['Conv2D', 'conv2', { x: r([BATCH, 14, 14, 6]), filter: r([5, 5, 6, 16]) }, { ...conv, pad: 'valid', dilations: [1, 1] } as unknown as NamedAttrMap],
    ['Conv2DBackpropFilter', 'conv1', { x: r([BATCH, 28, 28, 1]), dy: r([BATCH, 28, 28, 6]) }, { ...conv, pad: 'same', filterShape: [5, 5, 1, 6] } as unknown as NamedAttrMap],
    ['Conv2DBackpropFilter', 'conv2', { x: r([BATCH, 14, 14, 6]), dy: r([BATCH, 10, 10, 16]) }, { ...conv, pad: 'valid', filterShape: [5, 5, 6, 16] } as unknown as NamedAttrMap],
    ['Conv2DBackpropInput', 'conv2', { dy: r([BATCH, 10, 10, 16]), filter: r([5, 5, 6, 16]) }, { ...conv, pad: 'valid', inputShape: [BATCH, 14, 14, 6] } as unknown as NamedAttrMap],
    ['AvgPoolGrad', 'pool1', { dy: r([BATCH, 14, 14, 6]), input: r([BATCH, 28, 28, 6]) }, { filterSize: [2, 2], strides: [2, 2], pad: 'valid' } as unknown as NamedAttrMap],
  ];
  console.log('kernel                 layer   built-in ms   fast ms   ratio');
  for (const [name, layer, inputs, attrs] of cases) {
    const fast = FAST_KERNELS.find((k) => k.kernelName === name)!;
    const builtin = builtinKernel(name);
    const reps = name === 'Conv2DBackpropFilter' ? 1 : 3;
    const tb = timeMs(() => backend.disposeData((builtin({ inputs, backend, attrs }) as TensorInfo).dataId), reps);
    const tfst = timeMs(() => backend.disposeData(fast.run({ inputs, backend, attrs })!.dataId), 10);
    console.log(`${name.padEnd(22)} ${layer.padEnd(7)} ${tb.toFixed(1).padStart(11)} ${tfst.toFixed(1).padStart(9)} ${(tb / tfst).toFixed(1).padStart(7)}x`);
  }

  // A whole training step: forward, softmax cross-entropy, gradients, SGD update.
  const model = buildModel({ name: 'lenet5', args: {} }, { inputShape: [28, 28, 1], numClasses: 10 });
  initializeWeights(model, 1);
  const params = modelVariables(model).filter((v) => v.trainable);
  const sgd = createOptimizer({ name: 'sgd', learningRate: 0.01 }, params);
  const x = r([BATCH, 28, 28, 1]);
  const y = tf.oneHot(tf.tensor1d(Array.from({ length: BATCH }, (_, i) => i % 10), 'int32'), 10);
  const step = () =>
    tf.tidy(() => {
      const { grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
        params.map((p) => p.variable),
      );
      sgd.apply(params.map((p) => grads[p.variable.name]!));
    });
  const rates: Record<string, number> = {};
  for (const enabled of [false, true]) {
    setFastKernels(enabled);
    const ms = timeMs(step, enabled ? steps * 5 : steps);
    rates[enabled ? 'fast' : 'built-in'] = (BATCH * 1000) / ms;
    console.log(`LeNet-5 training step, ${enabled ? 'fast' : 'built-in'} kernels: ${ms.toFixed(0)} ms/step, ${((BATCH * 1000) / ms).toFixed(0)} images/s`);
  }
  console.log(`speed-up: ${(rates['fast']! / rates['built-in']!).toFixed(1)}x`);
  sgd.dispose();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
