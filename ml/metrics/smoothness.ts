/**
 * The weak-type Besov smoothness alpha of labels as a function of a layer's features, from the wavelet
 * decomposition of a random forest (Elisha and Dekel, "Wavelet decompositions of Random Forests -
 * smoothness analysis, sparse approximation and applications", JMLR 17, 2016), the measure Ben-Shaul
 * and Dekel's sparsity probe applies to the layers of a network. The `smoothness` activity calls
 * `besovAlpha` once per layer on the probe set's features and class ids.
 *
 * Decomposition. A regression forest of J trees (ml/metrics/forest.ts) is fitted to the one-hot labels.
 * Every node v of a tree except its root, with parent P(v), gives a geometric wavelet
 *
 *   psi_v = 1_{Omega_v} (mean_v - mean_P(v)),   ||psi_v||_2 = sqrt(|Omega_v| / |Omega_root|) ||mean_v - mean_P(v)||_2,
 *
 * where |Omega_v| counts the tree's training (bootstrap) samples in the node: the L2 norm over the
 * sample measure, the "number of samples" normalisation of the published code rather than the volume
 * of the node's box in the min-max-normalised feature cube (the volume of a box in 512 dimensions is a
 * product of hundreds of factors and says little about where the data lie). A tree's prediction is its
 * root mean plus the sum of the wavelets on the path to a leaf; the forest's is the mean over trees.
 *
 * Estimator: the decay of the N-term approximation error, as in Elisha and Dekel's published
 * `evaluate_smoothness`. Sort all wavelets of all trees by norm, largest first; the N-term
 * approximation f_N(x) = (1/J) sum_t (mean_root_t + sum of the N largest wavelets of any tree at x)
 * keeps the roots (the coarse part) and the N most significant wavelets. Its error on the probe set is
 *
 *   sigma_N = ( (1/n) sum_i ||y_i - f_N(x_i)||_2^2 )^(1/2),
 *
 * and for f in the weak-type class of smoothness alpha the Jackson estimate gives sigma_N <= C N^-alpha
 * (alpha = 1/tau - 1/2 for the tau-sparsity of the decomposition). So alpha is minus the least-squares
 * slope of log sigma_N against log N, over N on a geometric grid (`gridPoints` values, every integer
 * once) from 1 to `maxTerms` (default: every wavelet of the forest), leaving out any N with sigma_N = 0.
 * Two differences from the published script, both deliberate: it fits the squared error (its alpha is
 * twice this one) and samples N = 1, 11, 21, ... < 1000 linearly (which weighs the tail of the curve);
 * the geometric grid weighs every scale equally. Ben-Shaul and Dekel's probe instead locates the
 * critical tau where the tau-norm of the wavelet norms blows up; that needs two tuning epsilons and is
 * not implemented here.
 *
 * Labels that are a smooth function of the features (few large regions) are captured by a few large
 * wavelets and sigma_N falls fast: alpha is large. Random labels spread their energy over all wavelets
 * and alpha is near 0. Undefined cases give NaN: labels the roots already fit exactly (a single class).
 */
import { checkFiniteFeatures, fitForest, nodeRows, type Forest, type MaxFeatures } from './forest.js';
import { checkFeatures, type FeatureMatrix } from './gram.js';

export interface SmoothnessArgs {
  /** Trees in the forest (the S2 write-up used 10). */
  trees: number;
  /** Candidate features per split (default `sqrt`, as the write-up). */
  maxFeatures?: MaxFeatures;
  /** Seed of the forest. */
  seed: number;
  /** Largest N of the N-term fit (default: all wavelets). */
  maxTerms?: number;
  /** Points of the geometric grid of N (default 40). */
  gridPoints?: number;
}

export interface SmoothnessEstimate {
  /** Weak-type smoothness: minus the log-log slope of sigma_N against N; NaN when undefined. */
  alpha: number;
  /** Wavelets of the forest (its nodes except the roots). */
  wavelets: number;
  /** The N of the fit and sigma_N at each. */
  terms: number[];
  errors: number[];
}

