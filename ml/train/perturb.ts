/**
 * Perturbations of trained weights (S4's perturb-and-retrain): flip every sign, add a constant, add
 * seeded Gaussian noise, or put some layers back to their initial weights. Pure: named tensors in,
 * new named tensors out; the `perturb` activity loads and stores the snapshots around it.
 *
 * What is perturbed: the model's parameters only, the variables an optimizer trains. Batch-norm moving
 * statistics (`moving_mean`, `moving_variance`) are estimates of the activations a layer sees, not
 * parameters: a sign flip of a running variance would make it negative, which is no state a network can
 * be in. They are kept as trained (and the retraining re-estimates them). Snapshots do not record
 * which variables are trainable, so they are told apart by name, the names ml/models/layers.ts gives
 * them. The same rule decides which tensors the re-initialisation robustness analysis resets: with the
 * inputs of a layer unchanged, its trained running statistics are still the right ones.
 *
 * Arithmetic is float32, as the weights are stored: theta + 1e-6 rounds to the nearest float32, so on
 * a weight of magnitude 32 or more (half a float32 ulp there is 1.9e-6) it changes nothing. `changed`
 * counts the values that differ afterwards (-0 and 0 count as equal: a sign flip leaves a zero weight
 * unchanged).
 */
import type { NamedTensor } from '../../artifacts/snapshot.js';
import { deriveRng } from '../rng.js';
import { isParameter, matchesLayer } from './select.js';

/** The perturbations, as config/experiment.ts's PerturbationSpec declares them (labels aside). */
export type Perturbation =
  | { kind: 'sign-flip' }
  | { kind: 'offset'; value: number }
  | { kind: 'noise'; scale: number }
  | { kind: 'reinit-layer'; layer: string };

export interface PerturbArgs {
  /** Seed of the noise; each tensor draws from its own stream derived from (seed, 'perturb', label, layer, name). */
  seed?: number;
  /** Names the noise stream, so two noise perturbations of one run differ. */
  label?: string;
  /** The run's initial weights, required by `reinit-layer`. */
  initial?: readonly NamedTensor[];
}

export interface PerturbOutcome {
  /** Every tensor of the input, in its order, perturbed or (non-parameters, other layers) the same arrays. */
  tensors: NamedTensor[];
  /** Parameter values that differ from the input's. */
  changed: number;
  /** Layers whose tensors were perturbed, in order. */
  layers: string[];
}

/** Thrown for a perturbation that does not fit the weights; named so the activities treat it as bad input. */
export class InvalidPerturbationError extends Error {
  override name = 'InvalidExperimentError';
}

function countChanged(before: Float32Array, after: Float32Array): number {
  let n = 0;
  // `!==` is false for -0 vs 0 and true for NaN vs NaN: a NaN weight counts as changed, as it is no value.
  for (let i = 0; i < before.length; i++) n += +(before[i] !== after[i]);
  return n;
}

function mapValues(values: Float32Array, f: (v: number, i: number) => number): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f(values[i]!, i);
  return out;
}

function layersOf(tensors: readonly NamedTensor[]): string[] {
  return [...new Set(tensors.map((t) => t.layer))];
}

/** Applies `p` to the parameters of `tensors` and returns new tensors (the input is not modified). */
export function perturbTensors(tensors: readonly NamedTensor[], p: Perturbation, args: PerturbArgs = {}): PerturbOutcome {
  let transform: (t: NamedTensor) => Float32Array | undefined;
  switch (p.kind) {
    case 'sign-flip':
      transform = (t) => mapValues(t.values, (v) => -v);
      break;
    case 'offset':
      if (!Number.isFinite(p.value)) throw new InvalidPerturbationError(`offset: expected a finite value; found ${p.value}`);
      transform = (t) => mapValues(t.values, (v) => v + p.value);
      break;
    case 'noise': {
      if (!(p.scale > 0 && Number.isFinite(p.scale))) throw new InvalidPerturbationError(`noise: expected a finite scale > 0; found ${p.scale}`);
      const seed = args.seed;
      if (seed === undefined || !Number.isInteger(seed)) throw new InvalidPerturbationError(`noise: expected an integer seed; found ${String(seed)}`);
      // One stream per tensor: the noise of a tensor depends on its name only, not on what precedes it.
      transform = (t) => {
        const rng = deriveRng(seed, 'perturb', args.label ?? 'noise', t.layer, t.name);
        return mapValues(t.values, (v) => v + p.scale * rng.normal());
      };
      break;
    }
    case 'reinit-layer': {
      const chosen = layersOf(tensors).filter((l) => matchesLayer(p.layer, l));
      if (chosen.length === 0) {
        throw new InvalidPerturbationError(`reinit-layer: "${p.layer}" matches no layer of the snapshot (layers: ${layersOf(tensors).join(', ')})`);
      }
      if (args.initial === undefined) throw new InvalidPerturbationError('reinit-layer: expected the initial weights; found none');
      const initial = new Map(args.initial.map((t) => [JSON.stringify([t.layer, t.name]), t]));
      transform = (t) => {
        if (!chosen.includes(t.layer)) return undefined;
        const from = initial.get(JSON.stringify([t.layer, t.name]));
        if (from === undefined) throw new InvalidPerturbationError(`reinit-layer: the initial weights have no tensor ${t.layer}/${t.name}`);
        if (from.values.length !== t.values.length || from.shape.some((d, i) => d !== t.shape[i]) || from.shape.length !== t.shape.length) {
          throw new InvalidPerturbationError(
            `reinit-layer: ${t.layer}/${t.name}: expected initial shape [${t.shape.join(', ')}]; found [${from.shape.join(', ')}]`,
          );
        }
        return from.values.slice();
      };
      break;
    }
    default:
      throw new InvalidPerturbationError(`expected a perturbation kind of sign-flip, offset, noise or reinit-layer; found ${JSON.stringify((p as { kind: unknown }).kind)}`);
  }
  let changed = 0;
  const layers = new Set<string>();
  const out = tensors.map((t) => {
    if (!isParameter(t)) return t;
    const values = transform(t);
    if (values === undefined) return t;
    changed += countChanged(t.values, values);
    layers.add(t.layer);
    return { layer: t.layer, name: t.name, shape: [...t.shape], values };
  });
  return { tensors: out, changed, layers: [...layers] };
}
