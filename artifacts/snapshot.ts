/**
 * The snapshot codec: every weight of a model at one moment, in ONE Arrow IPC file. `train` writes a
 * snapshot per configured epoch and `distance` reads them back; any Arrow reader (pyarrow, arrow-rs,
 * DuckDB) can open the files without paramtrail.
 *
 * Layout: one record batch, one row per tensor, rows in the order given (layer depth order):
 *
 *   layer: Utf8   name: Utf8   shape: List<Int32>   values: List<Float32>
 *
 * Schema metadata (all strings):
 *   paramtrail.format_version  "1"
 *   paramtrail.run_id, paramtrail.epoch, paramtrail.step, paramtrail.kind ('weights' | 'optimizer')
 *   paramtrail.tensors         JSON [{layer, name, sha256}], sha256 of each tensor's little-endian float32 bytes
 *   paramtrail.attrs           JSON object of strings
 *
 * Reads are zero-copy: each decoded tensor's `values` is a Float32Array view on the bytes passed in.
 */
import {
  Field,
  Float32,
  Int32,
  List,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  Table,
  tableFromIPC,
  tableToIPC,
  Utf8,
  vectorFromArray,
  type Data,
} from 'apache-arrow';
import { createHash } from 'node:crypto';
import { IntegrityError, type ArtifactStore } from './store.js';

export const SNAPSHOT_FORMAT_VERSION = 1;

export interface NamedTensor {
  /** Layer that owns the variable, e.g. `conv2d_1`. */
  layer: string;
  /** Variable within the layer, e.g. `kernel`. */
  name: string;
  /** [] for a scalar; a dimension may be 0. */
  shape: number[];
  values: Float32Array;
}

export interface SnapshotMeta {
  runId: string;
  epoch: number;
  step: number;
  kind: 'weights' | 'optimizer';
  attrs?: Record<string, string>;
}

export interface Snapshot extends SnapshotMeta {
  tensors: NamedTensor[];
}

export interface DecodedSnapshot extends Snapshot {
  formatVersion: number;
  tensors: Array<NamedTensor & { sha256: string }>;
}

const META = {
  formatVersion: 'paramtrail.format_version',
  runId: 'paramtrail.run_id',
  epoch: 'paramtrail.epoch',
  step: 'paramtrail.step',
  kind: 'paramtrail.kind',
  tensors: 'paramtrail.tensors',
  attrs: 'paramtrail.attrs',
} as const;

const KINDS = ['weights', 'optimizer'] as const;

/** Every platform Node runs on today is little-endian; the format is little-endian regardless. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The tensor's float32 values as little-endian bytes: a view when the platform is little-endian. */
function littleEndianBytes(values: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.byteLength);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return out;
}

/** sha256 of the little-endian float32 bytes. */
export function tensorSha256(values: Float32Array): string {
  return createHash('sha256').update(littleEndianBytes(values)).digest('hex');
}

function invalid(what: string, expected: string, found: unknown): Error {
  return new Error(`snapshot ${what}: expected ${expected}, found ${typeof found === 'string' ? found : JSON.stringify(found)}`);
}

function elementCount(shape: number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

function checkTensor(t: NamedTensor, i: number): void {
  const at = `tensor ${i} (${t.layer}/${t.name})`;
  if (typeof t.layer !== 'string' || t.layer === '') throw invalid(`tensor ${i} layer`, 'a non-empty string', t.layer);
  if (typeof t.name !== 'string' || t.name === '') throw invalid(`tensor ${i} name`, 'a non-empty string', t.name);
  if (!(t.values instanceof Float32Array)) throw invalid(`${at} values`, 'a Float32Array', Object.prototype.toString.call(t.values));
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0 && d <= 0x7fffffff)) {
    throw invalid(`${at} shape`, 'an array of non-negative int32 dimensions', t.shape);
  }
  if (elementCount(t.shape) !== t.values.length) {
    throw invalid(`${at}`, `${elementCount(t.shape)} values for shape [${t.shape.join(', ')}]`, `${t.values.length}`);
  }
}

function checkMeta(s: SnapshotMeta): void {
  if (typeof s.runId !== 'string' || s.runId === '') throw invalid('runId', 'a non-empty string', s.runId);
  if (!Number.isSafeInteger(s.epoch) || s.epoch < 0) throw invalid('epoch', 'a non-negative integer', s.epoch);
  if (!Number.isSafeInteger(s.step) || s.step < 0) throw invalid('step', 'a non-negative integer', s.step);
  if (!KINDS.includes(s.kind)) throw invalid('kind', KINDS.join(' or '), s.kind);
  for (const [k, v] of Object.entries(s.attrs ?? {})) {
    if (typeof v !== 'string') throw invalid(`attrs.${k}`, 'a string', v);
  }
}

