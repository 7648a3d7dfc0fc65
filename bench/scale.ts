/**
 * What a grid of many runs costs per run: an experiment of `--runs` tiny real runs through paramtrail (a
 * Temporal dev server, a local store, worker processes), against the same grid of `--peer` runs measured
 * in the same invocation. The grid continues as new every `--continue-as-new` runs and keeps its runs'
 * summaries in the store; this shows the cost per run does not grow with the grid, and that nothing the
 * experiment carries, hands its report or returns does.
 *
 * Run: npm run bench:scale [-- --runs 10000 --peer 100 --workers 2 --pack 10 --continue-as-new 500]
 *
 * Each run is an MLP (one hidden layer of 32) trained for one epoch on 256 Fashion-MNIST examples, as
 * bench:orchestration's, with `execution.local` and `--pack` runs per workflow; the experiment ends with
 * the gathered depth profile of every run (`analyses.aggregate`) and its report. Prints, per grid: wall
 * time and per run, executions, the largest history of an execution, and the largest execution input,
 * aggregate input, report input and result, in bytes.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { REGISTRIES } from '../cli/experiment.js';
import { validateExperiment } from '../config/experiment.js';
import { startTemporalDevServer } from '../infra/temporal.js';
import { experimentWorkflow } from '../workflows/index.js';
import { queueNames } from '../workflows/types.js';
import { DEFAULT_STATE_DIR } from '../worker/config.js';
import { positiveInt } from './args.js';
import { startWorker, stopWorkers, type Worker } from './workers.js';

const FASHION_MNIST = 'file:///usr/share/datasets/fashion-mnist/';

function options() {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '10000' },
      peer: { type: 'string', default: '100' },
      workers: { type: 'string', default: '2' },
      pack: { type: 'string', default: '10' },
      'continue-as-new': { type: 'string', default: '500' },
    },
  });
  return {
    runs: positiveInt('runs', values.runs),
    peer: positiveInt('peer', values.peer),
    workers: positiveInt('workers', values.workers),
    pack: positiveInt('pack', values.pack),
    continueAsNew: positiveInt('continue-as-new', values['continue-as-new']),
  };
}

type Options = ReturnType<typeof options>;

interface GridFigures {
  seconds: number;
  executions: number;
  /** Largest of each across the experiment's executions, in bytes. */
  history: number;
  input: number;
  aggregate: number;
  report: number;
  result: number;
}

/** Bytes of a history event's payloads. */
const payloadBytes = (payloads: { payloads?: Array<{ data?: Uint8Array | null }> | null } | null | undefined) =>
  (payloads?.payloads ?? []).reduce((n, p) => n + (p.data?.length ?? 0), 0);

async function grid(runs: number, o: Options, dir: string): Promise<GridFigures> {
  const config = validateExperiment(
    {
      name: 'bench-scale',
      models: [{ name: 'mlp', args: { hidden: [32] } }],
      datasets: [{ name: 'fashion-mnist', subset: { train: 256, test: 100 }, validationSplit: 0.1, sources: [FASHION_MNIST] }],
      seeds: Array.from({ length: runs }, (_, i) => i),
      training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
      execution: { concurrency: 8 * o.workers, heartbeatTimeout: '30s', maxAttempts: 3, local: true, runsPerWorkflow: o.pack, continueAsNewAfter: o.continueAsNew },
      analyses: { runFigures: false, aggregate: true },
    },
    'benchmark experiment',
    REGISTRIES,
  );
  const temporal = await startTemporalDevServer({ env: process.env, headless: true });
  const workers: Worker[] = [];
  const store = `file://${join(dir, `store-${runs}`)}`;
  try {
    const env = {
      ...process.env,
      TEMPORAL_ADDRESS: temporal.address,
      PARAMTRAIL_TASK_QUEUE: 'bench',
      PARAMTRAIL_STORE: store,
      PARAMTRAIL_STATE_DIR: join(dir, 'state'),
      PARAMTRAIL_TRAIN_SLOTS: '1',
      // Processes that train side by side share the cores out (see bench:orchestration).
      TF_NUM_INTRAOP_THREADS: process.env.TF_NUM_INTRAOP_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / o.workers))),
    };
    for (let i = 0; i < o.workers; i++) workers.push(await startWorker(env));
    const connection = await Connection.connect({ address: temporal.address });
    try {
      const client = new Client({ connection });
      const experimentId = `bench-scale-${runs}-${Date.now()}`;
      const t0 = performance.now();
      const handle = await client.workflow.start(experimentWorkflow, {
        workflowId: experimentId,
        taskQueue: queueNames('bench').workflows,
        args: [{ experimentId, config, queues: queueNames('bench'), store }],
      });
      const result = await handle.result();
      const seconds = (performance.now() - t0) / 1000;
      if (result.status !== 'completed') throw new Error(`expected every run to complete, found ${result.status}`);
      if (result.aggregate?.runs !== runs) throw new Error(`expected a depth profile of ${runs} runs, found ${result.aggregate?.runs ?? JSON.stringify(result.analysisErrors)}`);
      const figures: GridFigures = { seconds, executions: 0, history: 0, input: 0, aggregate: 0, report: 0, result: 0 };
      let runId: string | undefined = handle.firstExecutionRunId;
      while (runId) {
        const h: WorkflowHandle = client.workflow.getHandle(experimentId, runId);
        figures.history = Math.max(figures.history, Number((await h.describe()).historySize));
        const events = (await h.fetchHistory()).events;
        figures.executions++;
        runId = undefined;
        for (const e of events ?? []) {
          const started = e.workflowExecutionStartedEventAttributes;
          if (started) figures.input = Math.max(figures.input, payloadBytes(started.input));
          const scheduled = e.activityTaskScheduledEventAttributes;
          const activity = scheduled?.activityType?.name;
          if (activity === 'report' || activity === 'aggregate') figures[activity] = Math.max(figures[activity], payloadBytes(scheduled!.input));
          const completed = e.workflowExecutionCompletedEventAttributes;
          if (completed) figures.result = payloadBytes(completed.result);
          runId = e.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? runId;
        }
      }
      return figures;
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

async function main(): Promise<void> {
  const o = options();
  const parent = join(process.env.PARAMTRAIL_STATE_DIR ?? DEFAULT_STATE_DIR, 'bench');
  await mkdir(parent, { recursive: true });
  const dir = await mkdtemp(join(parent, 'scale-'));
  try {
    console.log(
      `scale: grids of tiny MLP runs (1 epoch of 256 Fashion-MNIST examples), execution.local, ${o.pack} runs per workflow, ` +
        `continue-as-new every ${o.continueAsNew} runs; ${o.workers} worker process(es), ${availableParallelism()} cores`,
    );
    const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
    const line = (runs: number, f: GridFigures, ratio = '') =>
      console.log(
        `  ${String(runs).padStart(6)} runs ${f.seconds.toFixed(1).padStart(7)} s  ${((f.seconds / runs) * 1000).toFixed(1).padStart(6)} ms per run${ratio}; ` +
          `${f.executions} execution(s), largest history ${kb(f.history)}; largest input ${kb(f.input)}, aggregate input ${kb(f.aggregate)}, report input ${kb(f.report)}, result ${kb(f.result)}`,
      );
    const peer = await grid(o.peer, o, dir);
    line(o.peer, peer);
    const big = await grid(o.runs, o, dir);
    line(o.runs, big, ` (${(big.seconds / o.runs / (peer.seconds / o.peer)).toFixed(2)}x the ${o.peer}-run grid's)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
