/**
 * Pure weight metrics: typed arrays in, numbers out. Activities import from here; each metric
 * lives in its own file so later analyses (relative change, CKA, ...) add a file and an export.
 */
export {
  MODEL_LAYER,
  formatMinkowskiP,
  layerDistances,
  minkowski,
  minkowskiAccumulate,
  minkowskiFinish,
  parseMinkowskiP,
} from './minkowski.js';
export type { LayerDistance, MinkowskiP } from './minkowski.js';
export {
  changedAccumulate,
  layerChanges,
  layerNorms,
  layerShareChanged,
  norm,
  normAccumulate,
} from './change.js';
export type { ChangeTolerance, LayerChange, LayerNorm, LayerShareChanged } from './change.js';
export { correlationSummary, crossCorrelation, matchedCorrelation, pearsonMatrix } from './correlation.js';
export type { CorrelationMatrix, CorrelationSummary } from './correlation.js';
export { linearCka, linearCkaMatrix } from './cka.js';
export { centreColumns, gramCross, gramSymmetric } from './gram.js';
export type { CentredColumns, FeatureMatrix } from './gram.js';
export { averageOverDepth, normalisedDepth } from './aggregate.js';
export type { DepthProfilePoint, DepthRow } from './aggregate.js';