/** A wavelet: tree t's node v, with its norm. */
export interface Wavelets {
  tree: Int32Array;
  node: Int32Array;
  norm: Float64Array;
}

/** Class ids (non-negative integers) as one-hot rows of `classes` outputs (default: largest id + 1). */
export function oneHot(labels: ArrayLike<number>, classes?: number): { values: Float64Array; outputs: number } {
  let max = -1;
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i];
    if (!Number.isInteger(c) || c < 0) throw new RangeError(`oneHot: expected class ids as non-negative integers; found ${c} at example ${i}`);
    if (c > max) max = c;
  }
  const k = classes ?? max + 1;
  if (max >= k) throw new RangeError(`oneHot: expected class ids below ${k}; found ${max}`);
  const values = new Float64Array(labels.length * Math.max(k, 1));
  for (let i = 0; i < labels.length; i++) values[i * k + labels[i]] = 1;
  return { values, outputs: Math.max(k, 1) };
}

/** Every non-root node of the forest as a wavelet with its norm (see the module doc), tree by tree in node order. */
export function waveletNorms(forest: Forest): Wavelets {
  const total = forest.trees.reduce((s, t) => s + t.nodes - 1, 0);
  const tree = new Int32Array(total);
  const node = new Int32Array(total);
  const norm = new Float64Array(total);
  const k = forest.outputs;
  let w = 0;
  forest.trees.forEach((t, ti) => {
    const rootCount = t.count[0];
    for (let v = 1; v < t.nodes; v++) {
      const p = t.parent[v];
      let s = 0;
      for (let o = 0; o < k; o++) {
        const diff = t.value[v * k + o] - t.value[p * k + o];
        s += diff * diff;
      }
      tree[w] = ti;
      node[w] = v;
      norm[w] = Math.sqrt((t.count[v] / rootCount) * s);
      w++;
    }
  });
  return { tree, node, norm };
}

/** Wavelet indices by norm, largest first; ties by position, so the order is deterministic. */
export function significanceOrder(w: Wavelets): Int32Array {
  const order = Int32Array.from({ length: w.norm.length }, (_, i) => i);
  return order.sort((a, b) => w.norm[b] - w.norm[a] || a - b);
}

/**
 * sigma_N (module doc) on examples `x` with targets `y` (rows x forest.outputs) for each N of `terms`
 * (ascending, each in [0, wavelets]): the wavelets are added in order of significance and each updates
 * the residuals of the examples in its node, so the whole curve costs one pass over the forest.
 */
export function nTermErrors(forest: Forest, x: FeatureMatrix, y: Float64Array, terms: readonly number[]): number[] {
  const k = forest.outputs;
  const n = x.rows;
  const J = forest.trees.length;
  const wavelets = waveletNorms(forest);
  const order = significanceOrder(wavelets);
  const members = forest.trees.map((t) => nodeRows(t, x));
  const residual = Float64Array.from(y);
  for (const t of forest.trees) {
    for (let i = 0; i < n; i++) for (let o = 0; o < k; o++) residual[i * k + o] -= t.value[o] / J;
  }
  const delta = new Float64Array(k);
  const errors: number[] = [];
  let added = 0;
  for (const target of terms) {
    if (!Number.isInteger(target) || target < added || target > order.length) {
      throw new RangeError(`nTermErrors: expected ascending term counts in [0, ${order.length}]; found ${target} after ${added}`);
    }
    for (; added < target; added++) {
      const w = order[added];
      const t = forest.trees[wavelets.tree[w]];
      const v = wavelets.node[w];
      const p = t.parent[v];
      for (let o = 0; o < k; o++) delta[o] = (t.value[v * k + o] - t.value[p * k + o]) / J;
      const m = members[wavelets.tree[w]];
      for (let r = m.start[v]; r < m.end[v]; r++) {
        const base = m.rows[r] * k;
        for (let o = 0; o < k; o++) residual[base + o] -= delta[o];
      }
    }
    let s = 0;
    for (let i = 0; i < residual.length; i++) s += residual[i] * residual[i];
    errors.push(Math.sqrt(s / n));
  }
  return errors;
}

