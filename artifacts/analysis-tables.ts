/**
 * The Arrow tables of paramtrail's analyses, declared once: the activities that write them and the
 * figures and report that read them share these specs (see artifacts/records.ts for the codec).
 *
 * Depth is always the 0-based order of a layer among the layers with parameters (as in the distance
 * table), -1 for the whole model.
 */
import { recordTable, type RowOf } from './records.js';

/** Histogram of the feature-feature Pearson r of one layer over the probe set (metadata: runId, layer, meanAbs, features, constant). */
export const CORRELATION_TABLE = recordTable('feature-correlation', 1, {
  layer: 'utf8',
  binStart: 'float64',
  binEnd: 'float64',
  count: 'int32',
});
export type CorrelationRow = RowOf<typeof CORRELATION_TABLE>;

/** Linear CKA between every layer of run A and every layer of run B (metadata: runA, runB). */
export const CKA_TABLE = recordTable('cka-matrix', 1, {
  layerA: 'utf8',
  depthA: 'int32',
  layerB: 'utf8',
  depthB: 'int32',
  cka: 'float64',
});
export type CkaRow = RowOf<typeof CKA_TABLE>;

/**
 * Perturb-and-retrain norms per layer and whole model (metadata: runId, label, p): |theta1| the trained
 * weights, |perturbed| the perturbed start, |theta2| after retraining, distance |theta1 - theta2| and
 * relative = distance / |theta1|.
 */
export const NORMS_TABLE = recordTable('perturbation-norms', 1, {
  layer: 'utf8',
  depth: 'int32',
  params: 'int32',
  theta1: 'float64',
  perturbed: 'float64',
  theta2: 'float64',
  distance: 'float64',
  relative: 'float64',
});
export type NormsRow = RowOf<typeof NORMS_TABLE>;

/** Test loss and accuracy with one layer reset to its initial weights (metadata: runId, baselineLoss, baselineAccuracy). */
export const REINIT_TABLE = recordTable('reinit-robustness', 1, {
  layer: 'utf8',
  depth: 'int32',
  loss: 'float64',
  accuracy: 'float64',
});
export type ReinitRow = RowOf<typeof REINIT_TABLE>;

/** Per-layer weak-type Besov alpha of the layer's probe features against the labels (metadata: runId, trees). */
export const SMOOTHNESS_TABLE = recordTable('smoothness', 1, {
  layer: 'utf8',
  depth: 'int32',
  features: 'int32',
  alpha: 'float64',
});
export type SmoothnessRow = RowOf<typeof SMOOTHNESS_TABLE>;

/**
 * The gathered depth profile (metadata: experimentId, p): per group and reference (init | previous), the
 * mean over runs of the per-parameter distance at each normalised depth in [0, 1]; `runs` averaged.
 */
export const DEPTH_PROFILE_TABLE = recordTable('depth-profile', 1, {
  group: 'utf8',
  against: 'utf8',
  depth: 'float64',
  mean: 'float64',
  runs: 'int32',
});
export type DepthProfileRow = RowOf<typeof DEPTH_PROFILE_TABLE>;
