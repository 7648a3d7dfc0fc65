/**
 * Decoded datasets kept on disk between worker processes: arrays come back exactly as written, a
 * damaged or cut file is removed and decoded again, the folder stays under its allowance (least recently
 * used first), and the train activity's loader writes the file a later process reads instead of decoding.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { sha256Hex } from '../../artifacts/hash.js';
import { LocalStore } from '../../artifacts/local.js';
import { decodedCacheName, readDecoded, writeDecoded, type DecodedDataset } from '../../activities/decoded-cache.js';
import { contentKey, DATASET_PREFIX } from '../../activities/keys.js';
import type { DownloadResult } from '../../activities/types.js';
import { decodeDataset, getDataset, type DatasetDef, type FileRole } from '../../ml/data/datasets.js';
import { mnistFiles, pinned } from '../support/datasets.js';
import { tempDir } from '../support/fixtures.js';

const bytesAndFloats = (): DecodedDataset => ({
  train: { pixels: Uint8Array.from({ length: 5 * 3 }, (_, i) => (i * 37) % 256), y: Int32Array.from([0, 1, 2, 3, 4]), n: 5 },
  test: { x: Float32Array.from({ length: 3 * 3 }, (_, i) => i / 7 - 0.5), y: Int32Array.from([9, 8, 7]), n: 3 },
});

test('arrays come back exactly as written, bytes and floats, with the source in the header', async () => {
  const cache = { dir: join(await tempDir(), 'decoded'), maxBytes: 1 << 20 };
  const data = bytesAndFloats();
  const name = decodedCacheName({ dataset: 'toy' });
  assert.equal(await readDecoded(cache, name), undefined, 'nothing is kept yet');
  assert.equal(await writeDecoded(cache, name, { dataset: 'toy' }, data), true);
  const back = await readDecoded(cache, name);
  assert.ok(back);
  assert.deepEqual(back, data);
  assert.ok(back.test.y instanceof Int32Array && 'x' in back.test && back.test.x instanceof Float32Array);
  const text = new TextDecoder().decode(await readFile(join(cache.dir, name)));
  assert.match(text, /"source":\{"dataset":"toy"\}/);
});

test('a damaged or cut file is removed and reported, so the dataset is decoded again', async () => {
  const cache = { dir: join(await tempDir(), 'decoded'), maxBytes: 1 << 20 };
  const name = decodedCacheName('toy');
  const path = join(cache.dir, name);
  for (const damage of [
    (b: Uint8Array) => {
      b[b.length - 20]! ^= 1;
      return b;
    },
    (b: Uint8Array) => b.subarray(0, b.length - 8),
    (b: Uint8Array) => b.subarray(0, 10),
  ]) {
    await writeDecoded(cache, name, 'toy', bytesAndFloats());
    await writeFile(path, damage(new Uint8Array(await readFile(path))));
    const reports: string[] = [];
    assert.equal(await readDecoded(cache, name, (m) => reports.push(m)), undefined);
    assert.equal(reports.length, 1);
    assert.ok(reports[0]!.startsWith(path), reports[0]);
    await assert.rejects(stat(path), { code: 'ENOENT' });
  }
});

test('the folder keeps to its allowance: the files used least recently go, and one too large is not kept', async () => {
  const probe = { dir: join(await tempDir(), 'probe'), maxBytes: 1 << 20 };
  await writeDecoded(probe, 'probe.decoded', 'a', bytesAndFloats());
  const size = (await stat(join(probe.dir, 'probe.decoded'))).size;

  const cache = { dir: join(await tempDir(), 'decoded'), maxBytes: 2 * size + 10 };
  const [a, b, c] = ['a', 'b', 'c'].map((s) => decodedCacheName(s)) as [string, string, string];
  await writeDecoded(cache, a, 'a', bytesAndFloats());
  await writeDecoded(cache, b, 'b', bytesAndFloats());
  // a was written first but read last: b is the one used least recently.
  const past = new Date(Date.now() - 60_000);
  await utimes(join(cache.dir, a), past, past);
  await utimes(join(cache.dir, b), past, new Date(past.getTime() - 1000));
  assert.ok(await readDecoded(cache, a));
  await writeDecoded(cache, c, 'c', bytesAndFloats());
  assert.deepEqual((await readdir(cache.dir)).sort(), [a, c].sort());

  const small = { dir: join(await tempDir(), 'small'), maxBytes: size - 1 };
  assert.equal(await writeDecoded(small, a, 'a', bytesAndFloats()), false);
  assert.equal(await readDecoded(small, a), undefined);
});

/** An MNIST-shaped dataset of small files, stored as the download activity stores them. */
async function storedMnist(store: LocalStore, files: Record<string, Uint8Array>): Promise<{ registry: Map<string, DatasetDef>; result: DownloadResult }> {
  const def = pinned(getDataset('mnist'), files);
  const refs = [];
  for (const f of def.files) {
    const bytes = files[f.name]!;
    const ref = await store.put(contentKey(DATASET_PREFIX, sha256Hex(bytes)), bytes);
    refs.push({ role: f.role, name: f.name, key: ref.key, sha256: ref.sha256, bytes: ref.bytes, source: 'test' });
  }
  return { registry: new Map([['mnist', def]]), result: { dataset: 'mnist', files: refs, fetched: 0, cached: 4 } };
}

