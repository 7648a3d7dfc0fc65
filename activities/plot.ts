/**
 * The `plot` activity: renders a run's distance table as the "Differences" figure (per layer, to the
 * initial weights and to the previous snapshot), one SVG and one PNG per Minkowski order.
 */
import { Context } from '@temporalio/activity';
import { distanceTableFromArrow } from '../artifacts/table.js';
import type { ArtifactStore } from '../artifacts/store.js';
import { distanceFigureSpec } from '../report/figures.js';
import { renderSvg, svgToPng } from '../report/render.js';
import { classify } from './errors.js';
import { figureKey } from './keys.js';
import { recordLineage } from './lineage.js';
import type { FigureRef, PlotInput, PlotResult } from './types.js';

export interface PlotDeps {
  store: ArtifactStore;
}

export function createPlot(deps: PlotDeps) {
  return async function plot(input: PlotInput): Promise<PlotResult> {
    const signal = Context.current().cancellationSignal;
    try {
      const rows = distanceTableFromArrow(await deps.store.get(input.table.key, { sha256: input.table.sha256, signal }));
      const figures: FigureRef[] = [];
      for (const p of [...new Set(rows.map((r) => r.p))]) {
        const spec = distanceFigureSpec(
          // A snapshot against itself (epoch 0 to init) is a line at zero: nothing to see.
          rows.filter((r) => r.p === p && r.epoch !== r.referenceEpoch),
          { title: input.runName, p },
        );
        const svg = await renderSvg(spec);
        const name = `distance-p${p}`;
        const svgRef = await deps.store.put(figureKey(input.runId, `${name}.svg`), new TextEncoder().encode(svg), { contentType: 'image/svg+xml', signal });
        figures.push({ ...svgRef, format: 'svg', p, path: deps.store.locate(svgRef.key) });
        const pngRef = await deps.store.put(figureKey(input.runId, `${name}.png`), svgToPng(svg), { contentType: 'image/png', signal });
        figures.push({ ...pngRef, format: 'png', p, path: deps.store.locate(pngRef.key) });
      }
      for (const f of figures) await recordLineage(deps.store, input, f, 'figure', [input.table], { format: f.format, p: f.p }, signal);
      return { figures };
    } catch (err) {
      throw classify(err);
    }
  };
}
