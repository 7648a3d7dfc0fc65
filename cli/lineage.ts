/**
 * `paramtrail lineage <artifact-key | sha256 | run-id | experiment-id> [--json | --dot]`: what an
 * artifact (or everything a run or experiment produced) was made from and what was made from it, read from the lineage manifests (`manifests/<hh>/<sha256>.json`, written by
 * the activities beside every object they store). Called by cli/main.ts.
 *
 * Upstream follows each manifest's `inputs`; downstream has no index written by the runs (manifests
 * stay write-once, and a run writes nothing more for lineage's sake), so the manifests are read and
 * inverted here. What was read is kept in a cache under the state folder, one file per store: a later
 * query lists `manifests/` and reads only the manifests the cache lacks. Manifests are never rewritten or
 * deleted by paramtrail, so a cached one stands for its key; `--refresh` reads them all again (after a
 * store was edited by hand). A sweep of 10,000 runs has about 30,000 manifests: tens of seconds to read
 * once from S3, then about the time of one listing (`npm run bench:lineage`).
 *
 * So that each machine does not pay that first read again, a query that read many manifests one by one
 * stores what it knows as a shared index, `lineage/index/<count>-<time>-<sha256>.json.gz` (gzipped JSON,
 * write-once, named by the number of manifests it holds and its own sha256), and removes the smaller
 * indexes it supersedes. A query that lacks many manifests reads the largest index first, takes from it
 * the manifests still listed that it lacks, and reads one by one only those stored since. An index that
 * does not verify against its name is passed over. `--refresh` reads no index.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { mapLimit } from '../artifacts/concurrency.js';
import { isSha256Hex, sha256Hex } from '../artifacts/hash.js';
import { manifestKey, type ArtifactManifest } from '../artifacts/manifest.js';
import { openStore } from '../artifacts/open.js';
import { InvalidKeyError, validateKey, type ArtifactStore } from '../artifacts/store.js';
import { workerConfigFromEnv } from '../worker/config.js';
import { EXIT } from './exit.js';
import { experimentIdOf } from '../workflows/types.js';
import { parseOr, usageExit } from './verify.js';

const HELP = `usage: paramtrail lineage <artifact-key | sha256 | run-id | experiment-id> [--json | --dot] [--refresh]

Walks the lineage manifests both ways from one artifact: upstream, what it was computed from (down to
the dataset files); downstream, everything computed from it (distance tables, figures, ...).
A run id (<experiment-id>/<run-name>) or experiment id lists everything it produced and what it used.

  --json      print the two trees as JSON
  --dot       print the graph in Graphviz dot (e.g. | dot -Tsvg > lineage.svg)
  --refresh   read every manifest from the store again, not only those not yet in the lineage cache
              (and no shared index)

Reads the store the worker configuration names (PARAMTRAIL_STORE, or the embedded stack's). The
manifests already read are cached under the state folder (PARAMTRAIL_STATE_DIR/cache/lineage/). A
query that read 1,000 or more manifests one by one stores what it knows as a shared index in the
store (lineage/index/), which the first query on another machine reads instead.
Exit status: 0 when the artifact (or run, or experiment) has manifests, 1 when it has none, 2 on a usage error,
4 when the store cannot be reached or refuses access.`;

export interface LineageNode {
  key: string;
  sha256: string;
  kind?: string;
  producer?: { experimentId: string; runId: string; activity: string; attempt: number; workflowId: string };
  createdAt?: string;
  /** Set when the node was already shown elsewhere in the same tree; its branches are not repeated. */
  repeated?: boolean;
  /** Upstream trees: what it was computed from. */
  inputs?: LineageNode[];
  /** Downstream trees: what was computed from it. */
  outputs?: LineageNode[];
}

export interface LineageReport {
  artifact: LineageNode;
  upstream: LineageNode[];
  downstream: LineageNode[];
}

