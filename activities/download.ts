/**
 * The `download` activity: makes every raw file of a dataset available in the store, under its sha256.
 *
 * A file already stored is not fetched again, so a second experiment downloads nothing. Otherwise the
 * sources are tried in order (canonical URLs first, then mirrors such as Debian's `file://` folder);
 * an unreachable source is skipped, bytes are only accepted when their checksum matches the registry,
 * and when no source gives the right bytes but one gave wrong ones, the run fails for good naming the file.
 *
 * Files the registry pins by md5 (the only checksum published for MNIST, CIFAR and Imagenette) are
 * verified by md5 and stored under the sha256 computed from the verified bytes; a small index object
 * `datasets/md5/<md5>.json` records md5 -> sha256, written after the file, so the cache lookup for an
 * md5-pinned file is two store reads and no download. A file may have other editions (the same contents
 * as another publisher packs them), each with its own checksum: bytes matching any are accepted, and
 * the store is searched for each.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { activityInfo, Context } from '@temporalio/activity';
import { isSha256Hex, sha256Hex } from '../artifacts/hash.js';
import type { ObjectRef } from '../artifacts/refs.js';
import type { ArtifactStore } from '../artifacts/store.js';
import { DATASETS, fileChecksums, type Checksum, type DatasetDef, type DatasetFile } from '../ml/data/datasets.js';
import { classify, failForGood } from './errors.js';
import { contentKey, DATASET_PREFIX } from './keys.js';
import { recordLineage } from './lineage.js';
import type { DatasetFileRef, DownloadInput, DownloadResult } from './types.js';

export interface DownloadDeps {
  store: ArtifactStore;
  /** Injected so tests can count requests; defaults to the global fetch. */
  fetch?: typeof fetch;
  /**
   * How long a source may send nothing (no response yet, or no new bytes of its body) before it is
   * given up for the next; a slow link that keeps sending is never cut off. Default SOURCE_IDLE_MS.
   */
  sourceIdleMs?: number;
  /** How often the activity heartbeats while it waits on a source; default KEEPALIVE_MS. */
  keepaliveMs?: number;
  /** The dataset registry; defaults to DATASETS (tests give definitions pinned to their own small files). */
  datasets?: ReadonlyMap<string, DatasetDef>;
}

/** Where the sha256 of the file with this md5 is recorded once the file is stored. */
export function md5IndexKey(md5: string): string {
  return `${DATASET_PREFIX}/md5/${md5.toLowerCase()}.json`;
}

/** What an md5 index object holds: exactly these fields, so writing it twice writes the same bytes. */
export interface Md5Index {
  md5: string;
  sha256: string;
  bytes: number;
}

function digest(algorithm: Checksum['algorithm'], bytes: Uint8Array): string {
  return algorithm === 'sha256' ? sha256Hex(bytes) : createHash('md5').update(bytes).digest('hex');
}

type SourceOutcome =
  | { source: string; ok: true; bytes: Uint8Array }
  | { source: string; ok: false; mismatch?: { found: string; bytes: number }; error?: string };

/** A file's accepted checksums in words: `sha256 <hex>, 26421856 bytes; or md5 <hex>, 26421880 bytes`. */
function acceptedText(accepted: Array<Checksum & { bytes?: number }>): string {
  return accepted.map((c) => `${c.algorithm} ${c.hex}${c.bytes === undefined ? '' : `, ${c.bytes} bytes`}`).join('; or ');
}

/** The URLs to try for one file: the experiment's own sources if given, else the registry's. */
export function sourcesFor(def: DatasetDef, file: DatasetFile, override?: string[]): string[] {
  return (override ?? def.sources).map((base) => (base.endsWith('/') ? base : base + '/') + file.name);
}

/**
 * What the download activity heartbeats, for `paramtrail run`'s progress bar and for a person reading
 * `temporal workflow describe`: which file of the dataset it is on and, while a file arrives, how many
 * of its bytes have come.
 */
export interface DownloadHeartbeat {
  dataset: string;
  /** The file being made available, and its position among the dataset's files (from 0). */
  file: string;
  index: number;
  files: number;
  /** Bytes of this file received so far; absent while the store is being checked for it. */
  received?: number;
  /** The file's size: the registry's, else the response's Content-Length; absent when neither is known. */
  total?: number;
}

/** Called as a body arrives, so a download of a large archive (CIFAR: 170 MB) keeps heartbeating. */
type Progress = (received: number, total: number | undefined) => void;
/** Often enough for a progress bar to move on a slow link; the SDK throttles what reaches the server. */
const PROGRESS_EVERY = 1024 * 1024;
/** How often a download heartbeats while it waits on a source, well inside any heartbeat timeout. */
const KEEPALIVE_MS = 5_000;

