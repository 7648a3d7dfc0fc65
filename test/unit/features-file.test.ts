/**
 * The probe-set and features files (artifacts/features.ts): round trips, the penultimate entry shared
 * with a layer or stored on its own, deterministic probe bytes, and refusals named.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tableFromIPC } from 'apache-arrow';
import { featuresFromArrow, featuresToArrow, probeFromArrow, probeToArrow, type FeaturesFileInput } from '../../artifacts/features.js';
import { snapshotFromArrow } from '../../artifacts/snapshot.js';

const m = (rows: number, cols: number, f: (i: number) => number) => ({ values: Float32Array.from({ length: rows * cols }, (_, i) => f(i)), rows, cols });

function file(extra: boolean): FeaturesFileInput {
  const layers = [
    { layer: 'conv1', depth: 0, features: m(3, 2, (i) => i) },
    { layer: 'fc', depth: 1, features: m(3, 4, (i) => -i / 2) },
  ];
  return {
    runId: 'e/r',
    epoch: 5,
    step: 50,
    probe: 'ab'.repeat(32),
    pool: 'mean',
    labels: Float32Array.from([3, 1, 4]),
    layers,
    penultimate: extra ? { layer: 'gap', depth: -1, features: m(3, 2, (i) => 10 + i) } : layers[0]!,
    attrs: { model: 'cnn' },
  };
}

test('features round trip: layers by depth, labels, attributes; the penultimate shared with its layer', () => {
  const input = file(false);
  const bytes = featuresToArrow(input);
  assert.equal(tableFromIPC(bytes).schema.metadata.get('paramtrail.kind'), 'features');
  const back = featuresFromArrow(bytes);
  assert.deepEqual([back.runId, back.epoch, back.step, back.probe, back.pool], ['e/r', 5, 50, input.probe, 'mean']);
  assert.deepEqual(back.labels, input.labels);
  assert.deepEqual(back.layers, input.layers);
  assert.equal(back.penultimate, back.layers[0]);
  assert.deepEqual(back.attrs, { model: 'cnn' });
  // The snapshot codec, which knows only weights and optimizer files, refuses it by kind.
  assert.throws(() => snapshotFromArrow(bytes), /paramtrail.kind.*features/);
});

test('an extra penultimate entry is stored after the layers and read back with depth -1', () => {
  const input = file(true);
  const bytes = featuresToArrow(input);
  const names = tableFromIPC(bytes).getChild('layer')!.toArray();
  assert.deepEqual(names, ['conv1', 'fc', 'gap', '__probe__']);
  const back = featuresFromArrow(bytes);
  assert.deepEqual(back.layers.map((l) => l.layer), ['conv1', 'fc']);
  assert.deepEqual(back.penultimate, input.penultimate);
});

test('features refused by name: wrong rows, order, reserved names, a corrupted value', () => {
  const input = file(false);
  assert.throws(() => featuresToArrow({ ...input, labels: new Float32Array(2) }), /features of conv1: expected 2 rows \(one per probe example\), found 3/);
  assert.throws(() => featuresToArrow({ ...input, layers: [...input.layers].reverse() }), /expected the layers by depth, found fc of depth 1 at position 0/);
  assert.throws(() => featuresToArrow({ ...input, attrs: { probe: 'x' } }), /attribute "probe" is the codec's own/);
  assert.throws(() => featuresToArrow({ ...input, penultimate: { ...input.layers[0]!, features: m(3, 2, () => 0) } }), /holds other features/);
  const bytes = featuresToArrow(input);
  const table = tableFromIPC(bytes);
  // Flip one float32 of conv1's features in place (the reader's columns are views on the bytes): its sha256 no longer matches.
  const child = table.getChild('values')!.data[0]!.children[0]!.values as Float32Array;
  child[1] = 99;
  assert.throws(() => featuresFromArrow(bytes), /integrity check failed for tensor conv1\/features/);
  assert.throws(() => featuresFromArrow(new Uint8Array(16)), /expected paramtrail.kind "features", found none/);
  assert.throws(() => featuresFromArrow(Uint8Array.from([65, 82, 82, 79, 87, 49, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])), /expected an Arrow IPC file/);
});

test('the probe file depends only on the examples: equal inputs give equal bytes', () => {
  const p = { dataset: 'fashion-mnist', dataSeed: 0, testExamples: 10_000, indices: Int32Array.from([2, 7, 9]), labels: Int32Array.from([1, 0, 9]) };
  const a = probeToArrow(p);
  assert.deepEqual(probeToArrow({ ...p, indices: p.indices.slice(), labels: p.labels.slice() }), a);
  assert.deepEqual(probeFromArrow(a), p);
  assert.notDeepEqual(probeToArrow({ ...p, labels: Int32Array.from([1, 0, 8]) }), a);
  assert.throws(() => probeToArrow({ ...p, labels: new Int32Array(2) }), /one label per index; found 3 indices and 2 labels/);
});
