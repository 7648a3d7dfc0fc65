/**
 * The `features` activity: runs the probe set through a run's model with a stored snapshot's weights and
 * stores the features of every layer with parameters, and of the classifier's input, in one file
 * (artifacts/features.ts). The correlation, compare and smoothness activities read that file.
 *
 * The probe set is a seeded subset of the dataset's full test split (DATA_SEED, analyses.probe.size),
 * drawn the way loadRunData draws the test subset: a probe no larger than the run's test subset is made
 * of the first examples of the same permutation, so it lies inside the test examples the run reports.
 * It is stored as its own content-addressed object, the same for every run with that dataset and size,
 * so two feature files can be checked to come from the same examples by the probe's sha256. The
 * examples are normalised as the run's inputs are (statistics of the run's training part).
 *
 * Called by the run workflow after training, and re-runnable later on any stored snapshot.
 */
import { Context } from '@temporalio/activity';
import { featuresToArrow, probeToArrow } from '../artifacts/features.js';
import { getSnapshot } from '../artifacts/snapshot.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import type { DatasetSpec } from '../config/experiment.js';
import { selectBackend, type BackendPreference } from '../ml/backend.js';
import { seededSubset, take } from '../ml/data/split.js';
import { buildModel } from '../ml/models/registry.js';
import { modelFeatures } from '../ml/train/features.js';
import { tensorsToModel } from '../ml/train/weights.js';
import { DATA_SEED, loadRunData } from './data.js';
import type { DecodedCacheOptions } from './decoded-cache.js';
import { classify, failForGood } from './errors.js';
import { TABLE_PREFIX, TENSOR_PREFIX } from './keys.js';
import { recordLineage } from './lineage.js';
import type { FeaturesInput, FeaturesResult } from './types.js';

export interface FeaturesDeps {
  store: ArtifactStore;
  /** The backend the forward passes run on; `cpu` when not given. */
  backend?: BackendPreference;
  /** Where this machine keeps decoded datasets between processes; none when omitted. */
  decodedCache?: DecodedCacheOptions;
}

/** What a features attempt reports while it runs. */
export interface FeaturesHeartbeat {
  stage: 'data' | 'features' | 'store';
  /** Probe examples done, of `total`. */
  done: number;
  total: number;
}

/** The run's dataset with the whole test split: the probe indexes into it, whatever the run's test subset. */
function withFullTest(spec: DatasetSpec): DatasetSpec {
  const { subset, ...rest } = spec;
  return subset?.train === undefined ? rest : { ...rest, subset: { train: subset.train } };
}

export function createFeatures(deps: FeaturesDeps) {
  const { store } = deps;
  return async function features(input: FeaturesInput): Promise<FeaturesResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    const { run, snapshot } = input;
    let details: FeaturesHeartbeat = { stage: 'data', done: 0, total: 0 };
    // Decoding a dataset takes a while without batches; the timer keeps the heartbeat going through it.
    const ticker = setInterval(() => ctx.heartbeat(details), 1000);
    try {
      const backend = await selectBackend(deps.backend ?? 'cpu', (note) => ctx.log.info(note));
      const { size, pool } = run.analyses.probe;
      const data = await loadRunData(store, withFullTest(run.dataset), input.data, { signal, runSeed: run.seed, decodedCache: deps.decodedCache });
      const testExamples = data.test.n;
      const indices = seededSubset(testExamples, Math.min(size, testExamples), DATA_SEED);
      const examples = take(data.test, indices);
      if (examples.n < 2) throw failForGood('InvalidExperiment', `analyses.probe: expected at least 2 test examples to probe with, found ${examples.n}`);
      const probe = await putContentAddressed(
        store,
        TABLE_PREFIX,
        probeToArrow({ dataset: run.dataset.name, dataSeed: DATA_SEED, testExamples, indices, labels: examples.y }),
        '.arrow',
        { signal },
      );
      await recordLineage(store, input, probe, 'probe-set', input.data.files, { dataset: run.dataset.name, size: examples.n, dataSeed: DATA_SEED }, signal);

      const model = buildModel(run.model, { inputShape: data.def.inputShape, numClasses: data.def.numClasses });
      try {
        const weights = await getSnapshot(store, snapshot, signal);
        try {
          tensorsToModel(model, weights.tensors);
        } catch (err) {
          throw failForGood('InvalidExperiment', `features: the snapshot at "${snapshot.key}" does not fit model "${run.model.name}" of run ${input.runId}: ${(err as Error).message}`, err);
        }
        details = { stage: 'features', done: 0, total: examples.n };
        const computed = await modelFeatures(model, examples, {
          pool,
          batchSize: run.training.batchSize,
          signal,
          onBatch: (done, total) => {
            details = { stage: 'features', done, total };
            ctx.heartbeat(details);
          },
        });
        details = { stage: 'store', done: examples.n, total: examples.n };
        const layers = computed.layers.map(({ layer, depth, features: f }) => ({ layer, depth, features: f }));
        const p = computed.penultimate;
        const bytes = featuresToArrow({
          runId: input.runId,
          epoch: snapshot.epoch,
          step: snapshot.step,
          probe: probe.sha256,
          pool,
          labels: Float32Array.from(examples.y),
          layers,
          penultimate: p.depth >= 0 ? layers[p.depth]! : { layer: p.layer, depth: -1, features: p.features },
          attrs: { model: run.model.name, dataset: run.dataset.name, seed: String(run.seed), snapshot: snapshot.sha256 },
        });
        const ref = await putContentAddressed(store, TENSOR_PREFIX, bytes, '.arrow', { signal });
        const taken = Object.fromEntries(computed.layers.filter((l) => l.from !== l.layer).map((l) => [l.layer, l.from]));
        await recordLineage(
          store,
          input,
          ref,
          'features',
          [snapshot, ...input.data.files, probe],
          { epoch: snapshot.epoch, pool, examples: examples.n, penultimate: p.layer, postActivation: taken, backend },
          signal,
        );
        return {
          features: ref,
          probe,
          snapshot,
          examples: examples.n,
          layers: computed.layers.map((l) => ({ layer: l.layer, depth: l.depth, features: l.features.cols })),
          penultimate: p.layer,
        };
      } finally {
        model.dispose();
      }
    } catch (err) {
      throw classify(err);
    } finally {
      clearInterval(ticker);
    }
  };
}
