/**
 * Vega-Lite specs of paramtrail's figures, built from plain rows.
 *
 * Called by the `plot` activity (per run: the distance figure, share changed, relative change, and the
 * figures of the run's analyses) and by the `report` activity (across runs: validation accuracy, the
 * gathered depth profile, CKA heatmaps, perturbation norms, smoothness). Specs are pure data:
 * `report/render.ts` turns them into SVG and PNG, and the same spec opens unchanged in the Vega editor
 * when a figure needs a closer look.
 *
 * Every figure orders layers by depth (the 0-based order among layers with parameters), never by name,
 * and leaves out whole-model rows (depth -1). Builders check their rows and throw with what they
 * expected and what they found, so a bad table fails where it is read rather than as an odd picture.
 */
import type { CkaRow, CorrelationRow, DepthProfileRow } from '../artifacts/analysis-tables.js';
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
  const layers = layersByDepth(layerRows, 'distance figure');
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
  /** Null for a run with no validation split. */
  valAccuracy: number | null;
  trainAccuracy: number;
  /** The run's group (the model's `group`, else its label): how a sweep's many runs are coloured. */
  group?: string;
}

/** Up to this many runs, the accuracy figure gives each run a colour and a legend entry (tableau10 has ten). */
export const MAX_LEGEND_RUNS = 10;
/** A legend of runs names them whole: Vega's default cuts a label at 160 px, inside most run names. */
const RUN_LEGEND = { labelLimit: 400 };

/** Which accuracy the figure draws: validation, or training when no run holds out a validation split. */
export type AccuracyMetric = 'valAccuracy' | 'trainAccuracy';

const METRIC_TITLE: Record<AccuracyMetric, string> = { valAccuracy: 'validation accuracy', trainAccuracy: 'training accuracy' };

/**
 * Validation accuracy per epoch (or training accuracy, with `metric: 'trainAccuracy'`), one line per
 * run: every model of a study in one figure. With more than MAX_LEGEND_RUNS runs (a sweep), colours would
 * repeat and a legend could not name them all: each run is a thin line, coloured by its group when there
 * are several, under the bold mean of each group; a run's tooltip still names it.
 */
export function accuracyFigureSpec(history: AccuracyPoint[], opts: { title: string; metric?: AccuracyMetric }): VegaLiteSpec {
  if (history.length === 0) throw new Error('accuracy figure: expected at least one history point; found none');
  const metric = opts.metric ?? 'valAccuracy';
  history.forEach((h, i) => {
    for (const key of ['valAccuracy', 'trainAccuracy'] as const) {
      const v = h[key];
      if (v === null && key !== metric) continue;
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
        throw new Error(`accuracy figure: expected ${key} in [0, 1] in point ${i} (run "${h.run}"); found ${v}`);
      }
    }
  });
  const runs = distinct(history.map((h) => h.run)).sort();
  if (runs.length > MAX_LEGEND_RUNS) return sweepAccuracySpec(history, runs.length, { title: opts.title, metric });
  const other: AccuracyMetric = metric === 'valAccuracy' ? 'trainAccuracy' : 'valAccuracy';
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: opts.title, anchor: 'start', fontSize: 14 },
    data: { values: history.map((h) => ({ ...h })) },
    width: 420,
    height: 260,
    mark: { type: 'line', point: { size: 20 }, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: metric, type: 'quantitative', title: METRIC_TITLE[metric], scale: { domain: [0, 1] }, axis: { format: '.0%' } },
      color: { field: 'run', type: 'nominal', title: 'run', scale: { domain: runs, scheme: 'tableau10' }, legend: RUN_LEGEND },
      tooltip: [
        { field: 'run', type: 'nominal' },
        { field: 'epoch', type: 'quantitative' },
        { field: metric, type: 'quantitative', title: METRIC_TITLE[metric], format: '.2%' },
        ...(history.some((h) => h[other] !== null) ? [{ field: other, type: 'quantitative', title: METRIC_TITLE[other], format: '.2%' }] : []),
      ],
    },
    config: { view: { stroke: null }, axis: { grid: true, gridOpacity: 0.5 } },
  } as VegaLiteSpec;
}

// ---------------------------------------------------------------------------------------------------
// Figures of the analyses beyond distances.

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const CONFIG = { view: { stroke: null }, axis: { grid: true, gridOpacity: 0.5 } };
/** Viridis without its palest end, so the last series stays visible on white (as in the distance figure). */
const VIRIDIS = { name: 'viridis', extent: [0, 0.85] };
const LAYER_AXIS = { labelAngle: -45, labelOverlap: false, labelLimit: 140 };

/** A categorical palette with a colour of its own for each of `count` series, as far as 20 go. */
function categorical(count: number): string {
  return count > 10 ? 'tableau20' : 'tableau10';
}

