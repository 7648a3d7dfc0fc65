/**
 * Report fixtures with every analysis, built from Arrow tables encoded as the analysis activities
 * encode them (recordsToArrow, distanceTableToArrow), with a run whose name and config try to break out
 * of the page:
 *
 * - `sampleReportInput()`: the page's input with figures Vega really renders, for tests of the page alone;
 * - `storeSampleExperiment(store, id)`: the same experiment stored as the workflow leaves it (tables,
 *   placeholder snapshots, each run's figures drawn by the real `plot` activity), returning the `report`
 *   activity's input; shared by the HTML report's unit test and its browser test.
 */
import {
  CKA_TABLE,
  CORRELATION_TABLE,
  DEPTH_PROFILE_TABLE,
  NORMS_TABLE,
  REINIT_TABLE,
  SMOOTHNESS_TABLE,
  type CkaRow,
  type CorrelationRow,
  type DepthProfileRow,
  type NormsRow,
  type ReinitRow,
  type SmoothnessRow,
} from '../../artifacts/analysis-tables.js';
import { recordsFromArrow, recordsToArrow, type RecordTableSpec } from '../../artifacts/records.js';
import type { ObjectRef, SnapshotRef } from '../../artifacts/refs.js';
import type { ArtifactStore } from '../../artifacts/store.js';
import { distanceTableToArrow, type DistanceRow } from '../../artifacts/table.js';
import { ALL_GROUP } from '../../activities/aggregate.js';
import { createPlot } from '../../activities/plot.js';
import type { ReportInput, ReportRunSource } from '../../activities/report.js';
import { runIdOf } from '../../activities/keys.js';
import type { CompareResult, PerturbationOutcome, PlotResult, RunAnalysesResult, TrainResult } from '../../activities/types.js';
import {
  accuracyFigureSpec,
  changedShareFigureSpec,
  ckaFigureSpec,
  correlationFigureSpec,
  depthProfileFigureSpec,
  distanceFigureSpec,
  perturbationLayersFigureSpec,
  perturbationNormsFigureSpec,
  reinitFigureSpec,
  smoothnessFigureSpec,
} from '../../report/figures.js';
import type { HtmlReportInput } from '../../report/html.js';
import { renderSvg } from '../../report/render.js';
import { activityEnvironment } from './logs.js';

export const HOSTILE_NAME = '<script>window.__pwned = 1</script>"&\'lenet';
export const HOSTILE_CONFIG = '</pre><img src=x onerror="window.__pwned=2"><pre>';

/** The completed runs of both fixtures; the stored experiment adds a failed one. */
export const RUN_NAMES = ['mlp--fashion-mnist--s1', HOSTILE_NAME];
const LAYERS = ['conv1', 'conv2', 'dense1', 'dense2'];
const PERTURBATIONS = [
  { label: 'sign-flip', kind: 'sign-flip', relative: 1.6 },
  { label: 'offset-1e-6', kind: 'offset', relative: 0.002 },
];
/** The analysis figures `plot` draws per run from the stored tables, by `FigureRef.p`, besides Differences. */
export const RUN_ANALYSIS_FIGURES = ['relative-p2', 'changed', 'correlation', 'reinit', 'smoothness', 'perturbation-norms', 'perturbation-layers'];
/** The experiment-level figures the report draws from the stored experiment, by name. */
export const EXPERIMENT_FIGURES = ['accuracy', 'depth-profile', 'cka-01-mlp--fashion-mnist--s1--script-window.__pwned-1-script-lenet', 'perturbation-norms', 'smoothness', 'smoothness-last-layer'];
export const ANALYSIS_ERROR = { analysis: 'compare a b', message: 'b has no probe features (it failed <early>)' };

/** Rows as the analysis activities store them and the report reads them back: through the Arrow codec. */
function roundTrip<R extends Record<string, string | number>>(spec: RecordTableSpec<R>, rows: R[], meta: Record<string, string> = {}): { bytes: Uint8Array; rows: R[] } {
  const bytes = recordsToArrow(spec, rows, meta);
  return { bytes, rows: recordsFromArrow(spec, bytes).rows };
}

function distanceRows(runId: string, run: number): DistanceRow[] {
  const out: DistanceRow[] = [];
  for (let epoch = 1; epoch <= 3; epoch++) {
    for (const against of ['init', 'previous'] as const) {
      LAYERS.forEach((layer, depth) => {
        const distance = (epoch * (depth + 1)) / (against === 'init' ? 1 : epoch);
        const params = 100 * (depth + 1);
        const changed = Math.min(1, 0.3 * epoch + 0.1 * depth - 0.1 * run);
        out.push({ runId, epoch, against, referenceEpoch: against === 'init' ? 0 : epoch - 1, p: '2', layer, depth, params, distance, meanDistance: distance / params, relative: distance / 10, changed });
      });
    }
  }
  return out;
}

