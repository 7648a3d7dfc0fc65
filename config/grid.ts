/**
 * Expansion of an experiment's grid into runs. Dependency-free so that `experimentWorkflow` can
 * import it: the workflow, not the client, decides which runs exist.
 */
import type { DatasetSpec, ExperimentConfig, ModelSpec, TrainingSpec } from './experiment.js';

/** One cell of the grid: everything a run needs, and nothing about where it runs. */
export interface RunSpec {
  /** Stable within the experiment: `<model label>--<dataset>--s<seed>`. */
  name: string;
  model: ModelSpec;
  dataset: DatasetSpec;
  seed: number;
  training: TrainingSpec;
  distance: { p: Array<number | 'inf'> };
}

export function modelLabel(m: { name: string; label?: string }): string {
  return m.label ?? m.name;
}

/** Expands the grid in a fixed order: models, then datasets, then seeds. */
export function expandRuns(config: ExperimentConfig): RunSpec[] {
  const runs: RunSpec[] = [];
  for (const m of config.models) {
    for (const d of config.datasets) {
      for (const seed of config.seeds) {
        runs.push({
          name: `${modelLabel(m)}--${d.name}--s${seed}`,
          model: { name: m.name, args: m.args },
          dataset: d,
          seed,
          training: config.training,
          distance: config.analyses.distance,
        });
      }
    }
  }
  return runs;
}