/** The accuracy figure of many runs (see accuracyFigureSpec). */
function sweepAccuracySpec(history: AccuracyPoint[], runCount: number, opts: { title: string; metric: AccuracyMetric }): VegaLiteSpec {
  const { metric } = opts;
  const ALL = 'all runs';
  const groups = distinct(history.map((h) => h.group ?? ALL)).sort();
  const byGroup = groups.length > 1;
  // The legend's swatches at full strength, not at the faint runs' opacity.
  const colour = byGroup
    ? { field: 'group', type: 'nominal', title: 'group', scale: { domain: groups, scheme: categorical(groups.length) }, legend: { ...RUN_LEGEND, symbolOpacity: 1 } }
    : { value: '#374151' };
  // A run of one epoch is a point, not a line.
  const single = distinct(history.map((h) => String(h.epoch))).length === 1;
  // Fainter as there are more, so where runs crowd shows.
  const opacity = Math.min(0.5, Math.max(0.05, 10 / runCount));
  const y = { type: 'quantitative', title: METRIC_TITLE[metric], scale: { domain: [0, 1] }, axis: { format: '.0%' } };
  return {
    $schema: SCHEMA,
    title: { text: opts.title, subtitle: `${runCount} runs: a faint ${single ? 'point' : 'line'} each; bold, the mean${byGroup ? ' of each group' : ''}`, anchor: 'start', fontSize: 14 },
    data: { values: history.map(({ run, epoch, valAccuracy, trainAccuracy, group }) => ({ run, epoch, valAccuracy, trainAccuracy, group: group ?? ALL })) },
    width: 420,
    height: 260,
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
      color: colour,
    },
    layer: [
      {
        mark: { type: 'line', strokeWidth: 1, opacity, ...(single ? { point: { size: 12, opacity } } : {}) },
        encoding: {
          y: { ...y, field: metric },
          detail: { field: 'run', type: 'nominal' },
          tooltip: [
            { field: 'run', type: 'nominal' },
            { field: 'epoch', type: 'quantitative' },
            { field: metric, type: 'quantitative', title: METRIC_TITLE[metric], format: '.2%' },
          ],
        },
      },
      {
        mark: { type: 'line', strokeWidth: 2.5, point: { size: 30 } },
        encoding: {
          y: { ...y, aggregate: 'mean', field: metric },
          tooltip: [
            { field: 'group', type: 'nominal' },
            { field: 'epoch', type: 'quantitative' },
            { aggregate: 'mean', field: metric, type: 'quantitative', title: `mean ${METRIC_TITLE[metric]}`, format: '.2%' },
            { aggregate: 'count', type: 'quantitative', title: 'runs' },
          ],
        },
      },
    ],
    config: CONFIG,
  } as VegaLiteSpec;
}

function figureError(figure: string, expected: string, found: string): Error {
  return new Error(`${figure}: expected ${expected}; found ${found}`);
}

/**
 * What the figure shows as the title, then the run (or experiment) and a detail as subtitle lines: a
 * short title keeps Vega's figure narrow enough for two to sit side by side in the report, while the
 * PNG alone still says whose figure it is.
 */
function titleOf(name: string, kind: string, detail?: string) {
  return { text: kind, anchor: 'start' as const, fontSize: 14, subtitle: detail ? [name, detail] : name, subtitleColor: '#555', subtitleFontSize: 11 };
}

/** Formats a number for a title: 4 significant digits, or `NaN` / `∞` as they are. */
function short(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '-∞';
  return Number(x.toPrecision(4)).toString();
}

/**
 * Layer names in depth order, checking that each layer has one depth. Rows of the whole model
 * (depth < 0) must be filtered out before.
 */
function layersByDepth(rows: Iterable<{ layer: string; depth: number }>, figure: string): string[] {
  const depthOf = new Map<string, number>();
  for (const r of rows) {
    const known = depthOf.get(r.layer);
    if (known !== undefined && known !== r.depth) {
      throw figureError(figure, 'one depth per layer', `layer "${r.layer}" at depths ${known} and ${r.depth}`);
    }
    depthOf.set(r.layer, r.depth);
  }
  return [...depthOf.entries()].sort((a, b) => a[1] - b[1]).map(([name]) => name);
}

function layerWidth(layers: number): number {
  return Math.max(MIN_PANEL_WIDTH, LAYER_STEP * layers);
}

