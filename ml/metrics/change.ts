/**
 * How much, and how much of, a model's weights changed between a reference snapshot (usually the
 * initial weights W_0) and a later one W_t, per layer and for the whole model:
 *
 * - `layerChanges`: the Minkowski distance |W_t - W_0|_p, the same per parameter (distance / params),
 *   and relative to the reference, |W_t - W_0|_p / |W_0|_p (the lazy-training diagnostic of Chizat
 *   et al.: a wide network that trains "lazily" moves little relative to its initial weights);
 * - `layerNorms`: |W|_p of one snapshot (the |theta1|, |theta2| of perturb-and-retrain);
 * - `layerShareChanged`: the count and fraction of parameters with |W_t - W_0| > atol + rtol |W_0|
 *   (S4's "share of parameters that changed at all", with the tolerance stated, as numpy's isclose).
 *
 * The `distance` and `change` activities load snapshots through `artifacts/` and call these on the
 * decoded tensors, which are views on the Arrow file's bytes: nothing is copied. Sums are float64.
 *
 * Layer rows follow `layerDistances`: tensors matched by (layer, name), layers in order of first
 * appearance in the reference, then a whole-model row with layer `MODEL_LAYER` and depth -1.
 *
 * NaN: a NaN weight makes its layer's and the model's distance, norm and changed count NaN, as in
 * `minkowski.ts`; a diverged run must not read as a finite number. Divisions follow IEEE: a relative
 * change against a reference of norm 0 is Infinity (NaN when nothing moved either), and a per-parameter
 * mean or fraction of a layer without parameters is NaN.
 */
import type { NamedTensor } from '../../artifacts/snapshot.js';
import { MODEL_LAYER, formatMinkowskiP, minkowskiAccumulate, minkowskiFinish, type MinkowskiP } from './minkowski.js';
import { groupLayers, pairLayers } from './pairs.js';

/** One row of `layerChanges`. */
export interface LayerChange {
  layer: string;
  /** 0-based order of the layer among the layers that have parameters; -1 for the whole model. */
  depth: number;
  /** Number of scalar parameters the row covers. */
  params: number;
  /** |W_t - W_0|_p over the layer's parameters. */
  distance: number;
  /** distance / params. */
  meanDistance: number;
  /** |W_0|_p over the layer's parameters. */
  referenceNorm: number;
  /** distance / referenceNorm. */
  relative: number;
}

/** One row of `layerNorms`. */
export interface LayerNorm {
  layer: string;
  depth: number;
  params: number;
  /** |W|_p over the layer's parameters. */
  norm: number;
}

/** When a parameter counts as changed: |w_t - w_0| > atol + rtol * |w_0|. */
export interface ChangeTolerance {
  /** Absolute tolerance, >= 0. 0 with rtol 0 counts any change at all, down to one float32 ulp. */
  atol: number;
  /** Relative tolerance, >= 0, as a fraction of |w_0|. */
  rtol: number;
}

/** One row of `layerShareChanged`. */
export interface LayerShareChanged {
  layer: string;
  depth: number;
  params: number;
  /** Parameters with |w_t - w_0| > atol + rtol |w_0|; NaN when a weight is NaN. */
  changed: number;
  /** changed / params. */
  fraction: number;
}

/** Validates p with `minkowski.ts`'s rules and returns 'inf' or the number. */
function orderOf(p: MinkowskiP): MinkowskiP {
  const text = formatMinkowskiP(p);
  return text === 'inf' ? 'inf' : (p as number);
}

/** Partial sums of layers combine by addition (finite p) or by maximum (inf); both keep NaN. */
function combine(acc: number, part: number, p: MinkowskiP): number {
  return p === 'inf' ? Math.max(acc, part) : acc + part;
}

/**
 * Adds one array's contribution to a running partial norm: sum |a_i|^p, or the running maximum of
 * |a_i| for 'inf'. Finish with `minkowskiFinish`, as for `minkowskiAccumulate`.
 */
export function normAccumulate(a: Float32Array, p: MinkowskiP, acc = 0): number {
  const q = orderOf(p);
  const n = a.length;
  if (q === 1) {
    // Math.abs, not `v < 0 ? -v : v`: weights have random signs, and the branch mispredicts half
    // the time (six times slower on 50M parameters).
    let s = acc;
    for (let i = 0; i < n; i++) s += Math.abs(a[i]);
    return s;
  }
  if (q === 2) {
    let s = acc;
    for (let i = 0; i < n; i++) s += a[i] * a[i];
    return s;
  }
  if (q === 'inf') {
    if (Number.isNaN(acc)) return acc;
    let m = acc;
    for (let i = 0; i < n; i++) {
      let v = a[i];
      if (v < 0) v = -v;
      // `v > m` alone would skip NaN; NaN must propagate.
      if (!(v <= m)) {
        if (v !== v) return Number.NaN;
        m = v;
      }
    }
    return m;
  }
  let s = acc;
  for (let i = 0; i < n; i++) s += Math.pow(Math.abs(a[i]), q);
  return s;
}

