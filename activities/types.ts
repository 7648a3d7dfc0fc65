/**
 * Inputs and outputs of the activities: small references and numbers, never tensors, because every
 * one of them is recorded in workflow history. Types only; workflows import them with `import type`.
 */
import type { ExperimentConfig } from '../config/experiment.js';
import type { RunSpec } from '../config/grid.js';
import type { ObjectRef, SnapshotRef } from '../artifacts/refs.js';
import type { EpochMetrics, TrainEngine } from '../ml/train/loop.js';
import type { SummaryChunk } from '../workflows/types.js';

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
  /** The training's reuse key (activities/reuse.ts), recorded in its snapshots' manifests. */
  configHash?: string;
  /**
   * The code version the reuse key was computed with; given with `configHash`, the finished training is
   * recorded under the key for later experiments to reuse.
   */
  codeVersion?: string;
}

/** One epoch's metrics as the training loop reports them (and checkpoints and results record them). */
export type EpochRecord = EpochMetrics;

/** One try of the train activity: where it started, so a resumed run can be told from a fresh one. */
export interface AttemptRecord {
  /** The activity's attempt number as Temporal counts it (a local activity replayed after a crash counts from 1 again). */
  attempt: number;
  /** The activity that trained: `train`, or `trainPack` for a run trained in its pack's local activity. */
  activity?: string;
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
  /** Absent when the optimizer keeps no state (SGD without momentum): there is nothing to restore. */
  optimizer?: ObjectRef;
  rng: Record<string, number>;
  history: EpochRecord[];
  /**
   * Early stopping's state after this epoch, when it is on (from epoch 1: epoch 0 is never the best):
   * what a resumed attempt needs to continue exactly.
   */
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
  /** Validation labels replaced by random ones (DatasetSpec.labelNoiseValidation). */
  validationLabelNoise?: { fraction: number; replaced: number; changed: number; realisedFraction: number };
}

export interface TrainResult {
  runId: string;
  backend: string;
  /**
   * How the last attempt ran the training steps: `graph` (one TensorFlow session call a batch, on the
   * native backend) or `eager` (tfjs ops), with the reason there was no graph.
   */
  engine?: TrainEngine;
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
  /** Tolerance of the share of parameters changed; exact (0, 0) when omitted. */
  changed?: { atol: number; rtol: number };
  /** Named snapshots measured against besides init and previous (analyses.distance.references). */
  references?: Array<{ label: string; key?: string; sha256?: string; run?: string; epoch?: number }>;
  /** Which layers are measured (analyses.distance.layers); every layer with parameters when omitted. */
  layers?: 'all' | 'weights';
}

export interface DistanceResult {
  table: ObjectRef;
  rows: number;
}

