/**
 * `runWorkflow`: one cell of an experiment's grid, download -> train -> distance -> plot.
 * Only references travel between the steps; the tensors stay in the store.
 */
import { defineQuery, proxyActivities, setHandler, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { NON_RETRYABLE_TYPES } from '../activities/failures.js';
import type { RunInput, RunResult, RunStage } from './types.js';

/** How every activity of paramtrail is retried: backing off to a minute, never for bad input or data. */
export function retryPolicy(maximumAttempts: number): NonNullable<ActivityOptions['retry']> {
  return {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '1m',
    maximumAttempts,
    nonRetryableErrorTypes: [...NON_RETRYABLE_TYPES],
  };
}

export const runStageQuery = defineQuery<RunStage>('stage');

function activityOptions(input: RunInput, taskQueue: string, startToCloseTimeout: ActivityOptions['startToCloseTimeout']): ActivityOptions {
  return {
    taskQueue,
    startToCloseTimeout,
    // A worker that dies stops heartbeating; this is how soon another worker takes the attempt over.
    heartbeatTimeout: input.execution.heartbeatTimeout as ActivityOptions['heartbeatTimeout'],
    retry: retryPolicy(input.execution.maxAttempts),
  };
}

export async function runWorkflow(input: RunInput): Promise<RunResult> {
  let stage: RunStage = 'pending';
  setHandler(runStageQuery, () => stage);

  const { download, train } = proxyActivities<Activities>(activityOptions(input, input.queues.train, '7 days'));
  const { distance, plot } = proxyActivities<Activities>(activityOptions(input, input.queues.analysis, '1 hour'));
  const producer = { experimentId: input.experimentId, runId: input.runId };

  try {
    stage = 'download';
    const data = await download({ ...producer, dataset: input.run.dataset });
    stage = 'train';
    const trained = await train({ ...producer, run: input.run, data });
    stage = 'distance';
    const table = await distance({ ...producer, snapshots: trained.snapshots, p: input.run.analyses.distance.p });
    stage = 'plot';
    // A diverged run is analysed on the snapshots it stored before diverging; one that diverged in its
    // first epoch has only its initial weights, and a figure of nothing but the zero baseline is skipped.
    const figures = trained.snapshots.length > 1 ? await plot({ ...producer, runName: input.run.name, table: table.table }) : { figures: [] };
    stage = 'completed';
    return { runId: input.runId, name: input.run.name, download: data, train: trained, distance: table, plot: figures };
  } catch (err) {
    stage = 'failed';
    throw err;
  }
}
