/**
 * The random-forest wavelet smoothness of ml/metrics/smoothness.ts: wavelet norms by hand on a tiny
 * tree, the N-term approximation telescoping to the forest's prediction, the log-log fit on an exact
 * power law, and the property the S2 study relies on: labels that are a smooth function of the
 * features (few large regions, a linear threshold) get a clearly larger alpha than random labels on
 * the same features.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fitForest, predictForest } from '../../ml/metrics/forest.js';
import type { FeatureMatrix } from '../../ml/metrics/gram.js';
import { besovAlpha, decayExponent, geometricTerms, nTermErrors, oneHot, waveletNorms } from '../../ml/metrics/smoothness.js';
import { Rng } from '../../ml/rng.js';

function normals(rng: Rng, rows: number, cols: number): FeatureMatrix {
  return { values: Float32Array.from({ length: rows * cols }, () => rng.normal()), rows, cols };
}

function close(actual: number, expected: number, what: string, tolerance = 1e-12): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: expected ${expected}, found ${actual}`);
}

describe('random-forest wavelet smoothness', () => {
  test('wavelet norms by hand: sqrt(|child| / |root|) * |mean_child - mean_parent|', () => {
    // x = 0, 1, 2, 3, 4, 5 with labels 0, 0, 0, 0, 1, 1: one split (x <= 3.5), two pure leaves.
    const x: FeatureMatrix = { values: new Float32Array([0, 1, 2, 3, 4, 5]), rows: 6, cols: 1 };
    const y = oneHot([0, 0, 0, 0, 1, 1]);
    const forest = fitForest(x, y, { trees: 1, bootstrap: false, seed: 1 });
    assert.equal(forest.trees[0].nodes, 3);
    assert.equal(forest.trees[0].threshold[0], 3.5);
    const w = waveletNorms(forest);
    // Root mean (2/3, 1/3); left (1, 0) on 4 of 6 samples, right (0, 1) on 2 of 6.
    close(w.norm[0], Math.sqrt(4 / 6) * Math.hypot(1 / 3, 1 / 3), 'left wavelet');
    close(w.norm[1], Math.sqrt(2 / 6) * Math.hypot(2 / 3, 2 / 3), 'right wavelet');
    assert.deepEqual(Array.from(w.node), [1, 2]);
    // sigma_0 is the error of the root mean; adding the largest wavelet (the right leaf) fixes x = 4, 5.
    const errors = nTermErrors(forest, x, y.values, [0, 1, 2]);
    // Residuals against the root mean: (1/3, -1/3) for class 0, (-2/3, 2/3) for class 1.
    close(errors[0], Math.sqrt((4 * (2 / 9) + 2 * (8 / 9)) / 6), 'sigma_0');
    close(errors[1], Math.sqrt((4 * (2 / 9)) / 6), 'sigma_1');
    close(errors[2], 0, 'sigma_2');
  });

  test('all wavelets together give back the forest: sigma_W is the error of its prediction', () => {
    const rng = new Rng(3);
    const x = normals(rng, 200, 8);
    const labels = Array.from({ length: 200 }, () => rng.int(3));
    const y = oneHot(labels);
    const forest = fitForest(x, y, { trees: 5, seed: 4 });
    const total = waveletNorms(forest).norm.length;
    const predicted = predictForest(forest, x);
    let s = 0;
    for (let i = 0; i < predicted.length; i++) s += (y.values[i] - predicted[i]) ** 2;
    const [first, last] = nTermErrors(forest, x, y.values, [0, total]);
    close(last, Math.sqrt(s / 200), 'sigma with every wavelet', 1e-10);
    assert.ok(last < first, `the full forest fits better than the root means: ${last} vs ${first}`);
  });

  test('the decay exponent of an exact power law is its exponent; the grid is geometric and covers 1..max', () => {
    const terms = geometricTerms(5000, 30);
    assert.equal(terms[0], 1);
    assert.equal(terms.at(-1), 5000);
    assert.ok(terms.every((t, i) => i === 0 || t > terms[i - 1]));
    close(decayExponent(terms, terms.map((n) => 3 * n ** -0.4)), 0.4, 'alpha', 1e-12);
    // Zero errors are left out (log 0), and fewer than two points leave alpha undefined.
    close(decayExponent([1, 10, 100], [1, 0.1, 0]), 1, 'alpha without the zero', 1e-12);
    assert.ok(Number.isNaN(decayExponent([1, 10], [1, 0])));
  });

  test('smooth labels get a clearly larger alpha than random labels on the same features', () => {
    for (const seed of [1, 2, 3]) {
      const rng = new Rng(100 + seed);
      const rows = 300;
      const cols = 16;
      const x = normals(rng, rows, cols);
      const f = (i: number, j: number) => x.values[i * cols + j];
      // Piecewise constant on four large regions (quadrants of two features), and a linear threshold.
      const quadrants = Array.from({ length: rows }, (_, i) => (f(i, 0) > 0 ? 1 : 0) + (f(i, 1) > 0 ? 2 : 0));
      const threshold = Array.from({ length: rows }, (_, i) => (f(i, 0) + f(i, 1) - 0.5 * f(i, 2) > 0 ? 1 : 0));
      const random4 = Array.from({ length: rows }, () => rng.int(4));
      const random2 = Array.from({ length: rows }, () => rng.int(2));
      const alpha = (labels: number[]) => besovAlpha(x, labels, { trees: 10, seed }).alpha;
      const [aq, ar4, at, ar2] = [alpha(quadrants), alpha(random4), alpha(threshold), alpha(random2)];
      assert.ok(aq > 2 * ar4, `seed ${seed}: quadrants ${aq} vs random labels ${ar4}`);
      assert.ok(at > 1.4 * ar2, `seed ${seed}: linear threshold ${at} vs random labels ${ar2}`);
      assert.ok(ar4 > 0 && ar2 > 0, 'random labels still decay a little');
    }
  });

  test('features that cluster by label are smoother than the same labels on unrelated features', () => {
    const rng = new Rng(21);
    const rows = 400;
    const cols = 64;
    const labels = Array.from({ length: rows }, () => rng.int(10));
    const unrelated = normals(rng, rows, cols);
    const centres = normals(rng, 10, cols);
    const clustered = Float32Array.from(unrelated.values, (v, i) => v + centres.values[labels[Math.floor(i / cols)] * cols + (i % cols)]);
    const a = besovAlpha({ values: clustered, rows, cols }, labels, { trees: 10, seed: 5 }).alpha;
    const b = besovAlpha(unrelated, labels, { trees: 10, seed: 5 }).alpha;
    assert.ok(a > 2 * b, `clustered ${a} vs unrelated ${b}`);
  });

  test('alpha is fixed by the seed', () => {
    const rng = new Rng(31);
    const x = normals(rng, 150, 10);
    const labels = Array.from({ length: 150 }, (_, i) => (x.values[i * 10] > 0.3 ? 1 : 0));
    const one = besovAlpha(x, labels, { trees: 4, seed: 9 });
    assert.deepEqual(besovAlpha(x, labels, { trees: 4, seed: 9 }), one);
    assert.notEqual(besovAlpha(x, labels, { trees: 4, seed: 10 }).alpha, one.alpha);
    assert.ok(Number.isFinite(one.alpha) && one.alpha > 0);
  });

  test('a single class is already fitted by the roots: alpha is undefined (NaN)', () => {
    const rng = new Rng(41);
    const estimate = besovAlpha(normals(rng, 50, 4), new Array(50).fill(2), { trees: 3, seed: 1 });
    assert.equal(estimate.wavelets, 0);
    assert.ok(Number.isNaN(estimate.alpha));
  });

  test('bad inputs fail with what was expected and what was found', () => {
    const one: FeatureMatrix = { values: new Float32Array([1, 2]), rows: 1, cols: 2 };
    assert.throws(() => besovAlpha(one, [0], { trees: 1, seed: 1 }), /at least 2 examples; found 1/);
    const x: FeatureMatrix = { values: new Float32Array([1, 2, 3, 4, 5, 6]), rows: 3, cols: 2 };
    assert.throws(() => besovAlpha(x, [0, 1], { trees: 1, seed: 1 }), /one label per example \(3\); found 2 labels/);
    const withNaN: FeatureMatrix = { values: new Float32Array([1, 2, 3, NaN, 5, 6]), rows: 3, cols: 2 };
    assert.throws(() => besovAlpha(withNaN, [0, 1, 0], { trees: 1, seed: 1 }), /expected finite features; found NaN at example 1, feature 1/);
    assert.throws(() => besovAlpha(x, [0, 1.5, 0], { trees: 1, seed: 1 }), /class ids as non-negative integers; found 1.5 at example 1/);
    assert.throws(() => besovAlpha(x, [0, 1, 0], { trees: 1, seed: 1, maxTerms: 0 }), /maxTerms to be an integer >= 1; found 0/);
  });
});
