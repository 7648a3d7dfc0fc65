/**
 * Run results moved out of workflow state: an experiment of thousands of runs cannot carry every
 * result through `continueAsNew` (Temporal caps payloads at about 2 MB), so finished results go to the
 * store as content-addressed JSON and the workflow keeps their references.
 */
import { Context } from '@temporalio/activity';
import type { ObjectRef } from '../artifacts/refs.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import type { RunResult } from '../workflows/types.js';
import { classify } from './errors.js';
import { getJson } from './json.js';
import type { Producer } from './types.js';

export const RESULT_PREFIX = 'results';

export function createPutRunResult(deps: { store: ArtifactStore }) {
  return async function putRunResult(input: Producer & { result: RunResult }): Promise<ObjectRef> {
    try {
      const bytes = new TextEncoder().encode(JSON.stringify(input.result));
      return await putContentAddressed(deps.store, RESULT_PREFIX, bytes, '.json', { contentType: 'application/json', signal: Context.current().cancellationSignal });
    } catch (err) {
      throw classify(err);
    }
  };
}

export function createGetRunResult(deps: { store: ArtifactStore }) {
  return async function getRunResult(input: Producer & { ref: ObjectRef }): Promise<RunResult> {
    try {
      return await getJson<RunResult>(deps.store, input.ref.key, { sha256: input.ref.sha256, signal: Context.current().cancellationSignal });
    } catch (err) {
      throw classify(err);
    }
  };
}
