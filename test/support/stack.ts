/**
 * The whole pipeline in one test process for workflow and end-to-end tests: a Temporal dev server
 * (test/support/temporal.ts) and workflow, train and analysis workers on task queues of their own.
 *
 * Usage: `before(async () => { stack = await startTestStack({ name: 'wf', deps: { store } }) })`,
 * `after(() => stack?.stop())`, and `await stack.execute(config)` in a test.
 */
import { randomUUID } from 'node:crypto';
import type { WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ActivityDeps } from '../../activities/index.js';
import type { ExperimentConfig } from '../../config/experiment.js';
import { createWorkers, runWorkers } from '../../worker/run.js';
import { experimentWorkflow } from '../../workflows/index.js';
import { queueNames, type ExperimentInput, type ExperimentResult, type QueueNames } from '../../workflows/types.js';
import { startTestTemporal } from './temporal.js';

export interface TestWorkers {
  /** Shuts the workers down and waits until they have stopped (a worker that failed rejects here). */
  stop(): Promise<void>;
}

/** Workflow, train and analysis workers for `queues`, running in this process until `stop()`. */
export async function startTestWorkers(temporal: TestWorkflowEnvironment, queues: QueueNames, deps: ActivityDeps, trainSlots?: number): Promise<TestWorkers> {
  const workers = await createWorkers({
    connection: temporal.nativeConnection,
    namespace: temporal.namespace ?? 'default',
    queues,
    roles: ['workflows', 'train', 'analysis'],
    deps,
    ...(trainSlots === undefined ? {} : { trainSlots }),
  });
  const running = runWorkers(workers);
  return {
    async stop() {
      for (const w of workers) w.shutdown();
      await running;
    },
  };
}

export interface TestStackArgs {
  /** Starts the task queues' names, followed by a random id so no two tests share a queue. */
  name: string;
  /** What the activities use: the store (whose `location` every experiment records) and the backend. */
  deps: ActivityDeps;
  /** Trainings at once (the workers' default when omitted). */
  trainSlots?: number;
}

/** What a test may set of an experiment's input besides its config, queues and store. */
export type StartExtra = Pick<ExperimentInput, 'experimentId' | 'force' | 'localLimits' | 'compareBatching'>;

export interface TestStack {
  temporal: TestWorkflowEnvironment;
  queues: QueueNames;
  /**
   * Runs experimentWorkflow on the stack's queues and store to its result. The experiment id defaults
   * to the config's name and a random suffix.
   */
  execute(config: ExperimentConfig, extra?: StartExtra): Promise<ExperimentResult>;
  /** Starts experimentWorkflow as `execute` does, for a test that needs its handle (e.g. its first execution). */
  start(config: ExperimentConfig, extra?: StartExtra): Promise<WorkflowHandleWithFirstExecutionRunId<typeof experimentWorkflow>>;
  /** Stops the workers, then the server. */
  stop(): Promise<void>;
}

export async function startTestStack({ name, deps, trainSlots }: TestStackArgs): Promise<TestStack> {
  const queues = queueNames(`${name}-${randomUUID()}`);
  const temporal = await startTestTemporal();
  let workers: TestWorkers;
  try {
    workers = await startTestWorkers(temporal, queues, deps, trainSlots);
  } catch (err) {
    await temporal.teardown();
    throw err;
  }
  const start = (config: ExperimentConfig, { experimentId = `${config.name}-${randomUUID().slice(0, 8)}`, ...extra }: StartExtra = {}) =>
    temporal.client.workflow.start(experimentWorkflow, {
      workflowId: experimentId,
      taskQueue: queues.workflows,
      args: [{ experimentId, config, queues, store: deps.store.location, ...extra }],
    });
  return {
    temporal,
    queues,
    start,
    async execute(config, extra) {
      return (await start(config, extra)).result();
    },
    async stop() {
      try {
        await workers.stop();
      } finally {
        await temporal.teardown();
      }
    },
  };
}
