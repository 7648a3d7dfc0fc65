/**
 * `run --dry-run`'s plan on a store that holds nothing yet: every run trains, for the reason the run
 * itself would have, and a dataset not stored yet is listed with what it would download. (That a stored
 * training is found exactly as a run finds it, and refused when altered, is test/e2e/cli.test.ts, on
 * runs trained by a real worker.)
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalStore } from '../../artifacts/local.js';
import { formatPlan, LIST_RUNS_UP_TO, planExperiment } from '../../cli/plan.js';
import { REGISTRIES } from '../../cli/experiment.js';
import { validateExperiment } from '../../config/experiment.js';
import { DATASETS } from '../../ml/data/datasets.js';
import { tempDir } from '../support/fixtures.js';

const base = {
  name: 'plan-test',
  models: [{ name: 'mlp', args: { hidden: [8] } }],
  datasets: [{ name: 'fashion-mnist', subset: { train: 200, test: 100 } }],
  training: { epochs: 1, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.1 } },
  variants: [{ label: 'base' }, { label: 'again', training: { init: { from: { run: '{model}--base--{dataset}--s{seed}' } } } }],
  seeds: [0, 1],
  analyses: { compare: { pairs: 'same-model' } },
};

test('on an empty store every run trains, a run starting from another trains after it, and nothing is written', async () => {
  const root = join(await tempDir(), 'store');
  const plan = await planExperiment(validateExperiment(base, 'plan.yaml', REGISTRIES), new LocalStore(root));
  assert.equal(existsSync(root), false, 'the plan wrote nothing');
  assert.deepEqual(plan.totals, { runs: 4, train: 4, reuse: 0 });
  assert.equal(plan.workflows, 4);
  assert.equal(plan.comparePairs, 6);
  const fashionBytes = DATASETS.get('fashion-mnist')!.files.reduce((n, f) => n + f.bytes!, 0);
  assert.deepEqual(plan.datasets, [{ dataset: 'fashion-mnist', stored: false, downloadBytes: fashionBytes }]);
  assert.deepEqual(
    plan.runs.map((r) => [r.run, r.action, r.reason]),
    [
      ['mlp--base--fashion-mnist--s0', 'train', 'fashion-mnist is not in the store yet'],
      ['mlp--base--fashion-mnist--s1', 'train', 'fashion-mnist is not in the store yet'],
      ['mlp--again--fashion-mnist--s0', 'train', 'starts from mlp--base--fashion-mnist--s0, which trains first'],
      ['mlp--again--fashion-mnist--s1', 'train', 'starts from mlp--base--fashion-mnist--s1, which trains first'],
    ],
  );
  assert.match(plan.codeVersion, /^\d+\.\d+\.\d+\+/);

  const text = formatPlan(plan);
  assert.equal(text[0], 'plan-test: 4 runs, 4 to train, 0 to reuse');
  assert.match(text[2]!, /^ {2}datasets: fashion-mnist to download \(31 MB\)$/);
  assert.equal(text.at(-1), 'nothing was started');
  assert.ok(text.includes('mlp--again--fashion-mnist--s1  train: starts from mlp--base--fashion-mnist--s1, which trains first'), text.join('\n'));
});

test('--force trains every run, and a large grid is summarised by model and dataset', async () => {
  const seeds = Array.from({ length: LIST_RUNS_UP_TO + 1 }, (_, i) => i);
  const config = validateExperiment({ ...base, variants: undefined, analyses: {}, seeds, execution: { runsPerWorkflow: 10 } }, 'plan.yaml', REGISTRIES);
  const plan = await planExperiment(config, new LocalStore(join(await tempDir(), 'store')), { force: true });
  assert.equal(plan.force, true);
  assert.equal(plan.workflows, 11, '101 runs of one cell in packs of 10');
  assert.ok(plan.runs.every((r) => r.action === 'train' && r.reason === '--force'));
  const text = formatPlan(plan);
  assert.equal(text[0], `plan-test: ${seeds.length} runs, ${seeds.length} to train, 0 to reuse (--force)`);
  assert.ok(text.includes(`mlp--fashion-mnist  ${seeds.length} runs: ${seeds.length} to train, 0 to reuse`), text.join('\n'));
  assert.equal(text.length, 4 + 1 + 2, 'the header, one cell, the note and the last line');
});
