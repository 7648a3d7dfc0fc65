/**
 * The five shipped studies (experiments/s0..s4-*.yaml) at `smoke` size through the real stack: a
 * Temporal dev server, in-process workflow, train and analysis workers on the fastest backend built
 * here, a local store, and Fashion-MNIST from its local copy. Every study completes with every run and
 * every analysis its file asks for present in the result, and its HTML report written; runs that start
 * from another run of the study start from that run's final weights, and a fine-tuning with frozen
 * layers moves the classifier alone.
 *
 * The five experiments are started together and awaited one per test, so the workers stay busy.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LocalStore } from '../../artifacts/local.js';
import { snapshotFromArrow } from '../../artifacts/snapshot.js';
import { distanceTableFromArrow } from '../../artifacts/table.js';
import { experimentFromYaml, expandRuns, perturbationLabel, type ExperimentConfig } from '../../config/experiment.js';
import { comparePairs, runDependencies } from '../../config/grid.js';
import type { ExperimentResult, RunResult } from '../../workflows/types.js';
import { FASHION_MNIST_SOURCES, registries, requireFashionMnist, tempDir } from '../support/fixtures.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const ROOT = join(import.meta.dirname, '..', '..');
const STUDIES = ['s0-depth-residual', 's1-regularisation', 's2-smoothness', 's3-mlp-tricks', 's4-parameter-dynamics'] as const;
type Study = (typeof STUDIES)[number];

/** The study file at smoke size, reading Fashion-MNIST from the local copy only (no network is tried). */
async function loadSmoke(study: Study): Promise<ExperimentConfig> {
  const file = join('experiments', `${study}.yaml`);
  const config = experimentFromYaml(await readFile(join(ROOT, file), 'utf8'), file, registries(), { size: 'smoke' });
  for (const d of config.datasets) {
    assert.equal(d.name, 'fashion-mnist', `${study}: smoke runs on the local Fashion-MNIST`);
    d.sources = FASHION_MNIST_SOURCES;
  }
  return config;
}