/** What lineage shows of a manifest, and all the lineage cache keeps of one. */
export type LineageManifest = Pick<ArtifactManifest, 'artifact' | 'kind' | 'inputs' | 'createdAt'> & {
  producer: Pick<ArtifactManifest['producer'], 'experimentId' | 'runId' | 'activity' | 'attempt' | 'workflowId'>;
};

/** Every manifest in the store, by artifact sha256, and the manifests that consume each sha256. */
export interface ManifestIndex {
  bySha: Map<string, LineageManifest>;
  consumers: Map<string, LineageManifest[]>;
}

export interface LoadManifestsOptions {
  /** The cache file to read first and write back; none: every manifest is read from the store. */
  cacheFile?: string;
  /** Read every manifest from the store again, and rewrite the cache. */
  refresh?: boolean;
  /** Told how many manifests will be read from the store one by one, before they are. */
  onRead?: (count: number, listed: number) => void;
  /**
   * From this many manifests lacking, the largest shared index in the store is read first; from this
   * many read one by one, a new shared index is stored. None: no shared index is read or written.
   */
  sharedIndexMin?: number;
}

export interface LoadedManifests {
  index: ManifestIndex;
  /** Manifests read from the store one by one this time, and those taken from the cache. */
  read: number;
  cached: number;
  /** Manifests taken from a shared index, and the index's key. */
  fromIndex: number;
  indexRead?: string;
  /** The shared index this query stored, if it stored one. */
  indexWritten?: string;
}

/** Manifests read from the store at once: small objects, so latency, not bandwidth, is the limit. */
const READS_AT_ONCE = 16;
const CACHE_FORMAT_VERSION = 2;

interface CacheFile {
  formatVersion: number;
  store: string;
  /** By manifest key. */
  manifests: Record<string, LineageManifest>;
  /** The shared indexes already taken in, by key. */
  indexes: string[];
}

/** What `lineage` reads one by one before it stores a shared index, and lacks before it reads one. */
export const SHARED_INDEX_MIN = 1000;
const INDEX_PREFIX = 'lineage/index/';
const INDEX_FORMAT_VERSION = 1;
/** lineage/index/<count>-<time>-<sha256>.json.gz; captures the count and the sha256. */
const INDEX_KEY = /^lineage\/index\/(\d{9})-\d{8}T\d{6}Z-([0-9a-f]{64})\.json\.gz$/;

interface SharedIndex {
  formatVersion: number;
  /** By manifest key. */
  manifests: Record<string, LineageManifest>;
}

