/**
 * Inputs, results and query shapes of paramtrail's workflows. Types only: the CLI, the worker and the
 * workflows share them without pulling code into the workflow bundle.
 */
import type { ObjectRef } from '../artifacts/refs.js';
import type { ExecutionSpec, ExperimentConfig } from '../config/experiment.js';
import type { RunSpec } from '../config/grid.js';
import type { AggregateResult, CompareBatchResult, CompareResult, DistanceResult, DownloadResult, PlotResult, RunAnalysesResult, TrainResult } from '../activities/types.js';

/** Task queues: workflows on one, training and analysis activities on their own, so each can scale. */
export interface QueueNames {
  workflows: string;
  train: string;
  analysis: string;
}

export function queueNames(prefix: string): QueueNames {
  return { workflows: prefix, train: `${prefix}-train`, analysis: `${prefix}-analysis` };
}

/**
 * The experiment id of an experiment workflow started with none (a scheduled execution): its workflow
 * id, `<schedule>-<RFC 3339 time>`, without the time's colons, which no store key may hold. The CLI
 * takes either for the experiment.
 */
export function experimentIdOf(workflowId: string): string {
  return workflowId.replace(/:/g, '');
}

export interface ExperimentInput {
  /** Omitted by schedules: each execution then takes its workflow id as its experiment id. */
  experimentId?: string;
  /** Validated by the client before the workflow starts. */
  config: ExperimentConfig;
  queues: QueueNames;
  /** The store's location, recorded so a summary says where every key lives. */
  store: string;
  /** Retrain every run even when a finished training with the same configuration, data and code exists. */
  force?: boolean;
  /** Where `execution.local` trainings stop being local (workflows/run.ts has the defaults); handed to every run. */
  localLimits?: LocalLimits;
  /** Where comparing pairs of runs goes to batches (workflows/experiment.ts has the defaults). */
  compareBatching?: CompareBatching;
  /**
   * Set by the workflow itself when it continues as new: where the previous execution stopped, and the
   * summaries of the runs before that, in the store (`chunks`) or, from executions started before
   * chunks existed, carried along (`runs`).
   */
  continued?: { next: number; runs?: RunSummary[]; chunks?: SummaryChunk[]; executions: number };
}

/**
 * Summaries of consecutive runs (in the experiment's order of runs), moved to the store as one JSON
 * array: what a grid of any size carries through `continueAsNew` and returns, instead of the summaries
 * themselves, which outgrow Temporal's payload limit (about 2 MB) within a few thousand runs.
 */
export interface SummaryChunk {
  ref: ObjectRef;
  /** Index of its first run in the order of runs, and how many runs it holds. */
  first: number;
  count: number;
  /** How many of them completed (the rest failed). */
  completed: number;
}

/**
 * How `analyses.compare` runs its pairs: up to `inlinePairs` pairs, an activity each with its result
 * in the experiment's; more, in `compareBatch` calls of `batchPairs` pairs that store their outcomes.
 */
export interface CompareBatching {
  inlinePairs?: number;
  batchPairs?: number;
}

/**
 * How far a run or pack with `execution.local` trains in local activities. A local activity keeps its
 * workflow task open, renewed every 2.4 s at 3 events each, so an hour of local training adds about
 * 4,300 events to the workflow's history, where Temporal ends a workflow at 51,200. Past these limits
 * the training goes on as an activity on the train queue, from its last stored epoch.
 */
export interface LocalLimits {
  /** How long one attempt of a local training (or `trainPack` call) runs before it is stopped: a Temporal duration. */
  trainFor?: string;
  /** From this many events in its history on, a run or pack trains on the train queue only. */
  history?: number;
}

export interface RunInput {
  experimentId: string;
  runId: string;
  run: RunSpec;
  queues: QueueNames;
  execution: ExecutionSpec;
  /** Train even when an identical finished training could be reused. */
  force?: boolean;
  /** The dataset's download, when the experiment has done it; the run downloads it itself otherwise. */
  data?: DownloadResult;
  /**
   * Store the result and return its reference and brief (`StoredRunResult`): what an experiment of a
   * grid too large to carry its runs' results asks of them, so that the results never pass through
   * the experiment's history.
   */
  storeResult?: boolean;
  localLimits?: LocalLimits;
  /**
   * Why the run failed before it could start (its dataset's download, a run it starts from): the
   * workflow records it as failed, with this error, and ends, so that the run is found by its status
   * like any other failed run (`paramtrail ls --status failed`, the Temporal UI).
   */
  failedBeforeStart?: { type?: string; message: string };
}

