/**
 * Training throughput per tensor backend against native peers: LeNet-5 on 28x28x1 and a narrow ResNet
 * (16 channels throughout, two basic blocks in each of three stages, batch norm, 32x32x3), batch 64, one
 * SGD step of forward, softmax cross-entropy, gradients and update. The peers run the same models, batch
 * and threads: tf.keras from the same TensorFlow wheel the native backend links (.tools/tensorflow/venv,
 * made by `npm run setup:native`) with a tf.function step, and PyTorch in eager mode when
 * `npm run setup:bench` has installed it (.tools/torch/venv).
 *
 * Run: npm run bench:train [-- --seconds S]   (node --import tsx bench/train.ts)
 * Prints images/s (best of three windows, see measure()) for each available backend ('tensorflow' when
 * built, eager and as one graph per step (ml/graph), 'wasm', 'cpu' with paramtrail's kernels) and for each
 * peer, and every row's ratio to each peer.
 * Both TensorFlow runtimes use TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS when set (default: every
 * core), and torch the intra-op count (default: every core); 'wasm' and 'cpu' use one thread.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../ml/backend.js';
import { NATIVE_BACKEND, loadNativeBackend, nativeBuild } from '../ml/backends/native.js';
import { WASM_BACKEND, initWasmBackend } from '../ml/backends/wasm.js';
import { buildModel } from '../ml/models/registry.js';
import { initializeWeights } from '../ml/train/init.js';
import { modelVariables } from '../ml/train/weights.js';
import { createOptimizer } from '../ml/train/optimizers.js';
import { createGraphTrainer } from '../ml/graph/trainer.js';

const BATCH = 64;
const CLASSES = 10;
const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const PEER_PYTHON = join(ROOT, '.tools', 'tensorflow', 'venv', 'bin', 'python');
const TORCH_PYTHON = join(ROOT, '.tools', 'torch', 'venv', 'bin', 'python');

interface Bench {
  name: string;
  inputShape: [number, number, number];
  spec: { name: string; args: Record<string, unknown> };
}

const BENCHES: Bench[] = [
  { name: 'LeNet-5 28x28x1', inputShape: [28, 28, 1], spec: { name: 'lenet5', args: {} } },
  {
    name: 'ResNet-16ch 32x32x3',
    inputShape: [32, 32, 3],
    spec: {
      name: 'resnet',
      args: {
        preset: 'resnet18', block: 'basic', blocks: [2, 2, 2], width: 16, growth: 'constant', strides: [1, 2, 2],
        stem: { filters: 16, kernelSize: 3, strides: 1, maxPool: false }, batchNorm: true, activation: 'relu',
      },
    },
  },
];

/**
 * images/s of `step`: after one warm-up step, the best of three windows of `seconds` / 3 each (at least
 * one step per window: the cpu ResNet takes ~20 s a step). The best window, not the mean, because other
 * processes sharing the cores only ever slow a window down.
 */
function measure(step: () => void, seconds: number): number {
  step();
  let best = 0;
  for (let w = 0; w < 3; w++) {
    let n = 0;
    const t0 = performance.now();
    while (n < 1 || performance.now() - t0 < (seconds * 1000) / 3) {
      step();
      n++;
    }
    best = Math.max(best, (n * BATCH * 1000) / (performance.now() - t0));
  }
  return best;
}

function tfjsImagesPerSecond(bench: Bench, seconds: number): number {
  const model: tfl.LayersModel = buildModel(bench.spec, { inputShape: bench.inputShape, numClasses: CLASSES });
  initializeWeights(model, 1);
  const params = modelVariables(model).filter((v) => v.trainable);
  const sgd = createOptimizer({ name: 'sgd', learningRate: 0.01 }, params);
  const x = tf.randomUniform([BATCH, ...bench.inputShape], -1, 1, 'float32', 1);
  const y = tf.oneHot(tf.tensor1d(Array.from({ length: BATCH }, (_, i) => i % CLASSES), 'int32'), CLASSES);
  const step = () => {
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
        params.map((p) => p.variable),
      );
      sgd.apply(params.map((p) => grads[p.variable.name]!));
      return value;
    });
    // Reading the loss waits for the step to finish on every backend, as the peer's .numpy() does.
    loss.dataSync();
    loss.dispose();
  };
  const rate = measure(step, seconds);
  sgd.dispose();
  tf.dispose([x, y]);
  model.dispose();
  return rate;
}

/**
 * The same step as one TensorFlow session call per batch (ml/graph): the 'tensorflow (graph)' row, what
 * the training loop runs on the native backend when the model has a graph form.
 */
