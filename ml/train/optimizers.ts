/**
 * SGD (with optional heavy-ball momentum) and Adam, written with tf ops instead of tf.train.*, so that
 * their whole state can be exported into a snapshot and imported again exactly.
 *
 * tfjs's AdamOptimizer keeps beta1^t and beta2^t as running float32 products and, on setWeights,
 * recomputes them with pow(), so a resumed run differs from an uninterrupted one in the last bits.
 * Here Adam's bias correction is computed from the integer step count in float64 on every step, and
 * every other piece of state is a plain tensor, so stop-export-import-continue is bit-identical to
 * never stopping.
 *
 * Update rules follow PyTorch's torch.optim.SGD, Adam and AdamW (the write-ups use PyTorch), with
 * `lr` the scheduled learning rate of the current epoch and `wd` the weight decay:
 *   L2 decay (default):  g = g + wd * w                        (before momentum / moments, as torch)
 *   decoupled decay:     w = w - lr * wd * w                   (before the update, as torch's AdamW)
 *   SGD:      buf = momentum * buf + g;  w -= lr * buf          (buf = g when momentum is 0)
 *   Nesterov: buf = momentum * buf + g;  w -= lr * (g + momentum * buf)
 *   Adam:     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *             w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * Weight decay applies to every trainable variable (biases and batch-norm scales too), as torch's
 * default parameter group does.
 *
 * Learning-rate schedules (`learningRateAt`) are functions of the epoch number alone, so a resumed run
 * needs no schedule state and follows the same rates as one that never stopped.
 *
 * Called by ml/train/loop.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedTensor } from '../../artifacts/snapshot.js';
import type { ModelVariable } from './weights.js';

/** A learning-rate schedule over epochs; `constant` when omitted. */
export type ScheduleSpec =
  | { name: 'constant' }
  /** Multiplies the rate by `gamma` after every `everyEpochs` epochs (torch's StepLR). */
  | { name: 'step'; everyEpochs: number; gamma: number }
  /** Half a cosine from the base rate at epoch 1 towards `minLearningRate` over `epochs` epochs (torch's CosineAnnealingLR, T_max = epochs). */
  | { name: 'cosine'; minLearningRate?: number };

export interface OptimizerSpec {
  name: 'sgd' | 'adam';
  /** The base rate (epoch 1's rate under every schedule). */
  learningRate: number;
  /** SGD only: momentum coefficient in [0, 1); 0 (default) keeps no state. */
  momentum?: number;
  /** SGD only: Nesterov momentum (needs momentum > 0). */
  nesterov?: boolean;
  /** Weight decay coefficient; 0 (default) for none. */
  weightDecay?: number;
  /** false (default): L2, added to the gradient. true: decoupled, w -= lr * wd * w (AdamW; also valid for SGD). */
  decoupledWeightDecay?: boolean;
  schedule?: ScheduleSpec;
}

/**
 * The learning rate of (1-based) `epoch` of a run of `epochs` epochs. Pure and float64: a resumed run
 * computes the same rates from the epoch number alone.
 */
export function learningRateAt(spec: OptimizerSpec, epoch: number, epochs: number): number {
  if (!(Number.isInteger(epoch) && epoch >= 1)) throw new Error(`learning rate schedule: expected an epoch >= 1, found ${epoch}`);
  const base = spec.learningRate;
  const schedule = spec.schedule ?? { name: 'constant' };
  switch (schedule.name) {
    case 'constant':
      return base;
    case 'step':
      return base * Math.pow(schedule.gamma, Math.floor((epoch - 1) / schedule.everyEpochs));
    case 'cosine': {
      const min = schedule.minLearningRate ?? 0;
      // Epoch 1 trains at the base rate; the rate would reach min at epoch epochs + 1.
      const progress = Math.min(epoch - 1, epochs) / Math.max(1, epochs);
      return min + ((base - min) * (1 + Math.cos(Math.PI * progress))) / 2;
    }
    default:
      throw new Error(`optimizer.schedule.name: expected constant, step or cosine, found ${String((schedule as { name: unknown }).name)}`);
  }
}

export interface Optimizer {
  /** Applies one update at learning rate `lr` (default: the spec's base rate); `grads[i]` is the gradient of `params[i]`. */
  apply(grads: readonly tf.Tensor[], lr?: number): void;
  /** Copies of the optimizer's state, in a fixed order. */
  state(): NamedTensor[];
  /** Restores state exported by state() from an optimizer over the same parameters. */
  loadState(tensors: readonly NamedTensor[]): void;
  /** Frees the state tensors. */
  dispose(): void;
}

const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.999;
const ADAM_EPSILON = 1e-8;
/** The step counter is stored as float32, which holds every integer up to 2^24 exactly. */
const MAX_EXACT_STEP = 2 ** 24;

