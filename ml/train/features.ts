/**
 * A model's features on a set of examples: the activations of every layer that has parameters, in the
 * depth order of the distance table, and the classifier's input (the "penultimate" features), each as an
 * (examples x features) matrix for the correlation, CKA and smoothness analyses (ml/metrics/gram.ts).
 *
 * Which activation is a layer's features: its output, except when the layer's output goes to one
 * parameter-free activation layer and nowhere else (tfjs's ReLU / Activation / LeakyReLU / ELU ...
 * layers, as the CNN, VGG and ResNet builders use). Then the activation's output is taken, so a
 * convolution or batch norm followed by ReLU gives what the next layer sees, and matches a dense layer
 * with a built-in activation. A convolution followed by batch norm keeps its raw output (the batch
 * norm is a layer with parameters of its own, whose features are then post-activation).
 *
 * Penultimate: the input of the model's last dense layer. When that input is one layer's features
 * (looking through dropout, the identity at inference), it is named after that layer and not computed
 * twice; otherwise (a global pooling, a flatten) it is computed as an extra matrix named after the
 * layer that produces it.
 *
 * Layers of more than two dimensions ([n, h, w, c] from a convolution) are pooled: `mean` averages over
 * every axis between the first and the last (the spatial positions) to [n, c]; `flatten` keeps all
 * [n, h * w * c] values.
 *
 * Inference mode throughout (training: false): dropout passes inputs through, batch norm uses its
 * running statistics. Each batch runs inside tf.tidy; only the returned Float32Arrays outlive it.
 *
 * Called by the features activity; pure apart from tfjs (no I/O).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { FeatureMatrix } from '../metrics/gram.js';
import type { Split } from '../data/datasets.js';

/** How activations of more than two dimensions become one feature vector per example. */
export type FeaturePooling = 'mean' | 'flatten';

/** Parameter-free layers that apply an element-wise activation (tfjs-layers class names). */
const ACTIVATION_LAYERS = new Set(['Activation', 'ReLU', 'LeakyReLU', 'ELU', 'ThresholdedReLU', 'Softmax', 'ScaledTanh']);

/** Layers that are the identity at inference, looked through when naming the penultimate features. */
const isInferenceIdentity = (layer: tfl.layers.Layer) => /Dropout$/.test(layer.getClassName()) || layer.getClassName() === 'GaussianNoise';

export interface FeatureSource {
  /** The layer with parameters (or, for an extra penultimate entry, the layer producing the tensor). */
  layer: string;
  /** 0-based order among the layers with parameters; -1 for an extra penultimate entry. */
  depth: number;
  /** Name of the layer whose output is taken: `layer` itself, or the activation that follows it. */
  from: string;
}

/** Which tensors `modelFeatures` computes for a model. */
export interface FeaturePlan {
  /** Every layer with parameters, by depth. */
  layers: FeatureSource[];
  /** The classifier's input: one of `layers`, or an extra entry with depth -1. */
  penultimate: FeatureSource;
  /** The last dense layer, whose input the penultimate features are. */
  classifier: string;
}

/** A (examples x features) matrix of one layer, in float32 as the activations come out of tfjs. */
export interface LayerFeatures extends FeatureSource {
  features: FeatureMatrix & { values: Float32Array };
}

export interface ModelFeatures {
  layers: LayerFeatures[];
  /** The same object as the entry of `layers` when the classifier reads one layer's features. */
  penultimate: LayerFeatures;
}

export interface FeaturesArgs {
  /** How [n, h, w, c] activations are reduced; default 'mean'. */
  pool?: FeaturePooling;
  /** Examples per forward pass; default 100. */
  batchSize?: number;
  /** Checked between batches. */
  signal?: AbortSignal;
  /** Called after each batch with the examples done so far and the total. */
  onBatch?: (done: number, total: number) => void;
}

interface PlanWithTensors {
  plan: FeaturePlan;
  /** The symbolic tensor of each plan entry: layers first, then the penultimate when it is extra. */
  outputs: tfl.SymbolicTensor[];
}

function singleOutput(layer: tfl.layers.Layer): tfl.SymbolicTensor {
  const out = layer.output;
  if (Array.isArray(out)) throw new Error(`features: expected layer ${layer.name} to have one output, found ${out.length}`);
  return out;
}

