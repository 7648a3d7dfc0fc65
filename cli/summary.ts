/**
 * What `paramtrail run` and `paramtrail status` print: a machine-readable summary (`--json`) and a
 * short human one, both built from the experiment workflow's progress or result.
 */
import { loadCompareOutcomes, loadRuns } from '../activities/results.js';
import { openStore } from '../artifacts/open.js';
import type { ExperimentProgress, ExperimentResult, RunSummary } from '../workflows/types.js';
import { seedCells, spread } from '../report/seeds.js';
import { formatTotals, MANY_RUNS, progressTotals, type RunLine } from './progress.js';

export interface RunReport {
  name: string;
  runId: string;
  workflowId: string;
  status: RunSummary['stage'];
  /** Where a running run is when that says more than its stage: `train epoch 3/200 batch 10/50`. */
  progress?: string;
  error?: RunSummary['error'];
  backend?: string;
  /** How training ended: completed, stopped-early or diverged (the run itself still completes). */
  trainingStatus?: string;
  /** The training's reuse key, and the run whose training was reused instead of training again. */
  configHash?: string;
  codeVersion?: string;
  reusedFrom?: string;
  stoppedAtEpoch?: number;
  divergedAtEpoch?: number;
  bestEpoch?: number;
  final?: { epoch: number; key: string; sha256: string };
  snapshots?: Array<{ epoch: number; key: string; sha256: string; bytes: number }>;
  distanceTable?: { key: string; sha256: string; bytes: number };
  figures?: Array<{ format: string; p: string; path: string; key: string; sha256: string }>;
  /** The test metrics; a run whose result is in the store (a grid of many runs) has its accuracy alone. */
  test?: { loss?: number; accuracy: number };
  history?: Array<{ epoch: number; trainLoss: number; trainAccuracy: number; valLoss: number; valAccuracy: number }>;
  training?: { attempts: Array<{ attempt: number; startedFromEpoch: number; resumed: boolean; worker: string }> };
  dataset?: { fetched: number; cached: number };
  /** Every analysis the run made: table keys and their headline numbers. */
  analyses?: NonNullable<RunSummary['result']>['analyses'];
  /** Where the run's full result is, when the experiment moved it to the store (a grid of many runs). */
  resultRef?: RunSummary['resultRef'];
}

export interface ExperimentReport {
  experimentId: string;
  name: string;
  status: string;
  store: string;
  runs: RunReport[];
  /** In a grid of many runs still running: the runs not started yet, left out of `runs`. */
  pending?: number;
  /** The stored HTML report, once the experiment has finished. */
  report?: { key: string; sha256: string; bytes: number; path: string };
  reportError?: { type?: string; message: string };
  compare?: ExperimentResult['compare'];
  aggregate?: ExperimentResult['aggregate'];
  analysisErrors?: ExperimentResult['analysisErrors'];
}

export function reportRun(r: RunSummary): RunReport {
  const res = r.result;
  return {
    name: r.name,
    runId: r.runId,
    workflowId: r.workflowId,
    status: r.stage,
    ...(r.error ? { error: r.error } : {}),
    ...(!res && r.brief ? { backend: r.brief.backend, trainingStatus: r.brief.trainingStatus, test: { accuracy: r.brief.testAccuracy } } : {}),
    ...(!res && r.resultRef ? { resultRef: r.resultRef } : {}),
    ...(res
      ? {
          backend: res.train.backend,
          trainingStatus: res.train.status,
          configHash: res.configHash,
          codeVersion: res.codeVersion,
          ...(res.reusedFrom ? { reusedFrom: res.reusedFrom } : {}),
          ...(res.train.stoppedAtEpoch !== undefined ? { stoppedAtEpoch: res.train.stoppedAtEpoch } : {}),
          ...(res.train.divergedAtEpoch !== undefined ? { divergedAtEpoch: res.train.divergedAtEpoch } : {}),
          ...(res.train.bestEpoch !== undefined ? { bestEpoch: res.train.bestEpoch } : {}),
          final: { epoch: res.train.final.epoch, key: res.train.final.key, sha256: res.train.final.sha256 },
          snapshots: res.train.snapshots.map(({ epoch, key, sha256, bytes }) => ({ epoch, key, sha256, bytes })),
          distanceTable: res.distance.table,
          figures: res.plot.figures.map(({ format, p, path, key, sha256 }) => ({ format, p, path, key, sha256 })),
          test: res.train.test,
          history: res.train.history.map(({ epoch, trainLoss, trainAccuracy, valLoss, valAccuracy }) => ({ epoch, trainLoss, trainAccuracy, valLoss, valAccuracy })),
          training: {
            attempts: res.train.attempts.map(({ attempt, startedFromEpoch, resumed, worker }) => ({ attempt, startedFromEpoch, resumed, worker })),
          },
          dataset: { fetched: res.download.fetched, cached: res.download.cached },
          ...(res.analyses ? { analyses: res.analyses } : {}),
        }
      : {}),
  };
}

