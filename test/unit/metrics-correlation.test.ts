/**
 * Pearson correlation matrices and their summary (ml/metrics/correlation.ts) on hand-computed values,
 * against a plain two-pass implementation written here, and the properties: a feature correlates 1
 * with itself, constant features give NaN, the matrix is symmetric.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../ml/rng.js';
import { correlationSummary, crossCorrelation, matchedCorrelation, pearsonMatrix, type FeatureMatrix } from '../../ml/metrics/index.js';

function close(actual: number, expected: number, tolerance = 1e-12) {
  assert.ok(Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)), `expected ${expected}, found ${actual}`);
}

/** Builds a row-major feature matrix from its columns. */
function fromColumns(columns: number[][], Array: Float32ArrayConstructor | Float64ArrayConstructor = Float32Array): FeatureMatrix {
  const rows = columns[0].length;
  const cols = columns.length;
  const values = new Array(rows * cols);
  columns.forEach((c, j) => c.forEach((v, k) => (values[k * cols + j] = v)));
  return { values, rows, cols };
}

function random(rng: Rng, rows: number, cols: number): FeatureMatrix {
  return { values: Float32Array.from({ length: rows * cols }, () => rng.normal()), rows, cols };
}

/** Textbook Pearson r of columns i of x and j of y: two passes, one pair at a time. */
function naivePearson(x: FeatureMatrix, i: number, y: FeatureMatrix, j: number): number {
  const n = x.rows;
  let mx = 0;
  let my = 0;
  for (let k = 0; k < n; k++) {
    mx += x.values[k * x.cols + i];
    my += y.values[k * y.cols + j];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let k = 0; k < n; k++) {
    const a = x.values[k * x.cols + i] - mx;
    const b = y.values[k * y.cols + j] - my;
    sxy += a * b;
    sxx += a * a;
    syy += b * b;
  }
  return sxy / Math.sqrt(sxx * syy);
}

// a = 1..4; b = 2a (r = 1); c reversed (r = -1); f: centred (-1.5, .5, -.5, 1.5), a.f = 4, |a|^2 = |f|^2 = 5, r = 0.8;
// e: centred (.5, -.5, -.5, .5), orthogonal to a and to f (r = 0).
const a = [1, 2, 3, 4];
const b = [2, 4, 6, 8];
const c = [4, 3, 2, 1];
const f = [1, 3, 2, 4];
const e = [1, 0, 0, 1];

