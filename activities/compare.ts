/**
 * The `compare` activity: two runs' representations on the same probe set. Linear CKA between every
 * (layer of a, layer of b), stored as a CKA_TABLE for the heatmap; the CKA of same-named layers (the
 * diagonal); and the mean |r| of the cross-correlation of the two penultimate feature sets.
 *
 * Both feature files must come from the same probe set (the same examples in the same order): anything
 * else would compare representations of different inputs, so it fails for good, naming both runs.
 *
 * Called by the experiment workflow for each pair of runs its compare spec names.
 */
import { Context } from '@temporalio/activity';
import { CKA_TABLE, type CkaRow } from '../artifacts/analysis-tables.js';
import type { FeaturesLayer } from '../artifacts/features.js';
import { recordsToArrow } from '../artifacts/records.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import { correlationSummary, crossCorrelation, linearCkaMatrix } from '../ml/metrics/index.js';
import { matchesLayer } from '../ml/train/select.js';
import { loadFeatures, MAX_CORRELATED_FEATURES } from './correlation.js';
import { classify, failForGood } from './errors.js';
import { TABLE_PREFIX } from './keys.js';
import { recordLineage } from './lineage.js';
import type { CompareInput, CompareResult } from './types.js';

export interface CompareDeps {
  store: ArtifactStore;
}

function selected(layers: FeaturesLayer[], patterns: string[] | undefined): FeaturesLayer[] {
  return patterns ? layers.filter((l) => patterns.some((p) => matchesLayer(p, l.layer))) : layers;
}

function probeMismatch(input: CompareInput, probeA: string, probeB: string): string {
  return (
    `compare: expected the features of ${input.a.name} (${input.a.runId}) and ${input.b.name} (${input.b.runId}) on the same probe set; ` +
    `found probe ${probeA} and probe ${probeB} (a different dataset or analyses.probe.size)`
  );
}

/** Guards the d x d Grams: an unpooled convolution map would need gigabytes. */
function checkWidth(side: string, layers: FeaturesLayer[]): void {
  const wide = layers.find((l) => l.features.cols > MAX_CORRELATED_FEATURES);
  if (wide) {
    throw failForGood(
      'InvalidExperiment',
      `compare: layer ${wide.layer} of ${side} has ${wide.features.cols} features, expected at most ${MAX_CORRELATED_FEATURES} (pool: mean, or leave the layer out with analyses.compare.layers)`,
    );
  }
}

export function createCompare(deps: CompareDeps) {
  return async function compare(input: CompareInput): Promise<CompareResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    try {
      // The refs say which probe each file came from: a mismatch fails before anything is downloaded.
      if (input.a.features.probe.sha256 !== input.b.features.probe.sha256) {
        throw failForGood('InvalidExperiment', probeMismatch(input, input.a.features.probe.sha256, input.b.features.probe.sha256));
      }
      ctx.heartbeat({ stage: 'load' });
      const a = await loadFeatures(deps.store, input.a.features, signal);
      const b = await loadFeatures(deps.store, input.b.features, signal);
      // And the files themselves, which is what the numbers are computed from.
      if (a.probe !== b.probe || a.probe !== input.a.features.probe.sha256) {
        throw failForGood('InvalidExperiment', probeMismatch(input, a.probe, b.probe));
      }
      const la = selected(a.layers, input.layers);
      const lb = selected(b.layers, input.layers);
      if (la.length === 0 || lb.length === 0) {
        const none = la.length === 0 ? input.a : input.b;
        const all = (la.length === 0 ? a : b).layers.map((l) => l.layer);
        throw failForGood('InvalidExperiment', `analyses.compare.layers: expected [${input.layers!.join(', ')}] to match layers of ${none.name} (${all.join(', ')}); found none`);
      }
      checkWidth(input.a.name, la);
      checkWidth(input.b.name, lb);

      ctx.heartbeat({ stage: 'cka' });
      signal.throwIfAborted();
      const cka = linearCkaMatrix(la.map((l) => l.features), lb.map((l) => l.features));
      const rows: CkaRow[] = [];
      la.forEach((x, i) => lb.forEach((y, j) => rows.push({ layerA: x.layer, depthA: x.depth, layerB: y.layer, depthB: y.depth, cka: cka[i * lb.length + j]! })));
      const diagonal = la.flatMap((x, i) => {
        const j = lb.findIndex((y) => y.layer === x.layer && y.depth === x.depth);
        return j < 0 ? [] : [{ layer: x.layer, depth: x.depth, cka: cka[i * lb.length + j]! }];
      });

      ctx.heartbeat({ stage: 'cross-correlation' });
      signal.throwIfAborted();
      const pa = a.penultimate.features;
      const pb = b.penultimate.features;
      checkWidth(input.a.name, [a.penultimate]);
      checkWidth(input.b.name, [b.penultimate]);
      // The bins do not enter the mean; one bin keeps the summary's histogram trivial.
      const penultimateMeanAbs = correlationSummary(crossCorrelation(pa, pb), 1).meanAbs;

      const meta = {
        runA: input.a.runId,
        runB: input.b.runId,
        nameA: input.a.name,
        nameB: input.b.name,
        probe: a.probe,
        penultimateA: a.penultimate.layer,
        penultimateB: b.penultimate.layer,
        penultimateMeanAbs: String(penultimateMeanAbs),
      };
      const table = await putContentAddressed(deps.store, TABLE_PREFIX, recordsToArrow(CKA_TABLE, rows, meta), '.arrow', { signal });
      await recordLineage(
        deps.store,
        input,
        table,
        'cka-table',
        [input.a.features.features, input.b.features.features, input.a.features.probe],
        { runA: input.a.runId, runB: input.b.runId, layers: input.layers ?? null },
        signal,
      );
      return { a: input.a.name, b: input.b.name, table, diagonal, penultimateMeanAbs };
    } catch (err) {
      throw classify(err);
    }
  };
}