/** Histogram of the feature-feature Pearson r of one layer (CORRELATION_TABLE rows), S4. */
export function correlationFigureSpec(rows: CorrelationRow[], opts: { title: string; meanAbs?: number; mean?: number }): VegaLiteSpec {
  const figure = 'correlation figure';
  if (rows.length === 0) throw figureError(figure, 'at least one histogram bin', 'none');
  const layers = distinct(rows.map((r) => r.layer));
  if (layers.length > 1) throw figureError(figure, 'bins of a single layer', `layers ${layers.join(', ')}`);
  rows.forEach((r, i) => {
    if (!(r.binEnd > r.binStart)) throw figureError(figure, `binEnd > binStart in bin ${i}`, `[${r.binStart}, ${r.binEnd}]`);
  });
  const lo = Math.min(-1, ...rows.map((r) => r.binStart));
  const hi = Math.max(1, ...rows.map((r) => r.binEnd));
  return {
    $schema: SCHEMA,
    title: titleOf(
      opts.title,
      `feature correlation at ${layers[0]}`,
      opts.meanAbs === undefined
        ? undefined
        : `mean |r| off the diagonal = ${short(opts.meanAbs)}${typeof opts.mean === 'number' && Number.isFinite(opts.mean) ? `, mean r = ${short(opts.mean)}` : ''}`,
    ),
    data: { values: rows.map(({ binStart, binEnd, count }) => ({ binStart, binEnd, count })) },
    width: 420,
    height: 220,
    mark: { type: 'bar', color: '#4c78a8', stroke: 'white', strokeWidth: 0.5 },
    encoding: {
      x: { field: 'binStart', type: 'quantitative', bin: 'binned', title: 'Pearson r between two features', scale: { domain: [lo, hi] } },
      x2: { field: 'binEnd' },
      y: { field: 'count', type: 'quantitative', title: 'feature pairs' },
      tooltip: [
        { field: 'binStart', type: 'quantitative', title: 'from', format: '.3f' },
        { field: 'binEnd', type: 'quantitative', title: 'to', format: '.3f' },
        { field: 'count', type: 'quantitative', title: 'pairs' },
      ],
    },
    config: CONFIG,
  } as VegaLiteSpec;
}

/** Above this many layers on either side, the CKA heatmap leaves the numbers out of its cells. */
const MAX_LABELLED_CKA_LAYERS = 12;
const CKA_CELL = 22;

/**
 * Linear CKA between every layer of run A (x, input to output) and every layer of run B (y, input at
 * the bottom), colour fixed to [0, 1] so heatmaps of different pairs read alike. Undefined values (NaN)
 * are left as empty cells.
 */
export function ckaFigureSpec(rows: CkaRow[], opts: { title: string; a: string; b: string }): VegaLiteSpec {
  const figure = 'CKA figure';
  if (rows.length === 0) throw figureError(figure, 'at least one (layer of A, layer of B) value', 'none');
  const layersA = layersByDepth(rows.map((r) => ({ layer: r.layerA, depth: r.depthA })), `${figure} (layers of ${opts.a})`);
  const layersB = layersByDepth(rows.map((r) => ({ layer: r.layerB, depth: r.depthB })), `${figure} (layers of ${opts.b})`);
  const labelled = layersA.length <= MAX_LABELLED_CKA_LAYERS && layersB.length <= MAX_LABELLED_CKA_LAYERS;
  const width = Math.max(200, CKA_CELL * layersA.length);
  const height = Math.max(200, CKA_CELL * layersB.length);
  // Axis titles hold run names, which can be long: cut them at the plot's size rather than let them stretch the figure.
  const x = { field: 'layerA', type: 'ordinal' as const, sort: layersA, scale: { domain: layersA }, title: `layer of ${opts.a} (input → output)`, axis: { ...LAYER_AXIS, titleLimit: Math.max(width, 360) } };
  // Deepest layer at the top, so matching depths run along the rising diagonal.
  const yDomain = [...layersB].reverse();
  const y = { field: 'layerB', type: 'ordinal' as const, sort: yDomain, scale: { domain: yDomain }, title: `layer of ${opts.b}`, axis: { titleLimit: Math.max(height, 300) } };
  return {
    $schema: SCHEMA,
    title: titleOf(opts.title, 'linear CKA', `${opts.a} against ${opts.b}`),
    data: { values: rows.map(({ layerA, depthA, layerB, depthB, cka }) => ({ layerA, depthA, layerB, depthB, cka })) },
    width,
    height,
    transform: [{ filter: 'isFinite(datum.cka)' }],
    encoding: { x, y },
    layer: [
      {
        mark: { type: 'rect' },
        encoding: {
          color: { field: 'cka', type: 'quantitative', title: 'CKA', scale: { domain: [0, 1], scheme: 'viridis' } },
          tooltip: [
            { field: 'layerA', type: 'nominal', title: opts.a },
            { field: 'layerB', type: 'nominal', title: opts.b },
            { field: 'cka', type: 'quantitative', title: 'CKA', format: '.3f' },
          ],
        },
      },
      ...(labelled
        ? [
            {
              mark: { type: 'text', fontSize: 9 },
              encoding: {
                text: { field: 'cka', type: 'quantitative', format: '.2f' },
                // Dark text on viridis' light (high) end, light text on its dark end.
                color: { condition: { test: 'datum.cka > 0.6', value: '#111' }, value: '#fff' },
              },
            },
          ]
        : []),
    ],
    config: { ...CONFIG, axis: { grid: false } },
  } as VegaLiteSpec;
}