describe('pearsonMatrix', () => {
  it('gives hand-computed correlations', () => {
    const m = pearsonMatrix(fromColumns([a, b, c, f, e]));
    assert.equal(m.rows, 5);
    assert.equal(m.cols, 5);
    assert.equal(m.symmetric, true);
    const expected = [
      [1, 1, -1, 0.8, 0],
      [1, 1, -1, 0.8, 0],
      [-1, -1, 1, -0.8, 0],
      [0.8, 0.8, -0.8, 1, 0],
      [0, 0, 0, 0, 1],
    ];
    expected.forEach((row, i) => row.forEach((r, j) => close(m.values[i * 5 + j], r)));
  });

  it('has 1 on the diagonal exactly, is symmetric, and agrees with the two-pass formula', () => {
    // 7 features: not a multiple of the kernel's tile of 4.
    const x = random(new Rng(1), 50, 7);
    const m = pearsonMatrix(x);
    for (let i = 0; i < 7; i++) {
      assert.equal(m.values[i * 7 + i], 1, `r(${i}, ${i})`);
      for (let j = 0; j < 7; j++) {
        assert.equal(m.values[i * 7 + j], m.values[j * 7 + i], `symmetry at (${i}, ${j})`);
        close(m.values[i * 7 + j], naivePearson(x, i, x, j));
        assert.ok(Math.abs(m.values[i * 7 + j]) <= 1);
      }
    }
  });

  it('stays exact for features with a large mean (the columns are centred before multiplying)', () => {
    // 1e6 + k is exact in float32; an uncentred sum of squares (~4e12) would cancel the variance (5) away.
    const m = pearsonMatrix(fromColumns([a, a.map((v) => 1e6 + v), f.map((v) => 1e6 + v)]));
    close(m.values[1], 1);
    close(m.values[2], 0.8);
  });

  it('gives NaN for a constant feature, its diagonal entry included, and leaves the others alone', () => {
    // 0.1 repeated: float64 sums of 1000 copies do not divide back to exactly 0.1f; the constant must still be exact.
    const n = 1000;
    const rng = new Rng(2);
    const x = fromColumns([Array.from({ length: n }, () => rng.normal()), Array(n).fill(0.1), Array.from({ length: n }, () => rng.normal())]);
    const m = pearsonMatrix(x);
    for (let j = 0; j < 3; j++) {
      assert.ok(Number.isNaN(m.values[1 * 3 + j]), `r(1, ${j})`);
      assert.ok(Number.isNaN(m.values[j * 3 + 1]), `r(${j}, 1)`);
    }
    assert.equal(m.values[0], 1);
    close(m.values[2], naivePearson(x, 0, x, 2));
  });

  it('propagates a NaN in the features to that feature only', () => {
    const x = fromColumns([a, [1, Number.NaN, 3, 4], f]);
    const m = pearsonMatrix(x);
    assert.ok(Number.isNaN(m.values[1]) && Number.isNaN(m.values[4]) && Number.isNaN(m.values[7]));
    close(m.values[2], 0.8);
  });

  it('rejects a matrix whose values do not match its shape, or a single example', () => {
    assert.throws(() => pearsonMatrix({ values: new Float32Array(5), rows: 2, cols: 3 }), /expected 2 x 3 = 6 values; found 5/);
    assert.throws(() => pearsonMatrix({ values: new Float32Array(3), rows: 1, cols: 3 }), /at least 2 examples .* found 1/);
    assert.throws(() => pearsonMatrix({ values: [1, 2] as unknown as Float32Array, rows: 1, cols: 2 }), /Float32Array or Float64Array; found \[object Array\]/);
  });
});

describe('crossCorrelation', () => {
  it('correlates each feature of one model with each of the other', () => {
    const m = crossCorrelation(fromColumns([a, e]), fromColumns([b, c, f]));
    assert.equal(m.symmetric, false);
    assert.equal(m.rows, 2);
    assert.equal(m.cols, 3);
    [1, -1, 0.8, 0, 0, 0].forEach((r, i) => close(m.values[i], r));
  });

  it('of a model with itself equals its Pearson matrix, and agrees with the two-pass formula', () => {
    const rng = new Rng(3);
    const x = random(rng, 40, 6);
    const y = random(rng, 40, 9);
    const self = crossCorrelation(x, x);
    pearsonMatrix(x).values.forEach((r, i) => close(self.values[i], r));
    const m = crossCorrelation(x, y);
    for (let i = 0; i < 6; i++) for (let j = 0; j < 9; j++) close(m.values[i * 9 + j], naivePearson(x, i, y, j));
  });

  it('gives NaN for a constant feature on either side', () => {
    const m = crossCorrelation(fromColumns([a, [5, 5, 5, 5]]), fromColumns([[2, 2, 2, 2], f]));
    assert.ok(Number.isNaN(m.values[0]) && Number.isNaN(m.values[2]) && Number.isNaN(m.values[3]));
    close(m.values[1], 0.8);
  });

  it('requires the same examples on both sides', () => {
    assert.throws(() => crossCorrelation(fromColumns([a]), fromColumns([[1, 2, 3]])), /same examples; found 4 and 3 rows/);
  });
});

