/**
 * The training loop: seeded initialisation, a per-epoch seeded shuffle, mini-batch steps with our own
 * optimizers, per-epoch train and validation metrics, and a state that can be stored and resumed from.
 *
 * Determinism: on one backend, the same seed gives the same weights bit for bit. Nothing draws from
 * Math.random (model.fit's shuffle does, hence this custom loop); epoch k's order is a function of
 * (seed, k) only, and the optimizer exports all of its state, so a run resumed from the state after
 * epoch k continues exactly as if it had never stopped.
 *
 * Called by the train activity, which stores a snapshot in onEpoch and heartbeats in onBatch.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { NamedTensor } from '../../artifacts/snapshot.js';
import type { Split } from '../data/datasets.js';
import { deriveRng } from '../rng.js';
import { initializeWeights, type InitArgs } from './init.js';
import { createOptimizer, learningRateAt, type OptimizerSpec } from './optimizers.js';
import { setDropoutStep } from '../models/layers.js';
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
}

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
  /** Resume from a stored state instead of initialising; training continues at state.epoch + 1. */
  resume?: TrainState;
  /** Called with epoch 0 (initial weights, metrics evaluated before any step) unless resuming, then after every epoch. Awaited: the caller stores a snapshot here. */
  onEpoch(state: TrainState, metrics: EpochMetrics): Promise<void>;
  /** Called after each batch; keep it cheap. */
  onBatch?(epoch: number, batch: number, batches: number): void;
  /** Checked between batches: training stops by throwing signal.reason. */
  signal?: AbortSignal;
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

function batchTensors(split: Split, indices: ArrayLike<number>, start: number, end: number, shape: [number, number, number]) {
  const size = shape[0] * shape[1] * shape[2];
  const n = end - start;
  const x = new Float32Array(n * size);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const j = indices[start + i]!;
    x.set(split.x.subarray(j * size, (j + 1) * size), i * size);
    y[i] = split.y[j]!;
  }
  return { x: tf.tensor4d(x, [n, ...shape]), y: tf.tensor1d(y, 'int32') };
}

/** Lets timers, heartbeats and cancellation run between batches (the tf ops themselves are synchronous). */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Mean loss and accuracy of `model` on `split` (inference mode). NaN for an empty split. Yields to the
 * event loop between batches: evaluating a large split must not starve heartbeats or cancellation.
 */
export async function evaluate(
  model: tfl.LayersModel,
  split: Split,
  batchSize: number,
  signal?: AbortSignal,
): Promise<{ loss: number; accuracy: number }> {
  if (split.n === 0) return { loss: NaN, accuracy: NaN };
  const inputShape = model.inputs[0]!.shape.slice(1) as [number, number, number];
  const numClasses = model.outputs[0]!.shape.at(-1)!;
  const all = new Int32Array(split.n);
  for (let i = 0; i < split.n; i++) all[i] = i;
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < split.n; start += batchSize) {
    await yieldToEventLoop();
    signal?.throwIfAborted();
    const end = Math.min(split.n, start + batchSize);
    const [loss, right] = tf.tidy(() => {
      const b = batchTensors(split, all, start, end, inputShape);
      const logits = model.apply(b.x, { training: false }) as tf.Tensor;
      const perExample = tf.neg(tf.sum(tf.mul(tf.oneHot(b.y, numClasses), tf.logSoftmax(logits)), -1));
      return [tf.sum(perExample).dataSync()[0]!, tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), b.y), 'int32')).dataSync()[0]!];
    });
    lossSum += loss;
    correct += right;
  }
  return { loss: lossSum / split.n, accuracy: correct / split.n };
}

