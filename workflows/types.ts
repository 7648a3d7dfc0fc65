/**
 * Inputs, results and query shapes of paramtrail's workflows. Types only: the CLI, the worker and the
 * workflows share them without pulling code into the workflow bundle.
 */
import type { ExecutionSpec, ExperimentConfig } from '../config/experiment.js';
import type { RunSpec } from '../config/grid.js';
import type { AggregateResult, CompareResult, DistanceResult, DownloadResult, PlotResult, RunAnalysesResult, TrainResult } from '../activities/types.js';

/** Task queues: workflows on one, training and analysis activities on their own, so each can scale. */
export interface QueueNames {
  workflows: string;
  train: string;
  analysis: string;
}

export function queueNames(prefix: string): QueueNames {
  return { workflows: prefix, train: `${prefix}-train`, analysis: `${prefix}-analysis` };
}

export interface ExperimentInput {
  /** Omitted by schedules: each execution then takes its workflow id as its experiment id. */
  experimentId?: string;
  /** Validated by the client before the workflow starts. */
  config: ExperimentConfig;
  queues: QueueNames;
  /** The store's location, recorded so a summary says where every key lives. */
  store: string;
}

export interface RunInput {
  experimentId: string;
  runId: string;
  run: RunSpec;
  queues: QueueNames;
  execution: ExecutionSpec;
}

export type RunStage = 'pending' | 'download' | 'train' | 'distance' | 'plot' | 'completed' | 'failed';

export interface RunResult {
  runId: string;
  name: string;
  download: DownloadResult;
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
  result?: RunResult;
}

export interface ExperimentProgress {
  experimentId: string;
  name: string;
  store: string;
  runs: RunSummary[];
}

export interface ExperimentResult extends ExperimentProgress {
  /** `completed` when every run completed; a failed run never stops its siblings. */
  status: 'completed' | 'completed-with-failures';
  /** The HTML report, `experiments/<experiment id>/report.html`; absent when it could not be written. */
  report?: { key: string; sha256: string; bytes: number; path: string };
  /** Linear CKA and feature correlation between pairs of runs (analyses.compare). */
  compare?: CompareResult[];
  /** The gathered depth profile (analyses.aggregate). */
  aggregate?: AggregateResult;
  /** Experiment-level analyses that failed; the runs' results stand regardless. */
  analysisErrors?: Array<{ analysis: string; message: string }>;
  /** Why the report could not be written (the runs' results stand regardless). */
  reportError?: { type?: string; message: string };
}
