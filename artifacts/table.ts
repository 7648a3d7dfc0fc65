/**
 * The per-layer distance table as an Arrow IPC file: one row per (epoch, reference, p, layer).
 *
 * Format versions: 1 held the raw distance only; 2 adds the per-parameter mean distance, the
 * relative change |W_t - W_ref|_p / |W_ref|_p and the share of parameters changed. The reader takes
 * both, filling the columns a version-1 file lacks with NaN (unknown, never a made-up zero).
 *
 * The `distance` activity writes it with `distanceTableToArrow` and stores the bytes; the `plot`
 * activity and the report read it back with `distanceTableFromArrow`. Being plain Arrow, the same
 * file opens in pyarrow or pandas with typed columns (Utf8, Int32, Float64) and no extra code.
 */
import {
  Field,
  Float64,
  Int32,
  Schema,
  Table,
  Type,
  Utf8,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
} from 'apache-arrow';

/** Schema metadata key naming the kind of paramtrail table a file holds. */
export const TABLE_KIND_KEY = 'paramtrail.table';
/** Value of `TABLE_KIND_KEY` for the distance table. */
export const DISTANCE_TABLE_KIND = 'layer-distance';
/** Schema metadata key of the table's format version. */
export const FORMAT_VERSION_KEY = 'paramtrail.format_version';
/** Schema metadata key of the run (or gathering of runs) the table was computed for. */
export const RUN_ID_KEY = 'paramtrail.run_id';
/** The format version this module writes and the newest it reads. */
export const DISTANCE_TABLE_FORMAT_VERSION = 2;

/** One per-layer distance of one snapshot from its reference. */
export interface DistanceRow {
  runId: string;
  /** Epoch of the snapshot measured. */
  epoch: number;
  /**
   * What it is measured against: the initial weights (epoch 0), the snapshot before it, or a named
   * snapshot (`ref:<label>`, analyses.distance.references).
   */
  against: 'init' | 'previous' | `ref:${string}`;
  /** Epoch of the reference snapshot. */
  referenceEpoch: number;
  /** Order of the norm as text: '1', '2', 'inf'. */
  p: string;
  /** Layer name, or `__model__` for the whole model. */
  layer: string;
  /** 0-based order of the layer among the layers with parameters; -1 for the whole model. */
  depth: number;
  /** Number of scalar parameters measured. */
  params: number;
  /** |W_t - W_ref|_p over the row's parameters. */
  distance: number;
  /** distance / params (ml/metrics/change.ts `layerChanges`); NaN in version-1 files. */
  meanDistance: number;
  /** distance / |W_ref|_p in the same p; NaN in version-1 files. */
  relative: number;
  /**
   * Share of the row's parameters with |w_t - w_ref| > atol + rtol |w_ref| (the tolerance is the
   * activity's input, recorded in the table's lineage); NaN in version-1 files.
   */
  changed: number;
}

const AGAINST = ['init', 'previous'] as const;

/** Columns in file order, with the Arrow type of each; reader and writer share this list. */
const COLUMNS = [
  { name: 'runId', type: () => new Utf8(), typeId: Type.Utf8 },
  { name: 'epoch', type: () => new Int32(), typeId: Type.Int },
  { name: 'against', type: () => new Utf8(), typeId: Type.Utf8 },
  { name: 'referenceEpoch', type: () => new Int32(), typeId: Type.Int },
  { name: 'p', type: () => new Utf8(), typeId: Type.Utf8 },
  { name: 'layer', type: () => new Utf8(), typeId: Type.Utf8 },
  { name: 'depth', type: () => new Int32(), typeId: Type.Int },
  { name: 'params', type: () => new Int32(), typeId: Type.Int },
  { name: 'distance', type: () => new Float64(), typeId: Type.Float },
  { name: 'meanDistance', type: () => new Float64(), typeId: Type.Float },
  { name: 'relative', type: () => new Float64(), typeId: Type.Float },
  { name: 'changed', type: () => new Float64(), typeId: Type.Float },
] as const satisfies ReadonlyArray<{ name: keyof DistanceRow; type: () => unknown; typeId: Type }>;

/** Number of leading `COLUMNS` a file of each format version holds. */
const COLUMNS_IN_VERSION: Record<number, number> = { 1: 9, 2: 12 };

/** The columns a file of `version` holds; a version newer than this module's writes the newest set. */
function columnsOf(version: number): ReadonlyArray<(typeof COLUMNS)[number]> {
  return COLUMNS.slice(0, COLUMNS_IN_VERSION[version] ?? COLUMNS.length);
}

type ColumnName = (typeof COLUMNS)[number]['name'];

function rowError(index: number, field: string, expected: string, found: unknown): Error {
  return new Error(`distance row ${index}: expected ${field} to be ${expected}; found ${JSON.stringify(found)}`);
}

function checkInt32(index: number, field: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 0x7fffffff) {
    throw rowError(index, field, `an integer from ${min} to 2^31 - 1`, value);
  }
  return value;
}

function checkRow(row: DistanceRow, index: number): void {
  if (typeof row.runId !== 'string' || row.runId === '') throw rowError(index, 'runId', 'a non-empty string', row.runId);
  if (!AGAINST.includes(row.against as (typeof AGAINST)[number]) && !/^ref:[a-z0-9][a-z0-9-]*$/.test(String(row.against))) {
    throw rowError(index, 'against', `one of ${AGAINST.join(', ')} or ref:<label>`, row.against);
  }
  if (typeof row.p !== 'string' || row.p === '') throw rowError(index, 'p', "a non-empty string such as '1' or 'inf'", row.p);
  if (typeof row.layer !== 'string' || row.layer === '') throw rowError(index, 'layer', 'a non-empty string', row.layer);
  checkInt32(index, 'epoch', row.epoch, 0);
  checkInt32(index, 'referenceEpoch', row.referenceEpoch, 0);
  checkInt32(index, 'depth', row.depth, -1);
  checkInt32(index, 'params', row.params, 0);
  // NaN is allowed: it records a diverged run (see ml/metrics/minkowski.ts), or a value a version-1 file lacks.
  for (const field of ['distance', 'meanDistance', 'relative', 'changed'] as const) {
    if (typeof row[field] !== 'number') throw rowError(index, field, 'a number', row[field]);
  }
}

