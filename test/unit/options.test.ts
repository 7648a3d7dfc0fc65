/**
 * The training options of the experiment file, each with its zod validation: optimisers (Nesterov, L2
 * and decoupled weight decay) against hand-computed updates, learning-rate schedules, initialisers,
 * early stopping, divergence, normalisation, label noise, freezing with batch norm, weights from a
 * snapshot and augmentation; and resuming bit for bit with each piece of state they add. Trains small
 * MLPs (and one tiny CNN) on a synthetic, learnable dataset so the file needs no downloads and little CPU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import type { NamedTensor } from '../../artifacts/snapshot.js';
import { DatasetSpec, TrainingSpec, describeIssues, experimentFromYaml, validateExperiment } from '../../config/experiment.js';
import { initBackend } from '../../ml/backend.js';
import type { Split } from '../../ml/data/datasets.js';
import { buildModel } from '../../ml/models/registry.js';
import { deriveRng } from '../../ml/rng.js';
import { train, weightsFromTensors, type EpochMetrics, type TrainArgs, type TrainData, type TrainOutcome, type TrainState } from '../../ml/train/loop.js';
import { modelToTensors } from '../../ml/train/weights.js';
import { augmentExample, cropImage, flipImage, rotateImage } from '../../ml/train/augment.js';
import { INITIALIZERS, type InitArgs } from '../../ml/train/init.js';
import { INITIALIZER_NAMES } from '../../ml/train/names.js';
import { normalizationFromSplit, normalizeSplit, withLabelNoise } from '../../ml/train/prepare.js';
import { createOptimizer, learningRateAt, type OptimizerSpec } from '../../ml/train/optimizers.js';
import type { ModelVariable } from '../../ml/train/weights.js';

await initBackend();

const SHAPE: [number, number, number] = [6, 6, 1];
const CLASSES = 3;

/** n examples whose label is the argmax of three fixed projections: learnable, and cheap. */
function synthetic(n: number, seed: number, shape: [number, number, number] = SHAPE): Split {
  const size = shape[0] * shape[1] * shape[2];
  const rng = deriveRng(seed, 'synthetic');
  const proj = deriveRng(99, 'projection');
  const w = Array.from({ length: CLASSES * size }, () => proj.normal());
  const x = new Float32Array(n * size);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < size; j++) x[i * size + j] = rng.next();
    let best = 0;
    let bestScore = -Infinity;
    for (let c = 0; c < CLASSES; c++) {
      let s = 0;
      for (let j = 0; j < size; j++) s += w[c * size + j]! * (x[i * size + j]! - 0.5);
      if (s > bestScore) { bestScore = s; best = c; }
    }
    y[i] = best;
  }
  return { x, y, n };
}

const data: TrainData = { train: synthetic(240, 1), val: synthetic(60, 2), inputShape: SHAPE, numClasses: CLASSES };

interface Run {
  state: TrainState;
  history: EpochMetrics[];
  outcome: TrainOutcome;
  /** The states given to onEpoch. */
  epochs: TrainState[];
  /** The model's weights when train() returned (the best ones under early stopping). */
  final: NamedTensor[];
}

async function run(overrides: Partial<TrainArgs> & Pick<TrainArgs, 'optimizer' | 'epochs'>, d: TrainData = data): Promise<Run> {
  const model = buildModel({ name: 'mlp', args: { hidden: [16] } }, { inputShape: SHAPE, numClasses: CLASSES });
  const epochs: TrainState[] = [];
  try {
    const result = await train({ model, data: d, batchSize: 32, seed: 3, onEpoch: async (s) => { epochs.push(s); }, ...overrides });
    return { ...result, epochs, final: modelToTensors(model) };
  } finally {
    model.dispose();
  }
}

function bits(ts: readonly NamedTensor[]): string[] {
  return ts.map((t) => `${t.layer}/${t.name}:${Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength).toString('base64')}`);
}

/** One variable [1, -2] updated twice with the gradient [0.5, 0.5]; returns the values after each step. */
function twoSteps(spec: OptimizerSpec, lr?: number): number[][] {
  const variable = tf.variable(tf.tensor1d([1, -2]));
  const param: ModelVariable = { layer: 'l', name: 'kernel', trainable: true, shape: [2], variable };
  const opt = createOptimizer(spec, [param]);
  const out: number[][] = [];
  for (let i = 0; i < 2; i++) {
    tf.tidy(() => opt.apply([tf.tensor1d([0.5, 0.5])], lr));
    out.push(Array.from(variable.dataSync()));
  }
  opt.dispose();
  variable.dispose();
  return out;
}

function assertClose(found: number[][], expected: number[][], what: string): void {
  found.forEach((row, i) => row.forEach((v, j) => {
    assert.ok(Math.abs(v - expected[i]![j]!) < 1e-6, `${what}: step ${i + 1} value ${j}: expected ${expected[i]![j]}, found ${v}`);
  }));
}

test('SGD with Nesterov momentum and L2 weight decay matches the hand-computed updates', () => {
  // g' = g + 0.01 w; buf = 0.9 buf + g'; w -= 0.1 (g' + 0.9 buf).
  // Step 1: g' = [0.51, 0.48], buf = g', w = [1 - 0.0969, -2 - 0.0912].
  // Step 2: g' = [0.509031, 0.479088], buf = [0.968031, 0.911088], direction = [1.3802589, 1.2990672].
  const found = twoSteps({ name: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01 });
  assertClose(found, [[0.9031, -2.0912], [0.76507411, -2.22110672]], 'nesterov + L2');
  // Plain heavy ball for contrast: w -= 0.1 buf; step 2 buf = 0.9 * 0.5 + 0.5.
  assertClose(twoSteps({ name: 'sgd', learningRate: 0.1, momentum: 0.9 }), [[0.95, -2.05], [0.855, -2.145]], 'heavy ball');
});

