/**
 * Data preparation options of a run, applied after the subsets and the validation split are taken:
 * input normalisation by training-set statistics, and seeded label noise on the training labels.
 *
 * Pure: typed arrays in, typed arrays out. Called by activities/data.ts; tests call it directly.
 */
import type { Split } from '../data/datasets.js';
import { deriveRng } from '../rng.js';

export type NormalizeMode = 'none' | 'global' | 'per-channel';

export interface Normalization {
  /** One value for `global`, one per channel for `per-channel`. */
  mean: number[];
  std: number[];
}

/**
 * Mean and (population) standard deviation of the training examples, over all values (`global`) or per
 * channel (`per-channel`, channels last). Sums run in float64 over every value. A constant channel gets
 * std 1, so normalising it only centres it.
 */
export function normalizationFromSplit(train: Split, channels: number, mode: Exclude<NormalizeMode, 'none'>): Normalization {
  if (train.n === 0) throw new Error('normalisation: expected training examples to compute statistics from, found 0');
  const groups = mode === 'global' ? 1 : channels;
  const sum = new Float64Array(groups);
  const sq = new Float64Array(groups);
  const x = train.x;
  for (let i = 0; i < x.length; i++) {
    const g = groups === 1 ? 0 : i % channels;
    sum[g] += x[i]!;
  }
  const count = x.length / groups;
  const mean = Array.from(sum, (s) => s / count);
  // Two passes: the centred sum of squares does not cancel catastrophically as E[x^2] - E[x]^2 can.
  for (let i = 0; i < x.length; i++) {
    const g = groups === 1 ? 0 : i % channels;
    const d = x[i]! - mean[g]!;
    sq[g] += d * d;
  }
  const std = Array.from(sq, (s) => Math.sqrt(s / count) || 1);
  return { mean, std };
}

/** (x - mean) / std in place, with the statistics of `normalizationFromSplit` (channels last). */
export function normalizeSplit(split: Split, stats: Normalization): void {
  const groups = stats.mean.length;
  const x = split.x;
  for (let i = 0; i < x.length; i++) {
    const g = groups === 1 ? 0 : i % groups;
    x[i] = (x[i]! - stats.mean[g]!) / stats.std[g]!;
  }
}

export interface LabelNoiseRecord {
  /** The fraction asked for. */
  fraction: number;
  /** Labels replaced: round(fraction * n). */
  replaced: number;
  /** Replaced labels whose new value differs from the old (a uniform draw keeps the old one 1/classes of the time). */
  changed: number;
  /** changed / n: the share of training labels that are actually wrong. */
  realisedFraction: number;
}

/**
 * Replaces round(fraction * n) labels of a split, chosen from `seed`, with labels drawn uniformly over
 * the classes from the same stream (`stream` names it: the training and validation labels draw from
 * streams of their own). Returns a new split (the examples are shared, the labels copied).
 */
export function withLabelNoise(
  train: Split,
  fraction: number,
  numClasses: number,
  seed: number,
  stream: 'label-noise' | 'label-noise-validation' = 'label-noise',
): { split: Split; record: LabelNoiseRecord } {
  if (!(fraction >= 0 && fraction <= 1)) throw new Error(`labelNoise: expected a fraction in [0, 1], found ${fraction}`);
  const n = train.n;
  const replaced = Math.round(fraction * n);
  const rng = deriveRng(seed, stream);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  rng.shuffle(order);
  const y = train.y.slice();
  let changed = 0;
  for (let i = 0; i < replaced; i++) {
    const j = order[i]!;
    const label = rng.int(numClasses);
    if (label !== y[j]) changed++;
    y[j] = label;
  }
  return { split: { x: train.x, y, n }, record: { fraction, replaced, changed, realisedFraction: n === 0 ? 0 : changed / n } };
}