/**
 * Encodes rows as an Arrow IPC file whose schema metadata says it is a distance table, its format
 * version and `meta.runId`. Rows are checked first, so a bad row fails here with its index rather
 * than as a puzzling value in a reader. `formatVersion: 1` writes the version-1 columns only (what
 * older readers expect); the default is the newest version.
 */
export function distanceTableToArrow(rows: DistanceRow[], meta: { runId: string; formatVersion?: number }): Uint8Array {
  rows.forEach(checkRow);
  const version = meta.formatVersion ?? DISTANCE_TABLE_FORMAT_VERSION;
  if (!Number.isInteger(version) || version < 1) {
    throw new Error(`distance table: expected formatVersion to be a positive integer; found ${version}`);
  }
  const metadata = new Map([
    [TABLE_KIND_KEY, DISTANCE_TABLE_KIND],
    [FORMAT_VERSION_KEY, String(version)],
    [RUN_ID_KEY, meta.runId],
  ]);
  // Rows are facts, never missing values: every column is non-nullable.
  const columns = columnsOf(version);
  const schema = new Schema(
    columns.map((c) => new Field(c.name, c.type(), false)),
    metadata,
  );
  const vectors = Object.fromEntries(
    columns.map((c) => [c.name, vectorFromArray(rows.map((r) => r[c.name]), c.type())]),
  );
  // Arrow's column-map constructor infers a nullable schema when there are no rows, so an empty
  // table is written as the schema alone (readers see zero rows and the same typed columns).
  const table = rows.length === 0 ? new Table(schema) : new Table(schema, vectors);
  return tableToIPC(table, 'file');
}

function notADistanceTable(found: string): Error {
  return new Error(`expected an Arrow IPC file with schema metadata ${TABLE_KIND_KEY}="${DISTANCE_TABLE_KIND}"; found ${found}`);
}

/** Reads the schema metadata of a distance table: its run id and format version. */
export function distanceTableMetaFromArrow(bytes: Uint8Array): { runId: string; formatVersion: number } {
  return readTable(bytes).meta;
}

function readTable(bytes: Uint8Array): { table: Table; meta: { runId: string; formatVersion: number } } {
  let table: Table;
  try {
    table = tableFromIPC(bytes);
  } catch (err) {
    throw notADistanceTable(`bytes that Arrow cannot read (${(err as Error).message})`);
  }
  const metadata = table.schema.metadata;
  const kind = metadata.get(TABLE_KIND_KEY);
  if (kind !== DISTANCE_TABLE_KIND) {
    throw notADistanceTable(kind === undefined ? `no ${TABLE_KIND_KEY} key` : `${TABLE_KIND_KEY}="${kind}"`);
  }
  const versionText = metadata.get(FORMAT_VERSION_KEY);
  const formatVersion = Number(versionText);
  if (!Number.isInteger(formatVersion) || formatVersion < 1 || formatVersion > DISTANCE_TABLE_FORMAT_VERSION) {
    throw new Error(
      `distance table: expected ${FORMAT_VERSION_KEY} from 1 to ${DISTANCE_TABLE_FORMAT_VERSION}; found ${versionText === undefined ? 'none' : `"${versionText}"`}`,
    );
  }
  return { table, meta: { runId: metadata.get(RUN_ID_KEY) ?? '', formatVersion } };
}

/** Decodes a file written by `distanceTableToArrow`; any other Arrow table is rejected by name. */
export function distanceTableFromArrow(bytes: Uint8Array): DistanceRow[] {
  const { table, meta } = readTable(bytes);
  // Columns a file of an older version lacks read as NaN on every row.
  const missing = { get: (_i: number): unknown => Number.NaN };
  const columns = Object.fromEntries(COLUMNS.map((c) => [c.name, missing])) as unknown as Record<ColumnName, { get(i: number): unknown }>;
  for (const c of columnsOf(meta.formatVersion)) {
    const field = table.schema.fields.find((f) => f.name === c.name);
    const column = table.getChild(c.name);
    if (field === undefined || column === null) {
      throw new Error(`distance table: expected a column "${c.name}"; found columns ${table.schema.fields.map((f) => f.name).join(', ')}`);
    }
    if (field.type.typeId !== c.typeId || String(field.type) !== String(c.type())) {
      throw new Error(`distance table: expected column "${c.name}" of type ${String(c.type())}; found ${String(field.type)}`);
    }
    if (column.nullCount > 0) {
      throw new Error(`distance table: expected no missing values in column "${c.name}"; found ${column.nullCount}`);
    }
    columns[c.name] = column;
  }
  const rows: DistanceRow[] = [];
  for (let i = 0; i < table.numRows; i++) {
    const row = {
      runId: columns.runId.get(i),
      epoch: columns.epoch.get(i),
      against: columns.against.get(i),
      referenceEpoch: columns.referenceEpoch.get(i),
      p: columns.p.get(i),
      layer: columns.layer.get(i),
      depth: columns.depth.get(i),
      params: columns.params.get(i),
      distance: columns.distance.get(i),
      meanDistance: columns.meanDistance.get(i),
      relative: columns.relative.get(i),
      changed: columns.changed.get(i),
    } as DistanceRow;
    checkRow(row, i);
    rows.push(row);
  }
  return rows;
}