describe('the five studies at smoke size on a real Temporal server', () => {
  let stack: TestStack;
  let store: LocalStore;
  const configs = new Map<Study, ExperimentConfig>();
  const results = new Map<Study, Promise<ExperimentResult>>();

  before(async () => {
    requireFashionMnist();
    store = new LocalStore(await tempDir());
    // The native backend when it is built (as the cpu size assumes), else the fastest JS backend.
    stack = await startTestStack({ name: 'studies', deps: { store, backend: 'auto' }, trainSlots: 2 });
    for (const study of STUDIES) {
      const config = await loadSmoke(study);
      configs.set(study, config);
      const result = stack.execute(config, { experimentId: `${study}-${randomUUID().slice(0, 8)}` });
      // Awaited by its test; a rejection before then must not go unhandled.
      result.catch(() => undefined);
      results.set(study, result);
    }
  });

  after(() => stack?.stop());

  async function tensorHashes(ref: { key: string; sha256: string }, layers?: (layer: string) => boolean): Promise<string[]> {
    const snapshot = snapshotFromArrow(await store.get(ref.key, { sha256: ref.sha256 }));
    return snapshot.tensors.filter((t) => !layers || layers(t.layer)).map((t) => `${t.layer}/${t.name}:${t.sha256}`);
  }

  /** Per layer, the distance of the final snapshot to the run's initial weights. */
  async function finalDistances(res: RunResult): Promise<Map<string, number>> {
    const rows = distanceTableFromArrow(await store.get(res.distance.table.key, { sha256: res.distance.table.sha256 }));
    const last = Math.max(...rows.map((r) => r.epoch));
    return new Map(rows.filter((r) => r.against === 'init' && r.epoch === last && r.layer !== '__model__').map((r) => [r.layer, r.distance]));
  }

  /** The study completed, with every analysis its file asks for, per run and across runs, and its report. */
  async function completes(study: Study): Promise<Map<string, RunResult>> {
    const config = configs.get(study)!;
    const result = await results.get(study)!;
    assert.equal(result.status, 'completed', JSON.stringify(result.runs.filter((r) => r.error).map((r) => [r.name, r.error])));
    assert.equal(result.analysisErrors, undefined, JSON.stringify(result.analysisErrors));
    const specs = expandRuns(config);
    assert.deepEqual(result.runs.map((r) => r.name).sort(), specs.map((s) => s.name).sort());
    const a = config.analyses;
    const byName = new Map<string, RunResult>();
    for (const run of result.runs) {
      const res = run.result;
      assert.ok(res, `${study} ${run.name}: its result is in the experiment's result`);
      byName.set(run.name, res);
      assert.equal(res.train.snapshots[0]!.epoch, 0);
      assert.ok(res.distance.rows > 0, `${run.name}: distances`);
      assert.ok(res.plot.figures.length > 0, `${run.name}: figures`);
      const got = res.analyses ?? {};
      if (a.correlation || a.smoothness) assert.equal(got.features?.examples, a.probe.size, `${run.name}: probe features`);
      if (a.correlation) assert.ok(got.correlation && got.correlation.meanAbs >= 0 && got.correlation.meanAbs <= 1, `${run.name}: correlation`);
      else assert.equal(got.correlation, undefined);
      if (a.smoothness) assert.ok(got.smoothness && got.smoothness.layers.length > 0, `${run.name}: smoothness`);
      else assert.equal(got.smoothness, undefined);
      if (a.reinit) assert.ok(got.reinit, `${run.name}: reinit`);
      else assert.equal(got.reinit, undefined);
      if (a.perturb) {
        assert.deepEqual(got.perturb?.map((p) => p.label), a.perturb.perturbations.map(perturbationLabel), `${run.name}: perturbations`);
        for (const p of got.perturb!) assert.equal(p.train.snapshots.at(-1)!.epoch, a.perturb.epochs, `${run.name} ${p.label}: retrained`);
      } else assert.equal(got.perturb, undefined);
      // A run that starts from another run of the study starts from that run's final weights.
      for (const dep of runDependencies(specs.find((s) => s.name === run.name)!)) {
        const source = result.runs.find((r) => r.name === dep)!.result!;
        const layers = specs.find((s) => s.name === run.name)!.training.init.from!.layers;
        const loaded = (layer: string) => !layers || layers.some((p) => (p.endsWith('*') ? layer.startsWith(p.slice(0, -1)) : layer === p));
        assert.deepEqual(await tensorHashes(res.train.snapshots[0]!, loaded), await tensorHashes(source.train.final, loaded), `${run.name}: epoch 0 is ${dep}'s final weights`);
      }
    }
    if (a.compare) {
      const pairs = comparePairs(config, specs);
      assert.ok(pairs.length > 0);
      assert.deepEqual(result.compare?.length, pairs.length, `${study}: compared pairs`);
    } else assert.equal(result.compare, undefined);
    if (a.aggregate) assert.ok(result.aggregate, `${study}: the gathered depth profile`);
    assert.ok(result.report, `${study}: report: ${JSON.stringify(result.reportError)}`);
    assert.ok(existsSync(result.report.path), `${study}: report at ${result.report.path}`);
    assert.match(await readFile(result.report.path, 'utf8'), /<html/i);
    return byName;
  }

  test('s0-depth-residual: twelve networks with distances, the gathered profile and a report', async () => {
    await completes('s0-depth-residual');
  });

  test('s1-regularisation: the ablation and the fine-tunings, the frozen backbone unmoved', async () => {
    const runs = await completes('s1-regularisation');
    const frozen = await finalDistances([...runs].find(([n]) => n.startsWith('resnet18--finetune-bn-frozen--'))![1]);
    const trainable = await finalDistances([...runs].find(([n]) => n.startsWith('resnet18--finetune-bn-trainable--'))![1]);
    assert.ok(frozen.get('fc')! > 0 && trainable.get('fc')! > 0, 'the new classifier trains');
    for (const [layer, d] of frozen) if (layer !== 'fc') assert.equal(d, 0, `bn-frozen: ${layer} moved`);
    const bn = [...trainable].filter(([l]) => /(^|\.)bn\d/.test(l));
    assert.ok(bn.length > 0 && bn.some(([, d]) => d > 0), 'bn-trainable: batch norm moves');
    for (const [layer, d] of trainable) if (/(^|\.)conv\d$/.test(layer)) assert.equal(d, 0, `bn-trainable: ${layer} moved`);
  });

  test('s2-smoothness: smoothness of every run, the label-noise series applied', async () => {
    const runs = await completes('s2-smoothness');
    for (const [name, res] of runs) {
      const fraction = configs.get('s2-smoothness')!.datasets.find((d) => name.includes(`--${d.label ?? d.name}--`))!.labelNoise ?? 0;
      assert.equal(res.train.data.labelNoise?.fraction ?? 0, fraction, `${name}: label noise`);
    }
  });

  test('s3-mlp-tricks: the nine rows of the write-up', async () => {
    assert.equal((await completes('s3-mlp-tricks')).size, 9);
  });

  test('s4-parameter-dynamics: correlation, compared pairs, perturb-and-retrain, from-trained starts', async () => {
    await completes('s4-parameter-dynamics');
  });
});
