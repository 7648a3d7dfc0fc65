/**
 * Minkowski distance on hand-computed values, per tensor and per layer.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { NamedTensor } from '../../artifacts/snapshot.js';
import {
  MODEL_LAYER,
  formatMinkowskiP,
  layerDistances,
  minkowski,
  minkowskiAccumulate,
  minkowskiFinish,
  parseMinkowskiP,
  type MinkowskiP,
} from '../../ml/metrics/index.js';

const f32 = (values: number[]) => Float32Array.from(values);

function close(actual: number, expected: number, tolerance = 1e-12) {
  assert.ok(Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)), `expected ${expected}, found ${actual}`);
}

/** Deterministic pseudo-random float32 values (a small LCG), so the test needs no seed plumbing. */
function pseudoRandom(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

function tensor(layer: string, name: string, values: number[], shape: number[] = [values.length]): NamedTensor {
  return { layer, name, shape, values: f32(values) };
}

describe('minkowski', () => {
  // Differences (3, -4, 5): |.| sums to 12, squares to 50, cubes to 216 = 6^3, maximum 5.
  const a = f32([3, 0, 5]);
  const b = f32([0, 4, 0]);

  it('p = 1 is the sum of absolute differences', () => {
    assert.equal(minkowski(a, b, 1), 12);
  });
  it('p = 2 is the Euclidean distance', () => {
    close(minkowski(a, b, 2), Math.sqrt(50));
    assert.equal(minkowski(f32([3, 4]), f32([0, 0]), 2), 5);
  });
  it('p = 3 takes the cube root of the sum of cubes', () => {
    close(minkowski(a, b, 3), 6);
  });
  it("p = 'inf' is the largest absolute difference", () => {
    assert.equal(minkowski(a, b, 'inf'), 5);
    assert.equal(minkowski(a, b, Number.POSITIVE_INFINITY), 5);
  });
  it('a fractional p uses the general formula', () => {
    close(minkowski(f32([1, 2]), f32([0, 0]), 1.5), (1 + 2 ** 1.5) ** (1 / 1.5));
  });

  it('is zero from an array to itself and symmetric', () => {
    const x = pseudoRandom(1000, 1);
    const y = pseudoRandom(1000, 2);
    for (const p of [1, 2, 3, 'inf'] as MinkowskiP[]) {
      assert.equal(minkowski(x, x, p), 0, `d(x, x) for p = ${p}`);
      const d = minkowski(x, y, p);
      assert.ok(d > 0, `d(x, y) > 0 for p = ${p}`);
      assert.equal(minkowski(y, x, p), d, `symmetry for p = ${p}`);
    }
  });

  it('accumulates in float64, not float32', () => {
    // 2^24 + 1 rounds back to 2^24 in float32: a float32 sum would lose all 1000 ones.
    const big = new Float32Array(1001).fill(1);
    big[0] = 2 ** 24;
    assert.equal(minkowski(big, new Float32Array(1001), 1), 2 ** 24 + 1000);
  });

  it('gives 0 for empty arrays', () => {
    for (const p of [1, 2, 3, 'inf'] as MinkowskiP[]) assert.equal(minkowski(f32([]), f32([]), p), 0);
  });

  it('propagates NaN for every p, wherever the NaN is', () => {
    for (const p of [1, 2, 3, 'inf'] as MinkowskiP[]) {
      for (const at of [0, 1, 2]) {
        const x = f32([1, 2, 3]);
        x[at] = Number.NaN;
        assert.ok(Number.isNaN(minkowski(x, f32([0, 0, 0]), p)), `p = ${p}, NaN at ${at} in a`);
        assert.ok(Number.isNaN(minkowski(f32([0, 0, 0]), x, p)), `p = ${p}, NaN at ${at} in b`);
      }
      assert.ok(Number.isNaN(minkowskiAccumulate(f32([1]), f32([0]), p, Number.NaN)), `p = ${p}, NaN partial sum`);
    }
  });

  it('rejects arrays of different lengths, naming both lengths', () => {
    assert.throws(() => minkowski(f32([1, 2, 3]), f32([1, 2]), 1), /equal length; found 3 and 2/);
  });

  it('rejects p < 1 and non-numbers', () => {
    for (const p of [0.5, 0, -1, Number.NaN]) {
      assert.throws(() => minkowski(a, b, p), /p must be a number >= 1 or 'inf'/, `p = ${p}`);
    }
    assert.throws(() => minkowski(a, b, 'max' as MinkowskiP), /found max/);
  });

  it('partial sums over pieces equal the distance of the whole', () => {
    const x = pseudoRandom(300, 3);
    const y = pseudoRandom(300, 4);
    for (const p of [1, 2, 3, 'inf'] as MinkowskiP[]) {
      let acc = minkowskiAccumulate(x.subarray(0, 100), y.subarray(0, 100), p);
      acc = minkowskiAccumulate(x.subarray(100), y.subarray(100), p, acc);
      close(minkowskiFinish(acc, p), minkowski(x, y, p));
    }
  });
});

describe('parseMinkowskiP / formatMinkowskiP', () => {
  it('round-trips the table spellings', () => {
    assert.equal(parseMinkowskiP('1'), 1);
    assert.equal(parseMinkowskiP('2'), 2);
    assert.equal(parseMinkowskiP('inf'), 'inf');
    assert.equal(parseMinkowskiP('Infinity'), 'inf');
    assert.equal(formatMinkowskiP(1), '1');
    assert.equal(formatMinkowskiP('inf'), 'inf');
    assert.equal(formatMinkowskiP(Number.POSITIVE_INFINITY), 'inf');
  });
  it('rejects text that is not a valid p', () => {
    assert.throws(() => parseMinkowskiP('two'), /found "two"/);
    assert.throws(() => parseMinkowskiP(''), /found ""/);
    assert.throws(() => parseMinkowskiP('0.5'), /found 0.5/);
  });
});

describe('layerDistances', () => {
  // conv: kernel differences (1, 2), bias difference (2); dense: differences (0.5, -0.5).
  const start = [
    tensor('conv', 'kernel', [0, 0], [1, 2]),
    tensor('conv', 'bias', [0]),
    tensor('dense', 'kernel', [0, 0], [2, 1]),
  ];
  const end = [
    tensor('conv', 'kernel', [1, 2], [1, 2]),
    tensor('conv', 'bias', [2]),
    tensor('dense', 'kernel', [0.5, -0.5], [2, 1]),
  ];

  it('combines all tensors of a layer and adds a whole-model row (p = 1)', () => {
    assert.deepEqual(layerDistances(start, end, 1), [
      { layer: 'conv', depth: 0, params: 3, distance: 5 },
      { layer: 'dense', depth: 1, params: 2, distance: 1 },
      { layer: MODEL_LAYER, depth: -1, params: 5, distance: 6 },
    ]);
  });

  it('combines exactly for p = 2 and inf', () => {
    const two = layerDistances(start, end, 2);
    assert.equal(two[0].distance, 3); // sqrt(1 + 4 + 4)
    close(two[1].distance, Math.sqrt(0.5));
    close(two[2].distance, Math.sqrt(9.5));
    const inf = layerDistances(start, end, 'inf');
    assert.deepEqual(
      inf.map((r) => r.distance),
      [2, 0.5, 2],
    );
  });

  it('matches tensors by (layer, name), not by position', () => {
    const shuffled = [end[2], end[1], end[0]];
    assert.deepEqual(layerDistances(start, shuffled, 1), layerDistances(start, end, 1));
  });

  it('orders layers by first appearance in the first snapshot', () => {
    const rows = layerDistances([start[2], start[0], start[1]], end, 1);
    assert.deepEqual(
      rows.map((r) => [r.layer, r.depth]),
      [
        ['dense', 0],
        ['conv', 1],
        [MODEL_LAYER, -1],
      ],
    );
  });

  it('is zero from a snapshot to itself and symmetric', () => {
    for (const p of [1, 2, 3, 'inf'] as MinkowskiP[]) {
      assert.ok(layerDistances(start, start, p).every((r) => r.distance === 0));
      assert.deepEqual(layerDistances(end, start, p), layerDistances(start, end, p));
    }
  });

  it('gives NaN for the layer and the model when a weight is NaN, and leaves other layers alone', () => {
    const broken = [end[0], end[1], tensor('dense', 'kernel', [Number.NaN, 0], [2, 1])];
    for (const p of [1, 2, 'inf'] as MinkowskiP[]) {
      const rows = layerDistances(start, broken, p);
      assert.ok(Number.isFinite(rows[0].distance), `conv stays finite for p = ${p}`);
      assert.ok(Number.isNaN(rows[1].distance), `dense is NaN for p = ${p}`);
      assert.ok(Number.isNaN(rows[2].distance), `model is NaN for p = ${p}`);
    }
  });

  it('names a tensor missing from either side', () => {
    assert.throws(() => layerDistances(start, end.slice(0, 2), 1), /tensor "kernel" of layer "dense" is in the first snapshot but missing from the second/);
    assert.throws(() => layerDistances(start.slice(1), end, 1), /tensor "kernel" of layer "conv" is in the second snapshot but missing from the first/);
  });

  it('names a reshaped tensor with both shapes', () => {
    const reshaped = [end[0], end[1], tensor('dense', 'kernel', [0.5, -0.5], [1, 2])];
    assert.throws(() => layerDistances(start, reshaped, 1), /tensor "kernel" of layer "dense" has shape \[2, 1\] in the first snapshot and \[1, 2\] in the second/);
  });

  it('rejects a tensor whose values do not match on both sides even when shapes agree', () => {
    const short = [end[0], end[1], { ...end[2], values: f32([1]) }];
    assert.throws(() => layerDistances(start, short, 1), /tensor "kernel" of layer "dense": expected arrays of equal length; found 2 and 1/);
  });

  it('rejects a (layer, name) listed twice', () => {
    assert.throws(() => layerDistances([...start, start[0]], end, 1), /first snapshot lists tensor "kernel" of layer "conv" twice/);
    assert.throws(() => layerDistances(start, [...end, end[1]], 1), /second snapshot lists tensor "bias" of layer "conv" twice/);
  });

  it('gives only the whole-model row, at zero, for a model without parameters', () => {
    assert.deepEqual(layerDistances([], [], 1), [{ layer: MODEL_LAYER, depth: -1, params: 0, distance: 0 }]);
  });
});
