/**
 * Which tensors and layers an option or analysis means: the experiment file's layer patterns (a name,
 * or a prefix ending in `*`) and the line between parameters and batch-norm running statistics.
 *
 * Pure and dependency-free: training (init.from layers, freeze), perturbation, distances, re-init
 * robustness, comparisons and smoothness all select through it, so a pattern means the same everywhere.
 */
import type { NamedTensor } from '../../artifacts/snapshot.js';

/** A layer name, or a prefix ending in `*` matching every layer that starts with it. */
export function matchesLayer(pattern: string, layer: string): boolean {
  return pattern.endsWith('*') ? layer.startsWith(pattern.slice(0, -1)) : layer === pattern;
}

/** Variable names of batch-norm running statistics: state, not parameters. */
export const NON_PARAMETER_NAMES: ReadonlySet<string> = new Set(['moving_mean', 'moving_variance']);

/** Whether a snapshot tensor is a trainable parameter (everything but batch-norm running statistics). */
export function isParameter(t: Pick<NamedTensor, 'name'>): boolean {
  return !NON_PARAMETER_NAMES.has(t.name);
}

/** The parameters of the layers that have a kernel (convolutions, dense layers): no batch norm. */
export function weightLayerParameters<T extends Pick<NamedTensor, 'layer' | 'name'>>(tensors: readonly T[]): T[] {
  const withKernel = new Set(tensors.filter((t) => t.name === 'kernel').map((t) => t.layer));
  return tensors.filter((t) => withKernel.has(t.layer) && isParameter(t));
}
