/**
 * The native 'tensorflow' tensor backend: @tensorflow/tfjs-node's kernels running on the TensorFlow C
 * library of a PyPI TensorFlow wheel, as built by `npm run setup:native` (infra/native.mjs) into
 * .tools/tfjs-node/. It is optional: when the addon has not been built, loadNativeBackend() answers
 * false and the caller keeps a JavaScript backend.
 *
 * tfjs-node's index.js is not used: it finds its addon through @mapbox/node-pre-gyp and sets itself as
 * the backend on import. Its backend class and kernel registrations are loaded directly instead, with
 * '@tensorflow/tfjs' resolving to the project's own copy (the package sits under .tools/, whose parent
 * holds the project's node_modules), so the native kernels register in the one engine the models use.
 *
 * Called by the worker's backend choice, the native backend test and bench/train.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { FUSED_BATCH_NORM_TRAIN, FUSED_BATCH_NORM_TRAIN_GRAD, registerFusedBatchNormGradient } from '../kernels/batchnorm.js';

/** The backend name tfjs-node registers, and the one recorded with every run that uses it. */
export const NATIVE_BACKEND = 'tensorflow';

const PROJECT_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** What infra/native.mjs wrote to .tools/tfjs-node/native.json after building and loading the addon. */
export interface NativeBuild {
  /** The PyPI TensorFlow version whose C library the addon links, e.g. '2.12.1'. */
  tensorflow: string;
  /** The wheel: 'tensorflow-cpu', or 'tensorflow' (CUDA) for the GPU build. */
  wheel: string;
  /** '@tensorflow/tfjs-node' or '@tensorflow/tfjs-node-gpu'. */
  package: string;
  /** The npm package's version; equals the project's @tensorflow/tfjs. */
  version: string;
  /** TF_Version() reported by the loaded library. */
  tfVersion: string;
  /** The addon, relative to .tools/tfjs-node. */
  binding: string;
  gpu: boolean;
}

/** The build found under `root`/.tools/tfjs-node, or why there is none (a sentence for logs and skips). */
export function findNativeBuild(root: string = PROJECT_ROOT): { build: NativeBuild; dir: string } | { missing: string } {
  const dir = join(root, '.tools', 'tfjs-node');
  const stamp = join(dir, 'native.json');
  if (!existsSync(stamp)) {
    return { missing: `the native backend is not built: expected ${stamp}, found none (run \`npm run setup:native\`)` };
  }
  const build = JSON.parse(readFileSync(stamp, 'utf8')) as NativeBuild;
  const binding = join(dir, build.binding);
  if (!existsSync(binding)) return { missing: `${stamp} names the addon ${binding}, which does not exist (run \`npm run setup:native\`)` };
  return { build, dir };
}

/** The build in use after a successful loadNativeBackend(), for the run's record. */
let loaded: NativeBuild | undefined;

export function nativeBuild(): NativeBuild | undefined {
  return loaded;
}

interface NativeModules {
  NodeJSKernelBackend: new (binding: unknown, packageName: string) => tf.KernelBackend;
  createTensorsTypeOpAttr: (attrName: string, dtype: tf.DataType) => unknown;
}

/** The parts of tfjs-node's backend class that run a TensorFlow op by name. */
interface NativeKernelBackend extends tf.KernelBackend {
  executeSingleOutput(name: string, opAttrs: unknown[], inputs: tf.TensorInfo[]): tf.Tensor;
  executeMultipleOutputs(name: string, opAttrs: unknown[], inputs: tf.TensorInfo[], numOutputs: number): tf.Tensor[];
  binding: { TF_ATTR_FLOAT: number; TF_ATTR_STRING: number; TF_ATTR_BOOL: number };
}

/** A kernel of the 'tensorflow' backend only: TensorFlow's fused ReluGrad(gradients, features). */
const RELU_GRAD = 'ParamtrailReluGrad';

/**
 * Gives ReLU's gradient one TensorFlow kernel (ReluGrad) on the native backend. tfjs's own gradient,
 * dy * step(x), costs seven native ops (tfjs-node builds Step from IsNan, Greater, Fill, Select), and
 * ReLU follows every convolution. The registry of gradients is shared by all backends, so other backends
 * keep calling tfjs's gradient unchanged (their results stay bit-identical). One difference, on the native
 * backend only: where x is NaN, ReluGrad gives 0 and tfjs's gradient NaN (the loss is NaN either way).
 */