test('decoupled weight decay shrinks the weights outside the gradient (AdamW); L2 goes through Adam moments', () => {
  // Adam's first step moves each weight by lr * g / |g| (up to eps), whatever g's size.
  // AdamW: w *= 1 - lr * wd = 0.99 first, then -0.1: [0.89, -2.08].
  const adamw = twoSteps({ name: 'adam', learningRate: 0.1, weightDecay: 0.1, decoupledWeightDecay: true });
  assertClose([adamw[0]!], [[0.89, -2.08]], 'AdamW');
  // Adam + L2: g' = g + 0.1 w = [0.6, 0.3], both positive, so the first step is -0.1 each: [0.9, -2.1].
  const adamL2 = twoSteps({ name: 'adam', learningRate: 0.1, weightDecay: 0.1 });
  assertClose([adamL2[0]!], [[0.9, -2.1]], 'Adam + L2');
  // SGD with decoupled decay: w = w (1 - 0.1 * 0.5) - 0.1 g = [0.9, -1.95].
  assertClose([twoSteps({ name: 'sgd', learningRate: 0.1, weightDecay: 0.5, decoupledWeightDecay: true })[0]!], [[0.9, -1.95]], 'SGD decoupled');
  // A rate given to apply() overrides the base rate: SGD, lr 0.2, w -= 0.2 * 0.5.
  assertClose([twoSteps({ name: 'sgd', learningRate: 0.1 }, 0.2)[0]!], [[0.9, -2.1]], 'explicit rate');
});

test('learning-rate schedules: constant, step and cosine by epoch', () => {
  const base = { name: 'sgd' as const, learningRate: 0.1 };
  assert.deepEqual([1, 2, 7].map((e) => learningRateAt(base, e, 7)), [0.1, 0.1, 0.1]);
  const step = { ...base, schedule: { name: 'step' as const, everyEpochs: 2, gamma: 0.5 } };
  assert.deepEqual([1, 2, 3, 4, 5].map((e) => learningRateAt(step, e, 5)), [0.1, 0.1, 0.05, 0.05, 0.025]);
  const cosine = { ...base, schedule: { name: 'cosine' as const, minLearningRate: 0.01 } };
  const rates = [1, 2, 3, 4].map((e) => learningRateAt(cosine, e, 4));
  assert.equal(rates[0], 0.1);
  assert.ok(Math.abs(rates[1]! - (0.01 + 0.09 * (1 + Math.SQRT1_2) / 2)) < 1e-12, `epoch 2: ${rates[1]}`);
  assert.ok(Math.abs(rates[2]! - 0.055) < 1e-12, `epoch 3: ${rates[2]}`);
  assert.ok(rates.every((r, i) => i === 0 || r < rates[i - 1]!), 'cosine decreases');
  assert.throws(() => learningRateAt(base, 0, 3), /expected an epoch >= 1, found 0/);
});

test('training follows the schedule and resumes across a step boundary bit for bit (SGD Nesterov + L2)', async () => {
  const optimizer: OptimizerSpec = {
    name: 'sgd', learningRate: 0.2, momentum: 0.9, nesterov: true, weightDecay: 1e-3,
    schedule: { name: 'step', everyEpochs: 2, gamma: 0.1 },
  };
  const full = await run({ optimizer, epochs: 3 });
  assert.deepEqual(full.history.map((m) => m.learningRate), [0.2, 0.2, 0.2, 0.2 * 0.1]);
  // Stop after epoch 2, the last epoch at the first rate; resume into epoch 3, the first at the decayed rate.
  const first = await run({ optimizer, epochs: 2 });
  const resumed = await run({ optimizer, epochs: 3, resume: first.state });
  assert.deepEqual(resumed.epochs.map((s) => s.epoch), [3]);
  assert.deepEqual(bits(resumed.state.weights), bits(full.state.weights));
  assert.deepEqual(bits(resumed.state.optimizer), bits(full.state.optimizer));
  // And the schedule mattered: the constant-rate run ends elsewhere.
  const constant = await run({ optimizer: { ...optimizer, schedule: { name: 'constant' } }, epochs: 3 });
  assert.notDeepEqual(bits(constant.state.weights), bits(full.state.weights));
  assert.ok(full.history[3]!.trainLoss < full.history[0]!.trainLoss, `training loss ${full.history[0]!.trainLoss} -> ${full.history[3]!.trainLoss}`);
});

test('AdamW with a cosine schedule resumes bit for bit', async () => {
  const optimizer: OptimizerSpec = {
    name: 'adam', learningRate: 0.01, weightDecay: 0.05, decoupledWeightDecay: true,
    schedule: { name: 'cosine', minLearningRate: 0.001 },
  };
  const full = await run({ optimizer, epochs: 3 });
  const first = await run({ optimizer, epochs: 1 });
  const resumed = await run({ optimizer, epochs: 3, resume: first.state });
  assert.deepEqual(bits(resumed.state.weights), bits(full.state.weights));
  assert.deepEqual(bits(resumed.state.optimizer), bits(full.state.optimizer));
});

