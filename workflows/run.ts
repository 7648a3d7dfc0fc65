/**
 * `runWorkflow`: one cell of an experiment's grid, download -> train -> distance -> analyses -> plot.
 * Only references travel between the steps; the tensors stay in the store.
 *
 * The analyses the experiment file asks for run after training, on the stored snapshots, and are
 * independent of each other: probe features (then within-model correlation and smoothness on them),
 * re-initialisation robustness, and perturb-and-retrain (each perturbation of the final weights is
 * retrained by the train activity like any run, under `<run id>--<label>`, then measured). A failed
 * analysis fails the run: the experiment records it and goes on with the other runs.
 *
 * It returns its result, or, asked to `storeResult` (a large grid's runs are), stores the result and
 * returns its reference and brief, so that the result never passes through the experiment's history.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  TimeoutFailure,
  workflowInfo,
  type ActivityOptions,
  type LocalActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { NON_RETRYABLE_TYPES } from '../activities/failures.js';
import type { DownloadResult, PackedRunSteps, PerturbationOutcome, RunAnalysesResult, TrainResult } from '../activities/types.js';
import { perturbationLabel, type RunSpec } from '../config/grid.js';
import { rootCause } from './failure.js';
import { upsertRunStatus, type RunStatus } from './search.js';
import type { LocalLimits, PackInput, PackProgress, PackResult, PackRunResult, RunBrief, RunInput, RunResult, RunStage, StoredRunResult } from './types.js';

/**
 * Where `execution.local` trainings stop being local (LocalLimits). An hour of local training is about
 * 4,300 history events: a local training is one attempt of an hour, and a `trainPack` call at most
 * PACK_ATTEMPTS of an hour each, so one started below 20,000 events ends below 33,000, far from
 * Temporal's 51,200.
 */
const LOCAL_LIMITS: Required<LocalLimits> = { trainFor: '1 hour', history: 20_000 };
/**
 * Attempts of a `trainPack` call under LocalLimits, at most. Each attempt finds the trainings its
 * predecessors recorded and resumes the one they were on from its last stored epoch.
 */
const PACK_ATTEMPTS = 3;

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
/** A pack's progress; its `stage` query answers for the run it is on. */
export const packProgressQuery = defineQuery<PackProgress>('packProgress');

/**
 * A cancelled run closes only once its running activity has stopped (seen the cancellation at its
 * next heartbeat, or been told by its worker), so when `paramtrail cancel` returns nothing is still
 * training or writing. Runs started before this replay with Temporal's default, which closes at once.
 */
function cancellation(): Pick<ActivityOptions, 'cancellationType'> {
  return patched('activity-cancel-waits') ? { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED } : {};
}

function activityOptions(input: Pick<RunInput, 'execution'>, taskQueue: string, startToCloseTimeout: ActivityOptions['startToCloseTimeout']): ActivityOptions {
  return {
    taskQueue,
    startToCloseTimeout,
    // A worker that dies stops heartbeating; this is how soon another worker takes the attempt over.
    heartbeatTimeout: input.execution.heartbeatTimeout as ActivityOptions['heartbeatTimeout'],
    retry: retryPolicy(input.execution.maxAttempts),
    ...cancellation(),
  };
}

/**
 * Whether a local training that failed goes on on the train queue, and why: for anything but a
 * cancellation or a failure no attempt could mend. It ran once (LocalLimits): at `trainFor` its worker
 * cancelled it and it stopped at its next batch ('timeout'), or it failed ('failure'); the queue's
 * attempts, under the run's retry policy, resume from its last stored epoch.
 */
function leftToQueue(err: unknown): 'timeout' | 'failure' | undefined {
  if (isCancellation(err)) return undefined;
  // Live, the failure comes as an ActivityFailure with its cause; replayed from the local activity's
  // marker, as the cause alone: the answer must be the same either way.
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof TimeoutFailure) return 'timeout';
  if (!(cause instanceof ApplicationFailure) || cause.nonRetryable || (NON_RETRYABLE_TYPES as readonly string[]).includes(cause.type ?? '')) return undefined;
  return 'failure';
}

