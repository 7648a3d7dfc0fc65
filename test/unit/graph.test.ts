/**
 * Graph-mode training (ml/graph) against eager training (ml/train) on the native backend: from the same
 * initial weights and on the same batches, three graph steps leave the same weights, batch-norm running
 * statistics and optimizer state as three eager steps (variableGrads + the optimizer's apply, as the loop
 * runs them), and report the same losses and counts. Models: an MLP for every activation, LeNet-5, a small
 * ResNet with batch norm and a projection shortcut (also with its stem frozen, batch norm included), and
 * the CNN with batch norm after a dense layer and max-pooling, and a ResNet with a strided projection
 * (whose filter gradient both engines compute around a defective oneDNN kernel, see
 * ml/backends/native.ts); optimizers SGD with momentum, Nesterov and
 * L2 decay, and Adam with decoupled decay. A model with dropout is refused with the reason. The training
 * loop picks the graph on the native backend and ends two epochs where its eager steps end (weights,
 * optimizer state, per-epoch metrics), and falls back to eager steps, saying why, for a dropout model.
 *
 * Tolerance: 1e-4 of the largest magnitude of each tensor (1e-3 for weights after Adam steps, see
 * ADAM_WEIGHT_TOLERANCE). The two runs use the same TensorFlow kernels but not always the same ones
 * (the graph's are fused and reordered by grappler and oneDNN), so results differ by float32 rounding,
 * ~1e-6 after three steps; a wrong gradient, operand, momentum or decay differs by whole percents.
 *
 * Runs only where `npm run setup:native` has built the addon (see test/support/backends.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { NamedTensor } from '../../artifacts/snapshot.js';
import { closeIdleGraphSessions, createGraphTrainer } from '../../ml/graph/trainer.js';
import { buildModel } from '../../ml/models/registry.js';
import { initializeWeights } from '../../ml/train/init.js';
import { eagerStep, evaluate, freezeLayers, train, type FreezeArgs, type TrainArgs, type TrainState } from '../../ml/train/loop.js';
import { createOptimizer, type OptimizerSpec } from '../../ml/train/optimizers.js';
import { modelToTensors, modelVariables } from '../../ml/train/weights.js';
import { activateNativeBackend, nativeTestGuard, randomUniformValues } from '../support/backends.js';

const TOLERANCE = 1e-4;
/**
 * The weights after Adam steps. Adam divides each step by the root of the gradient's running square, so
 * where a gradient is float32 noise its step is still of size ~lr, and the rounding that differs between
 * the two runs' kernels changes its sign or size: on an AVX-512 machine, LeNet-5's fc1 kernel after
 * three steps differed by 1.3e-4 of its largest weight, while every m and v agreed to 1e-5. Still far
 * below what a wrong gradient or decay changes.
 */
const ADAM_WEIGHT_TOLERANCE = 1e-3;
const STEPS = 3;
const BATCH = 6;
const CLASSES = 5;

const native = nativeTestGuard('graph.test');

/** A stride-2 stem (explicit zero padding), then stages of widths 4 and 8: a stride-1 projection shortcut. */
const RESNET = {
  name: 'resnet',
  args: {
    preset: 'resnet18', blocks: [1, 1], width: 4, growth: 'doubling', strides: [1, 1],
    stem: { filters: 4, kernelSize: 3, strides: 2, maxPool: false }, batchNorm: true, activation: 'relu',
  },
};
/** A stride-2 second stage: a strided 1x1 projection shortcut. */
const RESNET_STRIDED = { name: 'resnet', args: { ...RESNET.args, growth: 'constant', strides: [1, 2], stem: { filters: 4, kernelSize: 3, strides: 1, maxPool: false } } };

interface ModelCase {
  name: string;
  spec: { name: string; args: Record<string, unknown> };
  inputShape: [number, number, number];
  freeze?: FreezeArgs;
  /** Optimizers to run (default all). */
  optimizers?: string[];
  /**
   * Tensors left out of the comparison: the bias of a convolution or dense layer just before training-mode
   * batch norm has an exact gradient of zero, so both runs hold float32 noise there.
   */
  noise?: RegExp;
}

