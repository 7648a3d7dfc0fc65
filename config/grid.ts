/**
 * Expansion of an experiment's grid into runs. Dependency-free so that `experimentWorkflow` can
 * import it: the workflow, not the client, decides which runs exist.
 */
import type { AnalysesSpec, DatasetSpec, ExperimentConfig, ModelSpec, PerturbationSpec, TrainingSpec } from './experiment.js';

/** One cell of the grid: everything a run needs, and nothing about where it runs. */
export interface RunSpec {
  /** Stable within the experiment: `<model label>[--<variant>]--<dataset label>--s<seed>`. */
  name: string;
  model: ModelSpec;
  dataset: DatasetSpec;
  seed: number;
  training: TrainingSpec;
  /** Which group the gathered figures put the run in (the model's `group`, else its label). */
  group: string;
  analyses: AnalysesSpec;
}

export function modelLabel(m: { name: string; label?: string }): string {
  return m.label ?? m.name;
}

/** A perturbation's name in run names and figures: its label, or one derived from its kind and value. */
export function perturbationLabel(p: PerturbationSpec): string {
  if (p.label) return p.label;
  const num = (x: number) =>
    (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e4) ? x.toExponential() : String(x)).replace(/[^0-9a-z]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
  switch (p.kind) {
    case 'sign-flip':
      return 'sign-flip';
    case 'offset':
      return `offset-${num(p.value)}`;
    case 'noise':
      return `noise-${num(p.scale)}`;
    case 'reinit-layer':
      return `reinit-${p.layer.replace('*', '').toLowerCase().replace(/_/g, '-')}`;
  }
}

/** A variant's training: the base with each key the variant gives replaced whole. */
export function variantTraining(base: TrainingSpec, override: Record<string, unknown>): Record<string, unknown> {
  return { ...base, ...override };
}

/**
 * A snapshot reference to another run of the same experiment: `init.from.run` without an experiment id,
 * after its placeholders `{model}`, `{variant}`, `{dataset}` and `{seed}` are filled in for each run.
 */
export function isSameExperimentRun(run: string): boolean {
  return !run.includes('/');
}

function fillRunTemplate(template: string, parts: { model: string; variant?: string; dataset: string; seed: number }): string {
  return template
    .replaceAll('{model}', parts.model)
    .replaceAll('{variant}', parts.variant ?? '')
    .replaceAll('{dataset}', parts.dataset)
    .replaceAll('{seed}', String(parts.seed));
}

/** The runs a run starts from (same-experiment `init.from.run`), by name. */
export function runDependencies(spec: RunSpec): string[] {
  const from = spec.training.init?.from?.run;
  return from !== undefined && isSameExperimentRun(from) ? [from] : [];
}

/**
 * Orders runs so that every run comes after the runs it starts from (a stable topological order: the
 * grid order wherever dependencies allow). Throws on a reference to an unknown run or a cycle.
 */
export function orderByDependencies(specs: readonly RunSpec[]): RunSpec[] {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const out: RunSpec[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (s: RunSpec, path: string[]) => {
    const st = state.get(s.name);
    if (st === 'done') return;
    if (st === 'visiting') throw new Error(`training.init.from.run: runs start from each other in a cycle: ${[...path, s.name].join(' -> ')}`);
    state.set(s.name, 'visiting');
    for (const dep of runDependencies(s)) {
      const d = byName.get(dep);
      if (!d) throw new Error(`training.init.from.run: run "${s.name}" starts from "${dep}", which is not a run of this experiment`);
      visit(d, [...path, s.name]);
    }
    state.set(s.name, 'done');
    out.push(s);
  };
  for (const s of specs) visit(s, []);
  return out;
}

/**
 * The pairs of runs `analyses.compare` compares, by run name: `same-model` pairs runs of one model
 * label on one dataset (differing in variant or seed), `all` every pair, or the file's explicit list.
 */
export function comparePairs(config: ExperimentConfig, specs: readonly RunSpec[]): Array<[string, string]> {
  const spec = config.analyses.compare;
  if (!spec) return [];
  if (Array.isArray(spec.pairs)) return spec.pairs.map(([a, b]) => [a, b]);
  const key = (s: RunSpec) => `${s.name.split('--')[0]}|${s.dataset.label ?? s.dataset.name}`;
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i < specs.length; i++) {
    for (let j = i + 1; j < specs.length; j++) {
      if (spec.pairs === 'all' || key(specs[i]!) === key(specs[j]!)) pairs.push([specs[i]!.name, specs[j]!.name]);
    }
  }
  return pairs;
}

/**
 * Expands the grid in a fixed order: models, then variants, then datasets, then seeds. Variants'
 * training is already resolved by `validateExperiment`.
 */
export function expandRuns(config: ExperimentConfig): RunSpec[] {
  const runs: RunSpec[] = [];
  const variants = config.variants ?? [undefined];
  type Cell = { model?: string; variant?: string; dataset?: string; seed?: number };
  const matches = (c: Cell, cell: Required<Omit<Cell, 'variant'>> & { variant?: string }) =>
    (c.model === undefined || c.model === cell.model) &&
    (c.variant === undefined || c.variant === cell.variant) &&
    (c.dataset === undefined || c.dataset === cell.dataset) &&
    (c.seed === undefined || c.seed === cell.seed);
  for (const m of config.models) {
    for (const v of variants) {
      for (const d of config.datasets) {
        for (const seed of config.seeds) {
          const cell = { model: modelLabel(m), variant: v?.label, dataset: d.label ?? d.name, seed };
          if (config.exclude?.some((c) => matches(c, cell))) continue;
          if (config.include && !config.include.some((c) => matches(c, cell))) continue;
          let training = v ? (variantTraining(config.training, v.training) as TrainingSpec) : config.training;
          const from = training.init?.from;
          if (from?.run !== undefined && isSameExperimentRun(from.run)) {
            const run = fillRunTemplate(from.run, { model: modelLabel(m), variant: v?.label, dataset: d.label ?? d.name, seed });
            training = { ...training, init: { ...training.init, from: { ...from, run } } };
          }
          runs.push({
            name: [modelLabel(m), ...(v ? [v.label] : []), d.label ?? d.name, `s${seed}`].join('--'),
            model: { name: m.name, args: m.args },
            dataset: d,
            seed,
            training,
            group: m.group ?? modelLabel(m),
            analyses: config.analyses,
          });
        }
      }
    }
  }
  return runs;
}

/**
 * The runs that share a workflow (`execution.runsPerWorkflow`), as lists of indices into `specs`:
 * consecutive runs with the same model, dataset and optimiser, at most `size` of them. A run that starts
 * from another run of the experiment is always alone (it waits for that run, not for a pack).
 */
export function packRuns(specs: readonly RunSpec[], size: number): number[][] {
  const packs: number[][] = [];
  let open: number[] | undefined;
  let openKey = '';
  specs.forEach((spec, i) => {
    if (size <= 1 || runDependencies(spec).length > 0) {
      packs.push([i]);
      open = undefined;
      return;
    }
    const key = JSON.stringify([spec.model.name, spec.dataset.name, spec.training.optimizer.name]);
    if (open && key === openKey && open.length < size) {
      open.push(i);
    } else {
      open = [i];
      openKey = key;
      packs.push(open);
    }
  });
  return packs;
}
