/**
 * What orchestration costs: an experiment of many tiny real runs through paramtrail (a Temporal dev
 * server, a local store, worker processes) against the same trainings in a plain loop in one process,
 * measured in the same invocation on the same data.
 *
 * Run: npm run bench:orchestration [-- --runs 100 --workers 2 --train 256 --batch 64 --concurrency C --pack N
 *                                      --figures --mode local|queues|both --store local|s3 --v8-defaults
 *                                      --decoded cold|warm]
 *
 * Each run is an MLP (one hidden layer of 32) trained for one epoch on `--train` Fashion-MNIST examples
 * (a few batches), one seed per run. The plain loop loads the data once, then per run builds the model,
 * trains it with ml/train and evaluates it on the test subset: what a script would do. paramtrail does
 * the same trainings plus what it is for: a durable workflow per run, the reuse lookup, snapshots and
 * checkpoints in the store with lineage manifests, the distance table, and at the end the experiment's
 * HTML report. Per-run figures are off (`analyses.runFigures: false`, the setting for a large sweep;
 * `--figures` draws them). Both wall times include loading the data; neither includes starting
 * processes (the workers are polling before the clock starts). The runs' end is read from the
 * experiment's history (its last child closing), not polled. The stores and the workers' state live in
 * a temporary folder under paramtrail's state folder (`.paramtrail`, where `paramtrail run` keeps its
 * local store), removed at the end. `--store s3` puts paramtrail's and the activities loop's stores in a
 * versitygw S3 server started for the benchmark (each under a prefix of its own), as on a cluster; the
 * plain loop reads its data from local files either way.
 *
 * paramtrail runs the experiment twice (`--mode both`, each time with a fresh store, server and workers):
 * with `execution.local` (each run's training and distances as local activities in the run
 * workflow's worker, the setting for sweeps of tiny runs) and with every step a task on the train and
 * analysis queues (the default). The plain loop runs in a process of its own; another process runs
 * every run's activities one after another without Temporal (lookupRun, train, distance on a local store),
 * so paramtrail's own steps and Temporal's share of the overhead can be told apart; then as many such
 * processes as there are workers share the runs at once: what paramtrail would take with no
 * orchestration at all. `--pack N` runs N runs per workflow (`execution.runsPerWorkflow`). This
 * machine's speed drifts by more than the target within a minute, so the plain loop runs again after
 * each paramtrail experiment, and each ratio is against the mean of the plain loops just before and
 * just after it.
 *
 * Workers keep decoded datasets under their state folder (activities/decoded-cache.ts). Each
 * experiment's workers get a state folder of their own, so by default (`--decoded cold`) they decode
 * Fashion-MNIST as on a machine that never has; `--decoded warm` decodes it there before the clock, as on
 * a machine that has trained on it before. The plain loop decodes the files either way.
 *
 * Prints the times and ratios, for the runs alone and with the report; where the CPU went (the plain
 * loop's per run, paramtrail's workers' and Temporal server's per run, measured over the experiment:
 * all processes share the machine's cores); the store calls a run's activities make, by method (each
 * one or two round trips on S3); where a run's wall time went, from the runs' histories; and how many
 * trainings each worker process ran (a pack's runs all go to the worker that took the pack).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { constants as perfConstants, PerformanceObserver } from 'node:perf_hooks';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { sha256Hex } from '../artifacts/hash.js';
import { LocalStore } from '../artifacts/local.js';
import { openStore } from '../artifacts/open.js';
import type { ArtifactStore } from '../artifacts/store.js';
import { loadRunData } from '../activities/data.js';
import { getJson } from '../activities/json.js';
import { loadRuns } from '../activities/results.js';
import { createActivities } from '../activities/index.js';
import { contentKey, DATASET_PREFIX } from '../activities/keys.js';
import type { DownloadResult } from '../activities/types.js';
import { REGISTRIES } from '../cli/experiment.js';
import { validateExperiment, type ExperimentConfig } from '../config/experiment.js';
import { expandRuns } from '../config/grid.js';
import { s3Env } from '../infra/dev.js';
import { startS3Server, type S3Server } from '../infra/s3server.js';
import { startTemporalDevServer } from '../infra/temporal.js';
import { intraOpThreads, selectBackend } from '../ml/backend.js';
import { getDataset } from '../ml/data/datasets.js';
import { buildModel } from '../ml/models/registry.js';
import { train } from '../ml/train/loop.js';
import { experimentWorkflow } from '../workflows/index.js';
import { queueNames, type ExperimentResult, type RunResult } from '../workflows/types.js';
import { DEFAULT_STATE_DIR, WORKER_V8_FLAGS, workerConfigFromEnv } from '../worker/config.js';
import { cpuSeconds } from './cpu.js';
import { positiveInt } from './args.js';
import { startWorker, stopWorkers, type Worker } from './workers.js';

const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

function options() {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '100' },
      workers: { type: 'string', default: '2' },
      train: { type: 'string', default: '256' },
      batch: { type: 'string', default: '64' },
      concurrency: { type: 'string' },
      pack: { type: 'string', default: '1' },
      figures: { type: 'boolean', default: false },
      mode: { type: 'string', default: 'both' },
      store: { type: 'string', default: 'local' },
      loop: { type: 'string' },
      shard: { type: 'string' },
      'v8-defaults': { type: 'boolean', default: false },
      decoded: { type: 'string', default: 'cold' },
    },
  });
  if (values.decoded !== 'cold' && values.decoded !== 'warm') throw new Error(`--decoded: expected cold or warm, found ${JSON.stringify(values.decoded)}`);
  const mode = values.mode ?? 'both';
  if (!['local', 'queues', 'both'].includes(mode)) throw new Error(`--mode: expected local, queues or both, found ${JSON.stringify(mode)}`);
  const workers = positiveInt('workers', values.workers);
  if (values.store !== 'local' && values.store !== 's3') throw new Error(`--store: expected local or s3, found ${JSON.stringify(values.store)}`);
  return {
    runs: positiveInt('runs', values.runs),
    workers,
    train: positiveInt('train', values.train),
    batch: positiveInt('batch', values.batch),
    // Tiny runs are latency-bound: each hands off between the server and a worker several times (tens
    // of ms each), so more runs are kept in flight than a worker has training slots.
    concurrency: positiveInt('concurrency', values.concurrency ?? String(8 * workers)),
    pack: positiveInt('pack', values.pack),
    figures: values.figures ?? false,
    modes: mode === 'both' ? [true, false] : [mode === 'local'],
    store: values.store,
    // Internal: the child process that runs one loop (loopProcess starts it).
    loop: values.loop as 'plain' | 'activities' | undefined,
    // Internal: "i/n", the activities loop runs every n-th run from the i-th.
    shard: values.shard,
    v8Defaults: values['v8-defaults'] ?? false,
    /** Whether the workers' machine has decoded the dataset before (activities/decoded-cache.ts). */
    decoded: values.decoded,
  };
}

