/**
 * The `report` activity: at the end of an experiment, renders the validation accuracy of all runs,
 * reads every run's Differences SVGs from the store, and stores the self-contained HTML report at
 * `experiments/<experiment id>/report.html`. Called by `experimentWorkflow` on the analysis queue;
 * `paramtrail report` prints or copies what it stored.
 */
import { readFile } from 'node:fs/promises';
import { Context } from '@temporalio/activity';
import type { ObjectRef } from '../artifacts/refs.js';
import type { ArtifactStore } from '../artifacts/store.js';
import type { RunSpec } from '../config/grid.js';
import { accuracyFigureSpec, type AccuracyPoint } from '../report/figures.js';
import { reportToHtml, type HtmlArtifact, type HtmlFigure, type HtmlRun } from '../report/html.js';
import { renderSvg } from '../report/render.js';
import { classify } from './errors.js';
import { reportKey } from './keys.js';
import { recordLineage } from './lineage.js';
import type { DistanceResult, PlotResult, TrainResult } from './types.js';

export interface ReportDeps {
  store: ArtifactStore;
}

/** A run as the experiment workflow tracks it; only refs and numbers, never the objects themselves. */
export interface ReportRunSource {
  name: string;
  runId: string;
  stage: string;
  error?: { type?: string; message: string };
  result?: { train: TrainResult; distance: DistanceResult; plot: PlotResult };
}

export interface ReportInput {
  experimentId: string;
  /** The experiment's progress or result. */
  result: { name: string; store: string; status?: string; runs: ReportRunSource[] };
  /** Each run's spec, matched to its run by name, for the config shown in the report. */
  specs?: RunSpec[];
}

export interface ReportResult extends ObjectRef {
  /** Where a person opens it: a file path for the local store, an s3:// URL otherwise. */
  path: string;
}

let version: Promise<string> | undefined;

/** paramtrail's version, from its package.json; read once per process. */
function paramtrailVersion(): Promise<string> {
  version ??= readFile(new URL('../package.json', import.meta.url), 'utf8').then(
    (text) => String((JSON.parse(text) as { version?: unknown }).version ?? 'unknown'),
    () => 'unknown',
  );
  return version;
}

function runArtifacts(res: NonNullable<ReportRunSource['result']>): HtmlArtifact[] {
  const artifacts: HtmlArtifact[] = res.train.snapshots.map((s) => ({ label: `snapshot epoch ${s.epoch}`, key: s.key, sha256: s.sha256, bytes: s.bytes }));
  if (!res.train.snapshots.some((s) => s.key === res.train.final.key)) {
    artifacts.push({ label: `final weights (epoch ${res.train.final.epoch})`, key: res.train.final.key, sha256: res.train.final.sha256, bytes: res.train.final.bytes });
  }
  const t = res.distance.table;
  artifacts.push({ label: 'distance table', key: t.key, sha256: t.sha256, bytes: t.bytes });
  for (const f of res.plot.figures) artifacts.push({ label: `figure p=${f.p} (${f.format})`, key: f.key, sha256: f.sha256, bytes: f.bytes });
  return artifacts;
}

export function createReport(deps: ReportDeps) {
  return async function report(input: ReportInput): Promise<ReportResult> {
    const signal = Context.current().cancellationSignal;
    try {
      const specs = new Map((input.specs ?? []).map((s) => [s.name, s]));
      const inputs: ObjectRef[] = [];
      const runs: HtmlRun[] = [];
      const history: AccuracyPoint[] = [];
      for (const r of input.result.runs) {
        const res = r.result;
        const spec = specs.get(r.name);
        const figures: HtmlFigure[] = [];
        for (const f of res?.plot.figures.filter((f) => f.format === 'svg') ?? []) {
          const svg = new TextDecoder().decode(await deps.store.get(f.key, { sha256: f.sha256, signal }));
          figures.push({ title: `Differences, p = ${f.p === 'inf' ? '∞' : f.p}`, svg, path: f.path });
          inputs.push({ key: f.key, sha256: f.sha256, bytes: f.bytes });
        }
        if (res) {
          inputs.push(res.distance.table);
          // NaN accuracies (a diverged epoch) cannot be drawn; the table still shows how the run ended.
          for (const h of res.train.history) {
            if (Number.isFinite(h.valAccuracy) && Number.isFinite(h.trainAccuracy)) {
              history.push({ run: r.name, epoch: h.epoch, valAccuracy: h.valAccuracy, trainAccuracy: h.trainAccuracy });
            }
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
                epochs: res.train.history.length,
                valAccuracy: res.train.history.at(-1)?.valAccuracy,
                testAccuracy: res.train.test.accuracy,
              }
            : {}),
          attempts: res?.train.attempts.map(({ attempt, startedFromEpoch, resumed }) => ({ attempt, startedFromEpoch, resumed })) ?? [],
          ...(spec ? { config: { model: spec.model, dataset: spec.dataset, seed: spec.seed, training: spec.training } } : {}),
          artifacts: res ? runArtifacts(res) : [],
          figures,
        });
      }
      const accuracy = history.length
        ? { title: 'Validation accuracy per epoch, every run', svg: await renderSvg(accuracyFigureSpec(history, { title: `${input.result.name}: validation accuracy` })) }
        : undefined;
      const html = reportToHtml({
        title: input.result.name,
        experimentId: input.experimentId,
        store: input.result.store,
        ...(input.result.status ? { status: input.result.status } : {}),
        version: await paramtrailVersion(),
        ...(accuracy ? { accuracy } : {}),
        runs,
      });
      const ref = await deps.store.put(reportKey(input.experimentId), new TextEncoder().encode(html), { contentType: 'text/html; charset=utf-8', signal });
      await recordLineage(deps.store, { experimentId: input.experimentId, runId: '' }, ref, 'report', inputs, { runs: runs.length }, signal);
      return { key: ref.key, sha256: ref.sha256, bytes: ref.bytes, path: deps.store.locate(ref.key) };
    } catch (err) {
      throw classify(err);
    }
  };
}