function contentLength(res: Response): number | undefined {
  const n = Number(res.headers.get('content-length'));
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** A source that sends nothing for this long is given up (DownloadDeps.sourceIdleMs). */
export const SOURCE_IDLE_MS = 60_000;

/** An abort signal that fires once `ms` pass without a call to `touch`. */
function idleSignal(ms: number): { signal: AbortSignal; touch: () => void; stop: () => void } {
  const controller = new AbortController();
  const expire = () => controller.abort(new DOMException(`nothing arrived for ${ms / 1000} s`, 'TimeoutError'));
  let timer = setTimeout(expire, ms);
  return {
    signal: controller.signal,
    touch: () => {
      clearTimeout(timer);
      timer = setTimeout(expire, ms);
    },
    stop: () => clearTimeout(timer),
  };
}

async function fetchSource(url: string, deps: DownloadDeps, signal: AbortSignal, progress?: Progress): Promise<Uint8Array> {
  if (url.startsWith('file://')) {
    // A mount that hangs is given up as a silent server is (the read itself is seconds at most).
    const limit = AbortSignal.timeout(deps.sourceIdleMs ?? SOURCE_IDLE_MS);
    const bytes = new Uint8Array(await readFile(fileURLToPath(url), { signal: AbortSignal.any([signal, limit]) }));
    progress?.(bytes.length, bytes.length);
    return bytes;
  }
  const idle = idleSignal(deps.sourceIdleMs ?? SOURCE_IDLE_MS);
  try {
    const res = await (deps.fetch ?? fetch)(url, { signal: AbortSignal.any([signal, idle.signal]) });
    if (!res.ok) {
      // Released now rather than at garbage collection: a mirror that refuses is tried again on every retry.
      await res.body?.cancel().catch(() => undefined);
      throw new Error(`HTTP ${res.status} ${res.statusText}`);
    }
    if (!res.body) return new Uint8Array(await res.arrayBuffer());
    const total = contentLength(res);
    const chunks: Uint8Array[] = [];
    let received = 0;
    let reported = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      idle.touch();
      chunks.push(chunk);
      received += chunk.length;
      if (progress && received - reported >= PROGRESS_EVERY) {
        progress(received, total);
        reported = received;
      }
    }
    // The last part, so a bar ends full.
    if (progress && received !== reported) progress(received, total);
    const bytes = new Uint8Array(received);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.length;
    }
    return bytes;
  } finally {
    idle.stop();
  }
}

/** An error's message with its cause's: fetch says only "fetch failed", its cause why (connect ECONNREFUSED ...). */
function errorText(err: unknown): string {
  const message = (err as Error).message;
  const cause = ((err as { cause?: unknown }).cause as Error | undefined)?.message;
  return cause && !message.includes(cause) ? `${message}: ${cause}` : message;
}

function describeOutcome(o: SourceOutcome): string {
  if (o.ok) return `${o.source}: ok`;
  if (o.mismatch) return `${o.source}: ${o.mismatch.found} (${o.mismatch.bytes} bytes)`;
  return `${o.source}: ${o.error}`;
}

async function fetchVerified(
  def: DatasetDef,
  file: DatasetFile,
  sources: string[],
  deps: DownloadDeps,
  signal: AbortSignal,
  progress?: Progress,
): Promise<{ bytes: Uint8Array; source: string; matched: Checksum }> {
  const accepted = fileChecksums(file);
  const algorithms = [...new Set(accepted.map((c) => c.algorithm))];
  const outcomes: SourceOutcome[] = [];
  for (const source of sources) {
    let bytes: Uint8Array;
    try {
      bytes = await fetchSource(source, deps, signal, progress);
    } catch (err) {
      if (signal.aborted) throw err;
      outcomes.push({ source, ok: false, error: errorText(err) });
      continue;
    }
    const found = new Map(algorithms.map((a) => [a, digest(a, bytes)]));
    const matched = accepted.find((c) => found.get(c.algorithm) === c.hex);
    if (matched) return { bytes, source, matched: { algorithm: matched.algorithm, hex: matched.hex } };
    outcomes.push({ source, ok: false, mismatch: { found: [...found].map(([a, hex]) => `${a} ${hex}`).join(', '), bytes: bytes.length } });
  }
  const tried = outcomes.map((o) => `  ${describeOutcome(o)}`).join('\n');
  if (outcomes.some((o) => !o.ok && o.mismatch)) {
    throw failForGood('DatasetChecksumMismatch', `${def.name}/${file.name}: no source gave the expected bytes (${acceptedText(accepted)}):\n${tried}`);
  }
  // Nothing answered: possibly transient (network down, mirror not mounted yet), so Temporal retries.
  throw new Error(`${def.name}/${file.name}: no source could be read:\n${tried}`);
}

/**
 * Whether stored bytes (whose sha256 is `sha256`) are an edition of `file` the registry accepts: by a
 * pinned sha256, else by an md5. The download verified md5-accepted bytes and recorded md5 -> sha256,
 * so that record is read first; the md5 is computed here only when there is none.
 */
