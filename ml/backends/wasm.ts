/**
 * The 'wasm' tensor backend: @tensorflow/tfjs-backend-wasm (XNNPACK kernels compiled to WebAssembly,
 * SIMD where the runtime has it; one thread under Node, which gives its worker threads no shared memory
 * here), with the training kernels it lacks registered from ml/kernels/.
 *
 * tfjs-backend-wasm 4.22.0 has every kernel a training step of the model zoo needs except
 * Conv2DBackpropFilter (the filter gradient of every convolution), and its Conv2DBackpropInput is a slow
 * scalar loop; ml/kernels/im2col.ts provides both as matrix products on the wasm heap. Batch norm in
 * training mode runs as two flat-loop kernels (ml/kernels/batchnorm.ts) instead of some twenty tfjs ops. Their outputs
 * are deterministic functions of their inputs, as are the wasm kernels on one thread, so a seed gives
 * the same weights on every run (test/unit/wasm-train.test.ts).
 *
 * The package is imported on demand, not at the top: importing it registers 'wasm' at a higher priority
 * than 'cpu', which would change the backend of any process that never chooses one.
 *
 * Called by ml/backend.ts (selectBackend), the wasm tests and bench/train.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  FUSED_BATCH_NORM_TRAIN,
  FUSED_BATCH_NORM_TRAIN_GRAD,
  fusedBatchNormTrainFlat,
  fusedBatchNormTrainGradFlat,
  registerFusedBatchNormGradient,
} from '../kernels/batchnorm.js';
import { withFallback, type FastKernel, type KernelArgs } from '../kernels/common.js';
import { conv2DBackpropFilterMatMul, conv2DBackpropInputMatMul } from '../kernels/im2col.js';

/** The backend name tfjs-backend-wasm registers, and the one recorded with every run that uses it. */
export const WASM_BACKEND = 'wasm';

/**
 * The kernels registered on the wasm backend: Conv2DBackpropFilter, which it lacks, and
 * Conv2DBackpropInput, which replaces its own ~3x slower one (that stays the fallback for NCHW).
 */
export const WASM_KERNELS: readonly FastKernel[] = [conv2DBackpropFilterMatMul, conv2DBackpropInputMatMul];

let registered = false;

/** What a wasm kernel of ours does with a case it does not implement: there is no built-in to fall back to. */
function unsupported(kernelName: string): tf.KernelFunc {
  return ({ inputs, attrs }) => {
    const shapes = Object.entries(inputs).map(([k, t]) => `${k} ${t?.dtype} [${t?.shape.join(', ')}]`).join(', ');
    throw new Error(`${kernelName} on the wasm backend: expected float32 NHWC tensors, found ${shapes} with data format ${String(attrs?.['dataFormat'] ?? 'NHWC')}`);
  };
}

/** Registers the wasm backend and our kernels for it (once), makes it active and returns its name. */
export async function initWasmBackend(): Promise<string> {
  if (!registered) {
    await import('@tensorflow/tfjs-backend-wasm');
    for (const kernel of WASM_KERNELS) {
      const builtin = tf.getKernel(kernel.kernelName, WASM_BACKEND);
      if (builtin) tf.unregisterKernel(kernel.kernelName, WASM_BACKEND);
      const fallback = builtin?.kernelFunc ?? unsupported(kernel.kernelName);
      tf.registerKernel({ ...builtin, kernelName: kernel.kernelName, backendName: WASM_BACKEND, kernelFunc: withFallback(kernel, fallback) });
    }
    // Training-mode batch norm in two kernels instead of tfjs's ops (ml/kernels/batchnorm.ts).
    tf.registerKernel({ kernelName: FUSED_BATCH_NORM_TRAIN, backendName: WASM_BACKEND, kernelFunc: (args) => fusedBatchNormTrainFlat(args as unknown as KernelArgs) });
    tf.registerKernel({ kernelName: FUSED_BATCH_NORM_TRAIN_GRAD, backendName: WASM_BACKEND, kernelFunc: (args) => fusedBatchNormTrainGradFlat(args as unknown as KernelArgs) });
    registerFusedBatchNormGradient();
    registered = true;
  }
  if (!(await tf.setBackend(WASM_BACKEND))) throw new Error(`could not initialise the tfjs '${WASM_BACKEND}' backend`);
  return tf.getBackend();
}
