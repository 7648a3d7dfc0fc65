/**
 * Inputs and outputs of the activities: small references and numbers, never tensors, because every
 * one of them is recorded in workflow history. Types only; workflows import them with `import type`.
 */
import type { RunSpec } from '../config/grid.js';
import type { ObjectRef, SnapshotRef } from '../artifacts/refs.js';

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

export interface EpochRecord {
  epoch: number;
  step: number;
  trainLoss: number;
  trainAccuracy: number;
  valLoss: number;
  valAccuracy: number;
  seconds: number;
}

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
}

export interface TrainResult {
  runId: string;
  backend: string;
  /** Every stored weight snapshot, epoch 0 first. */
  snapshots: SnapshotRef[];
  final: SnapshotRef;
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
