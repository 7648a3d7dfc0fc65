/**
 * Builds and runs the Temporal Workers of one process: the workflow worker and the activity workers
 * for the `train` and `analysis` queues, any subset of them. Used by `paramtrail worker` and by tests,
 * which run workers in-process against a real server.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Context } from '@temporalio/activity';
import { bundleWorkflowCode, Worker, type NativeConnection, type WorkflowBundle } from '@temporalio/worker';
import { createActivities, LOCAL_ACTIVITIES, TRAIN_ACTIVITIES, type ActivityDeps } from '../activities/index.js';
import { createTrainPack } from '../activities/pack.js';
import { codeVersion } from '../activities/version.js';
import { PROJECT_ROOT } from '../infra/tools.js';
import type { QueueNames } from '../workflows/types.js';
import type { Role } from './config.js';
import { slotPool } from './slots.js';
import { workerSourcesHash } from './sources.js';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/** Where built workflow bundles are kept, one per version of the sources. */
export const BUNDLE_CACHE = join(PROJECT_ROOT, 'node_modules', '.cache', 'paramtrail');

/**
 * What the bundle is built from: the worker's sources (worker/sources.ts), which include every file the
 * workflows may import, and the package lock. Any change to them builds a new bundle.
 */
export const bundleSourcesHash = workerSourcesHash;

let bundle: Promise<WorkflowBundle> | undefined;

/**
 * The workflow code, bundled once per version of its sources: webpack takes seconds of CPU and leaves
 * tens of MB in the heap of every process that runs it, so the first worker of a version builds the
 * bundle into BUNDLE_CACHE and every later one reads it. Once per process either way.
 */
export function workflowBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleSourcesHash().then((hash) => cachedBundle(BUNDLE_CACHE, hash));
  return bundle;
}

/**
 * The bundle `workflows-<hash>.js` in `dir`, built and stored there first if it is not. A folder that
 * cannot be written (a read-only install) only costs the build; older versions are removed.
 */
export async function cachedBundle(dir: string, hash: string): Promise<WorkflowBundle> {
  const name = `workflows-${hash}.js`;
  const file = join(dir, name);
  const cached = await readFile(file, 'utf8').catch(() => undefined);
  if (cached) return { code: cached };
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietBundlerLogger });
  // Whole or not at all, also when workers starting together build it at once.
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(tmp, code);
    await rename(tmp, file);
    for (const old of await readdir(dir)) {
      if (/^workflows-[0-9a-f]+\.js$/.test(old) && old !== name) await rm(join(dir, old), { force: true });
    }
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    console.warn(`paramtrail: could not keep the workflow bundle in ${dir} (${(err as Error).message}); each worker will build its own`);
  }
  return { code };
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
  // Trainings in this process, alone or in a pack's local activity, share its train slots. One waiting
  // for a slot is cancelled as the activity is, not only once it has the slot.
  const trainSlot = slotPool(opts.trainSlots ?? 1, { signal: () => Context.current().cancellationSignal });
  const train = trainSlot(activities.train);
  const common = { connection: opts.connection, namespace: opts.namespace, ...(opts.identity ? { identity: opts.identity } : {}) };
  const workers: Worker[] = [];
  if (opts.roles.includes('workflows')) {
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: opts.queues.workflows,
        workflowBundle: await workflowBundle(),
        // The steps a run workflow may run as local activities (execution.local, the reuse lookup,
        // storing a large grid's results); this worker polls no activity tasks. Local trainings take
        // the process's train slots.
        activities: {
          lookupRun: activities.lookupRun,
          train,
          distance: activities.distance,
          trainPack: createTrainPack({ lookupRun: activities.lookupRun, train, distance: activities.distance }),
          putRunResults: activities.putRunResults,
        },
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
        activities: Object.fromEntries(Object.entries(activities).filter(([name]) => !([...TRAIN_ACTIVITIES, ...LOCAL_ACTIVITIES] as readonly string[]).includes(name))),
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
