/**
 * The model zoo (VGG, ResNet and plain networks, the regularisation-study CNN) and its custom layers:
 * parameter counts against torchvision's, output shapes, layer order by depth, plain = residual minus the
 * shortcuts, a few training steps without leaked tensors, and the seeded dropout, PyTorch-style batch
 * norm and adaptive pooling against hand-computed values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../ml/backend.js';
import { AdaptiveAvgPool2D, BatchNorm, SeededDropout, countTrainableParams, setDropoutStep } from '../../ml/models/layers.js';
import { buildModel, MODELS, type ModelContext } from '../../ml/models/registry.js';
import { RESNET_PRESETS, resolveResNetArgs } from '../../ml/models/resnet.js';
import { initializeWeights } from '../../ml/train/init.js';
import { train, type TrainData } from '../../ml/train/loop.js';
import { modelToTensors, modelVariables } from '../../ml/train/weights.js';
import { deriveRng } from '../../ml/rng.js';

await initBackend();

const imagenet: ModelContext = { inputShape: [224, 224, 3], numClasses: 1000 };
const cifar: ModelContext = { inputShape: [32, 32, 3], numClasses: 10 };
const mnist: ModelContext = { inputShape: [28, 28, 1], numClasses: 10 };

const names = (m: tfl.LayersModel) => m.layers.map((l) => l.name);
const variableNames = (m: tfl.LayersModel) => modelVariables(m).map((v) => `${v.layer}/${v.name}`);

function outputShape(model: tfl.LayersModel, batch: number): number[] {
  return tf.tidy(() => (model.predict(tf.zeros([batch, ...(model.inputs[0]!.shape.slice(1) as number[])])) as tf.Tensor).shape);
}

/** Every layer comes after the layers it reads from: the order analyses plot against depth. */
function assertTopological(model: tfl.LayersModel): void {
  const index = new Map(model.layers.map((l, i) => [l.name, i]));
  for (const layer of model.layers) {
    for (const node of layer.inboundNodes) {
      for (const from of node.inboundLayers) {
        if (!index.has(from.name)) continue; // a Sequential model's implicit input
        assert.ok(index.get(from.name)! < index.get(layer.name)!, `${from.name} should come before ${layer.name}`);
      }
    }
  }
}

test("ImageNet configurations have torchvision's parameter counts (parameters only, not BN running stats)", () => {
  const before = tf.memory().numTensors;
  const cases = [
    { spec: { name: 'resnet', args: { preset: 'torchvision-resnet18' } }, params: 11_689_512, bnChannels: 4_800 },
    { spec: { name: 'resnet', args: { preset: 'torchvision-resnet50' } }, params: 25_557_032, bnChannels: 26_560 },
    { spec: { name: 'vgg', args: { depth: 16 } }, params: 138_357_544, bnChannels: 0 },
    { spec: { name: 'vgg', args: { depth: 19 } }, params: 143_667_240, bnChannels: 0 },
  ];
  for (const c of cases) {
    const model = buildModel(c.spec, imagenet);
    try {
      assert.equal(countTrainableParams(model), c.params, JSON.stringify(c.spec));
      // tfjs also counts the running mean and variance, which PyTorch keeps as buffers.
      assert.equal(model.countParams(), c.params + 2 * c.bnChannels, JSON.stringify(c.spec));
      assert.deepEqual(model.outputs[0]!.shape, [null, 1000]);
    } finally {
      model.dispose();
    }
  }
  assert.equal(tf.memory().numTensors, before);
});