/** The report with each running run's progress line (progressLines) where it says more than the run's stage. */
export function withRunProgress(r: ExperimentReport, lines: readonly RunLine[]): ExperimentReport {
  const byName = new Map(lines.map((l) => [l.name, l.detail ? `${l.text} ${l.detail}` : l.text]));
  return {
    ...r,
    runs: r.runs.map((run) => {
      const progress = byName.get(run.name);
      return run.status !== 'completed' && run.status !== 'failed' && progress && progress !== run.status ? { ...run, progress } : run;
    }),
  };
}

/**
 * The progress or result with every run in `runs` and every compared pair in `compare`: an experiment
 * of many runs keeps their summaries in the store (`chunks`), and one of many pairs their comparisons
 * (`compareBatches`), at the store it recorded; both are read back here.
 */
export async function withStored<P extends ExperimentProgress | ExperimentResult>(p: P, env: NodeJS.ProcessEnv): Promise<P> {
  const done = p as Partial<ExperimentResult>;
  if (!p.chunks?.length && !done.compareBatches?.length) return p;
  const store = openStore(p.store, env);
  const { chunks: _chunks, compareBatches, ...rest } = p as ExperimentProgress & Partial<ExperimentResult>;
  const runs = p.chunks?.length ? await loadRuns(store, p) : p.runs;
  const compare = compareBatches?.length ? (await loadCompareOutcomes(store, compareBatches)).flatMap((o) => ('compared' in o ? [o.compared] : [])) : done.compare;
  return { ...rest, runs, ...(compare ? { compare } : {}) } as P;
}

export function reportExperiment(p: ExperimentProgress | ExperimentResult, status: string): ExperimentReport {
  const done = p as Partial<ExperimentResult>;
  return {
    experimentId: p.experimentId,
    name: p.name,
    status,
    store: p.store,
    runs: p.runs.map(reportRun),
    ...(p.pending ? { pending: p.pending } : {}),
    ...(done.report ? { report: done.report } : {}),
    ...(done.reportError ? { reportError: done.reportError } : {}),
    ...(done.compare
      ? {
          compare: done.compare.map(({ a, b, table, diagonal, penultimateMeanAbs, penultimateMatched }) => ({
            a,
            b,
            table,
            diagonal,
            penultimateMeanAbs,
            ...(penultimateMatched === undefined ? {} : { penultimateMatched }),
          })),
        }
      : {}),
    ...(done.aggregate ? { aggregate: done.aggregate } : {}),
    ...(done.analysisErrors ? { analysisErrors: done.analysisErrors } : {}),
  };
}

/** A fraction as a percentage; none (no validation split: NaN, which JSON carries as null) as '-'. */
const pct = (x: number | null | undefined) => (x === undefined || x === null || !Number.isFinite(x) ? '-' : `${(100 * x).toFixed(2)}%`);

/**
 * The human summary: every run with how it ended, its figures and anything notable (reuse, divergence,
 * early stopping, resumed attempts). A grid of more than MANY_RUNS runs gets its totals instead, with a
 * line for each run that failed, is still running or diverged; `--json` lists every run.
 */
export function formatReport(r: ExperimentReport): string {
  const lines = [`experiment ${r.experimentId} (${r.name}): ${r.status}`, `store: ${r.store}`, ''];
  if (r.runs.length + (r.pending ?? 0) > MANY_RUNS) {
    lines.push(formatTotals(progressTotals({ runs: r.runs.map((run) => ({ stage: run.status })), pending: r.pending })));
    for (const run of r.runs) {
      if (run.status === 'failed') lines.push(`${run.name}: failed${run.error ? ` - ${run.error.message.split('\n')[0]}` : ''}`);
      else if (run.status !== 'completed' && run.status !== 'pending') lines.push(`${run.name}: ${run.progress ?? run.status}`);
      else if (run.trainingStatus === 'diverged') lines.push(`${run.name}: diverged${run.divergedAtEpoch !== undefined ? ` at epoch ${run.divergedAtEpoch}` : ''}`);
    }
    lines.push('(every run, with its artifacts: --json)');
  } else {
    lines.push(...runLines(r.runs));
    if (r.pending) lines.push(`${r.pending} more runs not started yet`);
  }
  lines.push(...seedLines(r.runs));
  lines.push(...compareLines(r.compare ?? []));
  for (const e of r.analysisErrors ?? []) lines.push(`analysis ${e.analysis} failed: ${e.message}`);
  if (r.report) {
    lines.push('', `report: ${r.report.path}`);
    // A report in S3 is not a file a browser opens: say how to get a copy (it holds its figures).
    if (!r.report.path.startsWith('/')) lines.push(`  a copy to open: paramtrail report ${r.experimentId} --out report.html`);
  }
  if (r.reportError) lines.push('', `report not written: ${r.reportError.message}`);
  return lines.join('\n');
}