/** |a|_p; for 'inf', max |a_i|. An empty array has norm 0. */
export function norm(a: Float32Array, p: MinkowskiP): number {
  return minkowskiFinish(normAccumulate(a, p), p);
}

/**
 * Distance, per-parameter distance and relative change from `reference` (W_0) to `current` (W_t),
 * per layer and for the whole model (last row).
 */
export function layerChanges(reference: readonly NamedTensor[], current: readonly NamedTensor[], p: MinkowskiP): LayerChange[] {
  const q = orderOf(p);
  const rows: LayerChange[] = [];
  let params = 0;
  let distAcc = 0;
  let normAcc = 0;
  const row = (layer: string, depth: number, n: number, dAcc: number, nAcc: number): LayerChange => {
    const distance = minkowskiFinish(dAcc, q);
    const referenceNorm = minkowskiFinish(nAcc, q);
    return { layer, depth, params: n, distance, meanDistance: distance / n, referenceNorm, relative: distance / referenceNorm };
  };
  for (const layer of pairLayers(reference, current)) {
    let dAcc = 0;
    let nAcc = 0;
    for (const [r, c] of layer.pairs) {
      dAcc = minkowskiAccumulate(r.values, c.values, q, dAcc);
      nAcc = normAccumulate(r.values, q, nAcc);
    }
    rows.push(row(layer.layer, layer.depth, layer.params, dAcc, nAcc));
    params += layer.params;
    distAcc = combine(distAcc, dAcc, q);
    normAcc = combine(normAcc, nAcc, q);
  }
  rows.push(row(MODEL_LAYER, -1, params, distAcc, normAcc));
  return rows;
}

/** |W|_p of one snapshot per layer, then for the whole model (last row, layer `MODEL_LAYER`). */
export function layerNorms(tensors: readonly NamedTensor[], p: MinkowskiP): LayerNorm[] {
  const q = orderOf(p);
  const rows: LayerNorm[] = [];
  let params = 0;
  let acc = 0;
  for (const layer of groupLayers(tensors)) {
    let a = 0;
    for (const t of layer.tensors) a = normAccumulate(t.values, q, a);
    rows.push({ layer: layer.layer, depth: layer.depth, params: layer.params, norm: minkowskiFinish(a, q) });
    params += layer.params;
    acc = combine(acc, a, q);
  }
  rows.push({ layer: MODEL_LAYER, depth: -1, params, norm: minkowskiFinish(acc, q) });
  return rows;
}

function checkTolerance(tol: ChangeTolerance): void {
  for (const key of ['atol', 'rtol'] as const) {
    const v = tol?.[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new RangeError(`change tolerance: expected ${key} to be a finite number >= 0; found ${String(v)}`);
    }
  }
}

/**
 * Adds to `acc` the number of positions where |current_i - reference_i| > atol + rtol |reference_i|.
 * Returns NaN when either array holds a NaN (the count of a diverged layer is not a number).
 */
export function changedAccumulate(reference: Float32Array, current: Float32Array, tol: ChangeTolerance, acc = 0): number {
  if (reference.length !== current.length) {
    throw new RangeError(`share changed: expected arrays of equal length; found ${reference.length} and ${current.length} values`);
  }
  checkTolerance(tol);
  const { atol, rtol } = tol;
  let count = acc;
  // Branch-free on purpose: whether a weight moved is close to a coin toss in trained layers, and a
  // mispredicted branch per parameter made this loop seven times slower. NaN fails the comparison, so
  // it is caught separately: a sum of the non-negative |delta| is NaN exactly when one of them is.
  let check = 0;
  for (let i = 0, n = reference.length; i < n; i++) {
    const w0 = reference[i];
    const d = Math.abs(current[i] - w0);
    check += d;
    count += +(d > atol + rtol * Math.abs(w0));
  }
  return Number.isNaN(check) ? Number.NaN : count;
}

/**
 * The number and fraction of parameters that changed from `reference` to `current` beyond the
 * tolerance, per layer and for the whole model (last row, layer `MODEL_LAYER`).
 */
export function layerShareChanged(reference: readonly NamedTensor[], current: readonly NamedTensor[], tol: ChangeTolerance): LayerShareChanged[] {
  checkTolerance(tol);
  const rows: LayerShareChanged[] = [];
  let params = 0;
  let changed = 0;
  for (const layer of pairLayers(reference, current)) {
    let count = 0;
    for (const [r, c] of layer.pairs) count = changedAccumulate(r.values, c.values, tol, count);
    rows.push({ layer: layer.layer, depth: layer.depth, params: layer.params, changed: count, fraction: count / layer.params });
    params += layer.params;
    changed += count;
  }
  rows.push({ layer: MODEL_LAYER, depth: -1, params, changed, fraction: changed / params });
  return rows;
}
