/**
 * The files of the probe-set analyses: the probe set itself (which test examples, with their labels) and
 * a model's features on it. The features activity writes both; correlation, compare and smoothness
 * read the features with `featuresFromArrow`. Pure codec: no tfjs, no store.
 *
 * Probe set: a record table (artifacts/records.ts) of kind `probe-set`, one row per example, in probe
 * order: `index` into the dataset's full test split and `label`. Metadata: dataset, dataSeed,
 * testExamples. Its bytes depend on nothing but these, so every run with the same dataset and probe
 * size stores the same object, and two feature files came from the same examples exactly when they
 * name the same probe sha256.
 *
 * Features: the snapshot layout (artifacts/snapshot.ts: one row per tensor, float32 values, per-tensor
 * sha256) with `paramtrail.kind` = `features`. Tensors, in order: `<layer>/features` of shape [n, d]
 * for every layer with parameters by depth; then, when the classifier's input is not one of those
 * layers' features (a global pooling, a flatten), `<producer>/features` for it; then `__probe__/labels`
 * of shape [n] (float32 class ids). Attributes (`paramtrail.attrs`): `probe` (the probe's sha256),
 * `pool`, `penultimate` (the tensor holding the classifier's input) and `layers` (JSON
 * [{layer, depth}] of the layers with parameters), plus whatever the writer adds (model, dataset, seed).
 *
 * The snapshot codec checks its kind against weights | optimizer; the features kind is set on the
 * encoded file here (and a file read back is handed to the codec under the weights kind) so that every
 * other check and the sha256 verification stay the codec's own.
 */