/** Trains `args.model` in place and returns its final state and the metrics of every epoch run. */
export async function train(args: TrainArgs): Promise<{ state: TrainState; history: EpochMetrics[] }> {
  const { model, data, epochs, batchSize, seed, signal } = args;
  if (!Number.isInteger(epochs) || epochs < 0) throw new Error(`epochs: expected a non-negative integer, found ${epochs}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize: expected a positive integer, found ${batchSize}`);
  if (!Number.isInteger(seed)) throw new Error(`seed: expected an integer, found ${seed}`);
  const size = exampleSize(data);
  checkSplit(data.train, size, data.numClasses, 'train');
  checkSplit(data.val, size, data.numClasses, 'validation');
  if (data.train.n === 0) throw new Error('train split: expected at least one example, found 0');
  signal?.throwIfAborted();

  const params = modelVariables(model).filter((v) => v.trainable);
  const optimizer = createOptimizer(args.optimizer, params);
  const history: EpochMetrics[] = [];
  try {
    let epoch: number;
    let step: number;
    const snapshot = (): TrainState => ({ epoch, step, weights: modelToTensors(model), optimizer: optimizer.state(), rng: { seed } });

    if (args.resume) {
      const r = args.resume;
      if (r.rng['seed'] !== seed) {
        throw new Error(`resume: the stored state was trained with seed ${r.rng['seed']}, but this run's seed is ${seed}`);
      }
      tensorsToModel(model, r.weights);
      optimizer.loadState(r.optimizer);
      epoch = r.epoch;
      step = r.step;
    } else {
      const t0 = performance.now();
      initializeWeights(model, seed, args.init);
      epoch = 0;
      step = 0;
      const tr = await evaluate(model, data.train, batchSize, signal);
      const va = await evaluate(model, data.val, batchSize, signal);
      const metrics: EpochMetrics = {
        epoch, step, trainLoss: tr.loss, trainAccuracy: tr.accuracy, valLoss: va.loss, valAccuracy: va.accuracy,
        seconds: (performance.now() - t0) / 1000, learningRate: args.optimizer.learningRate,
      };
      history.push(metrics);
      await args.onEpoch(snapshot(), metrics);
    }

    const n = data.train.n;
    const batches = Math.ceil(n / batchSize);
    const trainable = params.map((p) => p.variable);
    while (epoch < epochs) {
      const current = epoch + 1;
      const t0 = performance.now();
      const lr = learningRateAt(args.optimizer, current, epochs);
      // The order depends on (seed, epoch) alone, so a resumed run needs no generator state.
      const order = new Int32Array(n);
      for (let i = 0; i < n; i++) order[i] = i;
      deriveRng(seed, 'shuffle', current).shuffle(order);
      let lossSum = 0;
      let correct = 0;
      for (let b = 0; b < batches; b++) {
        await yieldToEventLoop();
        signal?.throwIfAborted();
        const start = b * batchSize;
        const end = Math.min(n, start + batchSize);
        // Dropout masks come from (seed, layer, step): a resumed run draws the masks the original would have.
        setDropoutStep(model, seed, step);
        const [loss, right] = tf.tidy(() => {
          const batch = batchTensors(data.train, order, start, end, data.inputShape);
          let hits: tf.Tensor | undefined;
          const { value, grads } = tf.variableGrads(() => {
            const logits = model.apply(batch.x, { training: true }) as tf.Tensor;
            hits = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), batch.y), 'int32')));
            return crossEntropy(logits, batch.y, data.numClasses);
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
        lossSum += loss * (end - start);
        correct += right;
        step += 1;
        args.onBatch?.(current, b + 1, batches);
      }
      epoch = current;
      const va = await evaluate(model, data.val, batchSize, signal);
      const metrics: EpochMetrics = {
        epoch, step, trainLoss: lossSum / n, trainAccuracy: correct / n, valLoss: va.loss, valAccuracy: va.accuracy,
        seconds: (performance.now() - t0) / 1000, learningRate: lr,
      };
      history.push(metrics);
      await args.onEpoch(snapshot(), metrics);
    }
    return { state: snapshot(), history };
  } finally {
    optimizer.dispose();
  }
}
