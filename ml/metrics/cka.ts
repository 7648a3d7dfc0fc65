/**
 * Linear centred kernel alignment (CKA; Kornblith, Norouzi, Lee and Hinton, "Similarity of Neural
 * Network Representations Revisited", ICML 2019) between the features of two layers, of one model
 * or of two, computed on the same probe examples:
 *
 *   CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F),   X (n x d1), Y (n x d2) column-centred.
 *
 * It is 1 for representations equal up to an orthogonal transform and an isotropic scaling, which
 * plain correlation of matched features is not. The `cka` activity extracts features through tfjs
 * and calls these pure functions; `linearCkaMatrix` gives the layer-by-layer heatmap.
 *
 * Cost: this is the d x d ("feature space") form, n (d1 + d2)^2 / 2 multiply-adds, through the tiled
 * float64 kernel of `gram.ts`. It suits d << n (10,000 x 512 takes a few seconds on one core). For
 * layers wider than the probe set (unpooled conv maps), pool the features first.
 *
 * Undefined cases give NaN: a side with no variance at all (every feature constant) has
 * ||X^T X||_F = 0, and a NaN in the features reaches every sum.
 */
import { centreColumns, checkFeatures, gramCross, gramSymmetric, type CentredColumns, type FeatureMatrix } from './gram.js';

function sumOfSquares(g: Float64Array): number {
  let s = 0;
  for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return s;
}

/** A layer's centred features with ||X^T X||_F, computed once and reused against every other layer. */
interface Prepared {
  centred: CentredColumns;
  selfNorm: number;
}

function prepare(x: FeatureMatrix, what: string): Prepared {
  checkFeatures(x, what);
  const centred = centreColumns(x);
  return { centred, selfNorm: Math.sqrt(sumOfSquares(gramSymmetric(centred))) };
}

function ckaOf(x: Prepared, y: Prepared): number {
  return sumOfSquares(gramCross(x.centred, y.centred)) / (x.selfNorm * y.selfNorm);
}

function sameExamples(rowsX: number, rowsY: number, what: string): void {
  if (rowsX !== rowsY) {
    throw new RangeError(`${what}: expected both feature matrices on the same examples; found ${rowsX} and ${rowsY} rows`);
  }
  if (rowsX < 2) throw new RangeError(`${what}: expected at least 2 examples (rows); found ${rowsX}`);
}

/** Linear CKA between X (n x d1) and Y (n x d2), row-major, rows being the same examples. In [0, 1]. */
export function linearCka(x: FeatureMatrix, y: FeatureMatrix): number {
  sameExamples(x.rows, y.rows, 'linearCka');
  return ckaOf(prepare(x, 'linearCka first features'), prepare(y, 'linearCka second features'));
}

/**
 * Linear CKA between every layer of `xs` and every layer of `ys` (all on the same examples): an
 * (xs.length x ys.length) row-major Float64Array, entry (i, j) = CKA(xs[i], ys[j]). Each layer is
 * centred and its own Gram computed once; the layers of `ys` stay centred in memory throughout
 * (8 n d bytes each), those of `xs` one at a time.
 */
export function linearCkaMatrix(xs: readonly FeatureMatrix[], ys: readonly FeatureMatrix[]): Float64Array {
  const n = xs[0]?.rows ?? ys[0]?.rows ?? 0;
  xs.forEach((x, i) => sameExamples(n, x.rows, `linearCkaMatrix first layer ${i}`));
  ys.forEach((y, j) => sameExamples(n, y.rows, `linearCkaMatrix second layer ${j}`));
  const prepared = ys.map((y, j) => prepare(y, `linearCkaMatrix second layer ${j}`));
  const out = new Float64Array(xs.length * ys.length);
  xs.forEach((x, i) => {
    const px = prepare(x, `linearCkaMatrix first layer ${i}`);
    prepared.forEach((py, j) => {
      out[i * ys.length + j] = ckaOf(px, py);
    });
  });
  return out;
}
