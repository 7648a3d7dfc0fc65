/**
 * Inputs and outputs of the activities: small references and numbers, never tensors, because every
 * one of them is recorded in workflow history. Types only; workflows import them with `import type`.
 */
import type { RunSpec } from '../config/grid.js';
import type { ObjectRef, SnapshotRef } from '../artifacts/refs.js';
import type { EpochMetrics } from '../ml/train/loop.js';

/** Who produced an artifact, for lineage manifests. */
export interface Producer {
  experimentId: string;
  runId: string;
}

export interface DownloadInput extends Producer {
  dataset: RunSpec['dataset'];
}

export interface DatasetFileRef extends ObjectRef {
  role: string;
  name: string;
  /** Where the bytes came from: a URL, or `store` when the object was already cached. */
  source: string;
}

export interface DownloadResult {
  dataset: string;
  files: DatasetFileRef[];
  /** Files fetched from a source during this call. */
  fetched: number;
  /** Files found already stored under their sha256. */
  cached: number;
}

export interface TrainInput extends Producer {
  run: RunSpec;
  data: DownloadResult;
}

/** One epoch's metrics as the training loop reports them (and checkpoints and results record them). */
export type EpochRecord = EpochMetrics;

/** One try of the train activity: where it started, so a resumed run can be told from a fresh one. */
export interface AttemptRecord {
  attempt: number;
  /** Epoch of the checkpoint it resumed from; 0 means it initialised the weights itself. */
  startedFromEpoch: number;
  resumed: boolean;
  startedAt: string;
  worker: string;
  backend: string;
}

/** What a checkpoint object (runs/<runId>/checkpoints/epoch-NNNNNN.json) holds. */
export interface Checkpoint {
  runId: string;
  epoch: number;
  step: number;
  weights: SnapshotRef;
  optimizer: ObjectRef;
  rng: Record<string, number>;
  history: EpochRecord[];
  /** Early stopping's state after this epoch, when it is on: what a resumed attempt needs to continue exactly. */
  earlyStopping?: {
    bestEpoch: number;
    bestStep: number;
    bestValLoss: number;
    /** Epochs completed since the best one. */
    wait: number;
    /** True once training stopped: a retry trains no further. */
    stopped: boolean;
    /** The best epoch's weights (the same object as that epoch's snapshot when it was stored). */
    best: SnapshotRef;
  };
}

/** What the run's data preparation did, recorded with the result. */
export interface DataRecord {
  /** Per-channel mean and standard deviation of the training examples, subtracted and divided from every split. */
  normalization?: { mean: number[]; std: number[] };
  /** Training labels replaced by random ones. */
  labelNoise?: { fraction: number; replaced: number; changed: number; realisedFraction: number };
}

export interface TrainResult {
  runId: string;
  backend: string;
  /**
   * completed: every epoch ran. stopped-early: early stopping ended training at `stoppedAtEpoch`.
   * diverged: a non-finite loss at `divergedAtEpoch`; snapshots and final stop at the last good epoch.
   */
  status: 'completed' | 'stopped-early' | 'diverged';
  stoppedAtEpoch?: number;
  divergedAtEpoch?: number;
  /** With early stopping: the epoch of the best validation loss, whose weights `final` holds. */
  bestEpoch?: number;
  /** Every stored weight snapshot along the trajectory, epoch 0 first, up to the last epoch trained. */
  snapshots: SnapshotRef[];
  /** The run's resulting weights: the last snapshot, or the best epoch's under early stopping. */
  final: SnapshotRef;
  data: DataRecord;
  history: EpochRecord[];
  test: { loss: number; accuracy: number };
  attempts: AttemptRecord[];
}

/** Progress carried by train heartbeats; on a retry it names the last stored checkpoint. */
export interface TrainHeartbeat {
  epoch: number;
  batch: number;
  batches: number;
  epochs: number;
  checkpointEpoch: number;
}

export interface DistanceInput extends Producer {
  snapshots: SnapshotRef[];
  p: Array<number | 'inf'>;
}

export interface DistanceResult {
  table: ObjectRef;
  rows: number;
}

export interface PlotInput extends Producer {
  runName: string;
  table: ObjectRef;
}

export interface FigureRef extends ObjectRef {
  format: 'svg' | 'png';
  /** Where a person opens it: a file path for the local store, an s3:// URL otherwise. */
  path: string;
  p: string;
}

export interface PlotResult {
  figures: FigureRef[];
}