test('VGG of every depth runs on 28x28x1 and 32x32x3, keeps torchvision\'s 7x7 pool, and names layers by block', () => {
  for (const depth of [11, 13, 16, 19]) {
    for (const ctx of [mnist, cifar]) {
      const model = buildModel({ name: 'vgg', args: { depth, widthMultiplier: 1 / 16, classifier: [16], avgPoolTo: 1 } }, ctx);
      assert.deepEqual(outputShape(model, 2), [2, 10]);
      const convs = model.layers.filter((l) => l.getClassName() === 'Conv2D').length;
      const denses = model.layers.filter((l) => l.getClassName() === 'Dense').length;
      // The depth counts torchvision's three dense layers; this narrow classifier has two.
      assert.equal(convs + 3, depth, `vgg${depth}: ${convs} convolutions`);
      assert.equal(denses, 2);
      assertTopological(model);
      model.dispose();
    }
  }
  const vgg11 = buildModel({ name: 'vgg', args: { depth: 11, batchNorm: true, widthMultiplier: 1 / 16, classifier: [8, 8] } }, mnist);
  assert.deepEqual(names(vgg11), [
    'block1_conv1', 'block1_bn1', 'block1_relu1', 'block1_pool',
    'block2_conv1', 'block2_bn1', 'block2_relu1', 'block2_pool',
    'block3_conv1', 'block3_bn1', 'block3_relu1', 'block3_conv2', 'block3_bn2', 'block3_relu2', 'block3_pool',
    'block4_conv1', 'block4_bn1', 'block4_relu1', 'block4_conv2', 'block4_bn2', 'block4_relu2', 'block4_pool',
    'block5_conv1', 'block5_bn1', 'block5_relu1', 'block5_conv2', 'block5_bn2', 'block5_relu2', 'block5_pool',
    'avgpool', 'flatten', 'fc1', 'fc1_relu', 'fc1_dropout', 'fc2', 'fc2_relu', 'fc2_dropout', 'fc3',
  ]);
  // 28 -> 14 -> 7 -> 4 -> 2 -> 1, replicated to 7x7 like torchvision's adaptive pool: fc1 sees 7*7*32 inputs.
  assert.deepEqual(vgg11.getLayer('block5_pool').outputShape, [null, 1, 1, 32]);
  assert.deepEqual(vgg11.getLayer('flatten').outputShape, [null, 7 * 7 * 32]);
  // Width multiplier 1/16: 4, 8, 16, 32 filters; conv biases stay with batch norm, as in torchvision's vggN_bn.
  assert.deepEqual(modelVariables(vgg11).filter((v) => v.name === 'kernel').map((v) => v.shape.at(-1)), [4, 8, 16, 16, 32, 32, 32, 32, 8, 8, 10]);
  assert.deepEqual(variableNames(vgg11).slice(0, 6), [
    'block1_conv1/kernel', 'block1_conv1/bias', 'block1_bn1/gamma', 'block1_bn1/beta', 'block1_bn1/moving_mean', 'block1_bn1/moving_variance',
  ]);
  vgg11.dispose();
});

test('ResNet presets: main-path depth matches each name and outputs are logits per class', () => {
  const depth: Record<string, number> = {
    'torchvision-resnet18': 18, 'torchvision-resnet34': 34, 'torchvision-resnet50': 50, 'torchvision-resnet101': 101,
    resnet18: 18, resnet26: 26, resnet34: 34, resnet50: 50, resnet68: 68, resnet101: 101, resnet12: 12, plain12: 12,
  };
  assert.deepEqual(Object.keys(depth).sort(), [...RESNET_PRESETS].sort());
  for (const preset of RESNET_PRESETS) {
    // Narrow versions of the presets (width 8 and an 8-filter stem) keep the layout and stay cheap.
    const ctx = preset.startsWith('torchvision') ? { inputShape: [64, 64, 3] as [number, number, number], numClasses: 10 } : cifar;
    const model = buildModel({ name: 'resnet', args: { preset, width: 8, stem: { filters: 8 } } }, ctx);
    const weighted = model.layers.filter((l) => ['Conv2D', 'Dense'].includes(l.getClassName()) && !l.name.includes('downsample'));
    assert.equal(weighted.length, depth[preset], preset);
    assert.deepEqual(outputShape(model, 2), [2, 10], preset);
    assert.equal(model.layers.at(-1)!.name, 'fc');
    assert.equal(model.layers.at(-1)!.getConfig()['activation'], 'linear');
    assertTopological(model);
    model.dispose();
  }
});

