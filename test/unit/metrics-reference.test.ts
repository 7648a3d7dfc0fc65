/**
 * ml/metrics against an independent implementation: test/unit/metrics_reference.py computes the same
 * metrics with numpy (linalg.norm, corrcoef, histogram, the n x n kernel form of CKA, interp) on the
 * same random inputs, passed as raw float32 files. Needs the project's Python (`npm run setup`); when
 * it is missing the test fails with resolveTool's message rather than skipping.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import type { NamedTensor } from '../../artifacts/snapshot.js';
import { resolveTool } from '../../infra/tools.js';
import { Rng } from '../../ml/rng.js';
import {
  averageOverDepth,
  correlationSummary,
  crossCorrelation,
  layerChanges,
  layerNorms,
  layerShareChanged,
  linearCka,
  pearsonMatrix,
  type DepthRow,
  type FeatureMatrix,
  type MinkowskiP,
} from '../../ml/metrics/index.js';

const SCRIPT = fileURLToPath(new URL('./metrics_reference.py', import.meta.url));
/** Both sides compute in float64 from the same float32 inputs; only summation order differs. */
const RELATIVE = 1e-9;

function close(actual: number, expected: number | null, what: string): void {
  if (expected === null) {
    assert.ok(Number.isNaN(actual), `${what}: expected NaN, found ${actual}`);
    return;
  }
  const scale = Math.max(Math.abs(expected), 1e-300);
  assert.ok(Math.abs(actual - expected) <= RELATIVE * scale || actual === expected, `${what}: expected ${expected}, found ${actual}`);
}

