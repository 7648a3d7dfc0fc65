/**
 * Pearson correlation between features: within one model (the feature-feature matrix of its
 * penultimate layer on the probe set) and across two models (each feature of one against each of the
 * other), with the summary the S4 study reports (mean |r| off the diagonal and a histogram).
 *
 * The `correlation` activity extracts the features through tfjs and calls these; the functions are
 * pure (typed arrays in, numbers and typed arrays out). Sums are float64 over centred columns
 * (`gram.ts`), so large feature means do not cancel away the covariance.
 *
 * Constant features: a feature with the same value on every example (a dead ReLU unit is the usual
 * one) has no correlation with anything, itself included. Its row and column of the matrix are NaN,
 * the diagonal entry too. `correlationSummary` leaves NaN entries out of the mean and the histogram
 * and counts them in `undefinedPairs`, since dead units are expected and must not hide the rest.
 * A NaN in the features makes its feature's correlations NaN the same way.
 */
import { centreColumns, checkFeatures, columnNorms, gramCross, gramSymmetric, type CentredColumns, type FeatureMatrix } from './gram.js';

/** A correlation matrix, row-major: entry (i, j) is `values[i * cols + j]`. */
export interface CorrelationMatrix {
  rows: number;
  cols: number;
  values: Float64Array;
  /**
   * True for the feature-feature matrix of one model (square, symmetric, diagonal 1): its summary
   * uses the pairs above the diagonal. False for two models: every entry is a pair.
   */
  symmetric: boolean;
}

/** Mean |r| and histogram of a correlation matrix's pairs. */
export interface CorrelationSummary {
  /** Pairs with a defined (non-NaN) correlation. */
  pairs: number;
  /** Pairs whose correlation is NaN (a constant feature or a NaN in the features). */
  undefinedPairs: number;
  /** Mean of |r| over the defined pairs; NaN when there are none. */
  meanAbs: number;
  /** Mean of r (signed) over the defined pairs: whether the correlations lean positive; NaN when there are none. */
  mean: number;
  /** Bin edges, ascending; bin k is [edges[k], edges[k + 1]), the last one closed: [.., edges[last]]. */
  edges: Float64Array;
  /** Defined pairs per bin (edges.length - 1 bins). */
  counts: Float64Array;
  /** Defined pairs outside [edges[0], edges[last]]. */
  outside: number;
}

/** sqrt of the Gram's diagonal: each centred feature's Euclidean norm. */
function diagonalNorms(g: Float64Array, d: number): Float64Array {
  const s = new Float64Array(d);
  for (let i = 0; i < d; i++) s[i] = Math.sqrt(g[i * d + i]);
  return s;
}

/** Rounding can land a hair outside [-1, 1]; clamp without turning NaN into a number. */
function clampUnit(r: number): number {
  return r > 1 ? 1 : r < -1 ? -1 : r;
}

/** Pearson r from centred cross products: g / (sx sy), NaN when either feature is constant. */
function normalise(g: Float64Array, sx: Float64Array, cx: CentredColumns, sy: Float64Array, cy: CentredColumns): void {
  const d2 = sy.length;
  for (let i = 0; i < sx.length; i++) {
    for (let j = 0; j < d2; j++) {
      const o = i * d2 + j;
      // Constant features were centred to exact zeros, so this is 0 / 0 = NaN for them.
      g[o] = cx.constant[i] === 1 || cy.constant[j] === 1 ? Number.NaN : clampUnit(g[o] / (sx[i] * sy[j]));
    }
  }
}

function checkRows(x: FeatureMatrix, what: string): void {
  if (x.rows < 2) throw new RangeError(`${what}: expected at least 2 examples (rows) to correlate; found ${x.rows}`);
}

/**
 * The (d x d) Pearson correlation matrix between the columns of an (n x d) row-major feature matrix.
 * Diagonal entries are exactly 1 for non-constant features.
 */
export function pearsonMatrix(x: FeatureMatrix): CorrelationMatrix {
  checkFeatures(x, 'pearsonMatrix');
  checkRows(x, 'pearsonMatrix');
  const c = centreColumns(x);
  const g = gramSymmetric(c);
  const s = diagonalNorms(g, x.cols);
  normalise(g, s, c, s, c);
  for (let i = 0; i < x.cols; i++) if (c.constant[i] === 0 && !Number.isNaN(g[i * x.cols + i])) g[i * x.cols + i] = 1;
  return { rows: x.cols, cols: x.cols, values: g, symmetric: true };
}

