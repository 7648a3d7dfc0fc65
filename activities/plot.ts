/**
 * The `plot` activity: renders a run's figures, each as one SVG and one PNG under
 * `runs/<run id>/figures/`, with a lineage manifest naming the tables it was drawn from.
 *
 * From the distance table: the "Differences" figure (per layer, to the initial weights and to the
 * previous snapshot) and the relative change per layer, one each per Minkowski order, and the share of
 * parameters changed since initialisation (once; it does not depend on p). From the run's other
 * analyses, when `input.analyses` holds them: the feature-correlation histogram, re-initialisation
 * robustness, layer smoothness, and the perturb-and-retrain norms and per-layer distances.
 *
 * `FigureRef.p` says which figure a reference is (see `figureTitle`): the Minkowski order ('1', '2',
 * 'inf') for a Differences figure, as it always was; `relative-p<order>` for the relative change; and
 * the figure's name otherwise (`changed`, `correlation`, `reinit`, `smoothness`, `perturbation-norms`,
 * `perturbation-layers`). Figures come out in a fixed order with fixed keys, so a retried activity
 * writes the same objects.
 */
import { Context } from '@temporalio/activity';
import { CORRELATION_TABLE, NORMS_TABLE } from '../artifacts/analysis-tables.js';
import { readManifest } from '../artifacts/manifest.js';
import { recordsFromArrow } from '../artifacts/records.js';
import type { ObjectRef } from '../artifacts/refs.js';
import type { ArtifactStore } from '../artifacts/store.js';
import { distanceTableFromArrow, type DistanceRow } from '../artifacts/table.js';
import {
  changedShareFigureSpec,
  correlationFigureSpec,
  distanceFigureSpec,
  perturbationLayersFigureSpec,
  perturbationNormsFigureSpec,
  reinitFigureSpec,
  relativeChangeFigureSpec,
  smoothnessFigureSpec,
  type LayerEpochPoint,
} from '../report/figures.js';
import { renderSvg, svgToPng, type VegaLiteSpec } from '../report/render.js';
import { classify } from './errors.js';
import { figureKey } from './keys.js';
import { recordLineage } from './lineage.js';
import type { FigureRef, PlotInput, PlotResult } from './types.js';

export interface PlotDeps {
  store: ArtifactStore;
}

/** Titles of the figures that are not a Minkowski order, by their `FigureRef.p`. */
export const FIGURE_TITLES: Record<string, string> = {
  changed: 'Share of parameters changed since initialisation',
  correlation: 'Feature correlation',
  reinit: 'Re-initialisation robustness',
  smoothness: 'Layer smoothness',
  'perturbation-norms': 'Perturb and retrain: norms',
  'perturbation-layers': 'Perturb and retrain: per-layer distance',
};

const pText = (p: string) => (p === 'inf' ? '∞' : p);

/** What the report calls a figure, from its `FigureRef.p`. */
export function figureTitle(p: string): string {
  if (/^(\d+(\.\d+)?|inf)$/.test(p)) return `Differences, p = ${pText(p)}`;
  const relative = /^relative-p(.+)$/.exec(p);
  if (relative) return `Relative change per layer, p = ${pText(relative[1]!)}`;
  return FIGURE_TITLES[p] ?? p;
}

/** Rows measured against the initial weights, as (epoch, layer) points of one column; epoch 0 against itself is left out. */
function initPoints(rows: DistanceRow[], value: (r: DistanceRow) => number): LayerEpochPoint[] {
  return rows.filter((r) => r.against === 'init' && r.epoch !== r.referenceEpoch).map((r) => ({ epoch: r.epoch, layer: r.layer, depth: r.depth, value: value(r) }));
}

/** True when some layer row holds a number: a version-1 table has NaN in every new column. */
const anyFinite = (points: LayerEpochPoint[]) => points.some((p) => p.depth >= 0 && Number.isFinite(p.value));

/** The tolerance the distance activity counted "changed" with, from the table's lineage; undefined when not recorded. */
async function changedTolerance(store: ArtifactStore, table: ObjectRef, signal: AbortSignal): Promise<{ atol: number; rtol: number } | undefined> {
  const manifest = await readManifest(store, table.sha256, signal).catch(() => undefined);
  const tol = (manifest?.attrs as { changed?: { atol?: unknown; rtol?: unknown } } | undefined)?.changed;
  return typeof tol?.atol === 'number' && typeof tol?.rtol === 'number' ? { atol: tol.atol, rtol: tol.rtol } : undefined;
}