/** A compared pair of runs, as the report's pair matrix draws it. */
export interface PairPoint {
  a: string;
  b: string;
  /** Mean linear CKA of the layers of the same name and depth; NaN when none is defined. */
  meanDiagonalCka: number;
  /** Mean |r| of the cross-correlation of the two penultimate feature sets. */
  penultimateMeanAbs: number;
}

/** Runs a pair matrix labels its cells for, at most; cells shrink from PAIR_CELL to 3 px with more runs. */
const MAX_LABELLED_PAIR_RUNS = 12;
const PAIR_CELL = 24;
const PAIR_MATRIX_SIDE = 560;

/**
 * Every compared pair at a glance: two run-by-run matrices, the mean CKA of same layers and the
 * penultimate features' mean |r|, each pair in both of its cells (the matrices are symmetric). Runs in
 * the order the pairs name them (the experiment's order of runs); a run never compared with another is
 * absent and pairs not compared are empty cells. What S4 reads its optimiser blocks from (Adam with
 * Adam, SGD with SGD), and what an experiment of more pairs than heatmaps shows of every pair.
 */
export function pairMatrixFigureSpec(pairs: PairPoint[], opts: { title: string }): VegaLiteSpec {
  const figure = 'pair matrix';
  if (pairs.length === 0) throw figureError(figure, 'at least one compared pair', 'none');
  const runs = distinct(pairs.flatMap((p) => [p.a, p.b]));
  const cell = Math.max(3, Math.min(PAIR_CELL, Math.floor(PAIR_MATRIX_SIDE / runs.length)));
  const side = cell * runs.length;
  const labelled = runs.length <= MAX_LABELLED_PAIR_RUNS;
  const values = pairs.flatMap((p) => {
    const v = { cka: p.meanDiagonalCka, r: p.penultimateMeanAbs };
    return p.a === p.b ? [{ a: p.a, b: p.b, ...v }] : [{ a: p.a, b: p.b, ...v }, { a: p.b, b: p.a, ...v }];
  });
  const axis = runs.length <= 60 ? { labelLimit: 160 } : { labels: false, ticks: false };
  const panel = (field: 'cka' | 'r', title: string, legend: string) => ({
    title,
    width: side,
    height: side,
    transform: [{ filter: `isFinite(datum.${field})` }],
    encoding: {
      x: { field: 'a', type: 'ordinal' as const, sort: runs, scale: { domain: runs }, title: null, axis: { ...LAYER_AXIS, ...axis } },
      y: { field: 'b', type: 'ordinal' as const, sort: runs, scale: { domain: runs }, title: null, axis },
    },
    layer: [
      {
        mark: { type: 'rect' },
        encoding: {
          color: { field, type: 'quantitative', title: legend, scale: { domain: [0, 1], scheme: 'viridis' } },
          tooltip: [
            { field: 'a', type: 'nominal', title: 'run' },
            { field: 'b', type: 'nominal', title: 'against' },
            { field, type: 'quantitative', title: legend, format: '.3f' },
          ],
        },
      },
      ...(labelled
        ? [
            {
              mark: { type: 'text', fontSize: 9 },
              encoding: {
                text: { field, type: 'quantitative', format: '.2f' },
                color: { condition: { test: `datum.${field} > 0.6`, value: '#111' }, value: '#fff' },
              },
            },
          ]
        : []),
    ],
  });
  return {
    $schema: SCHEMA,
    title: titleOf(opts.title, 'compared pairs', `${pairs.length} pairs of ${runs.length} runs`),
    data: { values },
    hconcat: [panel('cka', 'mean CKA, same layers', 'CKA'), panel('r', 'penultimate features, mean |r|', 'mean |r|')],
    resolve: { scale: { color: 'independent' } },
    config: { ...CONFIG, axis: { grid: false } },
  } as VegaLiteSpec;
}

/** One perturbation of one run: the whole-model norms after retraining (NormsResult.model). */
export interface PerturbationNormsPoint {
  run: string;
  /** The perturbation's label (config/grid.ts perturbationLabel). */
  label: string;
  /** |theta1|: the trained weights that were perturbed. */
  theta1: number;
  /** |theta2|: the perturbed copy after retraining. */
  theta2: number;
  /** |theta1 - theta2|. */
  distance: number;
}

/** Legend labels of the perturbation norms, in bar order. */
export const NORM_MEASURES = { theta1: '|θ₁|', theta2: '|θ₂|', distance: '|θ₁ − θ₂|' } as const;

/**
 * S4's perturb-and-retrain norms: per perturbation label, grouped bars of |theta1|, |theta2| and
 * |theta1 - theta2|; one panel per run when there are several. The y axis is logarithmic by default,
 * because a constant offset of 1e-6 lands orders of magnitude closer than a sign flip, and both must
 * be readable on one axis; non-positive and non-finite values cannot sit on it and are left out.
 */
