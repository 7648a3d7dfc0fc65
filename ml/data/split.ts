/**
 * Seeded subsets and train/validation splits of a dataset, so that a run's examples are a pure function
 * of its seed (and so the same on a retry or on another worker).
 *
 * Called by the train activity before training, and by tests to build small real datasets.
 */
import { deriveRng } from '../rng.js';
import type { DecodedSplit, Split } from './datasets.js';

function permutation(n: number, seed: number, purpose: string): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return deriveRng(seed, purpose).shuffle(order);
}

/** k distinct indices of [0, n), chosen uniformly from the seed, in increasing order. */
export function seededSubset(n: number, k: number, seed: number): Int32Array {
  if (!Number.isInteger(k) || k < 0 || k > n) {
    throw new Error(`subset size must be an integer in [0, ${n}], found ${k}`);
  }
  return permutation(n, seed, 'subset').subarray(0, k).slice().sort();
}

/**
 * Splits [0, n) into a training and a held-out validation part; the validation part has
 * round(n * fraction) indices. Both are in increasing order.
 */
export function trainValSplit(n: number, fraction: number, seed: number): { train: Int32Array; val: Int32Array } {
  if (!(fraction >= 0 && fraction < 1)) {
    throw new Error(`validation fraction must be in [0, 1), found ${fraction}`);
  }
  const order = permutation(n, seed, 'validation-split');
  const nVal = Math.round(n * fraction);
  return { val: order.slice(0, nVal).sort(), train: order.slice(nVal).sort() };
}

/** The examples of `split` at `indices`, in that order (copied; a ByteSplit's pixels scaled to [0, 1]). */
export function take(split: DecodedSplit, indices: ArrayLike<number>): Split {
  const n = indices.length;
  const floats = 'x' in split ? split.x : undefined;
  const bytes = 'pixels' in split ? split.pixels : undefined;
  const size = split.n === 0 ? 0 : (floats ?? bytes)!.length / split.n;
  const x = new Float32Array(n * size);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const j = indices[i]!;
    if (!(j >= 0 && j < split.n && Number.isInteger(j))) {
      throw new Error(`index ${j} at position ${i} is outside the split of ${split.n} examples`);
    }
    if (floats) {
      x.set(floats.subarray(j * size, (j + 1) * size), i * size);
    } else {
      for (let k = 0, from = j * size, to = i * size; k < size; k++) x[to + k] = bytes![from + k]! / 255;
    }
    y[i] = split.y[j]!;
  }
  return { x, y, n };
}
