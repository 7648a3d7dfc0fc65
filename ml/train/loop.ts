/**
 * The training loop: seeded initialisation, a per-epoch seeded shuffle, mini-batch steps with our own
 * optimizers, per-epoch train and validation metrics, and a state that can be stored and resumed from.
 *
 * Determinism: on one backend, the same seed gives the same weights bit for bit. Nothing draws from
 * Math.random (model.fit's shuffle does, hence this custom loop); epoch k's order is a function of
 * (seed, k) only, and the optimizer exports all of its state, so a run resumed from the state after
 * epoch k continues exactly as if it had never stopped. The learning-rate schedule depends on the epoch
 * alone, and augmentation on (seed, epoch, example index) alone, so neither needs stored state.
 *
 * A run may start from stored weights (`initialWeights`, after the seeded initialisers) and keep some
 * layers frozen (`freeze`): their variables are left out of the optimizer.
 *
 * Early stopping (optional) watches the validation loss of the trained epochs, as Keras's does (the
 * initial weights are never the best): after `patience` epochs without an improvement of more than
 * `minDelta` on the best, training stops. Whether it stops or runs
 * to the last epoch, the model ends holding the best epoch's weights. Everything it needs (best epoch,
 * loss, weights and the count of epochs since) is part of TrainState, so resuming stays exact.
 *
 * Divergence: a batch with a non-finite loss, or an epoch with a non-finite validation loss, ends the
 * run as "diverged" at that epoch, without a further onEpoch; the caller keeps what it stored so far.
 *
 * Engine: on the native 'tensorflow' backend, when the model and options have a graph form (ml/graph),
 * every batch runs as one TensorFlow session call (GraphTrainer.step) instead of variableGrads and the
 * optimizer's apply; the session's weights and optimizer state are copied back into the model and the
 * optimizer before every snapshot, so what onEpoch, resuming and early stopping see is the same. The
 * session also evaluates (one call per batch for the inference-mode forward pass, 3-5x faster than the
 * layers' eager ops on small models), on the weights it holds: the initial ones at epoch 0, then each
 * epoch's, and the best ones for the `test` split under early stopping. Otherwise, or with
 * `engine: 'eager'`, training and evaluation run tfjs ops. The result says which.
 *
 * Called by the train activity, which stores a snapshot in onEpoch and heartbeats in onBatch.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { NamedTensor } from '../../artifacts/snapshot.js';
import type { Split } from '../data/datasets.js';
import { deriveRng } from '../rng.js';
import { augmentExample, augmentsAnything, type AugmentArgs } from './augment.js';
import { initializeWeights, type InitArgs } from './init.js';
import { createOptimizer, learningRateAt, type Optimizer, type OptimizerSpec } from './optimizers.js';
import { BatchNorm, setDropoutStep } from '../models/layers.js';
import { createGraphTrainer, type GraphTrainer } from '../graph/trainer.js';
import { matchesLayer } from './select.js';
import { modelToTensors, modelVariables, tensorsToModel } from './weights.js';

export interface TrainState {
  /** Epochs completed (0: initial weights). */
  epoch: number;
  /** Optimizer steps taken. */
  step: number;
  weights: NamedTensor[];
  optimizer: NamedTensor[];
  /** What the run's random streams derive from; currently `{ seed }`. */
  rng: Record<string, number>;
  /** Present when early stopping is on. */
  earlyStopping?: EarlyStoppingState;
}

/**
 * A training option that does not fit the model (a freeze pattern matching no layer, a snapshot whose
 * tensors do not fit). Named like config's InvalidExperimentError so the activities classify it as bad
 * input, which no retry fixes.
 */
export class InvalidOptionError extends Error {
  override name = 'InvalidExperimentError';
}


/**
 * Sets the model's variables from stored tensors (a snapshot), keyed by layer and variable name.
 * With `layers` (names or `prefix*`), only those layers' tensors are taken; variables left out keep their
 * values (the seeded initialisation). Every tensor taken must fit a variable of the model exactly.
 * Returns the number of variables set.
 */
