/**
 * The experiment file: its schema (zod), parsing from YAML, and expansion of its grid into runs.
 *
 * Called by the CLI before anything starts (so bad input never reaches Temporal) and by activities,
 * which parse their `RunSpec` again so a client that bypasses the CLI still gets a clear error.
 * Pure: no fs, no network; workflows import only its types.
 */
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import type { DatasetExamples } from '../ml/data/datasets.js';
import { INITIALIZER_NAMES, PARAMETRIC_INITIALIZER_NAMES } from '../ml/train/names.js';
import { comparePairs, expandRuns, isSameExperimentRun, modelLabel, orderByDependencies, perturbationLabel, variantTraining } from './grid.js';

export { expandRuns, modelLabel, perturbationLabel, type RunSpec } from './grid.js';

/** A layer name, or a prefix ending in `*` matching every layer that starts with it. */
const LayerPattern = z.string().regex(/^[A-Za-z0-9_-]+\*?$/, 'expected a layer name or a prefix ending in *');

/** Durations as Temporal understands them: "30s", "5m", "1h", "250ms". */
const Duration = z.string().regex(/^\d+(\.\d+)?(ms|s|m|h|d)$/, 'expected a duration such as "30s", "5m" or "1h"');

/** What is wrong with a dataset source URL, if anything (see DatasetSpec.sources); never echoes it. */
function sourceProblem(source: string, ctx: z.RefinementCtx): void {
  if (!URL.canParse(source)) return; // z.string().url() has said so
  const url = new URL(source);
  const problem =
    url.username || url.password
      ? 'expected no user or password in a source URL (sources are recorded in the workflow history, lineage and report)'
      : url.search || url.hash
        ? 'expected no query or fragment in a source URL: each file\'s name is appended to it, and sources are recorded in the workflow history, lineage and report'
        : undefined;
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
}