function installNativeGradients(mod: NativeModules): void {
  tf.registerKernel({
    kernelName: RELU_GRAD,
    backendName: NATIVE_BACKEND,
    kernelFunc: ({ inputs, backend }) => {
      const { dy, x } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
      return (backend as NativeKernelBackend).executeSingleOutput('ReluGrad', [mod.createTensorsTypeOpAttr('T', x.dtype)], [dy, x]);
    },
  });
  const original = tf.getGradient(tf.Relu);
  if (!original) throw new Error(`expected tfjs to register a gradient for ${tf.Relu}, found none`);
  tf.registerGradient({
    ...original,
    gradFunc: (dy, saved, attrs) => {
      if (tf.getBackend() !== NATIVE_BACKEND || Array.isArray(dy)) return original.gradFunc(dy, saved, attrs);
      const [x] = saved as tf.Tensor[];
      return { x: () => tf.engine().runKernel(RELU_GRAD, { dy, x: x! }) as tf.Tensor };
    },
  });
}

/**
 * Registers TensorFlow's fused training-mode batch norm (FusedBatchNormV3 and FusedBatchNormGradV3) as
 * the kernels of ml/kernels/batchnorm.ts. FusedBatchNormV3 also updates the running statistics:
 * with exponential_avg_factor = momentum it returns (1 - momentum) * running + momentum * batch, the
 * batch variance taken unbiased (n / (n - 1), or 1 when n = 1), which is PyTorch's rule. On the CPU its
 * opaque outputs are the batch mean, the biased batch variance and an empty tensor, which the gradient
 * kernel takes back.
 */
function installFusedBatchNorm(mod: NativeModules): void {
  const attrs = (backend: NativeKernelBackend, dtype: tf.DataType, epsilon: number) => [
    mod.createTensorsTypeOpAttr('T', dtype),
    mod.createTensorsTypeOpAttr('U', 'float32'),
    { name: 'epsilon', type: backend.binding.TF_ATTR_FLOAT, value: epsilon },
    { name: 'data_format', type: backend.binding.TF_ATTR_STRING, value: 'NHWC' },
    { name: 'is_training', type: backend.binding.TF_ATTR_BOOL, value: true },
  ];
  tf.registerKernel({
    kernelName: FUSED_BATCH_NORM_TRAIN,
    backendName: NATIVE_BACKEND,
    kernelFunc: ({ inputs, backend, attrs: a = {} }) => {
      const { x, scale, offset, mean, variance } = inputs as Record<string, tf.TensorInfo>;
      const b = backend as NativeKernelBackend;
      const opAttrs = [
        ...attrs(b, x!.dtype, a['epsilon'] as number),
        { name: 'exponential_avg_factor', type: b.binding.TF_ATTR_FLOAT, value: a['momentum'] as number },
      ];
      return b.executeMultipleOutputs('FusedBatchNormV3', opAttrs, [x!, scale!, offset!, mean!, variance!], 6);
    },
  });
  tf.registerKernel({
    kernelName: FUSED_BATCH_NORM_TRAIN_GRAD,
    backendName: NATIVE_BACKEND,
    kernelFunc: ({ inputs, backend, attrs: a = {} }) => {
      const { dy, x, scale, reserve1, reserve2, reserve3 } = inputs as Record<string, tf.TensorInfo>;
      const b = backend as NativeKernelBackend;
      const out = b.executeMultipleOutputs(
        'FusedBatchNormGradV3',
        attrs(b, x!.dtype, a['epsilon'] as number),
        [dy!, x!, scale!, reserve1!, reserve2!, reserve3!],
        5,
      );
      // The last two outputs are placeholders TensorFlow defines for the GPU kernel.
      tf.dispose(out.slice(3));
      return out.slice(0, 3);
    },
  });
  registerFusedBatchNormGradient();
}

/**
 * Computes the filter gradient of a strided 1x1 convolution as the stride-1 one of every s-th pixel of x.
 * TensorFlow 2.12's oneDNN Conv2DBackpropFilter is wrong for a 1x1 filter at stride 2 (every ResNet
 * projection shortcut): with few channels (input <= 4, output <= 8 here) and an even input height or
 * width, it returns values off by tens of percent, and identical calls can return different values.
 * Its forward Conv2D and Conv2DBackpropInput are right, and so is every other filter size and stride
 * tried (1, 2, 3, 4 and 7 at strides 1 to 3, 'same' and 'valid', 3 to 16 channels, 8 to 34 pixels). A 1x1
 * filter at stride s reads only the pixels at multiples of s and pads nothing under 'same' or 'valid'
 * alike, so the rewrite sums exactly the products the strided kernel should. Every strided 1x1 case takes
 * it, not just the failing shapes: the shapes where oneDNN fails depend on which of its kernels it picks.
 * ml/graph/step.ts writes the same rewrite into the step graph.
 */