export function weightsFromTensors(model: tfl.LayersModel, tensors: readonly NamedTensor[], layers?: readonly string[]): number {
  const vars = new Map(modelVariables(model).map((v) => [`${v.layer}/${v.name}`, v]));
  const chosen = layers ? tensors.filter((t) => layers.some((p) => matchesLayer(p, t.layer))) : tensors;
  if (chosen.length === 0) {
    throw new InvalidOptionError(`init.from: expected tensors to load, found none${layers ? ` in layers ${layers.join(', ')}` : ''} (snapshot layers: ${[...new Set(tensors.map((t) => t.layer))].join(', ')})`);
  }
  for (const t of chosen) {
    const v = vars.get(`${t.layer}/${t.name}`);
    if (!v) throw new InvalidOptionError(`init.from: the snapshot's ${t.layer}/${t.name} has no counterpart in the model (variables: ${[...vars.keys()].join(', ')})`);
    if (v.shape.length !== t.shape.length || v.shape.some((d, i) => d !== t.shape[i])) {
      throw new InvalidOptionError(`init.from: ${t.layer}/${t.name}: expected shape [${v.shape.join(', ')}], found [${t.shape.join(', ')}] in the snapshot`);
    }
  }
  tf.tidy(() => chosen.forEach((t) => vars.get(`${t.layer}/${t.name}`)!.variable.assign(tf.tensor(t.values, t.shape, 'float32'))));
  return chosen.length;
}

export interface FreezeArgs {
  /** Layer names, or prefixes ending in `*` (`conv*`), whose weights stay fixed. Each must match a layer. */
  layers?: string[];
  /** Instead of `layers`: freeze every layer but these (names or prefixes; each must match a layer). */
  except?: string[];
  /**
   * Batch-norm layers among the frozen ones: `frozen` (normalise with their running statistics, update
   * nothing) or `trainable` (keep learning gamma and beta and updating the running statistics).
   */
  batchNorm: 'frozen' | 'trainable';
}

/**
 * Marks the layers `freeze` names as not trainable (their variables leave the optimizer) and returns
 * their names. Throws naming a pattern that matches no layer.
 */
export function freezeLayers(model: tfl.LayersModel, freeze: FreezeArgs): string[] {
  if ((freeze.layers === undefined) === (freeze.except === undefined)) {
    throw new InvalidOptionError('freeze: expected either "layers" or "except"');
  }
  const field = freeze.layers ? 'layers' : 'except';
  const patterns = freeze.layers ?? freeze.except!;
  const names = model.layers.map((l) => l.name);
  for (const pattern of patterns) {
    if (!names.some((n) => matchesLayer(pattern, n))) {
      throw new InvalidOptionError(`freeze.${field}: "${pattern}" matches no layer of the model (layers: ${names.join(', ')})`);
    }
  }
  const frozen: string[] = [];
  for (const layer of model.layers) {
    const named = patterns.some((p) => matchesLayer(p, layer.name));
    if (named !== (field === 'layers')) continue;
    if (layer instanceof BatchNorm && freeze.batchNorm === 'trainable') continue;
    layer.trainable = false;
    frozen.push(layer.name);
  }
  return frozen;
}

/**
 * Early stopping as Keras's EarlyStopping with restore_best_weights: the best of the trained epochs
 * (from epoch 1) by validation loss; the initial weights (epoch 0) are evaluated and stored, but are
 * never the best, so a run that never improves on its first epoch ends with that epoch's weights.
 */
export interface EarlyStoppingArgs {
  /** Epochs without improvement after which training stops. */
  patience: number;
  /** An epoch improves on the best when its validation loss is below best - minDelta. */
  minDelta: number;
}

