/**
 * The model registry: parameter counts, output shapes, layer names in depth order, argument validation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../ml/backend.js';
import { MODELS, buildModel } from '../../ml/models/registry.js';
import { buildLeNet5Model } from '../../ml/models/lenet.js';
import { buildMlpModel } from '../../ml/models/mlp.js';
import { modelToTensors } from '../../ml/train/weights.js';

await initBackend();
const mnistLike = { inputShape: [28, 28, 1] as [number, number, number], numClasses: 10 };

function outputShape(model: ReturnType<typeof buildModel>, batch: number): number[] {
  return tf.tidy(() => (model.predict(tf.zeros([batch, ...model.inputs[0]!.shape.slice(1)] as number[])) as tf.Tensor).shape);
}

test('LeNet-5 has 61,706 parameters on 28x28x1 with 10 classes and outputs logits per class', () => {
  const model = buildLeNet5Model({ activation: 'relu' }, mnistLike);
  assert.equal(model.countParams(), 61_706);
  assert.deepEqual(outputShape(model, 3), [3, 10]);
  assert.deepEqual(model.layers.map((l) => l.name), ['conv1', 'pool1', 'conv2', 'pool2', 'flatten', 'fc1', 'fc2', 'fc3']);
  assert.equal(model.layers.at(-1)!.getConfig()['activation'], 'linear');
  model.dispose();
});

test('LeNet-5 adapts to other input shapes and class counts', () => {
  const model = buildModel({ name: 'lenet5', args: { activation: 'tanh' } }, { inputShape: [32, 32, 3], numClasses: 7 });
  assert.deepEqual(outputShape(model, 2), [2, 7]);
  assert.equal(model.layers[0]!.getConfig()['activation'], 'tanh');
  // conv1 456, conv2 2,416, fc1 (6*6*16)*120+120, fc2 10,164, fc3 84*7+7.
  assert.equal(model.countParams(), 456 + 2416 + 576 * 120 + 120 + 10_164 + 595);
  model.dispose();
});

test('the default MLP is 784-64-10 sigmoid with 50,890 parameters', () => {
  const model = buildModel({ name: 'mlp', args: {} }, mnistLike);
  assert.equal(model.countParams(), 50_890);
  assert.deepEqual(outputShape(model, 4), [4, 10]);
  assert.deepEqual(model.layers.map((l) => l.name), ['flatten', 'fc1', 'out']);
  assert.equal(model.layers[1]!.getConfig()['activation'], 'sigmoid');
  assert.equal(model.layers[2]!.getConfig()['activation'], 'linear');
  model.dispose();
});

test('MLP hidden layers are named fc1..fcN in depth order', () => {
  const model = buildMlpModel({ hidden: [60, 60, 32], activation: 'relu' }, mnistLike);
  assert.deepEqual(model.layers.map((l) => l.name), ['flatten', 'fc1', 'fc2', 'fc3', 'out']);
  assert.equal(model.countParams(), 784 * 60 + 60 + 60 * 60 + 60 + 60 * 32 + 32 + 32 * 10 + 10);
  assert.deepEqual(
    modelToTensors(model).map((t) => `${t.layer}/${t.name}`),
    ['fc1/kernel', 'fc1/bias', 'fc2/kernel', 'fc2/bias', 'fc3/kernel', 'fc3/bias', 'out/kernel', 'out/bias'],
  );
  model.dispose();
});

test('MLP activations: leaky ReLU and the improved sigmoid 1.7159 tanh(2x/3) by hand, same parameters for every activation', () => {
  const x = tf.tensor2d([[-3, -0.5, 0, 0.5, 3]]);
  const expected = {
    'leaky-relu': [-0.03, -0.005, 0, 0.5, 3],
    'improved-sigmoid': [-3, -0.5, 0, 0.5, 3].map((v) => 1.7159 * Math.tanh((2 * v) / 3)),
  } as const;
  for (const activation of ['leaky-relu', 'improved-sigmoid'] as const) {
    const model = buildMlpModel({ hidden: [5], activation }, { inputShape: [1, 5, 1], numClasses: 2 });
    assert.deepEqual(model.layers.map((l) => l.name), ['flatten', 'fc1', 'fc1_act', 'out']);
    assert.deepEqual(modelToTensors(model).map((t) => `${t.layer}/${t.name}`), ['fc1/kernel', 'fc1/bias', 'out/kernel', 'out/bias']);
    const act = model.getLayer('fc1_act');
    const y = tf.tidy(() => Array.from((act.apply(x) as tf.Tensor).dataSync()));
    y.forEach((v, i) => assert.ok(Math.abs(v - expected[activation][i]!) < 1e-6, `${activation}(${x.dataSync()[i]}) = ${v}, expected ${expected[activation][i]}`));
    model.dispose();
  }
  // f(1) = 1 is the point of LeCun's constants.
  assert.ok(Math.abs(1.7159 * Math.tanh(2 / 3) - 1) < 1e-4);
  x.dispose();
  assert.throws(() => MODELS.get('mlp')!.argsSchema.parse({ activation: 'swish' }), /activation/);
});

test('two models built in one process keep the same short variable names', () => {
  const a = buildModel({ name: 'lenet5', args: {} }, mnistLike);
  const b = buildModel({ name: 'lenet5', args: {} }, mnistLike);
  const names = (m: typeof a) => modelToTensors(m).map((t) => `${t.layer}/${t.name}`);
  assert.deepEqual(names(b), names(a));
  assert.equal(names(a)[0], 'conv1/kernel');
  a.dispose();
  b.dispose();
});

test('every model builds its kernels as zeros, for the seeded initialisers to fill', () => {
  const small: Record<string, Record<string, unknown>> = {
    mlp: {}, lenet5: {}, cnn: { batchNorm: true }, resnet: { preset: 'resnet18', blocks: [1, 1], width: 4 },
    vgg: { depth: 11, widthMultiplier: 0.125, classifier: [16], avgPoolTo: 1 },
  };
  assert.deepEqual(Object.keys(small).sort(), [...MODELS.keys()].sort(), 'every registered model is checked');
  for (const [name, args] of Object.entries(small)) {
    const model = buildModel({ name, args }, { inputShape: [32, 32, 3], numClasses: 10 });
    const kernels = modelToTensors(model).filter((t) => t.name === 'kernel');
    assert.ok(kernels.length > 0, `${name}: has kernels`);
    for (const k of kernels) assert.ok(k.values.every((v) => v === 0), `${name} ${k.layer}/kernel: expected zeros, found a drawn value`);
    model.dispose();
  }
});

test('buildModel rejects unknown models and invalid arguments, naming the field', () => {
  assert.deepEqual([...MODELS.keys()].sort(), ['cnn', 'lenet5', 'mlp', 'resnet', 'vgg']);
  assert.throws(() => buildModel({ name: 'resnet9000', args: {} }, mnistLike), /model\.name: unknown model "resnet9000": expected one of lenet5, mlp, cnn, vgg, resnet/);
  assert.throws(() => buildModel({ name: 'lenet5', args: { activation: 'gelu' } }, mnistLike), /model\.args\.activation:/);
  assert.throws(() => buildModel({ name: 'mlp', args: { hidden: [64, 0] } }, mnistLike), /model\.args\.hidden\[1\]:/);
  assert.throws(() => buildModel({ name: 'mlp', args: { widht: 3 } }, mnistLike), /model\.args: .*widht/);
});
