/**
 * The `smoothness` activity: per layer, the weak-type Besov alpha of the probe labels as a function of
 * the layer's probe features (ml/metrics/smoothness.ts: a random forest of `spec.trees` trees, its
 * wavelet decomposition, the decay of the N-term approximation error), stored as a SMOOTHNESS_TABLE with
 * one row per layer (metadata: runId, trees, maxFeatures, seed, probe).
 *
 * Called by the run workflow after `features`; re-runnable on any stored features file. Every layer
 * uses the same forest seed, so a layer's alpha does not depend on which other layers were asked for.
 * A layer whose features are not all finite (a diverged model) gets alpha NaN rather than failing the
 * run. Progress is heartbeated per tree with the alphas of the layers done so far (the event loop gets
 * a turn between trees, so cancellation is seen within a layer); a retry takes those alphas from the
 * heartbeat and computes only the rest (the estimate is deterministic, so nothing changes).
 */
import { activityInfo, Context } from '@temporalio/activity';
import { SMOOTHNESS_TABLE, type SmoothnessRow } from '../artifacts/analysis-tables.js';
import { featuresFromArrow, type FeaturesFile } from '../artifacts/features.js';
import { recordsToArrow } from '../artifacts/records.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { candidateFeatures, forestTrees, type Tree } from '../ml/metrics/forest.js';
import type { FeatureMatrix } from '../ml/metrics/gram.js';
import { forestAlpha, smoothnessTargets } from '../ml/metrics/smoothness.js';
import { matchesLayer } from '../ml/train/select.js';
import { classify, failForGood } from './errors.js';
import { TABLE_PREFIX } from './keys.js';
import { recordLineage } from './lineage.js';
import type { FeatureLayer, SmoothnessInput, SmoothnessResult } from './types.js';

export interface SmoothnessDeps {
  store: ArtifactStore;
}

/** What a heartbeat carries: the rows finished so far, and how many layers there are in all. */
export interface SmoothnessHeartbeat {
  done: SmoothnessRow[];
  layers: number;
}

/** The layers `patterns` name (all when omitted), by depth; every pattern must name at least one layer. */
export function selectLayers(layers: readonly FeatureLayer[], patterns: readonly string[] | undefined): FeatureLayer[] {
  const sorted = [...layers].sort((a, b) => a.depth - b.depth);
  if (!patterns) return sorted;
  for (const p of patterns) {
    if (!sorted.some((l) => matchesLayer(p, l.layer))) {
      throw failForGood('InvalidExperiment', `analyses.smoothness.layers: expected "${p}" to name one of ${sorted.map((l) => l.layer).join(', ')}; found none`);
    }
  }
  return sorted.filter((l) => patterns.some((p) => matchesLayer(p, l.layer)));
}

function checkSpec(spec: SmoothnessInput['spec']): void {
  if (!Number.isInteger(spec.trees) || spec.trees < 1) {
    throw failForGood('InvalidExperiment', `analyses.smoothness.trees: expected an integer >= 1; found ${String(spec.trees)}`);
  }
  try {
    candidateFeatures(spec.maxFeatures, 1);
  } catch (err) {
    throw failForGood('InvalidExperiment', `analyses.smoothness.${(err as Error).message}`, err);
  }
}

/**
 * besovAlpha of ml/metrics/smoothness.ts, growing the forest a tree at a time and giving the event loop
 * a turn between trees, so heartbeats go out and a cancellation is seen during a long layer.
 */
async function layerAlpha(x: FeatureMatrix, labels: Float32Array, spec: SmoothnessInput['spec'], seed: number, between: () => void): Promise<number> {
  const y = smoothnessTargets(x, labels);
  const trees: Tree[] = [];
  for (const tree of forestTrees(x, y, { trees: spec.trees, maxFeatures: spec.maxFeatures, seed })) {
    trees.push(tree);
    await nextTurn();
    between();
  }
  return forestAlpha({ trees, features: x.cols, outputs: y.outputs }, x, y.values).alpha;
}

function allFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}

export function createSmoothness(deps: SmoothnessDeps) {
  return async function smoothness(input: SmoothnessInput): Promise<SmoothnessResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    try {
      checkSpec(input.spec);
      const layers = selectLayers(input.features.layers, input.spec.layers);
      const ref = input.features.features;
      const bytes = await deps.store.get(ref.key, { sha256: ref.sha256, signal });
      let file: FeaturesFile;
      try {
        file = featuresFromArrow(bytes, { source: ref.key });
      } catch (err) {
        // The bytes matched their sha256: a malformed file stays malformed on every retry.
        throw failForGood('IntegrityError', (err as Error).message, err);
      }
      const byLayer = new Map(file.layers.map((l) => [l.layer, l]));
      const previous = activityInfo().heartbeatDetails as SmoothnessHeartbeat | undefined;
      const reused = new Map((previous?.done ?? []).map((r) => [`${r.layer}#${r.depth}`, r]));
      const rows: SmoothnessRow[] = [];
      for (const { layer, depth } of layers) {
        ctx.heartbeat({ done: rows, layers: layers.length } satisfies SmoothnessHeartbeat);
        signal.throwIfAborted();
        const entry = byLayer.get(layer);
        if (!entry) {
          throw failForGood('IntegrityError', `${ref.key}: expected features of layer ${layer}; the file has ${file.layers.map((l) => l.layer).join(', ')}`);
        }
        const { features } = entry;
        const before = reused.get(`${layer}#${depth}`);
        if (before && before.features === features.cols) {
          rows.push(before);
          continue;
        }
        let alpha = NaN;
        if (features.cols > 0 && allFinite(features.values)) {
          alpha = await layerAlpha(features, file.labels, input.spec, input.seed, () => {
            ctx.heartbeat({ done: rows, layers: layers.length } satisfies SmoothnessHeartbeat);
            signal.throwIfAborted();
          });
        } else {
          ctx.log.warn('smoothness undefined: layer has no features or non-finite ones', { layer, features: features.cols });
        }
        rows.push({ layer, depth, features: features.cols, alpha });
      }
      ctx.heartbeat({ done: rows, layers: layers.length } satisfies SmoothnessHeartbeat);
      const meta = {
        runId: input.runId,
        trees: String(input.spec.trees),
        maxFeatures: String(input.spec.maxFeatures),
        seed: String(input.seed),
        probe: file.probe,
      };
      const table = await putContentAddressed(deps.store, TABLE_PREFIX, recordsToArrow(SMOOTHNESS_TABLE, rows, meta), '.arrow', { signal });
      const attrs = { trees: input.spec.trees, maxFeatures: input.spec.maxFeatures, seed: input.seed, layers: rows.map((r) => r.layer) };
      await recordLineage(deps.store, input, table, 'smoothness-table', [input.features.features, input.features.probe], attrs, signal);
      return { table, layers: rows.map(({ layer, depth, alpha }) => ({ layer, depth, alpha })) };
    } catch (err) {
      throw classify(err);
    }
  };
}
