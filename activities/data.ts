/**
 * Turns a `download` result into the arrays a run trains on: reads each raw file from the store
 * (sha256-verified), gunzips, decodes, and takes the seeded subsets and validation split.
 *
 * The subsets and the split use a fixed data seed, not the run's: every run of an experiment sees the
 * same examples, so runs differ only by model, initialisation and order, which is what the studies compare.
 * Label noise is the exception: which training labels are replaced, and by what, derives from the run's
 * seed. Normalisation statistics come from the training part only (never validation or test) and are
 * applied to all three; both are recorded in the run's result.
 */
import { gunzipSync } from 'node:zlib';
import type { ArtifactStore } from '../artifacts/store.js';
import type { DatasetSpec } from '../config/experiment.js';
import { DATASETS, decodeDataset, type DatasetDef, type RawFiles, type Split } from '../ml/data/datasets.js';
import { seededSubset, take, trainValSplit } from '../ml/data/split.js';
import { normalizationFromSplit, normalizeSplit, withLabelNoise } from '../ml/train/prepare.js';
import { failForGood } from './errors.js';
import type { DataRecord, DownloadResult } from './types.js';

export const DATA_SEED = 0;

export interface RunData {
  def: DatasetDef;
  train: Split;
  val: Split;
  test: Split;
  /** sha256 of every raw file, by role: the data a run's results trace back to. */
  sources: Record<string, string>;
  /** Normalisation statistics and label noise applied, if any. */
  record: DataRecord;
}

// Decoding 60,000 images takes a while; a worker training several runs on one dataset does it once.
const decoded = new Map<string, { train: Split; test: Split }>();
const MAX_CACHED = 2;

async function decodeAll(store: ArtifactStore, def: DatasetDef, data: DownloadResult, signal?: AbortSignal) {
  // By name too: imagenette-32 and imagenette-64 decode the same archive to different sizes.
  const cacheKey = [def.name, ...data.files.map((f) => f.sha256)].join(',');
  const hit = decoded.get(cacheKey);
  if (hit) return hit;
  const raw: RawFiles = {};
  for (const file of def.files) {
    const ref = data.files.find((f) => f.role === file.role);
    if (!ref) throw failForGood('InvalidExperiment', `${def.name}: the download result has no ${file.role} file`);
    // An md5-pinned file has no registry sha256: the download activity computed it from verified bytes.
    const bytes = await store.get(ref.key, { sha256: file.sha256 ?? ref.sha256, signal });
    raw[file.role] = file.gzip ? new Uint8Array(gunzipSync(bytes)) : bytes;
  }
  const splits = decodeDataset(def, raw);
  if (decoded.size >= MAX_CACHED) decoded.delete(decoded.keys().next().value!);
  decoded.set(cacheKey, splits);
  return splits;
}

export async function loadRunData(
  store: ArtifactStore,
  spec: DatasetSpec,
  data: DownloadResult,
  signal?: AbortSignal,
  /** The dataset registry; tests give definitions pinned to their own small files. */
  datasets: ReadonlyMap<string, DatasetDef> = DATASETS,
  /** The run's seed, which label noise derives from (required when spec.labelNoise > 0). */
  runSeed?: number,
): Promise<RunData> {
  const def = datasets.get(spec.name);
  if (!def) throw failForGood('InvalidExperiment', `dataset.name: unknown dataset "${spec.name}"`);
  const { train: fullTrain, test: fullTest } = await decodeAll(store, def, data, signal);
  const trainN = Math.min(spec.subset?.train ?? fullTrain.n, fullTrain.n);
  const testN = Math.min(spec.subset?.test ?? fullTest.n, fullTest.n);
  const pool = take(fullTrain, seededSubset(fullTrain.n, trainN, DATA_SEED));
  const { train: trainIdx, val: valIdx } = trainValSplit(pool.n, spec.validationSplit, DATA_SEED);
  // take() copies, so normalising in place leaves the decode cache untouched.
  let train = take(pool, trainIdx);
  const val = take(pool, valIdx);
  const test = take(fullTest, seededSubset(fullTest.n, testN, DATA_SEED));
  const record: DataRecord = {};
  const normalize = spec.normalize ?? 'none';
  if (normalize !== 'none') {
    const stats = normalizationFromSplit(train, def.inputShape[2], normalize);
    for (const split of [train, val, test]) normalizeSplit(split, stats);
    record.normalization = stats;
  }
  const noise = spec.labelNoise ?? 0;
  if (noise > 0) {
    if (runSeed === undefined) throw new Error('dataset.labelNoise: expected the run seed to draw the noise from, found none');
    const noisy = withLabelNoise(train, noise, def.numClasses, runSeed);
    train = noisy.split;
    record.labelNoise = noisy.record;
  }
  return { def, train, val, test, sources: Object.fromEntries(data.files.map((f) => [f.role, f.sha256])), record };
}
