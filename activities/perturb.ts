/**
 * The two activities of perturb-and-retrain (S4) around the retraining itself:
 *
 * - `perturb`: the trained weights theta1 of a run, perturbed (sign flip, offset, seeded noise, or some
 *   layers back to their initial weights; ml/train/perturb.ts), stored as a weight snapshot that a
 *   retraining run starts from;
 * - `norms`: after the retraining, |theta1|, |perturbed|, |theta2| and |theta1 - theta2| per layer and
 *   for the whole model, stored as a NORMS_TABLE.
 *
 * Both count parameters only (batch-norm running statistics are left out, as the perturbation leaves
 * them alone; see ml/train/perturb.ts), so a sign flip reads exactly |theta1 - perturbed| = 2 |theta1|.
 * The run and experiment workflows call them; they can be re-run on stored snapshots at any time.
 */
import { Context } from '@temporalio/activity';
import { NORMS_TABLE, type NormsRow } from '../artifacts/analysis-tables.js';
import { recordsToArrow } from '../artifacts/records.js';
import type { SnapshotRef } from '../artifacts/refs.js';
import { getSnapshot, snapshotToArrow, type DecodedSnapshot, type NamedTensor } from '../artifacts/snapshot.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import { layerNorms } from '../ml/metrics/change.js';
import { formatMinkowskiP, layerDistances, MODEL_LAYER } from '../ml/metrics/minkowski.js';
import { perturbTensors } from '../ml/train/perturb.js';
import { isParameter } from '../ml/train/select.js';
import { classify, failForGood } from './errors.js';
import { TABLE_PREFIX, TENSOR_PREFIX } from './keys.js';
import { recordLineage } from './lineage.js';
import type { NormsInput, NormsResult, PerturbInput, PerturbResult } from './types.js';

export interface PerturbDeps {
  store: ArtifactStore;
}

export function createPerturb(deps: PerturbDeps) {
  return async function perturb(input: PerturbInput): Promise<PerturbResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    try {
      ctx.heartbeat({ stage: 'load' });
      const theta1 = await getSnapshot(deps.store, input.snapshot, signal);
      const reinit = input.perturbation.kind === 'reinit-layer';
      const initial = reinit ? (await getSnapshot(deps.store, input.initial, signal)).tensors : undefined;
      const outcome = perturbTensors(theta1.tensors, input.perturbation, { seed: input.seed, label: input.label, ...(initial ? { initial } : {}) });
      ctx.heartbeat({ stage: 'store' });
      // Same layers and names in the same order as theta1: the retraining loads it like any snapshot.
      // Its metadata derives from theta1 and the perturbation alone, so perturbing the same weights
      // again (a rerun reusing the training) gives the same object, and the retraining is reused too.
      const bytes = snapshotToArrow({
        runId: theta1.runId,
        epoch: theta1.epoch,
        step: theta1.step,
        kind: 'weights',
        attrs: { ...(theta1.attrs ?? {}), perturbation: input.label, source: input.snapshot.sha256 },
        tensors: outcome.tensors,
      });
      const stored = await putContentAddressed(deps.store, TENSOR_PREFIX, bytes, '.arrow', { signal });
      const perturbed: SnapshotRef = { ...stored, epoch: theta1.epoch, step: theta1.step };
      await recordLineage(
        deps.store,
        input,
        perturbed,
        'perturbed-snapshot',
        reinit ? [input.snapshot, input.initial] : [input.snapshot],
        { label: input.label, perturbation: input.perturbation, seed: input.seed, changed: outcome.changed, layers: outcome.layers },
        signal,
      );
      return { perturbed, changed: outcome.changed };
    } catch (err) {
      throw classify(err);
    }
  };
}

/** The parameters of a snapshot (running statistics left out). */
const parameters = (s: DecodedSnapshot): NamedTensor[] => s.tensors.filter(isParameter);

export function createNorms(deps: PerturbDeps) {
  return async function norms(input: NormsInput): Promise<NormsResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    try {
      const p = input.p;
      const pName = formatMinkowskiP(p);
      ctx.heartbeat({ stage: 'load' });
      const theta1 = parameters(await getSnapshot(deps.store, input.original, signal));
      const perturbed = parameters(await getSnapshot(deps.store, input.perturbed, signal));
      const theta2 = parameters(await getSnapshot(deps.store, input.retrained, signal));
      const byLayer = (rows: Array<{ layer: string; norm: number }>) => new Map(rows.map((r) => [r.layer, r.norm]));
      const normsPerturbed = byLayer(layerNorms(perturbed, p));
      const normsTheta2 = byLayer(layerNorms(theta2, p));
      const normsTheta1 = byLayer(layerNorms(theta1, p));
      let distances: ReturnType<typeof layerDistances>;
      try {
        // layerDistances checks that the three hold the same tensors; its rows set the layer order.
        layerDistances(theta1, perturbed, p);
        distances = layerDistances(theta1, theta2, p);
      } catch (err) {
        // Snapshots of different models: no retry makes them comparable.
        throw failForGood('InvalidExperiment', `${input.runId} ${input.label}: expected the original, perturbed and retrained weights of one model; ${(err as Error).message}`, err);
      }
      const rows: NormsRow[] = distances.map((d) => {
        const t1 = normsTheta1.get(d.layer)!;
        return {
          layer: d.layer,
          depth: d.depth,
          params: d.params,
          theta1: t1,
          perturbed: normsPerturbed.get(d.layer)!,
          theta2: normsTheta2.get(d.layer)!,
          distance: d.distance,
          relative: d.distance / t1,
        };
      });
      const bytes = recordsToArrow(NORMS_TABLE, rows, { runId: input.runId, label: input.label, p: pName });
      const table = await putContentAddressed(deps.store, TABLE_PREFIX, bytes, '.arrow', { signal });
      await recordLineage(deps.store, input, table, 'perturbation-norms', [input.original, input.perturbed, input.retrained], { label: input.label, p: pName }, signal);
      const model = rows.find((r) => r.layer === MODEL_LAYER)!;
      return {
        table,
        label: input.label,
        model: { theta1: model.theta1, perturbed: model.perturbed, theta2: model.theta2, distance: model.distance, relative: model.relative },
      };
    } catch (err) {
      throw classify(err);
    }
  };
}
