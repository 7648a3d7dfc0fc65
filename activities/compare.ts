/**
 * The `compare` activity: two runs' representations on the same probe set. Linear CKA between every
 * (layer of a, layer of b), stored as a CKA_TABLE for the heatmap; the CKA of same-named layers (the
 * diagonal); and the mean |r| of the cross-correlation of the two penultimate feature sets.
 *
 * Both feature files must come from the same probe set (the same examples in the same order): anything
 * else would compare representations of different inputs, so it fails for good, naming both runs.
 *
 * Called by the experiment workflow for each pair of runs its compare spec names, or, for an experiment
 * of many pairs, `compareBatch` for a batch of them at a time.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { CKA_TABLE, type CkaRow } from '../artifacts/analysis-tables.js';
import type { FeaturesFile, FeaturesLayer } from '../artifacts/features.js';
import { recordsToArrow } from '../artifacts/records.js';
import { lruMemo } from '../artifacts/memo.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import { correlationSummary, crossCorrelation, linearCkaMatrix, matchedCorrelation } from '../ml/metrics/index.js';
import { matchesLayer } from '../ml/train/select.js';
import { loadFeatures, MAX_CORRELATED_FEATURES } from './correlation.js';
import { classify, failForGood } from './errors.js';
import { TABLE_PREFIX } from './keys.js';
import { recordLineage } from './lineage.js';
import { getJson } from './json.js';
import { putResultJson } from './results.js';
import type { CompareBatchInput, CompareBatchResult, CompareBatchRun, CompareInput, CompareOutcome, CompareResult, FeaturesResult } from './types.js';
import type { RunResult } from '../workflows/types.js';

export interface CompareDeps {
  store: ArtifactStore;
}

function selected(layers: FeaturesLayer[], patterns: string[] | undefined): FeaturesLayer[] {
  return patterns ? layers.filter((l) => patterns.some((p) => matchesLayer(p, l.layer))) : layers;
}

function probeMismatch(input: CompareInput, probeA: string, probeB: string): string {
  return (
    `compare: expected the features of ${input.a.name} (${input.a.runId}) and ${input.b.name} (${input.b.runId}) on the same probe set; ` +
    `found probe ${probeA} and probe ${probeB} (a different dataset or analyses.probe.size)`
  );
}

/** Guards the d x d Grams: an unpooled convolution map would need gigabytes. */
function checkWidth(side: string, layers: FeaturesLayer[]): void {
  const wide = layers.find((l) => l.features.cols > MAX_CORRELATED_FEATURES);
  if (wide) {
    throw failForGood(
      'InvalidExperiment',
      `compare: layer ${wide.layer} of ${side} has ${wide.features.cols} features, expected at most ${MAX_CORRELATED_FEATURES} (pool: mean, or leave the layer out with analyses.compare.layers)`,
    );
  }
}

/** Loads a run's features file; a batch of pairs shares each run's among its pairs. */
type LoadFeatures = (features: FeaturesResult) => Promise<FeaturesFile>;

/** One pair: the CKA table stored with its lineage, and the summary numbers. */
async function comparePair(store: ArtifactStore, input: CompareInput, load: LoadFeatures, heartbeat: (stage: string) => void, signal: AbortSignal): Promise<CompareResult> {
  // The refs say which probe each file came from: a mismatch fails before anything is downloaded.
  if (input.a.features.probe.sha256 !== input.b.features.probe.sha256) {
    throw failForGood('InvalidExperiment', probeMismatch(input, input.a.features.probe.sha256, input.b.features.probe.sha256));
  }
  heartbeat('load');
  const a = await load(input.a.features);
  const b = await load(input.b.features);
  // And the files themselves, which is what the numbers are computed from.
  if (a.probe !== b.probe || a.probe !== input.a.features.probe.sha256) {
    throw failForGood('InvalidExperiment', probeMismatch(input, a.probe, b.probe));
  }
  const la = selected(a.layers, input.layers);
  const lb = selected(b.layers, input.layers);
  if (la.length === 0 || lb.length === 0) {
    const none = la.length === 0 ? input.a : input.b;
    const all = (la.length === 0 ? a : b).layers.map((l) => l.layer);
    throw failForGood('InvalidExperiment', `analyses.compare.layers: expected [${input.layers!.join(', ')}] to match layers of ${none.name} (${all.join(', ')}); found none`);
  }
  checkWidth(input.a.name, la);
  checkWidth(input.b.name, lb);

  heartbeat('cka');
  signal.throwIfAborted();
  const cka = linearCkaMatrix(la.map((l) => l.features), lb.map((l) => l.features));
  const rows: CkaRow[] = [];
  la.forEach((x, i) => lb.forEach((y, j) => rows.push({ layerA: x.layer, depthA: x.depth, layerB: y.layer, depthB: y.depth, cka: cka[i * lb.length + j]! })));
  const diagonal = la.flatMap((x, i) => {
    const j = lb.findIndex((y) => y.layer === x.layer && y.depth === x.depth);
    return j < 0 ? [] : [{ layer: x.layer, depth: x.depth, cka: cka[i * lb.length + j]! }];
  });

  heartbeat('cross-correlation');
  signal.throwIfAborted();
  const pa = a.penultimate.features;
  const pb = b.penultimate.features;
  checkWidth(input.a.name, [a.penultimate]);
  checkWidth(input.b.name, [b.penultimate]);
  // The bins do not enter the mean; one bin keeps the summary's histogram trivial.
  const cross = crossCorrelation(pa, pb);
  const penultimateMeanAbs = correlationSummary(cross, 1).meanAbs;
  const penultimateMatched = matchedCorrelation(cross).mean;

  const meta = {
    runA: input.a.runId,
    runB: input.b.runId,
    nameA: input.a.name,
    nameB: input.b.name,
    probe: a.probe,
    penultimateA: a.penultimate.layer,
    penultimateB: b.penultimate.layer,
    penultimateMeanAbs: String(penultimateMeanAbs),
    penultimateMatched: String(penultimateMatched),
  };
  const table = await putContentAddressed(store, TABLE_PREFIX, recordsToArrow(CKA_TABLE, rows, meta), '.arrow', { signal });
  await recordLineage(
    store,
    input,
    table,
    'cka-table',
    [input.a.features.features, input.b.features.features, input.a.features.probe],
    { runA: input.a.runId, runB: input.b.runId, layers: input.layers ?? null },
    signal,
  );
  return { a: input.a.name, b: input.b.name, table, diagonal, penultimateMeanAbs, penultimateMatched };
}