const MODELS: ModelCase[] = [
  ...(['sigmoid', 'relu', 'leaky-relu', 'tanh', 'improved-sigmoid'] as const).map((activation) => ({
    name: `mlp ${activation}`,
    spec: { name: 'mlp', args: { hidden: [12, 8], activation } },
    inputShape: [6, 6, 1] as [number, number, number],
  })),
  { name: 'lenet5', spec: { name: 'lenet5', args: {} }, inputShape: [28, 28, 1] },
  { name: 'resnet with batch norm and a projection', spec: RESNET, inputShape: [8, 8, 3] },
  { name: 'resnet with a frozen stem and batch norm', spec: RESNET, inputShape: [8, 8, 3], freeze: { layers: ['conv1', 'bn1'], batchNorm: 'frozen' } },
  { name: 'resnet with a strided projection', spec: RESNET_STRIDED, inputShape: [8, 8, 3] },
  {
    name: 'cnn with batch norm and max-pooling',
    spec: { name: 'cnn', args: { batchNorm: true, filters: [4, 4, 4], hidden: 8 } },
    inputShape: [8, 8, 3],
    // Adam turns the noise of those zero gradients into full-size steps of either sign.
    optimizers: ['sgd momentum nesterov L2'],
    noise: /^(conv\d|fc1)\/bias/,
  },
];

const OPTIMIZERS: Array<{ name: string; spec: OptimizerSpec }> = [
  { name: 'sgd momentum nesterov L2', spec: { name: 'sgd', learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 } },
  { name: 'adam decoupled', spec: { name: 'adam', learningRate: 0.01, weightDecay: 0.1, decoupledWeightDecay: true } },
];

interface Outcome {
  losses: number[];
  correct: number[];
  weights: NamedTensor[];
  optimizer: NamedTensor[];
}

function build(c: ModelCase): tfl.LayersModel {
  const model = buildModel(c.spec, { inputShape: c.inputShape, numClasses: CLASSES });
  initializeWeights(model, 7);
  if (c.freeze) freezeLayers(model, c.freeze);
  return model;
}

function batches(c: ModelCase): Array<{ x: Float32Array; y: Int32Array }> {
  return Array.from({ length: STEPS }, (_, s) => ({
    x: randomUniformValues([BATCH, ...c.inputShape], 100 + s),
    y: Int32Array.from({ length: BATCH }, (_, i) => (i * 3 + s) % CLASSES),
  }));
}

/** Eager steps as the training loop takes them (ml/train/loop.ts eagerStep). */
function eager(c: ModelCase, spec: OptimizerSpec): Outcome {
  const model = build(c);
  const params = modelVariables(model).filter((v) => v.trainable);
  const optimizer = createOptimizer(spec, params);
  const out: Outcome = { losses: [], correct: [], weights: [], optimizer: [] };
  for (const b of batches(c)) {
    const x = tf.tensor4d(b.x, [BATCH, ...c.inputShape]);
    const y = tf.tensor1d(b.y, 'int32');
    const [loss, hits] = eagerStep(model, params.map((p) => p.variable), optimizer, x, y, CLASSES, spec.learningRate);
    tf.dispose([x, y]);
    out.losses.push(loss);
    out.correct.push(hits);
  }
  out.weights = modelToTensors(model);
  out.optimizer = optimizer.state();
  optimizer.dispose();
  model.dispose();
  return out;
}

/** Three graph steps; `reused` says whether the trainer took the session of an earlier trainer of the same graph. */
function graph(c: ModelCase, spec: OptimizerSpec): Outcome & { reused: boolean } {
  const model = build(c);
  const optimizer = createOptimizer(spec, modelVariables(model).filter((v) => v.trainable));
  const choice = createGraphTrainer({ model, optimizer: spec });
  if ('unsupported' in choice) assert.fail(`${c.name}: expected graph mode, refused: ${choice.unsupported}`);
  const trainer = choice.trainer;
  const out = { losses: [] as number[], correct: [] as number[], weights: [] as NamedTensor[], optimizer: [] as NamedTensor[], reused: trainer.reused };
  try {
    trainer.loadFrom(model, optimizer);
    for (const b of batches(c)) {
      const x = tf.tensor4d(b.x, [BATCH, ...c.inputShape]);
      const y = tf.tensor1d(b.y, 'int32');
      const r = trainer.step(x, y, spec.learningRate);
      tf.dispose([x, y]);
      out.losses.push(r.loss);
      out.correct.push(r.correct);
    }
    // Through the eager model and optimizer, as the loop reads them back.
    trainer.readInto(model, optimizer);
    out.weights = modelToTensors(model);
    out.optimizer = optimizer.state();
  } finally {
    trainer.dispose();
    optimizer.dispose();
    model.dispose();
  }
  return out;
}