describe('matchedCorrelation', () => {
  it('averages r_ii, feature i of one model with feature i of the other, hand-computed', () => {
    // a with b (r 1) and e with f (r 0): 0.5; the off-diagonal a-f (.8) and e-b (0) do not count.
    const m = crossCorrelation(fromColumns([a, e]), fromColumns([b, f]));
    const matched = matchedCorrelation(m);
    assert.equal(matched.pairs, 2);
    close(matched.mean, 0.5);
    // a with c (r -1); e with a constant feature, whose r is undefined: left out.
    const reordered = matchedCorrelation(crossCorrelation(fromColumns([a, e]), fromColumns([c, [3, 3, 3, 3]])));
    assert.equal(reordered.pairs, 1);
    close(reordered.mean, -1);
  });

  it('is NaN for models whose features do not pair up', () => {
    const m = crossCorrelation(fromColumns([a, e]), fromColumns([b, c, f]));
    assert.deepEqual(matchedCorrelation(m), { mean: Number.NaN, pairs: 0 });
  });
});

describe('correlationSummary', () => {
  it('averages |r| over the pairs above the diagonal and bins them, hand-computed', () => {
    // Pairs: ab 1, ac -1, af .8, bc -1, bf .8, cf -.8: mean |r| = 5.4 / 6.
    const s = correlationSummary(pearsonMatrix(fromColumns([a, b, c, f])), 4);
    assert.equal(s.pairs, 6);
    assert.equal(s.undefinedPairs, 0);
    close(s.meanAbs, 0.9);
    // Signed: (1 - 1 + .8 - 1 + .8 - .8) / 6.
    close(s.mean, -0.2 / 6);
    assert.deepEqual(Array.from(s.edges), [-1, -0.5, 0, 0.5, 1]);
    // -1, -1, -0.8 in the first bin; 0.8, 0.8 and 1 (the closed right edge) in the last.
    assert.deepEqual(Array.from(s.counts), [3, 0, 0, 3]);
    assert.equal(s.outside, 0);
  });

  it('takes explicit edges, counts pairs outside them, and leaves NaN pairs out', () => {
    // Features a, f, e and a constant: defined pairs af .8, ae 0, fe 0; three NaN pairs.
    const m = pearsonMatrix(fromColumns([a, f, e, [3, 3, 3, 3]]));
    const s = correlationSummary(m, [-0.5, 0.5, 0.7]);
    assert.equal(s.pairs, 3);
    assert.equal(s.undefinedPairs, 3);
    close(s.meanAbs, 0.8 / 3);
    // 0 and 0 in [-0.5, 0.5), none in [0.5, 0.7], 0.8 outside.
    assert.deepEqual(Array.from(s.counts), [2, 0]);
    assert.equal(s.outside, 1);
  });

  it('uses every entry of a two-model matrix', () => {
    const s = correlationSummary(crossCorrelation(fromColumns([a, e]), fromColumns([b, c, f])), 2);
    assert.equal(s.pairs, 6);
    close(s.meanAbs, (1 + 1 + 0.8) / 6);
    close(s.mean, (1 - 1 + 0.8) / 6);
    // -1 in [-1, 0); 0, 0, 0, 0.8, 1 in [0, 1].
    assert.deepEqual(Array.from(s.counts), [1, 5]);
  });

  it('gives NaN for the mean of a single feature, which has no pairs', () => {
    const s = correlationSummary(pearsonMatrix(fromColumns([a])), 2);
    assert.equal(s.pairs, 0);
    assert.ok(Number.isNaN(s.meanAbs));
  });

  it('rejects bins that are not a positive count or ascending edges', () => {
    const m = pearsonMatrix(fromColumns([a, f]));
    assert.throws(() => correlationSummary(m, 0), /positive integer number of bins; found 0/);
    assert.throws(() => correlationSummary(m, [0.5, 0.5]), /strictly ascending bin edges; found \[0.5, 0.5\]/);
    assert.throws(() => correlationSummary(m, [1]), /at least 2/);
  });
});
