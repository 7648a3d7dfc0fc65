/**
 * Expansion of an experiment's grid into runs. Dependency-free so that `experimentWorkflow` can
 * import it: the workflow, not the client, decides which runs exist.
 */
import type { AnalysesSpec, DatasetSpec, ExperimentConfig, ModelSpec, PerturbationSpec, TrainingSpec } from './experiment.js';

/** One cell of the grid: everything a run needs, and nothing about where it runs. */
export interface RunSpec {
  /** Stable within the experiment: `<model label>[--<variant>]--<dataset>--s<seed>`. */
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
 * Expands the grid in a fixed order: models, then variants, then datasets, then seeds. Variants'
 * training is already resolved by `validateExperiment`.
 */
export function expandRuns(config: ExperimentConfig): RunSpec[] {
  const runs: RunSpec[] = [];
  const variants = config.variants ?? [undefined];
  for (const m of config.models) {
    for (const v of variants) {
      for (const d of config.datasets) {
        for (const seed of config.seeds) {
          runs.push({
            name: [modelLabel(m), ...(v ? [v.label] : []), d.name, `s${seed}`].join('--'),
            model: { name: m.name, args: m.args },
            dataset: d,
            seed,
            training: v ? (variantTraining(config.training, v.training) as TrainingSpec) : config.training,
            group: m.group ?? modelLabel(m),
            analyses: config.analyses,
          });
        }
      }
    }
  }
  return runs;
}
