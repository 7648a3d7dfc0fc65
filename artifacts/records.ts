/**
 * Analysis tables as Arrow IPC files: rows of typed columns (Utf8, Int32, Float64) with schema metadata
 * naming the table's kind, its format version and free-form string metadata (run id, layer, ...).
 *
 * Every analysis activity (change, correlation, CKA, perturbation norms, re-initialisation, smoothness,
 * aggregates) declares a `RecordTableSpec` for its rows and stores them with `recordsToArrow`; figures
 * and the report read them back with `recordsFromArrow`, which refuses a file of another kind or a
 * newer version by name. Being plain Arrow, each file opens in pyarrow or pandas with no extra code.
 */
import { Field, Float64, Int32, Schema, Table, Type, Utf8, tableFromIPC, tableToIPC, vectorFromArray, type DataType } from 'apache-arrow';
import { FORMAT_VERSION_KEY, TABLE_KIND_KEY } from './table.js';

export type ColumnType = 'utf8' | 'int32' | 'float64';

type ValueOf<T extends ColumnType> = T extends 'utf8' ? string : number;

/** What one kind of table holds: its name in the file, its version, and its columns in file order. */
export interface RecordTableSpec<R extends Record<string, string | number>> {
  kind: string;
  version: number;
  columns: { readonly [K in keyof R]: ColumnType };
}

/** Declares a table kind with the row type its columns imply. */
export function recordTable<C extends Record<string, ColumnType>>(
  kind: string,
  version: number,
  columns: C,
): RecordTableSpec<{ [K in keyof C]: ValueOf<C[K]> }> {
  return { kind, version, columns: columns as never };
}

/** The row type of a table spec: `RowOf<typeof CKA_TABLE>`. */
export type RowOf<S> = S extends RecordTableSpec<infer R> ? R : never;

const ARROW_TYPES: Record<ColumnType, () => DataType> = {
  utf8: () => new Utf8(),
  int32: () => new Int32(),
  float64: () => new Float64(),
};
const TYPE_IDS: Record<ColumnType, Type> = { utf8: Type.Utf8, int32: Type.Int, float64: Type.Float };

function checkValue(kind: string, index: number, column: string, type: ColumnType, value: unknown): void {
  const ok =
    type === 'utf8'
      ? typeof value === 'string'
      : type === 'int32'
        ? typeof value === 'number' && Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff
        : typeof value === 'number'; // NaN and infinities are values (a diverged run, an undefined correlation)
  if (!ok) {
    const expected = type === 'utf8' ? 'a string' : type === 'int32' ? 'a 32-bit integer' : 'a number';
    throw new Error(`${kind} row ${index}: expected ${column} to be ${expected}; found ${JSON.stringify(value)}`);
  }
}

/**
 * Encodes `rows` as an Arrow IPC file of `spec`'s kind. Rows are checked first, so a bad row fails here
 * with its index and column. `meta` keys must not start with `paramtrail.` (those are the codec's own).
 */
export function recordsToArrow<R extends Record<string, string | number>>(
  spec: RecordTableSpec<R>,
  rows: readonly R[],
  meta: Record<string, string> = {},
): Uint8Array {
  const names = Object.keys(spec.columns) as Array<keyof R & string>;
  rows.forEach((row, i) => {
    for (const name of names) checkValue(spec.kind, i, name, spec.columns[name], row[name]);
  });
  for (const k of Object.keys(meta)) {
    if (k.startsWith('paramtrail.')) throw new Error(`${spec.kind}: metadata key "${k}" is reserved`);
  }
  const metadata = new Map([[TABLE_KIND_KEY, spec.kind], [FORMAT_VERSION_KEY, String(spec.version)], ...Object.entries(meta)]);
  const schema = new Schema(
    names.map((n) => new Field(n, ARROW_TYPES[spec.columns[n]](), false)),
    metadata,
  );
  if (rows.length === 0) return tableToIPC(new Table(schema), 'file');
  const vectors = Object.fromEntries(names.map((n) => [n, vectorFromArray(rows.map((r) => r[n]) as never[], ARROW_TYPES[spec.columns[n]]())]));
  return tableToIPC(new Table(schema, vectors), 'file');
}

/** Decodes a file written by `recordsToArrow` with the same spec; any other table is rejected by name. */
export function recordsFromArrow<R extends Record<string, string | number>>(
  spec: RecordTableSpec<R>,
  bytes: Uint8Array,
): { rows: R[]; meta: Record<string, string> } {
  let table: Table;
  try {
    table = tableFromIPC(bytes);
  } catch (err) {
    throw new Error(`expected a ${spec.kind} table (Arrow IPC); found bytes Arrow cannot read (${(err as Error).message})`);
  }
  const metadata = table.schema.metadata;
  const kind = metadata.get(TABLE_KIND_KEY);
  if (kind !== spec.kind) {
    throw new Error(`expected a ${spec.kind} table; found ${kind === undefined ? `no ${TABLE_KIND_KEY} metadata` : `a ${kind} table`}`);
  }
  const version = Number(metadata.get(FORMAT_VERSION_KEY));
  if (!Number.isInteger(version) || version < 1 || version > spec.version) {
    throw new Error(`${spec.kind} table: expected format version 1 to ${spec.version}; found ${metadata.get(FORMAT_VERSION_KEY) ?? 'none'}`);
  }
  const names = Object.keys(spec.columns) as Array<keyof R & string>;
  const columns = names.map((n) => {
    const field = table.schema.fields.find((f) => f.name === n);
    const column = table.getChild(n);
    if (!field || !column) {
      throw new Error(`${spec.kind} table: expected a column "${n}"; found ${table.schema.fields.map((f) => f.name).join(', ') || 'none'}`);
    }
    if (field.type.typeId !== TYPE_IDS[spec.columns[n]] || String(field.type) !== String(ARROW_TYPES[spec.columns[n]]())) {
      throw new Error(`${spec.kind} table: expected column "${n}" of type ${String(ARROW_TYPES[spec.columns[n]]())}; found ${String(field.type)}`);
    }
    if (column.nullCount > 0) throw new Error(`${spec.kind} table: expected no missing values in column "${n}"; found ${column.nullCount}`);
    return column;
  });
  const rows: R[] = [];
  for (let i = 0; i < table.numRows; i++) {
    const row = {} as Record<string, string | number>;
    names.forEach((n, j) => {
      row[n] = columns[j]!.get(i) as string | number;
    });
    rows.push(row as R);
  }
  const meta: Record<string, string> = {};
  for (const [k, v] of metadata) if (!k.startsWith('paramtrail.')) meta[k] = v;
  return { rows, meta };
}
