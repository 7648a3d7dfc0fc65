/**
 * Chooses the tensor backend and installs paramtrail's fast CPU kernels.
 *
 * Three backends, fastest first: 'tensorflow' (the native tfjs-node binding, ml/backends/native.ts, when
 * `npm run setup:native` has built it), 'wasm' (ml/backends/wasm.ts) and the pure-JS 'cpu' backend,
 * which runs everywhere. The cpu backend's convolution-gradient kernels are ~100x slower than flat loops;
 * initBackend() replaces them once per process with the kernels in ml/kernels/, which produce the same
 * bits as the built-in ones (tested in test/unit/kernels.test.ts), so results do not depend on whether
 * they are installed.
 *
 * Called by the worker (selectBackend), and by tests and benchmarks before any tensor is created.
 */
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// tfjs-core's Node build registers no gradient functions; the tfjs-layers bundle registers all of them
// when loaded. Training needs them even when no layer has been imported yet (kernel tests, benchmarks).
import '@tensorflow/tfjs-layers';
import type { KernelConfig, KernelFunc } from '@tensorflow/tfjs-core';
import { withFallback, type FastKernel } from './kernels/common.js';
import { conv2DBackpropFilterFast, conv2DBackpropInputFast, conv2DFast, fusedConv2DFast } from './kernels/conv2d.js';
import { avgPoolGradFast } from './kernels/pool.js';

const BACKEND = 'cpu';

/** Every fast kernel, by the name of the built-in kernel it replaces. */
export const FAST_KERNELS: readonly FastKernel[] = [
  conv2DFast,
  fusedConv2DFast,
  conv2DBackpropFilterFast,
  conv2DBackpropInputFast,
  avgPoolGradFast,
];

/** The built-in kernels, saved the first time they are replaced. */
const builtins = new Map<string, KernelConfig>();
let fastEnabled = false;

function builtinConfig(kernelName: string): KernelConfig {
  const saved = builtins.get(kernelName);
  if (saved) return saved;
  const config = tf.getKernel(kernelName, BACKEND);
  if (!config) throw new Error(`the ${BACKEND} backend has no built-in kernel named ${kernelName}`);
  builtins.set(kernelName, config);
  return config;
}

/** The built-in CPU kernel function for `kernelName` (for tests and benchmarks that compare against it). */
export function builtinKernel(kernelName: string): KernelFunc {
  return builtinConfig(kernelName).kernelFunc;
}

/**
 * Installs (true) or removes (false) the fast kernels; idempotent. initBackend() enables them; the
 * benchmark switches back and forth to time the built-in kernels in a real training step.
 */
export function setFastKernels(enabled: boolean): void {
  if (enabled === fastEnabled) return;
  for (const fast of FAST_KERNELS) {
    const builtin = builtinConfig(fast.kernelName);
    tf.unregisterKernel(fast.kernelName, BACKEND);
    tf.registerKernel(
      enabled ? { ...builtin, kernelFunc: withFallback(fast, builtin.kernelFunc) } : builtin,
    );
  }
  fastEnabled = enabled;
}

/** Sets the 'cpu' backend, installs the fast kernels (once), and returns the backend's name. */
export async function initBackend(): Promise<string> {
  const ok = await tf.setBackend(BACKEND);
  if (!ok) throw new Error(`could not initialise the tfjs '${BACKEND}' backend`);
  setFastKernels(true);
  // The CPU backend greets its first write with advice to install tfjs-node; choosing this backend is
  // deliberate here, and the note would only bury real warnings in every worker's log.
  (tf.backend() as { firstUse?: boolean }).firstUse = false;
  return tf.getBackend();
}

/** Which backend a worker trains on: the fastest available (`auto`), or a forced one. */
export type BackendPreference = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_PREFERENCES: readonly BackendPreference[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/**
 * What `auto` takes when the native backend is not built: the JavaScript backend that trains faster.
 * Measured with `npm run bench:train` (images/s, batch 64, one thread each, 2 shared cores): wasm 423
 * and cpu 76 on LeNet-5, wasm 9 and cpu 2 on the 16-channel ResNet.
 */
export const AUTO_WITHOUT_NATIVE: 'wasm' | 'cpu' = 'wasm';

/**
 * TensorFlow's intra-op threads in this process, as its C library picks them when it starts:
 * TF_NUM_INTRAOP_THREADS when that is a positive integer, else one per core the process may run on.
 * oneDNN splits its sums by thread, so on the native backend this is part of what fixes the bits.
 */
export function intraOpThreads(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.TF_NUM_INTRAOP_THREADS?.trim() ?? '';
  const n = Number(text);
  return /^\d+$/.test(text) && n > 0 ? n : availableParallelism();
}

/**
 * Activates the preferred backend and returns what runs record: `cpu`, `wasm`, or `tensorflow` with the
 * TensorFlow version its C library reports and its intra-op threads (`tensorflow 2.12.1, 2 intra-op
 * threads`). `auto` takes the native TensorFlow backend when `npm run setup:native` has built it, else
 * AUTO_WITHOUT_NATIVE; `tensorflow` fails when it is not built.
 */
export async function selectBackend(preference: BackendPreference, onNote?: (note: string) => void): Promise<string> {
  if (preference === 'cpu') return initBackend();
  if (preference === 'wasm') return initJsBackend('wasm');
  // Loaded on demand: the native module reads the build's manifest from disk.
  const { loadNativeBackend, nativeBuild } = await import('./backends/native.js');
  let why = '';
  if (await loadNativeBackend({ onMissing: (reason) => (why = reason) })) {
    const build = nativeBuild();
    const threads = intraOpThreads();
    return `${build ? `tensorflow ${build.tfVersion}` : 'tensorflow'}, ${threads} intra-op thread${threads === 1 ? '' : 's'}`;
  }
  if (preference === 'tensorflow') throw new Error(`backend "tensorflow" was asked for, but ${why}`);
  onNote?.(`native TensorFlow backend not available (${why}); training on the ${AUTO_WITHOUT_NATIVE} backend`);
  return initJsBackend(AUTO_WITHOUT_NATIVE);
}

async function initJsBackend(name: 'wasm' | 'cpu'): Promise<string> {
  if (name === 'cpu') return initBackend();
  // Loaded on demand: importing tfjs-backend-wasm registers it above 'cpu' for every later default choice.
  const { initWasmBackend } = await import('./backends/wasm.js');
  return initWasmBackend();
}