export interface EarlyStoppingState {
  bestEpoch: number;
  bestStep: number;
  bestValLoss: number;
  /** Epochs completed since the best one. */
  wait: number;
  /** True once wait reached the patience: training is over. */
  stopped: boolean;
  /** The best epoch's weights, restored into the model when training ends. */
  best: NamedTensor[];
}

/** How training ended. `epoch` is the last epoch completed (and handed to onEpoch). */
export type TrainOutcome =
  | { status: 'completed'; epoch: number; bestEpoch?: number }
  | { status: 'stopped-early'; epoch: number; bestEpoch: number }
  | { status: 'diverged'; epoch: number; divergedAtEpoch: number };

export interface EpochMetrics {
  epoch: number;
  step: number;
  /** Mean loss over the epoch's batches as they were trained (epoch 0: evaluated on the initial weights). */
  trainLoss: number;
  trainAccuracy: number;
  /** Evaluated after the epoch; NaN when the validation split is empty. */
  valLoss: number;
  valAccuracy: number;
  /** Wall-clock seconds of the epoch, evaluation included. */
  seconds: number;
  /** The scheduled learning rate the epoch trained at (epoch 0: the base rate). */
  learningRate: number;
}

export interface TrainData {
  train: Split;
  val: Split;
  inputShape: [number, number, number];
  numClasses: number;
}

export interface TrainArgs {
  model: tfl.LayersModel;
  data: TrainData;
  epochs: number;
  batchSize: number;
  optimizer: OptimizerSpec;
  seed: number;
  /** Weight initialisers (default Glorot-uniform kernels, zero biases). Ignored when resuming. */
  init?: InitArgs;
  /** Weights to start from (a stored snapshot), set after the seeded initialisers. Ignored when resuming. */
  initialWeights?: { tensors: readonly NamedTensor[]; layers?: readonly string[] };
  /** Resume from a stored state instead of initialising; training continues at state.epoch + 1. */
  resume?: TrainState;
  /** Stop when the validation loss stops improving, and end with the best weights. Off when omitted. */
  earlyStopping?: EarlyStoppingArgs;
  /** Augmentation of training examples, drawn from (seed, epoch, example index). None when omitted. */
  augment?: AugmentArgs;
  /** Layers whose weights stay as initialised (or as loaded from a snapshot). None when omitted. */
  freeze?: FreezeArgs;
  /** Called with epoch 0 (initial weights, metrics evaluated before any step) unless resuming, then after every epoch. Awaited: the caller stores a snapshot here. */
  onEpoch(state: TrainState, metrics: EpochMetrics): Promise<void>;
  /** Called after each batch; keep it cheap. */
  onBatch?(epoch: number, batch: number, batches: number): void;
  /** Checked between batches: training stops by throwing signal.reason. */
  signal?: AbortSignal;
  /**
   * A split to evaluate once training ends, unless it diverged: on the weights the model is left holding
   * (the best under early stopping), in the graph's session when training ran as a graph.
   */
  test?: Split;
  /**
   * 'auto' (default): one TensorFlow graph per step where the backend and model allow it (see the module
   * doc), eager otherwise. 'eager': always tfjs ops.
   */
  engine?: 'auto' | 'eager';
}

/** Which engine ran the training steps and, for eager, why there was no graph. */
export interface TrainEngine {
  mode: 'graph' | 'eager';
  /** Why the steps ran eagerly (absent for graph). */
  reason?: string;
}

function exampleSize(data: TrainData): number {
  const [h, w, c] = data.inputShape;
  return h * w * c;
}

function checkSplit(split: Split, size: number, numClasses: number, what: string): void {
  if (split.x.length !== split.n * size || split.y.length !== split.n) {
    throw new Error(
      `${what} split: expected ${split.n} examples of ${size} values and ${split.n} labels, found ${split.x.length} values and ${split.y.length} labels`,
    );
  }
  for (let i = 0; i < split.n; i++) {
    const y = split.y[i]!;
    if (!(y >= 0 && y < numClasses)) throw new Error(`${what} split: label ${i} is ${y}, expected [0, ${numClasses})`);
  }
}

