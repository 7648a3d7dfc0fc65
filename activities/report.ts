/**
 * The `report` activity: at the end of an experiment, draws the experiment-level figures (validation
 * accuracy of all runs, the gathered depth profile, a CKA heatmap per compared pair, perturbation norms
 * and smoothness across runs), stores each as SVG and PNG under `experiments/<experiment id>/figures/`,
 * reads every run's figures (Differences and its analyses) from the store, and stores the
 * self-contained HTML report at `experiments/<experiment id>/report.html`. Called by
 * `experimentWorkflow` on the analysis queue; `paramtrail report` prints or copies what it stored.
 */
import { Context } from '@temporalio/activity';
import { CKA_TABLE, DEPTH_PROFILE_TABLE } from '../artifacts/analysis-tables.js';
import { mapLimit } from '../artifacts/concurrency.js';
import { recordsFromArrow } from '../artifacts/records.js';
import type { ObjectRef } from '../artifacts/refs.js';
import type { ArtifactStore } from '../artifacts/store.js';
import type { ExperimentConfig } from '../config/experiment.js';
import { expandRuns, type RunSpec } from '../config/grid.js';
import {
  accuracyFigureSpec,
  ckaFigureSpec,
  depthProfileFigureSpec,
  perturbationNormsFigureSpec,
  pairMatrixFigureSpec,
  lastLayerSmoothnessFigureSpec,
  smoothnessFigureSpec,
  type AccuracyPoint,
  type PerturbationNormsPoint,
  type SmoothnessPoint,
} from '../report/figures.js';
import { reportToHtml, type HtmlArtifact, type HtmlFigure, type HtmlFinal, type HtmlPair, type HtmlRun } from '../report/html.js';
import { renderSvg, svgToPng, type VegaLiteSpec } from '../report/render.js';
import { ALL_GROUP } from './aggregate.js';
import { classify } from './errors.js';
import { getJson } from './json.js';
import { experimentPrefix, reportKey } from './keys.js';
import { recordLineage } from './lineage.js';
import { codeVersion } from './version.js';
import { figureTitle } from './plot.js';
import { loadCompareOutcomes, loadRuns } from './results.js';
import type { AggregateResult, CompareBatchResult, CompareResult, DistanceResult, PlotResult, RunAnalysesResult, TrainResult } from './types.js';
import type { SummaryChunk } from '../workflows/types.js';

export interface ReportDeps {
  store: ArtifactStore;
}

/** What the report needs of a run's result (a `RunResult` has all of it). */
export interface ReportRunResult {
  train: TrainResult;
  distance: DistanceResult;
  plot: PlotResult;
  analyses?: RunAnalysesResult;
}

/** A run as the experiment workflow tracks it; only refs and numbers, never the objects themselves. */
export interface ReportRunSource {
  name: string;
  runId: string;
  stage: string;
  error?: { type?: string; message: string };
  result?: ReportRunResult;
  /** Where the result is stored when the workflow moved it out of its state (read when `result` is absent). */
  resultRef?: ObjectRef;
}

export interface ReportInput {
  experimentId: string;
  /** The experiment's progress or result. */
  result: {
    name: string;
    store: string;
    status?: string;
    runs: ReportRunSource[];
    /** The runs before `runs`, in the store (an experiment of many runs). */
    chunks?: SummaryChunk[];
    /** Pairs of runs compared by CKA and feature correlation (analyses.compare). */
    compare?: CompareResult[];
    /** Or, for an experiment of many pairs, the batches whose outcomes are in the store. */
    compareBatches?: Array<Pick<CompareBatchResult, 'outcomes'>>;
    /** The gathered depth profile (analyses.aggregate). */
    aggregate?: AggregateResult;
    /** Experiment-level analyses that failed. */
    analysisErrors?: Array<{ analysis: string; message: string }>;
  };
  /** Each run's spec, matched to its run by name, for the config shown in the report. */
  specs?: RunSpec[];
  /** Instead of `specs`, when they would not fit in the input: the experiment's config, expanded here. */
  config?: ExperimentConfig;
  /** The runs, first in order, whose figures are drawn in the page and whose every artifact is listed (default DETAILED_RUNS). */
  detailedRuns?: number;
}