/**
 * The (d1 x d2) Pearson correlations between each feature of `x` (n x d1) and each feature of `y`
 * (n x d2), both computed on the same n examples in the same order.
 */
export function crossCorrelation(x: FeatureMatrix, y: FeatureMatrix): CorrelationMatrix {
  checkFeatures(x, 'crossCorrelation first features');
  checkFeatures(y, 'crossCorrelation second features');
  if (x.rows !== y.rows) {
    throw new RangeError(`crossCorrelation: expected both feature matrices on the same examples; found ${x.rows} and ${y.rows} rows`);
  }
  checkRows(x, 'crossCorrelation');
  const cx = centreColumns(x);
  const cy = centreColumns(y);
  const sx = columnNorms(cx);
  const sy = columnNorms(cy);
  const g = gramCross(cx, cy);
  normalise(g, sx, cx, sy, cy);
  return { rows: x.cols, cols: y.cols, values: g, symmetric: false };
}

function histogramEdges(bins: number | readonly number[]): Float64Array {
  if (typeof bins === 'number') {
    if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`correlationSummary: expected a positive integer number of bins; found ${bins}`);
    // Equal bins over [-1, 1], each edge computed directly so that 0 and +-1 are exact.
    return Float64Array.from({ length: bins + 1 }, (_, k) => -1 + (2 * k) / bins);
  }
  const edges = Float64Array.from(bins);
  if (edges.length < 2 || !edges.every((e, k) => Number.isFinite(e) && (k === 0 || e > edges[k - 1]))) {
    throw new RangeError(`correlationSummary: expected at least 2 finite, strictly ascending bin edges; found [${bins.join(', ')}]`);
  }
  return edges;
}

/** Index of the bin holding r, -1 when r is outside the edges (binary search: edges need not be equal). */
function binOf(edges: Float64Array, r: number): number {
  const last = edges.length - 1;
  if (r < edges[0] || r > edges[last]) return -1;
  if (r === edges[last]) return last - 1;
  let lo = 0;
  let hi = last;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (r >= edges[mid]) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * Mean |r| and a histogram of the pairs of a correlation matrix: the pairs above the diagonal of a
 * within-model matrix, every entry of a two-model one. `bins` is a number of equal bins over
 * [-1, 1] or the bin edges themselves.
 */
export function correlationSummary(m: CorrelationMatrix, bins: number | readonly number[]): CorrelationSummary {
  if (m.values.length !== m.rows * m.cols) {
    throw new RangeError(`correlationSummary: expected ${m.rows} x ${m.cols} values; found ${m.values.length}`);
  }
  if (m.symmetric && m.rows !== m.cols) {
    throw new RangeError(`correlationSummary: expected a square matrix for a within-model correlation; found ${m.rows} x ${m.cols}`);
  }
  const edges = histogramEdges(bins);
  const counts = new Float64Array(edges.length - 1);
  let pairs = 0;
  let undefinedPairs = 0;
  let outside = 0;
  let sumAbs = 0;
  let sum = 0;
  for (let i = 0; i < m.rows; i++) {
    for (let j = m.symmetric ? i + 1 : 0; j < m.cols; j++) {
      const r = m.values[i * m.cols + j];
      if (Number.isNaN(r)) {
        undefinedPairs++;
        continue;
      }
      pairs++;
      sumAbs += Math.abs(r);
      sum += r;
      const k = binOf(edges, r);
      if (k < 0) outside++;
      else counts[k]++;
    }
  }
  return { pairs, undefinedPairs, meanAbs: pairs > 0 ? sumAbs / pairs : Number.NaN, mean: pairs > 0 ? sum / pairs : Number.NaN, edges, counts, outside };
}

/**
 * The mean of r_ii over the defined entries of a two-model correlation matrix's diagonal: how far
 * feature i of one model goes with feature i of the other, i.e. whether two models learnt their
 * features in the same order. NaN for matrices that are not square (features that do not pair up) or
 * have no defined diagonal entry.
 */
export function matchedCorrelation(m: CorrelationMatrix): { mean: number; pairs: number } {
  if (m.rows !== m.cols) return { mean: Number.NaN, pairs: 0 };
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < m.rows; i++) {
    const r = m.values[i * m.cols + i]!;
    if (Number.isNaN(r)) continue;
    sum += r;
    pairs++;
  }
  return { mean: pairs > 0 ? sum / pairs : Number.NaN, pairs };
}