/** Mean softmax cross-entropy of integer labels given logits (log-softmax is the stable form). */
function crossEntropy(logits: tf.Tensor, labels: tf.Tensor1D, numClasses: number): tf.Scalar {
  const oneHot = tf.oneHot(labels, numClasses);
  return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), -1))) as tf.Scalar;
}

/** Where a training gathers its batches: one full batch of examples and labels, written anew for each. */
interface BatchScratch {
  x: Float32Array;
  y: Int32Array;
}

/**
 * The batch of `split` at `indices[start..end)` as tensors on views of `scratch`. The caller disposes
 * them before gathering the next batch into the same memory: the backends copy a tensor's values when an
 * op first reads them (native, wasm) or drop them with the tensor (cpu). A new buffer per batch (200 KB
 * for 64 Fashion-MNIST images) made V8 run a full garbage collection every few batches, for the external
 * memory alone.
 */
function batchTensors(
  split: Split,
  indices: ArrayLike<number>,
  start: number,
  end: number,
  shape: [number, number, number],
  scratch: BatchScratch,
  /** Transforms example `j` (its index in the split), in place in the batch. */
  augment?: (img: Float32Array, j: number) => void,
) {
  const size = shape[0] * shape[1] * shape[2];
  const n = end - start;
  if (scratch.y.length < n) throw new Error(`batch scratch: expected room for ${n} examples, found ${scratch.y.length}`);
  const x = scratch.x.subarray(0, n * size);
  const y = scratch.y.subarray(0, n);
  for (let i = 0; i < n; i++) {
    const j = indices[start + i]!;
    x.set(split.x.subarray(j * size, (j + 1) * size), i * size);
    augment?.(x.subarray(i * size, (i + 1) * size), j);
    y[i] = split.y[j]!;
  }
  return { x: tf.tensor4d(x, [n, ...shape]), y: tf.tensor1d(y, 'int32') };
}

/**
 * One eager training step on the batch `x`, `y` at learning rate `lr`: gradients of the mean
 * cross-entropy with respect to `trainable`, then the optimizer's update. Returns the batch's loss before
 * the update and the number of examples it classified right. The loop's step (and the reference the
 * graph engine and native kernels are tested against).
 */
export function eagerStep(
  model: tfl.LayersModel,
  trainable: tf.Variable[],
  optimizer: Optimizer,
  x: tf.Tensor,
  y: tf.Tensor1D,
  numClasses: number,
  lr: number,
): [number, number] {
  return tf.tidy(() => {
    let hits: tf.Tensor | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const logits = model.apply(x, { training: true }) as tf.Tensor;
      hits = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), y), 'int32')));
      return crossEntropy(logits, y, numClasses);
    }, trainable);
    optimizer.apply(trainable.map((v) => {
      const g = grads[v.name];
      if (!g) throw new Error(`no gradient for variable ${v.name}: is it connected to the loss?`);
      return g;
    }), lr);
    const result: [number, number] = [value.dataSync()[0]!, hits!.dataSync()[0]!];
    hits!.dispose();
    return result;
  });
}

/** Lets timers, heartbeats and cancellation run between batches (the tf ops themselves are synchronous). */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Mean loss and accuracy of `model` on `split` (inference mode). NaN for an empty split. Yields to the
 * event loop between batches: evaluating a large split must not starve heartbeats or cancellation.
 * With `graph`, the forward passes run in its session, on the weights it holds, one call per batch.
 */