interface Slot {
  layer: string;
  name: string;
  shape: number[];
  variable: tf.Variable;
}

function makeSlots(params: readonly ModelVariable[], suffix: string): Slot[] {
  return params.map((p) => {
    // tf.variable shares the initial tensor's data, and that tensor would otherwise outlive training.
    const zeros = tf.zeros(p.shape, 'float32');
    const variable = tf.variable(zeros, false);
    zeros.dispose();
    return { layer: p.layer, name: `${p.name}/${suffix}`, shape: p.shape, variable };
  });
}

function exportSlots(slots: readonly Slot[]): NamedTensor[] {
  return slots.map((s) => ({ layer: s.layer, name: s.name, shape: s.shape, values: (s.variable.dataSync() as Float32Array).slice() }));
}

function checkState(expected: readonly { layer: string; name: string; shape: number[] }[], found: readonly NamedTensor[], what: string): void {
  const list = (ts: readonly { layer: string; name: string }[]) => ts.map((t) => `${t.layer}/${t.name}`).join(', ') || '(none)';
  if (expected.length !== found.length) {
    throw new Error(`${what} state: expected ${expected.length} tensors (${list(expected)}), found ${found.length} (${list(found)})`);
  }
  expected.forEach((e, i) => {
    const f = found[i]!;
    if (e.layer !== f.layer || e.name !== f.name) {
      throw new Error(`${what} state tensor ${i}: expected ${e.layer}/${e.name}, found ${f.layer}/${f.name}`);
    }
    const size = e.shape.reduce((a, b) => a * b, 1);
    if (f.shape.length !== e.shape.length || f.shape.some((d, j) => d !== e.shape[j]) || f.values.length !== size) {
      throw new Error(
        `${what} state ${e.layer}/${e.name}: expected shape [${e.shape.join(', ')}], found [${f.shape.join(', ')}] with ${f.values.length} values`,
      );
    }
  });
}

function loadSlots(slots: readonly Slot[], tensors: readonly NamedTensor[]): void {
  tf.tidy(() => slots.forEach((s, i) => s.variable.assign(tf.tensor(tensors[i]!.values.slice(), s.shape, 'float32'))));
}

function checkGrads(params: readonly ModelVariable[], grads: readonly tf.Tensor[]): void {
  if (grads.length !== params.length) {
    throw new Error(`expected ${params.length} gradients (one per trainable variable), found ${grads.length}`);
  }
}

interface Decay {
  /** The base learning rate, used when apply() is given none. */
  baseLr: number;
  weightDecay: number;
  decoupled: boolean;
}

/** The gradient with L2 decay added, after applying decoupled decay to the weights themselves. */
function decayed(p: ModelVariable, g: tf.Tensor, lr: number, decay: Decay): tf.Tensor {
  if (decay.weightDecay === 0) return g;
  if (decay.decoupled) {
    p.variable.assign(tf.sub(p.variable, tf.mul(p.variable, lr * decay.weightDecay)));
    return g;
  }
  return tf.add(g, tf.mul(p.variable, decay.weightDecay));
}

function checkRate(lr: number): void {
  if (!(lr >= 0 && Number.isFinite(lr))) throw new Error(`learning rate: expected a finite non-negative number, found ${lr}`);
}

class Sgd implements Optimizer {
  private readonly buffers: Slot[];

  constructor(
    private readonly params: readonly ModelVariable[],
    private readonly momentum: number,
    private readonly nesterov: boolean,
    private readonly decay: Decay,
  ) {
    this.buffers = momentum > 0 ? makeSlots(params, 'momentum') : [];
  }

  apply(grads: readonly tf.Tensor[], lr = this.decay.baseLr): void {
    checkGrads(this.params, grads);
    checkRate(lr);
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        const g = decayed(p, grads[i]!, lr, this.decay);
        let direction = g;
        if (this.momentum > 0) {
          const buf = this.buffers[i]!.variable;
          buf.assign(tf.add(tf.mul(buf, this.momentum), g));
          direction = this.nesterov ? tf.add(g, tf.mul(buf, this.momentum)) : buf;
        }
        p.variable.assign(tf.sub(p.variable, tf.mul(direction, lr)));
      });
    });
  }

  state(): NamedTensor[] {
    return exportSlots(this.buffers);
  }

  loadState(tensors: readonly NamedTensor[]): void {
    checkState(this.buffers, tensors, 'SGD');
    loadSlots(this.buffers, tensors);
  }

  dispose(): void {
    for (const s of this.buffers) s.variable.dispose();
  }
}

class Adam implements Optimizer {
  private readonly m: Slot[];
  private readonly v: Slot[];
  private step = 0;