/** Integers on a geometric grid from 1 to `max`, each once, ascending. */
export function geometricTerms(max: number, points: number): number[] {
  const out: number[] = [];
  if (max < 1) return out;
  for (let j = 0; j < points; j++) {
    const t = Math.round(Math.exp((Math.log(max) * j) / Math.max(points - 1, 1)));
    if (t !== out[out.length - 1]) out.push(t);
  }
  if (out[out.length - 1] !== max) out.push(max);
  return out;
}

/** Minus the least-squares slope of log error against log N, over the points with error > 0; NaN with fewer than two. */
export function decayExponent(terms: readonly number[], errors: readonly number[]): number {
  let count = 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < terms.length; i++) {
    if (!(errors[i] > 0) || !(terms[i] > 0)) continue;
    const lx = Math.log(terms[i]);
    const ly = Math.log(errors[i]);
    count++;
    sx += lx;
    sy += ly;
    sxx += lx * lx;
    sxy += lx * ly;
  }
  const denominator = count * sxx - sx * sx;
  if (count < 2 || !(denominator > 0)) return NaN;
  return -(count * sxy - sx * sy) / denominator;
}

/** Checks a layer's features and labels for `besovAlpha` and returns the one-hot targets. */
export function smoothnessTargets(x: FeatureMatrix, labels: ArrayLike<number>): { values: Float64Array; outputs: number } {
  checkFeatures(x, 'besovAlpha features');
  if (x.rows < 2) throw new RangeError(`besovAlpha: expected at least 2 examples; found ${x.rows}`);
  if (x.cols < 1) throw new RangeError(`besovAlpha: expected at least 1 feature; found ${x.cols}`);
  if (labels.length !== x.rows) {
    throw new RangeError(`besovAlpha: expected one label per example (${x.rows}); found ${labels.length} labels`);
  }
  checkFiniteFeatures(x, 'besovAlpha');
  return oneHot(labels);
}

/** Checks the N-term fit's options; returns the grid size. */
function checkFitArgs(args: Pick<SmoothnessArgs, 'maxTerms' | 'gridPoints'>): number {
  if (args.maxTerms !== undefined && !(Number.isInteger(args.maxTerms) && args.maxTerms >= 1)) {
    throw new RangeError(`besovAlpha: expected maxTerms to be an integer >= 1; found ${args.maxTerms}`);
  }
  const gridPoints = args.gridPoints ?? 40;
  if (!Number.isInteger(gridPoints) || gridPoints < 2) throw new RangeError(`besovAlpha: expected gridPoints to be an integer >= 2; found ${gridPoints}`);
  return gridPoints;
}

/** The alpha of a forest already grown on `x` and the one-hot targets `y` (see `besovAlpha`). */
export function forestAlpha(forest: Forest, x: FeatureMatrix, y: Float64Array, args: Pick<SmoothnessArgs, 'maxTerms' | 'gridPoints'> = {}): SmoothnessEstimate {
  const gridPoints = checkFitArgs(args);
  const wavelets = forest.trees.reduce((s, t) => s + t.nodes - 1, 0);
  const terms = geometricTerms(Math.min(args.maxTerms ?? wavelets, wavelets), gridPoints);
  const errors = nTermErrors(forest, x, y, terms);
  return { alpha: decayExponent(terms, errors), wavelets, terms, errors };
}

/**
 * The weak-type Besov alpha of `labels` (class ids, one per example) over features `x` (rows x cols,
 * row-major): fits the forest to the one-hot labels and fits the decay of its N-term approximation error.
 */
export function besovAlpha(x: FeatureMatrix, labels: ArrayLike<number>, args: SmoothnessArgs): SmoothnessEstimate {
  const y = smoothnessTargets(x, labels);
  checkFitArgs(args); // before the forest is grown, not after
  const forest = fitForest(x, y, { trees: args.trees, maxFeatures: args.maxFeatures ?? 'sqrt', seed: args.seed });
  return forestAlpha(forest, x, y.values, args);
}