function trainingIssues(training: unknown): string {
  const parsed = TrainingSpec.safeParse(training);
  assert.equal(parsed.success, false, `expected ${JSON.stringify(training)} to be rejected`);
  return describeIssues(parsed.error!);
}

test('optimizer options: defaults keep old files meaning what they meant; bad values name the field', () => {
  const old = TrainingSpec.parse({ epochs: 2, optimizer: { name: 'sgd', learningRate: 0.05, momentum: 0.9 } });
  assert.deepEqual(old.optimizer, {
    name: 'sgd', learningRate: 0.05, momentum: 0.9, nesterov: false, weightDecay: 0, decoupledWeightDecay: false,
    schedule: { name: 'constant' },
  });
  const full = TrainingSpec.parse({
    epochs: 10,
    optimizer: { name: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4, schedule: { name: 'step', everyEpochs: 3 } },
  });
  assert.deepEqual(full.optimizer.schedule, { name: 'step', everyEpochs: 3, gamma: 0.1 });
  const opt = (o: Record<string, unknown>) => ({ epochs: 2, optimizer: { name: 'sgd', learningRate: 0.1, ...o } });
  assert.match(trainingIssues(opt({ nesterov: true })), /optimizer\.nesterov: expected sgd with momentum > 0/);
  assert.match(trainingIssues(opt({ name: 'adam', momentum: 0.9 })), /optimizer\.momentum: applies to sgd only/);
  assert.match(trainingIssues(opt({ momentum: 1 })), /optimizer\.momentum: expected a number in \[0, 1\), found 1/);
  assert.match(trainingIssues(opt({ weightDecay: -1 })), /optimizer\.weightDecay/);
  assert.match(trainingIssues(opt({ schedule: { name: 'linear' } })), /optimizer\.schedule/);
  assert.match(trainingIssues(opt({ schedule: { name: 'step' } })), /optimizer\.schedule\.everyEpochs/);
  assert.match(trainingIssues(opt({ schedule: { name: 'cosine', minLearningRate: 1 } })), /optimizer\.schedule\.minLearningRate: expected at most learningRate \(0\.1\), found 1/);
  assert.match(trainingIssues(opt({ schedule: { name: 'cosine', gamma: 0.1 } })), /optimizer\.schedule/);
});

function sampleStd(values: Float32Array): number {
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / values.length;
  let sq = 0;
  for (const v of values) sq += (v - mean) ** 2;
  return Math.sqrt(sq / values.length);
}

test('initialisers from the experiment file: the registry holds every schema name; fan modes and uniform(-a, a) draw as specified', async () => {
  assert.deepEqual([...INITIALIZERS.keys()].sort(), [...INITIALIZER_NAMES].sort());
  const kernelOf = async (init: InitArgs) => {
    const r = await run({ optimizer: { name: 'sgd', learningRate: 0.1 }, epochs: 0, init });
    return r.epochs[0]!.weights;
  };
  // fc1 kernel is [36, 16]: He std is sqrt(2 / 36) in fan-in mode, sqrt(2 / 16) in fan-out mode.
  const fanIn = (await kernelOf({ kernel: 'kaiming-normal' }))[0]!;
  const fanOut = (await kernelOf({ kernel: 'kaiming-normal-fan-out' }))[0]!;
  assert.equal(`${fanIn.layer}/${fanIn.name}`, 'fc1/kernel');
  assert.deepEqual(fanIn.shape, [36, 16]);
  for (const [t, std] of [[fanIn, Math.sqrt(2 / 36)], [fanOut, Math.sqrt(2 / 16)]] as const) {
    const found = sampleStd(t.values);
    assert.ok(Math.abs(found / std - 1) < 0.12, `expected std near ${std}, found ${found}`);
  }
  const uniform = await kernelOf({ kernel: { name: 'uniform', a: 0.05 }, bias: { name: 'uniform', a: 0.5 } });
  const [k, b] = [uniform[0]!, uniform[1]!];
  assert.ok(k.values.every((v) => Math.abs(v) < 0.05) && k.values.some((v) => Math.abs(v) > 0.045), 'kernel in (-0.05, 0.05), reaching near the ends');
  assert.ok(b.values.every((v) => Math.abs(v) < 0.5) && b.values.some((v) => v !== 0), 'biases drawn, not zero');
  // xavier is glorot by another name: the same draws.
  assert.deepEqual(bits(await kernelOf({ kernel: 'xavier-normal' })), bits(await kernelOf({ kernel: 'glorot-normal' })));
  await assert.rejects(kernelOf({ kernel: 'he-normal' }), /unknown initialiser "he-normal": expected one of zeros, ones, glorot-uniform/);
});

test('init options validate with the field named; the default is the old Glorot-uniform/zeros', () => {
  const base = { epochs: 1, optimizer: { name: 'sgd', learningRate: 0.1 } };
  assert.deepEqual(TrainingSpec.parse(base).init, { kernel: 'glorot-uniform', bias: 'zeros' });
  assert.deepEqual(TrainingSpec.parse({ ...base, init: { kernel: 'lecun-normal' } }).init, { kernel: 'lecun-normal', bias: 'zeros' });
  assert.match(trainingIssues({ ...base, init: { kernel: 'kaiming' } }), /init\.kernel: expected an initialiser name \(zeros, .*lecun-normal\) or \{ name: uniform \| normal, a: number > 0 \}, found "kaiming"/);
  assert.match(trainingIssues({ ...base, init: { bias: { name: 'uniform', a: 0 } } }), /init\.bias\.a/);
  assert.match(trainingIssues({ ...base, init: { kernels: 'zeros' } }), /init: Unrecognized key: "kernels"/);
});

