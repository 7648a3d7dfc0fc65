/**
 * The `correlation` activity: within one model, the feature-feature Pearson matrix of one layer's probe
 * features (the penultimate layer's by default), summarised as the mean |r| off the diagonal and a
 * histogram of r, stored as a CORRELATION_TABLE (one row per bin).
 *
 * Called by the run workflow after `features`; re-runnable on any stored features file.
 */
import { Context } from '@temporalio/activity';
import { CORRELATION_TABLE, type CorrelationRow } from '../artifacts/analysis-tables.js';
import { featuresFromArrow, type FeaturesFile, type FeaturesLayer } from '../artifacts/features.js';
import { recordsToArrow } from '../artifacts/records.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import { centreColumns, correlationSummary, pearsonMatrix } from '../ml/metrics/index.js';
import { classify, failForGood } from './errors.js';
import { TABLE_PREFIX } from './keys.js';
import { recordLineage } from './lineage.js';
import type { CorrelationInput, CorrelationResult, FeaturesResult } from './types.js';

export interface CorrelationDeps {
  store: ArtifactStore;
}

/**
 * Widest layer whose d x d matrix is built (8192 features: 512 MiB of float64). Wider layers are
 * unpooled convolution maps; pool them by mean or correlate the penultimate layer instead.
 */
export const MAX_CORRELATED_FEATURES = 8192;

/** Reads a features file, verified against its sha256 and per-tensor hashes. */
export async function loadFeatures(store: ArtifactStore, features: FeaturesResult, signal?: AbortSignal): Promise<FeaturesFile> {
  const ref = features.features;
  return featuresFromArrow(await store.get(ref.key, { sha256: ref.sha256, signal }), { source: ref.key });
}

/** The layer `name` of a features file; `penultimate` names the classifier's input. */
export function featuresOf(file: FeaturesFile, name: string, what: string): FeaturesLayer {
  if (name === 'penultimate' || name === file.penultimate.layer) return file.penultimate;
  const found = file.layers.find((l) => l.layer === name);
  if (!found) {
    throw failForGood('InvalidExperiment', `${what}: expected "penultimate" or one of ${file.layers.map((l) => l.layer).join(', ')}; found "${name}"`);
  }
  return found;
}

export function createCorrelation(deps: CorrelationDeps) {
  return async function correlation(input: CorrelationInput): Promise<CorrelationResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    try {
      ctx.heartbeat({ stage: 'load' });
      const file = await loadFeatures(deps.store, input.features, signal);
      const entry = featuresOf(file, input.spec.layer, 'analyses.correlation.layer');
      const { cols } = entry.features;
      if (cols > MAX_CORRELATED_FEATURES) {
        throw failForGood(
          'InvalidExperiment',
          `analyses.correlation: layer ${entry.layer} has ${cols} features, expected at most ${MAX_CORRELATED_FEATURES} (pool: mean, or the penultimate layer)`,
        );
      }
      ctx.heartbeat({ stage: 'correlate' });
      signal.throwIfAborted();
      const summary = correlationSummary(pearsonMatrix(entry.features), input.spec.bins);
      const constant = centreColumns(entry.features).constant.reduce((a, b) => a + b, 0);
      const rows: CorrelationRow[] = Array.from(summary.counts, (count, k) => ({
        layer: entry.layer,
        binStart: summary.edges[k]!,
        binEnd: summary.edges[k + 1]!,
        count,
      }));
      const meta = {
        runId: input.runId,
        layer: entry.layer,
        meanAbs: String(summary.meanAbs),
        mean: String(summary.mean),
        features: String(cols),
        constant: String(constant),
        pairs: String(summary.pairs),
        undefinedPairs: String(summary.undefinedPairs),
        probe: file.probe,
      };
      const table = await putContentAddressed(deps.store, TABLE_PREFIX, recordsToArrow(CORRELATION_TABLE, rows, meta), '.arrow', { signal });
      await recordLineage(deps.store, input, table, 'correlation-table', [input.features.features, input.features.probe], { layer: entry.layer, bins: input.spec.bins }, signal);
      return { table, layer: entry.layer, features: cols, meanAbs: summary.meanAbs, mean: summary.mean, constant };
    } catch (err) {
      throw classify(err);
    }
  };
}