export async function evaluate(
  model: tfl.LayersModel,
  split: Split,
  batchSize: number,
  signal?: AbortSignal,
  graph?: GraphTrainer,
): Promise<{ loss: number; accuracy: number }> {
  if (split.n === 0) return { loss: NaN, accuracy: NaN };
  const inputShape = model.inputs[0]!.shape.slice(1) as [number, number, number];
  const numClasses = model.outputs[0]!.shape.at(-1)!;
  const size = inputShape[0] * inputShape[1] * inputShape[2];
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < split.n; start += batchSize) {
    await yieldToEventLoop();
    signal?.throwIfAborted();
    const end = Math.min(split.n, start + batchSize);
    // The batch is a run of consecutive examples: a view of the split, with no labels tensor.
    const logits = forwardLogits(model, tf.tensor4d(split.x.subarray(start * size, end * size), [end - start, ...inputShape]), graph);
    // Cross-entropy and hits from the logits in JavaScript: a batch is one read of a few numbers per
    // example, where TensorFlow ops for them cost a dozen op dispatches. The batch's losses are summed in
    // float32, as TensorFlow's Sum did: a loss beyond float32's range is infinite, so a run whose logits
    // have blown up is diverged.
    let batchLoss = 0;
    for (let i = 0; i < end - start; i++) {
      const row = logits.subarray(i * numClasses, (i + 1) * numClasses);
      const label = split.y[start + i]!;
      let max = -Infinity;
      let predicted = 0;
      let finite = true;
      for (let k = 0; k < numClasses; k++) {
        const v = row[k]!;
        if (!Number.isFinite(v)) finite = false;
        if (v > max) {
          max = v;
          predicted = k;
        }
      }
      let sum = 0;
      for (let k = 0; k < numClasses; k++) sum += Math.exp(row[k]! - max);
      // -log softmax(row)[label]. Any NaN or infinite logit makes the loss NaN, as the TensorFlow ops did
      // (0 x -inf in their one-hot product): such a model has diverged, whatever its label's logit.
      batchLoss = Math.fround(batchLoss + (finite ? Math.log(sum) + max - row[label]! : NaN));
      if (predicted === label) correct++;
    }
    lossSum += batchLoss;
  }
  return { loss: lossSum / split.n, accuracy: correct / split.n };
}

/** The logits of the batch `x` (freed here), from `graph`'s session or else the eager model. */
function forwardLogits(model: tfl.LayersModel, x: tf.Tensor, graph: GraphTrainer | undefined): Float32Array {
  try {
    if (graph) return graph.logits(x);
    const out = model.apply(x, { training: false }) as tf.Tensor;
    try {
      return out.dataSync() as Float32Array;
    } finally {
      out.dispose();
    }
  } finally {
    x.dispose();
  }
}

/** The early-stopping state after an epoch with validation loss `valLoss`, given the state before it. */
function nextEarlyStopping(
  es: EarlyStoppingArgs,
  before: EarlyStoppingState | undefined,
  at: { epoch: number; step: number; valLoss: number },
  weights: () => NamedTensor[],
): EarlyStoppingState {
  if (!before || at.valLoss < before.bestValLoss - es.minDelta) {
    return { bestEpoch: at.epoch, bestStep: at.step, bestValLoss: at.valLoss, wait: 0, stopped: false, best: weights() };
  }
  const wait = before.wait + 1;
  return { ...before, wait, stopped: wait >= es.patience };
}

/**
 * Trains `args.model` in place. Returns the state after the last epoch completed (before any restore of
 * the best weights), the metrics of every epoch run, and how training ended; the model is left holding
 * the best weights under early stopping, the last weights otherwise.
 */