  constructor(
    private readonly params: readonly ModelVariable[],
    private readonly decay: Decay,
  ) {
    this.m = makeSlots(params, 'm');
    this.v = makeSlots(params, 'v');
  }

  apply(grads: readonly tf.Tensor[], lr = this.decay.baseLr): void {
    checkGrads(this.params, grads);
    checkRate(lr);
    if (this.step + 1 >= MAX_EXACT_STEP) throw new Error(`Adam supports at most ${MAX_EXACT_STEP - 1} steps, found ${this.step + 1}`);
    this.step += 1;
    // Bias corrections in float64 from the integer step: the same numbers whether or not the run resumed.
    const bc1 = 1 - Math.pow(ADAM_BETA1, this.step);
    const bc2 = 1 - Math.pow(ADAM_BETA2, this.step);
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        const g = decayed(p, grads[i]!, lr, this.decay);
        const m = this.m[i]!.variable;
        const v = this.v[i]!.variable;
        m.assign(tf.add(tf.mul(m, ADAM_BETA1), tf.mul(g, 1 - ADAM_BETA1)));
        v.assign(tf.add(tf.mul(v, ADAM_BETA2), tf.mul(tf.square(g), 1 - ADAM_BETA2)));
        const denom = tf.add(tf.sqrt(tf.div(v, bc2)), ADAM_EPSILON);
        p.variable.assign(tf.sub(p.variable, tf.mul(tf.div(tf.div(m, bc1), denom), lr)));
      });
    });
  }

  private stepTensor(): NamedTensor {
    return { layer: 'adam', name: 'step', shape: [], values: Float32Array.of(this.step) };
  }

  state(): NamedTensor[] {
    return [this.stepTensor(), ...exportSlots(this.m), ...exportSlots(this.v)];
  }

  loadState(tensors: readonly NamedTensor[]): void {
    checkState([this.stepTensor(), ...this.m, ...this.v], tensors, 'Adam');
    const step = tensors[0]!.values[0]!;
    if (!Number.isInteger(step) || step < 0) throw new Error(`Adam state adam/step: expected a non-negative integer, found ${step}`);
    this.step = step;
    loadSlots(this.m, tensors.slice(1, 1 + this.m.length));
    loadSlots(this.v, tensors.slice(1 + this.m.length));
  }

  dispose(): void {
    for (const s of [...this.m, ...this.v]) s.variable.dispose();
  }
}

/** An optimizer over the trainable `params` (in the order gradients will be given). */
export function createOptimizer(spec: OptimizerSpec, params: readonly ModelVariable[]): Optimizer {
  if (!(spec.learningRate > 0 && Number.isFinite(spec.learningRate))) {
    throw new Error(`optimizer.learningRate: expected a positive number, found ${spec.learningRate}`);
  }
  const weightDecay = spec.weightDecay ?? 0;
  if (!(weightDecay >= 0 && Number.isFinite(weightDecay))) {
    throw new Error(`optimizer.weightDecay: expected a non-negative number, found ${weightDecay}`);
  }
  const decay = { baseLr: spec.learningRate, weightDecay, decoupled: spec.decoupledWeightDecay ?? false };
  const schedule = spec.schedule;
  if (schedule?.name === 'step' && !(Number.isInteger(schedule.everyEpochs) && schedule.everyEpochs >= 1 && schedule.gamma > 0)) {
    throw new Error(`optimizer.schedule: expected everyEpochs >= 1 and gamma > 0, found ${schedule.everyEpochs} and ${schedule.gamma}`);
  }
  if (schedule?.name === 'cosine' && !((schedule.minLearningRate ?? 0) >= 0 && (schedule.minLearningRate ?? 0) <= spec.learningRate)) {
    throw new Error(`optimizer.schedule.minLearningRate: expected a number in [0, ${spec.learningRate}], found ${schedule.minLearningRate}`);
  }
  switch (spec.name) {
    case 'sgd': {
      const momentum = spec.momentum ?? 0;
      if (!(momentum >= 0 && momentum < 1)) throw new Error(`optimizer.momentum: expected a number in [0, 1), found ${momentum}`);
      if (spec.nesterov && momentum === 0) throw new Error('optimizer.nesterov: expected momentum > 0 with Nesterov, found momentum 0');
      return new Sgd(params, momentum, spec.nesterov ?? false, decay);
    }
    case 'adam':
      if (spec.momentum) throw new Error(`optimizer.momentum: applies to sgd only, found ${spec.momentum} for adam`);
      if (spec.nesterov) throw new Error('optimizer.nesterov: applies to sgd only, found true for adam');
      return new Adam(params, decay);
    default:
      throw new Error(`optimizer.name: expected sgd or adam, found ${String((spec as { name: unknown }).name)}`);
  }
}