type Options = ReturnType<typeof options>;

/**
 * The URL of a store named `name`: a folder under `dir`, or with `--store s3` a prefix in the benchmark's
 * S3 bucket (PARAMTRAIL_BENCH_BUCKET, set by main for every process it starts), named with this
 * process's id since each loop process has a `dir` of its own.
 */
function storeUrl(o: Options, dir: string, name: string): string {
  return o.store === 's3' ? `s3://${process.env.PARAMTRAIL_BENCH_BUCKET}/${name}-${process.pid}` : `file://${join(dir, name)}`;
}

/**
 * TensorFlow's intra-op threads for each of the processes that train side by side (the workers, the
 * activities loops sharing the runs): the cores shared out among them. TensorFlow's default is every
 * core per process, and processes that share cores then spin against each other's threads: on 2 cores,
 * 2 processes of runs of 32 batches took 86 ms of CPU per run with the default and 66 ms with 1 each.
 * The plain loop and the one-process activities loop train alone and keep the default.
 * TF_NUM_INTRAOP_THREADS in the environment sets every process.
 */
function sharedThreads(o: Options): string {
  return process.env.TF_NUM_INTRAOP_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / o.workers)));
}

function experiment(o: Options, local: boolean): ExperimentConfig {
  return validateExperiment(
    {
      name: 'bench-orchestration',
      models: [{ name: 'mlp', args: { hidden: [32] } }],
      datasets: [{ name: 'fashion-mnist', subset: { train: o.train, test: 100 }, validationSplit: 0.1, sources: [`file://${FASHION_MNIST_DIR}/`] }],
      seeds: Array.from({ length: o.runs }, (_, i) => i),
      training: { epochs: 1, batchSize: o.batch, optimizer: { name: 'sgd', learningRate: 0.05 } },
      execution: { concurrency: o.concurrency, heartbeatTimeout: '30s', maxAttempts: 3, local, runsPerWorkflow: o.pack },
      analyses: { runFigures: o.figures },
    },
    'benchmark experiment',
    REGISTRIES,
  );
}

