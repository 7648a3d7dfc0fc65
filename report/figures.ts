/**
 * Vega-Lite specs of paramtrail's figures, built from plain rows.
 *
 * Called by the `plot` activity (one distance figure per run) and by the report (accuracy of all runs
 * together). Specs are pure data: `report/render.ts` turns them into SVG and PNG, and the same spec
 * opens unchanged in the Vega editor when a figure needs a closer look.
 */
import type { DistanceRow } from '../artifacts/table.js';
import { MODEL_LAYER } from '../ml/metrics/minkowski.js';
import type { VegaLiteSpec } from './render.js';

/** Panel titles of the distance figure, by the `against` of the rows they show, in panel order. */
export const DISTANCE_PANELS = {
  init: 'distance to initial weights',
  previous: 'distance to previous snapshot',
} as const;

/** Above this many epochs, colour becomes a gradient with a continuous legend instead of one swatch each. */
const MAX_DISCRETE_EPOCHS = 12;
/** Horizontal space per layer on the x axis, in pixels, and the smallest panel width. */
const LAYER_STEP = 18;
const MIN_PANEL_WIDTH = 240;

export interface DistanceFigureOptions {
  /** Run name, shown in the figure title. */
  title: string;
  /** Which p to draw ('1', '2', 'inf'); may be omitted when the rows hold a single p. */
  p?: string;
  /** Log-scale y axis; zero distances cannot be drawn on it and are left out. */
  logScale?: boolean;
}

function distanceInputError(expected: string, found: string): Error {
  return new Error(`distance figure: expected ${expected}; found ${found}`);
}

function distinct<T>(values: Iterable<T>): T[] {
  return [...new Set(values)];
}

/**
 * The per-run "Differences" figure of study S0: two panels side by side, the distance of each
 * snapshot to the initial weights and to the previous snapshot, one line per epoch across the layers
 * (in depth order, labelled by name), coloured from early (dark) to late (light) epochs.
 */