test('ResNet presets resolve to the networks the studies describe', () => {
  assert.deepEqual(resolveResNetArgs({ preset: 'resnet12' }), {
    block: 'basic', blocks: [1, 1, 1, 1, 1], widths: [4, 8, 16, 32, 64], expansion: 1, strides: [1, 1, 1, 1, 1],
    residual: true, stem: { filters: 4, kernelSize: 4, strides: 2, maxPool: false }, activation: 'relu', batchNorm: false, name: 'resnet12',
  });
  assert.equal(resolveResNetArgs({ preset: 'plain12' }).residual, false);
  const r101 = resolveResNetArgs({ preset: 'resnet101' });
  assert.deepEqual([r101.block, r101.blocks, r101.widths, r101.expansion], ['bottleneck', [3, 4, 23, 3], [128, 128, 128, 128], 1]);
  const tv50 = resolveResNetArgs({ preset: 'torchvision-resnet50' });
  assert.deepEqual([tv50.widths, tv50.expansion, tv50.stem], [[64, 128, 256, 512], 4, { filters: 64, kernelSize: 7, strides: 2, maxPool: true }]);
  // Overriding the stage count keeps the preset's stride pattern, cut or extended with its last entry.
  assert.deepEqual(resolveResNetArgs({ preset: 'resnet18', blocks: [1, 1] }).strides, [1, 2]);
  assert.deepEqual(resolveResNetArgs({ preset: 'resnet18', blocks: [1, 1, 1, 1, 1, 1] }).strides, [1, 2, 2, 2, 2, 2]);
  assert.deepEqual(resolveResNetArgs({ blocks: [1, 1], growth: 'constant', activation: 'tanh' }).widths, [64, 64]);

  // S2's stem: 4x4 stride 2 with PyTorch's padding 1 turns 32x32 into 16x16x4, and no block downsamples.
  const resnet12 = buildModel({ name: 'resnet', args: { preset: 'resnet12' } }, cifar);
  assert.deepEqual(resnet12.getLayer('conv1').outputShape, [null, 16, 16, 4]);
  assert.deepEqual(resnet12.getLayer('layer5.0.act2').outputShape, [null, 16, 16, 64]);
  assert.equal(resnet12.getLayer('conv1').getConfig()['useBias'], true);
  resnet12.dispose();
});

test('ResNet layers are in depth order with torchvision names, shortcut projections beside the block\'s last conv', () => {
  const model = buildModel(
    { name: 'resnet', args: { blocks: [1, 1], width: 4, stem: { filters: 4, kernelSize: 3, strides: 1, maxPool: false } } },
    { inputShape: [8, 8, 3], numClasses: 5 },
  );
  assert.deepEqual(names(model), [
    'input', 'conv1', 'bn1', 'act1',
    'layer1.0.conv1', 'layer1.0.bn1', 'layer1.0.act1', 'layer1.0.conv2', 'layer1.0.bn2', 'layer1.0.add', 'layer1.0.act2',
    'layer2.0.conv1_pad', 'layer2.0.conv1', 'layer2.0.bn1', 'layer2.0.act1', 'layer2.0.conv2', 'layer2.0.downsample.0',
    'layer2.0.bn2', 'layer2.0.downsample.1', 'layer2.0.add', 'layer2.0.act2',
    'avgpool', 'fc',
  ]);
  // Convolutions before batch norm carry no bias (torchvision); the stride-2 block halves 8x8 to 4x4.
  assert.deepEqual(variableNames(model).slice(0, 5), ['conv1/kernel', 'bn1/gamma', 'bn1/beta', 'bn1/moving_mean', 'bn1/moving_variance']);
  assert.deepEqual(model.getLayer('layer2.0.act2').outputShape, [null, 4, 4, 8]);
  assert.deepEqual(modelVariables(model).find((v) => v.layer === 'layer2.0.downsample.0')!.shape, [1, 1, 4, 8]);
  assertTopological(model);
  // Two builds in one process give the same layer and variable names.
  const again = buildModel(
    { name: 'resnet', args: { blocks: [1, 1], width: 4, stem: { filters: 4, kernelSize: 3, strides: 1, maxPool: false } } },
    { inputShape: [8, 8, 3], numClasses: 5 },
  );
  assert.deepEqual(variableNames(again), variableNames(model));
  model.dispose();
  again.dispose();
});