const adam: OptimizerSpec = { name: 'adam', learningRate: 0.05 };

test('early stopping: no improvement beyond minDelta stops after `patience` epochs and restores the first trained epoch, never the initial weights', async () => {
  const r = await run({ optimizer: adam, epochs: 6, earlyStopping: { patience: 2, minDelta: 100 } });
  assert.deepEqual(r.outcome, { status: 'stopped-early', epoch: 3, bestEpoch: 1 });
  // Epoch 0 (the initial weights) has no early-stopping record: it is never a candidate, as in Keras.
  assert.deepEqual(r.epochs.map((s) => [s.epoch, s.earlyStopping?.wait, s.earlyStopping?.stopped]), [[0, undefined, undefined], [1, 0, false], [2, 1, false], [3, 2, true]]);
  assert.deepEqual(bits(r.final), bits(r.epochs[1]!.weights), 'the model ends with the first trained epoch\'s weights');
  assert.notDeepEqual(bits(r.final), bits(r.epochs[0]!.weights));
  assert.notDeepEqual(bits(r.state.weights), bits(r.final), 'the returned state is the last epoch, before the restore');
});

/** `d` with every `every`-th training label moved to another class: a model first learns, then memorises the wrong ones. */
const mislabelled = (d: Split, every: number): Split => ({ ...d, y: d.y.map((v, i) => (i % every === 0 ? (v + 1 + (i % (CLASSES - 1))) % CLASSES : v)) });

test('early stopping keeps the best validation epoch, restores it, and resumes exactly (also from a stopped state)', async () => {
  const es = { patience: 2, minDelta: 0 };
  // Half the training labels wrong: validation loss falls, then rises as the wrong labels are learnt.
  const overfit: TrainData = { ...data, train: mislabelled(synthetic(120, 1), 2) };
  const full = await run({ optimizer: adam, epochs: 12, earlyStopping: es }, overfit);
  const losses = full.history.map((m) => m.valLoss);
  const trained = losses.slice(1);
  const best = 1 + trained.indexOf(Math.min(...trained));
  assert.equal(full.outcome.status, 'stopped-early', `validation losses ${losses.join(', ')}`);
  const { epoch, bestEpoch } = full.outcome as { epoch: number; bestEpoch: number };
  assert.equal(bestEpoch, best);
  assert.ok(best > 1 && best < epoch, `the best epoch (${best}) lies between the first and the last (${epoch}); validation losses ${losses.join(', ')}`);
  assert.equal(epoch, best + es.patience);
  assert.deepEqual(bits(full.final), bits(full.epochs[best]!.weights));

  const first = await run({ optimizer: adam, epochs: 1, earlyStopping: es }, overfit);
  const resumed = await run({ optimizer: adam, epochs: 12, earlyStopping: es, resume: first.state }, overfit);
  assert.deepEqual(resumed.outcome, full.outcome);
  assert.deepEqual(bits(resumed.final), bits(full.final));
  assert.deepEqual(bits(resumed.state.weights), bits(full.state.weights));
  // From the initial state (epoch 0, which has no early-stopping record) too.
  const fromStart = await run({ optimizer: adam, epochs: 12, earlyStopping: es, resume: full.epochs[0]! }, overfit);
  assert.deepEqual(fromStart.outcome, full.outcome);
  assert.deepEqual(bits(fromStart.final), bits(full.final));

  // A state stored after the stop trains no further and still ends with the best weights.
  const again = await run({ optimizer: adam, epochs: 12, earlyStopping: es, resume: full.state }, overfit);
  assert.equal(again.epochs.length, 0);
  assert.deepEqual(again.outcome, full.outcome);
  assert.deepEqual(bits(again.final), bits(full.final));
  await assert.rejects(run({ optimizer: adam, epochs: 12, resume: first.state }, overfit), /trained with early stopping, but this run has it off/);
  const { earlyStopping: _, ...unrecorded } = first.state;
  await assert.rejects(run({ optimizer: adam, epochs: 12, earlyStopping: es, resume: unrecorded }, overfit), /early stopping is on, but the stored state has no early-stopping record/);
  await assert.rejects(run({ optimizer: adam, epochs: 1, earlyStopping: es }, { ...data, val: { x: new Float32Array(0), y: new Int32Array(0), n: 0 } }), /needs a validation split/);
});

test('a diverging run ends as diverged at the epoch, with no snapshot of the broken weights', async () => {
  const r = await run({ optimizer: { name: 'sgd', learningRate: 1e37, momentum: 0.9 }, epochs: 3 });
  assert.equal(r.outcome.status, 'diverged');
  assert.deepEqual(r.outcome, { status: 'diverged', epoch: 0, divergedAtEpoch: 1 });
  assert.deepEqual(r.epochs.map((s) => s.epoch), [0]);
  assert.ok(r.epochs[0]!.weights.every((t) => t.values.every(Number.isFinite)));
});