const correlationRows = (run: number): CorrelationRow[] =>
  Array.from({ length: 8 }, (_, i) => ({ layer: 'dense1', binStart: -1 + i / 4, binEnd: -0.75 + i / 4, count: (i + 1) * (8 - i) + run }));
const reinitRows = (run: number): ReinitRow[] => LAYERS.map((layer, depth) => ({ layer, depth, loss: 2 - 0.3 * depth, accuracy: 0.15 + 0.18 * depth - 0.05 * run }));
const smoothnessRows = (run: number): SmoothnessRow[] => LAYERS.map((layer, depth) => ({ layer, depth, features: 16, alpha: (0.02 + 0.03 * depth) / (run + 1) }));
const normsRows = (relative: number): NormsRow[] => [
  ...LAYERS.map((layer, depth) => ({ layer, depth, params: 100 * (depth + 1), theta1: 10 + depth, perturbed: 10 + depth, theta2: 11 + depth, distance: relative * (10 + depth) * (1 + depth / 10), relative: relative * (1 + depth / 10) })),
  { layer: '__model__', depth: -1, params: 1000, theta1: 25, perturbed: 25, theta2: 27, distance: relative * 25, relative },
];
const ckaRows = (): CkaRow[] => LAYERS.flatMap((layerA, depthA) => LAYERS.map((layerB, depthB) => ({ layerA, depthA, layerB, depthB, cka: depthA === depthB ? 0.95 - 0.1 * depthA : 0.3 / (1 + Math.abs(depthA - depthB)) })));
const depthProfileRows = (): DepthProfileRow[] =>
  ['plain', 'residual'].flatMap((group, g) => (['init', 'previous'] as const).flatMap((against) => [0, 0.25, 0.5, 0.75, 1].map((depth) => ({ group, against, depth, mean: g === 0 ? 0.01 + 0.02 * depth : 0.03 - 0.02 * depth, runs: 2 }))));

const history = (run: number) => [0, 1, 2, 3].map((epoch) => ({ epoch, step: 10 * epoch, trainLoss: 2 / (epoch + 1), trainAccuracy: 0.1 + 0.25 * epoch, valLoss: 2.1 / (epoch + 1) + 0.1 * run * epoch, valAccuracy: 0.1 + 0.22 * epoch - 0.05 * run, seconds: 1, learningRate: 0.01 }));