export function perturbationNormsFigureSpec(points: PerturbationNormsPoint[], opts: { title: string; p?: string; logScale?: boolean }): VegaLiteSpec {
  const figure = 'perturbation norms figure';
  if (points.length === 0) throw figureError(figure, 'at least one perturbation', 'none');
  const logScale = opts.logScale ?? true;
  const runs = distinct(points.map((p) => p.run));
  const labels = distinct(points.map((p) => p.label));
  const measures = Object.values(NORM_MEASURES);
  const values = points.flatMap((p) =>
    (Object.keys(NORM_MEASURES) as Array<keyof typeof NORM_MEASURES>).map((k) => ({ run: p.run, label: p.label, measure: NORM_MEASURES[k], value: p[k] })),
  );
  const pLabel = opts.p === undefined ? '' : ` (p = ${opts.p === 'inf' ? '∞' : opts.p})`;
  const unit = {
    width: Math.max(200, 3 * 16 * labels.length + 40),
    height: 220,
    ...(logScale ? { transform: [{ filter: 'isFinite(datum.value) && datum.value > 0' }] } : {}),
    mark: { type: 'bar' as const },
    encoding: {
      x: { field: 'label', type: 'nominal' as const, sort: labels, scale: { domain: labels }, title: 'perturbation', axis: { labelAngle: -30 } },
      xOffset: { field: 'measure', type: 'nominal' as const, sort: measures, scale: { domain: measures } },
      // Bars side by side, never stacked: a stack starts at zero, which a log axis cannot place.
      y: { field: 'value', type: 'quantitative' as const, stack: null, title: `norm${pLabel}`, scale: logScale ? { type: 'log' as const } : { zero: true } },
      color: { field: 'measure', type: 'nominal' as const, title: null, scale: { domain: measures, range: ['#4c78a8', '#72b7b2', '#e45756'] } },
      tooltip: [
        { field: 'run', type: 'nominal' as const },
        { field: 'label', type: 'nominal' as const, title: 'perturbation' },
        { field: 'measure', type: 'nominal' as const },
        { field: 'value', type: 'quantitative' as const, format: '.4g' },
      ],
    },
  };
  const title = titleOf(opts.title, 'perturb and retrain', '|θ₁| trained, |θ₂| perturbed and retrained, |θ₁ − θ₂|');
  if (runs.length === 1) return { $schema: SCHEMA, title, data: { values }, ...unit, config: CONFIG } as VegaLiteSpec;
  return {
    $schema: SCHEMA,
    title,
    data: { values },
    facet: { column: { field: 'run', type: 'nominal', sort: runs, title: null, header: { labelFontSize: 12, labelLimit: 240 } } },
    spec: unit,
    resolve: { scale: { y: 'shared' } },
    config: CONFIG,
  } as VegaLiteSpec;
}

/** Per layer of one perturbation (NORMS_TABLE rows plus the label). */
export interface PerturbationLayerPoint {
  label: string;
  layer: string;
  depth: number;
  /** |theta1 - theta2| / |theta1| over the layer. */
  relative: number;
}

/**
 * Per layer, how far retraining landed from the original relative to the layer's norm, one line per
 * perturbation: where a perturbation's damage stays. Log y axis; whole-model rows are left out.
 */
export function perturbationLayersFigureSpec(points: PerturbationLayerPoint[], opts: { title: string }): VegaLiteSpec {
  const figure = 'perturbation layers figure';
  const layerPoints = points.filter((p) => p.depth >= 0);
  if (layerPoints.length === 0) throw figureError(figure, 'per-layer rows', points.length ? 'only whole-model rows' : 'none');
  const layers = layersByDepth(layerPoints, figure);
  const labels = distinct(layerPoints.map((p) => p.label));
  return {
    $schema: SCHEMA,
    title: titleOf(opts.title, 'per-layer distance after retraining', '|θ₁ − θ₂| / |θ₁| of each layer'),
    data: { values: layerPoints.map(({ label, layer, depth, relative }) => ({ label, layer, depth, relative })) },
    width: layerWidth(layers.length),
    height: 220,
    transform: [{ filter: 'isFinite(datum.relative) && datum.relative > 0' }],
    mark: { type: 'line', point: { size: 20 }, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'layer', type: 'ordinal', sort: layers, scale: { domain: layers }, title: 'layer (input → output)', axis: LAYER_AXIS },
      y: { field: 'relative', type: 'quantitative', title: 'relative distance', scale: { type: 'log' } },
      color: { field: 'label', type: 'nominal', title: 'perturbation', scale: { domain: labels, scheme: 'tableau10' } },
      tooltip: [
        { field: 'label', type: 'nominal', title: 'perturbation' },
        { field: 'layer', type: 'nominal' },
        { field: 'relative', type: 'quantitative', format: '.4g' },
      ],
    },
    config: CONFIG,
  } as VegaLiteSpec;
}

