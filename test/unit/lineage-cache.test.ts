/**
 * The lineage cache (cli/lineage.ts `loadManifests`), on a real local store: a query after the first
 * reads only the manifests the cache lacks, and answers as a query without the cache does; keys gone
 * from the store leave the index; `refresh` and an unreadable cache read everything again. A query that
 * read many manifests one by one stores a shared index, which another machine's first query reads
 * instead of the manifests it holds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../artifacts/hash.js';
import { LocalStore } from '../../artifacts/local.js';
import { manifestKey, MANIFEST_FORMAT_VERSION, recordManifest, type ArtifactManifest } from '../../artifacts/manifest.js';
import type { ObjectRef } from '../../artifacts/refs.js';
import type { GetOptions } from '../../artifacts/store.js';
import { formatLineage, lineageCacheFile, lineageOf, loadManifests, type LoadManifestsOptions } from '../../cli/lineage.js';
import { tempDir } from '../support/fixtures.js';

const ref = (key: string): ObjectRef => ({ key, sha256: sha256Hex(new TextEncoder().encode(key)), bytes: key.length });

function manifest(artifact: ObjectRef, kind: string, inputs: ObjectRef[], runId = 'e/r0'): ArtifactManifest {
  return {
    formatVersion: MANIFEST_FORMAT_VERSION,
    artifact,
    kind,
    producer: { experimentId: runId.split('/')[0]!, runId, workflowId: 'w', workflowRunId: 'x', activity: kind, attempt: 1, worker: '1@test' },
    inputs,
    attrs: { note: 'not kept by the cache' },
    createdAt: '2026-11-24T00:00:00.000Z',
  };
}

/** A local store that counts its reads of manifests. */
class CountingStore extends LocalStore {
  reads = 0;
  override async get(key: string, opts?: GetOptions): Promise<Uint8Array> {
    if (key.startsWith('manifests/')) this.reads++;
    return super.get(key, opts);
  }
}

async function setup() {
  const dir = await tempDir();
  const store = new CountingStore(join(dir, 'store'));
  const data = ref('datasets/train-images');
  const snapshots = [ref('tensors/s0.arrow'), ref('tensors/s1.arrow')];
  await recordManifest(store, manifest(data, 'dataset-file', []));
  for (const s of snapshots) await recordManifest(store, manifest(s, 'snapshot', [data]));
  const cacheFile = lineageCacheFile(join(dir, 'state'), store);
  const load = async (opts: Omit<LoadManifestsOptions, 'cacheFile'> = {}) => {
    store.reads = 0;
    const loaded = await loadManifests(store, { cacheFile, ...opts });
    return { ...loaded, storeReads: store.reads };
  };
  return { dir, store, data, snapshots, cacheFile, load };
}

test('a second query reads only the manifests stored since, and answers as an uncached query does', async () => {
  const { store, snapshots, cacheFile, load } = await setup();
  const first = await load();
  assert.deepEqual([first.read, first.cached, first.storeReads], [3, 0, 3]);
  const cache = JSON.parse(await readFile(cacheFile, 'utf8')) as { store: string; manifests: Record<string, unknown> };
  assert.equal(cache.store, store.location);
  assert.equal(Object.keys(cache.manifests).length, 3);
  assert.doesNotMatch(JSON.stringify(cache), /not kept by the cache/, 'the cache keeps what lineage shows, not whole manifests');

  const again = await load();
  assert.deepEqual([again.read, again.cached, again.storeReads], [0, 3, 0]);

  // A distance table made from both snapshots, stored after the first query.
  const table = ref('tables/t.arrow');
  await recordManifest(store, manifest(table, 'distance-table', snapshots, 'e2/r0'));
  const later = await load();
  assert.deepEqual([later.read, later.cached, later.storeReads], [1, 3, 1]);
  const uncached = await loadManifests(store);
  for (const s of snapshots) {
    const withCache = lineageOf(later.index, s.sha256)!;
    assert.deepEqual(withCache, lineageOf(uncached.index, s.sha256));
    assert.deepEqual(withCache.downstream.map((n) => [n.key, n.kind, n.producer?.runId]), [[table.key, 'distance-table', 'e2/r0']]);
  }
});

test('a manifest gone from the store leaves the index and the cache', async () => {
  const { store, snapshots, data, cacheFile, load } = await setup();
  await load();
  await store.delete(manifestKey(snapshots[1]!.sha256));
  const after = await load();
  assert.deepEqual([after.read, after.cached], [0, 2]);
  assert.equal(after.index.bySha.has(snapshots[1]!.sha256), false);
  assert.deepEqual(lineageOf(after.index, data.sha256)!.downstream.map((n) => n.key), [snapshots[0]!.key]);
  const cache = JSON.parse(await readFile(cacheFile, 'utf8')) as { manifests: Record<string, unknown> };
  assert.deepEqual(Object.keys(cache.manifests), [manifestKey(data.sha256), manifestKey(snapshots[0]!.sha256)].sort());
});

test('refresh, an unreadable cache and another store\'s cache all read every manifest again', async () => {
  const { dir, cacheFile, load } = await setup();
  await load();
  assert.equal((await load({ refresh: true })).storeReads, 3);
  assert.equal((await load()).storeReads, 0, 'refresh rewrote the cache');

  await writeFile(cacheFile, '{"formatVersion": 1, "manif');
  assert.equal((await load()).storeReads, 3);
  assert.equal((await load()).storeReads, 0);

  const other = new LocalStore(join(dir, 'other-store'));
  assert.notEqual(lineageCacheFile(join(dir, 'state'), other), cacheFile, 'each store has a cache file of its own');
  // Another store's cache copied over this one's is not taken for it.
  const otherCache = JSON.parse(await readFile(cacheFile, 'utf8')) as { store: string };
  await writeFile(cacheFile, JSON.stringify({ ...otherCache, store: other.location }));
  assert.equal((await load()).storeReads, 3);
  await rm(cacheFile);
  assert.equal((await load()).storeReads, 3);
});

