/**
 * Layers the model zoo needs beyond tfjs-layers' own, each because the built-in one would break a
 * promise the studies rely on:
 *
 * - SeededDropout: tfjs-layers' dropout draws its masks from an unseeded generator, so two runs with the
 *   same seed would differ and a resumed run could not reproduce the masks. Here every mask is a function
 *   of (run seed, layer name, step) drawn from ml/rng.ts.
 * - BatchNorm: PyTorch's semantics (running statistics with momentum 0.1, unbiased running variance,
 *   epsilon 1e-5), and a layer whose `trainable` is false normalises with its running statistics and
 *   leaves them alone, so "batch norm frozen" means frozen (tfjs-layers' own keeps updating them).
 * - AdaptiveAvgPool2D: PyTorch's AdaptiveAvgPool2d, which torchvision's VGG puts before its classifier so
 *   that the first dense layer has 512 x 7 x 7 inputs whatever the input size.
 *
 * The variables use the names ml/train/init.ts knows (gamma, beta, moving_mean, moving_variance), so
 * initialisation and snapshots treat them like tfjs-layers' own. Used by ml/models/{vgg,resnet,cnn}.ts;
 * setDropoutStep is for the training loop.
 */
import * as tfc from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-layers';
import { fusedBatchNormAvailable, fusedBatchNormTraining } from '../kernels/batchnorm.js';
import { deriveRng } from '../rng.js';

type Shape = Array<number | null>;
type Kwargs = { [key: string]: unknown };

function single(inputs: tfc.Tensor | tfc.Tensor[]): tfc.Tensor {
  if (Array.isArray(inputs)) {
    if (inputs.length !== 1) throw new Error(`expected exactly one input tensor, found ${inputs.length}`);
    return inputs[0]!;
  }
  return inputs;
}

function singleShape(shape: Shape | Shape[]): Shape {
  return Array.isArray(shape[0]) ? (shape as Shape[])[0]! : (shape as Shape);
}

export interface SeededDropoutArgs {
  /** Layer name; it is part of what every mask derives from, so it must be stable. */
  name: string;
  /** Fraction of inputs zeroed in training, in [0, 1); survivors are scaled by 1 / (1 - rate). */
  rate: number;
}

/**
 * Inverted dropout whose mask for a training-mode call is drawn from deriveRng(seed, 'dropout', layer
 * name, step). `seed` and `step` are set by setDropoutStep; `step` then advances by one after every
 * training-mode call, so a loop that calls setDropoutStep once per run (and again when it resumes) gets
 * the same masks as one that calls it before every step. Inference passes inputs through unchanged.
 */
export class SeededDropout extends tf.layers.Layer {
  static readonly className = 'SeededDropout';
  readonly rate: number;
  /** The run seed masks derive from. */
  seed = 0;
  /** The optimizer step the next training-mode call belongs to. */
  step = 0;

  constructor(args: SeededDropoutArgs) {
    super({ name: args.name });
    if (!(args.rate >= 0 && args.rate < 1)) throw new Error(`dropout rate of layer ${args.name}: expected a number in [0, 1), found ${args.rate}`);
    this.rate = args.rate;
    this.supportsMasking = true;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }

  /** The mask (already scaled by 1 / (1 - rate)) for a tensor of `shape` at (seed, step). */
  mask(shape: readonly number[], seed: number, step: number): Float32Array {
    const size = shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(size);
    const rng = deriveRng(seed, 'dropout', this.name, step);
    // Compare raw uint32 draws with a threshold: no float rounding between the rate and the draw.
    const threshold = Math.round(this.rate * 4294967296);
    const keep = 1 / (1 - this.rate);
    for (let i = 0; i < size; i++) out[i] = rng.nextUint32() >= threshold ? keep : 0;
    return out;
  }

  override call(inputs: tfc.Tensor | tfc.Tensor[], kwargs: Kwargs): tfc.Tensor {
    const x = single(inputs);
    if (kwargs['training'] !== true || this.rate === 0) return x;
    const mask = this.mask(x.shape, this.seed, this.step);
    this.step += 1;
    return tfc.tidy(() => tfc.mul(x, tfc.tensor(mask, x.shape, 'float32')));
  }

  override getConfig(): tfc.serialization.ConfigDict {
    return { ...super.getConfig(), rate: this.rate };
  }
}

