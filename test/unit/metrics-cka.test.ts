/**
 * Linear CKA (ml/metrics/cka.ts) and the Gram kernel under it (ml/metrics/gram.ts): hand-computed
 * values, the n x n kernel form computed here as an independent check, and the properties of
 * Kornblith et al.: CKA(X, XQ) = 1 for orthogonal Q, invariance to isotropic scaling.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../ml/rng.js';
import { centreColumns, gramCross, gramSymmetric, linearCka, linearCkaMatrix, type FeatureMatrix } from '../../ml/metrics/index.js';

function close(actual: number, expected: number, tolerance = 1e-12) {
  assert.ok(Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)), `expected ${expected}, found ${actual}`);
}

function column(values: number[]): FeatureMatrix {
  return { values: Float64Array.from(values), rows: values.length, cols: 1 };
}

function random(rng: Rng, rows: number, cols: number): FeatureMatrix {
  return { values: Float64Array.from({ length: rows * cols }, () => rng.normal()), rows, cols };
}

/** A random orthogonal d x d matrix: Gram-Schmidt on Gaussian columns (row-major). */
function orthogonal(rng: Rng, d: number): Float64Array {
  const q = Float64Array.from({ length: d * d }, () => rng.normal());
  for (let j = 0; j < d; j++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < j; i++) {
        let dot = 0;
        for (let k = 0; k < d; k++) dot += q[k * d + i] * q[k * d + j];
        for (let k = 0; k < d; k++) q[k * d + j] -= dot * q[k * d + i];
      }
    }
    let s = 0;
    for (let k = 0; k < d; k++) s += q[k * d + j] ** 2;
    for (let k = 0; k < d; k++) q[k * d + j] /= Math.sqrt(s);
  }
  return q;
}

function multiply(x: FeatureMatrix, q: Float64Array, d2: number): FeatureMatrix {
  const out = new Float64Array(x.rows * d2);
  for (let k = 0; k < x.rows; k++) {
    for (let j = 0; j < d2; j++) {
      let s = 0;
      for (let i = 0; i < x.cols; i++) s += x.values[k * x.cols + i] * q[i * d2 + j];
      out[k * d2 + j] = s;
    }
  }
  return { values: out, rows: x.rows, cols: d2 };
}

/** CKA by the n x n form: HSIC(K, L) = tr(K H L H) with K = X X^T, L = Y Y^T, H = I - 11^T / n. */
function kernelCka(x: FeatureMatrix, y: FeatureMatrix): number {
  const n = x.rows;
  const centredKernel = (m: FeatureMatrix) => {
    const k = new Float64Array(n * n);
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) {
        let s = 0;
        for (let i = 0; i < m.cols; i++) s += m.values[a * m.cols + i] * m.values[b * m.cols + i];
        k[a * n + b] = s;
      }
    }
    // H K H: subtract row and column means, add back the grand mean.
    const row = new Float64Array(n);
    let all = 0;
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) row[a] += k[a * n + b] / n;
      all += row[a] / n;
    }
    for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) k[a * n + b] += all - row[a] - row[b];
    return k;
  };
  const kx = centredKernel(x);
  const ky = centredKernel(y);
  const dot = (p: Float64Array, q: Float64Array) => p.reduce((s, v, i) => s + v * q[i], 0);
  return dot(kx, ky) / Math.sqrt(dot(kx, kx) * dot(ky, ky));
}

