/**
 * The `distance` activity: per-layer Minkowski distances of every snapshot of a run to the initial
 * weights and to the previous snapshot, for each requested p, stored as one Arrow table (version 2:
 * with the per-parameter mean distance, the relative change and the share of parameters changed
 * beyond `input.changed`, all as ml/metrics/change.ts defines them).
 *
 * Loads one snapshot at a time (keeping the initial and the previous), so memory stays at three models.
 */
import { Context } from '@temporalio/activity';
import { distanceTableToArrow, type DistanceRow } from '../artifacts/table.js';
import { snapshotFromArrow, type NamedTensor } from '../artifacts/snapshot.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import { layerChanges, layerShareChanged, type ChangeTolerance } from '../ml/metrics/change.js';
import { formatMinkowskiP } from '../ml/metrics/minkowski.js';
import { classify, failForGood } from './errors.js';
import { TABLE_PREFIX } from './keys.js';
import { recordLineage } from './lineage.js';
import type { DistanceInput, DistanceResult } from './types.js';

export interface DistanceDeps {
  store: ArtifactStore;
}

/** Exact comparison: any change at all, down to one float32 ulp, counts. */
const EXACT: ChangeTolerance = { atol: 0, rtol: 0 };

export function createDistance(deps: DistanceDeps) {
  return async function distance(input: DistanceInput): Promise<DistanceResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    try {
      const snapshots = [...input.snapshots].sort((a, b) => a.epoch - b.epoch);
      if (snapshots.length === 0) throw failForGood('InvalidExperiment', `${input.runId}: no snapshots to compare`);
      const tolerance = input.changed ?? EXACT;
      for (const key of ['atol', 'rtol'] as const) {
        const v = tolerance[key];
        if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
          throw failForGood('InvalidExperiment', `${input.runId}: expected changed.${key} to be a finite number >= 0; found ${String(v)}`);
        }
      }
      const rows: DistanceRow[] = [];
      let init: { epoch: number; tensors: NamedTensor[] } | undefined;
      let prev: { epoch: number; tensors: NamedTensor[] } | undefined;
      for (const [i, ref] of snapshots.entries()) {
        ctx.heartbeat({ snapshot: i, snapshots: snapshots.length });
        const bytes = await deps.store.get(ref.key, { sha256: ref.sha256, signal });
        const current = { epoch: ref.epoch, tensors: snapshotFromArrow(bytes).tensors };
        init ??= current;
        // Epoch 0 against itself is kept as the zero baseline of the "init" series; "previous" starts at epoch 1.
        const against = prev ? ([['init', init], ['previous', prev]] as const) : ([['init', init]] as const);
        // The share changed does not depend on p: one pass per reference, shared by every p's rows.
        const shares = against.map(([, reference]) => new Map(layerShareChanged(reference.tensors, current.tensors, tolerance).map((s) => [s.layer, s.fraction])));
        for (const p of input.p) {
          const pName = formatMinkowskiP(p);
          for (const [k, [kind, reference]] of against.entries()) {
            for (const d of layerChanges(reference.tensors, current.tensors, p)) {
              rows.push({
                runId: input.runId,
                epoch: current.epoch,
                against: kind,
                referenceEpoch: reference.epoch,
                p: pName,
                layer: d.layer,
                depth: d.depth,
                params: d.params,
                distance: d.distance,
                meanDistance: d.meanDistance,
                relative: d.relative,
                changed: shares[k]!.get(d.layer)!,
              });
            }
          }
        }
        prev = current;
      }
      const table = await putContentAddressed(deps.store, TABLE_PREFIX, distanceTableToArrow(rows, { runId: input.runId }), '.arrow', { signal });
      await recordLineage(deps.store, input, table, 'distance-table', snapshots, { p: input.p.map(String), changed: tolerance }, signal);
      return { table, rows: rows.length };
    } catch (err) {
      throw classify(err);
    }
  };
}