/**
 * Runs drawn in full. Each run's figures are a few hundred kilobytes to megabytes of SVG (a deep network
 * over many epochs), and a page holds at most 512 MB of text: past these, a run's figures are named by
 * their stored paths and its artifacts cut to its final weights and distance table, so a grid of
 * thousands of runs still gets its report.
 */
export const DETAILED_RUNS = 100;

export interface ReportResult extends ObjectRef {
  /** Where a person opens it: a file path for the local store, an s3:// URL otherwise. */
  path: string;
}

/** Experiment-level figures: `experiments/<experiment id>/figures/<name>`, beside the report. */
export function experimentFigureKey(experimentId: string, name: string): string {
  return `${experimentPrefix(experimentId)}/figures/${name}`;
}

/** Stored results the report reads at once, and in one window (what it holds of them at a time). */
const READS_AT_ONCE = 8;
const READ_WINDOW = 256;

/** Heatmaps an experiment of many pairs (compared in batches) draws: those of its first pairs. */
const MAX_HEATMAPS = 50;

const artifact = (label: string, ref: ObjectRef): HtmlArtifact => ({ label, key: ref.key, sha256: ref.sha256, bytes: ref.bytes });

/** A run's artifacts in the page: all of them, or (past its detailed runs) its final weights and distance table. */
function runArtifacts(res: ReportRunResult, detailed: boolean): HtmlArtifact[] {
  const final = artifact(`final weights (epoch ${res.train.final.epoch})`, res.train.final);
  const distance = artifact('distance table', res.distance.table);
  if (!detailed) return [final, distance];
  const artifacts: HtmlArtifact[] = res.train.snapshots.map((s) => artifact(`snapshot epoch ${s.epoch}`, s));
  if (!res.train.snapshots.some((s) => s.key === res.train.final.key)) artifacts.push(final);
  artifacts.push(distance);
  const a = res.analyses ?? {};
  if (a.features) artifacts.push(artifact('probe features', a.features.features), artifact('probe set', a.features.probe));
  if (a.correlation) artifacts.push(artifact(`correlation table (${a.correlation.layer})`, a.correlation.table));
  if (a.reinit) artifacts.push(artifact('re-initialisation table', a.reinit.table));
  if (a.smoothness) artifacts.push(artifact('smoothness table', a.smoothness.table));
  for (const o of a.perturb ?? []) {
    artifacts.push(artifact(`${o.label}: perturbed weights`, o.perturb.perturbed), artifact(`${o.label}: retrained weights`, o.train.final), artifact(`${o.label}: norms table`, o.norms.table));
  }
  for (const f of res.plot.figures) artifacts.push(artifact(`figure ${figureTitle(f.p)} (${f.format})`, f));
  return artifacts;
}

/**
 * The row of S3's table: the last epoch trained, or early stopping's best epoch, whose weights the run
 * kept. Epoch 0 (the initial weights evaluated) is not a result of training and is never chosen.
 */
export function finalOf(train: TrainResult): HtmlFinal | undefined {
  const trained = train.history.filter((h) => h.epoch > 0);
  if (trained.length === 0) return undefined;
  const last = trained.at(-1)!;
  const best = train.bestEpoch === undefined ? undefined : trained.find((h) => h.epoch === train.bestEpoch);
  const row = best ?? last;
  return {
    epoch: row.epoch,
    epochs: last.epoch,
    best: best !== undefined && best.epoch !== last.epoch,
    trainLoss: row.trainLoss,
    valLoss: row.valLoss,
    trainAccuracy: row.trainAccuracy,
    valAccuracy: row.valAccuracy,
  };
}