function graphImagesPerSecond(bench: Bench, seconds: number): number | string {
  const model: tfl.LayersModel = buildModel(bench.spec, { inputShape: bench.inputShape, numClasses: CLASSES });
  initializeWeights(model, 1);
  const spec = { name: 'sgd' as const, learningRate: 0.01 };
  const sgd = createOptimizer(spec, modelVariables(model).filter((v) => v.trainable));
  const choice = createGraphTrainer({ model, optimizer: spec });
  if ('unsupported' in choice) {
    sgd.dispose();
    model.dispose();
    return choice.unsupported;
  }
  const trainer = choice.trainer;
  trainer.loadFrom(model, sgd);
  const x = tf.randomUniform([BATCH, ...bench.inputShape], -1, 1, 'float32', 1);
  const y = tf.tensor1d(Array.from({ length: BATCH }, (_, i) => i % CLASSES), 'int32');
  // step() returns the loss as a number: it waits for the step, as the peer's .numpy() does.
  const rate = measure(() => trainer.step(x, y, 0.01), seconds);
  trainer.dispose();
  sgd.dispose();
  tf.dispose([x, y]);
  model.dispose();
  return rate;
}

/** The same two models and step in tf.keras; prints one JSON line of images/s keyed by bench name. */
const PEER_SCRIPT = String.raw`
import json, sys, time, os
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import tensorflow as tf
from tensorflow import keras
L = keras.layers
batch, classes, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
# tfjs-node's binding creates its eager context with default options, so only these variables set its
# thread pools; the peer is given the same counts explicitly.
if os.environ.get('TF_NUM_INTRAOP_THREADS'):
    tf.config.threading.set_intra_op_parallelism_threads(int(os.environ['TF_NUM_INTRAOP_THREADS']))
if os.environ.get('TF_NUM_INTEROP_THREADS'):
    tf.config.threading.set_inter_op_parallelism_threads(int(os.environ['TF_NUM_INTEROP_THREADS']))

def lenet():
    return keras.Sequential([
        L.Conv2D(6, 5, padding='same', activation='relu', input_shape=(28, 28, 1)), L.AveragePooling2D(2, 2),
        L.Conv2D(16, 5, padding='valid', activation='relu'), L.AveragePooling2D(2, 2), L.Flatten(),
        L.Dense(120, activation='relu'), L.Dense(84, activation='relu'), L.Dense(classes)])

def resnet():
    # paramtrail's builder: stride-2 3x3 convolutions pad 1 explicitly, then 'valid'; no conv bias under BN.
    def conv(x, filters, k, s):
        if s == 1 and k % 2 == 1:
            return L.Conv2D(filters, k, s, padding='same', use_bias=False)(x)
        if (k - 1) // 2 > 0:
            x = L.ZeroPadding2D((k - 1) // 2)(x)
        return L.Conv2D(filters, k, s, padding='valid', use_bias=False)(x)
    bn = lambda x: L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    inp = keras.Input((32, 32, 3))
    x = L.ReLU()(bn(conv(inp, 16, 3, 1)))
    cin = 16
    for stride in (1, 2, 2):
        for b in range(2):
            s = stride if b == 0 else 1
            y = L.ReLU()(bn(conv(x, 16, 3, s)))
            y = bn(conv(y, 16, 3, 1))
            sc = bn(conv(x, 16, 1, s)) if (s != 1 or cin != 16) else x
            x = L.ReLU()(L.Add()([y, sc]))
            cin = 16
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(classes)(x))

out = {'tensorflow': tf.__version__, 'intraop': tf.config.threading.get_intra_op_parallelism_threads(),
       'interop': tf.config.threading.get_inter_op_parallelism_threads(), 'rates': {}}
for name, build, shape in (('LeNet-5 28x28x1', lenet, (28, 28, 1)), ('ResNet-16ch 32x32x3', resnet, (32, 32, 3))):
    model = build()
    opt = keras.optimizers.SGD(0.01)
    x = tf.random.uniform((batch,) + shape, -1, 1, seed=1)
    y = tf.one_hot([i % classes for i in range(batch)], classes)
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(y, model(x, training=True)))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss
    step().numpy(); step().numpy()
    best = 0
    for w in range(3):  # best of three windows, as measure() in bench/train.ts
        n, t0 = 0, time.perf_counter()
        while n < 1 or time.perf_counter() - t0 < seconds / 3:
            step().numpy(); n += 1
        best = max(best, n * batch / (time.perf_counter() - t0))
    out['rates'][name] = best
print(json.dumps(out))
`;

/** The same two models and step in PyTorch (NCHW, its default layout); the same JSON line as the keras peer. */
const TORCH_SCRIPT = String.raw`
import json, sys, time, os
import torch
from torch import nn
F = nn.functional
batch, classes, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
# The TensorFlow runtimes use every core unless TF_NUM_INTRAOP_THREADS says otherwise; so does the peer.
torch.set_num_threads(int(os.environ.get('TF_NUM_INTRAOP_THREADS') or os.cpu_count()))
torch.manual_seed(1)
# TensorFlow flushes denormal floats to zero in its kernels; torch does not by default, and the gradients
# of a batch seen over and over shrink into denormals, which the CPU computes ~100x slower.
torch.set_flush_denormal(True)

def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes))

class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else nn.Identity()
    def forward(self, x):
        return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))) + self.sc(x))

def resnet():
    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    for stride in (1, 2, 2):
        layers += [Block(16, 16, stride), Block(16, 16, 1)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes))

out = {'version': torch.__version__, 'threads': torch.get_num_threads(), 'rates': {}}
for name, build, shape in (('LeNet-5 28x28x1', lenet, (1, 28, 28)), ('ResNet-16ch 32x32x3', resnet, (3, 32, 32))):
    model = build().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand((batch,) + shape) * 2 - 1
    y = torch.tensor([i % classes for i in range(batch)])
    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    step(); step()
    best = 0
    for w in range(3):  # best of three windows, as measure() in bench/train.ts
        n, t0 = 0, time.perf_counter()
        while n < 1 or time.perf_counter() - t0 < seconds / 3:
            step(); n += 1
        best = max(best, n * batch / (time.perf_counter() - t0))
    out['rates'][name] = best
print(json.dumps(out))
`;

