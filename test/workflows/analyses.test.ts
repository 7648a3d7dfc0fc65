/**
 * Every analysis through the real pipeline (a Temporal dev server, in-process workers, a local store,
 * real Fashion-MNIST, the CPU backend): an experiment of two seeds asking for every analysis ends with
 * each result present and readable; a rerun reuses both trainings and reproduces every analysis table's
 * rows; `force` retrains to the same weights; a snapshot altered in the store is not reused; a
 * run that starts from another run's weights trains after it, from its final snapshot; and a grid run
 * with a continue-as-new threshold of one run completes across several executions.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadCompareOutcomes, loadRuns } from '../../activities/results.js';
import { CKA_TABLE, CORRELATION_TABLE, DEPTH_PROFILE_TABLE, NORMS_TABLE, REINIT_TABLE, SMOOTHNESS_TABLE } from '../../artifacts/analysis-tables.js';
import { LocalStore } from '../../artifacts/local.js';
import { recordsFromArrow, type RecordTableSpec } from '../../artifacts/records.js';
import { snapshotFromArrow } from '../../artifacts/snapshot.js';
import { distanceTableFromArrow } from '../../artifacts/table.js';
import { withStored } from '../../cli/summary.js';
import { resultRefs } from '../../cli/verify.js';
import type { CompareResult } from '../../activities/types.js';
import type { ObjectRef } from '../../artifacts/refs.js';
import type { ExperimentResult } from '../../workflows/types.js';
import { tempDir, tinyExperiment, requireFashionMnist } from '../support/fixtures.js';
import { startTestStack, type TestStack } from '../support/stack.js';

describe('analyses, reuse and continue-as-new on a real Temporal server', () => {
  let stack: TestStack;
  let store: LocalStore;
  let root: string;

  before(async () => {
    requireFashionMnist();
    root = await tempDir();
    store = new LocalStore(root);
    stack = await startTestStack({ name: 'an', deps: { store, backend: 'cpu' }, trainSlots: 2 });
  });

  after(() => stack?.stop());

  async function rows<R extends Record<string, string | number>>(spec: RecordTableSpec<R>, ref: { key: string; sha256: string }): Promise<R[]> {
    return recordsFromArrow(spec, await store.get(ref.key, { sha256: ref.sha256 })).rows;
  }

  /** Every tensor's sha256: snapshots of different runs differ in metadata (run id, epoch), not in weights. */
  async function tensorHashes(ref: { key: string; sha256: string }): Promise<string[]> {
    return snapshotFromArrow(await store.get(ref.key, { sha256: ref.sha256 })).tensors.map((t) => `${t.layer}/${t.name}:${t.sha256}`);
  }

  const everything = () =>
    tinyExperiment({
      name: 'every-analysis',
      models: [{ name: 'mlp', args: { hidden: [16, 16] } }],
      seeds: [0, 1],
      analyses: {
        distance: { p: [1, 2], changed: { atol: 0, rtol: 0 } },
        probe: { size: 64 },
        correlation: { bins: 10 },
        compare: {},
        perturb: { perturbations: [{ kind: 'sign-flip' }, { kind: 'offset', value: 1e-6 }], epochs: 1 },
        reinit: {},
        smoothness: { trees: 3, epochs: [1] },
        aggregate: true,
      },
    });

  let first: ExperimentResult;

  test('every analysis the file asks for is computed, stored and readable', async () => {
    first = await stack.execute(everything());
    assert.equal(first.status, 'completed', JSON.stringify(first.runs.map((r) => r.error)));
    assert.equal(first.analysisErrors, undefined);
    for (const run of first.runs) {
      const res = run.result!;
      const a = res.analyses!;
      assert.equal(res.reusedFrom, undefined);
      assert.match(res.configHash, /^[0-9a-f]{64}$/);
      // Features: every layer with parameters, 64 probe examples.
      assert.equal(a.features!.examples, 64);
      assert.deepEqual(a.features!.layers.map((l) => l.depth), [0, 1, 2]);
      const hist = await rows(CORRELATION_TABLE, a.correlation!.table);
      assert.equal(hist.length, 10);
      assert.ok(a.correlation!.meanAbs > 0 && a.correlation!.meanAbs <= 1, `mean |r| ${a.correlation!.meanAbs}`);
      const reinit = await rows(REINIT_TABLE, a.reinit!.table);
      assert.equal(reinit.length, 3);
      assert.equal(a.reinit!.baseline.accuracy, res.train.test.accuracy, 'the baseline is the trained model');
      const smooth = await rows(SMOOTHNESS_TABLE, a.smoothness!.table);
      assert.equal(smooth.length, a.smoothness!.layers.length);
      assert.ok(smooth.every((r) => Number.isFinite(r.alpha)), JSON.stringify(smooth));
      assert.deepEqual(a.smoothnessAt!.map((e) => [e.epoch, e.features.snapshot.epoch, e.smoothness.layers.length]), [[1, 1, smooth.length]]);
      assert.deepEqual(a.perturb!.map((p) => p.label), ['sign-flip', 'offset-1e-6']);
      const [flip, offset] = a.perturb!;
      assert.equal(flip.runId, `${run.runId}--sign-flip`);
      assert.deepEqual(await tensorHashes(flip.train.snapshots[0]!), await tensorHashes(flip.perturb.perturbed), 'the retraining starts from the perturbed weights');
      const norms = await rows(NORMS_TABLE, flip.norms.table);
      const model = norms.find((r) => r.layer === '__model__')!;
      assert.ok(Math.abs(model.perturbed - model.theta1) < 1e-9 * model.theta1, 'a sign flip keeps the norm');
      assert.ok(offset.norms.model.relative < flip.norms.model.relative, 'a small offset lands closer than a sign flip');
      // Each analysis has a figure.
      assert.ok(res.plot.figures.length > 2, JSON.stringify(res.plot.figures.map((f) => f.key)));
    }
    assert.equal(first.compare!.length, 1);
    const cka = await rows(CKA_TABLE, first.compare![0]!.table);
    assert.equal(cka.length, 9);
    assert.ok(cka.every((r) => r.cka >= -1e-9 && r.cka <= 1 + 1e-9));
    const profile = await rows(DEPTH_PROFILE_TABLE, first.aggregate!.table);
    assert.deepEqual([...new Set(profile.map((r) => r.against))].sort(), ['init', 'previous']);
    assert.ok(first.report, JSON.stringify(first.reportError));
  });

  test('a rerun reuses both trainings and reproduces every table', async () => {
    const again = await stack.execute(everything());
    assert.equal(again.status, 'completed');
    for (const [i, run] of again.runs.entries()) {
      const before = first.runs[i]!.result!;
      const res = run.result!;
      assert.equal(res.reusedFrom, first.runs[i]!.runId);
      assert.equal(res.configHash, before.configHash);
      assert.deepEqual(res.train.snapshots, before.train.snapshots);
      // Tables name their run in their metadata; their rows must be the same.
      assert.deepEqual(distanceTableFromArrow(await store.get(res.distance.table.key)).map(({ runId: _r, ...r }) => r), distanceTableFromArrow(await store.get(before.distance.table.key)).map(({ runId: _r, ...r }) => r));
      assert.deepEqual(await rows(CORRELATION_TABLE, res.analyses!.correlation!.table), await rows(CORRELATION_TABLE, before.analyses!.correlation!.table));
      assert.deepEqual(await rows(SMOOTHNESS_TABLE, res.analyses!.smoothness!.table), await rows(SMOOTHNESS_TABLE, before.analyses!.smoothness!.table));
      assert.deepEqual(await rows(REINIT_TABLE, res.analyses!.reinit!.table), await rows(REINIT_TABLE, before.analyses!.reinit!.table));
      // The retrainings of the perturbed copies are trainings too, and reused alike.
      assert.deepEqual(res.analyses!.perturb!.map((p) => p.train.final.sha256), before.analyses!.perturb!.map((p) => p.train.final.sha256));
    }
  });

  test('distances to a named snapshot: another experiment run, by run and epoch', async () => {
    const source = first.runs[0]!;
    const config = tinyExperiment({
      name: 'referenced',
      models: [{ name: 'mlp', args: { hidden: [16, 16] } }],
      analyses: { distance: { p: [1], references: [{ label: 'earlier', run: source.runId, epoch: 2 }] } },
    });
    const result = await stack.execute(config);
    assert.equal(result.status, 'completed', JSON.stringify(result.runs[0]!.error));
    const res = result.runs[0]!.result!;
    // The same training (reused), so its final weights are the referenced ones: distance 0 at epoch 2.
    assert.equal(res.reusedFrom, source.runId);
    const refRows = distanceTableFromArrow(await store.get(res.distance.table.key)).filter((r) => r.against === 'ref:earlier');
    assert.deepEqual([...new Set(refRows.map((r) => r.epoch))], [0, 1, 2]);
    assert.ok(refRows.every((r) => r.referenceEpoch === 2));
    const atRef = refRows.filter((r) => r.epoch === 2);
    assert.ok(atRef.length > 0 && atRef.every((r) => r.distance === 0));
    const modelAtInit = refRows.filter((r) => r.epoch === 0 && r.layer === '__model__');
    assert.ok(modelAtInit.length === 1 && modelAtInit.every((r) => r.distance > 0));
    const missing = await stack.execute(tinyExperiment({ name: 'referenced-missing', analyses: { distance: { references: [{ label: 'gone', run: 'nope/none', epoch: 1 }] } } }));
    assert.equal(missing.status, 'completed-with-failures');
    assert.match(missing.runs[0]!.error!.message, /references gone: expected a checkpoint of run "nope\/none" at epoch 1/);
  });

  test('force retrains, to the same weights on the CPU backend', async () => {
    const forced = await stack.execute(everything(), { force: true });
    assert.equal(forced.status, 'completed');
    const res = forced.runs[0]!.result!;
    assert.equal(res.reusedFrom, undefined);
    assert.ok(res.train.attempts.every((a) => a.startedAt > first.runs[0]!.result!.train.attempts[0]!.startedAt), 'a fresh training');
    const before = first.runs[0]!.result!.train.snapshots;
    assert.equal(res.train.snapshots.length, before.length);
    for (const [i, s] of res.train.snapshots.entries()) assert.deepEqual(await tensorHashes(s), await tensorHashes(before[i]!), `epoch ${s.epoch}`);
  });

  test('a training whose stored snapshot was altered is trained again, not reused', async () => {
    const config = tinyExperiment({ name: 'altered', seeds: [7] });
    const original = await stack.execute(config);
    const snap = original.runs[0]!.result!.train.snapshots.at(-1)!;
    const path = join(root, snap.key);
    const bytes = await readFile(path);
    bytes[bytes.length - 100] ^= 0x01;
    await writeFile(path, bytes);
    const again = await stack.execute(config);
    assert.equal(again.status, 'completed', JSON.stringify(again.runs[0]!.error));
    assert.equal(again.runs[0]!.result!.reusedFrom, undefined);
  });

  test('a run that starts from another run of the experiment trains after it, from its final weights', async () => {
    const config = tinyExperiment({
      name: 'pretrained',
      variants: [
        { label: 'tuned', training: { epochs: 1, init: { kernel: 'glorot-uniform', bias: 'zeros', from: { run: '{model}--base--{dataset}--s{seed}' } } } },
        { label: 'base' },
      ],
    });
    const result = await stack.execute(config);
    assert.equal(result.status, 'completed', JSON.stringify(result.runs.map((r) => r.error)));
    const base = result.runs.find((r) => r.name.includes('--base--'))!.result!;
    const tuned = result.runs.find((r) => r.name.includes('--tuned--'))!.result!;
    assert.deepEqual(await tensorHashes(tuned.train.snapshots[0]!), await tensorHashes(base.train.final), 'epoch 0 of the tuned run is the base run final weights');
  });

  test('a grid continues as new every run and still completes with every result', async () => {
    const config = tinyExperiment({
      name: 'continued',
      seeds: [11, 12, 13],
      training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
      execution: { concurrency: 1, heartbeatTimeout: '10s', maxAttempts: 3, continueAsNewAfter: 1 },
    });
    const handle = await stack.start(config);
    const experimentId = handle.workflowId;
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    // A grid that continued as new keeps its runs in the store: their summaries in one chunk per
    // execution, each carrying its result by reference.
    assert.deepEqual(
      result.chunks?.map(({ first, count, completed }) => ({ first, count, completed })),
      [0, 1, 2].map((first) => ({ first, count: 1, completed: 1 })),
    );
    assert.deepEqual(result.runs, []);
    const runs = await loadRuns(store, result);
    assert.deepEqual(runs.map((r) => r.name), ['mlp--fashion-mnist--s11', 'mlp--fashion-mnist--s12', 'mlp--fashion-mnist--s13']);
    assert.ok(runs.every((r) => r.resultRef && r.brief?.trainingStatus === 'completed'), JSON.stringify(runs));
    const first = stack.temporal.client.workflow.getHandle(experimentId, handle.firstExecutionRunId);
    assert.equal((await first.describe()).status.name, 'CONTINUED_AS_NEW');
    assert.ok(result.report, JSON.stringify(result.reportError));
  });

  test('pairs are compared at once, each run\'s stored result read once, and reported in their order', async () => {
    // Continued as new after every run: the final execution reads the runs' results from the store.
    const config = tinyExperiment({
      name: 'compared',
      seeds: [14, 15, 16],
      training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
      analyses: { probe: { size: 32 }, compare: {}, runFigures: false },
      execution: { concurrency: 3, heartbeatTimeout: '10s', maxAttempts: 3, continueAsNewAfter: 1 },
    });
    const handle = await stack.start(config);
    const result = await handle.result();
    assert.equal(result.status, 'completed', JSON.stringify(result.analysisErrors));
    const names = (await loadRuns(store, result)).map((r) => r.name);
    assert.deepEqual(
      result.compare?.map((c) => [c.a, c.b]),
      [
        [names[0], names[1]],
        [names[0], names[2]],
        [names[1], names[2]],
      ],
    );
    const { events } = await stack.temporal.client.workflow.getHandle(handle.workflowId).fetchHistory();
    const scheduled = new Map<string, string>();
    const order: string[] = [];
    for (const e of events ?? []) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s) scheduled.set(String(e.eventId), s.activityType!.name!);
      if (s?.activityType?.name === 'compare') order.push('scheduled');
      const done = e.activityTaskCompletedEventAttributes;
      if (done && scheduled.get(String(done.scheduledEventId)) === 'compare') order.push('completed');
    }
    // The first pair may finish before the third run's result is read (the analysis worker has two
    // slots); the two pairs that wait for it then start together. One at a time, none would overlap.
    let inFlight = 0;
    let most = 0;
    for (const o of order) most = Math.max(most, (inFlight += o === 'scheduled' ? 1 : -1));
    assert.ok(most >= 2, `pairs at once: ${order.join(', ')}`);
    assert.equal([...scheduled.values()].filter((t) => t === 'getRunResult').length, 3, 'each run\'s result read once, though each is in two pairs');
  });

  test('many pairs are compared in batches that store their outcomes: the same numbers, all in the report, status and verify', async () => {
    const config = tinyExperiment({
      name: 'batched',
      seeds: [14, 15, 16, 17],
      training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
      analyses: { probe: { size: 32 }, compare: {}, runFigures: false },
      execution: { concurrency: 2, heartbeatTimeout: '10s', maxAttempts: 3, continueAsNewAfter: 2 },
    });
    // 6 pairs, above 2 inline: batches of 4 and 2.
    const handle = await stack.start(config, { compareBatching: { inlinePairs: 2, batchPairs: 4 } });
    const result = await handle.result();
    assert.equal(result.status, 'completed', JSON.stringify(result.analysisErrors));
    assert.equal(result.compare, undefined);
    assert.deepEqual(result.compareBatches?.map((b) => [b.pairs, b.failed]), [[4, 0], [2, 0]]);
    const { events } = await stack.temporal.client.workflow.getHandle(handle.workflowId).fetchHistory();
    const types = (events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType!.name!] : []));
    assert.deepEqual([types.filter((t) => t === 'compareBatch').length, types.filter((t) => t === 'compare').length], [2, 0]);
    // The runs before the last execution were in the store: the batches read their results, not the workflow.
    assert.equal(types.filter((t) => t === 'getRunResult').length, 0);

    const names = (await loadRuns(store, result)).map((r) => r.name);
    const batched = (await loadCompareOutcomes(store, result.compareBatches!)).map((o) => {
      assert.ok('compared' in o, JSON.stringify(o));
      return o.compared;
    });
    assert.deepEqual(
      batched.map((c) => [c.a, c.b]),
      [0, 1, 2].flatMap((i) => [1, 2, 3].filter((j) => j > i).map((j) => [names[i], names[j]])),
    );
    // The same experiment with a compare per pair (its trainings reused) gives the same numbers and tables.
    const inline = await stack.execute({ ...config, name: 'inline' });
    const numbers = (cs: CompareResult[]) => cs.map(({ a, b, diagonal, penultimateMeanAbs }) => ({ a, b, diagonal, penultimateMeanAbs }));
    assert.deepEqual(numbers(inline.compare ?? []), numbers(batched));
    for (const [k, c] of batched.entries()) {
      const rows = async (ref: ObjectRef) => recordsFromArrow(CKA_TABLE, await store.get(ref.key, { sha256: ref.sha256 })).rows;
      assert.deepEqual(await rows(c.table), await rows(inline.compare![k]!.table));
    }

    const html = await readFile(result.report!.path, 'utf8');
    for (const c of batched) assert.ok(html.includes(`<td>${c.a}</td><td>${c.b}</td>`), `the report lists ${c.a} against ${c.b}`);
    assert.equal((html.match(/Linear CKA, /g) ?? []).length, 6, 'a heatmap per pair');
    assert.ok(html.includes('Mean CKA of same layers and penultimate mean |r|, 6 pairs'), 'the pair matrix');
    const shown = await withStored(result, { ...process.env });
    assert.deepEqual(shown.compare, batched);
    assert.equal(shown.compareBatches, undefined);
    const refs = (await resultRefs(store, result)).map((r) => r.key);
    for (const c of batched) assert.ok(refs.includes(c.table.key), `verify checks ${c.table.key}`);
  });

  test('pairs of a batch with a run that failed are reported as analysis errors, the others compared', async () => {
    const missing = 'tensors/00/0000000000000000000000000000000000000000000000000000000000000000.arrow';
    const config = tinyExperiment({
      name: 'batched-failures',
      seeds: [18, 19],
      training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
      // One variant cannot train: its runs fail, and so does every pair they are in.
      variants: [{ label: 'ok' }, { label: 'missing', training: { init: { kernel: 'glorot-uniform', bias: 'zeros', from: { key: missing } } } }],
      analyses: { probe: { size: 32 }, compare: { pairs: 'all' }, runFigures: false },
      execution: { concurrency: 2, heartbeatTimeout: '10s', maxAttempts: 1 },
    });
    const result = await stack.execute(config, { compareBatching: { inlinePairs: 1, batchPairs: 4 } });
    assert.equal(result.status, 'completed-with-failures');
    assert.deepEqual(result.compareBatches?.map((b) => [b.pairs, b.failed]), [[4, 3], [2, 2]]);
    const failed = new Set(result.runs.filter((r) => r.stage === 'failed').map((r) => r.name));
    assert.equal(failed.size, 2);
    const outcomes = await loadCompareOutcomes(store, result.compareBatches!);
    const compared = outcomes.flatMap((o) => ('compared' in o ? [[o.compared.a, o.compared.b]] : []));
    assert.equal(compared.length, 1);
    assert.ok(compared[0]!.every((name) => !failed.has(name)), JSON.stringify(compared));
    const errors = (result.analysisErrors ?? []).filter((e) => e.analysis.startsWith('compare '));
    assert.equal(errors.length, 5, JSON.stringify(result.analysisErrors));
    for (const e of errors) {
      const [, a, b] = e.analysis.split(' ');
      assert.ok(failed.has(a!) || failed.has(b!), e.analysis);
      assert.match(e.message, /has no probe features/);
    }
  });

  test('a grid packed two runs per workflow continues as new between packs and keeps every run', async () => {
    const config = tinyExperiment({
      name: 'continued-packs',
      seeds: [15, 16, 17],
      training: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', learningRate: 0.05 } },
      execution: { concurrency: 1, heartbeatTimeout: '10s', maxAttempts: 3, continueAsNewAfter: 1, runsPerWorkflow: 2, local: true },
    });
    const handle = await stack.start(config);
    const experimentId = handle.workflowId;
    const result = await handle.result();
    assert.equal(result.status, 'completed', JSON.stringify(result.runs.map((r) => r.error)));
    const runs = await loadRuns(store, result);
    assert.deepEqual(
      runs.map((r) => r.workflowId),
      [`${experimentId}/mlp--fashion-mnist--s15..mlp--fashion-mnist--s16`, `${experimentId}/mlp--fashion-mnist--s15..mlp--fashion-mnist--s16`, `${experimentId}/mlp--fashion-mnist--s17`],
    );
    // The first pack finished in the first execution, the last run in the second: a chunk each.
    assert.deepEqual(result.chunks?.map(({ first, count }) => [first, count]), [[0, 2], [2, 1]]);
    assert.ok(runs.every((r) => r.resultRef && r.brief?.trainingStatus === 'completed'), JSON.stringify(runs));
    const first = stack.temporal.client.workflow.getHandle(experimentId, handle.firstExecutionRunId);
    assert.equal((await first.describe()).status.name, 'CONTINUED_AS_NEW');
  });
});