/** The key of a shared index of `count` manifests with these bytes: larger, then newer, sorts last. */
function sharedIndexKey(count: number, bytes: Uint8Array, now = new Date()): string {
  const time = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${INDEX_PREFIX}${String(Math.min(count, 999_999_999)).padStart(9, '0')}-${time}-${sha256Hex(bytes)}.json.gz`;
}

/** The manifests of the store's largest shared index, unless `skip` holds its key; undefined when there is none to read or it does not verify. */
async function readSharedIndex(store: ArtifactStore, skip: Set<string>): Promise<{ key: string; manifests: Map<string, LineageManifest> } | undefined> {
  const key = (await store.list(INDEX_PREFIX)).filter((k) => INDEX_KEY.test(k)).sort().at(-1);
  if (!key || skip.has(key)) return undefined;
  try {
    const index = JSON.parse(gunzipSync(await store.get(key, { sha256: INDEX_KEY.exec(key)![2] })).toString('utf8')) as SharedIndex;
    if (index.formatVersion !== INDEX_FORMAT_VERSION || typeof index.manifests !== 'object' || index.manifests === null) {
      throw new Error(`expected format version ${INDEX_FORMAT_VERSION} and manifests, found ${JSON.stringify(index.formatVersion)}`);
    }
    const manifests = new Map(Object.entries(index.manifests));
    for (const [k, m] of manifests) {
      if (!isSha256Hex(m?.artifact?.sha256 ?? '') || !Array.isArray(m.inputs) || typeof m.producer !== 'object' || m.producer === null) {
        throw new Error(`expected a manifest (artifact, inputs, producer) for ${k}, found ${JSON.stringify(m).slice(0, 80)}`);
      }
    }
    return { key, manifests };
  } catch (err) {
    console.error(`lineage: passing over the shared index ${key}: ${(err as Error).message}`);
    return undefined;
  }
}

/**
 * Stores `manifests` (every manifest listed now) as a shared index, then removes the smaller indexes: each
 * holds every manifest listed when it was written, so a smaller one has nothing a larger, later one lacks
 * but manifests since deleted. Without that, a store queried after every large experiment would keep a
 * whole copy of its manifests per query.
 */
async function writeSharedIndex(store: ArtifactStore, manifests: Map<string, LineageManifest>): Promise<string> {
  const index: SharedIndex = { formatVersion: INDEX_FORMAT_VERSION, manifests: Object.fromEntries(manifests) };
  // gzip: the refs and ids repeat from manifest to manifest (the 30,000 manifests of bench:lineage: 27 MB
  // of JSON, 3 MB gzipped at level 1), and another machine downloads the index whole.
  const bytes = gzipSync(JSON.stringify(index), { level: 1 });
  const key = sharedIndexKey(manifests.size, bytes);
  await store.put(key, bytes);
  const smaller = (await store.list(INDEX_PREFIX)).filter((k) => Number(INDEX_KEY.exec(k)?.[1] ?? Infinity) < manifests.size);
  // A removal that fails leaves an index that is passed over (it is not the largest): no harm.
  await mapLimit(smaller, READS_AT_ONCE, (k) => store.delete(k).catch(() => undefined));
  return key;
}

/** The lineage cache file of a store: one per store location (and endpoint), under the state folder. */
export function lineageCacheFile(stateDir: string, store: ArtifactStore): string {
  const where = JSON.stringify((store as { toJSON?: () => unknown }).toJSON?.() ?? store.location);
  return join(stateDir, 'cache', 'lineage', `${sha256Hex(new TextEncoder().encode(where))}.json`);
}

function lineageManifest(m: ArtifactManifest): LineageManifest {
  const { experimentId, runId, activity, attempt, workflowId } = m.producer;
  return { artifact: m.artifact, kind: m.kind, inputs: m.inputs, createdAt: m.createdAt, producer: { experimentId, runId, activity, attempt, workflowId } };
}

interface Cached {
  manifests: Map<string, LineageManifest>;
  indexes: Set<string>;
}

const noCache = (): Cached => ({ manifests: new Map(), indexes: new Set() });

/** The cached manifests of this store; none when the file is missing, unreadable or another store's. */
async function readCache(file: string, store: ArtifactStore): Promise<Cached> {
  try {
    const cache = JSON.parse(await readFile(file, 'utf8')) as CacheFile;
    if (cache.formatVersion === CACHE_FORMAT_VERSION && cache.store === store.location) {
      return { manifests: new Map(Object.entries(cache.manifests)), indexes: new Set(cache.indexes) };
    }
  } catch {
    // Unreadable: as if there were none.
  }
  return noCache();
}

/** Written whole or not at all: a reader never finds half a cache. */
async function writeCache(file: string, store: ArtifactStore, manifests: Map<string, LineageManifest>, indexes: Set<string>): Promise<void> {
  const cache: CacheFile = { formatVersion: CACHE_FORMAT_VERSION, store: store.location, manifests: Object.fromEntries(manifests), indexes: [...indexes] };
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(tmp, JSON.stringify(cache));
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}

export async function loadManifests(store: ArtifactStore, opts: LoadManifestsOptions = {}): Promise<LoadedManifests> {
  const keys = (await store.list('manifests/')).filter((k) => k.endsWith('.json'));
  const cached = opts.cacheFile && !opts.refresh ? await readCache(opts.cacheFile, store) : noCache();
  // Keys no longer listed drop out of the cache; listed keys it lacks are read.
  const byKey = new Map<string, LineageManifest>();
  let missing: string[] = [];
  for (const key of keys) {
    const m = cached.manifests.get(key);
    if (m) byKey.set(key, m);
    else missing.push(key);
  }
  const fromCache = byKey.size;
  const shareMin = opts.sharedIndexMin ?? Infinity;
  // Many lacking: most are likely in the largest shared index (one read, not thousands).
  let fromIndex = 0;
  let indexRead: string | undefined;
  if (!opts.refresh && missing.length >= shareMin) {
    const shared = await readSharedIndex(store, cached.indexes);
    if (shared) {
      indexRead = shared.key;
      cached.indexes.add(shared.key);
      missing = missing.filter((key) => {
        const m = shared.manifests.get(key);
        if (m) byKey.set(key, m);
        return !m;
      });
      fromIndex = byKey.size - fromCache;
    }
  }
  opts.onRead?.(missing.length, keys.length);
  await mapLimit(missing, READS_AT_ONCE, async (key) => {
    byKey.set(key, lineageManifest(JSON.parse(new TextDecoder().decode(await store.get(key))) as ArtifactManifest));
  });
  // What took long to read is shared: in key order, so that the same manifests make the same bytes.
  let indexWritten: string | undefined;
  if (missing.length >= shareMin) {
    const sorted = new Map([...byKey].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    // A store this client may not write to (read-only credentials) costs the next machine time, not this query.
    indexWritten = await writeSharedIndex(store, sorted).catch((err: Error) => {
      console.error(`lineage: could not store a shared index in ${store.location}: ${err.message}`);
      return undefined;
    });
    if (indexWritten) cached.indexes.add(indexWritten);
  }
  if (opts.cacheFile && (missing.length > 0 || fromIndex > 0 || byKey.size !== cached.manifests.size)) {
    // A cache that cannot be written (a read-only state folder) slows the next query, not this one.
    await writeCache(opts.cacheFile, store, byKey, cached.indexes).catch((err: Error) => console.error(`lineage: could not write the cache ${opts.cacheFile}: ${err.message}`));
  }

  const bySha = new Map<string, LineageManifest>();
  for (const m of byKey.values()) bySha.set(m.artifact.sha256, m);
  const consumers = new Map<string, LineageManifest[]>();
  for (const m of [...bySha.values()].sort((a, b) => a.artifact.key.localeCompare(b.artifact.key))) {
    for (const input of m.inputs) {
      const list = consumers.get(input.sha256) ?? [];
      if (!list.includes(m)) list.push(m);
      consumers.set(input.sha256, list);
    }
  }
  return {
    index: { bySha, consumers },
    read: missing.length,
    cached: fromCache,
    fromIndex,
    ...(indexRead ? { indexRead } : {}),
    ...(indexWritten ? { indexWritten } : {}),
  };
}

function nodeOf(key: string, sha256: string, m: LineageManifest | undefined): LineageNode {
  if (!m) return { key, sha256 };
  const { experimentId, runId, activity, attempt, workflowId } = m.producer;
  return { key: m.artifact.key, sha256, kind: m.kind, producer: { experimentId, runId, activity, attempt, workflowId }, createdAt: m.createdAt };
}

function upstream(index: ManifestIndex, sha256: string, seen: Set<string>): LineageNode[] {
  const m = index.bySha.get(sha256);
  return (m?.inputs ?? []).map((input) => {
    const node = nodeOf(input.key, input.sha256, index.bySha.get(input.sha256));
    if (seen.has(input.sha256)) return { ...node, repeated: true };
    seen.add(input.sha256);
    return { ...node, inputs: upstream(index, input.sha256, seen) };
  });
}

function downstream(index: ManifestIndex, sha256: string, seen: Set<string>): LineageNode[] {
  return (index.consumers.get(sha256) ?? []).map((m) => {
    const node = nodeOf(m.artifact.key, m.artifact.sha256, m);
    if (seen.has(m.artifact.sha256)) return { ...node, repeated: true };
    seen.add(m.artifact.sha256);
    return { ...node, outputs: downstream(index, m.artifact.sha256, seen) };
  });
}

/** The lineage of the artifact with this sha256, or undefined when no manifest names it. */
export function lineageOf(index: ManifestIndex, sha256: string): LineageReport | undefined {
  const m = index.bySha.get(sha256);
  if (!m) return undefined;
  return {
    artifact: nodeOf(m.artifact.key, sha256, m),
    upstream: upstream(index, sha256, new Set([sha256])),
    downstream: downstream(index, sha256, new Set([sha256])),
  };
}

/**
 * The lineage of a run or an experiment (by run id or experiment id): downstream, every artifact it
 * produced, each with what was made from it elsewhere; upstream, the artifacts it used that something
 * else produced (a snapshot it started from, dataset files first stored by another run).
 */
export function lineageOfProducer(index: ManifestIndex, id: string): LineageReport | undefined {
  const mine = [...index.bySha.values()]
    .filter((m) => m.producer.runId === id || m.producer.experimentId === id)
    .sort((a, b) => a.artifact.key.localeCompare(b.artifact.key));
  if (mine.length === 0) return undefined;
  const own = new Set(mine.map((m) => m.artifact.sha256));
  const isExperiment = mine.some((m) => m.producer.experimentId === id && m.producer.runId !== id);
  const external = new Map<string, { key: string; sha256: string }>();
  for (const m of mine) for (const i of m.inputs) if (!own.has(i.sha256)) external.set(i.sha256, i);
  const seen = new Set(own);
  const upstreamNodes = [...external.values()].map((i) => {
    seen.add(i.sha256);
    return { ...nodeOf(i.key, i.sha256, index.bySha.get(i.sha256)), inputs: upstream(index, i.sha256, seen) };
  });
  const downstreamNodes = mine.map((m) => ({
    ...nodeOf(m.artifact.key, m.artifact.sha256, m),
    outputs: (index.consumers.get(m.artifact.sha256) ?? [])
      .filter((c) => !own.has(c.artifact.sha256))
      .map((c) => ({ ...nodeOf(c.artifact.key, c.artifact.sha256, c), outputs: downstream(index, c.artifact.sha256, seen) })),
  }));
  // The run or experiment itself is the root: it has no bytes, so its sha256 stands for its id.
  return {
    artifact: { key: id, sha256: '', kind: isExperiment ? 'experiment' : 'run' },
    upstream: upstreamNodes,
    downstream: downstreamNodes,
  };
}

/** Resolves a key or a sha256 to the sha256 its manifest is filed under. */
async function resolveSha(store: ArtifactStore, target: string): Promise<string | { error: string; maybeProducer?: boolean }> {
  if (isSha256Hex(target.toLowerCase())) return target.toLowerCase();
  try {
    validateKey(target);
  } catch (err) {
    if (err instanceof InvalidKeyError) return { error: `lineage: expected an artifact key or a sha256, found ${JSON.stringify(target)}` };
    throw err;
  }
  const ref = await store.head(target);
  if (!ref) return { error: `no object, run or experiment ${target} in ${store.location}`, maybeProducer: true };
  return ref.sha256;
}

function label(n: LineageNode): string {
  if (n.sha256 === '') return `${n.kind} ${n.key}`;
  // An experiment's own artifacts (its report, its figures) have no run.
  const who = n.producer ? ` by ${n.producer.activity} in ${n.producer.runId || n.producer.experimentId}` : '';
  return `${n.key} (${n.kind ?? 'no manifest'}, sha256 ${n.sha256.slice(0, 12)}${who})${n.repeated ? ' [shown above]' : ''}`;
}

function drawTree(nodes: LineageNode[], field: 'inputs' | 'outputs', indent: string, lines: string[]): void {
  nodes.forEach((n, i) => {
    const last = i === nodes.length - 1;
    lines.push(`${indent}${last ? '└─ ' : '├─ '}${label(n)}`);
    drawTree(n[field] ?? [], field, indent + (last ? '   ' : '│  '), lines);
  });
}

export function formatLineage(r: LineageReport): string {
  const lines = [label(r.artifact), '', 'made from:'];
  if (r.upstream.length === 0) lines.push('   (nothing: a source artifact)');
  drawTree(r.upstream, 'inputs', '', lines);
  lines.push('', 'used to make:');
  if (r.downstream.length === 0) lines.push('   (nothing yet)');
  drawTree(r.downstream, 'outputs', '', lines);
  return lines.join('\n');
}

/** Graphviz: one node per artifact, an edge from each input to what it made. */
export function lineageDot(r: LineageReport): string {
  const nodes = new Map<string, LineageNode>();
  const edges = new Set<string>();
  const id = (sha: string) => (sha === '' ? '"root"' : `"${sha.slice(0, 16)}"`);
  nodes.set(r.artifact.sha256, r.artifact);
  const walk = (parent: LineageNode, children: LineageNode[] | undefined, up: boolean) => {
    for (const c of children ?? []) {
      if (!nodes.has(c.sha256) || !c.repeated) nodes.set(c.sha256, c);
      edges.add(up ? `${id(c.sha256)} -> ${id(parent.sha256)}` : `${id(parent.sha256)} -> ${id(c.sha256)}`);
      walk(c, up ? c.inputs : c.outputs, up);
    }
  };
  walk(r.artifact, r.upstream, true);
  walk(r.artifact, r.downstream, false);
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  const lines = ['digraph lineage {', '  rankdir=LR;', '  node [shape=box, fontname="monospace"];'];
  for (const n of nodes.values()) {
    const extra = n.sha256 === r.artifact.sha256 ? ', style=bold' : '';
    lines.push(`  ${id(n.sha256)} [label="${esc(`${n.kind ?? '?'}\n${n.key}`)}"${extra}];`);
  }
  for (const e of edges) lines.push(`  ${e};`);
  lines.push('}');
  return lines.join('\n');
}

/** From this many manifests to read, the command says so first: it may take a while on S3. */
const NOTE_READS = 1000;

export async function cmdLineage(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseOr({
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, dot: { type: 'boolean' }, refresh: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (parsed instanceof Error) return usageExit(HELP, `lineage: ${parsed.message}`);
  const { values, positionals } = parsed;
  if (values.help) return usageExit(HELP, undefined);
  if (positionals.length !== 1) return usageExit(HELP, 'lineage: expected one artifact key or sha256');
  if (values.json && values.dot) return usageExit(HELP, 'lineage: --json and --dot are alternatives, found both');

  const config = workerConfigFromEnv(env);
  const store = openStore(config.store, env);
  // No key holds a colon: one in the target is a scheduled execution's workflow id, whose artifacts name its experiment id.
  const target = experimentIdOf(positionals[0]!);
  const sha = await resolveSha(store, target);
  const manifests = async () =>
    (
      await loadManifests(store, {
        cacheFile: lineageCacheFile(config.stateDir, store),
        refresh: values.refresh,
        sharedIndexMin: SHARED_INDEX_MIN,
        onRead: (count, listed) => {
          if (count < NOTE_READS) return;
          const cachedNote = listed > count ? `; ${listed - count} more are cached` : '; later queries read only new ones';
          console.error(`lineage: reading ${count} manifests from ${store.location}${cachedNote}`);
        },
      })
    ).index;
  let report: LineageReport | undefined;
  if (typeof sha !== 'string') {
    // Not a stored object: a run id or experiment id names the artifacts its activities produced.
    report = sha.maybeProducer ? lineageOfProducer(await manifests(), target) : undefined;
    if (!report) {
      console.error(sha.error);
      // Something that cannot be a key, a sha256 or an id is a usage error; a name nothing answers to, not.
      return sha.maybeProducer ? EXIT.failed : EXIT.usage;
    }
  } else {
    report = lineageOf(await manifests(), sha);
    if (!report) {
      console.error(`no lineage manifest for sha256 ${sha} (expected ${manifestKey(sha)} in ${store.location})`);
      return EXIT.failed;
    }
  }
  console.log(values.json ? JSON.stringify(report, null, 2) : values.dot ? lineageDot(report) : formatLineage(report));
  return EXIT.ok;
}
