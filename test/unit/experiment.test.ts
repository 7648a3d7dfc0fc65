/**
 * The experiment file: validation messages name the field, the grid expands in a fixed order with
 * stable run names, and training variants replace the keys they give and are validated whole.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { experimentFromYaml, InvalidExperimentError, validateExperiment } from '../../config/experiment.js';
import { expandRuns } from '../../config/grid.js';

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
  assert.deepEqual(runs[0].distance.p, [1]);
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