/**
 * The limits of a run or pack, and whether its history still has room for local training; undefined
 * where they do not apply (runs started before the `local-limits` patch replay without them).
 */
function localLimits(input: Pick<RunInput, 'execution' | 'localLimits'>): { trainFor: string; roomLeft: () => boolean } | undefined {
  if (!input.execution.local || !patched('local-limits')) return undefined;
  const { trainFor, history } = { ...LOCAL_LIMITS, ...input.localLimits };
  return { trainFor, roomLeft: () => workflowInfo().historyLength < history };
}

/**
 * A local activity under `limits`: attempts of at most `trainFor`, `attempts` of them at most (a
 * timeout is retried like a failure).
 */
function limitedLocalOptions(input: Pick<RunInput, 'execution'>, limits: { trainFor: string }, attempts: number): LocalActivityOptions {
  const options = localActivityOptions(input, limits.trainFor as LocalActivityOptions['startToCloseTimeout']);
  return { ...options, retry: { ...options.retry, maximumAttempts: Math.min(attempts, input.execution.maxAttempts) } };
}

/** Local activities: run by the workflow's own worker, retried like the rest. */
function localActivityOptions(input: Pick<RunInput, 'execution'>, startToCloseTimeout: LocalActivityOptions['startToCloseTimeout']): LocalActivityOptions {
  return { startToCloseTimeout, retry: retryPolicy(input.execution.maxAttempts), ...cancellation() };
}

/** What a listing shows of a run whose result is in the store. */
export const runBrief = (r: RunResult): RunBrief => ({ trainingStatus: r.train.status, testAccuracy: r.train.test.accuracy, backend: r.train.backend });

/**
 * Stores finished runs' results in one call (by the workflow's own worker with `execution.local`, on
 * the analysis queue otherwise) and returns where, for a run asked to `storeResult`. Undefined when
 * that failed for good: the caller returns the results themselves, which the experiment moves later.
 */
async function storeResults(input: Omit<RunInput, 'run' | 'runId'>, producerRunId: string, results: RunResult[]): Promise<StoredRunResult[] | undefined> {
  const { putRunResults } = input.execution.local
    ? proxyLocalActivities<Activities>(localActivityOptions(input, '1 hour'))
    : proxyActivities<Activities>(activityOptions(input, input.queues.analysis, '1 hour'));
  try {
    const refs = await putRunResults({ experimentId: input.experimentId, runId: producerRunId, results });
    return results.map((r, k) => ({ resultRef: refs[k]!, brief: runBrief(r) }));
  } catch (err) {
    if (isCancellation(err)) throw err;
    log.warn('could not store the results of finished runs: they go back to the experiment', { error: rootCause(err).message });
    return undefined;
  }
}

/** The retraining of a perturbed copy: the run's own options, from the perturbed weights, for `epochs`. */
function retrainSpec(run: RunSpec, label: string, from: { key: string; sha256: string }, epochs: number | undefined): RunSpec {
  const { init } = run.training;
  return {
    ...run,
    name: `${run.name}--${label}`,
    training: {
      ...run.training,
      epochs: epochs ?? run.training.epochs,
      // Early stopping would pick "the best epoch" of a retraining whose point is where it lands.
      earlyStopping: undefined,
      init: { kernel: init.kernel, bias: init.bias, from: { key: from.key, sha256: from.sha256 } },
    },
  };
}

export async function runWorkflow(input: RunInput): Promise<RunResult | StoredRunResult> {
  if (input.failedBeforeStart) {
    upsertRunStatus('failed');
    const { type, message } = input.failedBeforeStart;
    throw ApplicationFailure.create({ message, type: type ?? 'RunNotStarted', nonRetryable: true });
  }
  const result = await runOne(input, upsertRunStatus);
  if (!input.storeResult) return result;
  const stored = await storeResults(input, input.runId, [result]);
  return stored?.[0] ?? result;
}