export async function sampleReportInput(): Promise<HtmlReportInput> {
  const points = RUN_NAMES.flatMap((run, i) => history(i).filter((h) => h.epoch > 0).map((h) => ({ run, epoch: h.epoch, valAccuracy: h.valAccuracy, trainAccuracy: h.trainAccuracy })));
  const accuracy = { title: 'Validation accuracy', svg: await renderSvg(accuracyFigureSpec(points, { title: 'sample: validation accuracy' })) };
  const runs = await Promise.all(
    RUN_NAMES.map(async (name, i) => {
      const bins = roundTrip(CORRELATION_TABLE, correlationRows(i)).rows;
      const reinit = roundTrip(REINIT_TABLE, reinitRows(i)).rows;
      const smooth = roundTrip(SMOOTHNESS_TABLE, smoothnessRows(i)).rows;
      const layerNorms = PERTURBATIONS.flatMap((p) => roundTrip(NORMS_TABLE, normsRows(p.relative)).rows.map((r) => ({ label: p.label, ...r })));
      const distances = distanceRows(`exp/${name}`, i);
      const h = history(i);
      return {
        name,
        status: 'completed',
        trainingStatus: i === 0 ? 'completed' : 'stopped-early',
        backend: 'cpu',
        epochs: 3,
        valAccuracy: 0.8 - 0.05 * i,
        testAccuracy: 0.79 - 0.05 * i,
        testLoss: 0.61 + i,
        final: { epoch: 3 - i, epochs: 3, best: i === 1, trainLoss: h[3 - i].trainLoss, valLoss: h[3 - i].valLoss, trainAccuracy: h[3 - i].trainAccuracy, valAccuracy: h[3 - i].valAccuracy },
        attempts: i === 0 ? [{ attempt: 1, startedFromEpoch: 0, resumed: false }] : [{ attempt: 1, startedFromEpoch: 0, resumed: false }, { attempt: 2, startedFromEpoch: 2, resumed: true }],
        config: { model: { name: i === 0 ? 'mlp' : 'lenet5', label: name }, dataset: { name: 'fashion-mnist' }, seed: 1, training: { epochs: 3, optimizer: { name: 'sgd', note: HOSTILE_CONFIG } } },
        artifacts: [{ label: 'snapshot epoch 0', key: `tensors/ab/${'ab'.repeat(32)}.arrow`, sha256: 'ab'.repeat(32), bytes: 1234 }],
        figures: [
          { title: 'Differences, p = 2', svg: await renderSvg(distanceFigureSpec(distances, { title: name, p: '2' })), path: `/store/runs/exp/${i}/figures/distance-p2.svg` },
          { title: 'Share of parameters changed', svg: await renderSvg(changedShareFigureSpec(distances.filter((r) => r.against === 'init').map((r) => ({ ...r, value: r.changed })), { title: name })) },
          { title: 'Feature correlation', svg: await renderSvg(correlationFigureSpec(bins, { title: name, meanAbs: 0.2 })) },
          { title: 'Re-initialisation robustness', svg: await renderSvg(reinitFigureSpec({ baseline: { accuracy: 0.79 }, layers: reinit }, { title: name })) },
          { title: 'Layer smoothness', svg: await renderSvg(smoothnessFigureSpec(smooth.map((r) => ({ run: name, ...r })), { title: name })) },
          { title: 'Perturb and retrain: per-layer distance', svg: await renderSvg(perturbationLayersFigureSpec(layerNorms, { title: name })) },
        ],
      };
    }),
  );
  const norms = RUN_NAMES.flatMap((run) => PERTURBATIONS.map((p) => ({ run, label: p.label, theta1: 25, theta2: 27, distance: 25 * p.relative })));
  const smoothness = RUN_NAMES.flatMap((run, i) => smoothnessRows(i).map((r) => ({ run, ...r })));
  return {
    title: 'sample <experiment>',
    experimentId: 'sample-20261123-abcdef',
    store: 'file:///tmp/store',
    status: 'completed',
    version: '0.1.0',
    accuracy,
    gathered: { title: 'Gathered differences', svg: await renderSvg(depthProfileFigureSpec(roundTrip(DEPTH_PROFILE_TABLE, depthProfileRows()).rows, { title: 'sample', p: '2' })) },
    comparisons: {
      pairs: [{ a: RUN_NAMES[0], b: RUN_NAMES[1], meanDiagonalCka: 0.8, layers: 4, penultimateMeanAbs: 0.125 }],
      figures: [{ title: 'Linear CKA', svg: await renderSvg(ckaFigureSpec(roundTrip(CKA_TABLE, ckaRows()).rows, { title: 'sample', a: RUN_NAMES[0], b: RUN_NAMES[1] })) }],
    },
    perturbation: { title: 'Perturb and retrain', svg: await renderSvg(perturbationNormsFigureSpec(norms, { title: 'sample' })) },
    smoothness: { title: 'Layer smoothness', svg: await renderSvg(smoothnessFigureSpec(smoothness, { title: 'sample' })) },
    analysisErrors: [ANALYSIS_ERROR],
    runs,
  };
}

/**
 * Stores the sample experiment as the workflow leaves it: per completed run, placeholder snapshot
 * bytes, a version-2 distance table, every analysis table, and the figures the `plot` activity draws
 * from them; at the experiment level a CKA table of the two runs and a gathered depth profile. Returns
 * the `report` activity's input, with one run that failed and one experiment-level analysis error.
 */
