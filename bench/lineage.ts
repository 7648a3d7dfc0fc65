/**
 * What a lineage query costs on the store of a large sweep: `paramtrail lineage` reads the lineage
 * manifests to find what was made from an artifact. Each store (a local folder, and a real S3 server,
 * versitygw, on this machine) is filled with the manifests of `--runs` runs (two snapshots and a
 * distance table each, as a one-epoch run writes them, through `recordManifest`), then queried:
 *
 *   no cache        every manifest read from the store, as every query did before the lineage cache
 *   first query     the same reads, the cache written and a shared index stored (as `lineage` does)
 *   cached          one listing, nothing read
 *   after more      another experiment of `--more` runs stored since: the listing, and its manifests read
 *   other machine   a first query with a cache of its own: the shared index, and the manifests stored
 *                   since it, read
 *
 * Run: npm run bench:lineage [-- --runs 10000 --more 100 --store both|local|s3]
 *
 * Prints seconds, manifests read and the ratio of each to the uncached query, and the cache's and index's sizes.
 * On S3 elsewhere than this machine each read also pays a network round trip, which the cache saves.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sha256Hex } from '../artifacts/hash.js';
import { LocalStore } from '../artifacts/local.js';
import { MANIFEST_FORMAT_VERSION, recordManifest, type ArtifactManifest } from '../artifacts/manifest.js';
import type { ObjectRef } from '../artifacts/refs.js';
import { S3Store } from '../artifacts/s3.js';
import type { ArtifactStore } from '../artifacts/store.js';
import { lineageCacheFile, lineageOf, loadManifests, SHARED_INDEX_MIN } from '../cli/lineage.js';
import { mapLimit } from '../artifacts/concurrency.js';
import { startS3Server } from '../infra/s3server.js';
import { DEFAULT_STATE_DIR } from '../worker/config.js';
import { positiveInt } from './args.js';

function options() {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '10000' },
      more: { type: 'string', default: '100' },
      store: { type: 'string', default: 'both' },
    },
  });
  if (!['both', 'local', 's3'].includes(values.store!)) throw new Error(`--store: expected both, local or s3, found ${JSON.stringify(values.store)}`);
  return { runs: positiveInt('runs', values.runs), more: positiveInt('more', values.more), stores: values.store === 'both' ? ['local', 's3'] : [values.store!] };
}

const ref = (key: string, text: string, bytes: number): ObjectRef => ({ key, sha256: sha256Hex(new TextEncoder().encode(text)), bytes });

const DATASET = ['train-images', 'train-labels', 'test-images', 'test-labels'].map((f) => ref(`datasets/${f}`, f, 1000));

/** The manifests of one run: its two snapshots (made from the dataset) and its distance table (from both). */
function runManifests(experimentId: string, run: number): ArtifactManifest[] {
  const runId = `${experimentId}/mlp--fashion-mnist--s${run}`;
  const manifest = (artifact: ObjectRef, kind: string, inputs: ObjectRef[], attrs: Record<string, unknown>): ArtifactManifest => ({
    formatVersion: MANIFEST_FORMAT_VERSION,
    artifact,
    kind,
    producer: { experimentId, runId, workflowId: `${experimentId}/run/${run}`, workflowRunId: '00000000-0000-0000-0000-000000000000', activity: kind === 'snapshot' ? 'train' : 'distance', attempt: 1, worker: '1@bench' },
    inputs,
    attrs,
    code: { version: '0.1.0', commit: '0'.repeat(40) },
    runtime: { node: process.version },
    createdAt: new Date().toISOString(),
  });
  const training = { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05, momentum: 0 }, snapshotEvery: 1, init: { kernel: 'glorot-uniform', bias: 'zeros' } };
  const snapshots = [0, 1].map((epoch) => ref(`tensors/${runId}/${epoch}.arrow`, `${runId}/${epoch}`, 103674));
  const table = ref(`tables/${runId}.arrow`, `${runId}/table`, 2658);
  return [
    ...snapshots.map((s, epoch) => manifest(s, 'snapshot', DATASET, { epoch, model: { name: 'mlp', args: { hidden: [32] } }, dataset: 'fashion-mnist', seed: run, training })),
    manifest(table, 'distance-table', snapshots, { p: ['1'], changed: { atol: 0, rtol: 0 } }),
  ];
}

