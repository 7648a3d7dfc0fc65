/**
 * Run results and summaries moved out of workflow state: an experiment of thousands of runs cannot carry
 * every result, nor every run's summary, through `continueAsNew` or return them (Temporal caps payloads
 * at about 2 MB). Finished results go to the store as content-addressed JSON and their summaries keep
 * the references; the summaries of each execution's runs then go to the store too, in chunks
 * (`SummaryChunk`), which the experiment carries and returns instead. `loadRuns` reads them back.
 */
import { Context } from '@temporalio/activity';
import { mapLimit } from '../artifacts/concurrency.js';
import type { ObjectRef } from '../artifacts/refs.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import type { RunResult, RunSummary, SummaryChunk } from '../workflows/types.js';
import { classify } from './errors.js';
import { getJson } from './json.js';
import type { CompareBatchResult, CompareOutcome, Producer } from './types.js';

export const RESULT_PREFIX = 'results';
/** Results `putRunResults` writes at once. */
const PUTS_AT_ONCE = 8;

/** Stores a value as content-addressed JSON under `results/`, in an activity's context. */
export async function putResultJson(store: ArtifactStore, value: unknown): Promise<ObjectRef> {
  try {
    const bytes = new TextEncoder().encode(JSON.stringify(value));
    return await putContentAddressed(store, RESULT_PREFIX, bytes, '.json', { contentType: 'application/json', signal: Context.current().cancellationSignal });
  } catch (err) {
    throw classify(err);
  }
}

/** Reads a value `putResultJson` stored, checking its sha256, in an activity's context. */
async function getResultJson<T>(store: ArtifactStore, ref: ObjectRef): Promise<T> {
  try {
    return await getJson<T>(store, ref.key, { sha256: ref.sha256, signal: Context.current().cancellationSignal });
  } catch (err) {
    throw classify(err);
  }
}

export function createPutRunResult(deps: { store: ArtifactStore }) {
  return function putRunResult(input: Producer & { result: RunResult }): Promise<ObjectRef> {
    return putResultJson(deps.store, input.result);
  };
}

/**
 * Many runs' results, each stored as `putRunResult` stores it, a few at once: an experiment moving
 * hundreds of finished runs makes one activity call per batch, not one per run. Refs in the results' order.
 */
export function createPutRunResults(deps: { store: ArtifactStore }) {
  return function putRunResults(input: Producer & { results: RunResult[] }): Promise<ObjectRef[]> {
    const ctx = Context.current();
    return mapLimit(input.results, PUTS_AT_ONCE, async (result) => {
      ctx.heartbeat();
      return putResultJson(deps.store, result);
    });
  };
}

export function createGetRunResult(deps: { store: ArtifactStore }) {
  return function getRunResult(input: Producer & { ref: ObjectRef }): Promise<RunResult> {
    return getResultJson<RunResult>(deps.store, input.ref);
  };
}

export function createPutSummaries(deps: { store: ArtifactStore }) {
  return function putSummaries(input: Producer & { runs: RunSummary[] }): Promise<ObjectRef> {
    return putResultJson(deps.store, input.runs);
  };
}

export function createGetSummaries(deps: { store: ArtifactStore }) {
  return function getSummaries(input: Producer & { ref: ObjectRef }): Promise<RunSummary[]> {
    return getResultJson<RunSummary[]>(deps.store, input.ref);
  };
}

/** Every run of an experiment's progress or result, in order: those in its chunks (read from the store), then `runs`. */
export async function loadRuns<R = RunSummary>(store: ArtifactStore, progress: { runs: R[]; chunks?: SummaryChunk[] }, signal?: AbortSignal): Promise<R[]> {
  const runs: R[] = [];
  for (const chunk of progress.chunks ?? []) runs.push(...(await getJson<R[]>(store, chunk.ref.key, { sha256: chunk.ref.sha256, signal })));
  return [...runs, ...progress.runs];
}

/** The outcomes of an experiment's compare batches, in pair order (the report and the CLI read them). */
export async function loadCompareOutcomes(store: ArtifactStore, batches: ReadonlyArray<Pick<CompareBatchResult, 'outcomes'>>, signal?: AbortSignal): Promise<CompareOutcome[]> {
  const all: CompareOutcome[] = [];
  for (const b of batches) all.push(...(await getJson<CompareOutcome[]>(store, b.outcomes.key, { sha256: b.outcomes.sha256, signal })));
  return all;
}
