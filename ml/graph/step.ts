/**
 * The training step of a paramtrail model as one TensorFlow graph: the forward pass in training mode, mean
 * softmax cross-entropy, a hand-written backward pass, the batch-norm running-statistics update and the
 * optimizer update of ml/train/optimizers.ts, all on resource variables that live in the session between
 * runs. Four entry points are fetched by name:
 *
 * - `load/done`: assigns every variable from placeholders `load/<i>` (model weights, then optimizer slots).
 * - `read/<i>`: every variable's value, in the same order.
 * - `step/loss`, `step/correct`: one step on placeholders `x` [B, H, W, C] float32, `y` [B] int32 and the
 *   scalars `lr`, `lr_wd` (lr * weight decay, in float64 before rounding, as the eager optimizer computes
 *   it), `bc1` and `bc2` (Adam's bias corrections from the integer step). The updates run through control
 *   dependencies of these two outputs, since the session fetches outputs only.
 * - `eval/logits`: the logits of `x` in inference mode (batch norm on its running statistics), for
 *   evaluation; it updates nothing.
 *
 * Each variable is read once per step (one ReadVariableOp), and every assignment depends on that read
 * through its data, so every gradient sees the weights from before the update. Resource variables copy on
 * write while a read value is still in use.
 *
 * Supported layers: Dense and Conv2D (channels last, no dilation; activations linear, relu, tanh,
 * sigmoid), AveragePooling2D, MaxPooling2D, GlobalAveragePooling2D, AdaptiveAvgPool2D to the input size or
 * to 1x1, ZeroPadding2D, Flatten, Add, Activation, ReLU (no max value), LeakyReLU, ScaledTanh, BatchNorm
 * (training mode, or frozen: normalising with its running statistics), SeededDropout with rate 0. Any other
 * layer or option makes buildStepGraph answer with the reason, and the caller trains eagerly.
 *
 * Called by ml/graph/trainer.ts.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { BatchNorm } from '../models/layers.js';
import type { OptimizerSpec } from '../train/optimizers.js';
import { modelVariables } from '../train/weights.js';
import { GraphBuilder, type T } from './builder.js';
import { DT, type Attr } from './proto.js';

/** A variable of the session, in load/read order. */
export interface GraphVariable {
  layer: string;
  name: string;
  shape: number[];
}

export interface StepGraph {
  /** saved_model.pb. */
  bytes: Uint8Array;
  /** The model's variables (modelVariables order), then the optimizer's slots (its state order, Adam's step excluded). */
  variables: GraphVariable[];
  /** How many of `variables` are the model's. */
  modelVariableCount: number;
  /** Nodes the step graph has, for tests and logs. */
  nodeCount: number;
  /** The node names to feed and fetch. Optional hyperparameter feeds exist only when the update uses them. */
  names: {
    feeds: { x: T; y: T; lr: T; lrWd?: T; bc1?: T; bc2?: T };
    fetches: { loss: T; correct: T };
    /** The logits [B, classes] of `x` in inference mode (batch norm on its running statistics), with no update. */
    logits: T;
    load: { feeds: T[]; done: T };
    read: T[];
  };
}

/** Why a model or option cannot run as a graph; the caller falls back to eager training. */
export class UnsupportedGraphError extends Error {
  override name = 'UnsupportedGraphError';
}

const unsupported = (why: string): never => {
  throw new UnsupportedGraphError(why);
};

const INT: Attr = { type: DT.int32 };
const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.999;
const ADAM_EPSILON = 1e-8;

type Config = Record<string, unknown>;
interface SymTensor {
  id: number;
  shape: Array<number | null>;
}
interface LayerNode {
  inputTensors: SymTensor[];
  outputTensors: SymTensor[];
}
/** What a layer's forward pass leaves for the backward pass: the gradient of each input given the output's. */
type Backward = (dy: T) => Array<T | undefined>;

interface Activation {
  y: T;
  /** The gradient with respect to the activation's input. */
  grad: (dy: T) => T;
}

function pair(v: unknown, what: string): [number, number] {
  const a = Array.isArray(v) ? v : [v, v];
  if (a.length !== 2 || !a.every((n) => Number.isInteger(n))) unsupported(`${what}: expected two integers, found ${JSON.stringify(v)}`);
  return [a[0] as number, a[1] as number];
}

