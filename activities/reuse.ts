/**
 * Reuse of finished trainings. A training's reuse key is the sha256 of its configuration (model,
 * dataset subset and options, seed, training options), the sha256 of every dataset file it reads, and
 * the version of the worker's compute code (activities/version.ts: the package version and a digest of
 * what the weights depend on, COMPUTE_PATHS, committed and uncommitted). `lookupRun` finds a training with the same key stored by any earlier
 * experiment, re-hashes every snapshot it names, and returns its result, so a rerun skips it; any
 * object missing or altered means "train again". `rememberTraining` (called by the train activity) records a finished training under its key
 * (the first one stays: stored objects are never overwritten).
 */
import { Context } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { ObjectConflictError, ObjectNotFoundError, type ArtifactStore } from '../artifacts/store.js';
import type { RunSpec } from '../config/grid.js';
import { classify } from './errors.js';
import { getJson, putJson } from './json.js';
import type { DownloadResult, Producer, TrainResult } from './types.js';
import { codeVersion, reuseCodeVersion } from './version.js';

export interface LookupInput extends Producer {
  run: RunSpec;
  data: DownloadResult;
}

export interface LookupResult {
  /** 64 hex digits: what the training's result depends on. */
  configHash: string;
  codeVersion: string;
  /** A finished training with the same key whose objects all verified. */
  found?: { runId: string; train: TrainResult };
  /** Why a training recorded under the key was not reused. */
  rejected?: string;
}

export interface RememberInput extends Producer {
  configHash: string;
  codeVersion: string;
  train: TrainResult;
}

interface IndexEntry {
  configHash: string;
  codeVersion: string;
  runId: string;
  experimentId: string;
  train: TrainResult;
  recordedAt: string;
}

/** JSON with object keys sorted, so equal values always hash alike. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The reuse key of a training. Left out: the run's name (a relabelled model trains the same), its
 * analyses and group (they do not change the weights), the dataset's label and source URLs (the file
 * hashes pin the bytes).
 */
export function trainingHash(run: RunSpec, data: DownloadResult, code: string): string {
  const { sources: _sources, label: _label, ...dataset } = run.dataset;
  const files = [...data.files].map((f) => [f.role, f.sha256]).sort();
  const basis = { model: run.model, dataset, seed: run.seed, training: run.training, files, code };
  return createHash('sha256').update(canonicalJson(basis)).digest('hex');
}

export const reuseKey = (hash: string) => `index/trainings/${hash.slice(0, 2)}/${hash}.json`;

/**
 * The finished training stored under the key of `run` on `data` with `code`, with every snapshot it
 * names re-hashed; what `lookupRun` returns, and what `run --dry-run` reports without starting anything.
 */
export async function findTraining(store: ArtifactStore, run: RunSpec, data: DownloadResult, code: string, signal?: AbortSignal): Promise<LookupResult> {
  const configHash = trainingHash(run, data, code);
  const base = { configHash, codeVersion: code };
  let entry: IndexEntry;
  try {
    entry = await getJson<IndexEntry>(store, reuseKey(configHash), { signal });
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return base;
    throw err;
  }
  // `final` is usually the last snapshot: each object is read and hashed once.
  const refs = new Map([...entry.train.snapshots, entry.train.final].map((ref) => [ref.key, ref]));
  for (const ref of refs.values()) {
    try {
      await store.get(ref.key, { sha256: ref.sha256, signal }); // re-hashes the bytes
    } catch (err) {
      return { ...base, rejected: `${entry.runId}: ${ref.key}: ${(err as Error).message}` };
    }
  }
  return { ...base, found: { runId: entry.runId, train: entry.train } };
}

export function createLookupRun(deps: { store: ArtifactStore }) {
  return async function lookupRun(input: LookupInput): Promise<LookupResult> {
    try {
      const code = reuseCodeVersion(await codeVersion());
      return await findTraining(deps.store, input.run, input.data, code, Context.current().cancellationSignal);
    } catch (err) {
      throw classify(err);
    }
  };
}

/**
 * Records a finished training under its reuse key; false when one is recorded already (the first one
 * stays: stored objects are never overwritten). Called by the train activity as its last step.
 */
export async function rememberTraining(store: ArtifactStore, input: RememberInput, signal?: AbortSignal): Promise<boolean> {
  const entry: IndexEntry = {
    configHash: input.configHash,
    codeVersion: input.codeVersion,
    runId: input.runId,
    experimentId: input.experimentId,
    train: input.train,
    recordedAt: new Date().toISOString(),
  };
  try {
    await putJson(store, reuseKey(input.configHash), entry, signal);
    return true;
  } catch (err) {
    if (err instanceof ObjectConflictError) return false;
    throw err;
  }
}
