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
 * Update rules follow PyTorch's torch.optim.SGD and torch.optim.Adam (the write-ups use PyTorch):
 *   SGD:  buf = momentum * buf + g;  w -= lr * buf        (buf = g when momentum is 0)
 *   Adam: m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *         w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *
 * Called by ml/train/loop.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedTensor } from '../../artifacts/snapshot.js';
import type { ModelVariable } from './weights.js';

export interface OptimizerSpec {
  name: 'sgd' | 'adam';
  learningRate: number;
  /** SGD only: heavy-ball momentum coefficient in [0, 1); 0 (default) keeps no state. */
  momentum?: number;
}

export interface Optimizer {
  /** Applies one update; `grads[i]` is the gradient of `params[i]`. */
  apply(grads: readonly tf.Tensor[]): void;
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

class Sgd implements Optimizer {
  private readonly buffers: Slot[];

  constructor(
    private readonly params: readonly ModelVariable[],
    private readonly lr: number,
    private readonly momentum: number,
  ) {
    this.buffers = momentum > 0 ? makeSlots(params, 'momentum') : [];
  }

  apply(grads: readonly tf.Tensor[]): void {
    checkGrads(this.params, grads);
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        let direction = grads[i]!;
        if (this.momentum > 0) {
          const buf = this.buffers[i]!.variable;
          buf.assign(tf.add(tf.mul(buf, this.momentum), direction));
          direction = buf;
        }
        p.variable.assign(tf.sub(p.variable, tf.mul(direction, this.lr)));
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
    private readonly lr: number,
  ) {
    this.m = makeSlots(params, 'm');
    this.v = makeSlots(params, 'v');
  }

  apply(grads: readonly tf.Tensor[]): void {
    checkGrads(this.params, grads);
    if (this.step + 1 >= MAX_EXACT_STEP) throw new Error(`Adam supports at most ${MAX_EXACT_STEP - 1} steps, found ${this.step + 1}`);
    this.step += 1;
    // Bias corrections in float64 from the integer step: the same numbers whether or not the run resumed.
    const bc1 = 1 - Math.pow(ADAM_BETA1, this.step);
    const bc2 = 1 - Math.pow(ADAM_BETA2, this.step);
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        const g = grads[i]!;
        const m = this.m[i]!.variable;
        const v = this.v[i]!.variable;
        m.assign(tf.add(tf.mul(m, ADAM_BETA1), tf.mul(g, 1 - ADAM_BETA1)));
        v.assign(tf.add(tf.mul(v, ADAM_BETA2), tf.mul(tf.square(g), 1 - ADAM_BETA2)));
        const denom = tf.add(tf.sqrt(tf.div(v, bc2)), ADAM_EPSILON);
        p.variable.assign(tf.sub(p.variable, tf.mul(tf.div(tf.div(m, bc1), denom), this.lr)));
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
  switch (spec.name) {
    case 'sgd': {
      const momentum = spec.momentum ?? 0;
      if (!(momentum >= 0 && momentum < 1)) throw new Error(`optimizer.momentum: expected a number in [0, 1), found ${momentum}`);
      return new Sgd(params, spec.learningRate, momentum);
    }
    case 'adam':
      if (spec.momentum) throw new Error(`optimizer.momentum: applies to sgd only, found ${spec.momentum} for adam`);
      return new Adam(params, spec.learningRate);
    default:
      throw new Error(`optimizer.name: expected sgd or adam, found ${String((spec as { name: unknown }).name)}`);
  }
}
