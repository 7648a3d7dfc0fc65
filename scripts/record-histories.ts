/**
 * Records the workflow histories test/workflows/replay.test.ts replays: an experiment of two tiny runs
 * as local activities that continues as new after each run (both executions' histories), its first
 * run's workflow, the workflow of a pack of two such runs (`execution.runsPerWorkflow`), and a run's
 * and a pack's whose local trainings ran past their local time and went on on the train queue, the
 * last execution of an experiment that compares its runs pairwise, an experiment that compares
 * them in batches, and an experiment whose dataset cannot be read, with its pack's and its run's
 * workflows, which start only to record that they failed. Run it on the version whose histories the
 * next versions must keep replaying, then copy the new files into test/workflows/histories/:
 *
 *   node --import tsx scripts/record-histories.ts <output folder>
 *
 * Starts its own Temporal dev server and workers (test/support/stack.ts) and a local store in a
 * temporary folder; needs Fashion-MNIST (`npm run setup`).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import proto from '@temporalio/proto';
import { loadRuns } from '../activities/results.js';
import { LocalStore } from '../artifacts/local.js';
import { tinyExperiment } from '../test/support/fixtures.js';
import { startTestStack } from '../test/support/stack.js';
import { experimentWorkflow } from '../workflows/index.js';
import type { ExperimentInput } from '../workflows/types.js';

const out = process.argv[2];
if (!out) throw new Error('usage: node --import tsx scripts/record-histories.ts <output folder>');
await mkdir(out, { recursive: true });
const storeDir = await mkdtemp(join(tmpdir(), 'paramtrail-histories-'));
const store = new LocalStore(storeDir);
const stack = await startTestStack({ name: 'histories', deps: { store }, trainSlots: 1 });
/** As the server returns them: temporal.api.history.v1.History, binary protobuf. */
const encode = (history: unknown) => proto.temporal.api.history.v1.History.encode(history as proto.temporal.api.history.v1.IHistory).finish();
try {
  const config = tinyExperiment({
    name: 'replay',
    seeds: [1, 2],
    training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
    analyses: { runFigures: false },
    execution: { concurrency: 2, heartbeatTimeout: '10s', maxAttempts: 3, local: true, continueAsNewAfter: 1 },
  });
  const experimentId = 'replay-fixture';
  const handle = await stack.temporal.client.workflow.start(experimentWorkflow, {
    workflowId: experimentId,
    taskQueue: stack.queues.workflows,
    args: [{ experimentId, config, queues: stack.queues, store: store.location }],
  });
  const result = await handle.result();
  if (result.status !== 'completed') throw new Error(`expected the experiment to complete, found ${result.status}`);
  const first = stack.temporal.client.workflow.getHandle(experimentId, handle.firstExecutionRunId);
  await writeFile(join(out, 'experiment-1.binpb'), encode(await first.fetchHistory()));
  await writeFile(join(out, 'experiment-2.binpb'), encode(await handle.fetchHistory()));
  // An experiment that continued as new keeps its runs' summaries in the store.
  const [firstRun] = await loadRuns(store, result);
  await writeFile(join(out, 'run.binpb'), encode(await stack.temporal.client.workflow.getHandle(firstRun!.workflowId).fetchHistory()));

  const packed = { ...config, execution: { ...config.execution, continueAsNewAfter: 500, runsPerWorkflow: 2 } };
  const packedResult = await stack.temporal.client.workflow.execute(experimentWorkflow, {
    workflowId: 'replay-fixture-packed',
    taskQueue: stack.queues.workflows,
    args: [{ experimentId: 'replay-fixture-packed', config: packed, queues: stack.queues, store: store.location }],
  });
  const packId = packedResult.runs[0]!.workflowId;
  if (packedResult.status !== 'completed' || packedResult.runs[1]?.workflowId !== packId) {
    throw new Error(`expected both runs to complete in one pack, found ${JSON.stringify(packedResult.runs.map((r) => [r.workflowId, r.stage]))}`);
  }
  await writeFile(join(out, 'pack.binpb'), encode(await stack.temporal.client.workflow.getHandle(packId).fetchHistory()));

  // Local trainings past their local time (LocalLimits), handed over to the train queue: a run alone,
  // and a pack whose trainPack call and then its first run's own local training ran past it.
  const long = {
    ...config,
    datasets: [{ ...config.datasets[0]!, subset: { train: 2000, test: 200 } }],
    training: { ...config.training, epochs: 4, batchSize: 32 },
    execution: { ...config.execution, continueAsNewAfter: 500 },
  };
  // Seeds of their own: a training done before would be reused, not handed over.
  const handedOver = async (experimentId: string, seeds: number[], execution: Partial<typeof config.execution>) => {
    const r = await stack.temporal.client.workflow.execute(experimentWorkflow, {
      workflowId: experimentId,
      taskQueue: stack.queues.workflows,
      args: [{ experimentId, config: { ...long, seeds, execution: { ...long.execution, ...execution } }, queues: stack.queues, store: store.location, localLimits: { trainFor: '1s' } }],
    });
    if (r.status !== 'completed') throw new Error(`expected ${experimentId} to complete, found ${r.status}`);
    const { events } = await stack.temporal.client.workflow.getHandle(r.runs[0]!.workflowId).fetchHistory();
    if (!events?.some((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'train')) throw new Error(`expected ${experimentId} to train on the train queue`);
    return { events };
  };
  await writeFile(join(out, 'run-3.binpb'), encode(await handedOver('replay-fixture-handover', [3, 4], { concurrency: 1 })));
  await writeFile(join(out, 'pack-3.binpb'), encode(await handedOver('replay-fixture-handover-packed', [5, 6], { runsPerWorkflow: 2 })));

  // Experiments that compare their runs' features pairwise: one whose results are in the store (it
  // continued as new after every run; its last execution), and one whose pairs go to batches that
  // store their outcomes (two of two pairs and one).
  const comparing = (workflowId: string, extra: Pick<ExperimentInput, 'compareBatching'> = {}) =>
    stack.temporal.client.workflow.start(experimentWorkflow, {
      workflowId,
      taskQueue: stack.queues.workflows,
      args: [
        {
          experimentId: workflowId,
          config: tinyExperiment({
            name: 'replay',
            seeds: [7, 8, 9],
            training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
            analyses: { runFigures: false, probe: { size: 32 }, compare: {} },
            execution: { ...config.execution, concurrency: 3 },
          }),
          queues: stack.queues,
          store: store.location,
          ...extra,
        },
      ],
    });
  const compared = await comparing('replay-fixture-compared');
  const comparedResult = await compared.result();
  if (comparedResult.status !== 'completed' || comparedResult.compare?.length !== 3) throw new Error(`expected three pairs compared, found ${JSON.stringify(comparedResult.analysisErrors)}`);
  await writeFile(join(out, 'experiment-9.binpb'), encode(await compared.fetchHistory()));

  const batched = await comparing('replay-fixture-batched', { compareBatching: { inlinePairs: 1, batchPairs: 2 } });
  const batchedResult = await batched.result();
  if (batchedResult.status !== 'completed' || batchedResult.compareBatches?.length !== 2) throw new Error(`expected two batches of pairs, found ${JSON.stringify(batchedResult.analysisErrors)}`);
  await writeFile(join(out, 'experiment-10.binpb'), encode(await batched.fetchHistory()));

  // A dataset that cannot be read: the runs' workflows start only to record that they failed.
  const unreadable = await stack.temporal.client.workflow.start(experimentWorkflow, {
    workflowId: 'replay-fixture-unreadable',
    taskQueue: stack.queues.workflows,
    args: [
      {
        experimentId: 'replay-fixture-unreadable',
        config: tinyExperiment({
          name: 'replay',
          seeds: [1, 2, 3],
          // A dataset none of the experiments above stored, from a folder that does not exist.
          datasets: [{ name: 'mnist', subset: { train: 600, test: 200 }, sources: [`file://${storeDir}/no-such-folder/`] }],
          execution: { ...config.execution, maxAttempts: 1, runsPerWorkflow: 2, continueAsNewAfter: 100 },
        }),
        queues: stack.queues,
        store: store.location,
      },
    ],
  });
  const unreadableResult = await unreadable.result();
  if (unreadableResult.runs.some((r) => r.stage !== 'failed')) throw new Error(`expected every run to fail, found ${JSON.stringify(unreadableResult.runs)}`);
  await writeFile(join(out, 'experiment-11.binpb'), encode(await unreadable.fetchHistory()));
  const [unreadablePack, unreadableRun] = [...new Set(unreadableResult.runs.map((r) => r.workflowId))];
  await writeFile(join(out, 'pack-4.binpb'), encode(await stack.temporal.client.workflow.getHandle(unreadablePack!).fetchHistory()));
  await writeFile(join(out, 'run-4.binpb'), encode(await stack.temporal.client.workflow.getHandle(unreadableRun!).fetchHistory()));
  console.log(`recorded 11 histories in ${out}`);
} finally {
  await stack.stop();
  await rm(storeDir, { recursive: true, force: true });
}