import { RecordBatch, Schema, Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import { recordTable, recordsFromArrow, recordsToArrow, type RowOf } from './records.js';
import { snapshotFromArrow, snapshotToArrow, type NamedTensor } from './snapshot.js';

/** The probe set: which test examples, in which order, with their labels. */
export const PROBE_TABLE = recordTable('probe-set', 1, { index: 'int32', label: 'int32' });
export type ProbeRow = RowOf<typeof PROBE_TABLE>;

export interface ProbeSet {
  /** Dataset name, e.g. `fashion-mnist`. */
  dataset: string;
  /** The seed the subset was drawn with (activities/data.ts DATA_SEED). */
  dataSeed: number;
  /** Examples in the full test split the indices point into. */
  testExamples: number;
  /** Indices into the full test split, increasing. */
  indices: Int32Array;
  labels: Int32Array;
}

export function probeToArrow(p: ProbeSet): Uint8Array {
  if (p.indices.length !== p.labels.length) {
    throw new Error(`probe set: expected one label per index; found ${p.indices.length} indices and ${p.labels.length} labels`);
  }
  const rows: ProbeRow[] = Array.from(p.indices, (index, i) => ({ index, label: p.labels[i]! }));
  return recordsToArrow(PROBE_TABLE, rows, { dataset: p.dataset, dataSeed: String(p.dataSeed), testExamples: String(p.testExamples) });
}

export function probeFromArrow(bytes: Uint8Array): ProbeSet {
  const { rows, meta } = recordsFromArrow(PROBE_TABLE, bytes);
  return {
    dataset: meta['dataset'] ?? '',
    dataSeed: Number(meta['dataSeed']),
    testExamples: Number(meta['testExamples']),
    indices: Int32Array.from(rows, (r) => r.index),
    labels: Int32Array.from(rows, (r) => r.label),
  };
}

/** Row-major (rows x cols) float32 values: assignable to ml/metrics FeatureMatrix. */
export interface FeatureValues {
  values: Float32Array;
  rows: number;
  cols: number;
}

export interface FeaturesLayer {
  layer: string;
  /** 0-based order among the layers with parameters; -1 for a penultimate entry that is none of them. */
  depth: number;
  features: FeatureValues;
}

export interface FeaturesFile {
  runId: string;
  /** Epoch and step of the weights the features were computed with. */
  epoch: number;
  step: number;
  /** sha256 of the probe-set object. */
  probe: string;
  /** How convolution outputs were pooled: `mean` or `flatten`. */
  pool: string;
  /** Class ids of the probe examples, as float32. */
  labels: Float32Array;
  /** Every layer with parameters, by depth. */
  layers: FeaturesLayer[];
  /** The classifier's input: the same object as an entry of `layers`, or an extra entry of depth -1. */
  penultimate: FeaturesLayer;
  /** Further attributes the writer recorded (model, dataset, seed, ...). */
  attrs: Record<string, string>;
}

export type FeaturesFileInput = Omit<FeaturesFile, 'attrs'> & { attrs?: Record<string, string> };

/** Tensor layer name of the probe labels; no model layer may have it. */
export const PROBE_LAYER = '__probe__';
export const FEATURES_KIND = 'features';
const KIND_KEY = 'paramtrail.kind';
/** Attributes the codec owns; a writer's own attrs may not use them. */
const OWN_ATTRS = ['probe', 'pool', 'penultimate', 'layers'];

/** The same Arrow file with schema metadata `paramtrail.kind` changed from `from` to `to`. */
function withKind(bytes: Uint8Array, from: string, to: string): Uint8Array {
  let table: Table;
  try {
    table = tableFromIPC(bytes);
  } catch (err) {
    throw new Error(`features file: expected an Arrow IPC file, found bytes that do not parse as one (${(err as Error).message})`);
  }
  const metadata = new Map(table.schema.metadata);
  const kind = metadata.get(KIND_KEY);
  if (kind !== from) throw new Error(`features file: expected ${KIND_KEY} "${from}", found ${kind === undefined ? 'none' : `"${kind}"`}`);
  metadata.set(KIND_KEY, to);
  const schema = new Schema(table.schema.fields, metadata);
  return tableToIPC(new Table(table.batches.map((b) => new RecordBatch(schema, b.data))), 'file');
}

function checkMatrix(f: FeaturesLayer, n: number): void {
  const { values, rows, cols } = f.features;
  if (!(values instanceof Float32Array)) throw new Error(`features of ${f.layer}: expected a Float32Array, found ${Object.prototype.toString.call(values)}`);
  if (rows !== n) throw new Error(`features of ${f.layer}: expected ${n} rows (one per probe example), found ${rows}`);
  if (!Number.isInteger(cols) || cols < 0 || values.length !== rows * cols) {
    throw new Error(`features of ${f.layer}: expected ${rows} x ${cols} values, found ${values.length}`);
  }
}

export function featuresToArrow(f: FeaturesFileInput): Uint8Array {
  const n = f.labels.length;
  const names = new Set<string>();
  f.layers.forEach((l, i) => {
    if (l.depth !== i) throw new Error(`features: expected the layers by depth, found ${l.layer} of depth ${l.depth} at position ${i}`);
    if (l.layer === PROBE_LAYER) throw new Error(`features: the layer name ${PROBE_LAYER} is reserved for the probe labels`);
    if (names.has(l.layer)) throw new Error(`features: layer ${l.layer} is listed twice`);
    names.add(l.layer);
    checkMatrix(l, n);
  });
  const extra = !names.has(f.penultimate.layer);
  if (extra) {
    if (f.penultimate.depth !== -1 || f.penultimate.layer === PROBE_LAYER) {
      throw new Error(`features: expected the penultimate entry to be one of the layers or an extra entry of depth -1, found ${f.penultimate.layer} of depth ${f.penultimate.depth}`);
    }
    checkMatrix(f.penultimate, n);
  } else if (f.layers[f.penultimate.depth]?.features !== f.penultimate.features) {
    throw new Error(`features: the penultimate entry names layer ${f.penultimate.layer} but holds other features than that layer`);
  }
  for (const k of OWN_ATTRS) if (f.attrs && k in f.attrs) throw new Error(`features: attribute "${k}" is the codec's own`);
  const tensor = (l: FeaturesLayer): NamedTensor => ({ layer: l.layer, name: 'features', shape: [n, l.features.cols], values: l.features.values });
  const tensors = [
    ...f.layers.map(tensor),
    ...(extra ? [tensor(f.penultimate)] : []),
    { layer: PROBE_LAYER, name: 'labels', shape: [n], values: f.labels },
  ];
  const attrs = {
    ...f.attrs,
    probe: f.probe,
    pool: f.pool,
    penultimate: f.penultimate.layer,
    layers: JSON.stringify(f.layers.map((l) => ({ layer: l.layer, depth: l.depth }))),
  };
  const bytes = snapshotToArrow({ runId: f.runId, epoch: f.epoch, step: f.step, kind: 'weights', attrs, tensors });
  return withKind(bytes, 'weights', FEATURES_KIND);
}

/**
 * Reads a features file. Each tensor's sha256 is verified (unless `verify` is false); the matrices are
 * views on a copy of the bytes.
 */
export function featuresFromArrow(bytes: Uint8Array, opts: { verify?: boolean; source?: string } = {}): FeaturesFile {
  const snap = snapshotFromArrow(withKind(bytes, FEATURES_KIND, 'weights'), opts);
  const { probe, pool, penultimate, layers: listed, ...attrs } = snap.attrs ?? {};
  const what = opts.source ?? `features of run ${snap.runId}`;
  if (!probe || !pool || !penultimate || !listed) {
    throw new Error(`${what}: expected attributes probe, pool, penultimate and layers; found ${Object.keys(snap.attrs ?? {}).join(', ') || 'none'}`);
  }
  const byName = new Map(snap.tensors.map((t) => [`${t.layer}/${t.name}`, t]));
  const labelsTensor = byName.get(`${PROBE_LAYER}/labels`);
  if (!labelsTensor || labelsTensor.shape.length !== 1) throw new Error(`${what}: expected a ${PROBE_LAYER}/labels tensor of shape [n], found ${labelsTensor ? `[${labelsTensor.shape}]` : 'none'}`);
  const n = labelsTensor.shape[0]!;
  const matrix = (layer: string, depth: number): FeaturesLayer => {
    const t = byName.get(`${layer}/features`);
    if (!t || t.shape.length !== 2 || t.shape[0] !== n) {
      throw new Error(`${what}: expected a ${layer}/features tensor of shape [${n}, d], found ${t ? `[${t.shape}]` : 'none'}`);
    }
    return { layer, depth, features: { values: t.values, rows: n, cols: t.shape[1]! } };
  };
  let entries: Array<{ layer: string; depth: number }>;
  try {
    entries = JSON.parse(listed) as Array<{ layer: string; depth: number }>;
  } catch {
    throw new Error(`${what}: expected attribute layers to be JSON, found ${JSON.stringify(listed.slice(0, 80))}`);
  }
  const layers = entries.map((e) => matrix(e.layer, e.depth));
  return {
    runId: snap.runId,
    epoch: snap.epoch,
    step: snap.step,
    probe,
    pool,
    labels: labelsTensor.values,
    layers,
    penultimate: layers.find((l) => l.layer === penultimate) ?? matrix(penultimate, -1),
    attrs,
  };
}
