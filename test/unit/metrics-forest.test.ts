/**
 * The CART regression forest of ml/metrics/forest.ts: a tree fits distinct training points exactly,
 * node means and counts are consistent with the data routed through the tree, predictions are the mean
 * of the trees' leaf values, the growth limits hold, and a seed fixes the forest.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { candidateFeatures, fitForest, leafOf, nodeRows, predictForest, type Tree } from '../../ml/metrics/forest.js';
import type { FeatureMatrix } from '../../ml/metrics/gram.js';
import { Rng } from '../../ml/rng.js';

function normals(rng: Rng, rows: number, cols: number): FeatureMatrix {
  return { values: Float32Array.from({ length: rows * cols }, () => rng.normal()), rows, cols };
}

function randomOneHot(rng: Rng, rows: number, classes: number): Float64Array {
  const y = new Float64Array(rows * classes);
  for (let i = 0; i < rows; i++) y[i * classes + rng.int(classes)] = 1;
  return y;
}

function depthOf(tree: Tree, v: number): number {
  let d = 0;
  for (let p = tree.parent[v]; p >= 0; p = tree.parent[p]) d++;
  return d;
}

describe('CART regression forest', () => {
  test('a tree without bootstrap fits distinct training points exactly, with any number of candidate features', () => {
    const rng = new Rng(1);
    const x = normals(rng, 200, 12);
    const y = randomOneHot(rng, 200, 5);
    for (const maxFeatures of ['all', 'sqrt', 0.25] as const) {
      const forest = fitForest(x, { values: y, outputs: 5 }, { trees: 1, maxFeatures, bootstrap: false, seed: 3 });
      assert.deepEqual(Array.from(predictForest(forest, x)), Array.from(y), `maxFeatures ${maxFeatures}`);
    }
  });

  test('a tree keeps drawing features past constant ones, so it still splits when most features are constant', () => {
    const rng = new Rng(2);
    const rows = 100;
    const cols = 30;
    const values = new Float32Array(rows * cols).fill(1);
    // Only feature 17 varies; sqrt(30) = 5 candidates per split would rarely include it by chance alone.
    for (let i = 0; i < rows; i++) values[i * cols + 17] = rng.normal();
    const y = Float64Array.from({ length: rows }, (_, i) => (values[i * cols + 17] > 0 ? 1 : 0));
    const forest = fitForest({ values, rows, cols }, { values: y, outputs: 1 }, { trees: 1, bootstrap: false, seed: 4 });
    assert.deepEqual(Array.from(predictForest(forest, { values, rows, cols })), Array.from(y));
    const tree = forest.trees[0];
    assert.equal(tree.nodes, 3, 'one split separates a threshold function of one feature');
    assert.equal(tree.feature[0], 17);
  });

  test('node counts and means agree with the training rows routed through the tree (multi-output)', () => {
    const rng = new Rng(5);
    const x = normals(rng, 300, 6);
    const outputs = 3;
    const y = Float64Array.from({ length: 300 * outputs }, (_, i) => (i % outputs === 0 ? 2 : rng.normal() + x.values[Math.floor(i / outputs) * 6]));
    const forest = fitForest(x, { values: y, outputs }, { trees: 1, bootstrap: false, minSamplesLeaf: 4, seed: 6 });
    const tree = forest.trees[0];
    const members = nodeRows(tree, x);
    assert.ok(tree.nodes > 20);
    for (let v = 0; v < tree.nodes; v++) {
      const count = members.end[v] - members.start[v];
      assert.equal(tree.count[v], count, `node ${v} count`);
      for (let o = 0; o < outputs; o++) {
        let sum = 0;
        for (let r = members.start[v]; r < members.end[v]; r++) sum += y[members.rows[r] * outputs + o];
        assert.ok(Math.abs(tree.value[v * outputs + o] - sum / count) < 1e-12, `node ${v} output ${o}: ${tree.value[v * outputs + o]} vs ${sum / count}`);
      }
      if (tree.feature[v] >= 0) {
        assert.equal(tree.count[v], tree.count[tree.left[v]] + tree.count[tree.right[v]]);
        assert.ok(tree.left[v] > v && tree.right[v] > tree.left[v], 'preorder ids, left child first');
        assert.equal(tree.parent[tree.left[v]], v);
        assert.equal(tree.parent[tree.right[v]], v);
      } else {
        assert.ok(tree.count[v] >= 4, `leaf ${v} has ${tree.count[v]} samples, fewer than minSamplesLeaf`);
      }
    }
    // Every leaf holds the vector mean of its rows; the constant output stays exactly 2 everywhere.
    for (let v = 0; v < tree.nodes; v++) assert.equal(tree.value[v * outputs], 2);
  });

  test('predictions are the mean over trees of the leaf values; bootstrap counts add up to the examples', () => {
    const rng = new Rng(7);
    const x = normals(rng, 150, 10);
    const y = randomOneHot(rng, 150, 4);
    const forest = fitForest(x, { values: y, outputs: 4 }, { trees: 7, seed: 8 });
    const probe = normals(rng, 40, 10);
    const predicted = predictForest(forest, probe);
    for (let i = 0; i < probe.rows; i++) {
      for (let o = 0; o < 4; o++) {
        const mean = forest.trees.reduce((s, t) => s + t.value[leafOf(t, probe, i) * 4 + o], 0) / forest.trees.length;
        assert.ok(Math.abs(predicted[i * 4 + o] - mean) < 1e-12);
      }
    }
    for (const tree of forest.trees) assert.equal(tree.count[0], 150, 'a bootstrap sample has n draws');
    // Bootstrap leaves out about a third of the examples, so trees differ and do not all fit every point.
    const fitted = predictForest(forest, x);
    assert.notDeepEqual(Array.from(fitted), Array.from(y));
    assert.notDeepEqual(Array.from(forest.trees[0].feature), Array.from(forest.trees[1].feature));
  });

  test('maxDepth and minSamplesLeaf limit growth', () => {
    const rng = new Rng(9);
    const x = normals(rng, 200, 8);
    const y = randomOneHot(rng, 200, 3);
    const shallow = fitForest(x, { values: y, outputs: 3 }, { trees: 2, maxDepth: 3, seed: 1 });
    for (const tree of shallow.trees) {
      for (let v = 0; v < tree.nodes; v++) assert.ok(depthOf(tree, v) <= 3);
    }
    const stump = fitForest(x, { values: y, outputs: 3 }, { trees: 1, maxDepth: 0, seed: 1 }).trees[0];
    assert.equal(stump.nodes, 1);
    const coarse = fitForest(x, { values: y, outputs: 3 }, { trees: 2, minSamplesLeaf: 20, seed: 1 });
    for (const tree of coarse.trees) {
      for (let v = 0; v < tree.nodes; v++) if (tree.feature[v] < 0) assert.ok(tree.count[v] >= 20);
    }
  });

  test('a seed fixes the forest; another seed gives another', () => {
    const rng = new Rng(10);
    const x = normals(rng, 120, 9);
    const y = randomOneHot(rng, 120, 3);
    const grow = (seed: number) => fitForest(x, { values: y, outputs: 3 }, { trees: 3, seed });
    assert.deepEqual(grow(11), grow(11));
    assert.notDeepEqual(grow(11).trees[0].feature, grow(12).trees[0].feature);
    // Tree t does not depend on how many trees are grown.
    assert.deepEqual(fitForest(x, { values: y, outputs: 3 }, { trees: 1, seed: 11 }).trees[0], grow(11).trees[0]);
  });

  test('candidate features per split', () => {
    assert.equal(candidateFeatures('sqrt', 512), 22);
    assert.equal(candidateFeatures('all', 512), 512);
    assert.equal(candidateFeatures(0.1, 512), 51);
    assert.equal(candidateFeatures(0.001, 10), 1);
    assert.throws(() => candidateFeatures(1.5, 10), /fraction in \(0, 1\]; found 1.5/);
  });

  test('bad inputs fail with what was expected and what was found', () => {
    const x: FeatureMatrix = { values: new Float32Array([0, 1, 2, 3, 4, 5]), rows: 3, cols: 2 };
    assert.throws(() => fitForest(x, { values: new Float64Array(2), outputs: 1 }, { trees: 1, seed: 1 }), /expected 3 targets of 1 outputs .* found 2/);
    const withNaN: FeatureMatrix = { values: new Float32Array([0, 1, NaN, 3, 4, 5]), rows: 3, cols: 2 };
    assert.throws(() => fitForest(withNaN, { values: new Float64Array(3), outputs: 1 }, { trees: 1, seed: 1 }), /expected finite features; found NaN at example 1, feature 0/);
    assert.throws(() => fitForest(x, { values: new Float64Array(3), outputs: 1 }, { trees: 0, seed: 1 }), /trees to be an integer >= 1; found 0/);
    assert.throws(() => predictForest(fitForest(x, { values: new Float64Array(3), outputs: 1 }, { trees: 1, seed: 1 }), { values: new Float32Array(3), rows: 1, cols: 3 }), /expected 2 features per example; found 3/);
  });
});