/** The dataset's raw files put in a store of the loop's own, as the download activity would have. */
async function storedDataset(store: ArtifactStore): Promise<DownloadResult> {
  const def = getDataset('fashion-mnist');
  const files = [];
  for (const file of def.files) {
    const bytes = new Uint8Array(await readFile(join(FASHION_MNIST_DIR, file.name)));
    const ref = await store.put(contentKey(DATASET_PREFIX, sha256Hex(bytes)), bytes);
    files.push({ ...ref, role: file.role, name: file.name, source: 'file' });
  }
  return { dataset: def.name, files, fetched: files.length, cached: 0 };
}

interface LoopTimes {
  seconds: number;
  cpu: number;
  /** Full (mark-compact) garbage collections while it ran. */
  fullGcs: number;
  /** The activities loop's store calls by method, over its runs (each a round trip on S3). */
  requests?: Record<string, number>;
}

/** The store with every call counted by method into `counts`. */
function countingStore(store: ArtifactStore, counts: Record<string, number>): ArtifactStore {
  return new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function' || prop === 'locate') return value;
      return (...args: unknown[]) => {
        counts[String(prop)] = (counts[String(prop)] ?? 0) + 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/** Counts this process's full garbage collections from now on. */
function fullGcCounter(): { count: () => number } {
  let n = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (((e as { detail?: { kind?: number } }).detail)?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) n++;
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    count: () => {
      observer.disconnect();
      return n;
    },
  };
}

function measure(): () => LoopTimes {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const gcs = fullGcCounter();
  return () => {
    const cpu = process.cpuUsage(cpu0);
    return { seconds: (performance.now() - t0) / 1000, cpu: (cpu.user + cpu.system) / 1e6, fullGcs: gcs.count() };
  };
}

/** The same trainings in one process: load once, then build, train and evaluate each run. */
async function plainLoop(config: ExperimentConfig, dir: string): Promise<LoopTimes> {
  const done = measure();
  const store = new LocalStore(join(dir, 'loop-store'));
  const spec = config.datasets[0]!;
  const data = await loadRunData(store, spec, await storedDataset(store));
  for (const seed of config.seeds) {
    const model = buildModel(config.models[0]!, { inputShape: data.def.inputShape, numClasses: data.def.numClasses });
    await train({
      model,
      data: { train: data.train, val: data.val, inputShape: data.def.inputShape, numClasses: data.def.numClasses },
      epochs: config.training.epochs,
      batchSize: config.training.batchSize,
      optimizer: config.training.optimizer,
      init: config.training.init,
      seed,
      test: data.test,
      onEpoch: async () => undefined,
    });
    model.dispose();
  }
  return done();
}

/**
 * What a run's activities cost without Temporal: lookupRun, train and distance of every run, one after
 * another in a process of its own on a local store of their own, started with a worker's V8 options.
 * Between this and the plain loop is what paramtrail's own steps cost (snapshots, checkpoints, manifests,
 * the distance table); between this and the workers' CPU is what Temporal costs. The clock starts once
 * the dataset is decoded and its splits prepared, as a worker finds them after its first run: its time
 * has no data loading, which the plain loop's includes once. `--v8-defaults` starts it with V8 as a plain
 * script has it, to see what the worker's options change.
 */
async function activitiesLoop(config: ExperimentConfig, o: Options, dir: string, shard = '0/1'): Promise<LoopTimes> {
  const [index, count] = shard.split('/').map(Number) as [number, number];
  const store = openStore(storeUrl(o, dir, 'activities-store'), process.env);
  const data = await storedDataset(store);
  await loadRunData(store, config.datasets[0]!, data);
  const requests: Record<string, number> = {};
  const activities = createActivities({ store: countingStore(store, requests), backend: 'auto' });
  const quiet = () => undefined;
  const logger = { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: console.warn, error: console.error };
  // MockActivityEnvironment.run does not infer the activity's types.
  const run = <A, R>(fn: (input: A) => Promise<R>, input: A) => new MockActivityEnvironment({}, { logger }).run(fn as never, input as never) as Promise<R>;
  const done = measure();
  for (const spec of expandRuns(config).filter((_, i) => i % count === index)) {
    const producer = { experimentId: 'bench-activities', runId: `bench-activities/${spec.name}` };
    const { configHash, codeVersion } = await run(activities.lookupRun, { ...producer, run: spec, data });
    const trained = await run(activities.train, { ...producer, run: spec, data, configHash, codeVersion });
    const { p, changed, references } = spec.analyses.distance;
    await run(activities.distance, { ...producer, snapshots: trained.snapshots, p, changed, references });
  }
  return { ...done(), requests };
}

/** Wall seconds until every run completed, and until the experiment (with its report) completed. */
interface ParamtrailTimes {
  /** Wall seconds until the last run closed, and until the experiment (with its report) completed. */
  runs: number;
  total: number;
  /** CPU seconds over the experiment: every worker process together, and the Temporal server. */
  workersCpu: number;
  serverCpu: number;
  result: ExperimentResult;
  /** Mean milliseconds per run of each activity type and of workflow tasks; per workflow from start to close. */
  breakdown: Record<string, number>;
}

/** Epoch milliseconds of a history event. */
const eventMs = (e: { eventTime?: { seconds?: unknown; nanos?: number | null } | null }) =>
  Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;

/**
 * Where a run's time went, read from the run workflows' histories (a pack's once): mean ms per run of
 * each activity and of workflow tasks, and mean ms per workflow from start to close.
 */
async function runBreakdown(client: Client, result: ExperimentResult): Promise<Record<string, number>> {
  const sums: Record<string, number> = {};
  const add = (k: string, ms: number) => void (sums[k] = (sums[k] ?? 0) + ms);
  const workflowIds = [...new Set(result.runs.map((r) => r.workflowId))];
  let startToClose = 0;
  for (const workflowId of workflowIds) {
    const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const byId = new Map(events.map((e) => [String(e.eventId), e]));
    for (const e of events) {
      const done = e.activityTaskCompletedEventAttributes;
      if (done) {
        const started = byId.get(String(done.startedEventId))!;
        const scheduled = byId.get(String(done.scheduledEventId))!;
        const type = scheduled.activityTaskScheduledEventAttributes!.activityType!.name!;
        add(`${type} (queued)`, eventMs(started) - eventMs(scheduled));
        add(type, eventMs(e) - eventMs(started));
      }
      const wft = e.workflowTaskCompletedEventAttributes;
      if (wft) {
        const started = byId.get(String(wft.startedEventId))!;
        const scheduled = byId.get(String(wft.scheduledEventId))!;
        add('workflow tasks (queued)', eventMs(started) - eventMs(scheduled));
        add('workflow tasks', eventMs(e) - eventMs(started));
      }
    }
    startToClose += eventMs(events.at(-1)!) - eventMs(events[0]!);
  }
  const perRun = Object.entries(sums).map(([k, v]) => [k, v / result.runs.length] as const);
  return Object.fromEntries([...perRun, ['workflow, start to close', startToClose / workflowIds.length]]);
}

/** How many trainings each worker process ran (from each training's attempt records), most first. */
function trainingsPerWorker(result: ExperimentResult): number[] {
  const counts = new Map<string, number>();
  for (const run of result.runs) {
    const worker = run.result?.train.attempts.at(-1)?.worker;
    if (worker) counts.set(worker, (counts.get(worker) ?? 0) + 1);
  }
  return [...counts.values()].sort((a, b) => b - a);
}

async function throughParamtrail(config: ExperimentConfig, o: Options, dir: string): Promise<ParamtrailTimes> {
  const temporal = await startTemporalDevServer({ env: process.env, headless: true });
  const workers: Worker[] = [];
  // A store of its own per experiment: nothing to reuse from another mode's trainings.
  const mode = config.execution.local ? 'local' : 'queues';
  const store = storeUrl(o, dir, `store-${mode}`);
  // A state folder of its own too: a decoded dataset is kept there only when asked for (--decoded warm).
  const stateDir = join(dir, `state-${mode}`);
  if (o.decoded === 'warm') {
    const warmStore = new LocalStore(join(dir, `warm-${mode}`));
    await loadRunData(warmStore, config.datasets[0]!, await storedDataset(warmStore), { decodedCache: workerConfigFromEnv({ ...process.env, PARAMTRAIL_STATE_DIR: stateDir }).decodedCache });
  }
  try {
    const prefix = 'bench';
    const env = {
      ...process.env,
      TEMPORAL_ADDRESS: temporal.address,
      PARAMTRAIL_TASK_QUEUE: prefix,
      PARAMTRAIL_STORE: store,
      PARAMTRAIL_STATE_DIR: stateDir,
      PARAMTRAIL_TRAIN_SLOTS: '1',
      TF_NUM_INTRAOP_THREADS: sharedThreads(o),
    };
    for (let i = 0; i < o.workers; i++) workers.push(await startWorker(env));
    const connection = await Connection.connect({ address: temporal.address });
    try {
      const client = new Client({ connection });
      const experimentId = `bench-${Date.now()}`;
      const cpu = () => ({ workers: workers.reduce((sum, w) => sum + cpuSeconds(w.child.pid!), 0), server: cpuSeconds(temporal.pid) });
      const cpu0 = cpu();
      const started = Date.now();
      const t0 = performance.now();
      const handle = await client.workflow.start(experimentWorkflow, {
        workflowId: experimentId,
        taskQueue: queueNames(prefix).workflows,
        args: [{ experimentId, config, queues: queueNames(prefix), store }],
      });
      const returned = await handle.result();
      const total = (performance.now() - t0) / 1000;
      const cpu1 = cpu();
      // The last run's end: the experiment recorded its child closing (the report follows it).
      const events = (await handle.fetchHistory()).events ?? [];
      const closed = events.filter((e) => e.childWorkflowExecutionCompletedEventAttributes || e.childWorkflowExecutionFailedEventAttributes);
      const runs = closed.length ? (eventMs(closed.at(-1)!) - started) / 1000 : total;
      // A grid of more than 100 runs returns its runs' summaries, and their results, in the store.
      const results = openStore(store, process.env);
      const summaries = await Promise.all(
        (await loadRuns(results, returned)).map(async (r) => (r.result || !r.resultRef ? r : { ...r, result: await getJson<RunResult>(results, r.resultRef.key, { sha256: r.resultRef.sha256 }) })),
      );
      const result = { ...returned, runs: summaries };
      const breakdown = await runBreakdown(client, result);
      return { runs, total, workersCpu: cpu1.workers - cpu0.workers, serverCpu: cpu1.server - cpu0.server, result, breakdown };
    } finally {
      await connection.close();
    }
  } catch (err) {
    for (const w of workers) console.error(w.output().split('\n').slice(-20).join('\n'));
    throw err;
  } finally {
    await stopWorkers(workers);
    await temporal.stop();
  }
}

/**
 * Each loop runs in a process of its own, as a script would: this process then never loads TensorFlow,
 * and forks the server and workers with no TensorFlow threads of its own at work.
 */
async function loopProcess(loop: 'plain' | 'activities', o: Options, shard?: string): Promise<{ times: LoopTimes; backend: string }> {
  const v8 = loop === 'activities' && !o.v8Defaults ? WORKER_V8_FLAGS : [];
  const args = [...v8, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2), '--loop', loop, ...(shard ? ['--shard', shard] : [])];
  const child = spawn(process.execPath, args, {
    // Processes that train side by side share the cores out; one alone keeps TensorFlow's default.
    env: shard ? { ...process.env, TF_NUM_INTRAOP_THREADS: sharedThreads(o) } : process.env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const line = out.trim().split('\n').at(-1) ?? '';
  if (code !== 0 || !line.startsWith('{')) throw new Error(`expected the ${loop} loop to print its times, found exit ${code}:\n${out}`);
  return JSON.parse(line) as { times: LoopTimes; backend: string };
}

async function main(): Promise<void> {
  if (!existsSync(join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'))) {
    throw new Error(`expected Fashion-MNIST in ${FASHION_MNIST_DIR}, found nothing: run "npm run setup"`);
  }
  const o = options();
  // Where paramtrail keeps its local store by default (the state folder), not the system's temporary
  // folder: creating files there can cost several times more once tests have churned through it.
  const parent = join(process.env.PARAMTRAIL_STATE_DIR ?? DEFAULT_STATE_DIR, 'bench');
  await mkdir(parent, { recursive: true });
  const dir = await mkdtemp(join(parent, 'orchestration-'));
  let s3: S3Server | undefined;
  try {
    if (o.store === 's3' && !o.loop) {
      // As the CLI does: the SDK's notice about its releases from 2027 on, printed by every process.
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      s3 = await startS3Server({ dataDir: join(dir, 's3'), env: process.env, bucket: 'bench-orchestration' });
      // Inherited by the loops and the workers, as the embedded stack's worker gets them.
      Object.assign(process.env, { PARAMTRAIL_BENCH_BUCKET: s3.bucket, ...s3Env(s3.endpoint, s3, process.env) });
    }
    if (o.loop) {
      const backend = await selectBackend('auto');
      const times = o.loop === 'plain' ? await plainLoop(experiment(o, false), dir) : await activitiesLoop(experiment(o, false), o, dir, o.shard);
      console.log(JSON.stringify({ times, backend }));
      return;
    }
    const { times: plain, backend } = await loopProcess('plain', o);
    const { times: activities } = await loopProcess('activities', o);
    const shards = (await Promise.all(Array.from({ length: o.workers }, (_, i) => loopProcess('activities', o, `${i}/${o.workers}`)))).map((r) => r.times);
    console.log(
      `orchestration: ${o.runs} runs of an MLP (32 hidden), 1 epoch of ${o.train} Fashion-MNIST examples ` +
        `(90 % trained, batch ${o.batch}), backend ${backend}; ${o.workers} worker process(es), concurrency ${o.concurrency}, ` +
        `${o.pack} run(s) per workflow, ${o.store === 's3' ? 'stores in S3 (versitygw)' : 'local stores'}, ` +
        `${o.decoded === 'warm' ? 'the dataset already decoded on the workers\' machine' : 'no dataset decoded on the workers\' machine yet'}, ${availableParallelism()} cores; TensorFlow intra-op threads: ` +
        `${intraOpThreads()} in the processes training alone, ${sharedThreads(o)} in each of those side by side`,
    );
    const perRun = (seconds: number) => `${((seconds / o.runs) * 1000).toFixed(0)} ms`;
    const plainLine = (times: LoopTimes, when: string) =>
      console.log(`  plain loop, one process, ${when.padEnd(11)}${times.seconds.toFixed(1).padStart(6)} s   CPU per run ${perRun(times.cpu)}, ${times.fullGcs} full GCs`);
    plainLine(plain, 'first');
    console.log(
      `  run activities, own process          ${activities.seconds.toFixed(1).padStart(6)} s   CPU per run ${perRun(activities.cpu)}, ${activities.fullGcs} full GCs ` +
        `(lookupRun, train, distance; no Temporal; V8 ${o.v8Defaults ? 'defaults' : 'as a worker starts it'})`,
    );
    const requests = Object.entries(activities.requests ?? {});
    const total = requests.reduce((sum, [, n]) => sum + n, 0);
    console.log(`    store calls per run: ${(total / o.runs).toFixed(1)} (${requests.map(([m, n]) => `${m} ${(n / o.runs).toFixed(1)}`).join(', ')})`);
    const shardSeconds = Math.max(...shards.map((t) => t.seconds));
    console.log(
      `  run activities, ${o.workers} processes at once ${shardSeconds.toFixed(1).padStart(6)} s   (${(shardSeconds / plain.seconds).toFixed(2)}x the first plain loop) ` +
        `CPU per run ${perRun(shards.reduce((sum, t) => sum + t.cpu, 0))}: paramtrail's steps with no orchestration, as parallel as its workers`,
    );
    // This machine's speed drifts by more than the target over a minute, so each paramtrail experiment
    // is compared with the plain loop run just before it and again just after it (their mean).
    let before = plain;
    for (const local of o.modes) {
      const pt = await throughParamtrail(experiment(o, local), o, dir);
      if (pt.result.status !== 'completed') {
        throw new Error(`expected every run to complete, found ${pt.result.runs.filter((r) => r.stage !== 'completed').length} not completed`);
      }
      const { times: after } = await loopProcess('plain', o);
      const loop = (before.seconds + after.seconds) / 2;
      const ratio = (t: number) => `${(t / loop).toFixed(2)}x, overhead ${(((t - loop) / loop) * 100).toFixed(0)} %`;
      const mode = local ? 'execution.local   ' : 'task queues       ';
      console.log(`  paramtrail, ${mode} runs done ${pt.runs.toFixed(1).padStart(6)} s   (${ratio(pt.runs)}); with report ${pt.total.toFixed(1)} s (${ratio(pt.total)})`);
      console.log(`    CPU per run: workers ${perRun(pt.workersCpu)} + Temporal server ${perRun(pt.serverCpu)}`);
      console.log(`    wall (mean): ${Object.entries(pt.breakdown).map(([k, ms]) => `${k} ${ms.toFixed(0)} ms`).join(', ')}`);
      console.log(`    trainings per worker process: ${trainingsPerWorker(pt.result).join(' / ')}`);
      plainLine(after, 'again');
      before = after;
    }
  } finally {
    await s3?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
