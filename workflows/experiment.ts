/**
 * `experimentWorkflow`: expands an experiment's grid into child `runWorkflow`s and runs them in a
 * sliding window of `execution.concurrency`. A failed run is recorded and never fails its siblings.
 * Each dataset is downloaded once, before the first run that needs it, and its runs are handed the result.
 * Runs that start from another run's snapshot (`init.from.run` naming a run of this experiment) start
 * once that run has finished, from its stored weights.
 *
 * A grid of thousands of runs would grow one workflow history without bound: after
 * `execution.continueAsNewAfter` runs (or when Temporal suggests it) the window drains and the workflow
 * continues as new, carrying the index of the next run and the finished runs' summaries, moved to the
 * store in chunks, so what it carries stays small at any size. The runs of such a grid (or of more than
 * MAX_QUERY_RESULTS runs) store their own results and return references, so the results never pass
 * through its history. An experiment of more than MAX_QUERY_RESULTS runs returns its summaries in
 * chunks too.
 *
 * After every run: the experiment-level analyses (CKA and feature correlation between pairs of runs,
 * the gathered depth profile), then the `report` activity writes the HTML report. Neither can fail the
 * experiment; what failed is recorded. The `progress` query tells the CLI where every run is.
 */
import {
  CancellationScope,
  continueAsNew,
  defineQuery,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { mapLimit } from '../artifacts/concurrency.js';
import type { AggregateInput, AggregateResult, AggregateRun, CompareBatchResult, CompareBatchRun, CompareResult, DownloadResult } from '../activities/types.js';
import { comparePairs, expandRuns, orderByDependencies, packRuns, runDependencies, type RunSpec } from '../config/grid.js';
import { rootCause } from './failure.js';
import { packWorkflow, retryPolicy, runBrief, runWorkflow } from './run.js';
import { runSearchAttributes } from './search.js';
import { experimentIdOf, type CompareBatching, type ExperimentInput, type ExperimentProgress, type ExperimentResult, type RunResult, type RunSummary, type StoredRunResult, type SummaryChunk } from './types.js';

export const progressQuery = defineQuery<ExperimentProgress>('progress');

/**
 * Above this many runs, the progress query leaves full results out, and the experiment returns its
 * runs' summaries in the store (`chunks`) rather than in its result.
 */
const MAX_QUERY_RESULTS = 100;
/** Summaries per chunk: a chunk of them, results moved out, stays far below the payload limit. */
const CHUNK_RUNS = 500;
/** Characters of JSON results per `putRunResults` call at most (a larger result goes alone): far below the payload limit. */
const RESULT_BATCH_CHARS = 256 * 1024;
/**
 * Where comparing pairs of runs goes to batches (CompareBatching). Up to 100 pairs, each pair is an
 * activity and its result is in the experiment's: about 400 bytes a pair for a small model, 1.3 KB for
 * a 20-layer one. Past that, `compareBatch` calls of 50 pairs store their outcomes, so that neither the
 * history (an activity a pair) nor the result (Temporal's 2 MB payload limit) grows with the pairs.
 */
const COMPARE_BATCHING: Required<CompareBatching> = { inlinePairs: 100, batchPairs: 50 };
/**
 * The workflow task timeout of a run or pack whose steps are local activities. A workflow task stays
 * open while its local activities run and is renewed at 80 % of this timeout; only then does a
 * cancellation reach the workflow and its running activity. Temporal's default of 10 s made `cancel`
 * wait about 8 s; 3 s leaves a busy worker time to answer and renews at most twice per pack call.
 * Each renewal adds 3 events to the history, about 4,300 per hour of local training (Temporal ends a
 * workflow at 51,200): `execution.local` is for runs of seconds, and a longer training moves to the
 * train queue (LocalLimits).
 */
const LOCAL_WORKFLOW_TASK_TIMEOUT = '3s';

/** A run that starts from another run of this experiment, pointed at that run's stored weights (also `run --dry-run`'s). */
export function resolveFrom(spec: RunSpec, done: ReadonlyMap<string, Pick<RunResult, 'train'>>): RunSpec {
  const from = spec.training.init.from;
  if (!from?.run || runDependencies(spec).length === 0) return spec;
  const source = done.get(from.run)!;
  const snap = from.epoch === undefined ? source.train.final : source.train.snapshots.find((s) => s.epoch === from.epoch);
  if (!snap) {
    throw new Error(`training.init.from: run "${from.run}" stored no snapshot of epoch ${from.epoch} (epochs: ${source.train.snapshots.map((s) => s.epoch).join(', ')})`);
  }
  const { run: _run, epoch: _epoch, ...rest } = from;
  return { ...spec, training: { ...spec.training, init: { ...spec.training.init, from: { ...rest, key: snap.key, sha256: snap.sha256 } } } };
}

/** The runs in order, cut into batches of at most `chars` characters of JSON results (a larger one alone). */
function resultBatches(runs: RunSummary[], chars: number): RunSummary[][] {
  const batches: RunSummary[][] = [];
  let size = Infinity;
  for (const r of runs) {
    const n = JSON.stringify(r.result).length;
    if (size + n > chars) {
      batches.push([]);
      size = 0;
    }
    batches.at(-1)!.push(r);
    size += n;
  }
  return batches;
}

export async function experimentWorkflow(params: ExperimentInput): Promise<ExperimentResult> {
  // A schedule starts every execution with the same input; each gets its own id from its workflow id,
  // `<schedule id>-<ISO time>`, less the time's colons, since ids become object keys (portable names).
  const input = { ...params, experimentId: params.experimentId ?? experimentIdOf(workflowInfo().workflowId) };
  const { config } = input;
  const specs = orderByDependencies(expandRuns(config));
  // Each unit is one child workflow: a run alone, or a pack of runs (execution.runsPerWorkflow; absent
  // from the input of experiments started before it existed, which replay with every run alone).
  const units = packRuns(specs, config.execution.runsPerWorkflow ?? 1);
  const unitId = (unit: number[]) =>
    unit.length === 1 ? `${input.experimentId}/${specs[unit[0]!]!.name}` : `${input.experimentId}/${specs[unit[0]!]!.name}..${specs[unit.at(-1)!]!.name}`;
  const runs: RunSummary[] =
    input.continued?.runs ??
    units.flatMap((unit) =>
      unit.map((i) => {
        const spec = specs[i]!;
        return { name: spec.name, runId: `${input.experimentId}/${spec.name}`, workflowId: unitId(unit), stage: 'pending' as const };
      }),
    );
  // Summaries follow the units' order, which is the specs' order.
  const indexOf = new Map(runs.map((r, i) => [r.name, i]));
  // The runs before `stored` are in the store (chunks): those of earlier executions, read when needed,
  // then, as this execution ends, its own.
  const chunks: SummaryChunk[] = [...(input.continued?.chunks ?? [])];
  const carried = chunks.length;
  const carriedRuns = chunks.reduce((n, c) => n + c.count, 0);
  let stored = carriedRuns;
  const progress = (): ExperimentProgress => ({
    experimentId: input.experimentId,
    name: config.name,
    store: input.store,
    runs: runs.slice(stored),
    ...(chunks.length ? { chunks } : {}),
  });
  // A query's answer is capped like any payload: a large grid answers with the runs that have started,
  // with briefs instead of results, and counts the others.
  setHandler(progressQuery, () => {
    const p = progress();
    if (p.runs.length <= MAX_QUERY_RESULTS) return p;
    const started = p.runs.filter((r) => r.stage !== 'pending');
    return { ...p, runs: started.map(({ result, ...r }) => (result ? { ...r, brief: runBrief(result) } : r)), pending: p.runs.length - started.length };
  });

  // A worker that dies mid-report or mid-compare stops heartbeating: another takes the attempt over
  // after `heartbeatTimeout`, not at the end of the hour.
  const { report, compare, compareBatch, aggregate, putRunResult, putRunResults, getRunResult, putSummaries, getSummaries } = proxyActivities<Activities>({
    taskQueue: input.queues.analysis,
    startToCloseTimeout: '1 hour',
    heartbeatTimeout: config.execution.heartbeatTimeout as ActivityOptions['heartbeatTimeout'],
    retry: retryPolicy(config.execution.maxAttempts),
  });

  // Each dataset is downloaded (or found stored) once per execution, on the train queue where the
  // trainings read it, and handed to its runs; a failed download fails the runs that need it.
  const { download } = proxyActivities<Activities>({
    taskQueue: input.queues.train,
    startToCloseTimeout: '7 days',
    heartbeatTimeout: config.execution.heartbeatTimeout as ActivityOptions['heartbeatTimeout'],
    retry: retryPolicy(config.execution.maxAttempts),
  });
  const downloads = new Map<string, Promise<DownloadResult>>();
  const downloadOnce = (dataset: RunSpec['dataset']): Promise<DownloadResult> => {
    const key = JSON.stringify([dataset.name, dataset.sources ?? null]);
    let p = downloads.get(key);
    if (!p) {
      p = download({ experimentId: input.experimentId, runId: input.experimentId, dataset });
      downloads.set(key, p);
    }
    return p;
  };

  // Results of finished runs, by name: what dependants start from and what the final analyses read.
  const results = new Map<string, RunResult>();
  // Reads under way, so that pairs compared at once read a run's result once.
  const reading = new Map<string, Promise<RunResult>>();
  const resultOf = async (summary: RunSummary): Promise<RunResult | undefined> => {
    if (summary.result) return summary.result;
    if (!summary.resultRef) return undefined;
    const cached = results.get(summary.name);
    if (cached) return cached;
    let read = reading.get(summary.name);
    if (!read) {
      read = getRunResult({ experimentId: input.experimentId, runId: summary.runId, ref: summary.resultRef })
        .then((loaded) => {
          results.set(summary.name, loaded);
          return loaded;
        })
        .finally(() => reading.delete(summary.name));
      reading.set(summary.name, read);
    }
    return read;
  };
  for (const r of runs) if (r.result) results.set(r.name, r.result);

  /** A run's summary; one of an earlier execution is read from its chunk the first time it is asked for. */
  const chunkReads = new Map<SummaryChunk, Promise<void>>();
  const summaryOf = async (name: string): Promise<RunSummary> => {
    const i = indexOf.get(name)!;
    const chunk = i < carriedRuns ? chunks.slice(0, carried).find((c) => i >= c.first && i < c.first + c.count) : undefined;
    if (chunk) {
      let read = chunkReads.get(chunk);
      if (!read) {
        read = getSummaries({ experimentId: input.experimentId, runId: input.experimentId, ref: chunk.ref }).then((summaries) => {
          summaries.forEach((s, k) => Object.assign(runs[chunk.first + k]!, s));
        });
        chunkReads.set(chunk, read);
      }
      await read;
    }
    return runs[i]!;
  };

  /** Moves finished results to the store; the summaries keep their references and a brief. */
  const moveResults = async () => {
    const moving = runs.filter((r) => r.result);
    // A call per batch of results. (Experiments started before batches existed replay a call per run.)
    if (!patched('result-batches')) {
      for (const r of moving) {
        r.resultRef = await putRunResult({ experimentId: input.experimentId, runId: r.runId, result: r.result! });
        r.brief = runBrief(r.result!);
        delete r.result;
      }
      return;
    }
    for (const batch of resultBatches(moving, RESULT_BATCH_CHARS)) {
      const refs = await putRunResults({ experimentId: input.experimentId, runId: input.experimentId, results: batch.map((r) => r.result!) });
      batch.forEach((r, k) => {
        r.resultRef = refs[k];
        r.brief = runBrief(r.result!);
        delete r.result;
      });
    }
  };
  /** Moves the summaries of runs [stored, end) to the store, in chunks. */
  const storeSummaries = async (end: number) => {
    for (let first = stored; first < end; first += CHUNK_RUNS) {
      const part = runs.slice(first, Math.min(end, first + CHUNK_RUNS));
      const ref = await putSummaries({ experimentId: input.experimentId, runId: input.experimentId, runs: part });
      chunks.push({ ref, first, count: part.length, completed: part.filter((r) => r.stage === 'completed').length });
      // With the chunk, not after the loop: a query between two chunks counts each run once.
      stored = first + part.length;
    }
    stored = end;
  };

  // A grid too large to carry its runs' results has its runs store them and return where: the results
  // then never pass through this history, nor are they moved at the end. (Experiments started before
  // this replay with their runs returning the results, moved to the store as the grid goes.)
  const storeResult = (runs.length > MAX_QUERY_RESULTS || runs.length > config.execution.continueAsNewAfter) && patched('runs-store-results') ? { storeResult: true } : {};
  const localTaskTimeout = config.execution.local ? { workflowTaskTimeout: LOCAL_WORKFLOW_TASK_TIMEOUT } : {};
  const localLimits = input.localLimits ? { localLimits: input.localLimits } : {};
  /** A run that completed, with its result or where it stored it. */
  const finish = (summary: RunSummary, returned: RunResult | StoredRunResult) => {
    if ('resultRef' in returned) {
      summary.resultRef = returned.resultRef;
      summary.brief = returned.brief;
    } else {
      summary.result = returned;
      results.set(summary.name, returned);
    }
    summary.stage = 'completed';
  };

  const finished = new Map<string, Promise<void>>();
  const failRun = (summary: RunSummary, err: unknown) => {
    // Cancelling the experiment cancels its runs: that ends the experiment, it is not a failed run. A
    // run cancelled on its own (`paramtrail cancel <run's workflow id>`, the Temporal UI) is one that
    // failed, and its siblings go on (experiments started before the `run-cancelled-alone` patch ended).
    if (isCancellation(err) && (CancellationScope.current().consideredCancelled || !patched('run-cancelled-alone'))) throw err;
    summary.stage = 'failed';
    // A cancellation's own message is empty.
    summary.error = isCancellation(err) ? { type: 'CancelledFailure', message: "the run's workflow was cancelled" } : rootCause(err);
  };
  /**
   * A run (or pack) that failed before its workflow started, at its dataset's download or because a run
   * it starts from failed, still gets its workflow, which records the failure and ends: runs are found
   * by their workflows' status (`paramtrail ls --status failed`). Experiments started before the
   * `record-unstarted-runs` patch replay without them.
   */
  const recordUnstarted = async (start: () => Promise<unknown>) => {
    if (!patched('record-unstarted-runs')) return;
    try {
      await start();
    } catch (err) {
      // The failure it records (a run's workflow ends failed), or a workflow id already taken: the
      // run's summary already says why it failed.
      if (isCancellation(err)) throw err;
    }
  };
  const startRun = async (i: number): Promise<void> => {
    const summary = runs[i]!;
    let started = false;
    try {
      // Dependencies come earlier in the order, so they are already running or done.
      const depResults = new Map<string, RunResult>();
      for (const dep of runDependencies(specs[i]!)) {
        await finished.get(dep);
        const depSummary = await summaryOf(dep);
        const depResult = await resultOf(depSummary);
        if (!depResult) throw new Error(`starts from run "${dep}", which ${depSummary.stage === 'failed' ? 'failed' : 'did not finish'}`);
        depResults.set(dep, depResult);
      }
      const spec = resolveFrom(specs[i]!, depResults);
      summary.stage = 'download';
      const data = await downloadOnce(spec.dataset);
      started = true;
      const returned = await executeChild(runWorkflow, {
        workflowId: summary.workflowId,
        taskQueue: input.queues.workflows,
        ...localTaskTimeout,
        typedSearchAttributes: runSearchAttributes(input.experimentId, summary.runId, spec),
        args: [{ experimentId: input.experimentId, runId: summary.runId, run: spec, queues: input.queues, execution: config.execution, force: input.force, data, ...storeResult, ...localLimits }],
      });
      finish(summary, returned);
    } catch (err) {
      failRun(summary, err);
      if (started) return;
      const spec = specs[i]!;
      await recordUnstarted(() =>
        executeChild(runWorkflow, {
          workflowId: summary.workflowId,
          taskQueue: input.queues.workflows,
          typedSearchAttributes: runSearchAttributes(input.experimentId, summary.runId, spec),
          args: [{ experimentId: input.experimentId, runId: summary.runId, run: spec, queues: input.queues, execution: config.execution, failedBeforeStart: summary.error! }],
        }),
      );
    }
  };
  /** A pack: runs without dependencies that share a model, dataset and optimiser (packRuns). */
  const startPack = async (unit: number[]): Promise<void> => {
    const members = unit.map((i) => runs[i]!);
    const workflowId = members[0]!.workflowId;
    let started = false;
    try {
      for (const m of members) m.stage = 'download';
      const data = await downloadOnce(specs[unit[0]!]!.dataset);
      started = true;
      // Until the pack answers a query (cli/progress.ts), its runs are where it starts: on the first,
      // the others waiting their turn.
      members.forEach((m, k) => (m.stage = k === 0 ? 'train' : 'pending'));
      const packed = await executeChild(packWorkflow, {
        workflowId,
        taskQueue: input.queues.workflows,
        ...localTaskTimeout,
        typedSearchAttributes: runSearchAttributes(input.experimentId, workflowId, specs[unit[0]!]!),
        args: [
          { experimentId: input.experimentId, runs: unit.map((i) => ({ runId: runs[i]!.runId, run: specs[i]! })), queues: input.queues, execution: config.execution, force: input.force, data, ...storeResult, ...localLimits },
        ],
      });
      packed.runs.forEach((r, k) => {
        const summary = members[k]!;
        if ('error' in r) {
          summary.stage = 'failed';
          summary.error = r.error;
        } else {
          finish(summary, 'result' in r ? r.result : r);
        }
      });
    } catch (err) {
      for (const m of members) failRun(m, err);
      if (started) return;
      await recordUnstarted(() =>
        executeChild(packWorkflow, {
          workflowId,
          taskQueue: input.queues.workflows,
          typedSearchAttributes: runSearchAttributes(input.experimentId, workflowId, specs[unit[0]!]!),
          args: [{ experimentId: input.experimentId, runs: unit.map((i) => ({ runId: runs[i]!.runId, run: specs[i]! })), queues: input.queues, execution: config.execution, failedBeforeStart: members[0]!.error! }],
        }),
      );
    }
  };

  const window = new Set<Promise<void>>();
  /**
   * A unit rejects only when the experiment is cancelled (runs record their own failures): the others
   * are cancelled too, and the experiment ends once every one of them has, so no run is left training
   * after it (each child waits for its own activities' cancellation). Experiments started before the
   * `drain-on-cancel` patch ended at the first.
   */
  const drain = async (err: unknown): Promise<never> => {
    if (patched('drain-on-cancel')) await Promise.allSettled(window);
    throw err;
  };
  // Runs finished before this execution count as finished; the rest start in order.
  for (const [i, r] of runs.entries()) if (i < carriedRuns || r.stage === 'completed' || r.stage === 'failed') finished.set(r.name, Promise.resolve());
  const first = input.continued?.next ?? 0;
  for (const unit of units) {
    const i = unit[0]!;
    if (i < first) continue;
    const startedHere = i - first;
    if (startedHere > 0 && (startedHere >= config.execution.continueAsNewAfter || workflowInfo().continueAsNewSuggested)) {
      await Promise.all(window).catch(drain);
      // The carried state must stay well under Temporal's payload limit whatever the grid's size:
      // finished results go to the store, then their summaries (executions started before chunks
      // existed carried the summaries themselves, and replay so).
      await moveResults();
      const executions = (input.continued?.executions ?? 1) + 1;
      if (patched('summary-chunks')) {
        await storeSummaries(i);
        await continueAsNew<typeof experimentWorkflow>({ ...input, continued: { next: i, chunks, executions } });
      }
      await continueAsNew<typeof experimentWorkflow>({ ...input, continued: { next: i, runs, executions } });
    }
    if (window.size >= config.execution.concurrency) await Promise.race(window).catch(drain);
    const p: Promise<void> = (unit.length === 1 ? startRun(i) : startPack(unit)).finally(() => window.delete(p));
    window.add(p);
    for (const k of unit) finished.set(specs[k]!.name, p);
  }
  await Promise.all(window).catch(drain);

  const failed = chunks.some((c) => c.completed < c.count) || runs.slice(carriedRuns).some((r) => r.stage !== 'completed');
  const status: ExperimentResult['status'] = failed ? 'completed-with-failures' : 'completed';
  const analysisErrors: NonNullable<ExperimentResult['analysisErrors']> = [];
  const extra: Pick<ExperimentResult, 'compare' | 'compareBatches' | 'aggregate' | 'analysisErrors'> = {};

  // Experiment-level analyses: on the runs that completed; one that fails is recorded, never fatal.
  // Nor does a read of the runs' stored results for them (the store out of reach past the retries):
  // experiments started before the `analysis-reads-recorded` patch failed there.
  const readsRecorded = () => patched('analysis-reads-recorded');
  const pairs = comparePairs(config, specs);
  const batching = { ...COMPARE_BATCHING, ...input.compareBatching };
  if (pairs.length > batching.inlinePairs && patched('compare-batches')) {
    // More pairs than an activity and an inline result each: batches, whose outcomes go to the store.
    // (Experiments started before the `compare-batches` patch replay with an activity per pair.)
    const batches: Array<Array<[string, string]>> = [];
    for (let k = 0; k < pairs.length; k += batching.batchPairs) batches.push(pairs.slice(k, k + batching.batchPairs));
    const done: Array<CompareBatchResult | undefined> = [];
    const compareOne = async (k: number): Promise<void> => {
      const batch = batches[k]!;
      const names = [...new Set(batch.flat())];
      const runsIn: CompareBatchRun[] = [];
      let read = false;
      try {
        for (const name of names) {
          const summary = await summaryOf(name);
          // Features at hand are handed over; a stored result is read by the batch, not through this history.
          const features = (summary.result ?? results.get(name))?.analyses?.features;
          runsIn.push({ name, runId: summary.runId, ...(features ? { features } : summary.resultRef ? { resultRef: summary.resultRef } : {}) });
        }
        read = true;
        const index = new Map(names.map((n, i) => [n, i]));
        done[k] = await compareBatch({
          experimentId: input.experimentId,
          runId: input.experimentId,
          runs: runsIn,
          pairs: batch.map(([a, b]): [number, number] => [index.get(a)!, index.get(b)!]),
          layers: config.analyses.compare?.layers,
        });
      } catch (err) {
        if (isCancellation(err) || (!read && !readsRecorded())) throw err;
        analysisErrors.push({ analysis: `compare, batch ${k + 1} of ${batches.length} (${batch.length} pairs from ${batch[0]![0]} ${batch[0]![1]})`, message: rootCause(err).message });
      }
    };
    await mapLimit([...batches.keys()], config.execution.concurrency, compareOne);
    extra.compareBatches = [];
    for (const b of done) {
      if (!b) continue;
      const { errors, ...kept } = b;
      extra.compareBatches.push(kept);
      for (const e of errors) analysisErrors.push({ analysis: `compare ${e.a} ${e.b}`, message: e.message });
      if (b.failed > errors.length) {
        analysisErrors.push({ analysis: 'compare', message: `${b.failed - errors.length} more pairs of a batch could not be compared: each pair's error is in its outcomes, ${b.outcomes.key}` });
      }
    }
  } else if (pairs.length) {
    // `execution.concurrency` pairs at a time, each outcome kept in its pair's place. (Experiments
    // started before the `compare-concurrently` patch replay comparing one pair at a time.)
    const width = patched('compare-concurrently') ? config.execution.concurrency : 1;
    const outcomes: Array<{ compared: CompareResult } | { error: string }> = [];
    const comparePair = async (k: number): Promise<void> => {
      const [a, b] = pairs[k]!;
      let read = false;
      try {
        const ra = await summaryOf(a);
        const rb = await summaryOf(b);
        const fa = (await resultOf(ra))?.analyses?.features;
        const fb = (await resultOf(rb))?.analyses?.features;
        read = true;
        if (!fa || !fb) {
          outcomes[k] = { error: `${!fa ? a : b} has no probe features (it failed or diverged in its first epoch)` };
          return;
        }
        outcomes[k] = {
          compared: await compare({
            experimentId: input.experimentId,
            runId: input.experimentId,
            a: { runId: ra.runId, name: a, features: fa },
            b: { runId: rb.runId, name: b, features: fb },
            layers: config.analyses.compare?.layers,
          }),
        };
      } catch (err) {
        if (isCancellation(err) || (!read && !readsRecorded())) throw err;
        outcomes[k] = { error: rootCause(err).message };
      }
    };
    await mapLimit([...pairs.keys()], width, comparePair);
    extra.compare = [];
    for (const [k, o] of outcomes.entries()) {
      if ('compared' in o) extra.compare.push(o.compared);
      else analysisErrors.push({ analysis: `compare ${pairs[k]![0]} ${pairs[k]![1]}`, message: o.error });
    }
  }
  // Whether the runs' summaries end in the store rather than in the result (see below).
  const large = carried > 0 || runs.length - stored > MAX_QUERY_RESULTS;
  if (config.analyses.aggregate) {
    const p = String(config.analyses.distance.p[0]!);
    let from: Pick<AggregateInput, 'runs' | 'stored'> | undefined;
    if (large && patched('aggregate-from-store')) {
      // Listing every run's table here would read each moved result back through an activity and hand
      // the aggregate an input as large as the grid: the summaries go to the store first, and the
      // aggregate reads them there. (Experiments started before this replay the listing.)
      await moveResults();
      await storeSummaries(runs.length);
      from = { stored: { chunks, config } };
    }
    let read = from !== undefined;
    try {
      if (!from) {
        const tables: AggregateRun[] = [];
        for (const [i, { name }] of runs.entries()) {
          const r = await summaryOf(name);
          const res = await resultOf(r);
          if (res) tables.push({ runId: r.runId, name: r.name, group: specs[i]!.group, table: res.distance.table });
        }
        from = { runs: tables };
        read = true;
      }
      extra.aggregate = (await aggregate({ experimentId: input.experimentId, ...from, p })) as AggregateResult;
    } catch (err) {
      if (isCancellation(err) || (!read && !readsRecorded())) throw err;
      analysisErrors.push({ analysis: 'aggregate', message: rootCause(err).message });
    }
  }
  if (analysisErrors.length) extra.analysisErrors = analysisErrors;

  // More runs than a result holds (or summaries already in the store): the rest go there too, and the
  // report reads them from there.
  if (large && patched('summary-chunks')) {
    await moveResults();
    await storeSummaries(runs.length);
  }

  try {
    // The report reads the specs from the config when they would not fit in its input.
    const written = await report({ experimentId: input.experimentId, result: { ...progress(), status, ...extra }, ...(stored > 0 ? { config } : { specs }) });
    return { ...progress(), status, ...extra, report: written };
  } catch (err) {
    if (isCancellation(err)) throw err;
    return { ...progress(), status, ...extra, reportError: rootCause(err) };
  }
}