/**
 * One run, as `runWorkflow` runs it; `setStatus` records its status as it goes, and `at.stage` its stage
 * (which the `stage` query answers). `packed`: its lookup, training and distances, done by its pack's
 * `trainPack`.
 */
async function runOne(input: RunInput, setStatus: (status: RunStatus) => void, packed?: PackedRunSteps, at: { stage: RunStage } = { stage: 'pending' }): Promise<RunResult> {
  at.stage = 'pending';
  setHandler(runStageQuery, () => at.stage);

  const onTrain = proxyActivities<Activities>(activityOptions(input, input.queues.train, '7 days'));
  const onAnalysis = proxyActivities<Activities>(activityOptions(input, input.queues.analysis, '1 hour'));
  const { download } = onTrain;
  const { plot, features, correlation, smoothness, reinit, perturb, norms } = onAnalysis;
  // The reuse lookup reads one small index object: a local activity, no task hand-off (runs started
  // before it was local keep their activity on replay).
  const lookupRun = patched('lookup-run-local') ? proxyLocalActivities<Activities>(localActivityOptions(input, '10 minutes')).lookupRun : onAnalysis.lookupRun;
  const local = input.execution.local ? proxyLocalActivities<Activities>(localActivityOptions(input, '7 days')) : undefined;
  const limits = localLimits(input);
  const localTrain = limits ? proxyLocalActivities<Activities>(limitedLocalOptions(input, limits, 1)).train : local?.train;
  // A local training stays local while its workflow's history has room, for one attempt of `trainFor`
  // at most; past that, or failed, it goes on on the train queue from its last stored epoch.
  const train: Activities['train'] = async (args) => {
    if (!localTrain || (limits && !limits.roomLeft())) return onTrain.train(args);
    try {
      return await localTrain(args);
    } catch (err) {
      const why = limits && leftToQueue(err);
      if (!why) throw err;
      log.info(`a local training ${why === 'timeout' ? `ran past ${limits.trainFor}` : 'failed'}: it goes on on the train queue, from its last stored epoch`, { runId: args.runId, error: rootCause(err).message });
      return onTrain.train(args);
    }
  };
  const distance = local?.distance ?? onAnalysis.distance;
  const producer = { experimentId: input.experimentId, runId: input.runId };
  const { analyses } = input.run;

  /**
   * Trains `run`, or reuses a finished training with the same reuse key unless forced. The train
   * activity records the finished training under its key itself: one task less per run.
   */
  const trainOrReuse = async (runId: string, run: RunSpec, data: DownloadResult) => {
    const { configHash, codeVersion, found } = await lookupRun({ experimentId: input.experimentId, runId, run, data });
    // Its own training (recorded by its pack's trainPack before a later step failed) is not a reuse.
    if (found && !input.force) return { train: found.train, reusedFrom: found.runId === runId ? undefined : found.runId, configHash, codeVersion };
    const trained = await train({ experimentId: input.experimentId, runId, run, data, configHash, codeVersion });
    return { train: trained, reusedFrom: undefined, configHash, codeVersion };
  };

  try {
    // An experiment downloads each dataset once and hands the result to its runs.
    let data = input.data;
    if (!data) {
      at.stage = 'download';
      setStatus('downloading');
      data = await download({ ...producer, dataset: input.run.dataset });
    }
    at.stage = 'train';
    setStatus('training');
    const training = packed ?? (await trainOrReuse(input.runId, input.run, data));
    const trained = training.train;
    at.stage = 'distance';
    setStatus('analysing');
    const table =
      packed?.distance ??
      (await distance({
        ...producer,
        snapshots: trained.snapshots,
        p: analyses.distance.p,
        changed: analyses.distance.changed,
        references: analyses.distance.references,
        layers: analyses.distance.layers,
      }));

    at.stage = 'analyses';
    const initial = trained.snapshots[0]!;
    const result: RunAnalysesResult = {};
    const probeBased = async () => {
      const needFeatures = analyses.correlation || analyses.smoothness || analyses.compare;
      if (!needFeatures) return;
      result.features = await features({ ...producer, run: input.run, data, snapshot: trained.final });
      const steps: Array<Promise<void>> = [];
      if (analyses.correlation) {
        steps.push(correlation({ ...producer, features: result.features, spec: analyses.correlation }).then((r) => void (result.correlation = r)));
      }
      const smoothSpec = analyses.smoothness;
      if (smoothSpec) {
        steps.push(smoothness({ ...producer, features: result.features, spec: smoothSpec, seed: input.run.seed }).then((r) => void (result.smoothness = r)));
        const earlier = (smoothSpec.epochs ?? [])
          .map((e) => trained.snapshots.find((s) => s.epoch === e))
          .filter((s): s is NonNullable<typeof s> => s !== undefined && s.sha256 !== trained.final.sha256);
        if (earlier.length) {
          steps.push(
            (async () => {
              const at: NonNullable<RunAnalysesResult['smoothnessAt']> = [];
              for (const snapshot of earlier) {
                const f = await features({ ...producer, run: input.run, data, snapshot });
                at.push({ epoch: snapshot.epoch, features: f, smoothness: await smoothness({ ...producer, features: f, spec: smoothSpec, seed: input.run.seed }) });
              }
              result.smoothnessAt = at;
            })(),
          );
        }
      }
      await Promise.all(steps);
    };
    const reinitialised = async () => {
      if (!analyses.reinit) return;
      result.reinit = await reinit({ ...producer, run: input.run, data, initial, final: trained.final, layers: analyses.reinit.layers });
    };
    const perturbed = async () => {
      const spec = analyses.perturb;
      if (!spec) return;
      // Sequentially: each retraining is a training, and trainings are what a worker has the fewest slots for.
      const outcomes: PerturbationOutcome[] = [];
      for (const perturbation of spec.perturbations) {
        const label = perturbationLabel(perturbation);
        const runId = `${input.runId}--${label}`;
        const start = await perturb({ ...producer, snapshot: trained.final, initial, perturbation, label, seed: input.run.seed });
        const retrained: TrainResult = (await trainOrReuse(runId, retrainSpec(input.run, label, start.perturbed, spec.epochs), data)).train;
        const measured = await norms({ ...producer, label, original: trained.final, perturbed: start.perturbed, retrained: retrained.final, p: spec.p });
        outcomes.push({ label, kind: perturbation.kind, runId, perturb: start, train: retrained, norms: measured });
      }
      result.perturb = outcomes;
    };
    // A run that diverged in its first epoch has nothing but its initial weights to analyse. One analysis
    // that fails fails the run, and the others are cancelled rather than left running beside the next run
    // of a pack (runs started before the `cancel-sibling-analyses` patch left them).
    if (trained.snapshots.length > 1) {
      const analysing = new CancellationScope();
      await analysing.run(() => Promise.all([probeBased(), reinitialised(), perturbed()])).catch((err: unknown) => {
        if (!isCancellation(err) && patched('cancel-sibling-analyses')) analysing.cancel();
        throw err;
      });
    }

    at.stage = 'plot';
    // A figure of nothing but the zero baseline is skipped.
    const figures = analyses.runFigures && trained.snapshots.length > 1 ? await plot({ ...producer, runName: input.run.name, table: table.table, analyses: result }) : { figures: [] };
    at.stage = 'completed';
    setStatus(trained.status === 'diverged' ? 'diverged' : 'completed');
    return {
      runId: input.runId,
      name: input.run.name,
      download: data,
      configHash: training.configHash,
      codeVersion: training.codeVersion,
      ...(training.reusedFrom ? { reusedFrom: training.reusedFrom } : {}),
      train: trained,
      distance: table,
      ...(Object.keys(result).length ? { analyses: result } : {}),
      plot: figures,
    };
  } catch (err) {
    at.stage = 'failed';
    setStatus(isCancellation(err) ? 'cancelled' : 'failed');
    throw err;
  }
}