/** Builds the step graph of `model` (already frozen as the run wants) under `spec`. Throws UnsupportedGraphError. */
export function buildStepGraph(model: tfl.LayersModel, spec: OptimizerSpec): StepGraph {
  const g = new GraphBuilder();
  const vars = modelVariables(model);
  const byKey = new Map(vars.map((v, i) => [`${v.layer}/${v.name}`, i]));
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    unsupported(`expected a model with one input and one output, found ${model.inputs.length} and ${model.outputs.length}`);
  }
  const inputShape = model.inputs[0]!.shape;
  if (inputShape.length !== 4) unsupported(`expected a 4-D input [N, H, W, C], found [${inputShape.join(', ')}]`);

  // Variables and their one read per step.
  const handles = vars.map((v) => g.variable(`var/${v.layer}/${v.name}`, v.shape));
  const reads = vars.map((v, i) => g.read(`step/read/${v.layer}/${v.name}`, handles[i]!));
  const readOf = (layer: string, name: string): T => {
    const i = byKey.get(`${layer}/${name}`);
    if (i === undefined) return unsupported(`layer ${layer}: expected a variable named ${name}, found none`);
    return reads[i]!;
  };
  const trainable = (layer: string, name: string) => vars[byKey.get(`${layer}/${name}`)!]!.trainable;
  /** Gradient of each trainable variable, by index into vars. */
  const grads = new Map<number, T>();
  const setGrad = (layer: string, name: string, grad: T) => {
    if (trainable(layer, name)) grads.set(byKey.get(`${layer}/${name}`)!, grad);
  };
  /** Assignments the step makes besides the optimizer's (batch-norm running statistics). */
  const assigns: string[] = [];

  const x = g.placeholder('x', 'float32', [-1, ...(inputShape.slice(1) as number[])]);
  const labels = g.placeholder('y', 'int32', [-1]);
  const lr = g.placeholder('lr', 'float32', []);
  const lrWd = g.placeholder('lr_wd', 'float32', []);
  const bc1 = g.placeholder('bc1', 'float32', []);
  const bc2 = g.placeholder('bc2', 'float32', []);

  const shapeOf = (name: string, t: T) => g.op('Shape', name, [t], { T: { type: DT.float }, out_type: INT });

  const activation = (name: string, kind: string, z: T, alpha = 0): Activation => {
    switch (kind) {
      case 'linear':
        return { y: z, grad: (dy) => dy };
      case 'relu': {
        const y = g.f('Relu', name, [z]);
        // ReluGrad of the output: y > 0 exactly where z > 0, and z can then fuse into the producer.
        return { y, grad: (dy) => g.f('ReluGrad', `${name}/grad`, [dy, y]) };
      }
      case 'tanh': {
        const y = g.f('Tanh', name, [z]);
        return { y, grad: (dy) => g.f('TanhGrad', `${name}/grad`, [y, dy]) };
      }
      case 'sigmoid': {
        const y = g.f('Sigmoid', name, [z]);
        return { y, grad: (dy) => g.f('SigmoidGrad', `${name}/grad`, [y, dy]) };
      }
      case 'leaky': {
        const y = g.f('LeakyRelu', name, [z], { alpha: { f: alpha } });
        return { y, grad: (dy) => g.f('LeakyReluGrad', `${name}/grad`, [dy, z], { alpha: { f: alpha } }) };
      }
      case 'scaled-tanh': {
        // 1.7159 tanh(2z/3), as ScaledTanh (ml/models/mlp.ts) computes it.
        const t = g.f('Tanh', `${name}/tanh`, [g.mul(`${name}/in`, g.constF(`${name}/two_thirds`, [2 / 3]), z)]);
        const y = g.mul(name, g.constF(`${name}/scale`, [1.7159]), t);
        return {
          y,
          grad: (dy) => {
            const dt = g.mul(`${name}/grad/dt`, dy, g.constF(`${name}/grad/scale`, [1.7159]));
            return g.mul(`${name}/grad`, g.f('TanhGrad', `${name}/grad/tanh`, [t, dt]), g.constF(`${name}/grad/two_thirds`, [2 / 3]));
          },
        };
      }
      default:
        return unsupported(`activation ${kind} of layer ${name}: expected linear, relu, tanh or sigmoid`);
    }
  };

  /**
   * Forward of one layer on its inputs; `need[i]` says whether input i's gradient is wanted. In
   * `inference` mode batch norm normalises with its running statistics and updates nothing.
   */
  const forward = (layer: tfl.layers.Layer, inputs: T[], node: LayerNode, need: boolean[], inference = false): { y: T; back: Backward } => {
    const cls = layer.getClassName();
    const cfg = layer.getConfig() as Config;
    const name = layer.name;
    const inShape = node.inputTensors[0]!.shape;
    const outShape = node.outputTensors[0]!.shape;
    const x0 = inputs[0]!;
    if (cfg['dataFormat'] !== undefined && cfg['dataFormat'] !== 'channelsLast') {
      unsupported(`layer ${name} (${cls}): expected dataFormat channelsLast, found ${String(cfg['dataFormat'])}`);
    }
    const fixed = (shape: Array<number | null>) => shape.slice(1).map((d) => (d === null ? unsupported(`layer ${name}: expected a known shape, found [${shape.join(', ')}]`) : d));
    switch (cls) {
      case 'Dense': {
        if (inShape.length !== 2) unsupported(`layer ${name} (Dense): expected a 2-D input, found [${inShape.join(', ')}]`);
        const w = readOf(name, 'kernel');
        let z = g.f('MatMul', `${name}/matmul`, [x0, w], { transpose_a: { b: false }, transpose_b: { b: false } });
        if (cfg['useBias']) z = g.f('BiasAdd', `${name}/bias`, [z, readOf(name, 'bias')], { data_format: { s: 'NHWC' } });
        const act = activation(`${name}/act`, String(cfg['activation']), z);
        return {
          y: act.y,
          back: (dy) => {
            const dz = act.grad(dy);
            setGrad(name, 'kernel', g.f('MatMul', `${name}/grad/kernel`, [x0, dz], { transpose_a: { b: true }, transpose_b: { b: false } }));
            if (cfg['useBias']) setGrad(name, 'bias', g.f('BiasAddGrad', `${name}/grad/bias`, [dz], { data_format: { s: 'NHWC' } }));
            return [need[0] ? g.f('MatMul', `${name}/grad/x`, [dz, w], { transpose_a: { b: false }, transpose_b: { b: true } }) : undefined];
          },
        };
      }
      case 'Conv2D': {
        const [kh, kw] = pair(cfg['kernelSize'], `layer ${name} kernelSize`);
        const [sh, sw] = pair(cfg['strides'], `layer ${name} strides`);
        const [dh, dw] = pair(cfg['dilationRate'] ?? 1, `layer ${name} dilationRate`);
        if (dh !== 1 || dw !== 1) unsupported(`layer ${name} (Conv2D): expected dilation 1, found ${dh}x${dw}`);
        const padding = cfg['padding'] === 'same' ? 'SAME' : cfg['padding'] === 'valid' ? 'VALID' : unsupported(`layer ${name}: padding ${String(cfg['padding'])}`);
        const w = readOf(name, 'kernel');
        const attrs: Record<string, Attr> = {
          strides: { listI: [1, sh, sw, 1] },
          padding: { s: padding },
          data_format: { s: 'NHWC' },
          dilations: { listI: [1, 1, 1, 1] },
          use_cudnn_on_gpu: { b: true },
        };
        // A strided 1x1 convolution (a projection shortcut) is a stride-1 one on every s-th pixel. Written
        // that way because TensorFlow 2.12's oneDNN filter gradient of a strided 1x1 convolution is
        // intermittently wrong: identical inputs give different results, run to run.
        const subsample = kh === 1 && kw === 1 && (sh > 1 || sw > 1);
        const slice = subsample
          ? {
              begin: g.constI(`${name}/subsample/begin`, [0, 0, 0, 0]),
              end: g.constI(`${name}/subsample/end`, [0, 0, 0, 0]),
              strides: g.constI(`${name}/subsample/strides`, [1, sh, sw, 1]),
              attrs: { T: { type: DT.float }, Index: INT, begin_mask: { i: 15 }, end_mask: { i: 15 }, ellipsis_mask: { i: 0 }, new_axis_mask: { i: 0 }, shrink_axis_mask: { i: 0 } } as Record<string, Attr>,
            }
          : undefined;
        const xc = slice ? g.op('StridedSlice', `${name}/subsample`, [x0, slice.begin, slice.end, slice.strides], slice.attrs) : x0;
        if (slice) attrs['strides'] = { listI: [1, 1, 1, 1] };
        let z = g.f('Conv2D', `${name}/conv`, [xc, w], attrs);
        if (cfg['useBias']) z = g.f('BiasAdd', `${name}/bias`, [z, readOf(name, 'bias')], { data_format: { s: 'NHWC' } });
        const act = activation(`${name}/act`, String(cfg['activation']), z);
        const cin = inShape[3]!;
        const filters = cfg['filters'] as number;
        return {
          y: act.y,
          back: (dy) => {
            const dz = act.grad(dy);
            const sizes = g.constI(`${name}/grad/filter_sizes`, [kh, kw, cin, filters]);
            setGrad(name, 'kernel', g.f('Conv2DBackpropFilter', `${name}/grad/kernel`, [xc, sizes, dz], attrs));
            if (cfg['useBias']) setGrad(name, 'bias', g.f('BiasAddGrad', `${name}/grad/bias`, [dz], { data_format: { s: 'NHWC' } }));
            if (!need[0]) return [undefined];
            const dxc = g.f('Conv2DBackpropInput', `${name}/grad/x`, [shapeOf(`${name}/grad/x_shape`, xc), w, dz], attrs);
            if (!slice) return [dxc];
            return [g.op('StridedSliceGrad', `${name}/grad/subsample`, [shapeOf(`${name}/grad/full_shape`, x0), slice.begin, slice.end, slice.strides, dxc], slice.attrs)];
          },
        };
      }
      case 'AveragePooling2D':
      case 'MaxPooling2D': {
        const [ph, pw] = pair(cfg['poolSize'], `layer ${name} poolSize`);
        const [sh, sw] = pair(cfg['strides'] ?? cfg['poolSize'], `layer ${name} strides`);
        const padding = cfg['padding'] === 'same' ? 'SAME' : cfg['padding'] === 'valid' ? 'VALID' : unsupported(`layer ${name}: padding ${String(cfg['padding'])}`);
        const attrs: Record<string, Attr> = { ksize: { listI: [1, ph, pw, 1] }, strides: { listI: [1, sh, sw, 1] }, padding: { s: padding }, data_format: { s: 'NHWC' } };
        if (cls === 'AveragePooling2D') {
          const y = g.f('AvgPool', name, [x0], attrs);
          return { y, back: (dy) => [need[0] ? g.f('AvgPoolGrad', `${name}/grad`, [shapeOf(`${name}/grad/x_shape`, x0), dy], attrs) : undefined] };
        }
        const y = g.f('MaxPool', name, [x0], attrs);
        return { y, back: (dy) => [need[0] ? g.f('MaxPoolGrad', `${name}/grad`, [x0, y, dy], attrs) : undefined] };
      }
      case 'GlobalAveragePooling2D':
      case 'AdaptiveAvgPool2D': {
        const [h, w, c] = fixed(inShape) as [number, number, number];
        const keep = cls === 'AdaptiveAvgPool2D';
        if (keep) {
          const s = cfg['outputSize'] as number;
          if (h === s && w === s) return { y: x0, back: (dy) => [dy] };
          if (s !== 1) unsupported(`layer ${name} (AdaptiveAvgPool2D): expected an output of 1x1 or the input size, found ${s}x${s} from ${h}x${w}`);
        }
        const y = g.op('Mean', name, [x0, g.constI(`${name}/axes`, [1, 2])], { T: { type: DT.float }, Tidx: INT, keep_dims: { b: keep } });
        return {
          y,
          back: (dy) => {
            if (!need[0]) return [undefined];
            // The mean's gradient: dy / (H W) broadcast over the pooled positions.
            const d4 = keep ? dy : g.reshape(`${name}/grad/dy`, dy, [-1, 1, 1, c]);
            return [g.mul(`${name}/grad`, d4, g.constF(`${name}/grad/spread`, new Float32Array(h * w * c).fill(1 / (h * w)), [1, h, w, c]))];
          },
        };
      }
      case 'ZeroPadding2D': {
        const p = cfg['padding'] as number[][];
        const [[t, b], [l, r]] = [pair(p[0], `layer ${name} padding`), pair(p[1], `layer ${name} padding`)];
        const [h, w, c] = fixed(inShape) as [number, number, number];
        const y = g.op('Pad', name, [x0, g.constI(`${name}/paddings`, [0, 0, t, b, l, r, 0, 0], [4, 2])], { T: { type: DT.float }, Tpaddings: INT });
        return {
          y,
          back: (dy) => [
            need[0]
              ? g.op('Slice', `${name}/grad`, [dy, g.constI(`${name}/grad/begin`, [0, t, l, 0]), g.constI(`${name}/grad/size`, [-1, h, w, c])], { T: { type: DT.float }, Index: INT })
              : undefined,
          ],
        };
      }
      case 'Flatten': {
        const rest = fixed(inShape);
        const y = g.reshape(name, x0, [-1, fixed(outShape)[0]!]);
        return { y, back: (dy) => [need[0] ? g.reshape(`${name}/grad`, dy, [-1, ...rest]) : undefined] };
      }
      case 'Add': {
        const y = inputs.length === 2 ? g.add(name, inputs[0]!, inputs[1]!) : g.sum(name, inputs);
        return { y, back: (dy) => inputs.map((_, i) => (need[i] ? dy : undefined)) };
      }
      case 'Activation':
      case 'ReLU':
      case 'LeakyReLU':
      case 'ScaledTanh': {
        if (cls === 'ReLU' && cfg['maxValue'] != null) unsupported(`layer ${name} (ReLU): expected no maxValue, found ${String(cfg['maxValue'])}`);
        const kind = cls === 'Activation' ? String(cfg['activation']) : cls === 'ReLU' ? 'relu' : cls === 'LeakyReLU' ? 'leaky' : 'scaled-tanh';
        const act = activation(name, kind, x0, (cfg['alpha'] as number | undefined) ?? 0);
        return { y: act.y, back: (dy) => [need[0] ? act.grad(dy) : undefined] };
      }
      case 'SeededDropout': {
        if (cfg['rate'] !== 0) unsupported(`layer ${name} (SeededDropout): dropout masks are drawn in JavaScript; expected rate 0, found ${String(cfg['rate'])}`);
        return { y: x0, back: (dy) => [dy] };
      }
      case 'BatchNorm':
        return batchNorm(layer as BatchNorm, x0, inShape, need[0]!, inference);
      default:
        return unsupported(`layer ${name}: ${cls} has no graph form`);
    }
  };

  const batchNorm = (layer: BatchNorm, x0: T, inShape: Array<number | null>, needX: boolean, inference: boolean): { y: T; back: Backward } => {
    const name = layer.name;
    const rank = inShape.length;
    if (rank !== 2 && rank !== 4) unsupported(`layer ${name} (BatchNorm): expected a 2-D or 4-D input, found [${inShape.join(', ')}]`);
    const c = inShape[rank - 1]!;
    const gamma = readOf(name, 'gamma');
    const beta = readOf(name, 'beta');
    const mean = readOf(name, 'moving_mean');
    const variance = readOf(name, 'moving_variance');
    if (!layer.trainable || inference) {
      // Frozen, or inference: normalise with the running statistics, as y = x k + (beta - mean k), k = gamma / sqrt(var + eps).
      const k = g.mul(`${name}/k`, gamma, g.f('Rsqrt', `${name}/rsqrt`, [g.add(`${name}/var_eps`, variance, g.constF(`${name}/eps`, [layer.epsilon]))]));
      const y = g.add(name, g.mul(`${name}/scaled`, x0, k), g.sub(`${name}/shift`, beta, g.mul(`${name}/mean_k`, mean, k)));
      return { y, back: (dy) => [needX ? g.mul(`${name}/grad`, dy, k) : undefined] };
    }
    // TensorFlow's fused kernels take 4-D NHWC; a dense [N, C] batch is N images of 1 x 1 pixels.
    const x4 = rank === 4 ? x0 : g.reshape(`${name}/x4`, x0, [-1, 1, 1, c]);
    const attrs: Record<string, Attr> = {
      T: { type: DT.float },
      U: { type: DT.float },
      epsilon: { f: layer.epsilon },
      data_format: { s: 'NHWC' },
      is_training: { b: true },
    };
    // exponential_avg_factor = momentum: outputs 1 and 2 are the updated running statistics, the variance
    // taken unbiased, which is PyTorch's rule and BatchNorm's (see ml/backends/native.ts).
    const fused = g.op('FusedBatchNormV3', name, [x4, gamma, beta, mean, variance], { ...attrs, exponential_avg_factor: { f: layer.momentum } });
    const handleOf = (v: string) => handles[byKey.get(`${name}/${v}`)!]!;
    assigns.push(g.assign(`${name}/update_mean`, handleOf('moving_mean'), `${fused}:1`));
    assigns.push(g.assign(`${name}/update_variance`, handleOf('moving_variance'), `${fused}:2`));
    const y = rank === 4 ? fused : g.reshape(`${name}/y`, fused, [-1, c]);
    return {
      y,
      back: (dy) => {
        const dy4 = rank === 4 ? dy : g.reshape(`${name}/grad/dy4`, dy, [-1, 1, 1, c]);
        const grad = g.op('FusedBatchNormGradV3', `${name}/grad`, [dy4, x4, gamma, `${fused}:3`, `${fused}:4`, `${fused}:5`], attrs);
        setGrad(name, 'gamma', `${grad}:1`);
        setGrad(name, 'beta', `${grad}:2`);
        if (!needX) return [undefined];
        return [rank === 4 ? grad : g.reshape(`${name}/grad/x`, grad, [-1, c])];
      },
    };
  };

  // Forward, in an order where every layer's inputs exist (the model's own list, checked).
  const values = new Map<number, T>([[model.inputs[0]!.id, x]]);
  const needsGrad = new Map<number, boolean>([[model.inputs[0]!.id, false]]);
  const tape: Array<{ layer: tfl.layers.Layer; node: LayerNode; back: Backward; need: boolean[] }> = [];
  let pending = (model.layers as tfl.layers.Layer[]).filter((l) => l.getClassName() !== 'InputLayer');
  while (pending.length > 0) {
    const next: tfl.layers.Layer[] = [];
    for (const layer of pending) {
      const nodes = (layer as unknown as { inboundNodes: LayerNode[] }).inboundNodes;
      if (nodes.length !== 1) unsupported(`layer ${layer.name}: expected to be called once in the model, found ${nodes.length} calls`);
      const node = nodes[0]!;
      if (!node.inputTensors.every((t) => values.has(t.id))) {
        next.push(layer);
        continue;
      }
      if (node.outputTensors.length !== 1) unsupported(`layer ${layer.name}: expected one output, found ${node.outputTensors.length}`);
      const inputs = node.inputTensors.map((t) => values.get(t.id)!);
      const need = node.inputTensors.map((t) => needsGrad.get(t.id)!);
      const hasTrainable = vars.some((v) => v.layer === layer.name && v.trainable);
      const { y, back } = forward(layer, inputs, node, need);
      values.set(node.outputTensors[0]!.id, y);
      needsGrad.set(node.outputTensors[0]!.id, hasTrainable || need.some(Boolean));
      tape.push({ layer, node, back, need });
    }
    if (next.length === pending.length) unsupported(`layers ${next.map((l) => l.name).join(', ')} take inputs no other layer produces`);
    pending = next;
  }
  const logits = values.get(model.outputs[0]!.id);
  if (logits === undefined) return unsupported('the model output is not produced by its layers');
  const classes = model.outputs[0]!.shape.at(-1);
  if (model.outputs[0]!.shape.length !== 2 || typeof classes !== 'number') {
    unsupported(`expected logits [N, classes], found [${model.outputs[0]!.shape.join(', ')}]`);
  }

  // The same layers again in inference mode, for evaluation: fetching its logits runs no update. Where a
  // layer computes the same in both modes, TensorFlow's optimiser merges the two forward passes.
  const inferred = new Map<number, T>([[model.inputs[0]!.id, x]]);
  for (const { layer, node } of tape) {
    const inputs = node.inputTensors.map((t) => inferred.get(t.id)!);
    inferred.set(node.outputTensors[0]!.id, forward(layer, inputs, node, inputs.map(() => false), true).y);
  }
  const evalLogits = g.op('Identity', 'eval/logits', [inferred.get(model.outputs[0]!.id)!], { T: { type: DT.float } });

  // Loss, accuracy and the logits' gradient (SparseSoftmaxCrossEntropyWithLogits returns both).
  const xent = g.op('SparseSoftmaxCrossEntropyWithLogits', 'loss/xent', [logits, labels], { T: { type: DT.float }, Tlabels: INT });
  const loss = g.op('Mean', 'loss/mean', [xent, g.constI('loss/axes', [0])], { T: { type: DT.float }, Tidx: INT, keep_dims: { b: false } });
  const count = g.op('Cast', 'loss/count', [g.op('Size', 'loss/size', [labels], { T: INT, out_type: INT })], { SrcT: INT, DstT: { type: DT.float }, Truncate: { b: false } });
  const predicted = g.op('ArgMax', 'accuracy/argmax', [logits, g.constI('accuracy/axis', [1], [])], { T: { type: DT.float }, Tidx: INT, output_type: INT });
  const hits = g.op('Cast', 'accuracy/hits', [g.op('Equal', 'accuracy/equal', [predicted, labels], { T: INT, incompatible_shape_error: { b: true } })], {
    SrcT: { type: DT.bool },
    DstT: INT,
    Truncate: { b: false },
  });
  const correct = g.op('Sum', 'accuracy/correct', [hits, g.constI('accuracy/axes', [0])], { T: INT, Tidx: INT, keep_dims: { b: false } });

  // Backward, accumulating the gradient of every tensor that feeds several consumers.
  const pendingGrads = new Map<number, T[]>([[model.outputs[0]!.id, [g.div('loss/grad', `${xent}:1`, count)]]]);
  for (let i = tape.length - 1; i >= 0; i--) {
    const { node, back, need } = tape[i]!;
    const out = node.outputTensors[0]!.id;
    const terms = pendingGrads.get(out);
    if (!terms) continue; // does not reach the loss
    // Named by the tape position, not the tensor id (a process-wide counter): the same model and
    // optimizer always give the same graph bytes, which is how ml/graph/trainer.ts reuses sessions.
    const dxs = back(g.sum(`grad/sum_${i}`, terms));
    node.inputTensors.forEach((t, k) => {
      const dx = dxs[k];
      if (dx === undefined || !need[k]) return;
      pendingGrads.set(t.id, [...(pendingGrads.get(t.id) ?? []), dx]);
    });
  }

  // The optimizer, as ml/train/optimizers.ts: over the trainable variables in modelVariables order.
  const params = vars.map((v, i) => ({ ...v, i })).filter((v) => v.trainable);
  for (const p of params) if (!grads.has(p.i)) unsupported(`no gradient for ${p.layer}/${p.name}: it does not reach the loss`);
  const slots: Array<GraphVariable & { handle: T }> = [];
  const slotVariable = (p: (typeof params)[number], suffix: string) => {
    const handle = g.variable(`slot/${p.layer}/${p.name}/${suffix}`, p.shape);
    slots.push({ layer: p.layer, name: `${p.name}/${suffix}`, shape: p.shape, handle });
    return { handle, value: g.read(`step/read/${p.layer}/${p.name}/${suffix}`, handle) };
  };
  if (spec.name !== 'sgd' && spec.name !== 'adam') unsupported(`optimizer ${String((spec as { name: unknown }).name)}`);
  const weightDecay = spec.weightDecay ?? 0;
  const decoupled = spec.decoupledWeightDecay ?? false;
  const momentum = spec.momentum ?? 0;
  // Slots in the eager optimizer's state order: SGD's buffers; Adam's m for every parameter, then v.
  const state =
    spec.name === 'sgd'
      ? params.map((p) => (momentum > 0 ? [slotVariable(p, 'momentum')] : []))
      : ((m, v) => params.map((_, k) => [m[k]!, v[k]!]))(params.map((p) => slotVariable(p, 'm')), params.map((p) => slotVariable(p, 'v')));
  const constants = new Map<number, T>();
  /** A float32 constant; the eager optimizer's JavaScript numbers round to the same float32 values. */
  const c = (value: number) => {
    if (!constants.has(value)) constants.set(value, g.constF(`opt/c${constants.size}`, [value]));
    return constants.get(value)!;
  };
  params.forEach((p, k) => {
    const s = state[k]!;
    const n = `opt/${p.layer}/${p.name}`;
    let w = reads[p.i]!;
    let grad = grads.get(p.i)!;
    if (weightDecay !== 0) {
      if (decoupled) w = g.sub(`${n}/decayed`, w, g.mul(`${n}/decay`, w, lrWd));
      else grad = g.add(`${n}/l2`, grad, g.mul(`${n}/l2_term`, w, c(weightDecay)));
    }
    let step: T;
    if (spec.name === 'sgd') {
      let direction = grad;
      if (momentum > 0) {
        const buf = g.add(`${n}/buf`, g.mul(`${n}/buf_decay`, s[0]!.value, c(momentum)), grad);
        assigns.push(g.assign(`${n}/update_buf`, s[0]!.handle, buf));
        direction = spec.nesterov ? g.add(`${n}/nesterov`, grad, g.mul(`${n}/nesterov_term`, buf, c(momentum))) : buf;
      }
      step = g.mul(`${n}/step`, direction, lr);
    } else {
      const m = g.add(`${n}/m`, g.mul(`${n}/m_decay`, s[0]!.value, c(ADAM_BETA1)), g.mul(`${n}/m_new`, grad, c(1 - ADAM_BETA1)));
      const v = g.add(`${n}/v`, g.mul(`${n}/v_decay`, s[1]!.value, c(ADAM_BETA2)), g.mul(`${n}/v_new`, g.f('Square', `${n}/g2`, [grad]), c(1 - ADAM_BETA2)));
      assigns.push(g.assign(`${n}/update_m`, s[0]!.handle, m));
      assigns.push(g.assign(`${n}/update_v`, s[1]!.handle, v));
      const denom = g.add(`${n}/denom`, g.f('Sqrt', `${n}/sqrt`, [g.div(`${n}/v_hat`, v, bc2)]), c(ADAM_EPSILON));
      step = g.mul(`${n}/step`, g.div(`${n}/ratio`, g.div(`${n}/m_hat`, m, bc1), denom), lr);
    }
    assigns.push(g.assign(`${n}/update`, handles[p.i]!, g.sub(`${n}/w`, w, step)));
  });
  const fetches = { loss: g.after('step/loss', loss, assigns), correct: g.after('step/correct', correct, assigns, 'int32') };
  // Hyperparameters the update does not use are not fed (the session refuses feeds of pruned nodes).
  const uses = (t: T) => g.nodes.some((node) => node.inputs.includes(t));
  const feeds = { x, y: labels, lr, ...(uses(lrWd) ? { lrWd } : {}), ...(uses(bc1) ? { bc1, bc2 } : {}) };

  // Load and read entry points over model variables and slots alike.
  const allHandles = [...handles, ...slots.map((s) => s.handle)];
  const allVariables: GraphVariable[] = [...vars.map((v) => ({ layer: v.layer, name: v.name, shape: v.shape })), ...slots.map(({ layer, name, shape }) => ({ layer, name, shape }))];
  const loadFeeds = allVariables.map((v, i) => g.placeholder(`load/${i}`, 'float32', v.shape));
  const loads = allVariables.map((_, i) => g.assign(`load/assign_${i}`, allHandles[i]!, loadFeeds[i]!));
  const loadDone = g.after('load/done', g.constF('load/token', [0]), loads);
  const readFetches = allVariables.map((_, i) => g.op('ReadVariableOp', `read/${i}`, [allHandles[i]!], { dtype: { type: DT.float } }));
  return {
    bytes: g.toSavedModel(), variables: allVariables, modelVariableCount: vars.length, nodeCount: g.nodes.length,
    names: { feeds, fetches, logits: evalLogits, load: { feeds: loadFeeds, done: loadDone }, read: readFetches },
  };
}