export async function isAcceptedEdition(store: ArtifactStore, file: DatasetFile, bytes: Uint8Array, sha256: string, signal?: AbortSignal): Promise<boolean> {
  const accepted = fileChecksums(file);
  if (accepted.some((c) => c.algorithm === 'sha256' && c.hex === sha256)) return true;
  const md5s = accepted.filter((c) => c.algorithm === 'md5');
  for (const c of md5s) if ((await md5IndexedSha256(store, file, c.hex, signal)) === sha256) return true;
  if (md5s.length === 0) return false;
  const md5 = digest('md5', bytes);
  return md5s.some((c) => c.hex === md5);
}

/** The sha256 the md5 index records for `md5` (one of `file`'s), if there is an index. */
async function md5IndexedSha256(store: ArtifactStore, file: DatasetFile, md5: string, signal?: AbortSignal): Promise<string | undefined> {
  const indexKey = md5IndexKey(md5);
  if (!(await store.head(indexKey, { signal }))) return undefined;
  const index = JSON.parse(new TextDecoder().decode(await store.get(indexKey, { signal }))) as Md5Index;
  if (index.md5 !== md5 || !isSha256Hex(index.sha256)) {
    throw failForGood('IntegrityError', `${indexKey}: expected the md5 index of ${file.name} ({ md5: ${md5}, sha256: <64 hex digits> }), found ${JSON.stringify(index)}`);
  }
  return index.sha256;
}

/**
 * The stored copy of `file`, if any: by its sha256, or through the md5 index for an md5-pinned file;
 * of its own pin first, then of each of its editions.
 */
export async function findStored(store: ArtifactStore, file: DatasetFile, signal?: AbortSignal): Promise<ObjectRef | undefined> {
  for (const expected of fileChecksums(file)) {
    const found = await findEdition(store, file, expected, signal);
    if (found) return found;
  }
  return undefined;
}

async function findEdition(store: ArtifactStore, file: DatasetFile, expected: Checksum, signal?: AbortSignal): Promise<ObjectRef | undefined> {
  const sha256 = expected.algorithm === 'md5' ? await md5IndexedSha256(store, file, expected.hex, signal) : expected.hex;
  if (sha256 === undefined) return undefined;
  const existing = await store.head(contentKey(DATASET_PREFIX, sha256), { signal });
  return existing && existing.sha256 === sha256 ? existing : undefined;
}

export function createDownload(deps: DownloadDeps) {
  return async function download(input: DownloadInput): Promise<DownloadResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    const registry = deps.datasets ?? DATASETS;
    const def = registry.get(input.dataset.name);
    if (!def) {
      throw failForGood('InvalidExperiment', `dataset.name: unknown dataset "${input.dataset.name}" (known: ${[...registry.keys()].join(', ')})`);
    }
    const files: DatasetFileRef[] = [];
    let fetched = 0;
    let cached = 0;
    try {
      for (const [index, file] of def.files.entries()) {
        const where = { dataset: def.name, file: file.name, index, files: def.files.length };
        ctx.heartbeat({ ...where, total: file.bytes } satisfies DownloadHeartbeat);
        const existing = await findStored(deps.store, file, signal);
        if (existing) {
          files.push({ ...existing, role: file.role, name: file.name, source: 'store' });
          cached++;
          continue;
        }
        let latest: DownloadHeartbeat = { ...where, total: file.bytes };
        const progress: Progress = (received, total) => ctx.heartbeat((latest = { ...where, received, total: file.bytes ?? total }));
        // While a source is slow to answer or between its bytes, the activity still heartbeats: the
        // sources' own limit (sourceIdleMs) decides when to give one up, not the heartbeat timeout.
        const alive = setInterval(() => ctx.heartbeat(latest), deps.keepaliveMs ?? KEEPALIVE_MS);
        let verified: Awaited<ReturnType<typeof fetchVerified>>;
        try {
          verified = await fetchVerified(def, file, sourcesFor(def, file, input.dataset.sources), deps, signal, progress);
        } finally {
          clearInterval(alive);
        }
        const { bytes, source, matched } = verified;
        const sha256 = sha256Hex(bytes);
        const ref = await deps.store.put(contentKey(DATASET_PREFIX, sha256), bytes, { contentType: 'application/octet-stream', signal });
        if (matched.algorithm === 'md5') {
          // After the file, so an index never points at nothing.
          const index: Md5Index = { md5: matched.hex, sha256, bytes: bytes.length };
          await deps.store.put(md5IndexKey(matched.hex), new TextEncoder().encode(JSON.stringify(index)), { contentType: 'application/json', signal });
        }
        await recordLineage(deps.store, input, ref, 'dataset-file', [], { dataset: def.name, file: file.name, role: file.role, source }, signal);
        files.push({ ...ref, role: file.role, name: file.name, source });
        fetched++;
      }
    } catch (err) {
      throw classify(err);
    }
    ctx.log.info('dataset ready', { dataset: def.name, fetched, cached, attempt: activityInfo().attempt });
    return { dataset: def.name, files, fetched, cached };
  };
}
