/**
 * The experiment file: validation messages name the field, the grid expands in a fixed order with
 * stable run names, and training variants replace the keys they give and are validated whole.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REGISTRIES } from '../../cli/experiment.js';
import { experimentFromYaml, InvalidExperimentError, validateExperiment } from '../../config/experiment.js';
import { comparePairs, expandRuns, orderByDependencies, packRuns, perturbationLabel } from '../../config/grid.js';

const registries = { models: new Set(['mlp', 'lenet5']), datasets: new Set(['fashion-mnist', 'mnist']) };

const base = {
  name: 'grid',
  models: [{ name: 'mlp' }, { name: 'lenet5', label: 'lenet' }],
  datasets: [{ name: 'fashion-mnist' }, { name: 'mnist' }],
  seeds: [0, 1],
  training: { epochs: 3, optimizer: { name: 'sgd', learningRate: 0.1, momentum: 0.9 } },
};

test('the grid expands models x datasets x seeds in order, with defaults applied', () => {
  const config = validateExperiment(base, 'base', registries);
  const runs = expandRuns(config);
  assert.deepEqual(
    runs.map((r) => r.name),
    [
      'mlp--fashion-mnist--s0', 'mlp--fashion-mnist--s1', 'mlp--mnist--s0', 'mlp--mnist--s1',
      'lenet--fashion-mnist--s0', 'lenet--fashion-mnist--s1', 'lenet--mnist--s0', 'lenet--mnist--s1',
    ],
  );
  assert.equal(runs[0].training.batchSize, 64);
  assert.equal(runs[0].dataset.validationSplit, 0.1);
  assert.deepEqual(runs[0].analyses.distance.p, [1]);
  assert.equal(runs[0].group, 'mlp');
});

test('variants replace the training keys they give, and name the runs', () => {
  const config = validateExperiment(
    {
      ...base,
      models: [{ name: 'mlp' }],
      datasets: [{ name: 'mnist' }],
      seeds: [0],
      variants: [
        { label: 'sgd' },
        { label: 'adam', training: { optimizer: { name: 'adam', learningRate: 0.001 } } },
        { label: 'long', training: { epochs: 10 } },
      ],
    },
    'variants',
    registries,
  );
  const runs = expandRuns(config);
  assert.deepEqual(runs.map((r) => r.name), ['mlp--sgd--mnist--s0', 'mlp--adam--mnist--s0', 'mlp--long--mnist--s0']);
  assert.equal(runs[0].training.optimizer.name, 'sgd');
  // The whole optimizer is replaced: SGD's momentum does not leak into Adam.
  assert.equal(runs[1].training.optimizer.name, 'adam');
  assert.equal(runs[1].training.optimizer.momentum, 0);
  assert.equal(runs[1].training.epochs, 3);
  assert.equal(runs[2].training.epochs, 10);
  assert.equal(runs[2].training.optimizer.learningRate, 0.1);
  assert.equal(runs[2].training.batchSize, 64, 'defaults apply inside a variant');
});

test('a bad variant is refused with its path named', () => {
  assert.throws(
    () => validateExperiment({ ...base, variants: [{ label: 'ok' }, { label: 'bad', training: { epochs: -1 } }] }, 'f.yaml', registries),
    (err: Error) => err instanceof InvalidExperimentError && /variants\.1\.training\.epochs/.test(err.message),
  );
  assert.throws(
    () => validateExperiment({ ...base, variants: [{ label: 'a' }, { label: 'a' }] }, 'f.yaml', registries),
    /two variants share the label "a"/,
  );
});

test('errors name the file and every wrong field at once', () => {
  assert.throws(
    () =>
      validateExperiment(
        { ...base, models: [{ name: 'resnet-9000' }], datasets: [{ name: 'imagenet-22k' }] },
        'study.yaml',
        registries,
      ),
    (err: Error) =>
      /^study\.yaml: invalid experiment/.test(err.message) &&
      /models\.0\.name: unknown model "resnet-9000"/.test(err.message) &&
      /datasets\.0\.name: unknown dataset "imagenet-22k"/.test(err.message),
  );
  assert.throws(() => experimentFromYaml('name: [unclosed', 'broken.yaml', registries), /broken\.yaml: not valid YAML/);
  assert.throws(
    () => validateExperiment({ ...base, models: [{ name: 'mlp' }, { name: 'mlp' }] }, 'f', registries),
    /two models share the label "mlp"/,
  );
});

test('a subset may not ask for more examples than its dataset holds', () => {
  const withSubset = (subset: Record<string, number>) => ({ ...base, datasets: [{ name: 'fashion-mnist', subset }] });
  assert.throws(
    () => validateExperiment(withSubset({ train: 60001, test: 10001 }), 'study.yaml', REGISTRIES),
    (err: Error) =>
      /datasets\.0\.subset\.train: 60001 examples asked, but fashion-mnist has 60000 training examples/.test(err.message) &&
      /datasets\.0\.subset\.test: 10001 examples asked, but fashion-mnist has 10000 test examples/.test(err.message),
  );
  const whole = validateExperiment(withSubset({ train: 60000, test: 10000 }), 'study.yaml', REGISTRIES);
  assert.deepEqual(whole.datasets[0]!.subset, { train: 60000, test: 10000 });
});

test('sizes lay their overrides on the file: mappings merge, lists replace', () => {
  const text = `
name: sized
models: [{ name: mlp, args: { hidden: [64] } }]
datasets: [{ name: mnist, subset: { train: 1000, test: 500 } }]
training: { epochs: 10, optimizer: { name: sgd, learningRate: 0.1 } }
sizes:
  paper: {}
  cpu:
    models: [{ name: mlp, args: { hidden: [8] } }]
    datasets: [{ name: mnist, subset: { train: 100 } }]
    training: { epochs: 2 }
`;
  const cpu = experimentFromYaml(text, 'sized.yaml', registries, { size: 'cpu' });
  assert.equal(cpu.size, 'cpu');
  assert.deepEqual(cpu.models[0].args, { hidden: [8] });
  assert.deepEqual(cpu.datasets[0].subset, { train: 100 });
  assert.equal(cpu.training.epochs, 2);
  assert.equal(cpu.training.optimizer.learningRate, 0.1);
  const paper = experimentFromYaml(text, 'sized.yaml', registries, { size: 'paper' });
  assert.equal(paper.training.epochs, 10);
  assert.deepEqual(paper.models[0].args, { hidden: [64] });
  assert.throws(() => experimentFromYaml(text, 'sized.yaml', registries), /sized\.yaml: this experiment comes in sizes paper, cpu; choose one with --size/);
  assert.throws(() => experimentFromYaml(text, 'sized.yaml', registries, { size: 'gpu' }), /--size gpu: expected one of paper, cpu/);
  const plain = 'name: plain\nmodels: [{ name: mlp }]\ndatasets: [{ name: mnist }]\ntraining: { epochs: 1, optimizer: { name: sgd, learningRate: 0.1 } }\n';
  assert.throws(() => experimentFromYaml(plain, 'plain.yaml', registries, { size: 'cpu' }), /--size cpu: this experiment file has no "sizes"/);
  assert.throws(() => experimentFromYaml(plain + 'sizes: [cpu]\n', 'plain.yaml', registries, { size: 'cpu' }), /sizes: expected a mapping/);
  // A size's own mistake is reported like any other field's.
  const broken = text.replace('training: { epochs: 2 }', 'training: { epochs: -2 }');
  assert.throws(() => experimentFromYaml(broken, 'sized.yaml', registries, { size: 'cpu' }), /training\.epochs/);
});

test('analyses: defaults, perturbation labels, and clear errors', () => {
  const config = validateExperiment({ ...base, models: [{ name: 'mlp' }], datasets: [{ name: 'mnist' }] }, 'a.yaml', registries);
  assert.deepEqual(config.analyses.distance, { p: [1], changed: { atol: 0, rtol: 0 } });
  assert.deepEqual(config.analyses.probe, { size: 1000, pool: 'mean' });
  assert.equal(config.analyses.aggregate, false);
  assert.equal(config.analyses.perturb, undefined);
  const full = validateExperiment(
    {
      ...base,
      models: [{ name: 'mlp', group: 'plain' }],
      datasets: [{ name: 'mnist' }],
      analyses: {
        correlation: {},
        compare: { pairs: 'all' },
        perturb: { perturbations: [{ kind: 'sign-flip' }, { kind: 'offset' }, { kind: 'noise', scale: 0.01 }, { kind: 'reinit-layer', layer: 'dense_1' }] },
        reinit: {},
        smoothness: { trees: 5 },
        aggregate: true,
      },
    },
    'a.yaml',
    registries,
  );
  assert.deepEqual(full.analyses.perturb!.perturbations.map(perturbationLabel), ['sign-flip', 'offset-1e-6', 'noise-0-01', 'reinit-dense-1']);
  assert.equal(full.analyses.correlation!.layer, 'penultimate');
  assert.equal(expandRuns(full)[0].group, 'plain');
  assert.throws(
    () => validateExperiment({ ...base, analyses: { perturb: { perturbations: [{ kind: 'offset', value: 1e-6 }, { kind: 'offset' }] } } }, 'a.yaml', registries),
    /analyses\.perturb\.perturbations: two perturbations share the label "offset-1e-6"/,
  );
  assert.throws(() => validateExperiment({ ...base, analyses: { perturb: { perturbations: [{ kind: 'flip' }] } } }, 'a.yaml', registries), /analyses\.perturb\.perturbations\.0\.kind/);
  assert.throws(() => validateExperiment({ ...base, analyses: { probe: { size: 1 } } }, 'a.yaml', registries), /analyses\.probe\.size/);
});

test('a run may start from another run of the experiment: placeholders, order, and clear errors', () => {
  const config = validateExperiment(
    {
      ...base,
      models: [{ name: 'mlp' }],
      datasets: [{ name: 'mnist' }],
      seeds: [0],
      // The pretrained variant comes first in the grid but must train after the run it starts from.
      variants: [
        { label: 'pretrained', training: { init: { kernel: 'glorot-uniform', bias: 'zeros', from: { run: '{model}--scratch--{dataset}--s{seed}' } } } },
        { label: 'scratch' },
      ],
    },
    'deps.yaml',
    registries,
  );
  const runs = expandRuns(config);
  assert.equal(runs[0].training.init.from!.run, 'mlp--scratch--mnist--s0');
  assert.deepEqual(orderByDependencies(runs).map((r) => r.name), ['mlp--scratch--mnist--s0', 'mlp--pretrained--mnist--s0']);
  const unknown = { ...base, variants: [{ label: 'x', training: { init: { from: { run: 'nope' } } } }] };
  assert.throws(() => validateExperiment(unknown, 'deps.yaml', registries), /starts from "nope", which is not a run of this experiment/);
  const cycle = {
    ...base,
    models: [{ name: 'mlp' }],
    datasets: [{ name: 'mnist' }],
    seeds: [0],
    variants: [
      { label: 'a', training: { init: { from: { run: 'mlp--b--mnist--s0' } } } },
      { label: 'b', training: { init: { from: { run: 'mlp--a--mnist--s0' } } } },
    ],
  };
  assert.throws(() => validateExperiment(cycle, 'deps.yaml', registries), /in a cycle: mlp--a--mnist--s0 -> mlp--b--mnist--s0 -> mlp--a--mnist--s0/);
});

test('compare pairs: same-model by default, explicit names checked, and a cap', () => {
  const config = validateExperiment({ ...base, analyses: { compare: {} } }, 'c.yaml', registries);
  const pairs = comparePairs(config, expandRuns(config));
  // 2 models x 2 datasets, each with 2 seeds: one pair per (model, dataset).
  assert.deepEqual(pairs, [
    ['mlp--fashion-mnist--s0', 'mlp--fashion-mnist--s1'],
    ['mlp--mnist--s0', 'mlp--mnist--s1'],
    ['lenet--fashion-mnist--s0', 'lenet--fashion-mnist--s1'],
    ['lenet--mnist--s0', 'lenet--mnist--s1'],
  ]);
  const all = validateExperiment({ ...base, analyses: { compare: { pairs: 'all' } } }, 'c.yaml', registries);
  assert.equal(comparePairs(all, expandRuns(all)).length, 28);
  assert.throws(() => validateExperiment({ ...base, analyses: { compare: { pairs: 'all', maxPairs: 10 } } }, 'c.yaml', registries), /28 pairs of runs to compare, above maxPairs 10/);
  assert.throws(() => validateExperiment({ ...base, analyses: { compare: { pairs: [['mlp--mnist--s0', 'zzz']] } } }, 'c.yaml', registries), /analyses\.compare\.pairs\.0: "zzz" is not a run/);
});

test('include and exclude pick cells of the grid; dataset labels name repeated datasets', () => {
  const noisy = {
    ...base,
    models: [{ name: 'mlp' }, { name: 'lenet5', label: 'lenet' }],
    datasets: [{ name: 'mnist' }, { name: 'mnist', label: 'mnist-noise-50', labelNoise: 0.5 }],
    seeds: [0],
    variants: [{ label: 'sgd' }, { label: 'adam', training: { optimizer: { name: 'adam', learningRate: 0.001 } } }],
  };
  const excluded = validateExperiment({ ...noisy, exclude: [{ model: 'lenet', dataset: 'mnist-noise-50' }, { variant: 'adam', seed: 0, model: 'mlp' }] }, 'x.yaml', registries);
  assert.deepEqual(expandRuns(excluded).map((r) => r.name), [
    'mlp--sgd--mnist--s0', 'mlp--sgd--mnist-noise-50--s0',
    'lenet--sgd--mnist--s0', 'lenet--adam--mnist--s0',
  ]);
  assert.equal(expandRuns(excluded)[1].dataset.labelNoise, 0.5);
  const included = validateExperiment({ ...noisy, include: [{ model: 'mlp', variant: 'adam' }] }, 'x.yaml', registries);
  assert.deepEqual(expandRuns(included).map((r) => r.name), ['mlp--adam--mnist--s0', 'mlp--adam--mnist-noise-50--s0']);
  assert.throws(() => validateExperiment({ ...noisy, exclude: [{ model: 'vgg' }] }, 'x.yaml', registries), /exclude\.0\.model: "vgg" is not a model of this experiment \(mlp, lenet\)/);
  assert.throws(() => validateExperiment({ ...noisy, include: [{}] }, 'x.yaml', registries), /include\.0: expected at least one of model, variant, dataset, seed/);
  assert.throws(() => validateExperiment({ ...noisy, include: [{ seed: 0 }], exclude: [{ seed: 0 }] }, 'x.yaml', registries), /no run of the grid is left/);
  assert.throws(() => validateExperiment({ ...noisy, datasets: [{ name: 'mnist' }, { name: 'mnist' }] }, 'x.yaml', registries), /two datasets share the name "mnist" in run names/);
});

test('runsPerWorkflow packs consecutive runs of one model, dataset and optimiser; a run that starts from another is alone', () => {
  const config = validateExperiment(
    {
      ...base,
      seeds: [0, 1, 2],
      variants: [
        { label: 'sgd' },
        { label: 'adam', training: { optimizer: { name: 'adam', learningRate: 0.001 } } },
        { label: 'warm', training: { init: { kernel: 'glorot-uniform', bias: 'zeros', from: { run: '{model}--sgd--{dataset}--s{seed}' } } } },
      ],
      execution: { runsPerWorkflow: 2 },
    },
    'packs.yaml',
    registries,
  );
  assert.equal(config.execution.runsPerWorkflow, 2);
  const specs = orderByDependencies(expandRuns(config));
  const packs = packRuns(specs, config.execution.runsPerWorkflow);
  // Every run is in exactly one pack, in the grid's order.
  assert.deepEqual(packs.flat(), specs.map((_, i) => i));
  for (const pack of packs) {
    assert.ok(pack.length >= 1 && pack.length <= 2, `a pack of ${pack.length}`);
    const keys = new Set(pack.map((i) => `${specs[i]!.model.name} ${specs[i]!.dataset.name} ${specs[i]!.training.optimizer.name}`));
    assert.equal(keys.size, 1, `one model, dataset and optimiser per pack: ${pack.map((i) => specs[i]!.name).join(', ')}`);
    if (pack.some((i) => specs[i]!.name.includes('--warm--'))) assert.equal(pack.length, 1, 'a run that starts from another run is alone');
  }
  const names = packs.map((p) => p.map((i) => specs[i]!.name));
  assert.deepEqual(names.slice(0, 3), [
    ['mlp--sgd--fashion-mnist--s0', 'mlp--sgd--fashion-mnist--s1'],
    ['mlp--sgd--fashion-mnist--s2'],
    ['mlp--sgd--mnist--s0', 'mlp--sgd--mnist--s1'],
  ]);
  // The default packs nothing.
  assert.ok(packRuns(specs, 1).every((p) => p.length === 1));
  assert.throws(
    () => validateExperiment({ ...base, execution: { runsPerWorkflow: 0 } }, 'packs.yaml', registries),
    /execution\.runsPerWorkflow/,
  );
});

test('a file that would lose or misname runs, or fail once trained, is refused up front', () => {
  const refused = (raw: unknown, message: RegExp) =>
    assert.throws(() => validateExperiment(raw, 'f.yaml', REGISTRIES), (err: Error) => err instanceof InvalidExperimentError && message.test(err.message), String(message));
  const one = { ...base, models: [{ name: 'mlp' }], datasets: [{ name: 'mnist-10k' }] };
  // Two runs of one name would share a workflow and checkpoints: the second would be lost.
  refused({ ...one, seeds: [0, 0] }, /seeds: 0 appears twice/);
  refused({ ...one, models: [{ name: 'mlp', label: 'mlp--wide' }] }, /models\.0\.label: "mlp--wide" holds "--", which separates the parts of run names/);
  // Early stopping with a split that rounds to no example.
  refused({ ...one, datasets: [{ name: 'mnist-10k', subset: { train: 4 } }], training: { ...base.training, earlyStopping: { patience: 1 } } }, /datasets\.0\.validationSplit: training\.earlyStopping needs validation examples, but 0\.1 of 4 training examples is none/);
  // Starting from an epoch the run it starts from never stores.
  const chained = (epoch: number) => ({
    ...one,
    seeds: [0],
    training: { ...base.training, epochs: 4, snapshotEvery: 2 },
    variants: [{ label: 'base' }, { label: 'again', training: { init: { from: { run: '{model}--base--{dataset}--s{seed}', epoch } } } }],
  });
  refused(chained(3), /training\.init\.from\.epoch: run "mlp--again--mnist-10k--s0" starts from epoch 3 of "mlp--base--mnist-10k--s0", which stores its weights at epoch 0, every 2 and its last, 4/);
  refused(chained(9), /starts from epoch 9 of "mlp--base--mnist-10k--s0"/);
  assert.equal(expandRuns(validateExperiment(chained(2), 'f.yaml', REGISTRIES)).length, 2, 'a stored epoch is fine');
  // Another experiment's run is named whole.
  refused({ ...one, training: { ...base.training, init: { from: { run: 'other-exp/{model}--{dataset}--s{seed}', epoch: 1 } } } }, /training\.init\.from\.run: "other-exp\/\{model\}--\{dataset\}--s\{seed\}" names another experiment's run, whose name takes no \{placeholders\}/);
});