/** Mean of the finite values; NaN when there is none. */
function finiteMean(values: number[]): number {
  const finite = values.filter((v) => Number.isFinite(v));
  return finite.length ? finite.reduce((s, v) => s + v, 0) / finite.length : NaN;
}

/** A name safe in a store key: letters, digits, dot, dash and underscore. */
const keySafe = (text: string) => text.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'x';

export function createReport(deps: ReportDeps) {
  return async function report(input: ReportInput): Promise<ReportResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    try {
      const experimentId = input.experimentId;
      const producer = { experimentId, runId: '' };
      const get = (ref: ObjectRef) => deps.store.get(ref.key, { sha256: ref.sha256, signal });
      const inputs: ObjectRef[] = [];
      /** Renders, stores as SVG and PNG with lineage, and returns the figure for the page. */
      const draw = async (name: string, title: string, spec: VegaLiteSpec, from: ObjectRef[]): Promise<HtmlFigure> => {
        ctx.heartbeat({ figure: name });
        const svg = await renderSvg(spec);
        const svgRef = await deps.store.put(experimentFigureKey(experimentId, `${name}.svg`), new TextEncoder().encode(svg), { contentType: 'image/svg+xml', signal });
        const pngRef = await deps.store.put(experimentFigureKey(experimentId, `${name}.png`), svgToPng(svg), { contentType: 'image/png', signal });
        for (const [ref, format] of [[svgRef, 'svg'], [pngRef, 'png']] as const) {
          await recordLineage(deps.store, producer, ref, 'figure', from, { format, figure: name }, signal);
        }
        inputs.push(svgRef, pngRef);
        return { title, svg, path: deps.store.locate(svgRef.key) };
      };

      const specs = new Map((input.specs ?? (input.config ? expandRuns(input.config) : [])).map((s) => [s.name, s]));
      const runs: HtmlRun[] = [];
      const history: AccuracyPoint[] = [];
      const norms: PerturbationNormsPoint[] = [];
      const normTables: ObjectRef[] = [];
      const smoothness: SmoothnessPoint[] = [];
      const smoothnessTables: ObjectRef[] = [];
      const all = await loadRuns(deps.store, input.result, signal);
      // Results moved to the store (a grid's thousands, on S3) are read a window at a time, a few at once.
      const read = async (from: number): Promise<Array<ReportRunResult | undefined>> => {
        ctx.heartbeat({ run: from });
        return mapLimit(all.slice(from, from + READ_WINDOW), READS_AT_ONCE, async (r) =>
          r.result ?? (r.resultRef ? getJson<ReportRunResult>(deps.store, r.resultRef.key, { sha256: r.resultRef.sha256, signal }) : undefined),
        );
      };
      let window: Array<ReportRunResult | undefined> = [];
      for (const [i, r] of all.entries()) {
        if (i % READ_WINDOW === 0) window = await read(i);
        const res = window[i % READ_WINDOW];
        if (r.resultRef && !r.result) inputs.push(r.resultRef);
        const spec = specs.get(r.name);
        const detailed = i < (input.detailedRuns ?? DETAILED_RUNS);
        const figures: HtmlFigure[] = [];
        for (const f of res?.plot.figures.filter((f) => f.format === 'svg') ?? []) {
          if (!detailed) {
            figures.push({ title: figureTitle(f.p), path: f.path });
            continue;
          }
          const svg = new TextDecoder().decode(await get(f));
          figures.push({ title: figureTitle(f.p), svg, path: f.path });
          inputs.push({ key: f.key, sha256: f.sha256, bytes: f.bytes });
        }
        const final = res ? finalOf(res.train) : undefined;
        if (res) {
          inputs.push(res.distance.table);
          // NaN accuracies (a diverged epoch, or no validation split; null once through JSON) cannot be
          // drawn; the tables still show how the run ended.
          for (const h of res.train.history) {
            if (Number.isFinite(h.trainAccuracy)) {
              const valAccuracy = Number.isFinite(h.valAccuracy) ? h.valAccuracy : null;
              history.push({ run: r.name, epoch: h.epoch, valAccuracy, trainAccuracy: h.trainAccuracy, ...(spec ? { group: spec.group } : {}) });
            }
          }
          for (const o of res.analyses?.perturb ?? []) {
            norms.push({ run: r.name, label: o.label, theta1: o.norms.model.theta1, theta2: o.norms.model.theta2, distance: o.norms.model.distance });
            normTables.push(o.norms.table);
          }
          const sm = res.analyses?.smoothness;
          if (sm && sm.layers.length) {
            smoothness.push(...sm.layers.map((l) => ({ run: r.name, ...l })));
            smoothnessTables.push(sm.table);
          }
          for (const e of res.analyses?.smoothnessAt ?? []) {
            smoothness.push(...e.smoothness.layers.map((l) => ({ run: `${r.name} @ epoch ${e.epoch}`, ...l })));
            smoothnessTables.push(e.smoothness.table);
          }
        }
        runs.push({
          name: r.name,
          status: r.stage,
          ...(r.error ? { error: r.error.message } : {}),
          ...(res
            ? {
                trainingStatus: res.train.status,
                backend: res.train.backend,
                // Epochs trained: the history also holds epoch 0, the initial weights' evaluation.
                epochs: res.train.history.at(-1)?.epoch ?? 0,
                valAccuracy: final?.valAccuracy ?? res.train.history.at(-1)?.valAccuracy,
                testAccuracy: res.train.test.accuracy,
                testLoss: res.train.test.loss,
                ...(final ? { final } : {}),
              }
            : {}),
          attempts: res?.train.attempts.map(({ attempt, startedFromEpoch, resumed }) => ({ attempt, startedFromEpoch, resumed })) ?? [],
          ...(spec ? { config: { model: spec.model, dataset: spec.dataset, seed: spec.seed, training: spec.training } } : {}),
          artifacts: res ? runArtifacts(res, detailed) : [],
          figures,
        });
      }

      const title = input.result.name;
      // Validation accuracy where runs hold out a split; training accuracy when none does (validationSplit: 0).
      const validated = history.filter((h) => h.valAccuracy !== null);
      const unvalidated = new Set(history.map((h) => h.run)).size - new Set(validated.map((h) => h.run)).size;
      const accuracy = validated.length
        ? await draw(
            'accuracy',
            `Validation accuracy per epoch, every run${unvalidated ? ` but the ${unvalidated} with no validation split` : ''}`,
            accuracyFigureSpec(validated, { title: `${title}: validation accuracy` }),
            [],
          )
        : history.length
          ? await draw(
              'accuracy',
              'Training accuracy per epoch, every run (no run holds out a validation split)',
              accuracyFigureSpec(history, { title: `${title}: training accuracy`, metric: 'trainAccuracy' }),
              [],
            )
          : undefined;

      let gathered: HtmlFigure | undefined;
      const aggregate = input.result.aggregate;
      if (aggregate) {
        const { rows, meta } = recordsFromArrow(DEPTH_PROFILE_TABLE, await get(aggregate.table));
        inputs.push(aggregate.table);
        if (rows.length) {
          const p = meta.p;
          // Each group's own count (the result's `runs` counts every group's together); the group of
          // every run together is named as a reader would.
          const perGroup = new Map<string, number>();
          for (const r of rows) perGroup.set(r.group, Math.max(perGroup.get(r.group) ?? 0, r.runs));
          const named = (group: string) => (group === ALL_GROUP ? 'all runs' : group);
          const counts = [...perGroup].map(([group, n]) => `${named(group)}: ${n}`).join(', ');
          const spec = depthProfileFigureSpec(rows.map((r) => ({ ...r, group: named(r.group) })), { title, ...(p ? { p } : {}) });
          gathered = await draw('depth-profile', `Mean per-parameter distance by normalised depth, averaged over the runs of each group (${counts})`, spec, [aggregate.table]);
        }
      }

      const pairs: HtmlPair[] = [];
      const heatmaps: HtmlFigure[] = [];
      // An experiment of many pairs lists them all, with heatmaps of the first MAX_HEATMAPS.
      const batches = input.result.compareBatches ?? [];
      const compared = batches.length
        ? (await loadCompareOutcomes(deps.store, batches, signal)).flatMap((o) => ('compared' in o ? [o.compared] : []))
        : (input.result.compare ?? []);
      inputs.push(...batches.map((b) => b.outcomes));
      for (const [i, c] of compared.entries()) {
        pairs.push({
          a: c.a,
          b: c.b,
          meanDiagonalCka: finiteMean(c.diagonal.map((d) => d.cka)),
          layers: c.diagonal.length,
          penultimateMeanAbs: c.penultimateMeanAbs,
          // NaN (widths that differ) arrives through JSON as null; the page shows either as a dash.
          penultimateMatched: c.penultimateMatched,
        });
        if (batches.length && i >= MAX_HEATMAPS) continue;
        const { rows } = recordsFromArrow(CKA_TABLE, await get(c.table));
        inputs.push(c.table);
        if (rows.length) {
          const name = `cka-${String(i + 1).padStart(2, '0')}-${keySafe(c.a)}--${keySafe(c.b)}`;
          heatmaps.push(await draw(name, `Linear CKA, ${c.a} against ${c.b}`, ckaFigureSpec(rows, { title, a: c.a, b: c.b }), [c.table]));
        }
      }

      // Every pair at a glance, however many heatmaps there are.
      const matrix =
        pairs.length >= 2
          ? await draw('pairs', `Mean CKA of same layers and penultimate mean |r|, ${pairs.length} pairs`, pairMatrixFigureSpec(pairs, { title }), batches.length ? batches.map((b) => b.outcomes) : compared.map((c) => c.table))
          : undefined;
      const perturbation = norms.length
        ? await draw('perturbation-norms', 'Perturb and retrain: |θ₁|, |θ₂| and |θ₁ − θ₂| of every perturbed run', perturbationNormsFigureSpec(norms, { title }), normTables)
        : undefined;
      const smooth = smoothness.length ? await draw('smoothness', 'Layer smoothness against depth, every run', smoothnessFigureSpec(smoothness, { title }), smoothnessTables) : undefined;
      const lastSmooth = smoothness.length
        ? await draw('smoothness-last-layer', 'Smoothness of the last layer, every run', lastLayerSmoothnessFigureSpec(smoothness, { title }), smoothnessTables)
        : undefined;

      const html = reportToHtml({
        title,
        experimentId,
        store: input.result.store,
        ...(input.result.status ? { status: input.result.status } : {}),
        version: (await codeVersion()).version,
        ...(accuracy ? { accuracy, ...(validated.length ? {} : { accuracyOfTraining: true }) } : {}),
        ...(gathered ? { gathered } : {}),
        ...(pairs.length
          ? {
              comparisons: {
                pairs,
                figures: heatmaps,
                ...(matrix ? { matrix } : {}),
                ...(heatmaps.length < pairs.length ? { note: `Heatmaps of the first ${heatmaps.length} of ${pairs.length} pairs; every pair's CKA table is in the store.` } : {}),
              },
            }
          : {}),
        ...(perturbation ? { perturbation } : {}),
        ...(smooth ? { smoothness: smooth } : {}),
        ...(lastSmooth ? { smoothnessLastLayer: lastSmooth } : {}),
        ...(input.result.analysisErrors?.length ? { analysisErrors: input.result.analysisErrors } : {}),
        runs,
      });
      const ref = await deps.store.put(reportKey(experimentId), new TextEncoder().encode(html), { contentType: 'text/html; charset=utf-8', signal });
      await recordLineage(deps.store, producer, ref, 'report', inputs, { runs: runs.length }, signal);
      return { key: ref.key, sha256: ref.sha256, bytes: ref.bytes, path: deps.store.locate(ref.key) };
    } catch (err) {
      throw classify(err);
    }
  };
}
