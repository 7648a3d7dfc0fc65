/**
 * The `distance` activity: per-layer Minkowski distances of every snapshot of a run to the initial
 * weights, to the previous snapshot and to any named reference snapshots (`ref:<label>`), for each
 * requested p, stored as one Arrow table (version 2:
 * with the per-parameter mean distance, the relative change and the share of parameters changed
 * beyond `input.changed`, all as ml/metrics/change.ts defines them).
 *
 * Parameters only, as torch's `model.parameters()`: batch-norm running statistics are state, not weights
 * (a running variance moves with the data, not with learning), so they are left out of every measure.
 *
 * Loads one snapshot at a time (keeping the initial, the previous and the references), so memory stays
 * at three models plus the references.
 */
import { activityInfo, Context } from '@temporalio/activity';
import type { ObjectRef } from '../artifacts/refs.js';
import { distanceTableToArrow, type DistanceRow } from '../artifacts/table.js';
import { getSnapshot, type NamedTensor } from '../artifacts/snapshot.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import { layerChanges, layerShareChanged, type ChangeTolerance } from '../ml/metrics/change.js';
import { formatMinkowskiP } from '../ml/metrics/minkowski.js';
import { isParameter, weightLayerParameters } from '../ml/train/select.js';
import { classify, failForGood } from './errors.js';
import { getJson } from './json.js';
import { checkpointKey, TABLE_PREFIX } from './keys.js';
import { recordLineage } from './lineage.js';
import type { Checkpoint, DistanceInput, DistanceResult } from './types.js';

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
      const layers = input.layers ?? 'all';
      if (layers !== 'all' && layers !== 'weights') throw failForGood('InvalidExperiment', `${input.runId}: expected analyses.distance.layers "all" or "weights"; found ${String(layers)}`);
      const measured = (tensors: NamedTensor[]) => (layers === 'weights' ? weightLayerParameters(tensors) : tensors.filter(isParameter));
      // Named references, resolved and loaded once: a stored snapshot by key, or a run's checkpoint.
      const named: Array<{ label: string; ref: ObjectRef; epoch: number; tensors: NamedTensor[] }> = [];
      for (const r of input.references ?? []) {
        let ref: ObjectRef | undefined;
        if (r.key !== undefined) {
          ref = await deps.store.head(r.key, { signal });
          if (!ref) throw failForGood('InvalidExperiment', `analyses.distance.references ${r.label}: expected a stored snapshot, found no object at "${r.key}"`);
          if (r.sha256 && ref.sha256 !== r.sha256) {
            throw failForGood('InvalidExperiment', `analyses.distance.references ${r.label}: expected sha256 ${r.sha256}, the object at "${r.key}" has ${ref.sha256}`);
          }
        } else {
          const key = checkpointKey(r.run!, r.epoch!);
          if (!(await deps.store.head(key, { signal }))) {
            throw failForGood('InvalidExperiment', `analyses.distance.references ${r.label}: expected a checkpoint of run "${r.run}" at epoch ${r.epoch}, found no object at "${key}"`);
          }
          ref = (await getJson<Checkpoint>(deps.store, key, { signal })).weights;
        }
        const snap = await getSnapshot(deps.store, ref, signal);
        named.push({ label: r.label, ref, epoch: snap.epoch, tensors: measured(snap.tensors) });
      }
      const rows: DistanceRow[] = [];
      let init: { epoch: number; tensors: NamedTensor[] } | undefined;
      let prev: { epoch: number; tensors: NamedTensor[] } | undefined;
      for (const [i, ref] of snapshots.entries()) {
        if (!activityInfo().isLocal) ctx.heartbeat({ snapshot: i, snapshots: snapshots.length });
        const current = { epoch: ref.epoch, tensors: measured((await getSnapshot(deps.store, ref, signal)).tensors) };
        init ??= current;
        // Epoch 0 against itself is kept as the zero baseline of the "init" series; "previous" starts at epoch 1.
        const against: Array<readonly [DistanceRow['against'], { epoch: number; tensors: NamedTensor[] }]> = [
          ['init', init],
          ...(prev ? [['previous', prev] as const] : []),
          ...named.map((n) => [`ref:${n.label}`, n] as const),
        ];
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
      await recordLineage(deps.store, input, table, 'distance-table', [...snapshots, ...named.map((n) => n.ref)], { p: input.p.map(String), changed: tolerance, references: named.map((n) => n.label), layers }, signal);
      return { table, rows: rows.length };
    } catch (err) {
      throw classify(err);
    }
  };
}