function assertTensorsClose(actual: NamedTensor[], expected: NamedTensor[], what: string, noise?: RegExp, tolerance = TOLERANCE): void {
  assert.deepEqual(actual.map((t) => `${t.layer}/${t.name}`), expected.map((t) => `${t.layer}/${t.name}`), `${what}: tensor names`);
  expected.forEach((e, i) => {
    const a = actual[i]!;
    if (noise?.test(`${e.layer}/${e.name}`)) return;
    const scale = e.values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    let worst = 0;
    let at = 0;
    for (let k = 0; k < e.values.length; k++) {
      const d = Math.abs(a.values[k]! - e.values[k]!);
      if (!(d <= worst)) [worst, at] = [d, k];
    }
    assert.ok(
      worst <= tolerance * scale,
      `${what} ${e.layer}/${e.name}: expected |graph - eager| <= ${tolerance} * ${scale.toPrecision(4)}, found ${worst} at ${at} (graph ${a.values[at]}, eager ${e.values[at]})`,
    );
  });
}

for (const m of MODELS) {
  for (const o of OPTIMIZERS.filter((o) => !m.optimizers || m.optimizers.includes(o.name))) {
    test(`graph steps equal eager steps: ${m.name}, ${o.name}`, { skip: native.skip }, async () => {
      native.assertBuilt();
      await activateNativeBackend();
      const expected = eager(m, o.spec);
      const before = tf.memory().numTensors;
      const actual = graph(m, o.spec);
      assert.equal(tf.memory().numTensors, before, 'graph training leaked tensors');
      actual.losses.forEach((l, i) => assert.ok(Math.abs(l - expected.losses[i]!) <= TOLERANCE * Math.abs(expected.losses[i]!), `loss of step ${i + 1}: graph ${l}, eager ${expected.losses[i]}`));
      assert.deepEqual(actual.correct, expected.correct, 'examples classified right at each step');
      // The weights moved: a graph that updated nothing would not match eager training that did.
      assertTensorsClose(actual.weights, expected.weights, 'weights', m.noise, o.spec.name === 'adam' ? ADAM_WEIGHT_TOLERANCE : TOLERANCE);
      assertTensorsClose(actual.optimizer, expected.optimizer, 'optimizer state', m.noise);
      if (m.spec.name === 'resnet') {
        const mean = actual.weights.find((t) => t.layer === 'layer1.0.bn1' && t.name === 'moving_mean')!;
        assert.ok(mean.values.some((v) => v !== 0), 'the running mean of a trained batch norm moved');
      }
    });
  }
}

for (const m of MODELS) {
  test(`graph logits are the eager model's in inference mode: ${m.name}`, { skip: native.skip }, async () => {
    native.assertBuilt();
    await activateNativeBackend();
    const spec = OPTIMIZERS.find((o) => !m.optimizers || m.optimizers.includes(o.name))!.spec;
    const model = build(m);
    const optimizer = createOptimizer(spec, modelVariables(model).filter((v) => v.trainable));
    const choice = createGraphTrainer({ model, optimizer: spec });
    if ('unsupported' in choice) assert.fail(`${m.name}: expected graph mode, refused: ${choice.unsupported}`);
    const trainer = choice.trainer;
    const held = tf.tensor4d(randomUniformValues([7, ...m.inputShape], 900), [7, ...m.inputShape]);
    try {
      assert.throws(() => trainer.logits(held), /graph trainer: logits\(\) before load\(\)/);
      trainer.loadFrom(model, optimizer);
      // Trained a few steps first, so batch norm's running statistics are not its initial ones.
      for (const b of batches(m)) {
        const [x, y] = [tf.tensor4d(b.x, [BATCH, ...m.inputShape]), tf.tensor1d(b.y, 'int32')];
        trainer.step(x, y, spec.learningRate);
        tf.dispose([x, y]);
      }
      trainer.readInto(model, optimizer);
      const before = tf.memory().numTensors;
      const actual = trainer.logits(held);
      assert.equal(tf.memory().numTensors, before, 'logits() leaked tensors');
      const logitsOf = (training: boolean) => tf.tidy(() => (model.apply(held, { training }) as tf.Tensor).dataSync() as Float32Array);
      const expected = logitsOf(false);
      assert.equal(actual.length, 7 * CLASSES);
      const scale = expected.reduce((mx, v) => Math.max(mx, Math.abs(v)), 0);
      const worst = actual.reduce((mx, v, i) => Math.max(mx, Math.abs(v - expected[i]!)), 0);
      assert.ok(worst <= TOLERANCE * scale, `|graph - eager| logits: expected <= ${TOLERANCE} * ${scale}, found ${worst}`);
      if (m.spec.args['batchNorm']) {
        // Batch statistics give other logits: the comparison above tells the two modes apart.
        const training = logitsOf(true);
        assert.ok(training.some((v, i) => Math.abs(v - expected[i]!) > 100 * TOLERANCE * scale), 'training-mode logits differ from inference-mode ones');
      }
    } finally {
      held.dispose();
      trainer.dispose();
      optimizer.dispose();
      model.dispose();
    }
  });
}

