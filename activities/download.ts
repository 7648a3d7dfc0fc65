/**
 * The `download` activity: makes every raw file of a dataset available in the store, under its sha256.
 *
 * A file already stored is not fetched again, so a second experiment downloads nothing. Otherwise the
 * sources are tried in order (canonical URLs first, then mirrors such as Debian's `file://` folder);
 * an unreachable source is skipped, bytes are only accepted when their sha256 matches the registry, and
 * when no source gives the right bytes but one gave wrong ones, the run fails for good naming the file.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { activityInfo, Context } from '@temporalio/activity';
import { sha256Hex } from '../artifacts/hash.js';
import type { ArtifactStore } from '../artifacts/store.js';
import { DATASETS, type DatasetDef, type DatasetFile } from '../ml/data/datasets.js';
import { classify, failForGood } from './errors.js';
import { contentKey, DATASET_PREFIX } from './keys.js';
import { recordLineage } from './lineage.js';
import type { DatasetFileRef, DownloadInput, DownloadResult } from './types.js';

export interface DownloadDeps {
  store: ArtifactStore;
  /** Injected so tests can count requests; defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Per-source time limit. */
  sourceTimeoutMs?: number;
}

type SourceOutcome =
  | { source: string; ok: true; bytes: Uint8Array }
  | { source: string; ok: false; mismatch?: { sha256: string; bytes: number }; error?: string };

/** The URLs to try for one file: the experiment's own sources if given, else the registry's. */
export function sourcesFor(def: DatasetDef, file: DatasetFile, override?: string[]): string[] {
  return (override ?? def.sources).map((base) => (base.endsWith('/') ? base : base + '/') + file.name);
}

async function fetchSource(url: string, deps: DownloadDeps, signal: AbortSignal): Promise<Uint8Array> {
  if (url.startsWith('file://')) {
    return new Uint8Array(await readFile(fileURLToPath(url), { signal }));
  }
  const limit = AbortSignal.timeout(deps.sourceTimeoutMs ?? 300_000);
  const res = await (deps.fetch ?? fetch)(url, { signal: AbortSignal.any([signal, limit]) });
  if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

function describeOutcome(o: SourceOutcome): string {
  if (o.ok) return `${o.source}: ok`;
  if (o.mismatch) return `${o.source}: sha256 ${o.mismatch.sha256} (${o.mismatch.bytes} bytes)`;
  return `${o.source}: ${o.error}`;
}

async function fetchVerified(
  def: DatasetDef,
  file: DatasetFile,
  sources: string[],
  deps: DownloadDeps,
  signal: AbortSignal,
): Promise<{ bytes: Uint8Array; source: string }> {
  const outcomes: SourceOutcome[] = [];
  for (const source of sources) {
    let bytes: Uint8Array;
    try {
      bytes = await fetchSource(source, deps, signal);
    } catch (err) {
      if (signal.aborted) throw err;
      outcomes.push({ source, ok: false, error: (err as Error).message });
      continue;
    }
    const sha256 = sha256Hex(bytes);
    if (sha256 === file.sha256) return { bytes, source };
    outcomes.push({ source, ok: false, mismatch: { sha256, bytes: bytes.length } });
  }
  const tried = outcomes.map((o) => `  ${describeOutcome(o)}`).join('\n');
  if (outcomes.some((o) => !o.ok && o.mismatch)) {
    throw failForGood(
      'DatasetChecksumMismatch',
      `${def.name}/${file.name}: no source gave the expected bytes (sha256 ${file.sha256}, ${file.bytes} bytes):\n${tried}`,
    );
  }
  // Nothing answered: possibly transient (network down, mirror not mounted yet), so Temporal retries.
  throw new Error(`${def.name}/${file.name}: no source could be read:\n${tried}`);
}

export function createDownload(deps: DownloadDeps) {
  return async function download(input: DownloadInput): Promise<DownloadResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    const def = DATASETS.get(input.dataset.name);
    if (!def) {
      throw failForGood('InvalidExperiment', `dataset.name: unknown dataset "${input.dataset.name}" (known: ${[...DATASETS.keys()].join(', ')})`);
    }
    const files: DatasetFileRef[] = [];
    let fetched = 0;
    let cached = 0;
    try {
      for (const [index, file] of def.files.entries()) {
        ctx.heartbeat({ file: file.name, index, files: def.files.length });
        const key = contentKey(DATASET_PREFIX, file.sha256);
        const existing = await deps.store.head(key, { signal });
        if (existing && existing.sha256 === file.sha256) {
          files.push({ ...existing, role: file.role, name: file.name, source: 'store' });
          cached++;
          continue;
        }
        const { bytes, source } = await fetchVerified(def, file, sourcesFor(def, file, input.dataset.sources), deps, signal);
        const ref = await deps.store.put(key, bytes, { contentType: 'application/octet-stream', signal });
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