export async function storeSampleExperiment(store: ArtifactStore, experimentId: string): Promise<ReportInput> {
  const encode = (text: string) => new TextEncoder().encode(text);
  const put = (key: string, bytes: Uint8Array): Promise<ObjectRef> => store.put(key, bytes);
  const runs: ReportRunSource[] = [];
  for (const [i, name] of RUN_NAMES.entries()) {
    const runId = runIdOf(experimentId, `run-${i}`);
    const snapshot = async (epoch: number, what = 'weights'): Promise<SnapshotRef> => ({ ...(await put(`tensors/${runId}/${what}-${epoch}.arrow`, encode(`${what} of ${name} at ${epoch}`))), epoch, step: 10 * epoch });
    const snapshots = [await snapshot(0), await snapshot(1), await snapshot(2), await snapshot(3)];
    const table = await put(`tables/${runId}/distance.arrow`, distanceTableToArrow(distanceRows(runId, i), { runId }));
    const h = history(i);
    const train = {
      runId,
      backend: 'cpu',
      status: i === 0 ? 'completed' : 'stopped-early',
      ...(i === 1 ? { stoppedAtEpoch: 3, bestEpoch: 2 } : {}),
      snapshots,
      final: snapshots[i === 1 ? 2 : 3],
      data: {},
      history: h,
      test: { loss: 0.61 + i, accuracy: 0.7 - 0.05 * i },
      attempts: [{ attempt: 1, startedFromEpoch: 0, resumed: false, startedAt: '2026-11-23T00:00:00Z', worker: 'w', backend: 'cpu' }],
    } as TrainResult;
    const meta = { runId };
    const perturb: PerturbationOutcome[] = [];
    for (const p of PERTURBATIONS) {
      const normsTable = await put(`tables/${runId}/norms-${p.label}.arrow`, recordsToArrow(NORMS_TABLE, normsRows(p.relative), { ...meta, label: p.label, p: '2' }));
      const retrained = await snapshot(3, `retrained-${p.label}`);
      perturb.push({
        label: p.label,
        kind: p.kind,
        runId: `${runId}--${p.label}`,
        perturb: { perturbed: await snapshot(0, `perturbed-${p.label}`), changed: 1000 },
        train: { ...train, runId: `${runId}--${p.label}`, snapshots: [retrained], final: retrained },
        norms: { table: normsTable, label: p.label, model: { theta1: 25, perturbed: 25, theta2: 27, distance: 25 * p.relative, relative: p.relative } },
      });
    }
    const features = await put(`tensors/${runId}/features.arrow`, encode(`features of ${name}`));
    const probe = await put(`tensors/probe.arrow`, encode('probe'));
    const analyses: RunAnalysesResult = {
      features: { features, probe, snapshot: train.final, examples: 64, layers: LAYERS.map((layer, depth) => ({ layer, depth, features: 16 })), penultimate: 'dense1' },
      correlation: { table: await put(`tables/${runId}/correlation.arrow`, recordsToArrow(CORRELATION_TABLE, correlationRows(i), { ...meta, layer: 'dense1' })), layer: 'dense1', features: 16, meanAbs: 0.21, constant: 0 },
      reinit: {
        table: await put(`tables/${runId}/reinit.arrow`, recordsToArrow(REINIT_TABLE, reinitRows(i), meta)),
        baseline: { loss: 0.61 + i, accuracy: train.test.accuracy },
        layers: reinitRows(i).map(({ layer, depth, loss, accuracy }) => ({ layer, depth, loss, accuracy })),
      },
      smoothness: { table: await put(`tables/${runId}/smoothness.arrow`, recordsToArrow(SMOOTHNESS_TABLE, smoothnessRows(i), meta)), layers: smoothnessRows(i).map(({ layer, depth, alpha }) => ({ layer, depth, alpha })) },
      perturb,
    };
    const plot = (await activityEnvironment().run(createPlot({ store }), { experimentId, runId, runName: name, table, analyses })) as PlotResult;
    runs.push({ name, runId, stage: 'completed', result: { train, distance: { table, rows: 24 }, plot, analyses } });
  }
  runs.push({ name: 'broken--fashion-mnist--s1', runId: runIdOf(experimentId, 'broken'), stage: 'failed', error: { type: 'DatasetChecksumMismatch', message: 'expected sha256 aa.., found bb..' } });

  const ckaTable = await put(`tables/${experimentId}/cka.arrow`, recordsToArrow(CKA_TABLE, ckaRows(), { runA: runs[0].runId, runB: runs[1].runId }));
  const compare: CompareResult = {
    a: RUN_NAMES[0],
    b: RUN_NAMES[1],
    table: ckaTable,
    diagonal: ckaRows().filter((r) => r.depthA === r.depthB).map((r) => ({ layer: r.layerA, depth: r.depthA, cka: r.cka })),
    penultimateMeanAbs: 0.125,
  };
  // As the aggregate stores it: each group's rows, then every run's together.
  const everyRun = depthProfileRows().filter((r) => r.group === 'plain').map((r) => ({ ...r, group: ALL_GROUP, runs: 4 }));
  const profile = await put(`tables/${experimentId}/depth-profile.arrow`, recordsToArrow(DEPTH_PROFILE_TABLE, [...depthProfileRows(), ...everyRun], { experimentId, p: '2' }));
  return {
    experimentId,
    result: {
      name: 'browser-check',
      store: store.location,
      status: 'completed-with-failures',
      runs,
      compare: [compare],
      aggregate: { table: profile, groups: ['plain', 'residual', ALL_GROUP], runs: 4 },
      analysisErrors: [ANALYSIS_ERROR],
    },
  };
}