test('a plain network is the residual one with the shortcuts (add and projections) removed, nothing else', () => {
  const pairs: Array<[Record<string, unknown>, Record<string, unknown>]> = [
    [{ preset: 'resnet18', width: 8, stem: { filters: 8 } }, { preset: 'resnet18', width: 8, stem: { filters: 8 }, residual: false }],
    [{ preset: 'resnet26', width: 8, stem: { filters: 8 }, activation: 'tanh' }, { preset: 'resnet26', width: 8, stem: { filters: 8 }, activation: 'tanh', residual: false }],
    [{ preset: 'resnet12' }, { preset: 'plain12' }],
  ];
  for (const [resArgs, plainArgs] of pairs) {
    const res = buildModel({ name: 'resnet', args: resArgs }, cifar);
    const plain = buildModel({ name: 'resnet', args: plainArgs }, cifar);
    const isShortcut = (name: string) => name.includes('.downsample.') || name.endsWith('.add');
    assert.ok(names(res).some(isShortcut) && !names(plain).some(isShortcut), JSON.stringify(resArgs));
    assert.deepEqual(names(plain), names(res).filter((n) => !isShortcut(n)), JSON.stringify(resArgs));
    const shapes = (m: tfl.LayersModel) => modelVariables(m).filter((v) => !isShortcut(v.layer)).map((v) => `${v.layer}/${v.name} ${v.shape.join('x')}`);
    assert.deepEqual(shapes(plain), shapes(res));
    // Same seed, same weights on the shared layers: the shortcuts are what changes the output.
    initializeWeights(res, 7, { kernel: 'kaiming-normal' });
    initializeWeights(plain, 7, { kernel: 'kaiming-normal' });
    const x = tf.tidy(() => tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 3));
    const [a, b] = [res.predict(x) as tf.Tensor, plain.predict(x) as tf.Tensor];
    assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!) > 1e-4, JSON.stringify(resArgs));
    tf.dispose([x, a, b]);
    res.dispose();
    plain.dispose();
  }
});

test('the regularisation-study CNN: 7x7/32, 5x5/64, 3x3/128, dense 512, with optional batch norm and dropout', () => {
  const base = buildModel({ name: 'cnn', args: {} }, mnist);
  assert.deepEqual(names(base), ['conv1', 'relu1', 'pool1', 'conv2', 'relu2', 'pool2', 'conv3', 'relu3', 'pool3', 'flatten', 'fc1', 'relu4', 'fc2']);
  // conv1 7*7*1*32+32, conv2 5*5*32*64+64, conv3 3*3*64*128+128, fc1 (3*3*128)*512+512, fc2 512*10+10.
  assert.equal(base.countParams(), 1_600 + 51_264 + 73_856 + 590_336 + 5_130);
  assert.deepEqual(outputShape(base, 2), [2, 10]);
  base.dispose();

  const full = buildModel({ name: 'cnn', args: { batchNorm: true, dropout: 0.3 } }, cifar);
  assert.deepEqual(names(full), [
    'conv1', 'bn1', 'relu1', 'pool1', 'drop1', 'conv2', 'bn2', 'relu2', 'pool2', 'drop2', 'conv3', 'bn3', 'relu3', 'pool3', 'drop3',
    'flatten', 'fc1', 'bn4', 'relu4', 'drop4', 'fc2',
  ]);
  const bn = 2 * (32 + 64 + 128 + 512);
  const params = 3 * 49 * 32 + 32 + 51_264 + 73_856 + 4 * 4 * 128 * 512 + 512 + 5_130;
  assert.equal(countTrainableParams(full), params + bn);
  assert.equal(full.countParams(), params + 2 * bn);
  assert.ok(full.layers.filter((l) => l instanceof SeededDropout).every((l) => (l as SeededDropout).rate === 0.3));
  full.dispose();
  assert.throws(() => buildModel({ name: 'cnn', args: {} }, { inputShape: [7, 7, 1], numClasses: 2 }), /at least 8x8.*found 7x7/);
});

function randomData(n: number, ctx: ModelContext, seed: number): TrainData {
  const rng = deriveRng(seed, 'zoo-test');
  const size = ctx.inputShape.reduce((a, b) => a * b, 1);
  const split = (m: number) => {
    const x = new Float32Array(m * size);
    for (let i = 0; i < x.length; i++) x[i] = rng.next();
    const y = new Int32Array(m);
    for (let i = 0; i < m; i++) y[i] = rng.int(ctx.numClasses);
    return { x, y, n: m };
  };
  return { train: split(n), val: split(4), inputShape: ctx.inputShape, numClasses: ctx.numClasses };
}

/** Two SGD steps from seed 5; returns the final weights. Checks that no tensor outlives the model. */
async function trainTwoSteps(spec: { name: string; args: Record<string, unknown> }, ctx: ModelContext): Promise<Float32Array[]> {
  const before = tf.memory().numTensors;
  const model = buildModel(spec, ctx);
  const data = randomData(8, ctx, 1);
  const { state, history } = await train({
    model, data, epochs: 1, batchSize: 4, seed: 5, init: { kernel: 'kaiming-uniform' },
    optimizer: { name: 'sgd', learningRate: 0.05, momentum: 0.9 },
    onEpoch: async () => {},
  });
  assert.equal(state.step, 2);
  assert.equal(history.length, 2);
  assert.ok(history.every((h) => Number.isFinite(h.trainLoss) && Number.isFinite(h.valLoss)), JSON.stringify(history));
  const initial = modelToTensors(model).length;
  assert.equal(state.weights.length, initial);
  const weights = state.weights.map((w) => w.values);
  assert.ok(weights.every((w) => w.every(Number.isFinite)));
  model.dispose();
  assert.equal(tf.memory().numTensors, before, `${spec.name}: tensors leaked by building and training`);
  return weights;
}