test('a trainer of the same graph takes the session a disposed one left, and trains exactly as a newly loaded one', { skip: native.skip }, async () => {
  native.assertBuilt();
  await activateNativeBackend();
  const c = MODELS.find((m) => m.name === 'resnet with batch norm and a projection')!;
  const adam = OPTIMIZERS.find((o) => o.name === 'adam decoupled')!.spec;
  closeIdleGraphSessions();
  const fresh = graph(c, adam);
  // Its session now holds the trained weights, batch-norm statistics, Adam's slots and step: all must be replaced.
  const again = graph(c, adam);
  assert.equal(fresh.reused, false, 'the first trainer loads its session');
  assert.equal(again.reused, true, 'the second trainer of the same graph takes the first one\'s session');
  assert.deepEqual(again.losses, fresh.losses, 'losses, bit for bit');
  assert.deepEqual(again.correct, fresh.correct);
  assert.deepEqual(again.weights, fresh.weights, 'weights and batch-norm statistics, bit for bit');
  assert.deepEqual(again.optimizer, fresh.optimizer, 'optimizer state, bit for bit');
  // Another optimizer is another graph: it does not take that session.
  const sgd = OPTIMIZERS.find((o) => o.name === 'sgd momentum nesterov L2')!.spec;
  assert.equal(graph(c, sgd).reused, false, 'a different graph loads its own session');

  // A reused session refuses to train before load(): it still holds the last trainer's variables.
  const model = build(c);
  const choice = createGraphTrainer({ model, optimizer: adam });
  assert.ok('trainer' in choice);
  assert.equal(choice.trainer.reused, true);
  const x = tf.zeros([BATCH, ...c.inputShape]);
  const y = tf.zeros([BATCH], 'int32');
  assert.throws(() => choice.trainer.step(x, y, 0.01), /graph trainer: step\(\) before load\(\)/);
  assert.throws(() => choice.trainer.read(), /graph trainer: read\(\) before load\(\)/);
  tf.dispose([x, y]);
  choice.trainer.dispose();
  model.dispose();
  closeIdleGraphSessions();
});

test('a model with dropout is refused with the reason', { skip: native.skip }, async () => {
  native.assertBuilt();
  await activateNativeBackend();
  const model = buildModel({ name: 'cnn', args: { dropout: 0.3, filters: [4, 4, 4], hidden: 8 } }, { inputShape: [8, 8, 3], numClasses: CLASSES });
  const choice = createGraphTrainer({ model, optimizer: { name: 'sgd', learningRate: 0.1 } });
  assert.ok('unsupported' in choice, 'expected the dropout model to be refused');
  assert.match(choice.unsupported, /layer drop1 \(SeededDropout\).*rate 0, found 0\.3/);
  model.dispose();
});

/** Two epochs of the training loop on 40 random 8x8x3 examples (10 held out), with the given engine. */
async function trainLoop(spec: { name: string; args: Record<string, unknown> }, engine: TrainArgs['engine'], extra: Partial<TrainArgs> = {}, keep?: (model: tfl.LayersModel) => Promise<void>) {
  const split = (n: number, seed: number) => ({
    x: randomUniformValues([n, 8, 8, 3], seed, 0, 1),
    y: Int32Array.from({ length: n }, (_, i) => (i * 7 + seed) % CLASSES),
    n,
  });
  const model = buildModel(spec, { inputShape: [8, 8, 3], numClasses: CLASSES });
  const states: TrainState[] = [];
  const result = await train({
    model,
    data: { train: split(40, 1), val: split(10, 2), inputShape: [8, 8, 3], numClasses: CLASSES },
    epochs: 2,
    batchSize: 16,
    optimizer: { name: 'sgd', learningRate: 0.02, momentum: 0.9 },
    seed: 3,
    engine,
    onEpoch: async (state) => {
      states.push(state);
    },
    ...extra,
  });
  await keep?.(model);
  model.dispose();
  return { ...result, states };
}