export interface PlotInput extends Producer {
  runName: string;
  table: ObjectRef;
  /** The run's other analyses, each drawn as its own figure(s). */
  analyses?: RunAnalysesResult;
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

// ---------------------------------------------------------------------------------------------------
// Analyses beyond distances. Each activity reads stored snapshots, stores its rows as an Arrow record
// table (artifacts/records.ts) with a lineage manifest, and returns the table's reference plus the few
// numbers a summary shows. Specs come from the experiment file (config/experiment.ts AnalysesSpec).

/** Features of the probe set at a model's layers, stored as one Arrow snapshot-format file. */
export interface FeaturesInput extends Producer {
  run: RunSpec;
  data: DownloadResult;
  /** The weights the features are computed with (a run's final or initial snapshot). */
  snapshot: SnapshotRef;
}

export interface FeatureLayer {
  layer: string;
  /** 0-based order among the layers with parameters, as in the distance table. */
  depth: number;
  /** Features per example after pooling. */
  features: number;
}

export interface FeaturesResult {
  /**
   * The features file: snapshot codec, kind `features`, one tensor per layer named `<layer>/features`
   * of shape [n, features], plus `__probe__/labels` (float32 class ids) of shape [n].
   */
  features: ObjectRef;
  /** The probe set's indices into the test split and labels, content-addressed (the same object for every run). */
  probe: ObjectRef;
  snapshot: SnapshotRef;
  examples: number;
  /** Every layer with parameters, by depth; `penultimate` names the input of the classifier. */
  layers: FeatureLayer[];
  penultimate: string;
}

export interface CorrelationInput extends Producer {
  features: FeaturesResult;
  spec: { layer: string; bins: number };
}

export interface CorrelationResult {
  table: ObjectRef;
  layer: string;
  features: number;
  /** Mean |r| over the off-diagonal pairs with a defined r; NaN when none. */
  meanAbs: number;
  /** Mean r (signed) over the same pairs: positive when the features go together more than against; NaN when none. */
  mean?: number;
  /** Features with zero variance over the probe set (their r is undefined and left out). */
  constant: number;
}

export interface CompareInput extends Producer {
  a: { runId: string; name: string; features: FeaturesResult };
  b: { runId: string; name: string; features: FeaturesResult };
  /** Layers to compare (names or prefix*); all when omitted. */
  layers?: string[];
}

export interface CompareResult {
  a: string;
  b: string;
  /** CKA of every (layer of a, layer of b): table of kind `cka-matrix`. */
  table: ObjectRef;
  /** CKA between layers of the same name and depth, by depth. */
  diagonal: Array<{ layer: string; depth: number; cka: number }>;
  /** Mean |r| of the cross-correlation of the two penultimate feature sets. */
  penultimateMeanAbs: number;
  /**
   * Mean r_ii of that cross-correlation (feature i of a with feature i of b): whether the two learnt their
   * features in the same order; NaN when the widths differ.
   */
  penultimateMatched?: number;
}

/** A run of a `compareBatch`: its probe features, or where its stored result (which has them) is; neither for a run that failed. */
export interface CompareBatchRun {
  name: string;
  runId: string;
  features?: FeaturesResult;
  resultRef?: ObjectRef;
}

export interface CompareBatchInput extends Producer {
  runs: CompareBatchRun[];
  /** Pairs of indices into `runs`, compared in this order. */
  pairs: Array<[number, number]>;
  layers?: string[];
}

/** A pair of a batch: compared, or why not. */
export type CompareOutcome = { compared: CompareResult } | { a: string; b: string; error: string };

export interface CompareBatchResult {
  /** The outcomes (`CompareOutcome[]`, in pair order), content-addressed JSON. */
  outcomes: ObjectRef;
  pairs: number;
  /** Pairs that could not be compared; the first few are named in `errors`. */
  failed: number;
  errors: Array<{ a: string; b: string; message: string }>;
}

export interface PerturbInput extends Producer {
  /** theta1: the trained weights perturbed. */
  snapshot: SnapshotRef;
  /** The run's initial weights (used by `reinit-layer`). */
  initial: SnapshotRef;
  perturbation: import('../config/experiment.js').PerturbationSpec;
  label: string;
  /** Seed of the noise; the run's seed. */
  seed: number;
}

export interface PerturbResult {
  /** The perturbed weights, the start of the retraining. */
  perturbed: SnapshotRef;
  /** Parameters changed by the perturbation. */
  changed: number;
}

export interface NormsInput extends Producer {
  label: string;
  original: SnapshotRef;
  perturbed: SnapshotRef;
  retrained: SnapshotRef;
  p: number | 'inf';
}

/** |theta1|, |theta_perturbed|, |theta2| and |theta1 - theta2| per layer and whole model (NORMS_TABLE). */
export interface NormsResult {
  table: ObjectRef;
  label: string;
  model: { theta1: number; perturbed: number; theta2: number; distance: number; relative: number };
}

export interface PerturbationOutcome {
  label: string;
  kind: string;
  /** The retraining run's id (`<experiment>/<run>--<label>`) and its result. */
  runId: string;
  perturb: PerturbResult;
  train: TrainResult;
  norms: NormsResult;
}

export interface ReinitInput extends Producer {
  run: RunSpec;
  data: DownloadResult;
  initial: SnapshotRef;
  final: SnapshotRef;
  /** Layers to reset (names or prefix*); all with parameters when omitted. */
  layers?: string[];
}

export interface ReinitResult {
  table: ObjectRef;
  baseline: { loss: number; accuracy: number };
  layers: Array<{ layer: string; depth: number; loss: number; accuracy: number }>;
}

export interface SmoothnessInput extends Producer {
  features: FeaturesResult;
  spec: { trees: number; maxFeatures: 'sqrt' | 'all' | number; layers?: string[] };
  seed: number;
}

export interface SmoothnessResult {
  table: ObjectRef;
  layers: Array<{ layer: string; depth: number; alpha: number }>;
}

/** Everything a run's analyses produced; absent keys were not asked for (or had nothing to work on). */
/** The runs of a pack whose lookup, training and distances `trainPack` does, in order, in one local activity. */
export interface TrainPackInput {
  experimentId: string;
  runs: Array<{ runId: string; run: RunSpec }>;
  data: DownloadResult;
  /** Train even when an identical finished training could be reused. */
  force?: boolean;
}

/** A run whose steps `trainPack` did: what `lookupRun`, `train` (or the reused training) and `distance` returned. */
export interface PackedRunSteps {
  runId: string;
  configHash: string;
  codeVersion: string;
  /** The run whose training was reused; absent when this run trained. */
  reusedFrom?: string;
  train: TrainResult;
  distance: DistanceResult;
}

/**
 * The leading runs of the input whose steps are done, in order: at least one, unless the first run's
 * steps failed. `stoppedAt` names the run whose steps failed, which the workflow then runs on its own.
 */
export interface TrainPackResult {
  runs: PackedRunSteps[];
  stoppedAt?: { runId: string; message: string };
}

export interface RunAnalysesResult {
  features?: FeaturesResult;
  correlation?: CorrelationResult;
  reinit?: ReinitResult;
  smoothness?: SmoothnessResult;
  /** Smoothness of earlier snapshots (analyses.smoothness.epochs), by epoch. */
  smoothnessAt?: Array<{ epoch: number; features: FeaturesResult; smoothness: SmoothnessResult }>;
  perturb?: PerturbationOutcome[];
}

export interface AggregateRun {
  runId: string;
  name: string;
  group: string;
  table: ObjectRef;
}

export interface AggregateInput {
  experimentId: string;
  /** The completed runs' distance tables; or, for a grid too large to list them in an input, `stored`. */
  runs?: AggregateRun[];
  /**
   * Where to find the runs instead: their summaries in the store (each completed run's result there
   * too) and the experiment's config, which gives each run's group.
   */
  stored?: { chunks: SummaryChunk[]; config: ExperimentConfig };
  /** Minkowski order to gather ('1', '2', 'inf'); the first of the experiment's. */
  p: string;
}

/** Per group, against (init | previous) and normalised depth: the mean of the per-run per-parameter distances (DEPTH_PROFILE_TABLE). */
export interface AggregateResult {
  table: ObjectRef;
  groups: string[];
  runs: number;
}