test('a tiny ResNet and a tiny VGG train two steps with train() without leaking tensors; batch norm statistics move', async () => {
  const resnet = { name: 'resnet', args: { blocks: [1, 1], width: 4, stem: { filters: 4, kernelSize: 3, strides: 1, maxPool: false } } };
  const ctx: ModelContext = { inputShape: [8, 8, 3], numClasses: 3 };
  const model = buildModel(resnet, ctx);
  initializeWeights(model, 5, { kernel: 'kaiming-uniform' });
  const initial = modelToTensors(model);
  model.dispose();
  const trained = await trainTwoSteps(resnet, ctx);
  initial.forEach((t, i) => {
    const moved = t.values.some((v, j) => v !== trained[i]![j]);
    // Every variable moves: kernels, biases and gamma/beta by gradient, moving statistics by the batches.
    assert.ok(moved, `${t.layer}/${t.name} did not change`);
  });

  const vgg = { name: 'vgg', args: { depth: 11, batchNorm: true, widthMultiplier: 1 / 32, classifier: [8], avgPoolTo: 1 } };
  const a = await trainTwoSteps(vgg, cifar);
  const b = await trainTwoSteps(vgg, cifar);
  // Dropout masks come from ml/rng.ts, so two runs agree bit for bit.
  assert.deepEqual(a, b);
  await trainTwoSteps({ name: 'cnn', args: { batchNorm: true, dropout: 0.3, filters: [4, 4, 4], hidden: 8 } }, { inputShape: [16, 16, 1], numClasses: 4 });
});

test('SeededDropout: masks depend on (seed, layer name, step) only, scale survivors, and pass through at inference', () => {
  const layer = new SeededDropout({ name: 'drop', rate: 0.3 });
  const x = tf.ones([50, 200]);
  const run = () => tf.tidy(() => (layer.apply(x, { training: true }) as tf.Tensor).dataSync() as Float32Array).slice();
  layer.step = 4;
  const first = run();
  assert.equal(layer.step, 5);
  const second = run();
  layer.step = 4;
  assert.deepEqual(run(), first);
  assert.notDeepEqual(second, first);
  const kept = first.filter((v) => v !== 0);
  assert.ok(kept.every((v) => Math.abs(v - 1 / 0.7) < 1e-6));
  assert.ok(Math.abs(kept.length / first.length - 0.7) < 0.02, `kept ${kept.length} of ${first.length}`);
  // Another layer name or seed gives another mask.
  const other = new SeededDropout({ name: 'drop_b', rate: 0.3 });
  other.step = 4;
  assert.notDeepEqual(tf.tidy(() => (other.apply(x, { training: true }) as tf.Tensor).dataSync().slice()), first);
  layer.seed = 1;
  layer.step = 4;
  assert.notDeepEqual(run(), first);
  const inference = tf.tidy(() => (layer.apply(x, { training: false }) as tf.Tensor).dataSync().slice());
  assert.ok(inference.every((v) => v === 1));
  assert.equal(layer.step, 5);
  x.dispose();

  const model = buildModel({ name: 'cnn', args: { dropout: 0.3 } }, mnist);
  assert.equal(setDropoutStep(model, 42, 17), 4);
  assert.ok(model.layers.filter((l) => l instanceof SeededDropout).every((l) => (l as SeededDropout).seed === 42 && (l as SeededDropout).step === 17));
  assert.throws(() => setDropoutStep(model, 42, -1), /dropout step: expected a non-negative integer, found -1/);
  model.dispose();
  assert.throws(() => new SeededDropout({ name: 'd', rate: 1 }), /expected a number in \[0, 1\), found 1/);
});