test('the training loop trains in graph mode on the native backend, as its eager steps do', { skip: native.skip }, async () => {
  native.assertBuilt();
  await activateNativeBackend();
  const eagerRun = await trainLoop(RESNET, 'eager');
  const graphRun = await trainLoop(RESNET, 'auto');
  assert.deepEqual(eagerRun.engine, { mode: 'eager', reason: "engine 'eager' was asked for" });
  assert.deepEqual(graphRun.engine, { mode: 'graph' });
  assert.deepEqual(graphRun.outcome, eagerRun.outcome);
  assert.equal(graphRun.states.length, 3, 'onEpoch for epochs 0, 1 and 2');
  graphRun.states.forEach((state, i) => {
    assert.equal(state.step, eagerRun.states[i]!.step);
    assertTensorsClose(state.weights, eagerRun.states[i]!.weights, `epoch ${i} weights`);
    assertTensorsClose(state.optimizer, eagerRun.states[i]!.optimizer, `epoch ${i} optimizer state`);
  });
  assert.equal(graphRun.history.length, eagerRun.history.length);
  assert.equal(graphRun.history.length, 3);
  graphRun.history.forEach((h, i) => {
    const e = eagerRun.history[i]!;
    for (const key of ['trainLoss', 'valLoss'] as const) assert.ok(Math.abs(h[key] - e[key]) <= TOLERANCE * Math.abs(e[key]), `epoch ${i} ${key}: graph ${h[key]}, eager ${e[key]}`);
    assert.equal(h.trainAccuracy, e.trainAccuracy, `epoch ${i} train accuracy`);
  });
});

test('the training loop evaluates its test split as training ends, on the best weights under early stopping', { skip: native.skip }, async () => {
  native.assertBuilt();
  await activateNativeBackend();
  const test = { x: randomUniformValues([21, 8, 8, 3], 5, 0, 1), y: Int32Array.from({ length: 21 }, (_, i) => i % CLASSES), n: 21 };
  // A learning rate that overshoots after the first epoch, so the best epoch is not the last.
  const earlyStopping = { patience: 1, minDelta: 0 };
  for (const engine of ['auto', 'eager'] as const) {
    let after: { loss: number; accuracy: number } | undefined;
    const run = await trainLoop(RESNET, engine, { test, earlyStopping, epochs: 4, optimizer: { name: 'sgd', learningRate: 0.5, momentum: 0.9 } }, async (model) => {
      after = await evaluate(model, test, 16);
    });
    assert.equal(run.engine.mode, engine === 'auto' ? 'graph' : 'eager');
    const { outcome } = run;
    assert.ok(outcome.status !== 'diverged' && outcome.bestEpoch !== undefined && outcome.bestEpoch < outcome.epoch, `expected the best epoch before the last, found ${JSON.stringify(outcome)}`);
    assert.ok(run.test, 'test metrics');
    // The eager model evaluated afterwards holds the best weights: the graph's figures are of those too.
    assert.ok(Math.abs(run.test.loss - after!.loss) <= TOLERANCE * after!.loss, `${engine}: test loss ${run.test.loss}, evaluated after ${after!.loss}`);
    assert.equal(run.test.accuracy, after!.accuracy);
  }
  const plain = await trainLoop(RESNET, 'auto');
  assert.equal(plain.test, undefined, 'no test split, no test metrics');
});

test('graph training is bit-identical run to run with the same seed', { skip: native.skip }, async () => {
  native.assertBuilt();
  await activateNativeBackend();
  const [a, b] = [await trainLoop(RESNET_STRIDED, 'auto'), await trainLoop(RESNET_STRIDED, 'auto')];
  assert.deepEqual(a.engine, { mode: 'graph' });
  const last = (r: typeof a) => r.states.at(-1)!;
  assert.equal(last(a).weights.length, last(b).weights.length);
  last(a).weights.forEach((t, i) => assert.deepEqual(t.values, last(b).weights[i]!.values, `${t.layer}/${t.name}`));
  assert.ok(last(a).optimizer.length > 0 && last(a).optimizer.length === last(b).optimizer.length, 'momentum state on both');
  last(a).optimizer.forEach((t, i) => assert.deepEqual(t.values, last(b).optimizer[i]!.values, `optimizer ${t.layer}/${t.name}`));
});

test('the training loop trains a dropout model eagerly and says why', { skip: native.skip }, async () => {
  native.assertBuilt();
  await activateNativeBackend();
  const run = await trainLoop({ name: 'cnn', args: { dropout: 0.3, filters: [4, 4, 4], hidden: 8 } }, 'auto');
  assert.equal(run.engine.mode, 'eager');
  assert.match(run.engine.reason ?? '', /SeededDropout/);
  assert.equal(run.outcome.status, 'completed');
});