test('a cache that cannot be written leaves the query answered', async () => {
  const { dir, store, data } = await setup();
  // The cache's folder is a file: nothing can be written under it.
  await writeFile(join(dir, 'blocked'), '');
  const loaded = await loadManifests(store, { cacheFile: join(dir, 'blocked', 'cache', 'x.json') });
  assert.equal(loaded.read, 3);
  assert.equal(lineageOf(loaded.index, data.sha256)!.downstream.length, 2);
});

/** A query as on another machine: a cache file of its own, shared indexes from 2 manifests on. */
async function elsewhere(dir: string, store: CountingStore, machine: string, opts: Omit<LoadManifestsOptions, 'cacheFile'> = {}) {
  store.reads = 0;
  const loaded = await loadManifests(store, { cacheFile: lineageCacheFile(join(dir, machine), store), sharedIndexMin: 2, ...opts });
  return { ...loaded, storeReads: store.reads };
}

test("another machine's first query reads the shared index, then only the manifests stored since", async () => {
  const { dir, store, snapshots } = await setup();
  assert.equal((await elsewhere(dir, store, 'below', { sharedIndexMin: 4 })).indexWritten, undefined, 'below the threshold nothing is shared');
  assert.deepEqual(await store.list('lineage/'), []);

  const a = await elsewhere(dir, store, 'a');
  assert.deepEqual([a.storeReads, a.fromIndex, a.indexRead], [3, 0, undefined]);
  assert.match(a.indexWritten ?? '', /^lineage\/index\/000000003-\d{8}T\d{6}Z-[0-9a-f]{64}\.json\.gz$/);
  assert.deepEqual(await store.list('lineage/'), [a.indexWritten]);

  const b = await elsewhere(dir, store, 'b');
  assert.deepEqual([b.storeReads, b.fromIndex, b.indexRead, b.indexWritten], [0, 3, a.indexWritten, undefined]);
  const uncached = await loadManifests(store);
  for (const s of snapshots) assert.deepEqual(lineageOf(b.index, s.sha256), lineageOf(uncached.index, s.sha256));
  assert.equal((await elsewhere(dir, store, 'b')).storeReads, 0, 'its own cache answers next');

  // Two tables stored after the index: read one by one, and shared with the rest in a larger index.
  const tables = [ref('tables/t1.arrow'), ref('tables/t2.arrow')];
  for (const t of tables) await recordManifest(store, manifest(t, 'distance-table', snapshots, 'e2/r0'));
  const c = await elsewhere(dir, store, 'c');
  assert.deepEqual([c.storeReads, c.fromIndex, c.indexRead], [2, 3, a.indexWritten]);
  assert.match(c.indexWritten ?? '', /^lineage\/index\/000000005-/);
  assert.deepEqual(await store.list('lineage/'), [c.indexWritten], 'the larger index replaces the smaller one');
  assert.deepEqual(lineageOf(c.index, snapshots[0]!.sha256)!.downstream.map((n) => n.key), tables.map((t) => t.key));
  const d = await elsewhere(dir, store, 'd');
  assert.deepEqual([d.storeReads, d.fromIndex, d.indexRead], [0, 5, c.indexWritten]);
  // Machine b takes the two new manifests from the larger index...
  const bAgain = await elsewhere(dir, store, 'b');
  assert.deepEqual([bAgain.storeReads, bAgain.fromIndex, bAgain.cached, bAgain.indexRead], [0, 2, 3, c.indexWritten]);
  // ...and, having taken it in, reads what is stored after it one by one.
  for (const t of [ref('tables/t3.arrow'), ref('tables/t4.arrow')]) await recordManifest(store, manifest(t, 'distance-table', snapshots, 'e3/r0'));
  const bLater = await elsewhere(dir, store, 'b');
  assert.deepEqual([bLater.storeReads, bLater.fromIndex, bLater.cached, bLater.indexRead], [2, 0, 5, undefined]);
});

test('a shared index that does not verify is passed over, and refresh reads none', async () => {
  const { dir, store, data } = await setup();
  const { indexWritten } = await elsewhere(dir, store, 'a');
  const path = store.locate(indexWritten!);
  const bytes = await readFile(path);
  bytes[bytes.length >> 1] ^= 0x01;
  await rm(path);
  await writeFile(path, bytes);
  const b = await elsewhere(dir, store, 'b');
  assert.deepEqual([b.storeReads, b.fromIndex, b.indexRead], [3, 0, undefined]);
  assert.deepEqual(lineageOf(b.index, data.sha256)!.artifact.kind, 'dataset-file');

  const refreshed = await elsewhere(dir, store, 'c', { refresh: true });
  assert.deepEqual([refreshed.storeReads, refreshed.fromIndex, refreshed.indexRead], [3, 0, undefined]);
});

test("an experiment's own artifacts (no run) are shown as made in the experiment", async () => {
  const { store, data } = await setup();
  const report = ref('experiments/e/report.html');
  const m = manifest(report, 'report', [data]);
  await recordManifest(store, { ...m, producer: { ...m.producer, runId: '', activity: 'report' } });
  const text = formatLineage(lineageOf((await loadManifests(store)).index, data.sha256)!);
  assert.match(text, /experiments\/e\/report\.html \(report, sha256 [0-9a-f]{12} by report in e\)/);
});