/** What `reinitFigureSpec` draws: ReinitResult's numbers. Accuracies are fractions in [0, 1]. */
export interface ReinitFigureInput {
  baseline: { accuracy: number };
  layers: Array<{ layer: string; depth: number; accuracy: number }>;
}

/**
 * Re-initialisation robustness (Zhang, Bengio and Singer): test accuracy with one layer at a time reset
 * to its initial weights, against layer depth, with the trained model's accuracy as a dashed rule.
 */
export function reinitFigureSpec(input: ReinitFigureInput, opts: { title: string }): VegaLiteSpec {
  const figure = 're-initialisation figure';
  if (input.layers.length === 0) throw figureError(figure, 'at least one reset layer', 'none');
  const inUnit = (x: number) => Number.isNaN(x) || (x >= 0 && x <= 1);
  input.layers.forEach((l, i) => {
    if (!inUnit(l.accuracy)) throw figureError(figure, `accuracy in [0, 1] for layer ${i} ("${l.layer}")`, String(l.accuracy));
  });
  if (!(input.baseline.accuracy >= 0 && input.baseline.accuracy <= 1)) throw figureError(figure, 'a baseline accuracy in [0, 1]', String(input.baseline.accuracy));
  const layers = layersByDepth(input.layers, figure);
  const x = { field: 'layer', type: 'ordinal' as const, sort: layers, scale: { domain: layers }, title: 'layer reset to its initial weights (input → output)', axis: LAYER_AXIS };
  const y = { type: 'quantitative' as const, title: 'test accuracy', scale: { domain: [0, 1] }, axis: { format: '.0%' } };
  return {
    $schema: SCHEMA,
    title: titleOf(opts.title, 're-initialisation robustness', `trained model: ${(100 * input.baseline.accuracy).toFixed(2)}% test accuracy (dashed)`),
    width: layerWidth(layers.length),
    height: 220,
    layer: [
      {
        data: { values: input.layers.map(({ layer, depth, accuracy }) => ({ layer, depth, accuracy })) },
        transform: [{ filter: 'isFinite(datum.accuracy)' }],
        mark: { type: 'line', point: { size: 24 }, strokeWidth: 1.5, color: '#4c78a8' },
        encoding: {
          x,
          y: { field: 'accuracy', ...y },
          tooltip: [
            { field: 'layer', type: 'nominal' },
            { field: 'accuracy', type: 'quantitative', format: '.2%' },
          ],
        },
      },
      {
        data: { values: [{ baseline: input.baseline.accuracy }] },
        mark: { type: 'rule', strokeDash: [6, 4], color: '#e45756', strokeWidth: 1.5 },
        encoding: { y: { field: 'baseline', ...y } },
      },
    ],
    config: CONFIG,
  } as VegaLiteSpec;
}

/** One layer's smoothness in one run (SmoothnessResult.layers plus the run's name). */
export interface SmoothnessPoint {
  run: string;
  layer: string;
  depth: number;
  alpha: number;
}

/**
 * S2's per-layer smoothness: the weak-type Besov alpha of each layer's features against the labels,
 * one line per run. With one run the x axis names the layers; with several (whose layers may differ)
 * it is the layer depth.
 */
export function smoothnessFigureSpec(points: SmoothnessPoint[], opts: { title: string }): VegaLiteSpec {
  const figure = 'smoothness figure';
  const layerPoints = points.filter((p) => p.depth >= 0);
  if (layerPoints.length === 0) throw figureError(figure, 'per-layer alphas', points.length ? 'only whole-model rows' : 'none');
  const runs = distinct(layerPoints.map((p) => p.run));
  const single = runs.length === 1;
  const layers = single ? layersByDepth(layerPoints, figure) : [];
  // Past 20 series a colour each cannot be had: one faint line each, named by its tooltip.
  const crowded = runs.length > 20;
  const colour = crowded
    ? { value: '#374151' }
    : { field: 'run', type: 'nominal', title: 'run', scale: { domain: [...runs].sort(), scheme: categorical(runs.length) }, legend: single ? null : RUN_LEGEND };
  return {
    $schema: SCHEMA,
    title: titleOf(opts.title, 'layer smoothness', 'weak-type Besov α of the features against the labels'),
    data: { values: layerPoints.map(({ run, layer, depth, alpha }) => ({ run, layer, depth, alpha })) },
    width: single ? layerWidth(layers.length) : 420,
    height: 240,
    transform: [{ filter: 'isFinite(datum.alpha)' }],
    mark: { type: 'line', point: { size: 20 }, strokeWidth: 1.5, ...(crowded ? { opacity: 0.3 } : {}) },
    encoding: {
      x: single
        ? { field: 'layer', type: 'ordinal', sort: layers, scale: { domain: layers }, title: 'layer (input → output)', axis: LAYER_AXIS }
        : { field: 'depth', type: 'quantitative', title: 'layer depth (input → output)', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'alpha', type: 'quantitative', title: 'smoothness α' },
      // One run needs no legend: the title names it.
      color: colour,
      ...(crowded ? { detail: { field: 'run', type: 'nominal' } } : {}),
      tooltip: [
        { field: 'run', type: 'nominal' },
        { field: 'layer', type: 'nominal' },
        { field: 'depth', type: 'quantitative' },
        { field: 'alpha', type: 'quantitative', title: 'α', format: '.4f' },
      ],
    },
    config: CONFIG,
  } as VegaLiteSpec;
}