/**
 * `packWorkflow`: several runs of one grid cell in one workflow (`execution.runsPerWorkflow`), each
 * as `runWorkflow` runs it, one after another. A run that fails is recorded and the next one starts.
 * With `execution.local`, the runs' lookups, trainings and distances are done by `trainPack`, several
 * runs per local activity, rather than three local activities per run: the same steps and objects with
 * a fraction of the hand-offs (packs started before the `pack-local-steps` patch replay without it).
 * The pack's status attribute is `training` while it runs and ends as the worst of its runs'
 * (failed, then diverged): its runs do not each move it through their stages, which for a pack of tiny
 * runs would be most of its history events and of the server's visibility writes. (Packs started
 * before the `pack-status` patch replay with each run setting it.)
 */
export async function packWorkflow(input: PackInput): Promise<PackResult> {
  const { runs, ...shared } = input;
  if (input.failedBeforeStart) {
    upsertRunStatus('failed');
    return { runs: runs.map(({ runId }) => ({ runId, error: input.failedBeforeStart! })) };
  }
  const results: PackRunResult[] = [];
  let current: string | undefined;
  // The stage of the run the pack is on, which the `stage` query also answers.
  const at: { stage: RunStage } = { stage: 'pending' };
  setHandler(packProgressQuery, () => ({
    done: results.map((r) => r.runId),
    failed: results.flatMap((r) => ('error' in r ? [{ runId: r.runId, message: r.error.message }] : [])),
    current,
    ...(current ? { stage: at.stage } : {}),
  }));
  setHandler(runStageQuery, () => at.stage);
  const perPack = patched('pack-status');
  if (perPack) upsertRunStatus('training');
  const setStatus = perPack ? () => undefined : upsertRunStatus;
  // Local runs with their dataset at hand: lookups, trainings and distances in `trainPack`, a call for
  // as many runs as fit its budget (activities/pack.ts). A run it stops at, and every run after a call
  // that failed, goes through its own local activities. Under LocalLimits a call makes PACK_ATTEMPTS
  // attempts of `trainFor` at most, and none is made once the history has no room left.
  const limits = localLimits(shared);
  let trainPack =
    shared.execution.local && shared.data && patched('pack-local-steps')
      ? proxyLocalActivities<Activities>(limits ? limitedLocalOptions(shared, limits, PACK_ATTEMPTS) : localActivityOptions(shared, '7 days')).trainPack
      : undefined;
  let packed: PackedRunSteps[] = [];
  let alone: string | undefined;
  let status: RunStatus = 'completed';
  for (const [i, { runId, run }] of runs.entries()) {
    current = runId;
    try {
      if (trainPack && !packed.length && runId !== alone && (!limits || limits.roomLeft())) {
        at.stage = 'train';
        try {
          const done = await trainPack({ experimentId: shared.experimentId, runs: runs.slice(i), data: shared.data!, force: shared.force });
          packed = done.runs;
          alone = done.stoppedAt?.runId;
        } catch (err) {
          if (isCancellation(err)) throw err;
          trainPack = undefined;
        }
      }
      const result = await runOne({ ...shared, runId, run }, setStatus, packed[0]?.runId === runId ? packed.shift() : undefined, at);
      if (result.train.status === 'diverged' && status === 'completed') status = 'diverged';
      results.push({ runId, result });
    } catch (err) {
      if (isCancellation(err)) {
        if (perPack) upsertRunStatus('cancelled');
        throw err;
      }
      status = 'failed';
      results.push({ runId, error: rootCause(err) });
    }
  }
  current = undefined;
  upsertRunStatus(status);
  const finished = results.flatMap((r) => ('result' in r ? [r.result] : []));
  const stored = shared.storeResult && finished.length ? await storeResults(shared, workflowInfo().workflowId, finished) : undefined;
  if (!stored) return { runs: results };
  return { runs: results.map((r) => ('result' in r ? { runId: r.runId, ...stored.shift()! } : r)) };
}
