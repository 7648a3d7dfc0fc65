/**
 * Averaging per-layer values across runs of different depths (ml/metrics/aggregate.ts), on
 * hand-computed values.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { averageOverDepth, normalisedDepth, type DepthRow } from '../../ml/metrics/index.js';

function close(actual: number, expected: number, tolerance = 1e-12) {
  assert.ok(Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)), `expected ${expected}, found ${actual}`);
}

function run(name: string, values: number[]): DepthRow[] {
  return values.map((value, depth) => ({ run: name, depth, layers: values.length, value }));
}

describe('normalisedDepth', () => {
  it('maps the first layer to 0 and the last to 1', () => {
    assert.equal(normalisedDepth(0, 5), 0);
    assert.equal(normalisedDepth(1, 5), 0.25);
    assert.equal(normalisedDepth(4, 5), 1);
    assert.equal(normalisedDepth(0, 1), 0);
  });
  it('rejects a depth outside the model', () => {
    assert.throws(() => normalisedDepth(5, 5), /integer in \[0, 4\]; found 5/);
    assert.throws(() => normalisedDepth(0.5, 5), /found 0.5/);
    assert.throws(() => normalisedDepth(0, 0), /positive integer; found 0/);
  });
});

describe('averageOverDepth', () => {
  // A: 3 layers at 0, .5, 1 with values 0, 10, 20 (so 5 at .25 and 15 at .75); B: 5 layers, all 4.
  const rows = [...run('A', [0, 10, 20]), ...run('B', [4, 4, 4, 4, 4])];

  it('interpolates each run linearly and averages on the grid', () => {
    const profile = averageOverDepth(rows, 5);
    assert.deepEqual(
      profile.map((p) => p.position),
      [0, 0.25, 0.5, 0.75, 1],
    );
    [2, 4.5, 7, 9.5, 12].forEach((m, i) => close(profile[i].mean, m));
    // Two runs at 0: values 0 and 4, sample std sqrt(((0 - 2)^2 + (4 - 2)^2) / 1) = sqrt(8).
    close(profile[0].std, Math.sqrt(8));
    assert.deepEqual(
      profile.map((p) => [p.min, p.max, p.runs]),
      [
        [0, 4, 2],
        [4, 5, 2],
        [4, 10, 2],
        [4, 15, 2],
        [4, 20, 2],
      ],
    );
  });

  it('takes explicit grid positions and defaults to 11 points', () => {
    const profile = averageOverDepth(run('A', [0, 10, 20]), [0.1, 0.6]);
    close(profile[0].mean, 2);
    close(profile[1].mean, 12);
    assert.equal(averageOverDepth(rows).length, 11);
  });

  it('does not extrapolate: a run missing its end layers leaves those points to the others', () => {
    // C has 5 layers but rows only for depths 1..3 (positions .25 to .75).
    const partial: DepthRow[] = [1, 2, 3].map((depth) => ({ run: 'C', depth, layers: 5, value: 100 }));
    const profile = averageOverDepth([...run('A', [0, 10, 20]), ...partial], 5);
    assert.deepEqual(
      profile.map((p) => p.runs),
      [1, 2, 2, 2, 1],
    );
    close(profile[0].mean, 0);
    close(profile[1].mean, 52.5);
    assert.ok(Number.isNaN(profile[0].std), 'one run has no sample standard deviation');
    const nobody = averageOverDepth(partial, [0]);
    assert.equal(nobody[0].runs, 0);
    assert.ok(Number.isNaN(nobody[0].mean));
  });

  it('propagates a NaN value to the grid points next to it', () => {
    const profile = averageOverDepth([...run('A', [0, Number.NaN, 20]), ...run('B', [4, 4, 4, 4, 4])], 5);
    assert.ok(Number.isNaN(profile[1].mean) && Number.isNaN(profile[2].max) && Number.isNaN(profile[3].min));
    close(profile[0].mean, 2);
    close(profile[4].mean, 12);
  });

  it('rejects inconsistent rows and bad grids', () => {
    assert.throws(() => averageOverDepth([...run('A', [1, 2]), { run: 'A', depth: 2, layers: 3, value: 0 }]), /run "A" to have 2 layers as on its earlier rows; found 3/);
    assert.throws(() => averageOverDepth([...run('A', [1, 2]), { run: 'A', depth: 1, layers: 2, value: 0 }]), /run "A" has depth 1 twice/);
    assert.throws(() => averageOverDepth([{ run: 'A', depth: 3, layers: 2, value: 0 }]), /integer in \[0, 1\]; found 3/);
    assert.throws(() => averageOverDepth(rows, 1), /at least 2 grid points; found 1/);
    assert.throws(() => averageOverDepth(rows, [0.5, 0.2]), /strictly ascending within \[0, 1\]; found \[0.5, 0.2\]/);
    assert.throws(() => averageOverDepth(rows, [0, 1.5]), /found \[0, 1.5\]/);
  });
});
