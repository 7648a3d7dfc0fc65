/**
 * The pipeline on a real Temporal dev server and a real S3-compatible server (versitygw): experiments
 * run end to end, every object a result names exists with the sha256 it names, a second experiment
 * downloads nothing, an experiment downloads each dataset once for all its runs, and a corrupt dataset
 * file fails its run for good without touching the store.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import proto from '@temporalio/proto';
import { loadRuns } from '../../activities/results.js';
import { reuseKey } from '../../activities/reuse.js';
import { readManifest } from '../../artifacts/manifest.js';
import { S3Store } from '../../artifacts/s3.js';
import { snapshotFromArrow } from '../../artifacts/snapshot.js';
import { distanceTableFromArrow } from '../../artifacts/table.js';
import { listRuns } from '../../cli/ls.js';
import type { ExperimentConfig } from '../../config/experiment.js';
import { expandRuns } from '../../config/grid.js';
import { experimentWorkflow } from '../../workflows/index.js';
import { ModelKey, RunKey, StatusKey } from '../../workflows/search.js';
import { queueNames, type ExperimentProgress, type PackProgress } from '../../workflows/types.js';
import { FASHION_MNIST_DIR, FASHION_MNIST_SOURCES, requireFashionMnist, tinyExperiment } from '../support/fixtures.js';
import { startTestS3, type TestS3 } from '../support/s3.js';
import { startTestStack, startTestWorkers, type TestStack } from '../support/stack.js';
import { assertSameWeights } from '../support/weights.js';

// At the top level: startTestS3 stops its server in an after() hook of the scope it is called in.
const s3: TestS3 = await startTestS3();
const store: S3Store = s3.store;

describe('experimentWorkflow on real Temporal and S3', () => {
  let stack: TestStack;

  before(async () => {
    requireFashionMnist();
    stack = await startTestStack({ name: 'wf', deps: { store }, trainSlots: 2 });
  });

  after(() => stack?.stop());

  /** Activity types a workflow's history ran on task queues, and as local activities (their markers). */
  async function steps(workflowId: string) {
    const { events } = await stack.temporal.client.workflow.getHandle(workflowId).fetchHistory();
    const queued: string[] = [];
    const local: string[] = [];
    for (const e of events ?? []) {
      if (e.activityTaskScheduledEventAttributes) queued.push(e.activityTaskScheduledEventAttributes.activityType!.name!);
      const marker = e.markerRecordedEventAttributes;
      if (marker?.markerName === 'core_local_activity') {
        const data = JSON.parse(new TextDecoder().decode(marker.details!.data!.payloads![0]!.data!)) as { activity_type: string };
        local.push(data.activity_type);
      }
    }
    return { queued, local };
  }

  /** A fresh bucket that fails the puts `refuse` picks, as an unavailable store would, and counts them. */
  async function refusingStore(name: string, refuse: (key: string, refused: number) => boolean) {
    class RefusingStore extends S3Store {
      refused = 0;
      override async put(key: string, bytes: Uint8Array, opts?: Parameters<S3Store['put']>[2]) {
        if (refuse(key, this.refused)) {
          this.refused++;
          throw new Error('the store is unavailable (injected)');
        }
        return super.put(key, bytes, opts);
      }
    }
    const refusing = new RefusingStore({ ...s3.storeOptions, bucket: `${name}-${randomUUID().slice(0, 8)}` });
    await refusing.ensureBucket();
    return refusing;
  }

  /** Runs `config` to its result on workers of its own whose store is `on`. */
  async function executeOn(on: S3Store, name: string, config: ExperimentConfig) {
    const qs = queueNames(`${name}-${randomUUID()}`);
    const workers = await startTestWorkers(stack.temporal, qs, { store: on });
    try {
      const experimentId = `${name}-${randomUUID().slice(0, 8)}`;
      return await stack.temporal.client.workflow.execute(experimentWorkflow, {
        workflowId: experimentId,
        taskQueue: qs.workflows,
        args: [{ experimentId, config, queues: qs, store: on.location }],
      });
    } finally {
      await workers.stop();
    }
  }

  async function assertStored(ref: { key: string; sha256: string; bytes: number }) {
    const head = await store.head(ref.key);
    assert.ok(head, `${ref.key} is reported but not stored`);
    assert.equal(head.sha256, ref.sha256, `${ref.key}: stored sha256 differs from the reported one`);
    assert.equal(head.bytes, ref.bytes, `${ref.key}: stored size differs from the reported one`);
    return store.get(ref.key, { sha256: ref.sha256 }); // re-hashes the bytes
  }

  test('a two-run experiment completes and every reported object exists with its sha256', async () => {
    const config = tinyExperiment({
      models: [{ name: 'mlp', args: { hidden: [32] } }, { name: 'lenet5' }],
    });
    const result = await stack.execute(config);
    assert.equal(result.status, 'completed', JSON.stringify(result.runs.map((r) => r.error)));
    assert.equal(result.runs.length, 2);
    for (const run of result.runs) {
      const res = run.result!;
      assert.deepEqual(
        res.train.snapshots.map((s) => s.epoch),
        [0, 1, 2],
        'a snapshot at epoch 0 and after every epoch',
      );
      for (const f of res.download.files) await assertStored(f);
      for (const s of res.train.snapshots) {
        const snap = snapshotFromArrow(await assertStored(s));
        assert.equal(snap.epoch, s.epoch);
        assert.equal(snap.runId, run.runId);
        const manifest = await readManifest(store, s.sha256);
        assert.ok(manifest, `${s.key} has a lineage manifest`);
        assert.equal(manifest.kind, 'snapshot');
        assert.equal(manifest.producer.activity, 'train');
        assert.equal(manifest.producer.workflowId, run.workflowId);
        assert.deepEqual(
          res.download.files.map((f) => f.sha256).sort(),
          manifest.inputs.map((i) => i.sha256).sort(),
          'a snapshot derives from the dataset files',
        );
      }
      const rows = distanceTableFromArrow(await assertStored(res.distance.table));
      const tableManifest = await readManifest(store, res.distance.table.sha256);
      assert.deepEqual(tableManifest?.inputs.map((i) => i.sha256), res.train.snapshots.map((s) => s.sha256));
      assert.equal(rows.length, res.distance.rows);
      const atInit = rows.filter((r) => r.epoch === 0 && r.layer !== '__model__');
      assert.ok(atInit.length > 0 && atInit.every((r) => r.distance === 0), 'epoch 0 is at distance 0 from itself');
      const moved = rows.filter((r) => r.epoch === 2 && r.against === 'init' && r.layer !== '__model__');
      assert.ok(moved.length === atInit.length && moved.every((r) => r.distance > 0), 'every layer moved after two epochs');
      assert.ok(res.plot.figures.some((f) => f.format === 'svg'));
      for (const f of res.plot.figures) {
        const bytes = await assertStored(f);
        if (f.format === 'svg') assert.match(new TextDecoder().decode(bytes), /<svg/);
      }
      assert.equal(res.train.attempts.length, 1);
      assert.equal(res.train.attempts[0].startedFromEpoch, 0);
      assert.equal(res.train.history.length, 3);
      assert.ok(res.train.history[2].trainLoss < res.train.history[0].trainLoss, 'training lowered the loss');
    }
    assert.ok(result.report, `the experiment wrote its report: ${JSON.stringify(result.reportError)}`);
    assert.equal(result.report.key, `experiments/${result.experimentId}/report.html`);
    assert.equal(result.report.path, store.locate(result.report.key));
    const html = new TextDecoder().decode(await assertStored(result.report));
    for (const run of result.runs) assert.ok(html.includes(run.name), `the report names run ${run.name}`);
    const differences = result.runs.flatMap((r) => r.result!.plot.figures.filter((f) => f.format === 'svg'));
    assert.equal(html.match(/<svg[\s>]/g)?.length, 1 + differences.length, 'the accuracy figure and every Differences figure, inlined');
    const reportManifest = await readManifest(store, result.report.sha256);
    assert.equal(reportManifest?.kind, 'report');
    assert.equal(reportManifest?.producer.activity, 'report');
  });

  test('a second experiment on the same data downloads nothing', async () => {
    const result = await stack.execute(tinyExperiment({ seeds: [1] }));
    assert.equal(result.status, 'completed');
    const dl = result.runs[0].result!.download;
    assert.equal(dl.fetched, 0);
    assert.equal(dl.cached, dl.files.length);
    assert.ok(dl.files.every((f) => f.source === 'store'));
  });

  test('the experiment downloads each dataset once for all its runs; without run figures no run draws any', async () => {
    const experimentId = `once-${randomUUID().slice(0, 8)}`;
    const config = tinyExperiment({ seeds: [10, 11, 12], training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } }, analyses: { runFigures: false } });
    const result = await stack.execute(config, { experimentId });
    assert.equal(result.status, 'completed', JSON.stringify(result.runs.map((r) => r.error)));
    const scheduled = async (workflowId: string) => {
      const { events } = await stack.temporal.client.workflow.getHandle(workflowId).fetchHistory();
      return (events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType!.name!] : []));
    };
    assert.deepEqual((await scheduled(experimentId)).filter((n) => n === 'download'), ['download'], 'one download in the experiment');
    for (const run of result.runs) {
      const activities = await scheduled(run.workflowId);
      assert.ok(!activities.includes('download'), `${run.name} downloads nothing itself: ${activities.join(', ')}`);
      assert.ok(!activities.includes('plot'), `${run.name} draws no figure: ${activities.join(', ')}`);
      assert.deepEqual(run.result!.plot.figures, []);
      assert.deepEqual(run.result!.download, result.runs[0]!.result!.download, 'every run names the same dataset objects');
      // The train activity recorded the training for reuse: the index entry names this run.
      const entry = JSON.parse(new TextDecoder().decode(await store.get(reuseKey(run.result!.configHash)))) as { runId: string };
      assert.equal(entry.runId, run.runId);
    }
  });

  test('with execution.local, each run trains and measures in local activities, and a rerun reuses them', async () => {
    const config = tinyExperiment({
      seeds: [20, 21],
      training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
      analyses: { runFigures: false },
      execution: { local: true },
    });
    const first = await stack.execute(config);
    assert.equal(first.status, 'completed', JSON.stringify(first.runs.map((r) => r.error)));
    for (const run of first.runs) {
      const { queued, local } = await steps(run.workflowId);
      assert.deepEqual(queued, [], `${run.name} schedules no activity task`);
      assert.deepEqual(local, ['lookupRun', 'train', 'distance']);
      for (const s of run.result!.train.snapshots) await assertStored(s);
      await assertStored(run.result!.distance.table);
      assert.equal(run.result!.train.snapshots.length, 2);
    }
    const again = await stack.execute(config);
    assert.equal(again.status, 'completed', JSON.stringify(again.runs.map((r) => r.error)));
    for (const [i, run] of again.runs.entries()) {
      assert.equal(run.result!.reusedFrom, first.runs[i]!.runId, `${run.name} reuses the first experiment's training`);
      assert.deepEqual((await steps(run.workflowId)).local, ['lookupRun', 'distance']);
    }
  });

  /**
   * An MLP trained for about 9 s here (0.6 s to load its data, 0.85 s an epoch): a local limit of 4 s
   * stops it after two to four epochs, on a machine up to twice as slow or fast.
   */
  const longLocal = (patch: Record<string, unknown>) =>
    tinyExperiment({
      datasets: [{ name: 'fashion-mnist', subset: { train: 2000, test: 200 }, sources: FASHION_MNIST_SOURCES }],
      training: { epochs: 10, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.05 } },
      analyses: { runFigures: false },
      ...patch,
    });

  test('with execution.local, a training past its local time goes on on the train queue from its last stored epoch, to the weights of an uninterrupted training', async () => {
    const config = longLocal({ seeds: [22], execution: { local: true } });
    const handed = await stack.execute(config, { localLimits: { trainFor: '4s' } });
    assert.equal(handed.status, 'completed', JSON.stringify(handed.runs.map((r) => r.error)));
    const run = handed.runs[0]!;
    assert.deepEqual(await steps(run.workflowId), { queued: ['train'], local: ['lookupRun', 'train', 'distance'] }, 'the local training stopped at its limit; the queue finished it');
    const { attempts, snapshots } = run.result!.train;
    assert.equal(attempts.length, 2, JSON.stringify(attempts));
    assert.deepEqual(
      attempts.map((a) => a.startedFromEpoch > 0),
      [false, true],
      `the local attempt from the start, then the queue's from an epoch the local one stored: ${JSON.stringify(attempts)}`,
    );
    assert.deepEqual(snapshots.map((s) => s.epoch), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // The same training, local throughout (its default limit is an hour): the same bytes at every epoch.
    const whole = await stack.execute(config, { force: true });
    assert.equal(whole.status, 'completed', JSON.stringify(whole.runs.map((r) => r.error)));
    assert.deepEqual((await steps(whole.runs[0]!.workflowId)).queued, []);
    assert.equal(whole.runs[0]!.result!.train.attempts.length, 1);
    await assertSameWeights(store, run.result!.train, whole.runs[0]!.result!.train);
  });

  test('with execution.local, a pack whose trainPack call runs past its local time, or whose history is full, trains on the train queue', async () => {
    // One attempt per call (maxAttempts 1): a second would resume the run the first was on.
    const packOf = (seeds: number[]) => longLocal({ seeds, execution: { local: true, runsPerWorkflow: 2, maxAttempts: 1 } });
    const timed = await stack.execute(packOf([24, 25]), { localLimits: { trainFor: '4s' } });
    assert.equal(timed.status, 'completed', JSON.stringify(timed.runs.map((r) => r.error)));
    const { queued, local } = await steps(timed.runs[0]!.workflowId);
    assert.equal(local[0], 'trainPack');
    assert.equal(local.filter((s) => s === 'trainPack').length, 1, `after a call past its limit, none: ${local.join(', ')}`);
    // The second run at least (the first may have finished in its own local attempt).
    assert.ok(queued.length >= 1 && queued.every((s) => s === 'train'), `trainings finished on the train queue: ${queued.join(', ')} (local: ${local.join(', ')})`);
    for (const r of timed.runs) assert.deepEqual(r.result!.train.snapshots.map((s) => s.epoch), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

    const full = await stack.execute(tinyExperiment({ seeds: [26, 27], training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } }, analyses: { runFigures: false }, execution: { local: true, runsPerWorkflow: 2 } }), {
      localLimits: { history: 1 },
    });
    assert.equal(full.status, 'completed', JSON.stringify(full.runs.map((r) => r.error)));
    assert.deepEqual(await steps(full.runs[0]!.workflowId), { queued: ['train', 'train'], local: ['lookupRun', 'distance', 'lookupRun', 'distance'] });
  });

  test('with execution.local, a local training that fails goes on on the train queue, under the run\'s retry policy', async () => {
    // A fresh bucket that refuses the first checkpoint a local activity puts, as an unavailable store would.
    const flaky = await refusingStore('checkpoint', (key, refused) => refused === 0 && key.includes('/checkpoints/') && Context.current().info.isLocal);
    const result = await executeOn(flaky, 'checkpoint', tinyExperiment({ seeds: [28], analyses: { runFigures: false }, execution: { local: true, maxAttempts: 2 } }));
    assert.equal(result.status, 'completed', JSON.stringify(result.runs.map((r) => r.error)));
    assert.equal(flaky.refused, 1, 'a checkpoint put failed');
    const run = result.runs[0]!;
    assert.deepEqual(await steps(run.workflowId), { queued: ['train'], local: ['lookupRun', 'train', 'distance'] });
    assert.equal(run.result!.train.attempts.length, 2, JSON.stringify(run.result!.train.attempts));
    assert.deepEqual(run.result!.train.snapshots.map((s) => s.epoch), [0, 1, 2]);
    for (const s of run.result!.train.snapshots) await flaky.get(s.key, { sha256: s.sha256 });
  });

  test('a report whose worker stops answering is taken over after the heartbeat timeout, not after the hour', async () => {
    // A fresh bucket whose first report put hangs until its worker shuts down, as on a worker that died.
    class StallingStore extends S3Store {
      puts = 0;
      override async put(key: string, bytes: Uint8Array, opts?: Parameters<S3Store['put']>[2]) {
        if (key.endsWith('/report.html') && this.puts++ === 0) {
          await new Promise((_, reject) => opts?.signal?.addEventListener('abort', () => reject(opts.signal!.reason)));
        }
        return super.put(key, bytes, opts);
      }
    }
    const stalling = new StallingStore({ ...s3.storeOptions, bucket: `stalling-${randomUUID().slice(0, 8)}` });
    await stalling.ensureBucket();
    const config = tinyExperiment({ seeds: [29], training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } }, analyses: { runFigures: false }, execution: { heartbeatTimeout: '3s', maxAttempts: 2 } });
    const result = await Promise.race([
      executeOn(stalling, 'stalling', config),
      sleep(120_000).then(() => {
        throw new Error('expected the report to be taken over 3 s after its worker stopped heartbeating; 2 minutes passed');
      }),
    ]);
    assert.equal(result.status, 'completed', JSON.stringify(result.runs.map((r) => r.error)));
    assert.ok(result.report, JSON.stringify(result.reportError));
    assert.equal(stalling.puts, 2, 'the report was put twice: the attempt that hung, then the one that took over');
    const { events } = await stack.temporal.client.workflow.getHandle(result.experimentId).fetchHistory();
    const scheduled = new Set((events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'report').map((e) => String(e.eventId)));
    const started = (events ?? []).filter((e) => scheduled.has(String(e.activityTaskStartedEventAttributes?.scheduledEventId)));
    assert.deepEqual(
      started.map((e) => [e.activityTaskStartedEventAttributes!.attempt, e.activityTaskStartedEventAttributes!.lastFailure?.timeoutFailureInfo?.timeoutType]),
      [[2, proto.temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_HEARTBEAT]],
    );
  });

  test('with execution.runsPerWorkflow, runs share workflows, keep their own results, and a failed run fails only itself', async () => {
    const missing = 'tensors/00/0000000000000000000000000000000000000000000000000000000000000000.arrow';
    const config = tinyExperiment({
      seeds: [40, 41],
      training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
      // Same model, dataset and optimiser, so the four runs may share workflows; one variant cannot train.
      variants: [{ label: 'ok' }, { label: 'missing', training: { init: { kernel: 'glorot-uniform', bias: 'zeros', from: { key: missing } } } }],
      analyses: { runFigures: false },
      execution: { local: true, runsPerWorkflow: 3, maxAttempts: 1 },
    });
    const result = await stack.execute(config);
    assert.equal(result.status, 'completed-with-failures');
    assert.equal(result.runs.length, 4);
    const byWorkflow = new Map<string, typeof result.runs>();
    for (const run of result.runs) byWorkflow.set(run.workflowId, [...(byWorkflow.get(run.workflowId) ?? []), run]);
    assert.deepEqual([...byWorkflow.values()].map((runs) => runs.length), [3, 1], 'a pack of three, then the last run alone');
    const [packId, packed] = [...byWorkflow.entries()][0]!;
    assert.ok(packed.some((r) => r.stage === 'failed') && packed.some((r) => r.stage === 'completed'), 'the pack holds a run that failed and one that completed');
    // The pack's lookups, trainings and distances go through trainPack; the run that fails there is
    // tried again on its own (once: maxAttempts 1), then trainPack goes on with the rest.
    const failedAt = packed.findIndex((r) => r.stage === 'failed');
    const expected = ['trainPack', 'lookupRun', 'train', ...(failedAt < packed.length - 1 ? ['trainPack'] : [])];
    assert.deepEqual(await steps(packId), { queued: [], local: expected }, `runs ${packed.map((r) => r.stage).join(', ')}`);
    for (const run of result.runs) {
      assert.equal(run.runId, `${result.experimentId}/${run.name}`);
      if (run.name.includes('--missing--')) {
        assert.equal(run.stage, 'failed', `${run.name} cannot load its initial weights`);
        assert.match(run.error!.message, /0000000000000000\.arrow|not found|no such/i);
        assert.equal(run.result, undefined);
        continue;
      }
      assert.equal(run.stage, 'completed', JSON.stringify(run.error));
      for (const s of run.result!.train.snapshots) {
        const snap = snapshotFromArrow(await assertStored(s));
        assert.equal(snap.runId, run.runId, 'a packed run stores its snapshots under its own run id');
        const manifest = await readManifest(store, s.sha256);
        assert.equal(manifest?.producer.workflowId, run.workflowId);
      }
      await assertStored(run.result!.distance.table);
    }
    // What the CLI asks a pack while it runs, answered here by the closed pack: every run done, the failed one with its error.
    const asked = await stack.temporal.client.workflow.getHandle(packId).query<PackProgress>('packProgress');
    assert.deepEqual(asked.done, packed.map((r) => r.runId));
    assert.deepEqual(asked.failed, packed.filter((r) => r.stage === 'failed').map((r) => ({ runId: r.runId, message: r.error!.message })));
    const seeds = result.runs.filter((r) => r.stage === 'completed').map((r) => r.result!.train.snapshots[0]!.sha256);
    assert.equal(new Set(seeds).size, seeds.length, 'each run trains from its own seed');
    // The pack is one workflow of its own type, with the search attributes every run carries.
    const description = await stack.temporal.client.workflow.getHandle(packId).describe();
    assert.equal(description.type, 'packWorkflow');
    assert.equal(description.typedSearchAttributes.get(RunKey), packId);
    assert.equal(description.typedSearchAttributes.get(StatusKey), 'failed', 'a pack reports the worst of its runs');
    assert.equal(description.typedSearchAttributes.get(ModelKey), 'mlp');
    // The pack sets its status twice, not once per stage of each run; the run alone (the last, whose
    // initial weights are missing) goes through its own stages.
    const statuses = async (workflowId: string) => {
      const { events } = await stack.temporal.client.workflow.getHandle(workflowId).fetchHistory();
      return (events ?? []).flatMap((e) => {
        const field = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.[StatusKey.name];
        return field ? [JSON.parse(new TextDecoder().decode(field.data!)) as string] : [];
      });
    };
    assert.deepEqual(await statuses(packId), ['training', 'failed']);
    assert.deepEqual(await statuses([...byWorkflow.keys()][1]!), ['training', 'failed']);
    // `paramtrail ls` lists the pack as one row beside the run alone (visibility catches up within seconds).
    let rows: Awaited<ReturnType<typeof listRuns>> = [];
    for (let i = 0; i < 50 && rows.length < 2; i++) {
      rows = await listRuns(stack.temporal.client, { experiment: result.experimentId });
      if (rows.length < 2) await sleep(200);
    }
    assert.deepEqual(rows.map((r) => r.runId).sort(), [...byWorkflow.keys()].sort());
    assert.equal(rows.find((r) => r.runId === packId)?.status, 'failed');
  });

  test('a packed run whose distances failed after its training finds that training as its own, not reused', async () => {
    // A fresh bucket whose first distance-table put fails: the first run's training is recorded, then
    // trainPack stops at it, and the workflow runs it alone (lookup, then distances).
    const flaky = await refusingStore('flaky', (key, refused) => refused === 0 && key.startsWith('tables/'));
    const config = tinyExperiment({
      seeds: [60, 61],
      training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
      analyses: { runFigures: false },
      execution: { local: true, runsPerWorkflow: 2, maxAttempts: 2 },
    });
    const result = await executeOn(flaky, 'flaky', config);
    assert.equal(result.status, 'completed', JSON.stringify(result.runs.map((r) => r.error)));
    assert.equal(flaky.refused, 1, 'a table put failed');
    assert.deepEqual((await steps(result.runs[0]!.workflowId)).local, ['trainPack', 'lookupRun', 'distance', 'trainPack']);
    for (const run of result.runs) {
      assert.equal(run.result!.reusedFrom, undefined, `${run.name} trained in this experiment: not a reuse`);
      assert.equal(run.result!.train.attempts.length, 1, `${run.name} trained once`);
      await flaky.get(run.result!.distance.table.key, { sha256: run.result!.distance.table.sha256 });
    }
  });

  test('the runs of a grid that continues as new store their results, and when they cannot, the experiment moves them in batches', async () => {
    // A fresh bucket that refuses results put from a local activity (a pack's): the packs return their
    // results instead, and the experiment moves them to the store itself.
    const flaky = await refusingStore('results', (key) => key.startsWith('results/') && Context.current().info.isLocal);
    const qs = queueNames(`results-${randomUUID()}`);
    const workers = await startTestWorkers(stack.temporal, qs, { store: flaky });
    try {
      const config = tinyExperiment({
        seeds: [70, 71, 72, 73],
        training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
        analyses: { runFigures: false },
        execution: { local: true, runsPerWorkflow: 2, maxAttempts: 2, continueAsNewAfter: 2 },
      });
      const experimentId = `results-${randomUUID().slice(0, 8)}`;
      const handle = await stack.temporal.client.workflow.start(experimentWorkflow, {
        workflowId: experimentId,
        taskQueue: qs.workflows,
        args: [{ experimentId, config, queues: qs, store: flaky.location }],
      });
      const result = await handle.result();
      assert.equal(result.status, 'completed');
      const runs = await loadRuns(flaky, result);
      assert.deepEqual(
        runs.map((r) => r.stage),
        ['completed', 'completed', 'completed', 'completed'],
      );
      for (const run of runs) {
        const stored = await flaky.get(run.resultRef!.key, { sha256: run.resultRef!.sha256 });
        assert.equal((JSON.parse(new TextDecoder().decode(stored)) as { name: string }).name, run.name);
      }
      // Each pack tried to store its runs' results (twice, maxAttempts), then returned them.
      assert.ok(flaky.refused >= 2, `refused puts: ${flaky.refused}`);
      for (const workflowId of new Set(runs.map((r) => r.workflowId))) assert.ok((await steps(workflowId)).local.includes('putRunResults'), workflowId);
      // The experiment moved them: one call per execution for the pack's two results, none per run.
      const moved: string[] = [];
      let runId: string | undefined = handle.firstExecutionRunId;
      while (runId) {
        const { events } = await stack.temporal.client.workflow.getHandle(experimentId, runId).fetchHistory();
        runId = undefined;
        for (const e of events ?? []) {
          const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
          if (name?.startsWith('putRunResult')) moved.push(name);
          runId = e.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? runId;
        }
      }
      assert.deepEqual(moved, ['putRunResults', 'putRunResults']);
    } finally {
      await workers.stop();
    }
  });

  test('a stored result the experiment cannot read back for its compares is an analysis error, not a failed experiment', async () => {
    // Results are stored (the grid continues as new), and the store does not answer the experiment's
    // reads of them, past the retries.
    class UnreadableResults extends S3Store {
      override async get(key: string, opts?: Parameters<S3Store['get']>[1]) {
        const reading = ['getRunResult', 'getSummaries'].includes(Context.current().info.activityType);
        if (reading && key.startsWith('results/')) throw new Error('the store is unavailable (injected)');
        return super.get(key, opts);
      }
    }
    const unreadable = new UnreadableResults({ ...s3.storeOptions, bucket: `unreadable-${randomUUID().slice(0, 8)}` });
    await unreadable.ensureBucket();
    const qs = queueNames(`unreadable-${randomUUID()}`);
    const workers = await startTestWorkers(stack.temporal, qs, { store: unreadable });
    try {
      const config = tinyExperiment({
        seeds: [80, 81],
        training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
        analyses: { runFigures: false, compare: { pairs: 'same-model' } },
        execution: { maxAttempts: 1, continueAsNewAfter: 1 },
      });
      const experimentId = `unreadable-${randomUUID().slice(0, 8)}`;
      const [a, b] = expandRuns(config).map((r) => r.name);
      const result = await stack.temporal.client.workflow.execute(experimentWorkflow, {
        workflowId: experimentId,
        taskQueue: qs.workflows,
        args: [{ experimentId, config, queues: qs, store: unreadable.location }],
      });
      assert.equal(result.status, 'completed');
      assert.deepEqual(
        result.analysisErrors?.find((e) => e.analysis.startsWith('compare')),
        { analysis: `compare ${a} ${b}`, message: 'the store is unavailable (injected)' },
      );
    } finally {
      await workers.stop();
    }
  });

  test('in a pack, an analysis that fails cancels the run\'s other analyses before the next run starts', async () => {
    // The re-initialisation analysis fails, but only once the perturbed copy's retraining has started.
    class FailingReinit extends S3Store {
      private retraining!: () => void;
      readonly retrainingStarted = new Promise<void>((resolve) => (this.retraining = resolve));
      override async put(key: string, bytes: Uint8Array, opts?: Parameters<S3Store['put']>[2]) {
        if (/--sign-flip\/attempts\//.test(key)) this.retraining();
        return super.put(key, bytes, opts);
      }
      override async get(key: string, opts?: Parameters<S3Store['get']>[1]) {
        if (Context.current().info.activityType === 'reinit') {
          await this.retrainingStarted;
          throw new Error('reinit fails (injected)');
        }
        return super.get(key, opts);
      }
    }
    const failing = new FailingReinit({ ...s3.storeOptions, bucket: `reinit-${randomUUID().slice(0, 8)}` });
    await failing.ensureBucket();
    const qs = queueNames(`reinit-${randomUUID()}`);
    const workers = await startTestWorkers(stack.temporal, qs, { store: failing }, 2);
    try {
      const config = tinyExperiment({
        seeds: [90, 91],
        training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
        // A retraining long enough to be running when the re-initialisation fails.
        analyses: { runFigures: false, reinit: {}, perturb: { perturbations: [{ kind: 'sign-flip' }], epochs: 300 } },
        execution: { runsPerWorkflow: 2, maxAttempts: 1, heartbeatTimeout: '10s' },
      });
      const experimentId = `reinit-${randomUUID().slice(0, 8)}`;
      const [first, last] = expandRuns(config);
      const result = await stack.temporal.client.workflow.execute(experimentWorkflow, {
        workflowId: experimentId,
        taskQueue: qs.workflows,
        args: [{ experimentId, config, queues: qs, store: failing.location }],
      });
      assert.deepEqual(result.runs.map((r) => [r.stage, r.error?.message]), [
        ['failed', 'reinit fails (injected)'],
        ['failed', 'reinit fails (injected)'],
      ]);
      // The first run's retraining was cancelled by its pack, not left training beside the second run.
      const { events } = await stack.temporal.client.workflow.getHandle(`${experimentId}/${first!.name}..${last!.name}`).fetchHistory();
      const scheduled = new Map((events ?? []).filter((e) => e.activityTaskScheduledEventAttributes).map((e) => [String(e.eventId), e.activityTaskScheduledEventAttributes!.activityType!.name!]));
      const cancelled = (events ?? []).flatMap((e) => (e.activityTaskCancelRequestedEventAttributes ? [scheduled.get(String(e.activityTaskCancelRequestedEventAttributes.scheduledEventId))] : []));
      assert.ok(cancelled.includes('train'), `cancel requested for: ${cancelled.join(', ') || 'nothing'}`);
    } finally {
      await workers.stop();
    }
  });

  test('a pack cancelled with its experiment ends with status cancelled', async () => {
    const config = tinyExperiment({
      seeds: [50, 51],
      // Long enough to be cancelled in its first run.
      training: { epochs: 500, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.01 } },
      analyses: { runFigures: false },
      execution: { local: true, runsPerWorkflow: 2, maxAttempts: 1 },
    });
    const experimentId = `pack-cancel-${randomUUID().slice(0, 8)}`;
    const [first, last] = expandRuns(config);
    const packId = `${experimentId}/${first!.name}..${last!.name}`;
    const experiment = await stack.temporal.client.workflow.start(experimentWorkflow, {
      workflowId: experimentId,
      taskQueue: stack.queues.workflows,
      args: [{ experimentId, config, queues: stack.queues, store: store.location }],
    });
    const pack = stack.temporal.client.workflow.getHandle(packId);
    let status: unknown;
    for (let i = 0; i < 100 && status !== 'training'; i++) {
      status = (await pack.describe().catch(() => undefined))?.typedSearchAttributes.get(StatusKey);
      if (status !== 'training') await sleep(200);
    }
    assert.equal(status, 'training', 'the pack says it is training while it runs');
    // Until the pack answers, the experiment has its runs where the pack starts.
    const progress = await experiment.query<ExperimentProgress>('progress');
    assert.deepEqual(progress.runs.map((r) => r.stage), ['train', 'pending']);
    await experiment.cancel();
    await assert.rejects(experiment.result(), /cancel/i);
    const closed = await pack.describe();
    // A cancellation reaches a running local activity when its workflow task is renewed, at 80 % of
    // this timeout (Temporal's default of 10 s made cancel wait about 8 s).
    assert.equal(Number(closed.raw.executionConfig?.defaultWorkflowTaskTimeout?.seconds), 3);
    assert.equal(closed.status.name, 'CANCELLED');
    assert.equal(closed.typedSearchAttributes.get(StatusKey), 'cancelled');
  });

  test('a run cancelled on its own fails only itself; a cancelled experiment ends once every run has stopped', async () => {
    const config = tinyExperiment({
      seeds: [60, 61, 62],
      // Long enough to be cancelled while training.
      training: { epochs: 500, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.01 } },
      analyses: { runFigures: false },
      execution: { concurrency: 3, maxAttempts: 1, heartbeatTimeout: '10s' },
    });
    const experimentId = `run-cancel-${randomUUID().slice(0, 8)}`;
    const names = expandRuns(config).map((r) => r.name);
    const experiment = await stack.temporal.client.workflow.start(experimentWorkflow, {
      workflowId: experimentId,
      taskQueue: stack.queues.workflows,
      args: [{ experimentId, config, queues: stack.queues, store: store.location }],
    });
    const runs = names.map((n) => stack.temporal.client.workflow.getHandle(`${experimentId}/${n}`));
    const training = async (handle: (typeof runs)[number]) => (await handle.describe().catch(() => undefined))?.typedSearchAttributes.get(StatusKey) === 'training';
    for (let i = 0; i < 150 && !(await training(runs[0]!)); i++) await sleep(200);
    assert.ok(await training(runs[0]!), 'the first run trains');

    await runs[0]!.cancel();
    let progress: ExperimentProgress | undefined;
    for (let i = 0; i < 100 && progress?.runs[0]?.stage !== 'failed'; i++) {
      await sleep(200);
      progress = await experiment.query<ExperimentProgress>('progress');
    }
    assert.equal(progress?.runs[0]?.stage, 'failed', 'the cancelled run is a failed one');
    assert.match(progress!.runs[0]!.error?.message ?? '', /cancel/i);
    assert.equal((await experiment.describe()).status.name, 'RUNNING', 'its siblings go on');

    await experiment.cancel();
    await assert.rejects(experiment.result(), /cancel/i);
    // Every run was cancelled and had stopped when the experiment ended: none was terminated with it.
    for (const handle of runs.slice(1)) assert.equal((await handle.describe()).status.name, 'CANCELLED', handle.workflowId);
  });

  test('a dataset file whose sha256 does not match fails its runs for good, each found by its status, and leaves the store as it was', async () => {
    // A fresh store, so nothing is cached, holding one object from "earlier".
    const bucket = `corrupt-${randomUUID().slice(0, 8)}`;
    const fresh = new S3Store({ ...s3.storeOptions, bucket });
    await fresh.ensureBucket();
    const earlier = await fresh.put('results/earlier.bin', new TextEncoder().encode('results of an earlier run'));

    // A mirror that serves the real files, except one byte changed in the training labels.
    let corruptRequests = 0;
    const server: Server = createServer(async (req, res) => {
      const name = (req.url ?? '/').slice(1);
      if (name === 'train-labels-idx1-ubyte.gz') corruptRequests++;
      try {
        const bytes = await readFile(`${FASHION_MNIST_DIR}/${name}`);
        if (name === 'train-labels-idx1-ubyte.gz') bytes[bytes.length - 10] ^= 0xff;
        res.end(bytes);
      } catch {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;

    const qs = queueNames(`bad-${randomUUID()}`);
    const workers = await startTestWorkers(stack.temporal, qs, { store: fresh });
    try {
      // Three runs: a pack of two, and one alone.
      const config = tinyExperiment({
        seeds: [1, 2, 3],
        datasets: [{ name: 'fashion-mnist', subset: { train: 600, test: 200 }, sources: [`http://127.0.0.1:${port}/`] }],
        execution: { runsPerWorkflow: 2 },
      });
      const experimentId = `corrupt-${randomUUID()}`;
      const result = await stack.temporal.client.workflow.execute(experimentWorkflow, {
        workflowId: experimentId,
        taskQueue: qs.workflows,
        args: [{ experimentId, config, queues: qs, store: fresh.location }],
      });
      assert.equal(result.status, 'completed-with-failures');
      for (const run of result.runs) {
        assert.equal(run.stage, 'failed');
        assert.equal(run.error?.type, 'DatasetChecksumMismatch');
        assert.match(run.error!.message, /train-labels-idx1-ubyte\.gz/);
      }
      // Non-retryable: no retry fetches the corrupt file again.
      assert.equal(corruptRequests, 1, 'the corrupt file is fetched once');
      // Their workflows start only to record the failure, so that they are found like any failed run.
      const workflowIds = [...new Set(result.runs.map((r) => r.workflowId))];
      assert.equal(workflowIds.length, 2);
      for (const workflowId of workflowIds) {
        const d = await stack.temporal.client.workflow.getHandle(workflowId).describe();
        assert.equal(d.typedSearchAttributes.get(StatusKey), 'failed', workflowId);
        assert.deepEqual([d.type, d.status.name], d.type === 'packWorkflow' ? ['packWorkflow', 'COMPLETED'] : ['runWorkflow', 'FAILED']);
      }
      let rows: Awaited<ReturnType<typeof listRuns>> = [];
      for (let i = 0; i < 50 && rows.length < 2; i++) {
        rows = await listRuns(stack.temporal.client, { experiment: experimentId, status: 'failed' });
        if (rows.length < 2) await sleep(200);
      }
      assert.deepEqual(rows.map((r) => r.runId).sort(), workflowIds.sort());
      const keys = await fresh.list('');
      assert.ok(!keys.some((k) => k.startsWith('runs/')), 'no run state was written');
      const still = await fresh.get(earlier.key, { sha256: earlier.sha256 });
      assert.equal(new TextDecoder().decode(still), 'results of an earlier run');
    } finally {
      await workers.stop();
      server.close();
    }
  });
});
