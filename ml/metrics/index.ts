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