function installConv2DBackpropFilter(): void {
  const original = tf.getKernel(tf.Conv2DBackpropFilter, NATIVE_BACKEND);
  const slice = tf.getKernel(tf.StridedSlice, NATIVE_BACKEND);
  if (!original || !slice) {
    throw new Error(`expected tfjs-node to register ${tf.Conv2DBackpropFilter} and ${tf.StridedSlice}, found no ${original ? tf.StridedSlice : tf.Conv2DBackpropFilter}`);
  }
  tf.unregisterKernel(tf.Conv2DBackpropFilter, NATIVE_BACKEND);
  tf.registerKernel({
    ...original,
    kernelFunc: (args) => {
      const a = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
      const [sh, sw] = typeof a.strides === 'number' ? [a.strides, a.strides] : a.strides;
      const [fh, fw] = a.filterShape;
      const pointwise = fh === 1 && fw === 1 && (sh > 1 || sw > 1) && (a.pad === 'same' || a.pad === 'valid') && a.dataFormat !== 'NCHW';
      if (!pointwise) return original.kernelFunc(args);
      const { x } = args.inputs as { x: tf.TensorInfo };
      const sliceAttrs: tf.StridedSliceAttrs = {
        begin: [0, 0, 0, 0],
        end: x.shape,
        strides: [1, sh, sw, 1],
        beginMask: 0,
        endMask: 0,
        ellipsisMask: 0,
        newAxisMask: 0,
        shrinkAxisMask: 0,
      };
      const xs = slice.kernelFunc({ inputs: { x }, backend: args.backend, attrs: sliceAttrs as unknown as tf.NamedAttrMap }) as tf.Tensor;
      try {
        return original.kernelFunc({ ...args, inputs: { ...args.inputs, x: xs }, attrs: { ...args.attrs, strides: 1, pad: 'valid' } });
      } finally {
        xs.dispose();
      }
    },
  });
}

/**
 * Registers the 'tensorflow' backend from the built addon and makes it the active backend. Answers false,
 * leaving the active backend as it was, when the addon is not built or does not initialise (`onMissing`
 * receives the reason). Idempotent.
 */
export async function loadNativeBackend(
  options: {
    root?: string;
    onMissing?: (reason: string) => void;
    /** Turn on TensorFlow's oneDNN kernels unless TF_ENABLE_ONEDNN_OPTS is already set (default true). */
    oneDnn?: boolean;
  } = {},
): Promise<boolean> {
  // Loaded and active already, as for every activity after a worker's first: nothing to read or switch.
  if (loaded && options.root === undefined && tf.getBackend() === NATIVE_BACKEND) return true;
  const found = findNativeBuild(options.root);
  if ('missing' in found) {
    options.onMissing?.(found.missing);
    return false;
  }
  const { build, dir } = found;
  const previous = tf.getBackend() as string | undefined | null;
  try {
    if (!tf.findBackendFactory(NATIVE_BACKEND)) {
      const pkg = join(dir, 'node_modules', ...build.package.split('/'));
      const require = createRequire(join(pkg, 'package.json'));
      // TensorFlow's oneDNN kernels (convolutions, their gradients, batch norm) halve a ResNet step here,
      // but only the Python package turns them on by default; the C library reads this variable from its
      // own environment, once, at its first op. An explicit setting, 0 included, is left as it is.
      if (options.oneDnn !== false) process.env['TF_ENABLE_ONEDNN_OPTS'] ??= '1';
      // Warnings and errors only: at level 0 the library prints INFO lines on stderr at load (oneDNN on, CPU
      // features) and for every SavedModel a graph step loads. Read once, at its first log line.
      process.env['TF_CPP_MIN_LOG_LEVEL'] ??= '1';
      // The addon first: a missing TF_*/TFE_* symbol or library fails here, before any kernel registers.
      const binding = require(join(dir, build.binding)) as unknown;
      require('./dist/register_all_kernels.js');
      const mod = require('./dist/nodejs_kernel_backend.js') as NativeModules;
      const { NodeJSKernelBackend } = mod;
      // Priority 0: registering must not change which backend code that never asks for one gets.
      tf.registerBackend(NATIVE_BACKEND, () => new NodeJSKernelBackend(binding, build.package), 0);
      installNativeGradients(mod);
      installFusedBatchNorm(mod);
      installConv2DBackpropFilter();
    }
    if (!(await tf.setBackend(NATIVE_BACKEND))) throw new Error(`tfjs could not initialise the '${NATIVE_BACKEND}' backend`);
  } catch (err) {
    if (previous) await tf.setBackend(previous);
    options.onMissing?.(`the native backend in ${dir} failed to load: ${(err as Error).message}`);
    return false;
  }
  loaded = build;
  return true;
}