test('the loader writes what it decoded, and a new process trains on the kept arrays, not the files', async () => {
  const dir = await tempDir();
  const store = new LocalStore(join(dir, 'store'));
  const files = mnistFiles(30, 10);
  const { registry, result } = await storedMnist(store, files);
  const cache = { dir: join(dir, 'decoded'), maxBytes: 1 << 30 };
  const spec = { name: 'mnist', validationSplit: 0 };

  // A fresh instance of the module: its in-memory cache is empty, as in a worker that just started.
  const fresh = async () => (await import(`../../activities/data.js?instance=${Math.random()}`)) as typeof import('../../activities/data.js');
  const first = await (await fresh()).loadRunData(store, spec, result, { datasets: registry, decodedCache: cache });
  const kept = await readdir(cache.dir);
  assert.equal(kept.length, 1, `one decoded dataset kept: ${kept.join(', ')}`);
  const raw = Object.fromEntries(registry.get('mnist')!.files.map((f) => [f.role, new Uint8Array(gunzipSync(files[f.name]!))])) as Record<FileRole, Uint8Array>;
  assert.deepEqual(await readDecoded(cache, kept[0]!), decodeDataset(registry.get('mnist')!, raw), 'the kept arrays are the decoder\'s');

  // Change one pixel in the kept file (and its checksum): a new process must train on that pixel.
  const path = join(cache.dir, kept[0]!);
  const altered = (await readDecoded(cache, kept[0]!))!;
  assert.ok('pixels' in altered.test);
  altered.test.pixels[0] = 255;
  const source = JSON.parse(new TextDecoder().decode(await readFile(path)).match(/"source":(\{.*?\}),"train"/)![1]!) as unknown;
  await writeDecoded(cache, kept[0]!, source, altered);
  const second = await (await fresh()).loadRunData(store, spec, result, { datasets: registry, decodedCache: cache });
  assert.equal(first.test.x[0], 0);
  assert.equal(second.test.x[0], 1, 'the second process read the kept arrays');
  assert.deepEqual(second.train.x, first.train.x);

  // Without a cache the files are decoded, whatever is kept.
  const third = await (await fresh()).loadRunData(store, spec, result, { datasets: registry });
  assert.equal(third.test.x[0], 0);
});

test('a file another process is writing is left to it; one left by a process that stopped is replaced', async () => {
  const cache = { dir: join(await tempDir(), 'decoded'), maxBytes: 1 << 20 };
  const name = decodedCacheName('toy');
  await writeDecoded(cache, 'other.decoded', 'other', bytesAndFloats());
  const writing = join(cache.dir, `${name}.writing`);
  await writeFile(writing, 'partial');
  assert.equal(await writeDecoded(cache, name, 'toy', bytesAndFloats()), false);
  assert.equal(await readFile(writing, 'utf8'), 'partial', "the other process's file is untouched");
  assert.equal(await readDecoded(cache, name), undefined);

  const stopped = new Date(Date.now() - 11 * 60_000);
  await utimes(writing, stopped, stopped);
  assert.equal(await writeDecoded(cache, name, 'toy', bytesAndFloats()), true);
  assert.deepEqual(await readDecoded(cache, name), bytesAndFloats());
  assert.deepEqual((await readdir(cache.dir)).sort(), ['other.decoded', name].sort());
});
