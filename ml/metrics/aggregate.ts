/**
 * Averaging a per-layer quantity across runs whose models have different depths (S0's gathered figure:
 * every ResNet and plain network on every dataset in one curve).
 *
 * Each run's layers are placed at normalised depth depth / (L - 1) in [0, 1] (first layer 0, last
 * layer 1; a one-layer model sits at 0). Each run's curve is then read on a common grid by linear
 * interpolation between its two neighbouring layers (piecewise linear in normalised depth, exactly
 * numpy.interp), and the runs are averaged point by point. A run contributes only inside the span of
 * depths it has, never by extrapolation, so a run missing its first or last layer leaves those grid
 * points to the others; `runs` counts who contributed.
 *
 * NaN propagates: a run whose value at a layer is NaN makes the grid points next to that layer NaN in
 * mean, std, min and max, so a diverged run cannot quietly drop out of an average.
 *
 * Called by the report's aggregation step on rows read from the distance tables.
 */

/** One run's value at one layer. */
export interface DepthRow {
  /** Identifies the run (model x dataset x seed); rows of one run share it. */
  run: string;
  /** 0-based layer depth, an integer in [0, layers - 1]. */
  depth: number;
  /** Number of layers of the run's model, the same on every row of the run. */
  layers: number;
  value: number;
}

/** The across-run average at one point of the normalised-depth grid. */
export interface DepthProfilePoint {
  /** Normalised depth in [0, 1]. */
  position: number;
  /** Mean over the runs that cover this position; NaN when none do. */
  mean: number;
  /** Sample standard deviation (n - 1); NaN with fewer than 2 runs. */
  std: number;
  min: number;
  max: number;
  /** Number of runs that contributed. */
  runs: number;
}

/** depth / (layers - 1): 0 for the first layer, 1 for the last; 0 for a one-layer model. */
export function normalisedDepth(depth: number, layers: number): number {
  if (!Number.isInteger(layers) || layers < 1) throw new RangeError(`normalisedDepth: expected layers to be a positive integer; found ${layers}`);
  if (!Number.isInteger(depth) || depth < 0 || depth >= layers) {
    throw new RangeError(`normalisedDepth: expected depth to be an integer in [0, ${layers - 1}]; found ${depth}`);
  }
  return layers === 1 ? 0 : depth / (layers - 1);
}

function gridOf(grid: number | readonly number[]): Float64Array {
  if (typeof grid === 'number') {
    if (!Number.isInteger(grid) || grid < 2) throw new RangeError(`averageOverDepth: expected at least 2 grid points; found ${grid}`);
    return Float64Array.from({ length: grid }, (_, i) => i / (grid - 1));
  }
  const g = Float64Array.from(grid);
  if (g.length < 1 || !g.every((x, i) => x >= 0 && x <= 1 && (i === 0 || x > g[i - 1]))) {
    throw new RangeError(`averageOverDepth: expected grid positions strictly ascending within [0, 1]; found [${grid.join(', ')}]`);
  }
  return g;
}

/**
 * Linear interpolation of the curve (xs, ys), xs strictly ascending, at each grid point inside
 * [xs[0], xs[last]]. Points outside are marked uncovered (the run does not reach them).
 */
function interpolate(xs: Float64Array, ys: Float64Array, grid: Float64Array): { values: Float64Array; covered: Uint8Array } {
  const values = new Float64Array(grid.length);
  const covered = new Uint8Array(grid.length);
  const last = xs.length - 1;
  let j = 0;
  for (let g = 0; g < grid.length; g++) {
    const t = grid[g];
    if (t < xs[0] || t > xs[last]) continue;
    covered[g] = 1;
    while (j < last && xs[j + 1] <= t) j++;
    if (t === xs[j]) values[g] = ys[j];
    else {
      // numpy.interp's form: slope * (t - x_j) + y_j.
      const slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j]);
      values[g] = slope * (t - xs[j]) + ys[j];
    }
  }
  return { values, covered };
}

/**
 * Averages a per-layer value across runs on a normalised-depth grid: `grid` is a number of equally
 * spaced points over [0, 1] (default 11: 0, 0.1, ..., 1) or the positions themselves.
 */
export function averageOverDepth(rows: readonly DepthRow[], grid: number | readonly number[] = 11): DepthProfilePoint[] {
  const positions = gridOf(grid);
  const runs = new Map<string, { layers: number; byDepth: Map<number, number> }>();
  rows.forEach((r, i) => {
    if (typeof r.run !== 'string') throw new TypeError(`averageOverDepth row ${i}: expected run to be a string; found ${JSON.stringify(r.run)}`);
    if (typeof r.value !== 'number') throw new TypeError(`averageOverDepth row ${i}: expected value to be a number; found ${JSON.stringify(r.value)}`);
    normalisedDepth(r.depth, r.layers);
    let run = runs.get(r.run);
    if (run === undefined) {
      run = { layers: r.layers, byDepth: new Map() };
      runs.set(r.run, run);
    }
    if (run.layers !== r.layers) {
      throw new RangeError(`averageOverDepth row ${i}: expected run "${r.run}" to have ${run.layers} layers as on its earlier rows; found ${r.layers}`);
    }
    if (run.byDepth.has(r.depth)) throw new RangeError(`averageOverDepth row ${i}: run "${r.run}" has depth ${r.depth} twice`);
    run.byDepth.set(r.depth, r.value);
  });

  const curves = [...runs.values()].map((run) => {
    const depths = [...run.byDepth.keys()].sort((a, b) => a - b);
    const xs = Float64Array.from(depths, (d) => normalisedDepth(d, run.layers));
    const ys = Float64Array.from(depths, (d) => run.byDepth.get(d)!);
    return interpolate(xs, ys, positions);
  });

  return Array.from(positions, (position, g) => {
    let count = 0;
    let sum = 0;
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const curve of curves) {
      if (curve.covered[g] === 0) continue;
      const v = curve.values[g];
      count++;
      sum += v;
      // Math.min and Math.max return NaN when either argument is NaN.
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    if (count === 0) return { position, mean: Number.NaN, std: Number.NaN, min: Number.NaN, max: Number.NaN, runs: 0 };
    const mean = sum / count;
    let squares = 0;
    for (const curve of curves) {
      if (curve.covered[g] === 1) squares += (curve.values[g] - mean) ** 2;
    }
    return { position, mean, std: count > 1 ? Math.sqrt(squares / (count - 1)) : Number.NaN, min, max, runs: count };
  });
}
