/** Comparing two trainings' weights, epoch by epoch, whatever run ids their snapshots carry. */
import assert from 'node:assert/strict';
import { snapshotFromArrow } from '../../artifacts/snapshot.js';
import type { ArtifactStore } from '../../artifacts/store.js';
import type { TrainResult } from '../../activities/types.js';

/** Every snapshot of `a` holds the weights of the same epoch's snapshot of `b`, bit for bit. */
export async function assertSameWeights(store: ArtifactStore, a: TrainResult, b: TrainResult): Promise<void> {
  assert.deepEqual(a.snapshots.map((s) => s.epoch), b.snapshots.map((s) => s.epoch));
  for (const [i, ref] of a.snapshots.entries()) {
    const x = snapshotFromArrow(await store.get(ref.key, { sha256: ref.sha256 }));
    const y = snapshotFromArrow(await store.get(b.snapshots[i]!.key, { sha256: b.snapshots[i]!.sha256 }));
    assert.equal(x.epoch, y.epoch);
    assert.deepEqual(
      x.tensors.map((t) => `${t.layer}/${t.name}:${t.sha256}`),
      y.tensors.map((t) => `${t.layer}/${t.name}:${t.sha256}`),
      `${a.runId} epoch ${x.epoch}: weights differ from the uninterrupted run`,
    );
  }
}