test('early stopping options validate; a dataset without a validation split is rejected by name', () => {
  const base = { epochs: 3, optimizer: { name: 'sgd', learningRate: 0.1 } };
  assert.equal(TrainingSpec.parse(base).earlyStopping, undefined);
  assert.deepEqual(TrainingSpec.parse({ ...base, earlyStopping: { patience: 3 } }).earlyStopping, { patience: 3, minDelta: 0 });
  assert.match(trainingIssues({ ...base, earlyStopping: { patience: 0 } }), /earlyStopping\.patience/);
  assert.match(trainingIssues({ ...base, earlyStopping: { patience: 2, mindelta: 1 } }), /earlyStopping: Unrecognized key: "mindelta"/);
  assert.throws(
    () => validateExperiment({
      name: 'x', models: [{ name: 'mlp' }], datasets: [{ name: 'fashion-mnist', validationSplit: 0 }],
      training: { ...base, earlyStopping: { patience: 2 } },
    }, 'x.yaml', { models: new Set(['mlp']), datasets: new Set(['fashion-mnist']) }),
    /datasets\.0\.validationSplit: training\.earlyStopping needs a validation split > 0, found 0/,
  );
});

test('normalisation: statistics from the training split only, hand-computed, applied to any split', () => {
  // Two examples of 2x1 pixels with 2 channels (channels last): channel 0 = 1, 3, 5, 7; channel 1 = 2, 2, 2, 2.
  const train: Split = { x: Float32Array.of(1, 2, 3, 2, 5, 2, 7, 2), y: Int32Array.of(0, 1), n: 2 };
  const perChannel = normalizationFromSplit(train, 2, 'per-channel');
  assert.deepEqual(perChannel.mean, [4, 2]);
  // Channel 0: deviations -3, -1, 1, 3 -> variance 5. Channel 1 is constant: std 1, so it is only centred.
  assert.deepEqual(perChannel.std, [Math.sqrt(5), 1]);
  const global = normalizationFromSplit(train, 2, 'global');
  assert.deepEqual(global.mean, [3]);
  // Values 1,2,3,2,5,2,7,2 about 3: 4+1+0+1+4+1+16+1 = 28, over 8.
  assert.deepEqual(global.std, [Math.sqrt(28 / 8)]);
  const other: Split = { x: Float32Array.of(4, 2, 4 + Math.sqrt(5), 3), y: Int32Array.of(0), n: 1 };
  normalizeSplit(other, perChannel);
  // float32 storage: 4 + sqrt(5) is rounded, hence the tolerance on the third value.
  Array.from(other.x).forEach((v, i) => assert.ok(Math.abs(v - [0, 0, 1, 1][i]!) < 1e-6, `value ${i}: ${v}`));
  normalizeSplit(train, perChannel);
  const ch0 = [0, 2, 4, 6].map((i) => train.x[i]!);
  assert.ok(Math.abs(ch0.reduce((a, b) => a + b, 0)) < 1e-6 && Math.abs(ch0.reduce((a, b) => a + b * b, 0) / 4 - 1) < 1e-6);
});

test('label noise replaces round(fraction n) training labels from the run seed and reports the realised fraction', () => {
  const n = 1000;
  const train: Split = { x: new Float32Array(n), y: Int32Array.from({ length: n }, (_, i) => i % 10), n };
  const a = withLabelNoise(train, 0.3, 10, 7);
  const b = withLabelNoise(train, 0.3, 10, 7);
  const c = withLabelNoise(train, 0.3, 10, 8);
  assert.deepEqual(a.split.y, b.split.y, 'same seed, same noise');
  assert.notDeepEqual(a.split.y, c.split.y, 'another seed, other noise');
  assert.equal(a.record.replaced, 300);
  const changed = a.split.y.reduce((k, y, i) => k + (y !== train.y[i] ? 1 : 0), 0);
  assert.equal(a.record.changed, changed);
  assert.equal(a.record.realisedFraction, changed / n);
  // A uniform draw keeps the old label one time in ten: about 270 of the 300 change.
  assert.ok(changed > 230 && changed <= 300, `changed ${changed}`);
  assert.ok(a.split.y.every((y) => y >= 0 && y < 10));
  assert.deepEqual(Array.from(train.y.slice(0, 12)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1], 'the input labels are untouched');
  assert.equal(withLabelNoise(train, 0, 10, 7).record.changed, 0);
  assert.throws(() => withLabelNoise(train, 1.5, 10, 7), /labelNoise: expected a fraction in \[0, 1\], found 1.5/);
});

test('dataset options validate with the field named; old files keep no normalisation and no noise', () => {
  assert.deepEqual(DatasetSpec.parse({ name: 'mnist' }), { name: 'mnist', validationSplit: 0.1 });
  assert.deepEqual(DatasetSpec.parse({ name: 'mnist', normalize: 'per-channel', labelNoise: 0.2 }).labelNoise, 0.2);
  const issues = (d: unknown) => describeIssues(DatasetSpec.safeParse(d).error!);
  assert.match(issues({ name: 'mnist', normalize: 'zscore' }), /normalize: .*"none"\|"global"\|"per-channel"/);
  assert.match(issues({ name: 'mnist', labelNoise: 2 }), /labelNoise: Too big/);
  assert.match(issues({ name: 'mnist', labelNoiseValidation: true }), /labelNoiseValidation: expected labelNoise > 0 to apply to the validation labels, found none/);
  assert.equal(DatasetSpec.parse({ name: 'mnist', labelNoise: 0.5, labelNoiseValidation: true }).labelNoiseValidation, true);
  // Sources are recorded in the history, lineage and report: no credentials or tokens, and never echoed.
  for (const [source, why] of [
    ['https://reader:s3cret@mirror.example/mnist/', /sources\.1: expected no user or password in a source URL/],
    ['https://mirror.example/mnist/?token=s3cret', /sources\.1: expected no query or fragment in a source URL/],
    ['https://mirror.example/mnist/#s3cret', /sources\.1: expected no query or fragment in a source URL/],
  ] as const) {
    const said = issues({ name: 'mnist', sources: ['file:///data/mnist/', source] });
    assert.match(said, why);
    assert.ok(!said.includes('s3cret'), said);
  }
  assert.deepEqual(DatasetSpec.parse({ name: 'mnist', sources: ['https://mirror.example/mnist/'] }).sources, ['https://mirror.example/mnist/']);
});