export const DatasetSpec = z
  .object({
    /** Registered dataset name, e.g. "fashion-mnist". */
    name: z.string().min(1),
    /**
     * The dataset's name in run names, when one dataset appears more than once with different options
     * (e.g. `cifar-10-noise-50` for label noise 0.5); its name when omitted.
     */
    label: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected lowercase letters, digits and dashes').optional(),
    /** Seeded subset sizes; omit to use the whole split. */
    subset: z
      .object({
        train: z.number().int().positive().optional(),
        test: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
    /**
     * Replaces the registered list of sources for every file of the dataset: URLs tried in order,
     * each followed by the file's name (`https://mirror/x/` + `train-images-idx3-ubyte.gz`). Sources
     * are recorded in the workflow history, lineage and report, so they may carry no user, password
     * or query (a token); nor a fragment, which would swallow the file name.
     */
    sources: z.array(z.string().url().superRefine(sourceProblem)).min(1).optional(),
    /** Fraction of the training subset held out for validation (the same examples for every run). */
    validationSplit: z.number().min(0).max(0.9).default(0.1),
    /**
     * Input normalisation by statistics of the training part (after the validation split) only, applied
     * to train, validation and test: `none` (default; inputs stay in [0, 1]), `global` (one mean and
     * standard deviation over all values) or `per-channel`. The statistics are recorded in the result.
     */
    // Optional rather than defaulted so older RunSpecs (and literals typed as DatasetSpec) stay valid.
    normalize: z.enum(['none', 'global', 'per-channel']).optional(),
    /**
     * Fraction of training labels (never validation or test) replaced by labels drawn uniformly over
     * the classes, from a stream derived from the run's seed; 0 (default) for none. A replacement may
     * draw the original label, so the realised share of wrong labels (recorded) is about
     * fraction * (1 - 1/classes).
     */
    labelNoise: z.number().min(0).max(1).optional(),
    /**
     * Also replaces that fraction of the validation labels (from a stream of their own), so early
     * stopping watches the noisy task, as when noise is put into a training set before Keras's
     * `validation_split` takes its last part. Off when omitted: validation labels stay clean. Test labels
     * are never replaced.
     */
    labelNoiseValidation: z.boolean().optional(),
  })
  .strict()
  .superRefine((d, ctx) => {
    if (d.labelNoiseValidation && !((d.labelNoise ?? 0) > 0)) {
      ctx.addIssue({ code: 'custom', path: ['labelNoiseValidation'], message: `expected labelNoise > 0 to apply to the validation labels, found ${d.labelNoise ?? 'none'}` });
    }
  });
export type DatasetSpec = z.infer<typeof DatasetSpec>;

/**
 * Learning-rate schedule, a function of the epoch alone (so resuming needs no schedule state):
 * `{ name: constant }` (default); `{ name: step, everyEpochs: k, gamma: g }` multiplies the rate by g
 * after every k epochs; `{ name: cosine, minLearningRate: m }` follows half a cosine from the base rate
 * at epoch 1 towards m (default 0) over the run's epochs.
 */
export const ScheduleSpec = z.discriminatedUnion('name', [
  z.object({ name: z.literal('constant') }).strict(),
  z
    .object({
      name: z.literal('step'),
      /** Epochs between two decays. */
      everyEpochs: z.number().int().min(1),
      /** Factor applied at each decay. */
      gamma: z.number().positive().max(1).default(0.1),
    })
    .strict(),
  z
    .object({
      name: z.literal('cosine'),
      /** The rate the cosine approaches at the end of the run. */
      minLearningRate: z.number().min(0).default(0),
    })
    .strict(),
]);
export type ScheduleSpec = z.infer<typeof ScheduleSpec>;

export const OptimizerSpec = z
  .object({
    name: z.enum(['sgd', 'adam']),
    /** The base rate: epoch 1's rate under every schedule. */
    learningRate: z.number().positive(),
    /** SGD only: momentum coefficient in [0, 1). */
    momentum: z.number().min(0).max(1, 'expected a number in [0, 1)').default(0),
    /** SGD only: Nesterov momentum (torch's nesterov=True); needs momentum > 0. */
    nesterov: z.boolean().default(false),
    /** Weight decay coefficient; 0 for none. Applies to every trainable variable, biases included (as torch). */
    weightDecay: z.number().min(0).default(0),
    /**
     * false (default): L2 decay, wd * w added to the gradient before momentum or Adam's moments (torch's
     * SGD and Adam `weight_decay`). true: decoupled decay, w -= lr * wd * w before the update (AdamW;
     * also accepted for SGD).
     */
    decoupledWeightDecay: z.boolean().default(false),
    schedule: ScheduleSpec.default({ name: 'constant' }),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.momentum >= 1) ctx.addIssue({ code: 'custom', path: ['momentum'], message: `expected a number in [0, 1), found ${o.momentum}` });
    if (o.name === 'adam' && o.momentum > 0) {
      ctx.addIssue({ code: 'custom', path: ['momentum'], message: `applies to sgd only, found ${o.momentum} for adam (Adam's betas are fixed at 0.9, 0.999)` });
    }
    if (o.nesterov && (o.name !== 'sgd' || o.momentum === 0)) {
      ctx.addIssue({ code: 'custom', path: ['nesterov'], message: `expected sgd with momentum > 0, found ${o.name} with momentum ${o.momentum}` });
    }
    if (o.schedule.name === 'cosine' && o.schedule.minLearningRate > o.learningRate) {
      ctx.addIssue({
        code: 'custom',
        path: ['schedule', 'minLearningRate'],
        message: `expected at most learningRate (${o.learningRate}), found ${o.schedule.minLearningRate}`,
      });
    }
  });
export type OptimizerSpec = z.infer<typeof OptimizerSpec>;

export const ModelSpec = z
  .object({
    /** Registered model name, e.g. "lenet5" or "mlp". */
    name: z.string().min(1),
    /** Builder arguments, validated by the model's own schema. */
    args: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();
export type ModelSpec = z.infer<typeof ModelSpec>;

/**
 * One initialiser: a name (`kaiming-normal`, `xavier-uniform`, `lecun-normal`, `kaiming-uniform-fan-out`,
 * ...; the list is ml/train/names.ts) or `{ name: uniform, a: 0.05 }` for U(-a, a) /
 * `{ name: normal, a: 0.01 }` for N(0, a^2).
 */
export const InitializerRef = z.union(
  [
    z.enum(INITIALIZER_NAMES),
    z.object({ name: z.enum(PARAMETRIC_INITIALIZER_NAMES), a: z.number().positive() }).strict(),
  ],
  {
    error: (iss) =>
      `expected an initialiser name (${INITIALIZER_NAMES.join(', ')}) or { name: ${PARAMETRIC_INITIALIZER_NAMES.join(' | ')}, a: number > 0 }, found ${JSON.stringify(iss.input)}`,
  },
);

/** How a run's weights start, drawn from the run's seed. Batch-norm variables always start at 1 and 0. */
export const InitSpec = z
  .object({
    /** Initialiser of every kernel (dense and convolution weights). */
    kernel: InitializerRef.default('glorot-uniform'),
    /** Initialiser of every bias. */
    bias: InitializerRef.default('zeros'),
    /**
     * Start from a stored weight snapshot (fine-tuning, "pretrained"), named either by store key
     * (`{ key, sha256? }`: a run result's `final.key`, optionally pinned by sha256) or by run and epoch
     * (`{ run: <experiment id>/<run name>, epoch }`: that run's checkpoint of that epoch), or by a run of
     * this experiment (`{ run: <run name>, epoch? }`, its final weights by default; the run name may use
     * `{model}`, `{variant}`, `{dataset}` and `{seed}` for the run being started, e.g.
     * `{model}--sgd--{dataset}--s{seed}`), which then trains first. With `layers`
     * (names or `prefix*`) only those layers are loaded and the rest keep the seeded initialisers above,
     * e.g. a new classifier head. Every loaded tensor must match the model's variable name and shape.
     */
    from: z
      .object({
        key: z.string().min(1).optional(),
        sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits').optional(),
        run: z.string().regex(/^([^/]+\/)?[^/]+$/, 'expected "<experiment id>/<run name>" or, for a run of this experiment, "<run name>"').optional(),
        epoch: z.number().int().min(0).optional(),
        layers: z.array(LayerPattern).min(1).optional(),
      })
      .strict()
      .superRefine((f, ctx) => {
        if ((f.key === undefined) === (f.run === undefined)) {
          ctx.addIssue({ code: 'custom', message: 'expected either "key" or "run" (with "epoch"), found ' + (f.key ? 'both' : 'neither') });
        }
        if (f.run !== undefined && f.run.includes('/') && f.epoch === undefined) {
          ctx.addIssue({ code: 'custom', path: ['epoch'], message: 'expected the epoch of the snapshot of "run" (only a run of this experiment defaults to its final weights)' });
        }
        if (f.key !== undefined && f.epoch !== undefined) ctx.addIssue({ code: 'custom', path: ['epoch'], message: 'applies to "run" only; a key names one snapshot' });
        if (f.run !== undefined && f.sha256 !== undefined) ctx.addIssue({ code: 'custom', path: ['sha256'], message: 'applies to "key" only; a run checkpoint pins its own sha256' });
      })
      .optional(),
  })
  .strict();
export type InitSpec = z.infer<typeof InitSpec>;

export const TrainingSpec = z
  .object({
    epochs: z.number().int().min(1).max(10_000),
    batchSize: z.number().int().min(1).max(65_536).default(64),
    optimizer: OptimizerSpec,
    /** Epochs at which weights are stored; epoch 0 is the initial weights. Default: every epoch. */
    snapshotEvery: z.number().int().min(1).default(1),
    /**
     * Early stopping on the validation loss (off when omitted; needs every dataset's validationSplit > 0).
     * As Keras's EarlyStopping with restore_best_weights, the best is one of the trained epochs (epoch 0,
     * the initial weights, never is). The run ends with the best epoch's weights as its final snapshot
     * whether it stopped early or ran every epoch.
     */
    earlyStopping: z
      .object({
        /** Epochs without improvement after which training stops. */
        patience: z.number().int().min(1),
        /** An epoch improves when its validation loss is below the best minus minDelta. */
        minDelta: z.number().min(0).default(0),
      })
      .strict()
      .optional(),
    /**
     * Layers whose weights are not trained (none when omitted): `layers` lists layer names or prefixes
     * ending in `*` (`conv*`), each of which must match a layer of the model; or `except` lists the
     * only layers that still train. `batchNorm` says what the
     * batch-norm layers among them do: `frozen` (default; normalise with their running statistics and
     * update nothing) or `trainable` (learn gamma and beta and update the running statistics).
     */
    freeze: z
      .object({
        layers: z.array(LayerPattern).min(1).optional(),
        /** Instead of `layers`: every layer but these is frozen (fine-tuning a new classifier: `except: [fc]`). */
        except: z.array(LayerPattern).min(1).optional(),
        batchNorm: z.enum(['frozen', 'trainable']).default('frozen'),
      })
      .strict()
      .refine((f) => (f.layers === undefined) !== (f.except === undefined), { message: 'expected either "layers" or "except"' })
      .optional(),
    /**
     * Augmentation of training examples (never validation or test), none when omitted. Applied in the
     * order crop, flip, rotation, colour jitter, each example's draws derived from (run seed, epoch,
     * example index), so resuming stays exact. Padding and rotation fill with 0; with dataset
     * normalisation on, that is the training mean, and jitter acts on the normalised values.
     */
    augment: z
      .object({
        /** Mirror left-right with probability 1/2. */
        flip: z.boolean().default(false),
        /** Zero-pad each side by `padding` pixels, then crop a random window of the original size. */
        crop: z.object({ padding: z.number().int().min(1).max(64) }).strict().optional(),
        /** Rotate by a uniform angle in [-degrees, degrees] (bilinear). */
        rotation: z.object({ degrees: z.number().positive().max(180) }).strict().optional(),
        /** Factors drawn from [1 - x, 1 + x]; saturation only changes 3-channel images. */
        colorJitter: z
          .object({
            brightness: z.number().min(0).max(1).default(0),
            contrast: z.number().min(0).max(1).default(0),
            saturation: z.number().min(0).max(1).default(0),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    /** Weight initialisers; default Glorot-uniform kernels and zero biases. */
    init: InitSpec.default({ kernel: 'glorot-uniform', bias: 'zeros' }),
  })
  .strict();
export type TrainingSpec = z.infer<typeof TrainingSpec>;

/**
 * Distances of every snapshot to the initial weights and to the previous snapshot, per layer and for the
 * whole model: raw Minkowski distance, per-parameter mean and relative |W_t - W_0| / |W_0|, and the share
 * of parameters changed, |delta| > atol + rtol |w_ref|. Always computed (the run's basic figure).
 */
export const DistanceSpec = z
  .object({
    /** Minkowski orders; "inf" for the maximum norm. */
    p: z.array(z.union([z.number().min(1), z.literal('inf')])).min(1).default([1]),
    /**
     * Further snapshots every snapshot is measured against, each named by a label: a stored snapshot by
     * `key` (optionally pinned by `sha256`) or another experiment's run checkpoint (`run:
     * <experiment id>/<run name>`, `epoch`). Their rows have `against: ref:<label>`.
     */
    references: z
      .array(
        z
          .object({
            label: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected lowercase letters, digits and dashes'),
            key: z.string().min(1).optional(),
            sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits').optional(),
            run: z.string().regex(/^[^/]+\/[^/]+$/, 'expected "<experiment id>/<run name>"').optional(),
            epoch: z.number().int().min(0).optional(),
          })
          .strict()
          .refine((r) => (r.key === undefined) !== (r.run === undefined), { message: 'expected either "key" or "run" with "epoch"' })
          .refine((r) => r.run === undefined || r.epoch !== undefined, { message: 'expected the "epoch" of the run\'s checkpoint', path: ['epoch'] }),
      )
      .min(1)
      .optional(),
    /**
     * The layers the per-layer distances (and the depth axis, and the whole-model row) cover: `all`
     * (default), every layer with parameters, batch norms' gamma and beta included; or `weights`, the
     * layers with a kernel (convolutions and dense layers, with their biases), as a study of "each
     * convolutional layer" counts them.
     */
    layers: z.enum(['all', 'weights']).optional(),
    /** Tolerance of "changed": a parameter changed when |w - w_ref| > atol + rtol |w_ref|. */
    changed: z
      .object({ atol: z.number().min(0).default(0), rtol: z.number().min(0).default(0) })
      .strict()
      .default({ atol: 0, rtol: 0 }),
  })
  .strict();
export type DistanceSpec = z.infer<typeof DistanceSpec>;

/**
 * The probe set: a seeded subset of the test split (the same examples for every run of every experiment
 * with the same dataset and size), stored once, through which the final (and initial) weights are run
 * to get the features correlation, CKA and smoothness use.
 */
export const ProbeSpec = z
  .object({
    /** Number of test examples (capped by the test split). */
    size: z.number().int().min(2).max(100_000).default(1000),
    /**
     * How a convolution layer's activations [n, h, w, c] become features: `mean` (default) averages over
     * the spatial positions to [n, c]; `flatten` keeps [n, h * w * c] (exact, and large).
     */
    pool: z.enum(['mean', 'flatten']).default('mean'),
  })
  .strict();
export type ProbeSpec = z.infer<typeof ProbeSpec>;

/** Within one model: the feature-feature Pearson matrix of a layer, its mean |r| off the diagonal and histogram. */
export const CorrelationSpec = z
  .object({
    /** `penultimate` (default: the features the classifier reads) or a layer name. */
    layer: z.string().min(1).default('penultimate'),
    /** Histogram bins of r over [-1, 1]. */
    bins: z.number().int().min(2).max(1000).default(20),
  })
  .strict();

/** Across two runs of the experiment: linear CKA between every pair of layers, and the correlation of their penultimate features. */
export const CompareSpec = z
  .object({
    /**
     * Which runs are compared: `same-model` (default: every pair of runs of one model on one dataset,
     * differing in seed, initialiser or optimiser variant), `all` (every pair), or explicit pairs of run names.
     */
    pairs: z.union([z.enum(['same-model', 'all']), z.array(z.tuple([z.string().min(1), z.string().min(1)])).min(1)]).default('same-model'),
    /** Layers to compare (names or prefixes ending in *); every layer with parameters when omitted. */
    layers: z.array(LayerPattern).min(1).optional(),
    /** Upper bound on compared pairs: a guard against an `all` that grows quadratically with the grid. */
    maxPairs: z.number().int().min(1).default(200),
  })
  .strict();

const Label = z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected lowercase letters, digits and dashes');

/** One way to perturb trained weights before retraining them; `label` names it in run names and figures. */
export const PerturbationSpec = z.discriminatedUnion('kind', [
  /** theta -> -theta for every parameter. */
  z.object({ kind: z.literal('sign-flip'), label: Label.optional() }).strict(),
  /** theta -> theta + value for every parameter. */
  z.object({ kind: z.literal('offset'), value: z.number().default(1e-6), label: Label.optional() }).strict(),
  /** theta -> theta + N(0, scale^2), drawn from the run's seed. */
  z.object({ kind: z.literal('noise'), scale: z.number().positive(), label: Label.optional() }).strict(),
  /** One layer (or the layers matching a prefix*) back to its initial weights. */
  z.object({ kind: z.literal('reinit-layer'), layer: LayerPattern, label: Label.optional() }).strict(),
]);
export type PerturbationSpec = z.infer<typeof PerturbationSpec>;

/**
 * Perturb-and-retrain: each perturbation is applied to the run's final weights theta1, the result is
 * retrained with the run's own training options (for `epochs`, default the run's), and the norms
 * |theta1|, |theta2|, |theta1 - theta2| are reported per layer and for the whole model.
 */
export const PerturbSpec = z
  .object({
    perturbations: z.array(PerturbationSpec).min(1),
    /** Epochs of retraining; the run's own epochs when omitted. */
    epochs: z.number().int().min(1).max(10_000).optional(),
    /** Minkowski order of the norms. */
    p: z.union([z.number().min(1), z.literal('inf')]).default(2),
  })
  .strict();

/** Re-initialisation robustness: each layer in turn reset to its initial weights, the model evaluated on the test split. */
export const ReinitSpec = z
  .object({
    /** Layers to reset (names or prefixes ending in *); every layer with parameters when omitted. */
    layers: z.array(LayerPattern).min(1).optional(),
  })
  .strict();

/** Per-layer smoothness: the weak-type Besov alpha of a random-forest wavelet decomposition of the layer's probe features against the labels. */
export const SmoothnessSpec = z
  .object({
    trees: z.number().int().min(1).max(1000).default(10),
    /** Features tried at each split: `sqrt` of their number (default), `all`, or a fraction. */
    maxFeatures: z.union([z.enum(['sqrt', 'all']), z.number().positive().max(1)]).default('sqrt'),
    /** Layers (names or prefixes ending in *); every layer with parameters when omitted. */
    layers: z.array(LayerPattern).min(1).optional(),
    /**
     * Snapshot epochs measured besides the final weights (S2 also measures epoch 5); an epoch the run
     * stored no snapshot of (it stopped earlier, or it is not a snapshot epoch) is skipped.
     */
    epochs: z.array(z.number().int().min(0)).min(1).optional(),
  })
  .strict();

/**
 * Which analyses run, beyond the distances every run gets. Each present key turns one on; each is an
 * activity on the analysis queue and can be re-run later on the stored snapshots without retraining.
 */
export const AnalysesSpec = z
  .object({
    distance: DistanceSpec.default({ p: [1], changed: { atol: 0, rtol: 0 } }),
    probe: ProbeSpec.default({ size: 1000, pool: 'mean' }),
    correlation: CorrelationSpec.optional(),
    compare: CompareSpec.optional(),
    perturb: PerturbSpec.optional(),
    reinit: ReinitSpec.optional(),
    smoothness: SmoothnessSpec.optional(),
    /**
     * The gathered figure: per-layer distances to init and to previous averaged over all runs (and by
     * residual vs plain where models say so), with layer depth normalised to [0, 1].
     */
    aggregate: z.boolean().default(false),
    /**
     * Each run's own figures (Differences and one per analysis), drawn as SVG and PNG when the run
     * ends. A sweep of thousands of runs may turn them off: its tables, the experiment's figures and
     * the report stay, and a run's figures can be drawn later from its stored tables.
     */
    runFigures: z.boolean().default(true),
  })
  .strict();
export type AnalysesSpec = z.infer<typeof AnalysesSpec>;

export const ExecutionSpec = z
  .object({
    /** How many runs train at once. */
    concurrency: z.number().int().min(1).max(1000).default(2),
    /** A training attempt that stops heartbeating this long is retried on another worker. */
    heartbeatTimeout: Duration.default('60s'),
    /** Attempts per activity before the run fails. */
    maxAttempts: z.number().int().min(1).max(100).default(5),
    /**
     * Runs the experiment workflow starts before it continues as new (a fresh history), so grids of any
     * size complete; it also continues when Temporal suggests it.
     */
    continueAsNewAfter: z.number().int().min(1).max(100_000).default(500),
    /**
     * Each run's training and distances as Temporal local activities, in the worker that runs the run's
     * workflow (the workflow queue, served by train workers), instead of tasks on the train and analysis
     * queues. Saves two task hand-offs and their history events per run: for sweeps of many runs of a
     * second or less, where those cost more than the training. Retried, cancelled, checkpointed and
     * reused as usual; the worker's train slots bound local trainings too. The other analyses stay on
     * the analysis queue.
     */
    local: z.boolean().default(false),
    /**
     * Runs per run workflow. Above 1, consecutive runs of one grid cell (same model, dataset and
     * optimiser; seeds and variants differ) that start from no other run share one workflow, which
     * trains them one after another: Temporal's fixed cost per workflow (its start, history and
     * visibility record, a few ms of server and worker CPU each) is paid once per pack. For sweeps of
     * tiny runs, where that cost rivals the training. Each run keeps its id, artifacts, lineage, reuse
     * and result; a failed run fails only itself. What is per workflow is shared: the pack's search
     * attributes (its id, its status: the worst of its runs'), and `concurrency` then counts packs.
     * With `local`, the pack's lookups, trainings and distances run several runs per local activity
     * (activities/pack.ts).
     */
    runsPerWorkflow: z.number().int().min(1).max(100).default(1),
  })
  .strict();
export type ExecutionSpec = z.infer<typeof ExecutionSpec>;

/** Part of a grid cell, for `include` and `exclude`. */
const CellPattern = z
  .object({
    model: z.string().min(1).optional(),
    variant: z.string().min(1).optional(),
    dataset: z.string().min(1).optional(),
    seed: z.number().int().min(0).optional(),
  })
  .strict()
  .refine((c) => Object.keys(c).length > 0, { message: 'expected at least one of model, variant, dataset, seed' });

const NamedModel = ModelSpec.extend({
  label: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected lowercase letters, digits and dashes').optional(),
  /** The group gathered figures average it in (e.g. `residual` or `plain`); its label when omitted. */
  group: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected lowercase letters, digits and dashes').optional(),
}).strict();

export const ExperimentConfig = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected lowercase letters, digits and dashes'),
    description: z.string().optional(),
    /** The size chosen from the file's `sizes` (set when the file is read, see `applySize`). */
    size: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected lowercase letters, digits and dashes').optional(),
    /** Grid axes: every model is trained on every dataset with every seed. */
    models: z.array(NamedModel).min(1),
    datasets: z.array(DatasetSpec).min(1),
    seeds: z.array(z.number().int().min(0).max(2 ** 31 - 1)).min(1).default([0]),
    training: TrainingSpec,
    /**
     * A further grid axis over training options: every run is repeated once per variant, with the
     * variant's keys replacing those of `training` (a key given replaces the whole value, e.g. a new
     * `optimizer`). Run names gain the variant's label: `<model>--<variant>--<dataset>--s<seed>`.
     */
    variants: z
      .array(
        z
          .object({
            label: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected lowercase letters, digits and dashes'),
            training: z.record(z.string(), z.unknown()).default({}),
          })
          .strict(),
      )
      .min(1)
      .optional(),
    analyses: AnalysesSpec.default(AnalysesSpec.parse({})),
    /**
     * Cells of the grid left out: each entry names some of model (label), variant (label), dataset
     * (label) and seed, and removes every run matching all it names.
     */
    exclude: z.array(CellPattern).min(1).optional(),
    /** When given, only the cells matching at least one entry (same form as `exclude`) run. */
    include: z.array(CellPattern).min(1).optional(),
    execution: ExecutionSpec.default(ExecutionSpec.parse({})),
  })
  .strict();
export type ExperimentConfig = z.infer<typeof ExperimentConfig>;

export class InvalidExperimentError extends Error {
  override name = 'InvalidExperimentError';
}

/** Formats zod issues as "field.path: message" lines, so the user sees which field is wrong. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length ? issue.path.join('.') : '(file)'}: ${issue.message}`)
    .join('\n');
}

export interface Registries {
  models: ReadonlySet<string>;
  datasets: ReadonlySet<string>;
  /** How many examples each dataset's splits hold, where known: a subset may not ask for more. */
  datasetExamples?: ReadonlyMap<string, DatasetExamples>;
}


const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `over` laid on `base`: mappings merge key by key, everything else (lists included) is replaced whole. */
export function mergeSize(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? mergeSize(base[k], v) : v;
  return out;
}

/**
 * Resolves an experiment file's `sizes`: a mapping from size name (`paper`, `cpu`, `smoke`, ...) to
 * overrides laid on the rest of the file (mappings merge, lists and values replace). The chosen size is
 * recorded as `size`. A file with sizes needs one chosen; a file without takes none.
 */
export function applySize(raw: unknown, size: string | undefined, source: string): unknown {
  if (!isPlainObject(raw) || raw.sizes === undefined) {
    if (size !== undefined) throw new InvalidExperimentError(`${source}: --size ${size}: this experiment file has no "sizes"`);
    return raw;
  }
  const { sizes, ...rest } = raw;
  if (!isPlainObject(sizes) || Object.keys(sizes).length === 0 || Object.values(sizes).some((v) => v !== null && !isPlainObject(v))) {
    throw new InvalidExperimentError(`${source}: invalid experiment:\nsizes: expected a mapping from size name to the fields it overrides`);
  }
  const names = Object.keys(sizes);
  const bad = names.find((n) => !/^[a-z0-9][a-z0-9-]*$/.test(n));
  if (bad) throw new InvalidExperimentError(`${source}: invalid experiment:\nsizes.${bad}: expected lowercase letters, digits and dashes`);
  if (size === undefined) throw new InvalidExperimentError(`${source}: this experiment comes in sizes ${names.join(', ')}; choose one with --size`);
  if (!(size in sizes)) throw new InvalidExperimentError(`${source}: --size ${size}: expected one of ${names.join(', ')}`);
  return { ...(mergeSize(rest, sizes[size] ?? {}) as Record<string, unknown>), size };
}

/**
 * Parses and validates an experiment file's text; `source` names it in messages. `size` picks one of
 * the file's `sizes`.
 */
export function experimentFromYaml(text: string, source: string, registries: Registries, options: { size?: string } = {}): ExperimentConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new InvalidExperimentError(`${source}: not valid YAML: ${(err as Error).message}`);
  }
  return validateExperiment(applySize(raw, options.size, source), source, registries);
}

export function validateExperiment(raw: unknown, source: string, registries: Registries): ExperimentConfig {
  const parsed = ExperimentConfig.safeParse(raw);
  if (!parsed.success) {
    throw new InvalidExperimentError(`${source}: invalid experiment:\n${describeIssues(parsed.error)}`);
  }
  const config = parsed.data;
  const problems: string[] = [];
  config.models.forEach((m, i) => {
    if (!registries.models.has(m.name)) {
      problems.push(`models.${i}.name: unknown model "${m.name}" (known: ${[...registries.models].sort().join(', ')})`);
    }
  });
  config.datasets.forEach((d, i) => {
    if (!registries.datasets.has(d.name)) {
      problems.push(
        `datasets.${i}.name: unknown dataset "${d.name}" (known: ${[...registries.datasets].sort().join(', ')})`,
      );
    }
    const examples = registries.datasetExamples?.get(d.name);
    for (const split of ['train', 'test'] as const) {
      const asked = d.subset?.[split];
      if (examples && asked !== undefined && asked > examples[split]) {
        problems.push(`datasets.${i}.subset.${split}: ${asked} examples asked, but ${d.name} has ${examples[split]} ${split === 'train' ? 'training' : 'test'} examples`);
      }
    }
  });
  // Each variant's training is validated whole, and stored resolved (defaults applied) for the workflow.
  const trainings: Array<[string, TrainingSpec]> = [['training', config.training]];
  config.variants?.forEach((v, i) => {
    const merged = TrainingSpec.safeParse(variantTraining(config.training, v.training));
    if (!merged.success) {
      for (const issue of merged.error.issues) {
        problems.push(`variants.${i}.training${issue.path.length ? '.' + issue.path.join('.') : ''}: ${issue.message}`);
      }
      return;
    }
    v.training = merged.data;
    trainings.push([`variants.${i}.training`, merged.data]);
  });
  for (const [where, training] of trainings) {
    if (!training.earlyStopping) continue;
    config.datasets.forEach((d, i) => {
      if (d.validationSplit === 0) {
        problems.push(`datasets.${i}.validationSplit: ${where}.earlyStopping needs a validation split > 0, found 0`);
        return;
      }
      // The split holds round(n x fraction) examples (ml/data/split.ts): none would stop nothing.
      const n = d.subset?.train ?? registries.datasetExamples?.get(d.name)?.train;
      if (n !== undefined && Math.round(n * d.validationSplit) === 0) {
        problems.push(`datasets.${i}.validationSplit: ${where}.earlyStopping needs validation examples, but ${d.validationSplit} of ${n} training examples is none`);
      }
    });
  }
  // Run names join labels with "--": a label holding it could make two runs' names meet.
  for (const [field, items] of [['models', config.models], ['datasets', config.datasets], ['variants', config.variants ?? []]] as const) {
    items.forEach(({ label }, i) => {
      if (label?.includes('--')) problems.push(`${field}.${i}.label: "${label}" holds "--", which separates the parts of run names`);
    });
  }
  const dupSeed = config.seeds.find((seed, i) => config.seeds.indexOf(seed) !== i);
  if (dupSeed !== undefined) problems.push(`seeds: ${dupSeed} appears twice; each seed is a run of its own`);
  const datasetLabels = config.datasets.map((d) => d.label ?? d.name);
  const dupDataset = datasetLabels.find((l, i) => datasetLabels.indexOf(l) !== i);
  if (dupDataset) problems.push(`datasets: two datasets share the name "${dupDataset}" in run names; give one a distinct "label"`);
  for (const which of ['exclude', 'include'] as const) {
    config[which]?.forEach((c, i) => {
      const known = { model: config.models.map(modelLabel), variant: config.variants?.map((v) => v.label) ?? [], dataset: datasetLabels, seed: config.seeds };
      for (const axis of ['model', 'variant', 'dataset', 'seed'] as const) {
        const value = c[axis];
        if (value !== undefined && !(known[axis] as Array<string | number>).includes(value)) {
          problems.push(`${which}.${i}.${axis}: "${value}" is not a ${axis} of this experiment (${known[axis].join(', ') || 'none'})`);
        }
      }
    });
  }
  const variantLabels = config.variants?.map((v) => v.label) ?? [];
  const dupVariant = variantLabels.find((l, i) => variantLabels.indexOf(l) !== i);
  if (dupVariant) problems.push(`variants: two variants share the label "${dupVariant}"`);
  if (problems.length === 0) {
    const specs = expandRuns(config);
    if (specs.length === 0) problems.push('include/exclude: no run of the grid is left');
    try {
      orderByDependencies(specs);
    } catch (err) {
      problems.push((err as Error).message);
    }
    const names = new Set(specs.map((s) => s.name));
    const byName = new Map(specs.map((s) => [s.name, s]));
    for (const s of specs) {
      const from = s.training.init.from;
      if (from?.run === s.name) problems.push(`training.init.from.run: run "${s.name}" starts from itself`);
      if (from?.run === undefined) continue;
      // Another experiment's run is named whole: its placeholders would never be filled.
      if (!isSameExperimentRun(from.run) && /[{}]/.test(from.run)) {
        problems.push(`training.init.from.run: "${from.run}" names another experiment's run, whose name takes no {placeholders}`);
      }
      // A snapshot of this experiment's run exists at epoch 0, every snapshotEvery epochs and the last;
      // another epoch only when early stopping stops there.
      const source = byName.get(from.run);
      if (source && from.epoch !== undefined && !source.training.earlyStopping) {
        const { epochs, snapshotEvery } = source.training;
        if (from.epoch > epochs || (from.epoch % snapshotEvery !== 0 && from.epoch !== epochs)) {
          problems.push(
            `training.init.from.epoch: run "${s.name}" starts from epoch ${from.epoch} of "${from.run}", which stores its weights at epoch 0, every ${snapshotEvery} and its last, ${epochs}`,
          );
        }
      }
    }
    if (config.analyses.compare) {
      const pairs = comparePairs(config, specs);
      pairs.forEach(([a, b], i) => {
        for (const n of [a, b]) if (!names.has(n)) problems.push(`analyses.compare.pairs.${i}: "${n}" is not a run of this experiment (runs: ${[...names].join(', ')})`);
      });
      if (pairs.length > config.analyses.compare.maxPairs) {
        problems.push(`analyses.compare: ${pairs.length} pairs of runs to compare, above maxPairs ${config.analyses.compare.maxPairs}; raise maxPairs or list the pairs`);
      }
    }
  }
  const perturbations = config.analyses.perturb?.perturbations.map(perturbationLabel) ?? [];
  const dupPerturbation = perturbations.find((l, i) => perturbations.indexOf(l) !== i);
  if (dupPerturbation) problems.push(`analyses.perturb.perturbations: two perturbations share the label "${dupPerturbation}"; give one a distinct "label"`);
  const labels = config.models.map(modelLabel);
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup) problems.push(`models: two models share the label "${dup}"; give one a distinct "label"`);
  if (problems.length) throw new InvalidExperimentError(`${source}: invalid experiment:\n${problems.join('\n')}`);
  return config;
}