describe('linearCka', () => {
  // Centred a = (-1.5, -.5, .5, 1.5), f = (-1.5, .5, -.5, 1.5), e = (.5, -.5, -.5, .5).
  const a = [1, 2, 3, 4];
  const f = [1, 3, 2, 4];
  const e = [1, 0, 0, 1];

  it('is the squared Pearson correlation for one feature on each side', () => {
    close(linearCka(column(a), column(f)), 0.64);
    close(linearCka(column(a), column(e)), 0);
  });

  it('gives the hand-computed value for one feature against two', () => {
    // Y = [a e]: Y^T X = (5, 0), ||.||^2 = 25; ||X^T X|| = 5; Y^T Y = diag(5, 1), ||.|| = sqrt(26).
    const y: FeatureMatrix = { values: Float64Array.from([1, 1, 2, 0, 3, 0, 4, 1]), rows: 4, cols: 2 };
    close(linearCka(column(a), y), 25 / (5 * Math.sqrt(26)));
  });

  it('agrees with the n x n kernel form, whatever the widths', () => {
    const rng = new Rng(11);
    for (const [n, d1, d2] of [[30, 5, 9], [17, 1, 4], [25, 8, 3]]) {
      const x = random(rng, n, d1);
      const y = random(rng, n, d2);
      close(linearCka(x, y), kernelCka(x, y));
    }
  });

  it('is 1 between X and XQ for an orthogonal Q', () => {
    const rng = new Rng(12);
    const x = random(rng, 200, 13);
    const xq = multiply(x, orthogonal(rng, 13), 13);
    close(linearCka(x, xq), 1);
    // The same features rounded to float32 stay within float32's precision of 1.
    const x32 = { ...x, values: Float32Array.from(x.values) };
    const xq32 = { ...xq, values: Float32Array.from(xq.values) };
    close(linearCka(x32, xq32), 1, 1e-6);
  });

  it('is invariant to isotropic scaling and to shifting the features', () => {
    const rng = new Rng(13);
    const x = random(rng, 100, 6);
    const y = random(rng, 100, 10);
    const base = linearCka(x, y);
    const scaled = { ...x, values: x.values.map((v) => v * 37.5) };
    const shifted = { ...y, values: y.values.map((v, i) => v + 100 * (i % 10)) };
    close(linearCka(scaled, y), base);
    close(linearCka(x, shifted), base);
    close(linearCka(x, scaled), 1);
  });

  it('is symmetric, lies in [0, 1], and is 1 from features to themselves', () => {
    const rng = new Rng(14);
    const x = random(rng, 60, 7);
    const y = random(rng, 60, 5);
    const v = linearCka(x, y);
    assert.ok(v >= 0 && v <= 1, `CKA ${v}`);
    close(linearCka(y, x), v);
    close(linearCka(x, x), 1);
  });

  it('gives NaN when one side has no variance', () => {
    assert.ok(Number.isNaN(linearCka(column([2, 2, 2]), column([1, 2, 3]))));
  });

  it('requires the same examples on both sides and a matching shape', () => {
    assert.throws(() => linearCka(column(a), column([1, 2, 3])), /same examples; found 4 and 3 rows/);
    assert.throws(() => linearCka({ values: new Float32Array(7), rows: 4, cols: 2 }, column(a)), /linearCka first features: expected 4 x 2 = 8 values; found 7/);
  });
});

describe('linearCkaMatrix', () => {
  it('gives CKA for every pair of layers, 1 on the diagonal of a model against itself', () => {
    const rng = new Rng(15);
    const layers = [random(rng, 40, 3), random(rng, 40, 8), random(rng, 40, 5)];
    const others = [random(rng, 40, 4), random(rng, 40, 2)];
    const m = linearCkaMatrix(layers, others);
    assert.equal(m.length, 6);
    layers.forEach((x, i) => others.forEach((y, j) => close(m[i * 2 + j], linearCka(x, y))));
    const self = linearCkaMatrix(layers, layers);
    for (let i = 0; i < 3; i++) close(self[i * 3 + i], 1);
  });

  it('requires every layer on the same examples', () => {
    const rng = new Rng(16);
    assert.throws(() => linearCkaMatrix([random(rng, 10, 2)], [random(rng, 10, 2), random(rng, 9, 2)]), /second layer 1: expected .* found 10 and 9 rows/);
  });
});

describe('Gram kernel', () => {
  /** X^T Y of the centred columns, one entry at a time. */
  function naiveGram(x: FeatureMatrix, y: FeatureMatrix): Float64Array {
    const mean = (m: FeatureMatrix, j: number) => {
      let s = 0;
      for (let k = 0; k < m.rows; k++) s += m.values[k * m.cols + j];
      return s / m.rows;
    };
    const out = new Float64Array(x.cols * y.cols);
    for (let i = 0; i < x.cols; i++) {
      for (let j = 0; j < y.cols; j++) {
        const mx = mean(x, i);
        const my = mean(y, j);
        let s = 0;
        for (let k = 0; k < x.rows; k++) s += (x.values[k * x.cols + i] - mx) * (y.values[k * y.cols + j] - my);
        out[i * y.cols + j] = s;
      }
    }
    return out;
  }

  it('matches the entry-by-entry sums, across several passes over the examples and ragged widths', () => {
    // 5000 examples: more than one pass of the blocked loop; widths 1 to 9 cover every tile remainder.
    const rng = new Rng(17);
    const x = random(rng, 5000, 9);
    for (const d of [1, 2, 3, 4, 5, 9]) {
      const y = random(rng, 5000, d);
      const cross = gramCross(centreColumns(x), centreColumns(y));
      naiveGram(x, y).forEach((v, i) => close(cross[i], v, 1e-10));
      const sym = gramSymmetric(centreColumns(y));
      naiveGram(y, y).forEach((v, i) => close(sym[i], v, 1e-10));
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) assert.equal(sym[i * d + j], sym[j * d + i]);
    }
  });
});
