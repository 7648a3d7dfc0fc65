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
import { DATASETS, decodeDataset, type DatasetDef, type DecodedSplit, type RawFiles, type Split } from '../ml/data/datasets.js';
import { seededSubset, take, trainValSplit } from '../ml/data/split.js';
import { normalizationFromSplit, normalizeSplit, withLabelNoise } from '../ml/train/prepare.js';
import { decodedCacheName, type DecodedCacheOptions, readDecoded, writeDecoded } from './decoded-cache.js';
import { isAcceptedEdition } from './download.js';
import { failForGood } from './errors.js';
import type { DataRecord, DownloadResult } from './types.js';
import { codeVersion, reuseCodeVersion } from './version.js';

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

// Decoding 60,000 images takes a while; a worker training several runs on one dataset does it once, and
// keeps 8-bit pixels as bytes (a quarter of the memory of floats) until its runs' subsets are taken.
const decoded = new Map<string, { train: DecodedSplit; test: DecodedSplit }>();
const MAX_CACHED = 2;

interface Prepared {
  train: Split;
  val: Split;
  test: Split;
  normalization?: DataRecord['normalization'];
}

/**
 * The subsets, split and normalisation are the same for every run of an experiment (they derive from
 * DATA_SEED, not the run), so a worker prepares them once per dataset and spec, and its runs share them.
 * Nothing that trains on or measures them writes to them.
 */
const prepared = new Map<string, Prepared>();
const MAX_PREPARED = 2;

function remember<V>(cache: Map<string, V>, max: number, key: string, value: V): V {
  if (cache.size >= max) cache.delete(cache.keys().next().value!);
  cache.set(key, value);
  return value;
}

/** By name too: imagenette-32 and imagenette-64 decode the same archive to different sizes. */
const decodeKey = (def: DatasetDef, data: DownloadResult) => [def.name, ...data.files.map((f) => f.sha256)].join(',');

async function decodeAll(store: ArtifactStore, def: DatasetDef, data: DownloadResult, opts: LoadOptions) {
  const cacheKey = decodeKey(def, data);
  const hit = decoded.get(cacheKey);
  if (hit) return hit;
  const disk = opts.decodedCache;
  let source: unknown;
  let name = '';
  if (disk) {
    source = {
      dataset: { name: def.name, format: def.format, inputShape: def.inputShape, numClasses: def.numClasses },
      files: Object.fromEntries(data.files.map((f) => [f.role, f.sha256])),
      code: reuseCodeVersion(await codeVersion()),
    };
    name = decodedCacheName(source);
    const kept = await readDecoded(disk, name, (message) => console.warn(`paramtrail: decoded dataset ${message}`)).catch(warnCache);
    if (kept) return remember(decoded, MAX_CACHED, cacheKey, kept);
  }
  const raw: RawFiles = {};
  for (const file of def.files) {
    const ref = data.files.find((f) => f.role === file.role);
    if (!ref) throw failForGood('InvalidExperiment', `${def.name}: the download result has no ${file.role} file`);
    // The bytes are those the download stored (their sha256), and an edition the registry accepts:
    // its pinned sha256, or an md5 (an md5-pinned file, or another edition of a sha256-pinned one),
    // as the download's md5 index records it.
    const bytes = await store.get(ref.key, { sha256: ref.sha256, signal: opts.signal });
    if (!(await isAcceptedEdition(store, file, bytes, ref.sha256, opts.signal))) {
      throw failForGood('IntegrityError', `${def.name}/${file.name}: the stored file ${ref.key} (sha256 ${ref.sha256}) is none of the registry's editions of it`);
    }
    raw[file.role] = file.gzip ? new Uint8Array(gunzipSync(bytes)) : bytes;
  }
  const fresh = decodeDataset(def, raw);
  if (disk) await writeDecoded(disk, name, source, fresh).catch(warnCache);
  return remember(decoded, MAX_CACHED, cacheKey, fresh);
}

/** The disk cache only saves time: a worker that cannot use it decodes, and says so once. */
let cacheWarned = false;
function warnCache(err: Error): undefined {
  if (!cacheWarned) console.warn(`paramtrail: the decoded-dataset cache is not used: ${err.message}`);
  cacheWarned = true;
  return undefined;
}

async function prepare(store: ArtifactStore, def: DatasetDef, spec: DatasetSpec, data: DownloadResult, opts: LoadOptions): Promise<Prepared> {
  const normalize = spec.normalize ?? 'none';
  const cacheKey = JSON.stringify([decodeKey(def, data), spec.subset?.train ?? null, spec.subset?.test ?? null, spec.validationSplit, normalize]);
  const hit = prepared.get(cacheKey);
  if (hit) return hit;
  const { train: fullTrain, test: fullTest } = await decodeAll(store, def, data, opts);
  const trainN = Math.min(spec.subset?.train ?? fullTrain.n, fullTrain.n);
  const testN = Math.min(spec.subset?.test ?? fullTest.n, fullTest.n);
  const pool = take(fullTrain, seededSubset(fullTrain.n, trainN, DATA_SEED));
  const { train: trainIdx, val: valIdx } = trainValSplit(pool.n, spec.validationSplit, DATA_SEED);
  // take() copies, so normalising in place leaves the decode cache untouched.
  const train = take(pool, trainIdx);
  const val = take(pool, valIdx);
  const test = take(fullTest, seededSubset(fullTest.n, testN, DATA_SEED));
  if (normalize === 'none') return remember(prepared, MAX_PREPARED, cacheKey, { train, val, test });
  const normalization = normalizationFromSplit(train, def.inputShape[2], normalize);
  for (const split of [train, val, test]) normalizeSplit(split, normalization);
  return remember(prepared, MAX_PREPARED, cacheKey, { train, val, test, normalization });
}

export interface LoadOptions {
  signal?: AbortSignal;
  /** The dataset registry; tests give definitions pinned to their own small files. */
  datasets?: ReadonlyMap<string, DatasetDef>;
  /** The run's seed, which label noise derives from (required when spec.labelNoise > 0). */
  runSeed?: number;
  /** Where this machine keeps decoded datasets between processes (a worker's); none when omitted. */
  decodedCache?: DecodedCacheOptions;
}

export async function loadRunData(store: ArtifactStore, spec: DatasetSpec, data: DownloadResult, opts: LoadOptions = {}): Promise<RunData> {
  const { datasets = DATASETS, runSeed } = opts;
  const def = datasets.get(spec.name);
  if (!def) throw failForGood('InvalidExperiment', `dataset.name: unknown dataset "${spec.name}"`);
  const { train: shared, val: sharedVal, test, normalization } = await prepare(store, def, spec, data, opts);
  let train = shared;
  let val = sharedVal;
  const record: DataRecord = normalization ? { normalization } : {};
  const noise = spec.labelNoise ?? 0;
  if (noise > 0) {
    if (runSeed === undefined) throw new Error('dataset.labelNoise: expected the run seed to draw the noise from, found none');
    const noisy = withLabelNoise(train, noise, def.numClasses, runSeed);
    train = noisy.split;
    record.labelNoise = noisy.record;
    if (spec.labelNoiseValidation) {
      const noisyVal = withLabelNoise(val, noise, def.numClasses, runSeed, 'label-noise-validation');
      val = noisyVal.split;
      record.validationLabelNoise = noisyVal.record;
    }
  }
  return { def, train, val, test, sources: Object.fromEntries(data.files.map((f) => [f.role, f.sha256])), record };
}