/**
 * The smoothness of each run's last layer with parameters (S2: the classifier's alpha against label
 * noise), one bar per run in the order given.
 */
export function lastLayerSmoothnessFigureSpec(points: SmoothnessPoint[], opts: { title: string }): VegaLiteSpec {
  const figure = 'last-layer smoothness figure';
  const runs = distinct(points.map((p) => p.run));
  const last = runs.map((run) => {
    const own = points.filter((p) => p.run === run && p.depth >= 0);
    if (own.length === 0) throw figureError(figure, `per-layer alphas of run ${run}`, 'none');
    return own.reduce((a, b) => (b.depth > a.depth ? b : a));
  });
  return {
    $schema: SCHEMA,
    title: titleOf(opts.title, 'smoothness of the last layer', 'weak-type Besov α of the last layer with parameters, per run'),
    data: { values: last.map(({ run, layer, alpha }) => ({ run, layer, alpha })) },
    width: Math.max(MIN_PANEL_WIDTH, 28 * last.length),
    height: 220,
    transform: [{ filter: 'isFinite(datum.alpha)' }],
    mark: { type: 'bar' },
    encoding: {
      x: { field: 'run', type: 'nominal', sort: runs, title: 'run', axis: LAYER_AXIS },
      y: { field: 'alpha', type: 'quantitative', title: 'smoothness α' },
      tooltip: [
        { field: 'run', type: 'nominal' },
        { field: 'layer', type: 'nominal' },
        { field: 'alpha', type: 'quantitative', title: 'α', format: '.4f' },
      ],
    },
    config: CONFIG,
  } as VegaLiteSpec;
}

/** Panel titles of the gathered depth profile, by `against`, in panel order. */
export const DEPTH_PROFILE_PANELS = {
  init: 'gathered differences to initial weights',
  previous: 'gathered differences to previous snapshot',
} as const;

/**
 * S0's gathered figures ("Gathered init differences", "Gathered next differences") side by side: the
 * mean per-parameter distance at each normalised depth in [0, 1], one line per group (DEPTH_PROFILE_TABLE
 * rows). A panel whose reference has no rows is left out.
 */
export function depthProfileFigureSpec(rows: DepthProfileRow[], opts: { title: string; p?: string; logScale?: boolean }): VegaLiteSpec {
  const figure = 'depth profile figure';
  if (rows.length === 0) throw figureError(figure, 'at least one row', 'none');
  rows.forEach((r, i) => {
    if (!Object.hasOwn(DEPTH_PROFILE_PANELS, r.against)) {
      throw figureError(figure, `against to be one of ${Object.keys(DEPTH_PROFILE_PANELS).join(', ')} in row ${i}`, JSON.stringify(r.against));
    }
    if (!(r.depth >= 0 && r.depth <= 1)) throw figureError(figure, `a normalised depth in [0, 1] in row ${i}`, String(r.depth));
  });
  const groups = distinct(rows.map((r) => r.group)).sort();
  const pLabel = opts.p === undefined ? '' : ` (p = ${opts.p === 'inf' ? '∞' : opts.p})`;
  const panels = (Object.keys(DEPTH_PROFILE_PANELS) as Array<keyof typeof DEPTH_PROFILE_PANELS>).filter((a) => rows.some((r) => r.against === a));
  const panel = (against: keyof typeof DEPTH_PROFILE_PANELS) => ({
    title: DEPTH_PROFILE_PANELS[against],
    width: 300,
    height: 220,
    transform: [
      { filter: { field: 'against', equal: against } },
      { filter: opts.logScale ? 'isFinite(datum.mean) && datum.mean > 0' : 'isFinite(datum.mean)' },
    ],
    mark: { type: 'line' as const, point: { size: 14 }, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'depth', type: 'quantitative' as const, title: 'normalised layer depth (input → output)', scale: { domain: [0, 1] } },
      y: { field: 'mean', type: 'quantitative' as const, title: `mean per-parameter distance${pLabel}`, scale: opts.logScale ? { type: 'log' as const } : { zero: true } },
      color: { field: 'group', type: 'nominal' as const, title: 'group', scale: { domain: groups, scheme: 'tableau10' } },
      tooltip: [
        { field: 'group', type: 'nominal' as const },
        { field: 'depth', type: 'quantitative' as const, title: 'normalised depth', format: '.2f' },
        { field: 'mean', type: 'quantitative' as const, format: '.4g' },
        { field: 'runs', type: 'quantitative' as const, title: 'runs averaged' },
      ],
    },
  });
  return {
    $schema: SCHEMA,
    title: { text: `${opts.title}: gathered per-layer differences`, subtitle: 'averaged over runs, layer depth normalised to [0, 1]', subtitleColor: '#555', anchor: 'start', fontSize: 15, offset: 14 },
    data: { values: rows.map(({ group, against, depth, mean, runs }) => ({ group, against, depth, mean, runs })) },
    hconcat: panels.map(panel),
    config: CONFIG,
  } as VegaLiteSpec;
}

