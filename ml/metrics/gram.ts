/**
 * Centred Gram matrices of feature matrices: the shared kernel of `correlation.ts` (Pearson matrices)
 * and `cka.ts` (linear CKA). Pure: typed arrays in, typed arrays out.
 *
 * A feature matrix is n examples x d features, row-major, as a model's layer outputs come out of
 * tfjs. Everything here works on the d x d form, X^T X of the column-centred X, which is cheap when
 * d << n (penultimate-layer features: d = 84 to 512, probe sets of thousands of examples).
 *
 * Speed: the columns are centred once into a column-major Float64Array (each feature's n values
 * contiguous), then the Gram is built from 4 x 4 tiles of output, each a register-blocked loop over
 * the examples: eight sequential streams, sixteen float64 accumulators, two multiply-adds per load.
 * A plain triple loop does one multiply-add per two loads, strided by d, and is about ten times
 * slower. The symmetric case computes only the tiles on and above the diagonal.
 *
 * Precision: centring and every product and sum are float64. A feature whose values are all equal is
 * centred to exact zeros (rather than to the rounding residue of its mean), so it has zero variance
 * and not a tiny, meaningless one.
 */

/** An (rows x cols) row-major matrix: `rows` examples, `cols` features per example. */
export interface FeatureMatrix {
  values: Float32Array | Float64Array;
  /** Number of examples (n). */
  rows: number;
  /** Number of features per example (d). */
  cols: number;
}

/** A feature matrix, column-centred and transposed: feature j's values are `data[j * rows ...]`. */
export interface CentredColumns {
  data: Float64Array;
  rows: number;
  /** The real number of features. */
  cols: number;
  /** `cols` rounded up to a multiple of the tile size; the extra columns are zeros. */
  padded: number;
  /** Per real feature: 1 when all its values are equal (zero variance), else 0. */
  constant: Uint8Array;
}

/** Output tile edge: 4 x 4 tiles keep sixteen accumulators, which V8 holds in registers. */
const TILE = 4;
/**
 * Examples per pass over a tile. A pair of 4-column panels of this many float64 values is 256 KiB,
 * inside L2; n = 10,000 fits in one pass, larger probe sets are cut into passes.
 */
const PASS = 4096;

/** Checks the shape of a feature matrix and names what was found. */
export function checkFeatures(x: FeatureMatrix, what: string): void {
  if (!(x.values instanceof Float32Array || x.values instanceof Float64Array)) {
    throw new TypeError(`${what}: expected values in a Float32Array or Float64Array; found ${Object.prototype.toString.call(x.values)}`);
  }
  if (!Number.isInteger(x.rows) || x.rows < 0 || !Number.isInteger(x.cols) || x.cols < 0) {
    throw new RangeError(`${what}: expected non-negative integer rows and cols; found rows ${x.rows}, cols ${x.cols}`);
  }
  if (x.values.length !== x.rows * x.cols) {
    throw new RangeError(`${what}: expected ${x.rows} x ${x.cols} = ${x.rows * x.cols} values; found ${x.values.length}`);
  }
}

/** Centres each column of `x` and stores it transposed (column-major) in float64. */
export function centreColumns(x: FeatureMatrix): CentredColumns {
  const { values, rows: n, cols: d } = x;
  const padded = Math.ceil(d / TILE) * TILE;
  const mean = new Float64Array(d);
  for (let k = 0; k < n; k++) {
    const o = k * d;
    for (let j = 0; j < d; j++) mean[j] += values[o + j];
  }
  for (let j = 0; j < d; j++) mean[j] /= n;

  // A column is constant exactly when every value equals the first; NaN never equals itself, so a
  // column holding NaN is not constant and its NaN reaches every sum it takes part in.
  const constant = new Uint8Array(d).fill(n > 0 ? 1 : 0);
  for (let k = 1; k < n; k++) {
    const o = k * d;
    for (let j = 0; j < d; j++) if (values[o + j] !== values[j]) constant[j] = 0;
  }
  for (let j = 0; j < d; j++) if (constant[j] === 1) mean[j] = values[j];

  const data = new Float64Array(padded * n);
  for (let k = 0; k < n; k++) {
    const o = k * d;
    for (let j = 0; j < d; j++) data[j * n + k] = values[o + j] - mean[j];
  }
  return { data, rows: n, cols: d, padded, constant };
}

