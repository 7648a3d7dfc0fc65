/**
 * The `trainPack` activity: for the runs of a pack (`execution.runsPerWorkflow` with `execution.local`),
 * one after another, what the run workflow would do in three local activities each: the reuse lookup,
 * the training (or the reused one), the distance table. For a sweep of tiny runs that is most of a run's
 * hand-offs between the workflow and its activities gone, and with them most of what Temporal costs per
 * run.
 *
 * Each step is the activity itself, called in this activity's context: the same objects are stored,
 * their manifests name `trainPack` and its attempt as producer, and trainings still take the worker's
 * train slots one at a time. A retry after a lost worker starts again from the first run; a run whose
 * training was recorded finds it (its own, not "reused"), and under `force` resumes from its checkpoints.
 *
 * It returns after the run that takes it past `PACK_BUDGET_MS` or `PACK_RESULT_BYTES` of results, so a
 * pack of long runs reports progress run by run and no result grows past what a history event holds;
 * the workflow calls it again for the rest. A run whose steps fail ends the call before it: the workflow
 * runs that one with its own local activities and retry policy (a bad run fails alone), then goes on.
 */
import { Context } from '@temporalio/activity';
import type { LookupInput, LookupResult } from './reuse.js';
import type { DistanceInput, DistanceResult, PackedRunSteps, TrainInput, TrainPackInput, TrainPackResult, TrainResult } from './types.js';

/** A call returns after the run that takes it past this long... */
export const PACK_BUDGET_MS = 5_000;
/** ...or past this many bytes of results (JSON). */
export const PACK_RESULT_BYTES = 256 * 1024;

export interface TrainPackSteps {
  lookupRun: (input: LookupInput) => Promise<LookupResult>;
  train: (input: TrainInput) => Promise<TrainResult>;
  distance: (input: DistanceInput) => Promise<DistanceResult>;
}

export function createTrainPack(steps: TrainPackSteps, limits = { ms: PACK_BUDGET_MS, bytes: PACK_RESULT_BYTES }) {
  return async function trainPack(input: TrainPackInput): Promise<TrainPackResult> {
    const ctx = Context.current();
    const started = performance.now();
    const runs: PackedRunSteps[] = [];
    let bytes = 0;
    for (const { runId, run } of input.runs) {
      ctx.cancellationSignal.throwIfAborted();
      const producer = { experimentId: input.experimentId, runId };
      let done: PackedRunSteps;
      try {
        const { configHash, codeVersion, found } = await steps.lookupRun({ ...producer, run, data: input.data });
        // Its own training, recorded by an earlier attempt of this activity, is not a reuse.
        const reuse = found && (found.runId === runId || !input.force) ? found : undefined;
        const train = reuse ? reuse.train : await steps.train({ ...producer, run, data: input.data, configHash, codeVersion });
        const { p, changed, references, layers } = run.analyses.distance;
        const distance = await steps.distance({ ...producer, snapshots: train.snapshots, p, changed, references, layers });
        done = { runId, configHash, codeVersion, ...(reuse && reuse.runId !== runId ? { reusedFrom: reuse.runId } : {}), train, distance };
      } catch (err) {
        if (ctx.cancellationSignal.aborted) throw err;
        const message = err instanceof Error ? err.message : String(err);
        ctx.log.warn('trainPack: a run failed; the workflow runs it on its own', { runId, error: message });
        return { runs, stoppedAt: { runId, message } };
      }
      runs.push(done);
      bytes += JSON.stringify(done).length;
      if (performance.now() - started >= limits.ms || bytes >= limits.bytes) break;
    }
    return { runs };
  };
}