/** What a listing shows of a run whose result is in the store. */
export interface RunBrief {
  trainingStatus: string;
  testAccuracy: number;
  backend: string;
}

/** A run's result in the store, as a run asked to `storeResult` returns it. */
export interface StoredRunResult {
  resultRef: ObjectRef;
  brief: RunBrief;
}

/** Runs that share one workflow (`execution.runsPerWorkflow`), trained one after another. */
export interface PackInput extends Omit<RunInput, 'runId' | 'run'> {
  runs: Array<{ runId: string; run: RunSpec }>;
}

/** Each run of a pack, in order: its result (or where it is stored), or why it failed (it did not fail the others). */
export type PackRunResult =
  | { runId: string; result: RunResult }
  | ({ runId: string } & StoredRunResult)
  | { runId: string; error: { type?: string; message: string } };

/**
 * What a pack's `packProgress` query answers: its runs that have finished (completed or failed), those of
 * them that failed with the error's message, and the one it is on with its stage. One query: a workflow
 * busy with a local activity buffers one query at a time and refuses the next. (A worker from before
 * `failed` and `stage` were added answers without them.)
 */
export interface PackProgress {
  done: string[];
  failed?: Array<{ runId: string; message: string }>;
  current?: string;
  stage?: RunStage;
}

export interface PackResult {
  runs: PackRunResult[];
}

export type RunStage = 'pending' | 'download' | 'train' | 'distance' | 'analyses' | 'plot' | 'completed' | 'failed';

export interface RunResult {
  runId: string;
  name: string;
  download: DownloadResult;
  /** sha256 of what the training depends on (configuration, dataset bytes, code version): its reuse key. */
  configHash: string;
  codeVersion: string;
  /** The run whose training this one reused instead of training again (same configHash). */
  reusedFrom?: string;
  train: TrainResult;
  distance: DistanceResult;
  /** The analyses the experiment file asked for (besides distances). */
  analyses?: RunAnalysesResult;
  plot: PlotResult;
}

export interface RunSummary {
  name: string;
  runId: string;
  /** The child workflow's id, for `temporal workflow describe`. */
  workflowId: string;
  stage: RunStage;
  error?: { type?: string; message: string };
  /** The run's result; in a grid too large to carry along, in the store instead (`resultRef`). */
  result?: RunResult;
  resultRef?: ObjectRef;
  brief?: RunBrief;
}

export interface ExperimentProgress {
  experimentId: string;
  name: string;
  store: string;
  /** The runs not in `chunks`, in order: all of them unless the experiment continued as new. */
  runs: RunSummary[];
  /** The runs before `runs`, in the store (a grid that continued as new); loadRuns reads them. */
  chunks?: SummaryChunk[];
  /** In the progress of a grid of many runs: how many runs have not started, left out of `runs`. */
  pending?: number;
}

export interface ExperimentResult extends ExperimentProgress {
  /** `completed` when every run completed; a failed run never stops its siblings. */
  status: 'completed' | 'completed-with-failures';
  /** The HTML report, `experiments/<experiment id>/report.html`; absent when it could not be written. */
  report?: { key: string; sha256: string; bytes: number; path: string };
  /** Linear CKA and feature correlation between pairs of runs (analyses.compare). */
  compare?: CompareResult[];
  /**
   * In place of `compare` for an experiment of many pairs: batches of them, whose outcomes are in the
   * store (loadCompareOutcomes reads them). Their errors are in `analysisErrors`, the first few by pair.
   */
  compareBatches?: Array<Omit<CompareBatchResult, 'errors'>>;
  /** The gathered depth profile (analyses.aggregate). */
  aggregate?: AggregateResult;
  /** Experiment-level analyses that failed; the runs' results stand regardless. */
  analysisErrors?: Array<{ analysis: string; message: string }>;
  /** Why the report could not be written (the runs' results stand regardless). */
  reportError?: { type?: string; message: string };
}
