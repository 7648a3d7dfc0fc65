/**
 * The dataset registry, decoding of IDX files into splits, and seeded subsets and splits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DATASETS, FILE_ROLES, decodeDataset, getDataset, type FileRole } from '../../ml/data/datasets.js';
import { seededSubset, take, trainValSplit } from '../../ml/data/split.js';
import { pixelsOf } from '../support/datasets.js';

function idx(type: number, dims: number[], body: ArrayLike<number>): Uint8Array {
  const header = [0, 0, type, dims.length];
  for (const d of dims) header.push((d >>> 24) & 0xff, (d >>> 16) & 0xff, (d >>> 8) & 0xff, d & 0xff);
  const out = new Uint8Array(header.length + body.length);
  out.set(header);
  out.set(Array.from(body), header.length);
  return out;
}

/** A fashion-mnist-shaped dataset with n train and m test images whose pixels encode their index. */
function fakeRaw(n: number, m: number): Record<FileRole, Uint8Array> {
  const images = (k: number) => idx(0x08, [k, 28, 28], Array.from({ length: k * 784 }, (_, i) => Math.floor(i / 784) * 50));
  const labels = (k: number) => idx(0x08, [k], Array.from({ length: k }, (_, i) => (i * 3) % 10));
  return { trainImages: images(n), trainLabels: labels(n), testImages: images(m), testLabels: labels(m) };
}

test('fashion-mnist is registered with four sha256-pinned files and the Debian mirror after the canonical source', () => {
  const def = getDataset('fashion-mnist');
  assert.equal(DATASETS.get('fashion-mnist'), def);
  assert.deepEqual(def.inputShape, [28, 28, 1]);
  assert.equal(def.numClasses, 10);
  assert.equal(def.classNames?.length, 10);
  assert.deepEqual(def.files.map((f) => f.role).sort(), [...FILE_ROLES].sort());
  for (const f of def.files) assert.match(f.sha256 ?? '', /^[0-9a-f]{64}$/);
  assert.match(def.sources[0]!, /^https?:\/\//);
  assert.equal(def.sources.at(-1), 'file:///usr/share/datasets/fashion-mnist/');
  assert.throws(() => getDataset('cifar-1000'), /unknown dataset "cifar-1000": expected one of fashion-mnist/);
});

test('decodeDataset keeps 8-bit pixels as bytes that take scales to [0, 1], and keeps labels', () => {
  const { train, test: t } = decodeDataset(getDataset('fashion-mnist'), fakeRaw(3, 2));
  assert.equal(train.n, 3);
  assert.equal(t.n, 2);
  assert.equal(pixelsOf(train).length, 3 * 784);
  assert.equal(pixelsOf(train)[784 * 2], 100);
  const x = take(train, [0, 1, 2]).x;
  assert.equal(x.length, 3 * 784);
  assert.equal(x[784 * 2], Math.fround(100 / 255));
  assert.equal(x[0], 0);
  assert.deepEqual([...train.y], [0, 3, 6]);
});

test('decodeDataset names the file when counts or dims disagree', () => {
  const def = getDataset('fashion-mnist');
  const raw = fakeRaw(3, 2);
  assert.throws(
    () => decodeDataset(def, { ...raw, trainLabels: idx(0x08, [2], [1, 2]) }),
    /train-labels-idx1-ubyte\.gz: expected 3 labels .*found 2/,
  );
  assert.throws(
    () => decodeDataset(def, { ...raw, testImages: idx(0x08, [2, 28, 27], new Uint8Array(2 * 28 * 27)) }),
    /t10k-images-idx3-ubyte\.gz: expected dims \[N, 28, 28\], found \[2, 28, 27\]/,
  );
  assert.throws(
    () => decodeDataset(def, { ...raw, testLabels: idx(0x08, [2], [1, 10]) }),
    /t10k-labels-idx1-ubyte\.gz: expected labels in \[0, 10\), found 10/,
  );
  assert.throws(
    () => decodeDataset(def, { ...raw, trainImages: raw.trainImages.subarray(0, 100) }),
    /train-images-idx3-ubyte\.gz: IDX: expected 2352 bytes of data/,
  );
});

test('seededSubset is sorted, distinct, seed-determined', () => {
  const a = seededSubset(1000, 50, 7);
  assert.equal(a.length, 50);
  assert.deepEqual(a, seededSubset(1000, 50, 7));
  assert.notDeepEqual(a, seededSubset(1000, 50, 8));
  for (let i = 1; i < a.length; i++) assert.ok(a[i]! > a[i - 1]!);
  assert.ok(a[0]! >= 0 && a.at(-1)! < 1000);
  assert.throws(() => seededSubset(10, 11, 1), /subset size must be an integer in \[0, 10\], found 11/);
});

test('trainValSplit partitions the indices', () => {
  const { train, val } = trainValSplit(100, 0.2, 3);
  assert.equal(val.length, 20);
  assert.equal(train.length, 80);
  const all = [...train, ...val].sort((x, y) => x - y);
  assert.deepEqual(all, Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual(trainValSplit(100, 0.2, 3).val, val);
  assert.notDeepEqual(trainValSplit(100, 0.2, 4).val, val);
  assert.throws(() => trainValSplit(10, 1, 1), /validation fraction must be in \[0, 1\), found 1/);
});

test('take gathers examples in the order given', () => {
  const { train } = decodeDataset(getDataset('fashion-mnist'), fakeRaw(3, 1));
  const s = take(train, [2, 0]);
  assert.equal(s.n, 2);
  assert.deepEqual([...s.y], [6, 0]);
  assert.equal(s.x[0], Math.fround(100 / 255));
  assert.equal(s.x[784], 0);
  assert.throws(() => take(train, [3]), /index 3 at position 0 is outside the split of 3 examples/);
});
