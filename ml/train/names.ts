/**
 * Names of the weight initialisers, dependency-free so the experiment schema (config/experiment.ts)
 * can validate an experiment file against them without loading tfjs. ml/train/init.ts implements
 * exactly these (its registry is typed by them, so the two lists cannot drift apart).
 */

/** Initialisers that take no argument. fan-in is the default mode of the kaiming (He) initialisers. */
export const INITIALIZER_NAMES = [
  'zeros',
  'ones',
  'glorot-uniform',
  'glorot-normal',
  'xavier-uniform',
  'xavier-normal',
  'kaiming-uniform',
  'kaiming-normal',
  'kaiming-uniform-fan-out',
  'kaiming-normal-fan-out',
  'lecun-uniform',
  'lecun-normal',
] as const;
export type InitializerName = (typeof INITIALIZER_NAMES)[number];

/** Initialisers with one argument `a`: uniform on (-a, a), normal with standard deviation a. */
export const PARAMETRIC_INITIALIZER_NAMES = ['uniform', 'normal'] as const;
export type ParametricInitializerName = (typeof PARAMETRIC_INITIALIZER_NAMES)[number];

/** An initialiser as an experiment file names it: `kaiming-normal`, or `{ name: uniform, a: 0.05 }`. */
export type InitializerRef = InitializerName | { name: ParametricInitializerName; a: number };
