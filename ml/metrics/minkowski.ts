/**
 * Minkowski distance between two sets of weights, per layer and for the whole model.
 *
 * The `distance` activity loads two snapshots through `artifacts/` and calls `layerDistances`;
 * everything here is pure (typed arrays in, numbers out), so it is tested on hand-computed values.
 *
 * Sums are accumulated in float64 even though weights are float32: a ResNet layer has millions of
 * parameters and float32 accumulation would lose the small per-epoch differences the studies measure.
 *
 * NaN propagates: if either side holds a NaN at some position, the distance of that tensor, its
 * layer and the whole model is NaN. A diverged run must show up as NaN in the table, never as a
 * finite number that silently skipped the broken weights.
 */
import { pairLayers } from './pairs.js';
import type { NamedTensor } from '../../artifacts/snapshot.js';

/** The order of the norm: a number >= 1, or 'inf' for the maximum absolute difference. */
export type MinkowskiP = number | 'inf';

/** Layer name of the whole-model row that `layerDistances` appends. */
export const MODEL_LAYER = '__model__';

/** One row of `layerDistances`: the distance over all of one layer's tensors. */
export interface LayerDistance {
  layer: string;
  /** 0-based order of the layer among the layers that have parameters; -1 for the whole model. */
  depth: number;
  /** Number of scalar parameters the distance covers. */
  params: number;
  distance: number;
}

/** Checks p and returns the form the loops switch on: 1, 2, 'inf' or another finite p > 1. */
function checkP(p: MinkowskiP): MinkowskiP {
  if (p === 'inf' || p === Number.POSITIVE_INFINITY) return 'inf';
  if (typeof p !== 'number' || !(p >= 1) || !Number.isFinite(p)) {
    throw new RangeError(`Minkowski p must be a number >= 1 or 'inf'; found ${String(p)}`);
  }
  return p;
}

/** Parses the p of an experiment file or a table column: "1", "2", "3.5", "inf". */
export function parseMinkowskiP(text: string): MinkowskiP {
  const trimmed = text.trim().toLowerCase();
  if (trimmed === 'inf' || trimmed === 'infinity') return 'inf';
  const p = Number(trimmed);
  if (trimmed === '' || Number.isNaN(p)) {
    throw new RangeError(`Minkowski p must be a number >= 1 or "inf"; found "${text}"`);
  }
  return checkP(p);
}

/** The canonical text of p, as stored in the distance table's `p` column: '1', '2', 'inf'. */
export function formatMinkowskiP(p: MinkowskiP): string {
  const checked = checkP(p);
  return checked === 'inf' ? 'inf' : String(checked);
}

function lengthMismatch(a: Float32Array, b: Float32Array, what: string): string {
  return `${what}: expected arrays of equal length; found ${a.length} and ${b.length} values`;
}

/**
 * Adds the contribution of one pair of arrays to a running partial sum: sum |a_i - b_i|^p, or the
 * running maximum of |a_i - b_i| for p = 'inf'. Start with `acc` = 0 (the default), then call
 * `minkowskiFinish` once after the last pair. This is how a layer made of several tensors (kernel,
 * bias, ...) gets exactly the distance of its concatenated parameters.
 */
export function minkowskiAccumulate(a: Float32Array, b: Float32Array, p: MinkowskiP, acc = 0): number {
  if (a.length !== b.length) throw new RangeError(lengthMismatch(a, b, 'minkowski'));
  const q = checkP(p);
  const n = a.length;
  // p = 1, 2 and inf are the cases the studies use: keep Math.pow and Math.abs out of their loops.
  if (q === 1) {
    let s = acc;
    for (let i = 0; i < n; i++) {
      const d = a[i] - b[i];
      s += Math.abs(d); // branch-free: weight deltas have random signs, and a branch would mispredict half the time
    }
    return s;
  }
  if (q === 2) {
    let s = acc;
    for (let i = 0; i < n; i++) {
      const d = a[i] - b[i];
      s += d * d;
    }
    return s;
  }
  if (q === 'inf') {
    // A plain `d > m` test would skip NaN; check it explicitly so NaN propagates as documented.
    if (Number.isNaN(acc)) return acc;
    let m = acc;
    for (let i = 0; i < n; i++) {
      let d = a[i] - b[i];
      if (d < 0) d = -d;
      if (!(d <= m)) {
        if (d !== d) return Number.NaN;
        m = d;
      }
    }
    return m;
  }
  let s = acc;
  for (let i = 0; i < n; i++) {
    s += Math.pow(Math.abs(a[i] - b[i]), q);
  }
  return s;
}

/** Turns a partial sum from `minkowskiAccumulate` into the distance: acc^(1/p), or acc itself for inf. */
export function minkowskiFinish(acc: number, p: MinkowskiP): number {
  const q = checkP(p);
  if (q === 'inf' || q === 1) return acc;
  if (q === 2) return Math.sqrt(acc);
  return Math.pow(acc, 1 / q);
}

/** (sum |a_i - b_i|^p)^(1/p); for p = 'inf', max |a_i - b_i|. Empty arrays are at distance 0. */
export function minkowski(a: Float32Array, b: Float32Array, p: MinkowskiP): number {
  return minkowskiFinish(minkowskiAccumulate(a, b, p), p);
}

/**
 * The distance between two snapshots of the same model, layer by layer, then for the whole model.
 *
 * Tensors are matched by (layer, name). Layers keep the order in which they first appear in `a`
 * (snapshots list tensors in layer-depth order), and all tensors of a layer count together. The last
 * row is the whole model, with layer `MODEL_LAYER` and depth -1. A tensor present on one side only,
 * a tensor whose shape differs, or a duplicated (layer, name) is an error naming the tensor.
 */
export function layerDistances(a: readonly NamedTensor[], b: readonly NamedTensor[], p: MinkowskiP): LayerDistance[] {
  const q = checkP(p);
  const layers = pairLayers(a, b).map((l) => ({
    layer: l.layer,
    depth: l.depth,
    params: l.params,
    acc: l.pairs.reduce((acc, [x, y]) => minkowskiAccumulate(x.values, y.values, q, acc), 0),
  }));

  const rows: LayerDistance[] = [];
  let params = 0;
  let acc = 0;
  for (const layer of layers) {
    rows.push({ layer: layer.layer, depth: layer.depth, params: layer.params, distance: minkowskiFinish(layer.acc, q) });
    params += layer.params;
    // Partial sums combine by addition (finite p) or by maximum (inf); both keep NaN.
    acc = q === 'inf' ? Math.max(acc, layer.acc) : acc + layer.acc;
  }
  rows.push({ layer: MODEL_LAYER, depth: -1, params, distance: minkowskiFinish(acc, q) });
  return rows;
}