function planOf(model: tfl.LayersModel): PlanWithTensors {
  const inModel = new Set(model.layers);
  const layers: FeatureSource[] = [];
  const outputs: tfl.SymbolicTensor[] = [];
  const byTensor = new Map<tfl.SymbolicTensor, FeatureSource>();
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    let from = layer;
    const next = layer.outboundNodes.map((n) => n.outboundLayer).filter((l) => inModel.has(l));
    if (next.length === 1 && ACTIVATION_LAYERS.has(next[0]!.getClassName()) && next[0]!.weights.length === 0) from = next[0]!;
    const source: FeatureSource = { layer: layer.name, depth: layers.length, from: from.name };
    const tensor = singleOutput(from);
    layers.push(source);
    outputs.push(tensor);
    byTensor.set(tensor, source);
  }
  const dense = model.layers.filter((l) => l.getClassName() === 'Dense');
  const classifier = dense.at(-1);
  if (!classifier) throw new Error(`features: expected model ${model.name} to end in a dense classifier, found no dense layer`);
  const input = classifier.input;
  if (Array.isArray(input)) throw new Error(`features: expected classifier ${classifier.name} to have one input, found ${input.length}`);
  let tensor = input;
  // Dropout is the identity at inference: the classifier then reads the features of the layer before it.
  while (!byTensor.has(tensor) && isInferenceIdentity(tensor.sourceLayer as tfl.layers.Layer)) {
    const before = (tensor.sourceLayer as tfl.layers.Layer).input;
    if (Array.isArray(before)) break;
    tensor = before;
  }
  let penultimate = byTensor.get(tensor);
  if (!penultimate) {
    // Not one layer's features (a global pooling or a flatten): computed as an extra matrix.
    tensor = input;
    const name = tensor.sourceLayer.name;
    penultimate = { layer: name, depth: -1, from: name };
    outputs.push(tensor);
  }
  return { plan: { layers, penultimate, classifier: classifier.name }, outputs };
}

/** The layers `modelFeatures` computes, without computing anything. */
export function featurePlan(model: tfl.LayersModel): FeaturePlan {
  return planOf(model).plan;
}

/** One batch's activation reduced to [n, d] per `pool`. */
function pooled(t: tf.Tensor, pool: FeaturePooling): tf.Tensor2D {
  if (t.rank === 2) return t as tf.Tensor2D;
  const n = t.shape[0]!;
  if (t.rank < 2) return tf.reshape(t, [n, -1]);
  if (pool === 'flatten') return tf.reshape(t, [n, -1]);
  // Every axis between the examples and the channels: the spatial positions.
  const axes = Array.from({ length: t.rank - 2 }, (_, i) => i + 1);
  return tf.mean(t, axes) as tf.Tensor2D;
}

/** Lets timers, heartbeats and cancellation run between batches (the tf ops themselves are synchronous). */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The features of every layer with parameters and of the classifier's input on the examples of
 * `split`, in its order. Matrices are row-major Float32Arrays, one row per example.
 */
export async function modelFeatures(model: tfl.LayersModel, split: Split, args: FeaturesArgs = {}): Promise<ModelFeatures> {
  const pool = args.pool ?? 'mean';
  const batchSize = args.batchSize ?? 100;
  if (pool !== 'mean' && pool !== 'flatten') throw new Error(`features: expected pool 'mean' or 'flatten', found ${JSON.stringify(pool)}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`features: expected a positive integer batch size, found ${batchSize}`);
  const { plan, outputs } = planOf(model);
  const inputShape = model.inputs[0]!.shape.slice(1) as number[];
  if (inputShape.some((d) => d === null)) throw new Error(`features: expected a model with a fixed input shape, found [${inputShape.join(', ')}]`);
  const size = inputShape.reduce((a, b) => a * b, 1);
  if (split.x.length !== split.n * size) {
    throw new Error(`features: expected ${split.n} examples of ${size} values ([${inputShape.join(', ')}]), found ${split.x.length} values`);
  }
  // Shares the model's layers and weights; it owns no tensors, so there is nothing of its own to dispose
  // (and disposing it would dispose the shared layers' weights).
  const extractor = tfl.model({ inputs: model.inputs, outputs });
  const n = split.n;
  const widths: number[] = [];
  const buffers: Float32Array[] = [];
  for (let start = 0; start < n; start += batchSize) {
    await yieldToEventLoop();
    args.signal?.throwIfAborted();
    const end = Math.min(n, start + batchSize);
    tf.tidy(() => {
      const x = tf.tensor(split.x.subarray(start * size, end * size), [end - start, ...inputShape], 'float32');
      const out = extractor.apply(x, { training: false }) as tf.Tensor | tf.Tensor[];
      const list = Array.isArray(out) ? out : [out];
      list.forEach((t, i) => {
        const p = pooled(t, pool);
        const d = p.shape[1];
        if (start === 0) {
          widths.push(d);
          buffers.push(new Float32Array(n * d));
        }
        buffers[i]!.set(p.dataSync() as Float32Array, start * d);
      });
    });
    args.onBatch?.(end, n);
  }
  if (n === 0) {
    // No batch ran: the widths come from the symbolic shapes.
    outputs.forEach((t) => {
      const dims = t.shape.slice(1) as number[];
      const d = pool === 'mean' && dims.length > 1 ? dims.at(-1)! : dims.reduce((a, b) => a * b, 1);
      widths.push(d);
      buffers.push(new Float32Array(0));
    });
  }
  const matrix = (i: number): LayerFeatures['features'] => ({ values: buffers[i]!, rows: n, cols: widths[i]! });
  const layers = plan.layers.map((source, i) => ({ ...source, features: matrix(i) }));
  const penultimate = plan.penultimate.depth >= 0 ? layers[plan.penultimate.depth]! : { ...plan.penultimate, features: matrix(outputs.length - 1) };
  return { layers, penultimate };
}