export function createPlot(deps: PlotDeps) {
  return async function plot(input: PlotInput): Promise<PlotResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    try {
      const figures: FigureRef[] = [];
      const sources = new Map<string, ObjectRef[]>();
      const draw = async (name: string, p: string, spec: VegaLiteSpec, from: ObjectRef[]) => {
        ctx.heartbeat({ figure: name });
        const svg = await renderSvg(spec);
        const svgRef = await deps.store.put(figureKey(input.runId, `${name}.svg`), new TextEncoder().encode(svg), { contentType: 'image/svg+xml', signal });
        figures.push({ ...svgRef, format: 'svg', p, path: deps.store.locate(svgRef.key) });
        const pngRef = await deps.store.put(figureKey(input.runId, `${name}.png`), svgToPng(svg), { contentType: 'image/png', signal });
        figures.push({ ...pngRef, format: 'png', p, path: deps.store.locate(pngRef.key) });
        sources.set(svgRef.key, from).set(pngRef.key, from);
      };
      const get = (ref: ObjectRef) => deps.store.get(ref.key, { sha256: ref.sha256, signal });

      // Named references (`ref:<label>`) are in the table for analysis; the figures show init and previous.
      const rows = distanceTableFromArrow(await get(input.table)).filter((r) => r.against === 'init' || r.against === 'previous');
      const ps = [...new Set(rows.map((r) => r.p))];
      for (const p of ps) {
        const spec = distanceFigureSpec(
          // A snapshot against itself (epoch 0 to init) is a line at zero: nothing to see.
          rows.filter((r) => r.p === p && r.epoch !== r.referenceEpoch),
          { title: input.runName, p },
        );
        await draw(`distance-p${p}`, p, spec, [input.table]);
      }
      for (const p of ps) {
        const points = initPoints(rows.filter((r) => r.p === p), (r) => r.relative);
        if (anyFinite(points)) await draw(`relative-p${p}`, `relative-p${p}`, relativeChangeFigureSpec(points, { title: input.runName, p }), [input.table]);
      }
      // The share changed is the same in every p's rows; draw it from the first.
      const changed = initPoints(rows.filter((r) => r.p === ps[0]), (r) => r.changed);
      if (anyFinite(changed)) {
        const tolerance = await changedTolerance(deps.store, input.table, signal);
        await draw('changed', 'changed', changedShareFigureSpec(changed, { title: input.runName, ...(tolerance ? { tolerance } : {}) }), [input.table]);
      }

      const analyses = input.analyses ?? {};
      if (analyses.correlation) {
        const { rows: bins } = recordsFromArrow(CORRELATION_TABLE, await get(analyses.correlation.table));
        if (bins.length) {
          await draw('correlation', 'correlation', correlationFigureSpec(bins, { title: input.runName, meanAbs: analyses.correlation.meanAbs, mean: analyses.correlation.mean }), [analyses.correlation.table]);
        }
      }
      if (analyses.reinit && analyses.reinit.layers.length) {
        await draw('reinit', 'reinit', reinitFigureSpec(analyses.reinit, { title: input.runName }), [analyses.reinit.table]);
      }
      if (analyses.smoothness && analyses.smoothness.layers.length) {
        // Earlier snapshots (analyses.smoothness.epochs) are lines of their own beside the final weights.
        const earlier = analyses.smoothnessAt ?? [];
        const points = [
          ...analyses.smoothness.layers.map((l) => ({ run: earlier.length ? 'final weights' : input.runName, ...l })),
          ...earlier.flatMap((e) => e.smoothness.layers.map((l) => ({ run: `epoch ${e.epoch}`, ...l }))),
        ];
        const tables = [analyses.smoothness.table, ...earlier.map((e) => e.smoothness.table)];
        await draw('smoothness', 'smoothness', smoothnessFigureSpec(points, { title: input.runName }), tables);
      }
      const outcomes = analyses.perturb ?? [];
      if (outcomes.length) {
        const tables = outcomes.map((o) => o.norms.table);
        const perLayer = [];
        let normP: string | undefined;
        for (const o of outcomes) {
          const { rows: normRows, meta } = recordsFromArrow(NORMS_TABLE, await get(o.norms.table));
          normP ??= meta.p;
          perLayer.push(...normRows.map((r) => ({ label: o.label, layer: r.layer, depth: r.depth, relative: r.relative })));
        }
        const points = outcomes.map((o) => ({ run: input.runName, label: o.label, theta1: o.norms.model.theta1, theta2: o.norms.model.theta2, distance: o.norms.model.distance }));
        await draw('perturbation-norms', 'perturbation-norms', perturbationNormsFigureSpec(points, { title: input.runName, ...(normP ? { p: normP } : {}) }), tables);
        if (perLayer.some((r) => r.depth >= 0 && Number.isFinite(r.relative) && r.relative > 0)) {
          await draw('perturbation-layers', 'perturbation-layers', perturbationLayersFigureSpec(perLayer, { title: input.runName }), tables);
        }
      }

      for (const f of figures) await recordLineage(deps.store, input, f, 'figure', sources.get(f.key) ?? [], { format: f.format, p: f.p }, signal);
      return { figures };
    } catch (err) {
      throw classify(err);
    }
  };
}
