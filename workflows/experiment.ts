/**
 * `experimentWorkflow`: expands an experiment's grid into child `runWorkflow`s and runs them in a
 * sliding window of `execution.concurrency`. A failed run is recorded and never fails its siblings.
 * The `progress` query tells the CLI where every run is. At the end, the `report` activity writes the
 * experiment's HTML report; a report that cannot be written is recorded, never a failed experiment.
 */
import { defineQuery, executeChild, isCancellation, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { expandRuns } from '../config/grid.js';
import { retryPolicy, runWorkflow } from './run.js';
import type { ExperimentInput, ExperimentProgress, ExperimentResult, RunSummary } from './types.js';

export const progressQuery = defineQuery<ExperimentProgress>('progress');

/** The innermost cause is the one a person can act on (e.g. the activity's own message). */
function rootCause(err: unknown): { type?: string; message: string } {
  let e = err as { cause?: unknown; message?: string; type?: string } | undefined;
  while (e && typeof e === 'object' && e.cause) e = e.cause as typeof e;
  return { type: e?.type, message: e?.message ?? String(err) };
}

export async function experimentWorkflow(params: ExperimentInput): Promise<ExperimentResult> {
  // A schedule starts every execution with the same input; each gets its own id from its workflow id,
  // `<schedule id>-<ISO time>`, less the time's colons, since ids become object keys (portable names).
  const input = { ...params, experimentId: params.experimentId ?? workflowInfo().workflowId.replace(/:/g, '') };
  const specs = expandRuns(input.config);
  const runs: RunSummary[] = specs.map((spec) => {
    const runId = `${input.experimentId}/${spec.name}`;
    return { name: spec.name, runId, workflowId: runId, stage: 'pending' };
  });
  const progress = (): ExperimentProgress => ({
    experimentId: input.experimentId,
    name: input.config.name,
    store: input.store,
    runs,
  });
  setHandler(progressQuery, progress);

  const startRun = async (i: number): Promise<void> => {
    const summary = runs[i];
    summary.stage = 'download';
    try {
      summary.result = await executeChild(runWorkflow, {
        workflowId: summary.workflowId,
        taskQueue: input.queues.workflows,
        args: [
          {
            experimentId: input.experimentId,
            runId: summary.runId,
            run: specs[i],
            queues: input.queues,
            execution: input.config.execution,
          },
        ],
      });
      summary.stage = 'completed';
    } catch (err) {
      // Cancelling the experiment cancels its runs: that ends the experiment, it is not a failed run.
      if (isCancellation(err)) throw err;
      summary.stage = 'failed';
      summary.error = rootCause(err);
    }
  };

  const window = new Set<Promise<void>>();
  for (let i = 0; i < specs.length; i++) {
    if (window.size >= input.config.execution.concurrency) await Promise.race(window);
    const p: Promise<void> = startRun(i).finally(() => window.delete(p));
    window.add(p);
  }
  await Promise.all(window);

  const failed = runs.some((r) => r.stage !== 'completed');
  const status: ExperimentResult['status'] = failed ? 'completed-with-failures' : 'completed';

  const { report } = proxyActivities<Activities>({
    taskQueue: input.queues.analysis,
    startToCloseTimeout: '30 minutes',
    retry: retryPolicy(input.config.execution.maxAttempts),
  });
  try {
    const written = await report({ experimentId: input.experimentId, result: { ...progress(), status }, specs });
    return { ...progress(), status, report: written };
  } catch (err) {
    return { ...progress(), status, reportError: rootCause(err) };
  }
}
