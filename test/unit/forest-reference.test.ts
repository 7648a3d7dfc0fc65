/**
 * ml/metrics/forest.ts against an independent implementation: test/unit/forest_reference.py grows
 * scikit-learn's DecisionTreeRegressor on the same random inputs (raw float32 features, float64
 * multi-output targets). Both trees must cut the training set into the same nodes (the same sets of
 * rows, with the same means). With leaves of a single sample, two features can isolate the same samples
 * equally well and each implementation breaks the tie its own way, so only the cuts are compared; with
 * leaves of at least 5 samples there are no ties and the trees must be equal node by node, split
 * features and thresholds included. Needs scikit-learn in the project's Python (`npm run setup`); when the Python
 * is missing the test fails with resolveTool's message rather than skipping.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { resolveTool } from '../../infra/tools.js';
import { fitForest, nodeRows, type Tree } from '../../ml/metrics/forest.js';
import { Rng } from '../../ml/rng.js';

const SCRIPT = fileURLToPath(new URL('./forest_reference.py', import.meta.url));
interface SklearnTree {
  feature: number[];
  threshold: number[];
  left: number[];
  right: number[];
  count: number[];
  value: number[];
  rows: number[][];
}

async function sklearnTree(x: Float32Array, rows: number, cols: number, y: Float64Array, outputs: number, minSamplesLeaf: number): Promise<SklearnTree> {
  const folder = await mkdtemp(join(tmpdir(), 'paramtrail-forest-py-'));
  try {
    await writeFile(join(folder, 'x.f32'), new Uint8Array(x.buffer));
    await writeFile(join(folder, 'y.f64'), new Uint8Array(y.buffer));
    await writeFile(join(folder, 'manifest.json'), JSON.stringify({ x: { file: 'x.f32', rows, cols }, y: { file: 'y.f64', outputs }, minSamplesLeaf }));
    const run = spawnSync(resolveTool('python', process.env), [SCRIPT, folder], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (run.error) throw run.error;
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    return JSON.parse(run.stdout) as SklearnTree;
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

function close(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a)), `${what}: ${a} vs ${b}`);
}

function oursByRows(tree: Tree, x: Float32Array, rows: number, cols: number): Map<string, number> {
  const members = nodeRows(tree, { values: x, rows, cols });
  const byRows = new Map<string, number>();
  for (let v = 0; v < tree.nodes; v++) {
    const key = Array.from(members.rows.subarray(members.start[v], members.end[v])).sort((a, b) => a - b).join(',');
    byRows.set(key, v);
  }
  return byRows;
}

for (const minSamplesLeaf of [1, 5]) {
  test(`one CART tree cuts the data as scikit-learn's DecisionTreeRegressor does (minSamplesLeaf ${minSamplesLeaf})`, async () => {
    const rng = new Rng(4242 + minSamplesLeaf);
    const rows = 240;
    const cols = 7;
    const outputs = 3;
    const x = Float32Array.from({ length: rows * cols }, () => rng.normal());
    // Continuous targets partly driven by the features, so splits are informative.
    const y = new Float64Array(rows * outputs);
    for (let i = 0; i < rows; i++) {
      y[i * outputs] = Math.sin(2 * x[i * cols]) + 0.3 * rng.normal();
      y[i * outputs + 1] = x[i * cols + 1] * x[i * cols + 2] + 0.3 * rng.normal();
      y[i * outputs + 2] = rng.normal();
    }
    const want = await sklearnTree(x, rows, cols, y, outputs, minSamplesLeaf);
    const tree = fitForest({ values: x, rows, cols }, { values: y, outputs }, { trees: 1, maxFeatures: 'all', bootstrap: false, minSamplesLeaf, seed: 1 }).trees[0];
    assert.ok(tree.nodes > 40, `expected a deep tree; found ${tree.nodes} nodes`);
    assert.equal(tree.nodes, want.feature.length, 'node count');

    const ours = oursByRows(tree, x, rows, cols);
    want.rows.forEach((members, w) => {
      const v = ours.get(members.join(','));
      assert.ok(v !== undefined, `scikit-learn's node ${w} (${members.length} rows) is no node of ours`);
      assert.equal(tree.count[v], want.count[w], `samples of node ${w}`);
      for (let o = 0; o < outputs; o++) close(tree.value[v * outputs + o], want.value[w * outputs + o], `mean ${o} of node ${w}`);
    });
    if (minSamplesLeaf >= 5) {
      assert.deepEqual(Array.from(tree.feature), want.feature, 'split features in node order');
      assert.deepEqual(Array.from(tree.left), want.left, 'left children');
      assert.deepEqual(Array.from(tree.right), want.right, 'right children');
      want.threshold.forEach((t, w) => {
        if (want.feature[w] >= 0) assert.equal(tree.threshold[w], t, `threshold of node ${w}`);
      });
    }
  });
}