/**
 * Points every SeededDropout layer of `model` at (seed, step): the next training-mode call draws the masks
 * of optimizer step `step` of the run seeded with `seed`. Returns how many layers it set.
 */
export function setDropoutStep(model: tf.LayersModel, seed: number, step: number): number {
  if (!Number.isInteger(seed)) throw new Error(`dropout seed: expected an integer, found ${seed}`);
  if (!Number.isInteger(step) || step < 0) throw new Error(`dropout step: expected a non-negative integer, found ${step}`);
  let n = 0;
  for (const layer of model.layers) {
    if (layer instanceof SeededDropout) {
      layer.seed = seed;
      layer.step = step;
      n += 1;
    }
  }
  return n;
}

export interface BatchNormArgs {
  /** Layer name. */
  name: string;
  /** PyTorch-style momentum: running = (1 - momentum) * running + momentum * batch; default 0.1. */
  momentum?: number;
  /** Added to the variance before the square root; default 1e-5 (PyTorch's). */
  epsilon?: number;
}

/**
 * Batch normalisation over the last (channel) axis, for dense [N, C] and image [N, H, W, C] inputs, with
 * PyTorch's BatchNorm semantics. Variables: gamma, beta (trainable), moving_mean, moving_variance.
 *
 * Training mode normalises by the batch's mean and biased variance and updates the running statistics
 * with the unbiased variance, as torch.nn.BatchNorm2d does. Inference mode, and training mode when the
 * layer's `trainable` is false (a frozen layer), normalises by the running statistics and updates nothing.
 * On a backend with fused batch-norm kernels (the native one) training mode runs them instead of tfjs ops;
 * the results agree to float32 rounding (test/unit/native-batchnorm.test.ts).
 */
export class BatchNorm extends tf.layers.Layer {
  static readonly className = 'BatchNorm';
  readonly momentum: number;
  readonly epsilon: number;
  private gamma?: tf.LayerVariable;
  private beta?: tf.LayerVariable;
  private movingMean?: tf.LayerVariable;
  private movingVariance?: tf.LayerVariable;

  constructor(args: BatchNormArgs) {
    super({ name: args.name });
    this.momentum = args.momentum ?? 0.1;
    this.epsilon = args.epsilon ?? 1e-5;
    if (!(this.momentum >= 0 && this.momentum <= 1)) throw new Error(`batch-norm momentum of layer ${args.name}: expected a number in [0, 1], found ${this.momentum}`);
    if (!(this.epsilon > 0)) throw new Error(`batch-norm epsilon of layer ${args.name}: expected a positive number, found ${this.epsilon}`);
    this.supportsMasking = true;
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = singleShape(inputShape);
    const channels = shape[shape.length - 1];
    if (typeof channels !== 'number') throw new Error(`batch-norm layer ${this.name}: expected a known channel count, found input shape [${shape.join(', ')}]`);
    // Placeholder values: ml/train/init.ts sets every variable (gamma 1, beta 0, mean 0, variance 1).
    this.gamma = this.addWeight('gamma', [channels], 'float32', tf.initializers.ones(), undefined, true);
    this.beta = this.addWeight('beta', [channels], 'float32', tf.initializers.zeros(), undefined, true);
    this.movingMean = this.addWeight('moving_mean', [channels], 'float32', tf.initializers.zeros(), undefined, false);
    this.movingVariance = this.addWeight('moving_variance', [channels], 'float32', tf.initializers.ones(), undefined, false);
    this.built = true;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }

  override call(inputs: tfc.Tensor | tfc.Tensor[], kwargs: Kwargs): tfc.Tensor {
    const x = single(inputs);
    const gamma = this.gamma!.read();
    const beta = this.beta!.read();
    const movingMean = this.movingMean!.read();
    const movingVariance = this.movingVariance!.read();
    if (kwargs['training'] !== true || !this.trainable) {
      return tfc.batchNorm(x, movingMean, movingVariance, beta, gamma, this.epsilon);
    }
    if (fusedBatchNormAvailable()) {
      // The native backend's fused kernels (ml/kernels/batchnorm.ts): the same statistics and update,
      // in two TensorFlow kernels instead of some twenty element-wise ones.
      return tfc.tidy(() => {
        const fused = fusedBatchNormTraining(x, gamma, beta, movingMean, movingVariance, this.epsilon, this.momentum);
        this.movingMean!.write(fused.runningMean);
        this.movingVariance!.write(fused.runningVariance);
        return fused.y;
      });
    }
    return tfc.tidy(() => {
      const axes = x.shape.slice(0, -1).map((_, i) => i);
      const { mean, variance } = tfc.moments(x, axes);
      const y = tfc.batchNorm(x, mean, variance, beta, gamma, this.epsilon);
      const count = x.size / x.shape[x.shape.length - 1]!;
      const m = this.momentum;
      tfc.tidy(() => {
        // The running statistics are state outside the loss, so no gradient reaches them.
        const unbiased = tfc.mul(variance, count > 1 ? count / (count - 1) : 1);
        this.movingMean!.write(tfc.add(tfc.mul(movingMean, 1 - m), tfc.mul(mean, m)));
        this.movingVariance!.write(tfc.add(tfc.mul(movingVariance, 1 - m), tfc.mul(unbiased, m)));
      });
      return y;
    });
  }