export function distanceFigureSpec(rows: DistanceRow[], opts: DistanceFigureOptions): VegaLiteSpec {
  if (rows.length === 0) throw distanceInputError('at least one distance row', 'none');
  rows.forEach((row, i) => {
    if (!Object.hasOwn(DISTANCE_PANELS, row.against)) {
      throw distanceInputError(
        `against to be one of ${Object.keys(DISTANCE_PANELS).join(', ')} in row ${i}`,
        JSON.stringify(row.against),
      );
    }
  });
  const runs = distinct(rows.map((r) => r.runId));
  if (runs.length > 1) throw distanceInputError('rows of a single run', `runs ${runs.join(', ')}`);

  const ps = distinct(rows.map((r) => r.p));
  let p = opts.p;
  if (p === undefined) {
    if (ps.length > 1) throw distanceInputError('opts.p when the rows hold several p', `p = ${ps.join(', ')}`);
    p = ps[0];
  } else if (!ps.includes(p)) {
    throw distanceInputError(`rows with p = ${p}`, `p = ${ps.join(', ')}`);
  }

  const layerRows = rows.filter((r) => r.p === p && r.layer !== MODEL_LAYER);
  if (layerRows.length === 0) throw distanceInputError('per-layer rows', 'only whole-model rows');

  // Depth orders the x axis; the name is only the label. A layer listed at two depths is a bug upstream.
  const depthOf = new Map<string, number>();
  for (const r of layerRows) {
    const known = depthOf.get(r.layer);
    if (known !== undefined && known !== r.depth) {
      throw distanceInputError(`one depth per layer`, `layer "${r.layer}" at depths ${known} and ${r.depth}`);
    }
    depthOf.set(r.layer, r.depth);
  }
  const layers = [...depthOf.entries()].sort((a, b) => a[1] - b[1]).map(([name]) => name);
  const epochs = distinct(layerRows.map((r) => r.epoch)).sort((a, b) => a - b);
  const discrete = epochs.length <= MAX_DISCRETE_EPOCHS;

  const pLabel = p === 'inf' ? '∞' : p;
  const values = layerRows.map((r) => ({
    against: r.against,
    epoch: r.epoch,
    referenceEpoch: r.referenceEpoch,
    layer: r.layer,
    depth: r.depth,
    params: r.params,
    distance: r.distance,
  }));

  const panel = (against: keyof typeof DISTANCE_PANELS) => ({
    title: DISTANCE_PANELS[against],
    width: Math.max(MIN_PANEL_WIDTH, LAYER_STEP * layers.length),
    height: 220,
    transform: [
      { filter: { field: 'against', equal: against } },
      // A log axis cannot place zero (or NaN from a diverged run); leave those points out.
      ...(opts.logScale ? [{ filter: 'isFinite(datum.distance) && datum.distance > 0' }] : []),
    ],
    mark: { type: 'line' as const, point: { size: 16 }, strokeWidth: 1.5 },
    encoding: {
      x: {
        field: 'layer',
        type: 'ordinal' as const,
        sort: layers,
        scale: { domain: layers },
        title: 'layer (input → output)',
        // At -45 degrees, labels LAYER_STEP apart never touch, so none need hiding (Vega's overlap
        // check measures the unrotated boxes and would drop every other name).
        axis: { labelAngle: -45, labelOverlap: false, labelLimit: 140 },
      },
      y: {
        field: 'distance',
        type: 'quantitative' as const,
        title: `Minkowski distance (p = ${pLabel})`,
        scale: opts.logScale ? { type: 'log' as const } : { zero: true },
      },
      color: {
        field: 'epoch',
        type: discrete ? ('ordinal' as const) : ('quantitative' as const),
        title: 'epoch',
        // Viridis without its palest end, so the last epoch stays visible on white.
        scale: { scheme: { name: 'viridis', extent: [0, 0.85] }, ...(discrete ? { domain: epochs } : {}) },
      },
      // One line per epoch even when colour is continuous.
      detail: { field: 'epoch', type: 'ordinal' as const },
      tooltip: [
        { field: 'layer', type: 'nominal' as const },
        { field: 'epoch', type: 'ordinal' as const },
        { field: 'referenceEpoch', type: 'ordinal' as const, title: 'reference epoch' },
        { field: 'params', type: 'quantitative' as const },
        { field: 'distance', type: 'quantitative' as const, format: '.4g' },
      ],
    },
  });

  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `${opts.title}: per-layer weight distance (p = ${pLabel})`, anchor: 'start', fontSize: 15, offset: 14 },
    data: { values },
    hconcat: [panel('init'), panel('previous')],
    config: { view: { stroke: null }, axis: { grid: true, gridOpacity: 0.5 } },
  } as VegaLiteSpec;
}

/** One point of a run's training history. Accuracies are fractions in [0, 1]. */
export interface AccuracyPoint {
  run: string;
  epoch: number;
  valAccuracy: number;
  trainAccuracy: number;
}

/** Validation accuracy per epoch, one line per run: every model of a study in one figure. */
export function accuracyFigureSpec(history: AccuracyPoint[], opts: { title: string }): VegaLiteSpec {
  if (history.length === 0) throw new Error('accuracy figure: expected at least one history point; found none');
  history.forEach((h, i) => {
    for (const key of ['valAccuracy', 'trainAccuracy'] as const) {
      const v = h[key];
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
        throw new Error(`accuracy figure: expected ${key} in [0, 1] in point ${i} (run "${h.run}"); found ${v}`);
      }
    }
  });
  const runs = distinct(history.map((h) => h.run)).sort();
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: opts.title, anchor: 'start', fontSize: 14 },
    data: { values: history.map((h) => ({ ...h })) },
    width: 420,
    height: 260,
    mark: { type: 'line', point: { size: 20 }, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'valAccuracy', type: 'quantitative', title: 'validation accuracy', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
      color: { field: 'run', type: 'nominal', title: 'run', scale: { domain: runs, scheme: 'tableau10' } },
      tooltip: [
        { field: 'run', type: 'nominal' },
        { field: 'epoch', type: 'quantitative' },
        { field: 'valAccuracy', type: 'quantitative', title: 'validation accuracy', format: '.2%' },
        { field: 'trainAccuracy', type: 'quantitative', title: 'training accuracy', format: '.2%' },
      ],
    },
    config: { view: { stroke: null }, axis: { grid: true, gridOpacity: 0.5 } },
  } as VegaLiteSpec;
}
