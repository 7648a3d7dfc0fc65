/**
 * Relative change, per-parameter distance, norms and share of parameters changed (ml/metrics/change.ts)
 * on hand-computed values, plus the properties: distance zero to itself, share changed 0 for
 * identical snapshots and 1 after a sign flip of non-zero weights.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { NamedTensor } from '../../artifacts/snapshot.js';
import { Rng } from '../../ml/rng.js';
import {
  MODEL_LAYER,
  changedAccumulate,
  layerChanges,
  layerDistances,
  layerNorms,
  layerShareChanged,
  norm,
  normAccumulate,
  type MinkowskiP,
} from '../../ml/metrics/index.js';

const f32 = (values: number[]) => Float32Array.from(values);

function close(actual: number, expected: number, tolerance = 1e-12) {
  assert.ok(Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)), `expected ${expected}, found ${actual}`);
}

function tensor(layer: string, name: string, values: number[], shape: number[] = [values.length]): NamedTensor {
  return { layer, name, shape, values: f32(values) };
}

function randomModel(rng: Rng): NamedTensor[] {
  return [
    { layer: 'conv', name: 'kernel', shape: [3, 3, 2, 4], values: Float32Array.from({ length: 72 }, () => rng.normal()) },
    { layer: 'conv', name: 'bias', shape: [4], values: Float32Array.from({ length: 4 }, () => rng.normal()) },
    { layer: 'dense', name: 'kernel', shape: [36, 10], values: Float32Array.from({ length: 360 }, () => rng.normal()) },
  ];
}

// conv: kernel (3, 4) -> (0, 4), bias 0 -> 1: differences (-3, 0, 1); dense (1, -1) unchanged.
const reference = [tensor('conv', 'kernel', [3, 4], [1, 2]), tensor('conv', 'bias', [0]), tensor('dense', 'kernel', [1, -1])];
const current = [tensor('conv', 'kernel', [0, 4], [1, 2]), tensor('conv', 'bias', [1]), tensor('dense', 'kernel', [1, -1])];

describe('norm', () => {
  it('is the p-norm of the values, hand-computed', () => {
    const v = f32([3, -4, 0]);
    assert.equal(norm(v, 1), 7);
    assert.equal(norm(v, 2), 5);
    close(norm(v, 3), Math.cbrt(27 + 64));
    assert.equal(norm(v, 'inf'), 4);
    assert.equal(norm(f32([]), 2), 0);
  });
  it('accumulates over pieces and propagates NaN', () => {
    for (const p of [1, 2, 3, 'inf'] as MinkowskiP[]) {
      const whole = f32([1, -2, 3, -4, 5]);
      close(normAccumulate(whole.subarray(2), p, normAccumulate(whole.subarray(0, 2), p)), normAccumulate(whole, p));
      assert.ok(Number.isNaN(norm(f32([1, Number.NaN, 2]), p)), `NaN for p = ${p}`);
      assert.ok(Number.isNaN(normAccumulate(f32([1]), p, Number.NaN)), `NaN partial sum for p = ${p}`);
    }
  });
  it('rejects p < 1', () => {
    assert.throws(() => norm(f32([1]), 0.5), /p must be a number >= 1 or 'inf'; found 0.5/);
  });
});

describe('layerChanges', () => {
  it('gives distance, mean per parameter and relative change per layer and for the model (p = 1)', () => {
    assert.deepEqual(layerChanges(reference, current, 1), [
      { layer: 'conv', depth: 0, params: 3, distance: 4, meanDistance: 4 / 3, referenceNorm: 7, relative: 4 / 7 },
      { layer: 'dense', depth: 1, params: 2, distance: 0, meanDistance: 0, referenceNorm: 2, relative: 0 },
      { layer: MODEL_LAYER, depth: -1, params: 5, distance: 4, meanDistance: 0.8, referenceNorm: 9, relative: 4 / 9 },
    ]);
  });
  it('combines layers exactly for p = 2 and inf', () => {
    const two = layerChanges(reference, current, 2);
    close(two[0].distance, Math.sqrt(10));
    assert.equal(two[0].referenceNorm, 5);
    close(two[0].relative, Math.sqrt(10) / 5);
    close(two[2].referenceNorm, Math.sqrt(27));
    close(two[2].relative, Math.sqrt(10) / Math.sqrt(27));
    const inf = layerChanges(reference, current, 'inf');
    assert.deepEqual(
      inf.map((r) => [r.distance, r.referenceNorm, r.relative]),
      [
        [3, 4, 0.75],
        [0, 1, 0],
        [3, 4, 0.75],
      ],
    );
  });
  it('has the same distances as layerDistances, bit for bit', () => {
    const rng = new Rng(7);
    const a = randomModel(rng);
    const b = randomModel(rng);
    for (const p of [1, 2, 3, 'inf'] as MinkowskiP[]) {
      assert.deepEqual(
        layerChanges(a, b, p).map((r) => [r.layer, r.depth, r.params, r.distance]),
        layerDistances(a, b, p).map((r) => [r.layer, r.depth, r.params, r.distance]),
      );
    }
  });
  it('is zero from a snapshot to itself', () => {
    const a = randomModel(new Rng(8));
    for (const p of [1, 2, 3, 'inf'] as MinkowskiP[]) {
      for (const row of layerChanges(a, a, p)) {
        assert.equal(row.distance, 0);
        assert.equal(row.relative, 0);
        assert.ok(row.referenceNorm > 0);
      }
    }
  });
  it('gives Infinity against a zero reference that moved, NaN where nothing moved, NaN means for no parameters', () => {
    const rows = layerChanges([tensor('a', 'bias', [0, 0]), tensor('b', 'bias', [0])], [tensor('a', 'bias', [0, 1]), tensor('b', 'bias', [0])], 2);
    assert.equal(rows[0].relative, Number.POSITIVE_INFINITY);
    assert.ok(Number.isNaN(rows[1].relative));
    const empty = layerChanges([], [], 1);
    assert.equal(empty.length, 1);
    assert.equal(empty[0].distance, 0);
    assert.ok(Number.isNaN(empty[0].meanDistance));
  });
  it('gives NaN for the layer and the model when a weight is NaN', () => {
    const broken = [current[0], current[1], tensor('dense', 'kernel', [Number.NaN, -1])];
    for (const p of [1, 2, 'inf'] as MinkowskiP[]) {
      const rows = layerChanges(reference, broken, p);
      assert.ok(Number.isFinite(rows[0].relative), `conv stays finite for p = ${p}`);
      assert.ok(Number.isNaN(rows[1].distance) && Number.isNaN(rows[1].relative), `dense is NaN for p = ${p}`);
      assert.ok(Number.isNaN(rows[2].distance) && Number.isNaN(rows[2].relative), `model is NaN for p = ${p}`);
    }
  });
  it('names a tensor missing from either side or reshaped, as layerDistances does', () => {
    assert.throws(() => layerChanges(reference, current.slice(0, 2), 1), /tensor "kernel" of layer "dense" is in the first snapshot but missing from the second/);
    assert.throws(() => layerChanges(reference.slice(1), current, 1), /tensor "kernel" of layer "conv" is in the second snapshot but missing from the first/);
    assert.throws(
      () => layerChanges(reference, [tensor('conv', 'kernel', [0, 4], [2, 1]), current[1], current[2]], 1),
      /tensor "kernel" of layer "conv" has shape \[1, 2\] in the first snapshot and \[2, 1\] in the second/,
    );
    assert.throws(() => layerChanges([...reference, reference[1]], current, 1), /first snapshot lists tensor "bias" of layer "conv" twice/);
  });
});

describe('layerNorms', () => {
  it('gives |W|_p per layer and for the model', () => {
    assert.deepEqual(layerNorms(reference, 1), [
      { layer: 'conv', depth: 0, params: 3, norm: 7 },
      { layer: 'dense', depth: 1, params: 2, norm: 2 },
      { layer: MODEL_LAYER, depth: -1, params: 5, norm: 9 },
    ]);
    assert.deepEqual(
      layerNorms(reference, 'inf').map((r) => r.norm),
      [4, 1, 4],
    );
  });
  it('rejects a (layer, name) listed twice', () => {
    assert.throws(() => layerNorms([...reference, reference[0]], 1), /snapshot lists tensor "kernel" of layer "conv" twice/);
  });
});

describe('share of parameters changed', () => {
  const strict = { atol: 0, rtol: 0 };

  it('counts |delta| > atol + rtol |w0|, hand-computed', () => {
    // Differences: 0; 0.1 (changed); 1e-9 <= atol (unchanged at atol 1e-8); ~1e-5 <= rtol * 4 (unchanged at rtol 1e-5).
    const w0 = f32([1, -2, 0, 4]);
    const wt = f32([1, -2.1, 1e-9, 4.00001]);
    assert.equal(changedAccumulate(w0, wt, { atol: 1e-8, rtol: 1e-5 }), 1);
    assert.equal(changedAccumulate(w0, wt, { atol: 0, rtol: 1e-5 }), 2);
    assert.equal(changedAccumulate(w0, wt, strict), 3);
    assert.equal(changedAccumulate(w0, wt, { atol: 1, rtol: 0 }), 0);
    // The bound is inclusive: |delta| equal to atol does not count.
    assert.equal(changedAccumulate(f32([0]), f32([0.5]), { atol: 0.5, rtol: 0 }), 0);
  });

  it('gives counts and fractions per layer and for the model', () => {
    assert.deepEqual(layerShareChanged(reference, current, strict), [
      { layer: 'conv', depth: 0, params: 3, changed: 2, fraction: 2 / 3 },
      { layer: 'dense', depth: 1, params: 2, changed: 0, fraction: 0 },
      { layer: MODEL_LAYER, depth: -1, params: 5, changed: 2, fraction: 0.4 },
    ]);
  });

  it('is 0 for identical snapshots and 1 after a sign flip of non-zero weights', () => {
    const a = randomModel(new Rng(9));
    const flipped = a.map((t) => ({ ...t, values: t.values.map((v) => -v) }));
    for (const tol of [strict, { atol: 1e-8, rtol: 1e-5 }, { atol: 0, rtol: 1.5 }]) {
      assert.ok(layerShareChanged(a, a, tol).every((r) => r.changed === 0 && r.fraction === 0));
      assert.ok(layerShareChanged(a, flipped, tol).every((r) => r.fraction === 1));
    }
    // A zero weight's sign flip is no change (|-0 - 0| = 0): only the non-zero ones count.
    const withZeros = [tensor('d', 'k', [0, 1, 0, -2])];
    assert.equal(layerShareChanged(withZeros, [tensor('d', 'k', [-0, -1, -0, 2])], strict)[0].fraction, 0.5);
  });

  it('gives NaN for the layer and the model when a weight is NaN', () => {
    const broken = [current[0], current[1], tensor('dense', 'kernel', [1, Number.NaN])];
    const rows = layerShareChanged(reference, broken, strict);
    assert.equal(rows[0].changed, 2);
    assert.ok(Number.isNaN(rows[1].changed) && Number.isNaN(rows[1].fraction));
    assert.ok(Number.isNaN(rows[2].changed) && Number.isNaN(rows[2].fraction));
  });

  it('requires an explicit, non-negative tolerance', () => {
    assert.throws(() => layerShareChanged(reference, current, { atol: -1, rtol: 0 }), /expected atol to be a finite number >= 0; found -1/);
    assert.throws(() => layerShareChanged(reference, current, { atol: 0 } as never), /expected rtol to be a finite number >= 0; found undefined/);
    assert.throws(() => changedAccumulate(f32([1]), f32([1]), { atol: 0, rtol: Number.NaN }), /rtol .* found NaN/);
    assert.throws(() => changedAccumulate(f32([1, 2]), f32([1]), strict), /equal length; found 2 and 1/);
  });
});