  override getConfig(): tfc.serialization.ConfigDict {
    return { ...super.getConfig(), momentum: this.momentum, epsilon: this.epsilon };
  }
}

export interface AdaptiveAvgPool2DArgs {
  /** Layer name. */
  name: string;
  /** Output height and width. */
  outputSize: number;
}

/**
 * Averages [N, H, W, C] over PyTorch's adaptive bins to [N, S, S, C]: output row i averages input rows
 * floor(i H / S) .. ceil((i + 1) H / S) - 1 (bins overlap when S does not divide H; a 1x1 map is
 * replicated). Computed as two matrix products, so its gradient is exact.
 */
export class AdaptiveAvgPool2D extends tf.layers.Layer {
  static readonly className = 'AdaptiveAvgPool2D';
  readonly outputSize: number;

  constructor(args: AdaptiveAvgPool2DArgs) {
    super({ name: args.name });
    if (!(Number.isInteger(args.outputSize) && args.outputSize >= 1)) {
      throw new Error(`adaptive pooling size of layer ${args.name}: expected a positive integer, found ${args.outputSize}`);
    }
    this.outputSize = args.outputSize;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const s = singleShape(inputShape);
    if (s.length !== 4) throw new Error(`layer ${this.name}: expected a 4-D input [N, H, W, C], found [${s.join(', ')}]`);
    return [s[0]!, this.outputSize, this.outputSize, s[3]!];
  }

  /** The [size, out] matrix whose column i holds the averaging weights of output position i. */
  static poolingMatrix(size: number, out: number): Float32Array {
    const m = new Float32Array(size * out);
    for (let i = 0; i < out; i++) {
      const start = Math.floor((i * size) / out);
      const end = Math.ceil(((i + 1) * size) / out);
      for (let j = start; j < end; j++) m[j * out + i] = 1 / (end - start);
    }
    return m;
  }

  override call(inputs: tfc.Tensor | tfc.Tensor[]): tfc.Tensor {
    const x = single(inputs) as tfc.Tensor4D;
    const [n, h, w, c] = x.shape;
    const s = this.outputSize;
    if (h === s && w === s) return x;
    return tfc.tidy(() => {
      const ph = tfc.tensor2d(AdaptiveAvgPool2D.poolingMatrix(h, s), [h, s]);
      const pw = tfc.tensor2d(AdaptiveAvgPool2D.poolingMatrix(w, s), [w, s]);
      // Pool the rows: [N, W, C, H] x [H, S] -> [N, W, C, S].
      const rows = tfc.matMul(tfc.reshape(tfc.transpose(x, [0, 2, 3, 1]), [n * w * c, h]), ph);
      // Pool the columns: [N, S, C, W] x [W, S] -> [N, S, C, S], then back to [N, S, S, C].
      const byCols = tfc.transpose(tfc.reshape(rows, [n, w, c, s]), [0, 3, 2, 1]);
      const cols = tfc.matMul(tfc.reshape(byCols, [n * s * c, w]), pw);
      return tfc.transpose(tfc.reshape(cols, [n, s, c, s]), [0, 1, 3, 2]);
    });
  }

  override getConfig(): tfc.serialization.ConfigDict {
    return { ...super.getConfig(), outputSize: this.outputSize };
  }
}

/** Number of trainable values, which is what PyTorch's `sum(p.numel() for p in model.parameters())` counts. */
export function countTrainableParams(model: tf.LayersModel): number {
  return model.trainableWeights.reduce((sum, w) => sum + w.shape.reduce((a: number, b) => a * (b ?? 1), 1), 0);
}
