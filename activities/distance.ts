/**
 * The `distance` activity: per-layer Minkowski distances of every snapshot of a run to the initial
 * weights and to the previous snapshot, for each requested p, stored as one Arrow table.
 *
 * Loads one snapshot at a time (keeping the initial and the previous), so memory stays at three models.
 */
import { Context } from '@temporalio/activity';
import { distanceTableToArrow, type DistanceRow } from '../artifacts/table.js';
import { snapshotFromArrow, type NamedTensor } from '../artifacts/snapshot.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import { formatMinkowskiP, layerDistances } from '../ml/metrics/minkowski.js';
import { classify, failForGood } from './errors.js';
import { TABLE_PREFIX } from './keys.js';
import { recordLineage } from './lineage.js';
import type { DistanceInput, DistanceResult } from './types.js';

export interface DistanceDeps {
  store: ArtifactStore;
}

export function createDistance(deps: DistanceDeps) {
  return async function distance(input: DistanceInput): Promise<DistanceResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    try {
      const snapshots = [...input.snapshots].sort((a, b) => a.epoch - b.epoch);
      if (snapshots.length === 0) throw failForGood('InvalidExperiment', `${input.runId}: no snapshots to compare`);
      const rows: DistanceRow[] = [];
      let init: { epoch: number; tensors: NamedTensor[] } | undefined;
      let prev: { epoch: number; tensors: NamedTensor[] } | undefined;
      for (const [i, ref] of snapshots.entries()) {
        ctx.heartbeat({ snapshot: i, snapshots: snapshots.length });
        const bytes = await deps.store.get(ref.key, { sha256: ref.sha256, signal });
        const current = { epoch: ref.epoch, tensors: snapshotFromArrow(bytes).tensors };
        init ??= current;
        for (const p of input.p) {
          const pName = formatMinkowskiP(p);
          // Epoch 0 against itself is kept as the zero baseline of the "init" series; "previous" starts at epoch 1.
          const against = prev ? ([['init', init], ['previous', prev]] as const) : ([['init', init]] as const);
          for (const [kind, reference] of against) {
            for (const d of layerDistances(current.tensors, reference.tensors, p)) {
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
              });
            }
          }
        }
        prev = current;
      }
      const table = await putContentAddressed(deps.store, TABLE_PREFIX, distanceTableToArrow(rows, { runId: input.runId }), '.arrow', { signal });
      await recordLineage(deps.store, input, table, 'distance-table', snapshots, { p: input.p.map(String) }, signal);
      return { table, rows: rows.length };
    } catch (err) {
      throw classify(err);
    }
  };
}