/**
 * Adds sum_k a[ia + r][k] * b[ib + c][k] over examples [k0, k1) into g[(ia + r) * stride + ib + c]
 * for the 4 x 4 tile r, c in 0..3. `a` and `b` are column-major (feature-contiguous) buffers.
 */
function tile(a: Float64Array, ia: number, b: Float64Array, ib: number, n: number, k0: number, k1: number, g: Float64Array, stride: number): void {
  const a0 = ia * n;
  const a1 = a0 + n;
  const a2 = a1 + n;
  const a3 = a2 + n;
  const b0 = ib * n;
  const b1 = b0 + n;
  const b2 = b1 + n;
  const b3 = b2 + n;
  let s00 = 0, s01 = 0, s02 = 0, s03 = 0;
  let s10 = 0, s11 = 0, s12 = 0, s13 = 0;
  let s20 = 0, s21 = 0, s22 = 0, s23 = 0;
  let s30 = 0, s31 = 0, s32 = 0, s33 = 0;
  for (let k = k0; k < k1; k++) {
    const x0 = a[a0 + k];
    const x1 = a[a1 + k];
    const x2 = a[a2 + k];
    const x3 = a[a3 + k];
    const y0 = b[b0 + k];
    const y1 = b[b1 + k];
    const y2 = b[b2 + k];
    const y3 = b[b3 + k];
    s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
    s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
    s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2; s23 += x2 * y3;
    s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2; s33 += x3 * y3;
  }
  let o = ia * stride + ib;
  g[o] += s00; g[o + 1] += s01; g[o + 2] += s02; g[o + 3] += s03;
  o += stride;
  g[o] += s10; g[o + 1] += s11; g[o + 2] += s12; g[o + 3] += s13;
  o += stride;
  g[o] += s20; g[o + 1] += s21; g[o + 2] += s22; g[o + 3] += s23;
  o += stride;
  g[o] += s30; g[o + 1] += s31; g[o + 2] += s32; g[o + 3] += s33;
}

/** Each centred feature's Euclidean norm, sqrt(sum_k x_kj^2). */
export function columnNorms(c: CentredColumns): Float64Array {
  const { data, rows: n, cols: d } = c;
  const out = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    let s = 0;
    for (let k = j * n, end = k + n; k < end; k++) s += data[k] * data[k];
    out[j] = Math.sqrt(s);
  }
  return out;
}

/** Copies the first `rows` x `cols` of a `stride`-wide buffer into a dense matrix. */
function crop(g: Float64Array, stride: number, rows: number, cols: number): Float64Array {
  if (stride === cols) return g.length === rows * cols ? g : g.slice(0, rows * cols);
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) out.set(g.subarray(i * stride, i * stride + cols), i * cols);
  return out;
}

/** X^T X of the centred X: a (cols x cols) row-major Float64Array, symmetric. */
export function gramSymmetric(c: CentredColumns): Float64Array {
  const { data, rows: n, padded: p } = c;
  const g = new Float64Array(p * p);
  for (let k0 = 0; k0 < n; k0 += PASS) {
    const k1 = Math.min(n, k0 + PASS);
    for (let i = 0; i < p; i += TILE) {
      for (let j = i; j < p; j += TILE) tile(data, i, data, j, n, k0, k1, g, p);
    }
  }
  // Tiles above the diagonal only: mirror them. Diagonal tiles hold both halves already, and equal
  // ones, since x_i * x_j and x_j * x_i are the same products summed in the same order.
  for (let i = 0; i < p; i++) {
    for (let j = 0; j < i - (i % TILE); j++) g[i * p + j] = g[j * p + i];
  }
  return crop(g, p, c.cols, c.cols);
}

/** X^T Y of the centred X and Y (same number of rows): an (x.cols x y.cols) row-major Float64Array. */
export function gramCross(x: CentredColumns, y: CentredColumns): Float64Array {
  if (x.rows !== y.rows) {
    throw new RangeError(`gram: expected feature matrices with the same number of rows (examples); found ${x.rows} and ${y.rows}`);
  }
  const n = x.rows;
  const g = new Float64Array(x.padded * y.padded);
  for (let k0 = 0; k0 < n; k0 += PASS) {
    const k1 = Math.min(n, k0 + PASS);
    for (let i = 0; i < x.padded; i += TILE) {
      for (let j = 0; j < y.padded; j += TILE) tile(x.data, i, y.data, j, n, k0, k1, g, y.padded);
    }
  }
  return crop(g, y.padded, x.cols, y.cols);
}