export function createCompare(deps: CompareDeps) {
  return async function compare(input: CompareInput): Promise<CompareResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    try {
      return await comparePair(deps.store, input, (f) => loadFeatures(deps.store, f, signal), (stage) => ctx.heartbeat({ stage }), signal);
    } catch (err) {
      throw classify(err);
    }
  };
}

/** Features files a batch keeps loaded at once, the last used: pairs come in order, so a run's pairs mostly follow one another. */
const FEATURES_KEPT = 16;
/** Pair errors a batch's result names; the stored outcomes have them all. */
const BATCH_ERRORS_NAMED = 20;

/** A batch's run, with where its probe features are: the features themselves, or its stored result's reference. */
function runOf(input: CompareBatchInput, i: number): CompareBatchRun {
  const run = input.runs[i];
  if (!run) throw failForGood('InvalidExperiment', `compareBatch: a pair names run ${i}, expected one of the ${input.runs.length} runs listed`);
  return run;
}

/**
 * `compareBatch`: many pairs in one call, as `compare` compares each, for an experiment with more pairs
 * than its history or result could hold one activity and one result apiece. Each run's features file
 * is read once however many of the batch's pairs it is in (a few kept at once), and a run's stored
 * result is read here rather than through the workflow. A pair that cannot be compared for good (a run
 * without probe features, different probe sets, no matching layers) is recorded with its error and
 * the others go on; anything else fails the call, to be retried (the tables are content-addressed, so
 * a retry writes the same objects). The outcomes, in pair order, go to the store as one JSON object
 * (`CompareOutcome[]`), which the report and the CLI read.
 */
export function createCompareBatch(deps: CompareDeps) {
  return async function compareBatch(input: CompareBatchInput): Promise<CompareBatchResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    try {
      const load: LoadFeatures = lruMemo(FEATURES_KEPT, (f) => f.features.sha256, (f) => loadFeatures(deps.store, f, signal));
      // The features of runs whose results are stored, each result read once (and not kept).
      const stored = new Map<string, Promise<FeaturesResult | undefined>>();
      const featuresOfRun = (run: CompareBatchRun): Promise<FeaturesResult | undefined> => {
        if (run.features || !run.resultRef) return Promise.resolve(run.features);
        const ref = run.resultRef;
        let p = stored.get(ref.sha256);
        if (!p) {
          p = getJson<RunResult>(deps.store, ref.key, { sha256: ref.sha256, signal }).then((r) => r.analyses?.features);
          stored.set(ref.sha256, p);
        }
        return p;
      };

      const outcomes: CompareOutcome[] = [];
      const errors: CompareBatchResult['errors'] = [];
      for (const [k, [i, j]] of input.pairs.entries()) {
        const ra = runOf(input, i);
        const rb = runOf(input, j);
        ctx.heartbeat({ pair: k, of: input.pairs.length });
        let outcome: CompareOutcome;
        try {
          const fa = await featuresOfRun(ra);
          const fb = await featuresOfRun(rb);
          if (!fa || !fb) throw failForGood('InvalidExperiment', `${!fa ? ra.name : rb.name} has no probe features (it failed or diverged in its first epoch)`);
          const pair: CompareInput = { experimentId: input.experimentId, runId: input.runId, a: { runId: ra.runId, name: ra.name, features: fa }, b: { runId: rb.runId, name: rb.name, features: fb }, layers: input.layers };
          outcome = { compared: await comparePair(deps.store, pair, load, (stage) => ctx.heartbeat({ pair: k, of: input.pairs.length, stage }), signal) };
        } catch (err) {
          const failure = classify(err);
          if (!(failure instanceof ApplicationFailure) || !failure.nonRetryable) throw failure;
          outcome = { a: ra.name, b: rb.name, error: failure.message };
          if (errors.length < BATCH_ERRORS_NAMED) errors.push({ a: ra.name, b: rb.name, message: failure.message });
        }
        outcomes.push(outcome);
      }
      const failed = outcomes.filter((o) => 'error' in o).length;
      return { outcomes: await putResultJson(deps.store, outcomes), pairs: outcomes.length, failed, errors };
    } catch (err) {
      throw classify(err);
    }
  };
}
