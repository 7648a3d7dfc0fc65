/**
 * The `reinit` activity: re-initialisation robustness (Zhang, Bengio and Singer, "Are all layers created
 * equal?"). The run's final weights are evaluated on its test split, then each layer in turn is put back
 * to its initial weights, evaluated, and restored; the rows (layer, depth, test loss and accuracy) are
 * stored as a REINIT_TABLE with the baseline in its metadata.
 *
 * A layer's parameters are reset, its batch-norm running statistics are not (ml/train/select.ts says
 * why). Depth is the layer's order among the layers with parameters, as in the distance table.
 *
 * Each layer's result travels in the heartbeat, so a retry after a lost worker skips the layers already
 * evaluated. Called by the run workflow when the experiment asks for `analyses.reinit`.
 */
import { activityInfo, Context } from '@temporalio/activity';
import { REINIT_TABLE, type ReinitRow } from '../artifacts/analysis-tables.js';
import { recordsToArrow } from '../artifacts/records.js';
import { getSnapshot, type NamedTensor } from '../artifacts/snapshot.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import { selectBackend, type BackendPreference } from '../ml/backend.js';
import { createGraphTrainer } from '../ml/graph/trainer.js';
import { groupLayers, pairLayers } from '../ml/metrics/pairs.js';
import { buildModel } from '../ml/models/registry.js';
import { evaluate, weightsFromTensors } from '../ml/train/loop.js';
import { isParameter, matchesLayer } from '../ml/train/select.js';
import { modelToTensors, tensorsToModel } from '../ml/train/weights.js';
import { loadRunData } from './data.js';
import type { DecodedCacheOptions } from './decoded-cache.js';
import { classify, failForGood } from './errors.js';
import { TABLE_PREFIX } from './keys.js';
import { recordLineage } from './lineage.js';
import type { ReinitInput, ReinitResult } from './types.js';

export interface ReinitDeps {
  store: ArtifactStore;
  /** The backend to evaluate on; `cpu` when not given. */
  backend?: BackendPreference;
  /** Where this machine keeps decoded datasets between processes; none when omitted. */
  decodedCache?: DecodedCacheOptions;
}

/** Progress carried by heartbeats: the layers evaluated so far (a few numbers each). */
export interface ReinitHeartbeat {
  done: ReinitRow[];
  layers: number;
}

/** The layers to reset: every layer with parameters, or those the patterns match (each pattern must match one). */
export function reinitLayers(tensors: readonly NamedTensor[], patterns?: readonly string[]): Array<{ layer: string; depth: number }> {
  const layers = groupLayers(tensors)
    .filter((l) => l.tensors.some(isParameter))
    .map((l) => ({ layer: l.layer, depth: l.depth }));
  if (patterns === undefined) return layers;
  for (const p of patterns) {
    if (!layers.some((l) => matchesLayer(p, l.layer))) {
      throw failForGood('InvalidExperiment', `analyses.reinit.layers: "${p}" matches no layer with parameters (layers: ${layers.map((l) => l.layer).join(', ')})`);
    }
  }
  return layers.filter((l) => patterns.some((p) => matchesLayer(p, l.layer)));
}

export function createReinit(deps: ReinitDeps) {
  const { store } = deps;
  return async function reinit(input: ReinitInput): Promise<ReinitResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    const before = activityInfo().heartbeatDetails as ReinitHeartbeat | undefined;
    // Besides the beat after each layer, beat on a timer with the same progress: evaluating a large test
    // split takes a while, and evaluate() yields between batches so the timer fires.
    let details: ReinitHeartbeat = before ?? { done: [], layers: 0 };
    const ticker = setInterval(() => ctx.heartbeat(details), 1000);
    try {
      const { run } = input;
      await selectBackend(deps.backend ?? 'cpu', (note) => ctx.log.info(note));
      const final = (await getSnapshot(store, input.final, signal)).tensors;
      const initial = (await getSnapshot(store, input.initial, signal)).tensors;
      try {
        pairLayers(final, initial);
      } catch (err) {
        throw failForGood('InvalidExperiment', `${input.runId}: expected the initial and final weights of one model; ${(err as Error).message}`, err);
      }
      const layers = reinitLayers(final, input.layers);
      const data = await loadRunData(store, run.dataset, input.data, { signal, runSeed: run.seed, decodedCache: deps.decodedCache });
      const model = buildModel(run.model, { inputShape: data.def.inputShape, numClasses: data.def.numClasses });
      // On the native backend, evaluation runs in a step graph's session (its inference-mode forward
      // pass); plain SGD's graph has no optimizer state, so loading the model's weights fills it.
      const choice = createGraphTrainer({ model, optimizer: { name: 'sgd', learningRate: 0 } });
      const graph = 'trainer' in choice ? choice.trainer : undefined;
      try {
        tensorsToModel(model, final);
        const batchSize = run.training.batchSize;
        /** Test loss and accuracy of the weights the model holds now. */
        const evaluateModel = () => {
          graph?.load(modelToTensors(model), []);
          return evaluate(model, data.test, batchSize, signal, graph);
        };
        const baseline = await evaluateModel();
        // Rows of an earlier attempt are kept only for layers this attempt would evaluate.
        const done = new Map((before?.done ?? []).filter((r) => layers.some((l) => l.layer === r.layer)).map((r) => [r.layer, r]));
        const rows: ReinitRow[] = [];
        for (const { layer, depth } of layers) {
          signal.throwIfAborted();
          let row = done.get(layer);
          if (row === undefined) {
            const of = (ts: NamedTensor[]) => ts.filter((t) => t.layer === layer && isParameter(t));
            weightsFromTensors(model, of(initial));
            const metrics = await evaluateModel();
            weightsFromTensors(model, of(final));
            row = { layer, depth, loss: metrics.loss, accuracy: metrics.accuracy };
          }
          rows.push(row);
          // A copy: heartbeats may be sent (serialised) after later layers are pushed.
          details = { done: [...rows], layers: layers.length };
          ctx.heartbeat(details);
        }
        const meta = { runId: input.runId, baselineLoss: String(baseline.loss), baselineAccuracy: String(baseline.accuracy) };
        const table = await putContentAddressed(store, TABLE_PREFIX, recordsToArrow(REINIT_TABLE, rows, meta), '.arrow', { signal });
        await recordLineage(
          store,
          input,
          table,
          'reinit-robustness',
          [input.initial, input.final, ...input.data.files],
          { layers: input.layers ?? null, batchSize, baseline },
          signal,
        );
        return { table, baseline, layers: rows.map((r) => ({ layer: r.layer, depth: r.depth, loss: r.loss, accuracy: r.accuracy })) };
      } finally {
        graph?.dispose();
        model.dispose();
      }
    } catch (err) {
      throw classify(err);
    } finally {
      clearInterval(ticker);
    }
  };
}