test('BatchNorm follows PyTorch: batch statistics in training, unbiased running variance, momentum 0.1; frozen uses running stats', () => {
  const layer = new BatchNorm({ name: 'bn' });
  // Channel 0 holds 1, 2, 3, 4; channel 1 holds 0, 0, 0, 8 (batch of 4, 1x1 maps).
  const x = tf.tensor4d([1, 0, 2, 0, 3, 0, 4, 8], [4, 1, 1, 2]);
  const y = tf.tidy(() => (layer.apply(x, { training: true }) as tf.Tensor).dataSync().slice());
  const mean = [2.5, 2];
  const biased = [1.25, 12];
  const expected = [1, 0, 2, 0, 3, 0, 4, 8].map((v, i) => (v - mean[i % 2]!) / Math.sqrt(biased[i % 2]! + 1e-5));
  y.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-5, `y[${i}] = ${v}, expected ${expected[i]}`));
  const stats = (): Record<string, number[]> =>
    Object.fromEntries(layer.weights.map((w) => [w.originalName.split('/').pop()!, [...(w.read().dataSync() as Float32Array)]]));
  const after = stats();
  assert.deepEqual(after['moving_mean']!.map((v) => +v.toFixed(6)), [0.25, 0.2]);
  // 0.9 * 1 + 0.1 * unbiased variance (5/3 and 16).
  assert.deepEqual(after['moving_variance']!.map((v) => +v.toFixed(6)), [+(0.9 + 0.1 * 5 / 3).toFixed(6), 2.5]);

  layer.trainable = false;
  assert.equal(layer.trainableWeights.length, 0);
  const frozen = tf.tidy(() => (layer.apply(x, { training: true }) as tf.Tensor).dataSync().slice());
  const [rm, rv] = [after['moving_mean']!, after['moving_variance']!];
  frozen.forEach((v, i) => {
    const e = ([1, 0, 2, 0, 3, 0, 4, 8][i]! - rm[i % 2]!) / Math.sqrt(rv[i % 2]! + 1e-5);
    assert.ok(Math.abs(v - e) < 1e-5, `frozen y[${i}] = ${v}, expected ${e}`);
  });
  assert.deepEqual(stats(), after);
  x.dispose();
  layer.dispose();
});

test("AdaptiveAvgPool2D uses PyTorch's overlapping bins and replicates a 1x1 map", () => {
  const pool = new AdaptiveAvgPool2D({ name: 'pool', outputSize: 2 });
  const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
  // Bins over 3 rows into 2: rows {0, 1} and {1, 2}; the same for columns.
  const y = tf.tidy(() => (pool.apply(x) as tf.Tensor).dataSync().slice());
  assert.deepEqual([...y], [3, 4, 6, 7]);
  // d(sum y)/dx = (row weight) * (column weight), with weights 1/2, 1, 1/2.
  const g = tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(pool.apply(t) as tf.Tensor))(x).dataSync().slice());
  assert.deepEqual([...g], [0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25]);
  const wide = new AdaptiveAvgPool2D({ name: 'wide', outputSize: 7 });
  const one = tf.tensor4d([3, -1], [1, 1, 1, 2]);
  const rep = tf.tidy(() => wide.apply(one) as tf.Tensor);
  assert.deepEqual(rep.shape, [1, 7, 7, 2]);
  assert.ok([...rep.dataSync()].every((v, i) => v === (i % 2 === 0 ? 3 : -1)));
  tf.dispose([x, one, rep]);
});

test('the registry validates zoo arguments and names the field', () => {
  for (const name of ['cnn', 'vgg', 'resnet']) assert.ok(MODELS.has(name), name);
  assert.throws(() => buildModel({ name: 'vgg', args: {} }, cifar), /model\.args\.depth:/);
  assert.throws(() => buildModel({ name: 'vgg', args: { depth: 12 } }, cifar), /model\.args\.depth:/);
  assert.throws(() => buildModel({ name: 'vgg', args: { depth: 11, widht: 2 } }, cifar), /model\.args: .*widht/);
  assert.throws(() => buildModel({ name: 'resnet', args: { preset: 'resnet9000' } }, cifar), /model\.args\.preset:/);
  assert.throws(
    () => buildModel({ name: 'resnet', args: { blocks: [1, 1], strides: [1, 2, 2] } }, cifar),
    /model\.args\.strides: expected one stride per stage \(2\), found 3/,
  );
  assert.throws(() => buildModel({ name: 'resnet', args: { stem: { filter: 3 } } }, cifar), /model\.args\.stem: .*filter/);
  assert.throws(() => buildModel({ name: 'cnn', args: { dropout: 1 } }, cifar), /model\.args\.dropout:/);
});
