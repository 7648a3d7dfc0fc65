/**
 * `run --dry-run`: what an experiment file would do, without starting anything. The grid expanded into
 * its runs, and for each whether `run` would train it or reuse a finished training, decided as the run's
 * own lookup decides (activities/reuse.ts: the same reuse key, the same re-hash of every stored
 * snapshot) against the store the environment names, with this checkout's code version. A run that
 * starts from another run of the experiment is looked up with that run's stored weights when they would
 * be reused, and otherwise trains after it. Reads the store and never writes to it; needs no Temporal.
 */
import { mapLimit } from '../artifacts/concurrency.js';
import type { ArtifactStore } from '../artifacts/store.js';
import { findStored } from '../activities/download.js';
import { findTraining } from '../activities/reuse.js';
import type { DatasetFileRef, DownloadResult, TrainResult } from '../activities/types.js';
import { codeVersion, reuseCodeVersion } from '../activities/version.js';
import type { ExperimentConfig } from '../config/experiment.js';
import { comparePairs, expandRuns, orderByDependencies, packRuns, runDependencies, type RunSpec } from '../config/grid.js';
import { DATASETS, type DatasetDef } from '../ml/data/datasets.js';
import { resolveFrom } from '../workflows/experiment.js';

/** Store reads in flight at once: each lookup is one index read and a read of each snapshot it names. */
const LOOKUPS_AT_ONCE = 8;

/** Past this many runs the text lists counts per model and dataset, not every run (`--json` always lists them). */
export const LIST_RUNS_UP_TO = 100;

export interface PlannedRun {
  run: string;
  /** The registered model (ml/models). */
  model: string;
  /** The dataset's label, else its name. */
  dataset: string;
  seed: number;
  action: 'train' | 'reuse';
  /** The run whose training would be reused (`<experiment>/<run>`). */
  reusedFrom?: string;
  /** The reuse key, when it can be known before anything runs. */
  configHash?: string;
  /** Why the run trains. */
  reason?: string;
}

export interface PlannedDataset {
  dataset: string;
  /** Every file of it is in the store (none would be downloaded). */
  stored: boolean;
  /** Bytes to download, when the registry knows the files' sizes. */
  downloadBytes?: number;
}

export interface Plan {
  experiment: string;
  size?: string;
  store: string;
  /** What reuse compares: the package version and the digest of the compute code. */
  codeVersion: string;
  force: boolean;
  totals: { runs: number; train: number; reuse: number };
  /** Run and pack workflows the experiment would start (`execution.runsPerWorkflow`). */
  workflows: number;
  comparePairs: number;
  datasets: PlannedDataset[];
  runs: PlannedRun[];
}

interface DatasetState {
  planned: PlannedDataset;
  /** The files' sha256s as a download would return them, when all are stored. */
  data?: DownloadResult;
}

async function datasetState(store: ArtifactStore, def: DatasetDef, signal?: AbortSignal): Promise<DatasetState> {
  const files: DatasetFileRef[] = [];
  let missingBytes: number | undefined = 0;
  for (const file of def.files) {
    const ref = await findStored(store, file, signal);
    if (ref) files.push({ ...ref, role: file.role, name: file.name, source: 'store' });
    else missingBytes = file.bytes === undefined || missingBytes === undefined ? undefined : missingBytes + file.bytes;
  }
  const stored = files.length === def.files.length;
  return {
    planned: { dataset: def.name, stored, ...(!stored && missingBytes !== undefined ? { downloadBytes: missingBytes } : {}) },
    ...(stored ? { data: { dataset: def.name, files, fetched: 0, cached: files.length } } : {}),
  };
}