/** Cells listed at most in the summary; the report lists them all. */
const MAX_SEED_CELLS = 50;

/** Runs that differ only by seed, a line per grid cell: runs completed, test accuracy mean ± sd and range. */
function seedLines(runs: readonly RunReport[]): string[] {
  const cells = seedCells(runs);
  if (!cells) return [];
  const lines = ['', 'across seeds: test accuracy of the completed runs, mean ± sample sd (range)'];
  for (const [cell, rs] of [...cells].slice(0, MAX_SEED_CELLS)) {
    const done = rs.filter((run) => run.status === 'completed');
    const s = spread(done.map((run) => run.test?.accuracy));
    const acc = s.mean === undefined ? '-' : `${pct(s.mean)}${s.sd === undefined ? '' : ` ± ${(100 * s.sd).toFixed(2)}`} (${pct(s.min)} - ${pct(s.max)})`;
    lines.push(`  ${cell}: ${done.length}/${rs.length} completed, ${acc}`);
  }
  if (cells.size > MAX_SEED_CELLS) lines.push(`  (${cells.size - MAX_SEED_CELLS} more cells: see the report)`);
  return lines;
}

/** Pairs listed at most in the summary; past that, their spread (the report and --json list them all). */
const MAX_PAIR_LINES = 10;

const num3 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(3));

/** The compared pairs: each pair's mean CKA of same layers, penultimate mean |r| and matched r, or their spread. */
function compareLines(compared: NonNullable<ExperimentReport['compare']>): string[] {
  if (!compared.length) return [];
  // The matched r is NaN (null through JSON) for penultimate layers of different widths: num3 and spread show and skip it.
  const pairs = compared.map((c) => ({ a: c.a, b: c.b, cka: spread(c.diagonal.map((d) => d.cka)).mean, r: c.penultimateMeanAbs, rii: c.penultimateMatched }));
  const lines = [
    '',
    `compared ${pairs.length} pair${pairs.length === 1 ? '' : 's'}: mean linear CKA of same layers, penultimate features' mean |r| and matched r (feature i with feature i)`,
  ];
  if (pairs.length <= MAX_PAIR_LINES) {
    for (const p of pairs) lines.push(`  ${p.a} against ${p.b}: CKA ${num3(p.cka)}, |r| ${num3(p.r)}, matched r ${num3(p.rii)}`);
    return lines;
  }
  const range = (xs: Array<number | undefined>) => {
    const s = spread(xs);
    return s.mean === undefined ? '-' : `${num3(s.mean)}${s.sd === undefined ? '' : ` ± ${num3(s.sd)}`} (${num3(s.min)} - ${num3(s.max)})`;
  };
  lines.push(
    `  over the pairs, mean ± sample sd (range): CKA ${range(pairs.map((p) => p.cka))}; |r| ${range(pairs.map((p) => p.r))}; matched r ${range(pairs.map((p) => p.rii))}`,
    '  (every pair: the report, or --json)',
  );
  return lines;
}

function runLines(runs: readonly RunReport[]): string[] {
  const lines: string[] = [];
  for (const run of runs) {
    const last = run.history?.at(-1);
    lines.push(`${run.name}: ${run.progress ?? run.status}` + (run.error ? ` - ${run.error.message}` : ''));
    if (last) {
      lines.push(`  epoch ${last.epoch}: val acc ${pct(last.valAccuracy)}, test acc ${pct(run.test?.accuracy)} (backend ${run.backend})`);
    }
    if (run.reusedFrom) lines.push(`  training reused from ${run.reusedFrom} (same configuration, data and code; --force retrains)`);
    if (run.trainingStatus === 'diverged') lines.push(`  diverged at epoch ${run.divergedAtEpoch}: a non-finite loss`);
    if (run.trainingStatus === 'stopped-early') lines.push(`  stopped early at epoch ${run.stoppedAtEpoch}; best epoch ${run.bestEpoch}`);
    const resumed = run.training?.attempts.filter((a) => a.resumed) ?? [];
    for (const a of resumed) lines.push(`  attempt ${a.attempt} resumed from epoch ${a.startedFromEpoch}`);
    // Differences figures are named by their Minkowski order; the analyses' figures by their analysis.
    for (const f of run.figures?.filter((f) => f.format === 'svg') ?? []) lines.push(`  figure (${/^(\d|inf$)/.test(f.p) ? `p=${f.p}` : f.p}): ${f.path}`);
  }
  return lines;
}