interface Peer {
  /** The row label. */
  name: string;
  python: string;
  script: string;
  /** What to run when `python` is missing. */
  setup: string;
}

const PEERS: Peer[] = [
  { name: 'tf.keras', python: PEER_PYTHON, script: PEER_SCRIPT, setup: 'npm run setup:native' },
  { name: 'torch', python: TORCH_PYTHON, script: TORCH_SCRIPT, setup: 'npm run setup:bench' },
];

interface PeerResult {
  /** Library version, threads, and images/s keyed by bench name. */
  detail: string;
  rates: Record<string, number>;
}

function runPeer(peer: Peer, seconds: number): PeerResult | string {
  if (!existsSync(peer.python)) return `peer ${peer.name}: unavailable, expected ${peer.python} (run \`${peer.setup}\`)`;
  const r = spawnSync(peer.python, ['-', String(BATCH), String(CLASSES), String(seconds)], { input: peer.script, encoding: 'utf8' });
  const line = r.stdout?.trim().split('\n').pop();
  if (r.status !== 0 || !line) return `peer ${peer.name}: failed (exit ${r.status ?? r.signal}): ${r.stderr?.trim().split('\n').slice(-5).join(' | ')}`;
  const out = JSON.parse(line) as Record<string, unknown> & { rates: Record<string, number> };
  const detail = peer.name === 'tf.keras'
    ? `${out['tensorflow']} (intra-op threads ${out['intraop'] || 'default'}, inter-op ${out['interop'] || 'default'})`
    : `${out['version']} (${out['threads']} threads)`;
  return { detail, rates: out.rates };
}

function parseSeconds(argv: string[]): number {
  const i = argv.indexOf('--seconds');
  if (i < 0) return 10;
  const s = Number(argv[i + 1]);
  if (!(s > 0)) throw new Error(`--seconds: expected a positive number, found ${argv[i + 1]}`);
  return s;
}

async function main(): Promise<void> {
  const seconds = parseSeconds(process.argv.slice(2));
  console.log(`batch ${BATCH}, SGD step, best of 3 windows in ${seconds} s per measurement, ${availableParallelism()} cores`);
  const rows: Array<{ backend: string; bench: string; rate: number }> = [];

  const backends: Array<[string, () => Promise<boolean>]> = [
    [NATIVE_BACKEND, () => loadNativeBackend({ onMissing: (why) => console.log(`backend ${NATIVE_BACKEND}: unavailable, ${why}`) })],
    [WASM_BACKEND, async () => (await initWasmBackend()) === WASM_BACKEND],
    ['cpu', async () => (await initBackend()) === 'cpu'],
  ];
  for (const [name, init] of backends) {
    if (!(await init())) continue;
    const detail = name === NATIVE_BACKEND ? ` (${nativeBuild()?.package}, TensorFlow C library ${nativeBuild()?.tfVersion})` : '';
    console.log(`backend ${name}${detail}`);
    for (const bench of BENCHES) rows.push({ backend: name, bench: bench.name, rate: tfjsImagesPerSecond(bench, seconds) });
    if (name === NATIVE_BACKEND) {
      for (const bench of BENCHES) {
        const rate = graphImagesPerSecond(bench, seconds);
        if (typeof rate === 'string') console.log(`${bench.name}: no graph form (${rate})`);
        else rows.push({ backend: `${name} (graph)`, bench: bench.name, rate });
      }
    }
  }

  const peers: Array<{ name: string; rates: Record<string, number> }> = [];
  for (const peer of PEERS) {
    const result = runPeer(peer, seconds);
    if (typeof result === 'string') {
      console.log(result);
      continue;
    }
    console.log(`peer ${peer.name} ${result.detail}`);
    peers.push({ name: peer.name, rates: result.rates });
    for (const bench of BENCHES) rows.push({ backend: `${peer.name} (peer)`, bench: bench.name, rate: result.rates[bench.name]! });
  }

  const header = peers.map((p) => `vs ${p.name}`.padStart(12)).join('');
  console.log(`\n${'model'.padEnd(22)} ${'backend'.padEnd(20)} ${'images/s'.padStart(9)}${header}`);
  for (const row of rows) {
    const ratios = peers.map((p) => {
      const rate = p.rates[row.bench];
      return (rate ? `${(row.rate / rate).toFixed(2)}x` : '-').padStart(12);
    });
    console.log(`${row.bench.padEnd(22)} ${row.backend.padEnd(20)} ${row.rate.toFixed(0).padStart(9)}${ratios.join('')}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