function int32Offsets(lengths: number[]): Int32Array {
  const offsets = new Int32Array(lengths.length + 1);
  for (let i = 0; i < lengths.length; i++) {
    const next = offsets[i] + lengths[i];
    if (next > 0x7fffffff) throw invalid('size', 'at most 2^31-1 values in all (Arrow List offsets are int32)', next);
    offsets[i + 1] = next;
  }
  return offsets;
}

/** The Float32 child of row-list column `values` of a batch, with the row's start offsets. */
function valuesOf(batch: RecordBatch): { offsets: Int32Array; rowOffset: number; child: Float32Array; childOffset: number } {
  const data = batch.getChild('values')!.data[0] as Data<List<Float32>>;
  const child = data.children[0] as Data<Float32>;
  return { offsets: data.valueOffsets, rowOffset: data.offset, child: child.values, childOffset: child.offset };
}

export function snapshotToArrow(s: Snapshot): Uint8Array {
  checkMeta(s);
  s.tensors.forEach(checkTensor);
  const n = s.tensors.length;
  const sha256s = s.tensors.map((t) => tensorSha256(t.values));

  const shapeType = new List(new Field('item', new Int32(), false));
  const valuesType = new List(new Field('item', new Float32(), false));
  const valueOffsets = int32Offsets(s.tensors.map((t) => t.values.length));
  const total = valueOffsets[n];
  const shapeOffsets = int32Offsets(s.tensors.map((t) => t.shape.length));
  const dims = Int32Array.from(s.tensors.flatMap((t) => t.shape));

  // The values column is written as zeros and the tensors copied straight into the encoded file
  // afterwards. Filling an Arrow buffer first and encoding would copy every tensor twice (into the
  // buffer, then again when the IPC writer joins its output), and snapshots are the largest thing
  // paramtrail writes.
  const fields = [
    new Field('layer', new Utf8(), false),
    new Field('name', new Utf8(), false),
    new Field('shape', shapeType, false),
    new Field('values', valuesType, false),
  ];
  const metadata = new Map<string, string>([
    [META.formatVersion, String(SNAPSHOT_FORMAT_VERSION)],
    [META.runId, s.runId],
    [META.epoch, String(s.epoch)],
    [META.step, String(s.step)],
    [META.kind, s.kind],
    [META.tensors, JSON.stringify(s.tensors.map((t, i) => ({ layer: t.layer, name: t.name, sha256: sha256s[i] })))],
    [META.attrs, JSON.stringify(s.attrs ?? {})],
  ]);
  const schema = new Schema(fields, metadata);
  const columns = [
    vectorFromArray(s.tensors.map((t) => t.layer), new Utf8()).data[0],
    vectorFromArray(s.tensors.map((t) => t.name), new Utf8()).data[0],
    makeData({ type: shapeType, length: n, nullCount: 0, valueOffsets: shapeOffsets, child: makeData({ type: new Int32(), length: dims.length, nullCount: 0, data: dims }) }),
    makeData({ type: valuesType, length: n, nullCount: 0, valueOffsets, child: makeData({ type: new Float32(), length: total, nullCount: 0, data: new Float32Array(total) }) }),
  ];
  const batch = new RecordBatch(schema, makeData({ type: new Struct(fields), length: n, nullCount: 0, children: columns }));
  const bytes = tableToIPC(new Table([batch]), 'file');

  // Find where the encoder put the values buffer by reading the file back (metadata only: the reader
  // returns views on `bytes`), then place each tensor there: its one and only copy.
  if (total === 0) return bytes;
  const [written] = tableFromIPC(bytes).batches;
  const { child, childOffset } = valuesOf(written);
  if (child.buffer !== bytes.buffer || child.length - childOffset < total) {
    throw new Error('snapshotToArrow: expected the encoded values column to be a view on the output, found a copy');
  }
  s.tensors.forEach((t, i) => {
    const target = child.subarray(childOffset + valueOffsets[i], childOffset + valueOffsets[i + 1]);
    if (LITTLE_ENDIAN) target.set(t.values);
    else new Uint8Array(target.buffer, target.byteOffset, target.byteLength).set(littleEndianBytes(t.values));
  });
  return bytes;
}

function parseJson<T>(key: string, text: string | undefined): T {
  if (text === undefined) throw new Error(`snapshot metadata: expected ${key}, found none`);
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`snapshot metadata ${key}: expected JSON, found ${JSON.stringify(text.slice(0, 80))} (${(err as Error).message})`);
  }
}