export async function train(
  args: TrainArgs,
): Promise<{ state: TrainState; history: EpochMetrics[]; outcome: TrainOutcome; engine: TrainEngine; test?: { loss: number; accuracy: number } }> {
  const { model, data, epochs, batchSize, seed, signal } = args;
  if (!Number.isInteger(epochs) || epochs < 0) throw new Error(`epochs: expected a non-negative integer, found ${epochs}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize: expected a positive integer, found ${batchSize}`);
  if (!Number.isInteger(seed)) throw new Error(`seed: expected an integer, found ${seed}`);
  const size = exampleSize(data);
  checkSplit(data.train, size, data.numClasses, 'train');
  checkSplit(data.val, size, data.numClasses, 'validation');
  if (data.train.n === 0) throw new Error('train split: expected at least one example, found 0');
  const es = args.earlyStopping;
  if (es) {
    if (!(Number.isInteger(es.patience) && es.patience >= 1)) throw new Error(`earlyStopping.patience: expected an integer >= 1, found ${es.patience}`);
    if (!(es.minDelta >= 0)) throw new Error(`earlyStopping.minDelta: expected a number >= 0, found ${es.minDelta}`);
    if (data.val.n === 0) throw new Error('earlyStopping: needs a validation split, found 0 validation examples');
  }
  signal?.throwIfAborted();

  if (args.freeze) freezeLayers(model, args.freeze);
  const params = modelVariables(model).filter((v) => v.trainable);
  const optimizer = createOptimizer(args.optimizer, params);
  const history: EpochMetrics[] = [];
  let graph: GraphTrainer | undefined;
  let engine: TrainEngine = { mode: 'eager', reason: "engine 'eager' was asked for" };
  try {
    let epoch: number;
    let step: number;
    let esState: EarlyStoppingState | undefined;
    const snapshot = (): TrainState => ({
      epoch, step, weights: modelToTensors(model), optimizer: optimizer.state(), rng: { seed },
      ...(esState ? { earlyStopping: esState } : {}),
    });
    // Finite losses, or the epoch at which they stopped being.
    const diverged = (loss: number) => !Number.isFinite(loss);

    // Epoch 0's seconds: initialising, loading the graph and evaluating the initial weights.
    const started = performance.now();
    if (args.resume) {
      const r = args.resume;
      if (r.rng['seed'] !== seed) {
        throw new Error(`resume: the stored state was trained with seed ${r.rng['seed']}, but this run's seed is ${seed}`);
      }
      // A state of epoch 0 has no record yet: the initial weights are never the best.
      if (es && !r.earlyStopping && r.epoch > 0) throw new Error('resume: early stopping is on, but the stored state has no early-stopping record');
      if (!es && r.earlyStopping) throw new Error('resume: the stored state was trained with early stopping, but this run has it off');
      tensorsToModel(model, r.weights);
      optimizer.loadState(r.optimizer);
      epoch = r.epoch;
      step = r.step;
      esState = r.earlyStopping;
    } else {
      // Starting from a snapshot, the layers it does not provide (a new classifier) are drawn from streams
      // of their own: the snapshot's run may have had this seed, and a "new" head equal to its initial
      // head would not be new.
      initializeWeights(model, seed, args.init, args.initialWeights ? 'init-from-snapshot' : 'init');
      if (args.initialWeights) weightsFromTensors(model, args.initialWeights.tensors, args.initialWeights.layers);
      epoch = 0;
      step = 0;
    }

    // The graph engine, loaded with the weights training starts from; it evaluates too.
    if ((args.engine ?? 'auto') === 'auto') {
      const choice = createGraphTrainer({ model, optimizer: args.optimizer });
      if ('trainer' in choice) {
        graph = choice.trainer;
        graph.loadFrom(model, optimizer);
        engine = { mode: 'graph' };
      } else {
        engine = { mode: 'eager', reason: choice.unsupported };
      }
    }
    /** Brings the model and optimizer up to date with the graph's session (a no-op for eager training). */
    const syncFromGraph = () => graph?.readInto(model, optimizer);

    if (!args.resume) {
      const tr = await evaluate(model, data.train, batchSize, signal, graph);
      const va = await evaluate(model, data.val, batchSize, signal, graph);
      const metrics: EpochMetrics = {
        epoch, step, trainLoss: tr.loss, trainAccuracy: tr.accuracy, valLoss: va.loss, valAccuracy: va.accuracy,
        seconds: (performance.now() - started) / 1000, learningRate: args.optimizer.learningRate,
      };
      history.push(metrics);
      await args.onEpoch(snapshot(), metrics);
    }

    const n = data.train.n;
    const batches = Math.ceil(n / batchSize);
    const batchLength = Math.min(batchSize, n);
    const scratch: BatchScratch = { x: new Float32Array(batchLength * size), y: new Int32Array(batchLength) };
    const trainable = params.map((p) => p.variable);
    let divergedAt: number | undefined;
    training: while (epoch < epochs && !esState?.stopped) {
      const current = epoch + 1;
      const t0 = performance.now();
      const lr = learningRateAt(args.optimizer, current, epochs);
      // The order depends on (seed, epoch) alone, so a resumed run needs no generator state.
      const order = new Int32Array(n);
      for (let i = 0; i < n; i++) order[i] = i;
      deriveRng(seed, 'shuffle', current).shuffle(order);
      const augment = augmentsAnything(args.augment)
        ? (img: Float32Array, j: number) => augmentExample(img, data.inputShape, args.augment!, seed, current, j)
        : undefined;
      let lossSum = 0;
      let correct = 0;
      for (let b = 0; b < batches; b++) {
        await yieldToEventLoop();
        signal?.throwIfAborted();
        const start = b * batchSize;
        const end = Math.min(n, start + batchSize);
        // Dropout masks come from (seed, layer, step): a resumed run draws the masks the original would have.
        setDropoutStep(model, seed, step);
        const batch = batchTensors(data.train, order, start, end, data.inputShape, scratch, augment);
        let loss: number;
        let right: number;
        try {
          if (graph) ({ loss, correct: right } = graph.step(batch.x, batch.y, lr));
          else [loss, right] = eagerStep(model, trainable, optimizer, batch.x, batch.y, data.numClasses, lr);
        } finally {
          tf.dispose([batch.x, batch.y]);
        }
        step += 1;
        if (diverged(loss)) {
          divergedAt = current;
          break training;
        }
        lossSum += loss * (end - start);
        correct += right;
        args.onBatch?.(current, b + 1, batches);
      }
      syncFromGraph();
      const va = await evaluate(model, data.val, batchSize, signal, graph);
      if (data.val.n > 0 && diverged(va.loss)) {
        divergedAt = current;
        break;
      }
      epoch = current;
      const metrics: EpochMetrics = {
        epoch, step, trainLoss: lossSum / n, trainAccuracy: correct / n, valLoss: va.loss, valAccuracy: va.accuracy,
        seconds: (performance.now() - t0) / 1000, learningRate: lr,
      };
      history.push(metrics);
      if (es) esState = nextEarlyStopping(es, esState, { epoch, step, valLoss: va.loss }, () => modelToTensors(model));
      await args.onEpoch(snapshot(), metrics);
    }
    if (divergedAt !== undefined) {
      // A batch diverged mid-epoch: the model and optimizer hold what the graph trained until then.
      syncFromGraph();
      return { state: snapshot(), history, outcome: { status: 'diverged', epoch, divergedAtEpoch: divergedAt }, engine };
    }
    const state = snapshot();
    let outcome: TrainOutcome = { status: 'completed', epoch };
    if (esState) {
      tensorsToModel(model, esState.best);
      // The session too, when it evaluates the test split: on the best weights.
      if (args.test) graph?.loadFrom(model, optimizer);
      outcome = esState.stopped ? { status: 'stopped-early', epoch, bestEpoch: esState.bestEpoch } : { status: 'completed', epoch, bestEpoch: esState.bestEpoch };
    }
    const test = args.test ? await evaluate(model, args.test, batchSize, signal, graph) : undefined;
    return { state, history, outcome, engine, ...(test ? { test } : {}) };
  } finally {
    graph?.dispose();
    optimizer.dispose();
  }
}

/** One graph step on `batch`, whose tensors it frees. */
