/**
 * Deterministic weight initialisation from a seed, drawn from ml/rng.ts rather than tf.random*, so
 * the initial weights are identical on every backend and every machine.
 *
 * Each variable draws from its own stream, derived from (seed, layer name, variable name): adding a
 * layer or changing one initialiser does not change the draws of any other variable.
 *
 * Called by ml/train/loop.ts when a run starts (not when it resumes).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { deriveRng, type Rng } from '../rng.js';
import { INITIALIZER_NAMES, PARAMETRIC_INITIALIZER_NAMES, type InitializerName, type InitializerRef, type ParametricInitializerName } from './names.js';
import { modelVariables } from './weights.js';

/** Fan-in and fan-out as Keras computes them: dense [in, out]; conv [kh, kw, in, out] times the receptive field. */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) {
    const n = shape.length === 1 ? shape[0]! : 1;
    return { fanIn: n, fanOut: n };
  }
  const receptive = shape.slice(0, -2).reduce((a, b) => a * b, 1);
  return { fanIn: shape.at(-2)! * receptive, fanOut: shape.at(-1)! * receptive };
}

/** Fills a new array of `size` values for a variable of `shape`. */
export type Initializer = (shape: readonly number[], size: number, rng: Rng) => Float32Array;

const uniform = (limit: number): Initializer => (_shape, size, rng) => {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = (rng.next() * 2 - 1) * limit;
  return out;
};
const normal = (std: number): Initializer => (_shape, size, rng) => {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = rng.normal() * std;
  return out;
};
const constant = (value: number): Initializer => (_shape, size) => new Float32Array(size).fill(value);

const glorotUniform: Initializer = (s, n, r) => { const f = fans(s); return uniform(Math.sqrt(6 / (f.fanIn + f.fanOut)))(s, n, r); };
const glorotNormal: Initializer = (s, n, r) => { const f = fans(s); return normal(Math.sqrt(2 / (f.fanIn + f.fanOut)))(s, n, r); };

// Typed by the list in names.ts, so the schema's names and this table cannot drift apart.
const TABLE: Record<InitializerName, Initializer> = {
  zeros: constant(0),
  ones: constant(1),
  // Glorot and Bengio 2010: U(-sqrt(6 / (fanIn + fanOut)), +...); "xavier" is PyTorch's name for the same.
  'glorot-uniform': glorotUniform,
  'glorot-normal': glorotNormal,
  'xavier-uniform': glorotUniform,
  'xavier-normal': glorotNormal,
  // He et al. 2015 (PyTorch's kaiming_*_ with a = 0, nonlinearity relu), in fan-in or fan-out mode.
  'kaiming-uniform': (s, n, r) => uniform(Math.sqrt(6 / fans(s).fanIn))(s, n, r),
  'kaiming-normal': (s, n, r) => normal(Math.sqrt(2 / fans(s).fanIn))(s, n, r),
  'kaiming-uniform-fan-out': (s, n, r) => uniform(Math.sqrt(6 / fans(s).fanOut))(s, n, r),
  'kaiming-normal-fan-out': (s, n, r) => normal(Math.sqrt(2 / fans(s).fanOut))(s, n, r),
  // LeCun 1998: variance 1 / fanIn (the "improved" initialisation of the tricks-of-the-trade study).
  'lecun-uniform': (s, n, r) => uniform(Math.sqrt(3 / fans(s).fanIn))(s, n, r),
  'lecun-normal': (s, n, r) => normal(1 / Math.sqrt(fans(s).fanIn))(s, n, r),
};

/** Initialisers by name; new ones slot in here and in names.ts. */
export const INITIALIZERS: ReadonlyMap<string, Initializer> = new Map<string, Initializer>(Object.entries(TABLE));

/** Initialisers with an argument `a`: U(-a, a) and N(0, a^2). */
export const PARAMETRIC_INITIALIZERS: ReadonlyMap<string, (a: number) => Initializer> = new Map<string, (a: number) => Initializer>(
  Object.entries({ uniform, normal } satisfies Record<ParametricInitializerName, (a: number) => Initializer>),
);

export interface InitArgs {
  /** Initialiser of every `kernel`; default 'glorot-uniform'. */
  kernel?: InitializerRef | string;
  /** Initialiser of every `bias`; default 'zeros'. */
  bias?: InitializerRef | string;
}

/** Initialisers of the variables tfjs-layers creates besides kernels and biases (batch norm). */
const FIXED: Record<string, string> = { gamma: 'ones', beta: 'zeros', moving_mean: 'zeros', moving_variance: 'ones' };

function getInitializer(ref: InitializerRef | string): Initializer {
  if (typeof ref === 'object') {
    const make = PARAMETRIC_INITIALIZERS.get(ref.name);
    if (!make) throw new Error(`unknown initialiser "${ref.name}" with an argument: expected one of ${PARAMETRIC_INITIALIZER_NAMES.join(', ')}`);
    if (!(ref.a > 0 && Number.isFinite(ref.a))) throw new Error(`initialiser ${ref.name}: expected a positive a, found ${ref.a}`);
    return make(ref.a);
  }
  const init = INITIALIZERS.get(ref);
  if (!init) throw new Error(`unknown initialiser "${ref}": expected one of ${INITIALIZER_NAMES.join(', ')}`);
  return init;
}

/**
 * Sets every weight of `model` from `seed`: kernels and biases per `args`, batch-norm variables to their
 * usual constants. `stream` names the family of random streams the draws come from (one per variable).
 */
export function initializeWeights(model: tfl.LayersModel, seed: number, args: InitArgs = {}, stream = 'init'): void {
  const kernel = getInitializer(args.kernel ?? 'glorot-uniform');
  const bias = getInitializer(args.bias ?? 'zeros');
  const vars = modelVariables(model);
  const values = vars.map((v) => {
    const init =
      v.name === 'kernel' ? kernel : v.name === 'bias' ? bias : FIXED[v.name] ? getInitializer(FIXED[v.name]!) : undefined;
    if (!init) throw new Error(`no initialiser rule for variable ${v.layer}/${v.name}: expected kernel, bias or a batch-norm variable`);
    const size = v.shape.reduce((a, b) => a * b, 1);
    return init(v.shape, size, deriveRng(seed, stream, v.layer, v.name));
  });
  tf.tidy(() => vars.forEach((v, i) => v.variable.assign(tf.tensor(values[i]!, v.shape, 'float32'))));
}