function parseCount(key: string, text: string | undefined): number {
  const n = Number(text);
  if (text === undefined || !/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw invalid(`metadata ${key}`, 'a non-negative integer', text ?? 'nothing');
  return n;
}

export function snapshotFromArrow(
  bytes: Uint8Array,
  opts: {
    /** Default true: recompute each tensor's sha256 and throw IntegrityError naming the tensor on mismatch. */
    verify?: boolean;
    /** What the bytes are (e.g. their object key), named in an IntegrityError. */
    source?: string;
  } = {},
): DecodedSnapshot {
  const verify = opts.verify ?? true;
  // Arrow aligns every buffer to 8 bytes from the start of the file, so the float32 views are valid
  // exactly when the file itself starts on a 4-byte boundary. A file read at an odd offset (e.g. sliced
  // out of a larger buffer) is copied once, whole, into fresh memory; its views then point there.
  const input = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();

  let table: Table;
  try {
    table = tableFromIPC(input);
  } catch (err) {
    throw new Error(`snapshot: expected an Arrow IPC file, found bytes that do not parse as one (${(err as Error).message})`);
  }
  const meta = table.schema.metadata;
  const versionText = meta.get(META.formatVersion);
  if (versionText === undefined) {
    throw new Error(`snapshot: expected an Arrow file written by paramtrail (schema metadata ${META.formatVersion}), found none`);
  }
  const formatVersion = Number(versionText);
  if (formatVersion !== SNAPSHOT_FORMAT_VERSION) {
    throw new Error(`snapshot: expected format version ${SNAPSHOT_FORMAT_VERSION}, found ${versionText}; this paramtrail cannot read it`);
  }
  const expectColumn = (name: string, type: string): void => {
    const field = table.schema.fields.find((f) => f.name === name);
    if (!field || String(field.type) !== type) throw invalid(`column ${name}`, type, field ? String(field.type) : 'no such column');
  };
  expectColumn('layer', 'Utf8');
  expectColumn('name', 'Utf8');
  expectColumn('shape', 'List<Int32>');
  expectColumn('values', 'List<Float32>');

  const kind = meta.get(META.kind);
  if (!KINDS.includes(kind as SnapshotMeta['kind'])) throw invalid(`metadata ${META.kind}`, KINDS.join(' or '), kind ?? 'nothing');
  const runId = meta.get(META.runId);
  if (!runId) throw invalid(`metadata ${META.runId}`, 'a run id', 'nothing');
  const listed = parseJson<Array<{ layer: string; name: string; sha256: string }>>(META.tensors, meta.get(META.tensors));
  if (!Array.isArray(listed) || listed.length !== table.numRows) {
    throw invalid(`metadata ${META.tensors}`, `${table.numRows} entries, one per row`, Array.isArray(listed) ? `${listed.length}` : listed);
  }
  const attrs = parseJson<Record<string, string>>(META.attrs, meta.get(META.attrs) ?? '{}');

  const tensors: DecodedSnapshot['tensors'] = [];
  for (const batch of table.batches) {
    const layers = batch.getChild('layer')!;
    const names = batch.getChild('name')!;
    const shapeData = batch.getChild('shape')!.data[0] as Data<List<Int32>>;
    const dims = (shapeData.children[0] as Data<Int32>).values;
    const dimsOffset = shapeData.children[0].offset;
    const { offsets, rowOffset, child, childOffset } = valuesOf(batch);
    for (let row = 0; row < batch.numRows; row++) {
      const i = tensors.length;
      const layer = layers.get(row) as string;
      const name = names.get(row) as string;
      const entry = listed[i];
      if (entry?.layer !== layer || entry?.name !== name) {
        throw invalid(`metadata ${META.tensors}[${i}]`, `${layer}/${name} as in row ${i}`, entry ? `${entry.layer}/${entry.name}` : 'nothing');
      }
      const shape = Array.from(
        dims.subarray(dimsOffset + shapeData.valueOffsets[shapeData.offset + row], dimsOffset + shapeData.valueOffsets[shapeData.offset + row + 1]),
      );
      const values = child.subarray(childOffset + offsets[rowOffset + row], childOffset + offsets[rowOffset + row + 1]);
      if (elementCount(shape) !== values.length) {
        throw invalid(`tensor ${layer}/${name}`, `${elementCount(shape)} values for shape [${shape.join(', ')}]`, `${values.length}`);
      }
      if (verify) {
        const found = tensorSha256(values);
        if (found !== entry.sha256) {
          const source = opts.source ?? `snapshot of run ${runId} at epoch ${meta.get(META.epoch)}`;
          throw new IntegrityError(source, entry.sha256, found, `tensor ${layer}/${name}`);
        }
      }
      tensors.push({ layer, name, shape, values, sha256: entry.sha256 });
    }
  }

  return {
    formatVersion,
    runId,
    epoch: parseCount(META.epoch, meta.get(META.epoch)),
    step: parseCount(META.step, meta.get(META.step)),
    kind: kind as SnapshotMeta['kind'],
    attrs,
    tensors,
  };
}

/**
 * Reads a stored snapshot and decodes it. The object's bytes are checked against the ref's sha256: they
 * are then the very bytes that were stored, tensor hashes and all, so the tensors are not hashed a
 * second time (that would double the cost of every read of a large snapshot).
 */
export async function getSnapshot(store: ArtifactStore, ref: { key: string; sha256: string }, signal?: AbortSignal): Promise<DecodedSnapshot> {
  return snapshotFromArrow(await store.get(ref.key, { sha256: ref.sha256, signal }), { source: ref.key, verify: false });
}