async function fill(store: ArtifactStore, experimentId: string, runs: number): Promise<void> {
  const manifests = Array.from({ length: runs }, (_, r) => runManifests(experimentId, r)).flat();
  await mapLimit(manifests, 16, (m) => recordManifest(store, m));
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const out = await fn();
  return [out, (performance.now() - t0) / 1000];
}

async function measure(name: string, store: ArtifactStore, stateDir: string, o: ReturnType<typeof options>): Promise<void> {
  const [, fillSeconds] = await timed(() => fill(store, 'bench-lineage', o.runs));
  const cacheFile = lineageCacheFile(stateDir, store);
  const [uncached, base] = await timed(() => loadManifests(store));
  const sharedIndexMin = SHARED_INDEX_MIN;
  const [first, firstSeconds] = await timed(() => loadManifests(store, { cacheFile, sharedIndexMin }));
  const [cached, cachedSeconds] = await timed(() => loadManifests(store, { cacheFile, sharedIndexMin }));
  await fill(store, 'bench-lineage-more', o.more);
  const [more, moreSeconds] = await timed(() => loadManifests(store, { cacheFile, sharedIndexMin }));
  const otherCache = lineageCacheFile(`${stateDir}-other`, store);
  const [other, otherSeconds] = await timed(() => loadManifests(store, { cacheFile: otherCache, sharedIndexMin }));
  // The query itself, on the index: a snapshot of the first run, down to its table.
  const snapshot = runManifests('bench-lineage', 0)[0]!.artifact.sha256;
  if (lineageOf(more.index, snapshot)?.downstream.length !== 1) throw new Error('expected the snapshot to have one table downstream');
  if (cached.read !== 0 || more.read !== o.more * 3) throw new Error(`expected 0 and ${o.more * 3} manifests read once cached, found ${cached.read} and ${more.read}`);
  const indexed = first.read >= sharedIndexMin;
  if (indexed !== (other.indexRead !== undefined && other.indexRead === first.indexWritten)) {
    throw new Error(`expected the other machine to read ${indexed ? `the shared index ${first.indexWritten}` : 'no shared index'}, found ${other.indexRead ?? 'none'}`);
  }
  if (lineageOf(other.index, snapshot)?.downstream.length !== 1) throw new Error('expected the other machine to find the same table downstream');
  const line = (label: string, seconds: number, read: number) =>
    console.log(`  ${label.padEnd(16)}${seconds.toFixed(2).padStart(8)} s  ${String(read).padStart(6)} read  ${(seconds / base).toFixed(3)}x the uncached query`);
  const index = first.indexWritten ? await store.head(first.indexWritten) : undefined;
  console.log(`${name} (${store.location}): ${uncached.index.bySha.size} manifests stored in ${fillSeconds.toFixed(1)} s`);
  line('no cache', base, uncached.read);
  line('first query', firstSeconds, first.read);
  line('cached', cachedSeconds, cached.read);
  line(`after ${o.more} more`, moreSeconds, more.read);
  line('other machine', otherSeconds, other.read);
  console.log(
    `  cache file ${((await stat(cacheFile)).size / 1e6).toFixed(1)} MB for ${more.index.bySha.size} manifests; ` +
      (index ? `shared index ${(index.bytes / 1e6).toFixed(1)} MB for ${first.index.bySha.size}` : `no shared index (under ${sharedIndexMin} read)`),
  );
}

async function main() {
  const o = options();
  const dir = await mkdtemp(join(DEFAULT_STATE_DIR, 'bench', 'lineage-'));
  try {
    console.log(`lineage: manifests of ${o.runs} runs (3 each), then ${o.more} runs more`);
    if (o.stores.includes('local')) await measure('local', new LocalStore(join(dir, 'local')), join(dir, 'state-local'), o);
    if (o.stores.includes('s3')) {
      const server = await startS3Server({ dataDir: join(dir, 's3'), env: process.env, bucket: 'bench-lineage' });
      const store = new S3Store({ forcePathStyle: true, bucket: server.bucket, endpoint: server.endpoint, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } });
      try {
        await store.ensureBucket();
        await measure('s3', store, join(dir, 'state-s3'), o);
      } finally {
        store.client.destroy();
        await server.stop();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
