/**
 * Builds and runs the Temporal Workers of one process: the workflow worker and the activity workers
 * for the `train` and `analysis` queues, any subset of them. Used by `paramtrail worker` and by tests,
 * which run workers in-process against a real server.
 */
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, Worker, type NativeConnection, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities, TRAIN_ACTIVITIES, type ActivityDeps } from '../activities/index.js';
import { codeVersion } from '../activities/version.js';
import type { QueueNames } from '../workflows/types.js';
import type { Role } from './config.js';
import { withSlots } from './slots.js';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** Bundles the workflow code once per process (webpack takes seconds). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietBundlerLogger });
  return bundle;
}

const noop = () => undefined;
const quietBundlerLogger = { trace: noop, debug: noop, info: noop, warn: console.warn, error: console.error, log: noop };

export interface WorkerSetOptions {
  connection: NativeConnection;
  namespace: string;
  queues: QueueNames;
  roles: readonly Role[];
  deps: ActivityDeps;
  /** Trainings at once in this process. */
  trainSlots?: number;
  identity?: string;
}

/** Creates the Workers; call `run()` on each (or `runWorkers`). */
export async function createWorkers(opts: WorkerSetOptions): Promise<Worker[]> {
  // Before any activity trains: reading the code version runs git once, and every run records it.
  await codeVersion();
  const activities = createActivities(opts.deps);
  const common = { connection: opts.connection, namespace: opts.namespace, ...(opts.identity ? { identity: opts.identity } : {}) };
  const workers: Worker[] = [];
  if (opts.roles.includes('workflows')) {
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: opts.queues.workflows,
        workflowBundle: await workflowBundle(),
        // The steps a run workflow may run as local activities (execution.local, the reuse lookup);
        // this worker polls no activity tasks. Local trainings take the process's train slots.
        activities: { lookupRun: activities.lookupRun, train: withSlots(activities.train, opts.trainSlots ?? 1), distance: activities.distance },
        enableNonLocalActivities: false,
      }),
    );
  }
  if (opts.roles.includes('train')) {
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: opts.queues.train,
        activities: { download: activities.download, train: activities.train },
        maxConcurrentActivityTaskExecutions: opts.trainSlots ?? 1,
        // Heartbeats carry training progress (epoch, batch) that `paramtrail run` shows; send them every
        // few seconds rather than every 0.8 x heartbeatTimeout. A handful of trainings per worker makes
        // this a trivial load on the server.
        maxHeartbeatThrottleInterval: '3s',
      }),
    );
  }
  if (opts.roles.includes('analysis')) {
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: opts.queues.analysis,
        activities: Object.fromEntries(Object.entries(activities).filter(([name]) => !(TRAIN_ACTIVITIES as readonly string[]).includes(name))),
        maxConcurrentActivityTaskExecutions: 2,
      }),
    );
  }
  return workers;
}

/** Runs the workers until they are shut down (by signal, or `shutdown()` on each). */
export async function runWorkers(workers: Worker[]): Promise<void> {
  await Promise.all(workers.map((w) => w.run()));
}