export async function planExperiment(
  config: ExperimentConfig,
  store: ArtifactStore,
  opts: { force?: boolean; signal?: AbortSignal } = {},
): Promise<Plan> {
  const code = reuseCodeVersion(await codeVersion());
  const specs = orderByDependencies(expandRuns(config));

  const states = new Map<string, DatasetState>();
  for (const name of new Set(specs.map((s) => s.dataset.name))) {
    const def = DATASETS.get(name);
    if (!def) throw new Error(`dataset "${name}" is not registered`); // validation refuses it first
    states.set(name, await datasetState(store, def, opts.signal));
  }

  // A run's plan, and the training it would reuse (for the runs that start from it).
  type Outcome = { planned: PlannedRun; reused?: TrainResult };
  const outcomes = new Map<string, Outcome>();
  const plan = async (spec: RunSpec): Promise<Outcome> => {
    const planned: PlannedRun = {
      run: spec.name,
      model: spec.model.name,
      dataset: spec.dataset.label ?? spec.dataset.name,
      seed: spec.seed,
      action: 'train',
    };
    if (opts.force) return { planned: { ...planned, reason: '--force' } };
    let resolved = spec;
    const [source] = runDependencies(spec);
    if (source !== undefined) {
      const reused = outcomes.get(source)?.reused;
      if (!reused) return { planned: { ...planned, reason: `starts from ${source}, which trains first` } };
      resolved = resolveFrom(spec, new Map([[source, { train: reused }]]));
    }
    const data = states.get(spec.dataset.name)!.data;
    if (!data) return { planned: { ...planned, reason: `${spec.dataset.name} is not in the store yet` } };
    const found = await findTraining(store, resolved, data, code, opts.signal);
    const keyed = { ...planned, configHash: found.configHash };
    if (!found.found) {
      const reason = found.rejected ? `a finished training did not verify (${found.rejected})` : 'no finished training with this configuration, data and code';
      return { planned: { ...keyed, reason } };
    }
    return { planned: { ...keyed, action: 'reuse', reusedFrom: found.found.runId }, reused: found.found.train };
  };
  // The runs that start from no other run, several at once; then the others in dependency order, each
  // after the run it starts from.
  const [first, then] = [specs.filter((s) => runDependencies(s).length === 0), specs.filter((s) => runDependencies(s).length > 0)];
  for (const [i, o] of (await mapLimit(first, LOOKUPS_AT_ONCE, plan)).entries()) outcomes.set(first[i]!.name, o);
  for (const s of then) outcomes.set(s.name, await plan(s));

  const runs = expandRuns(config).map((s) => outcomes.get(s.name)!.planned);
  const reuse = runs.filter((r) => r.action === 'reuse').length;
  return {
    experiment: config.name,
    ...(config.size ? { size: config.size } : {}),
    store: store.location,
    codeVersion: code,
    force: opts.force ?? false,
    totals: { runs: runs.length, train: runs.length - reuse, reuse },
    workflows: packRuns(specs, config.execution.runsPerWorkflow).length,
    comparePairs: comparePairs(config, specs).length,
    datasets: [...states.values()].map((s) => s.planned),
    runs,
  };
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function megabytes(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${(bytes / 1e6).toFixed(bytes >= 1e7 ? 0 : 1)} MB`;
}

/** The plan as `run --dry-run` prints it. */
export function formatPlan(plan: Plan): string[] {
  const { totals } = plan;
  const lines = [
    `${plan.experiment}${plan.size ? ` (size ${plan.size})` : ''}: ${plural(totals.runs, 'run')}, ${totals.train} to train, ${totals.reuse} to reuse${plan.force ? ' (--force)' : ''}`,
    `  workflows: ${plan.workflows}; compared pairs: ${plan.comparePairs}; analyses run for every run`,
    `  datasets: ${plan.datasets.map((d) => `${d.dataset} ${d.stored ? 'stored' : `to download${d.downloadBytes ? ` (${megabytes(d.downloadBytes)})` : ''}`}`).join(', ')}`,
    `  store ${plan.store}; code ${plan.codeVersion}`,
  ];
  if (plan.runs.length <= LIST_RUNS_UP_TO) {
    const width = Math.max(...plan.runs.map((r) => r.run.length));
    for (const r of plan.runs) lines.push(`${r.run.padEnd(width)}  ${r.action === 'reuse' ? `reuse ${r.reusedFrom}` : `train: ${r.reason}`}`);
  } else {
    const cells = new Map<string, { runs: number; reuse: number }>();
    for (const r of plan.runs) {
      const key = `${r.model}--${r.dataset}`;
      const c = cells.get(key) ?? { runs: 0, reuse: 0 };
      c.runs++;
      if (r.action === 'reuse') c.reuse++;
      cells.set(key, c);
    }
    const width = Math.max(...[...cells.keys()].map((k) => k.length));
    for (const [key, c] of cells) lines.push(`${key.padEnd(width)}  ${plural(c.runs, 'run')}: ${c.runs - c.reuse} to train, ${c.reuse} to reuse`);
    lines.push(`(by model and dataset; --json lists every run)`);
  }
  lines.push('nothing was started');
  return lines;
}