test('frozen layers keep their weights; batch norm among them is frozen (running statistics too) or trainable; resume is exact', async () => {
  const shape: [number, number, number] = [8, 8, 1];
  const cnnData: TrainData = { train: synthetic(96, 4, shape), val: synthetic(32, 5, shape), inputShape: shape, numClasses: CLASSES };
  const cnnRun = async (overrides: Partial<TrainArgs> & Pick<TrainArgs, 'epochs'>) => {
    const model = buildModel({ name: 'cnn', args: { batchNorm: true, filters: [4, 4, 4], hidden: 8 } }, { inputShape: shape, numClasses: CLASSES });
    const states: TrainState[] = [];
    try {
      const r = await train({
        model, data: cnnData, batchSize: 32, seed: 5, optimizer: { name: 'sgd', learningRate: 0.1, momentum: 0.9 },
        onEpoch: async (s) => { states.push(s); }, ...overrides,
      });
      return { ...r, states };
    } finally {
      model.dispose();
    }
  };
  const byName = (ts: NamedTensor[], key: string) => bits(ts.filter((t) => `${t.layer}/${t.name}` === key));
  const changed = (r: { states: TrainState[] }, key: string) =>
    JSON.stringify(byName(r.states[0]!.weights, key)) !== JSON.stringify(byName(r.states.at(-1)!.weights, key));

  const frozenBn = await cnnRun({ epochs: 2, freeze: { layers: ['conv*', 'bn1', 'bn2', 'bn3'], batchNorm: 'frozen' } });
  for (const key of ['conv1/kernel', 'conv3/bias', 'bn1/gamma', 'bn1/moving_mean', 'bn2/moving_variance']) assert.equal(changed(frozenBn, key), false, `${key} is frozen`);
  for (const key of ['fc1/kernel', 'fc2/bias', 'bn4/gamma', 'bn4/moving_mean']) assert.equal(changed(frozenBn, key), true, `${key} trains`);

  const trainableBn = await cnnRun({ epochs: 2, freeze: { layers: ['conv*', 'bn1', 'bn2', 'bn3'], batchNorm: 'trainable' } });
  for (const key of ['conv1/kernel', 'conv2/kernel']) assert.equal(changed(trainableBn, key), false, `${key} is frozen`);
  for (const key of ['bn1/gamma', 'bn1/moving_mean', 'bn3/moving_variance']) assert.equal(changed(trainableBn, key), true, `${key} trains`);

  // `except`: only the classifier trains (fine-tuning); batch norm frozen with the rest.
  const head = await cnnRun({ epochs: 1, freeze: { except: ['fc2'], batchNorm: 'frozen' } });
  for (const key of ['conv1/kernel', 'bn4/moving_mean', 'fc1/kernel']) assert.equal(changed(head, key), false, `${key} is frozen`);
  assert.equal(changed(head, 'fc2/kernel'), true, 'fc2 trains');
  await assert.rejects(cnnRun({ epochs: 1, freeze: { except: ['head'], batchNorm: 'frozen' } }), /freeze\.except: "head" matches no layer/);

  const first = await cnnRun({ epochs: 1, freeze: { layers: ['conv*'], batchNorm: 'frozen' } });
  const resumed = await cnnRun({ epochs: 2, freeze: { layers: ['conv*'], batchNorm: 'frozen' }, resume: first.state });
  const full = await cnnRun({ epochs: 2, freeze: { layers: ['conv*'], batchNorm: 'frozen' } });
  assert.deepEqual(bits(resumed.state.weights), bits(full.state.weights));
  assert.deepEqual(bits(resumed.state.optimizer), bits(full.state.optimizer));
  await assert.rejects(cnnRun({ epochs: 1, freeze: { layers: ['dense*'], batchNorm: 'frozen' } }), /freeze\.layers: "dense\*" matches no layer of the model \(layers: conv1, bn1, /);

  assert.deepEqual(TrainingSpec.parse({ epochs: 1, optimizer: { name: 'sgd', learningRate: 0.1 }, freeze: { layers: ['conv*'] } }).freeze, { layers: ['conv*'], batchNorm: 'frozen' });
  assert.match(trainingIssues({ epochs: 1, optimizer: { name: 'sgd', learningRate: 0.1 }, freeze: { layers: ['conv.*'] } }), /freeze\.layers\.0: expected a layer name or a prefix ending in \*/);
  assert.match(trainingIssues({ epochs: 1, optimizer: { name: 'sgd', learningRate: 0.1 }, freeze: { layers: ['x'], batchNorm: 'on' } }), /freeze\.batchNorm/);
  assert.match(trainingIssues({ epochs: 1, optimizer: { name: 'sgd', learningRate: 0.1 }, freeze: { layers: ['x'], except: ['y'] } }), /freeze: expected either "layers" or "except"/);
  assert.match(trainingIssues({ epochs: 1, optimizer: { name: 'sgd', learningRate: 0.1 }, freeze: { batchNorm: 'trainable' } }), /freeze: expected either "layers" or "except"/);
});

test('weights from a snapshot: all or chosen layers; a tensor that does not fit is named', () => {
  const ctx = { inputShape: SHAPE, numClasses: CLASSES };
  const a = buildModel({ name: 'mlp', args: { hidden: [16] } }, ctx);
  const b = buildModel({ name: 'mlp', args: { hidden: [16] } }, ctx);
  const wide = buildModel({ name: 'mlp', args: { hidden: [8] } }, ctx);
  try {
    const source = modelToTensors(a).map((t) => ({ ...t, values: t.values.map((_, i) => i % 7) }));
    const before = modelToTensors(b);
    assert.equal(weightsFromTensors(b, source, ['fc1']), 2);
    const after = modelToTensors(b);
    assert.deepEqual(bits(after.slice(0, 2)), bits(source.slice(0, 2)));
    assert.deepEqual(bits(after.slice(2)), bits(before.slice(2)), 'the output layer keeps its values');
    assert.equal(weightsFromTensors(b, source), 4);
    assert.throws(() => weightsFromTensors(wide, source), (err: Error) => err.name === 'InvalidExperimentError' && /init\.from: fc1\/kernel: expected shape \[36, 8\], found \[36, 16\]/.test(err.message));
    assert.throws(() => weightsFromTensors(b, source, ['conv*']), /init\.from: expected tensors to load, found none in layers conv\*/);
    assert.throws(() => weightsFromTensors(b, [{ ...source[0]!, layer: 'fc9' }]), /the snapshot's fc9\/kernel has no counterpart in the model/);
  } finally {
    a.dispose();
    b.dispose();
    wide.dispose();
  }
  assert.match(trainingIssues({ epochs: 1, optimizer: { name: 'sgd', learningRate: 0.1 }, init: { from: { key: 'k', sha256: 'abc' } } }), /init\.from\.sha256: expected 64 lowercase hex digits/);
  const from = (f: unknown) => trainingIssues({ epochs: 1, optimizer: { name: 'sgd', learningRate: 0.1 }, init: { from: f } });
  assert.match(from({ layers: ['fc1'] }), /init\.from: expected either "key" or "run" \(with "epoch"\), found neither/);
  assert.match(from({ key: 'k', run: 'e/r', epoch: 1 }), /found both/);
  assert.match(from({ run: 'e/r' }), /init\.from\.epoch: expected the epoch of the snapshot of "run"/);
  assert.match(from({ run: 'a/b/c', epoch: 1 }), /init\.from\.run: expected "<experiment id>\/<run name>" or, for a run of this experiment, "<run name>"/);
  // A run of the same experiment: its final weights unless an epoch is given.
  assert.deepEqual(TrainingSpec.parse({ epochs: 1, optimizer: { name: 'sgd', learningRate: 0.1 }, init: { from: { run: 'r' } } }).init.from, { run: 'r' });
  assert.deepEqual(TrainingSpec.parse({ epochs: 1, optimizer: { name: 'sgd', learningRate: 0.1 }, init: { from: { run: 'e/r', epoch: 3 } } }).init.from, { run: 'e/r', epoch: 3 });
});

test('augmentation transforms by hand: flip, crop with padding, rotation by 90 degrees, colour jitter', () => {
  // A 2x3 image with 1 channel: rows [1 2 3], [4 5 6].
  const img = Float32Array.of(1, 2, 3, 4, 5, 6);
  flipImage(img, [2, 3, 1]);
  assert.deepEqual(Array.from(img), [3, 2, 1, 6, 5, 4]);
  // Two channels: pixels swap whole.
  const rgb = Float32Array.of(1, 10, 2, 20);
  flipImage(rgb, [1, 2, 2]);
  assert.deepEqual(Array.from(rgb), [2, 20, 1, 10]);
  // Padding 1, window at (0, 0): shifted one right and down, zeros enter.
  const c = Float32Array.of(1, 2, 3, 4, 5, 6);
  cropImage(c, [2, 3, 1], 1, 0, 0);
  assert.deepEqual(Array.from(c), [0, 0, 0, 0, 1, 2]);
  const same = Float32Array.of(1, 2, 3, 4, 5, 6);
  cropImage(same, [2, 3, 1], 1, 1, 1);
  assert.deepEqual(Array.from(same), [1, 2, 3, 4, 5, 6], 'the centred window is the image');
  // 3x3 rotated 90 degrees counter-clockwise: the top row becomes the left column, read upwards.
  const r = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9);
  rotateImage(r, [3, 3, 1], 90);
  assert.deepEqual(Array.from(r, (v) => Math.round(v * 1e5) / 1e5), [3, 6, 9, 2, 5, 8, 1, 4, 7]);
});

test('augmentation draws from (seed, epoch, index) only; training with it resumes bit for bit', async () => {
  const args = { flip: true, crop: { padding: 2 }, rotation: { degrees: 15 }, colorJitter: { brightness: 0.2, contrast: 0.2, saturation: 0.2 } };
  const base = Float32Array.from({ length: 36 }, (_, i) => i / 36);
  const aug = (epoch: number, index: number) => { const x = base.slice(); augmentExample(x, SHAPE, args, 3, epoch, index); return Array.from(x); };
  assert.deepEqual(aug(1, 5), aug(1, 5));
  assert.notDeepEqual(aug(1, 5), aug(2, 5));
  assert.notDeepEqual(aug(1, 5), aug(1, 6));
  assert.notDeepEqual(aug(1, 5), Array.from(base));

  const optimizer: OptimizerSpec = { name: 'sgd', learningRate: 0.1, momentum: 0.9 };
  const full = await run({ optimizer, epochs: 3, augment: args });
  const first = await run({ optimizer, epochs: 1, augment: args });
  const resumed = await run({ optimizer, epochs: 3, augment: args, resume: first.state });
  assert.deepEqual(bits(resumed.state.weights), bits(full.state.weights));
  const plain = await run({ optimizer, epochs: 3 });
  assert.notDeepEqual(bits(plain.state.weights), bits(full.state.weights), 'augmentation changed training');
  // Epoch 0's metrics and the validation loss are on unaugmented examples: the first epoch-0 losses agree.
  assert.equal(plain.history[0]!.valLoss, full.history[0]!.valLoss);

  assert.equal(TrainingSpec.parse({ epochs: 1, optimizer, augment: { crop: { padding: 4 } } }).augment!.flip, false);
  assert.match(trainingIssues({ epochs: 1, optimizer, augment: { crop: { padding: 0 } } }), /augment\.crop\.padding/);
  assert.match(trainingIssues({ epochs: 1, optimizer, augment: { rotate: 10 } }), /augment: Unrecognized key: "rotate"/);
});

test('every training option in one experiment file parses from YAML to the values the loop takes', () => {
  const yaml = `
name: options
models:
  - name: cnn
    args: { batchNorm: true }
datasets:
  - name: cifar10
    subset: { train: 5000, test: 1000 }
    validationSplit: 0.2
    normalize: per-channel
    labelNoise: 0.2
seeds: [0, 1]
training:
  epochs: 30
  batchSize: 128
  optimizer:
    name: sgd
    learningRate: 0.1
    momentum: 0.9
    nesterov: true
    weightDecay: 0.0005
    schedule: { name: cosine, minLearningRate: 0.001 }
  init:
    kernel: kaiming-normal-fan-out
    bias: { name: uniform, a: 0.01 }
    from: { key: tensors/ab/abcd.arrow, layers: ["conv*"] }
  freeze: { layers: ["conv*", "bn1"], batchNorm: trainable }
  augment:
    flip: true
    crop: { padding: 4 }
    rotation: { degrees: 10 }
    colorJitter: { brightness: 0.2, contrast: 0.2, saturation: 0.2 }
  earlyStopping: { patience: 5, minDelta: 0.001 }
`;
  const config = experimentFromYaml(yaml, 'options.yaml', { models: new Set(['cnn']), datasets: new Set(['cifar10']) });
  assert.deepEqual(config.datasets[0], {
    name: 'cifar10', subset: { train: 5000, test: 1000 }, validationSplit: 0.2, normalize: 'per-channel', labelNoise: 0.2,
  });
  assert.deepEqual(config.training.optimizer, {
    name: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.0005, decoupledWeightDecay: false,
    schedule: { name: 'cosine', minLearningRate: 0.001 },
  });
  assert.deepEqual(config.training.init, { kernel: 'kaiming-normal-fan-out', bias: { name: 'uniform', a: 0.01 }, from: { key: 'tensors/ab/abcd.arrow', layers: ['conv*'] } });
  assert.deepEqual(config.training.freeze, { layers: ['conv*', 'bn1'], batchNorm: 'trainable' });
  assert.deepEqual(config.training.augment, {
    flip: true, crop: { padding: 4 }, rotation: { degrees: 10 }, colorJitter: { brightness: 0.2, contrast: 0.2, saturation: 0.2 },
  });
  assert.deepEqual(config.training.earlyStopping, { patience: 5, minDelta: 0.001 });
});

test('starting from a snapshot, the layers it leaves out get fresh draws, not the seed s own initial ones', async () => {
  const sgd: OptimizerSpec = { name: 'sgd', learningRate: 0.1, momentum: 0, nesterov: false, weightDecay: 0, decoupledWeightDecay: false, schedule: { name: 'constant' } };
  // Epoch 0 of a plain run with seed 3: its initial weights.
  const plain = await run({ optimizer: sgd, epochs: 0 });
  const initial = plain.epochs[0]!.weights;
  // The same seed, starting from those weights for fc1 only: the classifier must not repeat the plain run's.
  const tuned = await run({ optimizer: sgd, epochs: 0, initialWeights: { tensors: initial, layers: ['fc1'] } });
  const start = tuned.epochs[0]!.weights;
  const pick = (ts: readonly NamedTensor[], layer: string) => bits(ts.filter((t) => t.layer === layer && t.name === 'kernel'));
  assert.deepEqual(pick(start, 'fc1'), pick(initial, 'fc1'), 'the loaded layer is the snapshot s');
  assert.notDeepEqual(pick(start, 'out'), pick(initial, 'out'), 'the new head is drawn afresh');
  // And the fresh draws are themselves seeded: the same again gives the same head.
  const again = await run({ optimizer: sgd, epochs: 0, initialWeights: { tensors: initial, layers: ['fc1'] } });
  assert.deepEqual(pick(again.epochs[0]!.weights, 'out'), pick(start, 'out'));
});
