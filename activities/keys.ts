/**
 * The store's key layout, in one place. Tensor objects (snapshots, optimizer state, tables) and raw
 * dataset files are content-addressed; per-run indexes (checkpoints, attempts, figures) live under
 * `runs/<experiment id>/<run name>/` and point at them by key and sha256.
 */

/** Same layout as `putContentAddressed`: `<prefix>/<first two hex>/<sha256><ext>`. */
export function contentKey(prefix: string, sha256: string, ext = ''): string {
  return `${prefix}/${sha256.slice(0, 2)}/${sha256}${ext}`;
}

export const DATASET_PREFIX = 'datasets';
export const TENSOR_PREFIX = 'tensors';
export const TABLE_PREFIX = 'tables';

export function runPrefix(runId: string): string {
  return `runs/${runId}`;
}

export function checkpointKey(runId: string, epoch: number): string {
  return `${runPrefix(runId)}/checkpoints/epoch-${String(epoch).padStart(6, '0')}.json`;
}

export function attemptKey(runId: string, attempt: number): string {
  return `${runPrefix(runId)}/attempts/attempt-${String(attempt).padStart(4, '0')}.json`;
}

export function figureKey(runId: string, name: string): string {
  return `${runPrefix(runId)}/figures/${name}`;
}

/** Run ids name the experiment and the run: `<experiment id>/<run name>`. */
export function runIdOf(experimentId: string, runName: string): string {
  return `${experimentId}/${runName}`;
}

/** Where an experiment's own objects live (its report and figures): `experiments/<experiment id>`. */
export function experimentPrefix(experimentId: string): string {
  return `experiments/${experimentId}`;
}

/** The experiment's HTML report, rewritten by nothing: one per experiment id. */
export function reportKey(experimentId: string): string {
  return `${experimentPrefix(experimentId)}/report.html`;
}