function normals(rng: Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/** A model-shaped pair: reference weights, and a trained copy where some weights did not move. */
function snapshotPair(rng: Rng): { reference: NamedTensor[]; current: NamedTensor[] } {
  const shapes: Array<[string, string, number[]]> = [
    ['conv2d_1', 'kernel', [3, 3, 3, 8]],
    ['conv2d_1', 'bias', [8]],
    ['dense_1', 'kernel', [72, 16]],
    ['dense_1', 'bias', [16]],
    ['dense_2', 'kernel', [16, 10]],
  ];
  const reference: NamedTensor[] = [];
  const current: NamedTensor[] = [];
  for (const [layer, name, shape] of shapes) {
    const size = shape.reduce((a, b) => a * b, 1);
    const r = normals(rng, size, 0.1);
    const c = r.map((w) => {
      const u = rng.next();
      if (u < 0.3) return w; // unchanged
      if (u < 0.5) return w * (1 + 1e-6 * rng.normal()); // moved by about the tolerance
      return w + 0.01 * rng.normal();
    });
    reference.push({ layer, name, shape, values: r });
    current.push({ layer, name, shape, values: c });
  }
  return { reference, current };
}

function features(rng: Rng, rows: number, cols: number, mix?: FeatureMatrix): FeatureMatrix {
  const values = normals(rng, rows * cols);
  if (mix) {
    // Make the second model's features partly a function of the first's, so CKA is not near 0.
    for (let k = 0; k < rows; k++) for (let j = 0; j < cols; j++) values[k * cols + j] += mix.values[k * mix.cols + (j % mix.cols)] * (j + 1) * 0.3;
  }
  return { values, rows, cols };
}

describe('metrics against numpy', () => {
  const dir = mkdtemp(join(tmpdir(), 'paramtrail-metrics-py-'));
  after(async () => rm(await dir, { recursive: true, force: true }));

  test('distances, norms, share changed, correlation, CKA and depth averages agree', async () => {
    const folder = await dir;
    const rng = new Rng(20240531);
    const { reference, current } = snapshotPair(rng);
    const x = features(rng, 300, 21);
    // A constant feature (a dead unit) and a feature with a large mean.
    for (let k = 0; k < x.rows; k++) {
      x.values[k * x.cols + 4] = 0.25;
      x.values[k * x.cols + 9] += 1000;
    }
    const y = features(rng, 300, 10, x);
    const ps: MinkowskiP[] = [1, 2, 3, 'inf'];
    const tolerance = { atol: 1e-8, rtol: 1e-6 };
    const edges = [-1, -0.5, -0.1, 0, 0.1, 0.5, 1];
    const depthRows: DepthRow[] = [];
    for (const [run, layers] of [['resnet18', 18], ['plain34', 34], ['lenet', 5]] as const) {
      for (let depth = 0; depth < layers; depth++) depthRows.push({ run, depth, layers, value: rng.normal() + depth / layers });
    }
    const grid = [0, 0.05, 0.1, 0.25, 1 / 3, 0.5, 0.77, 0.9, 1];

    const files = new Map<string, Float32Array>();
    const file = (name: string, values: Float32Array) => {
      files.set(name, values);
      return name;
    };
    const layers = [...new Set(reference.map((t) => t.layer))].map((layer) => ({
      layer,
      tensors: reference
        .map((t, i) => ({ t, i }))
        .filter(({ t }) => t.layer === layer)
        .map(({ t, i }) => ({ name: t.name, reference: file(`ref-${i}.f32`, t.values), current: file(`cur-${i}.f32`, current[i].values) })),
    }));
    const manifest = {
      snapshots: { layers, ps, ...tolerance },
      features: { x: { file: file('x.f32', x.values as Float32Array), rows: x.rows, cols: x.cols }, y: { file: file('y.f32', y.values as Float32Array), rows: y.rows, cols: y.cols }, bins: edges },
      aggregate: { rows: depthRows, grid },
    };
    for (const [name, values] of files) await writeFile(join(folder, name), new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    await writeFile(join(folder, 'manifest.json'), JSON.stringify(manifest));

    const python = resolveTool('python', process.env);
    const run = spawnSync(python, [SCRIPT, folder], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (run.error) throw run.error;
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    const want = JSON.parse(run.stdout);

    for (const p of ps) {
      const rows = layerChanges(reference, current, p);
      const norms = layerNorms(current, p);
      const expected = want.snapshots.changes[String(p)];
      assert.equal(rows.length, expected.length);
      rows.forEach((row, i) => {
        const e = expected[i];
        assert.equal(row.layer, e.layer);
        assert.equal(row.params, e.params);
        for (const key of ['distance', 'meanDistance', 'referenceNorm', 'relative'] as const) close(row[key], e[key], `p = ${p}, ${row.layer}, ${key}`);
        close(norms[i].norm, e.currentNorm, `p = ${p}, ${row.layer}, norm of current`);
      });
    }
    const share = layerShareChanged(reference, current, tolerance);
    assert.deepEqual(
      share.map((r) => [r.layer, r.changed]),
      want.snapshots.share.map((r: { layer: string; changed: number }) => [r.layer, r.changed]),
    );
    share.forEach((r, i) => close(r.fraction, want.snapshots.share[i].fraction, `${r.layer} fraction`));
    // The inputs must exercise the tolerance: neither nothing nor everything changed.
    assert.ok(share.at(-1)!.fraction > 0.3 && share.at(-1)!.fraction < 0.9, `model fraction ${share.at(-1)!.fraction}`);

    const pearson = pearsonMatrix(x);
    assert.equal(pearson.values.length, want.features.pearson.length);
    pearson.values.forEach((r, i) => close(r, want.features.pearson[i], `pearson entry ${i}`));
    const cross = crossCorrelation(x, y);
    assert.equal(cross.values.length, want.features.cross.length);
    cross.values.forEach((r, i) => close(r, want.features.cross[i], `cross entry ${i}`));
    const summary = correlationSummary(pearson, edges);
    close(summary.meanAbs, want.features.meanAbs, 'mean |r|');
    assert.equal(summary.pairs, want.features.pairs);
    assert.equal(summary.undefinedPairs, want.features.undefinedPairs);
    assert.deepEqual(Array.from(summary.counts), want.features.counts);
    const cka = linearCka(x, y);
    close(cka, want.features.cka, 'linear CKA');
    assert.ok(cka > 0.05 && cka < 0.95, `CKA of partly related features is strictly between 0 and 1; found ${cka}`);

    const profile = averageOverDepth(depthRows, grid);
    assert.equal(profile.length, want.aggregate.length);
    profile.forEach((point, g) => {
      const e = want.aggregate[g];
      assert.equal(point.runs, e.runs);
      for (const key of ['position', 'mean', 'std', 'min', 'max'] as const) close(point[key], e[key], `depth ${grid[g]}, ${key}`);
    });
  });
});