/** One layer's value at one epoch, measured against the initial weights. */
export interface LayerEpochPoint {
  epoch: number;
  layer: string;
  depth: number;
  value: number;
}

interface LayerEpochAxis {
  /** The run's name. */
  name: string;
  /** What the figure shows. */
  title: string;
  subtitle?: string;
  y: Record<string, unknown>;
  format: string;
  logScale?: boolean;
}

/** One line per epoch across the layers in depth order, coloured early (dark) to late (light): the init panel of the distance figure, for another measure. */
function layerEpochSpec(points: LayerEpochPoint[], figure: string, axis: LayerEpochAxis): VegaLiteSpec {
  const layerPoints = points.filter((p) => p.depth >= 0);
  if (layerPoints.length === 0) throw figureError(figure, 'per-layer rows', points.length ? 'only whole-model rows' : 'none');
  const layers = layersByDepth(layerPoints, figure);
  const epochs = distinct(layerPoints.map((p) => p.epoch)).sort((a, b) => a - b);
  const discrete = epochs.length <= MAX_DISCRETE_EPOCHS;
  return {
    $schema: SCHEMA,
    title: titleOf(axis.name, axis.title, axis.subtitle),
    data: { values: layerPoints.map(({ epoch, layer, depth, value }) => ({ epoch, layer, depth, value })) },
    width: layerWidth(layers.length),
    height: 220,
    transform: [{ filter: axis.logScale ? 'isFinite(datum.value) && datum.value > 0' : 'isFinite(datum.value)' }],
    mark: { type: 'line', point: { size: 16 }, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'layer', type: 'ordinal', sort: layers, scale: { domain: layers }, title: 'layer (input → output)', axis: LAYER_AXIS },
      y: { field: 'value', type: 'quantitative', ...axis.y },
      color: {
        field: 'epoch',
        type: discrete ? 'ordinal' : 'quantitative',
        title: 'epoch',
        scale: { scheme: VIRIDIS, ...(discrete ? { domain: epochs } : {}) },
      },
      detail: { field: 'epoch', type: 'ordinal' },
      tooltip: [
        { field: 'layer', type: 'nominal' },
        { field: 'epoch', type: 'ordinal' },
        { field: 'value', type: 'quantitative', format: axis.format },
      ],
    },
    config: CONFIG,
  } as VegaLiteSpec;
}

/**
 * S4's share of parameters changed since the initial weights, per layer and epoch; `value` is a
 * fraction in [0, 1] (NaN for a diverged layer, left out). The tolerance is stated in the subtitle.
 */
export function changedShareFigureSpec(points: LayerEpochPoint[], opts: { title: string; tolerance?: { atol: number; rtol: number } }): VegaLiteSpec {
  const figure = 'changed share figure';
  points.forEach((p, i) => {
    if (!(Number.isNaN(p.value) || (p.value >= 0 && p.value <= 1))) throw figureError(figure, `a share in [0, 1] in point ${i} (layer "${p.layer}")`, String(p.value));
  });
  const tol = opts.tolerance;
  return layerEpochSpec(points, figure, {
    name: opts.title,
    title: 'share of parameters changed since initialisation',
    subtitle: `changed: |w_t − w_0| > atol + rtol·|w_0|${tol ? ` with atol = ${tol.atol}, rtol = ${tol.rtol}` : ''}`,
    y: { title: 'parameters changed', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
    format: '.2%',
  });
}

/** The lazy-training diagnostic per layer and epoch: |W_t − W_0|_p / |W_0|_p. Log y axis when asked. */
export function relativeChangeFigureSpec(points: LayerEpochPoint[], opts: { title: string; p?: string; logScale?: boolean }): VegaLiteSpec {
  const pLabel = opts.p === undefined ? '' : ` (p = ${opts.p === 'inf' ? '∞' : opts.p})`;
  return layerEpochSpec(points, 'relative change figure', {
    name: opts.title,
    title: `relative change per layer${pLabel}`,
    subtitle: '|W_t − W_0| / |W_0|: small means the layer barely left its start',
    y: { title: 'relative change', scale: opts.logScale ? { type: 'log' } : { zero: true } },
    format: '.4g',
    ...(opts.logScale ? { logScale: true } : {}),
  });
}
