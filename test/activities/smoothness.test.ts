/**
 * The smoothness activity in a MockActivityEnvironment on a real local store, reading a features file
 * written with the features codec: a row per selected layer with the alpha of ml/metrics/smoothness.ts
 * (larger for features that cluster by label than for unrelated ones, NaN for a diverged layer), the
 * table's metadata and lineage, layer selection, heartbeats that let a retry skip finished layers,
 * cancellation between layers and between the trees of one, and failures that name what was expected.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { SMOOTHNESS_TABLE } from '../../artifacts/analysis-tables.js';
import { featuresToArrow, probeToArrow, type FeaturesLayer } from '../../artifacts/features.js';
import { LocalStore } from '../../artifacts/local.js';
import { readManifest } from '../../artifacts/manifest.js';
import { recordsFromArrow } from '../../artifacts/records.js';
import { snapshotToArrow } from '../../artifacts/snapshot.js';
import { putContentAddressed } from '../../artifacts/store.js';
import { createSmoothness, type SmoothnessHeartbeat } from '../../activities/smoothness.js';
import type { FeaturesResult, SmoothnessInput, SmoothnessResult } from '../../activities/types.js';
import { besovAlpha } from '../../ml/metrics/smoothness.js';
import { Rng } from '../../ml/rng.js';
import { tempDir } from '../support/fixtures.js';
import { activityEnvironment, runIn } from '../support/logs.js';

const N = 200;
let store: LocalStore;
let smoothness: ReturnType<typeof createSmoothness>;
let features: FeaturesResult;
let layers: FeaturesLayer[];
let labels: Float32Array;

function matrix(rng: Rng, cols: number, shift?: (i: number, j: number) => number): FeaturesLayer['features'] {
  return { values: Float32Array.from({ length: N * cols }, (_, k) => rng.normal() + (shift?.(Math.floor(k / cols), k % cols) ?? 0)), rows: N, cols };
}

before(async () => {
  store = new LocalStore(await tempDir());
  smoothness = createSmoothness({ store });
  const rng = new Rng(77);
  labels = Float32Array.from({ length: N }, () => rng.int(4));
  const centres = Float32Array.from({ length: 4 * 24 }, () => 1.5 * rng.normal());
  const diverged = matrix(rng, 6);
  diverged.values[17] = NaN;
  layers = [
    { layer: 'conv2d_1', depth: 0, features: matrix(rng, 16) },
    { layer: 'dense_1', depth: 1, features: matrix(rng, 24, (i, j) => centres[labels[i] * 24 + j]) },
    { layer: 'dense_2', depth: 2, features: diverged },
  ];
  const probeBytes = probeToArrow({ dataset: 'toy', dataSeed: 1, testExamples: 1000, indices: Int32Array.from({ length: N }, (_, i) => 3 * i), labels: Int32Array.from(labels) });
  const probe = await putContentAddressed(store, 'tables', probeBytes, '.arrow');
  const bytes = featuresToArrow({ runId: 'e/r', epoch: 5, step: 50, probe: probe.sha256, pool: 'mean', labels, layers, penultimate: layers[1] });
  const ref = await putContentAddressed(store, 'tensors', bytes, '.arrow');
  features = {
    features: ref,
    probe,
    snapshot: { key: 'tensors/00/none.arrow', sha256: '0'.repeat(64), bytes: 0, epoch: 5, step: 50 },
    examples: N,
    layers: layers.map((l) => ({ layer: l.layer, depth: l.depth, features: l.features.cols })),
    penultimate: 'dense_1',
  };
});

function input(spec: Partial<SmoothnessInput['spec']> = {}, patch: Partial<SmoothnessInput> = {}): SmoothnessInput {
  return { experimentId: 'e', runId: 'e/r', features, spec: { trees: 5, maxFeatures: 'sqrt', ...spec }, seed: 3, ...patch };
}

describe('smoothness activity', () => {
  test('stores a row per layer: the alpha of the pure estimate, larger where features cluster by label, NaN where they diverged', async () => {
    const env = activityEnvironment();
    const beats: SmoothnessHeartbeat[] = [];
    env.on('heartbeat', (d: SmoothnessHeartbeat) => beats.push(structuredClone(d)));
    const result = await runIn(env, smoothness, input());

    assert.deepEqual(result.layers.map((l) => [l.layer, l.depth]), [['conv2d_1', 0], ['dense_1', 1], ['dense_2', 2]]);
    const [unrelated, clustered, diverged] = result.layers.map((l) => l.alpha);
    for (const [i, l] of layers.slice(0, 2).entries()) {
      assert.equal(result.layers[i].alpha, besovAlpha(l.features, labels, { trees: 5, maxFeatures: 'sqrt', seed: 3 }).alpha, l.layer);
    }
    assert.ok(clustered > 1.5 * unrelated, `clustered ${clustered} vs unrelated ${unrelated}`);
    assert.ok(Number.isNaN(diverged));

    const { rows, meta } = recordsFromArrow(SMOOTHNESS_TABLE, await store.get(result.table.key, { sha256: result.table.sha256 }));
    assert.deepEqual(rows.map((r) => [r.layer, r.depth, r.features]), [['conv2d_1', 0, 16], ['dense_1', 1, 24], ['dense_2', 2, 6]]);
    assert.deepEqual(rows.map((r) => r.alpha), result.layers.map((l) => l.alpha));
    assert.equal(meta['runId'], 'e/r');
    assert.equal(meta['trees'], '5');
    assert.equal(meta['probe'], features.probe.sha256);

    const manifest = await readManifest(store, result.table.sha256);
    assert.equal(manifest?.kind, 'smoothness-table');
    assert.deepEqual(manifest?.inputs.map((i) => i.sha256), [features.features.sha256, features.probe.sha256]);

    const done = beats.map((b) => b.done.length);
    assert.deepEqual([...new Set(done)], [0, 1, 2, 3], 'finished layers only accumulate');
    // Before each layer, after each of its 5 trees (the diverged layer grows none), and at the end.
    assert.deepEqual([0, 1, 2, 3].map((k) => done.filter((c) => c === k).length), [6, 6, 1, 1]);
    assert.ok(beats.every((b) => b.layers === 3));
  });

  test('spec.layers selects layers by name or prefix; a pattern naming no layer fails for good', async () => {
    const result = await runIn(activityEnvironment(), smoothness, input({ layers: ['dense*'] }));
    assert.deepEqual(result.layers.map((l) => l.layer), ['dense_1', 'dense_2']);
    const one = await runIn(activityEnvironment(), smoothness, input({ layers: ['conv2d_1'] }));
    assert.deepEqual(one.layers.map((l) => l.layer), ['conv2d_1']);
    await assert.rejects(runIn(activityEnvironment(), smoothness, input({ layers: ['dense_9'] })), (err: ApplicationFailure) => {
      assert.equal(err.type, 'InvalidExperiment');
      assert.equal(err.nonRetryable, true);
      assert.match(err.message, /expected "dense_9" to name one of conv2d_1, dense_1, dense_2; found none/);
      return true;
    });
  });

  test('a cancelled attempt stops between layers; the retry takes finished layers from the heartbeat', async () => {
    const first = activityEnvironment({ attempt: 1 });
    let last: SmoothnessHeartbeat | undefined;
    first.on('heartbeat', (d: SmoothnessHeartbeat) => {
      last = structuredClone(d);
      if (d.done.length === 1) first.cancel();
    });
    await assert.rejects(runIn(first, smoothness, input()), (err: Error) => err.name === 'CancelledFailure');
    assert.deepEqual(last?.done.map((r) => r.layer), ['conv2d_1']);

    // A marked value shows the retry reused the heartbeat's row instead of recomputing it.
    const details: SmoothnessHeartbeat = { ...last!, done: [{ ...last!.done[0], alpha: 0.123 }] };
    const second = activityEnvironment({ attempt: 2, heartbeatDetails: details });
    const resumed: SmoothnessResult = await runIn(second, smoothness, input());
    assert.deepEqual(resumed.layers.map((l) => l.layer), ['conv2d_1', 'dense_1', 'dense_2']);
    assert.equal(resumed.layers[0].alpha, 0.123);
    const fresh = await runIn(activityEnvironment(), smoothness, input());
    assert.equal(resumed.layers[1].alpha, fresh.layers[1].alpha);
  });

  test('a cancellation is seen between the trees of a layer', async () => {
    const env = activityEnvironment();
    let beats = 0;
    env.on('heartbeat', () => {
      if (++beats === 3) env.cancel();
    });
    await assert.rejects(runIn(env, smoothness, input({ trees: 50 })), (err: Error) => err.name === 'CancelledFailure');
    assert.equal(beats, 3, 'no tree is grown after the cancellation');
  });

  test('bad specs and files that are no features file fail for good, naming what was expected', async () => {
    await assert.rejects(runIn(activityEnvironment(), smoothness, input({ trees: 0 })), (err: ApplicationFailure) => {
      assert.equal(err.type, 'InvalidExperiment');
      assert.match(err.message, /trees: expected an integer >= 1; found 0/);
      return true;
    });
    await assert.rejects(runIn(activityEnvironment(), smoothness, input({ maxFeatures: 2 })), (err: ApplicationFailure) => {
      assert.equal(err.type, 'InvalidExperiment');
      assert.match(err.message, /maxFeatures: .*fraction in \(0, 1\]; found 2/);
      return true;
    });
    const weights = snapshotToArrow({ runId: 'e/r', epoch: 0, step: 0, kind: 'weights', tensors: [{ layer: 'dense_1', name: 'kernel', shape: [2], values: new Float32Array(2) }] });
    const notFeatures = await putContentAddressed(store, 'tensors', weights, '.arrow');
    await assert.rejects(runIn(activityEnvironment(), smoothness, input({}, { features: { ...features, features: notFeatures } })), (err: ApplicationFailure) => {
      assert.equal(err.type, 'IntegrityError');
      assert.equal(err.nonRetryable, true);
      assert.match(err.message, /expected paramtrail.kind "features", found "weights"/);
      return true;
    });
  });
});
