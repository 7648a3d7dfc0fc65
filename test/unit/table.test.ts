/**
 * The distance table's Arrow round trip, its column types as any Arrow reader sees them, reading a
 * version-1 file (its missing columns as NaN), and the rejection of files that are not distance tables.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Float64, Table, Type, tableFromArrays, tableFromIPC, tableToIPC, vectorFromArray } from 'apache-arrow';
import {
  DISTANCE_TABLE_FORMAT_VERSION,
  type DistanceRow,
  distanceTableFromArrow,
  distanceTableMetaFromArrow,
  distanceTableToArrow,
} from '../../artifacts/table.js';

const rows: DistanceRow[] = [
  { runId: 'run-a', epoch: 1, against: 'init', referenceEpoch: 0, p: '1', layer: 'conv1', depth: 0, params: 156, distance: 1.25, meanDistance: 1.25 / 156, relative: 0.5, changed: 1 },
  { runId: 'run-a', epoch: 1, against: 'init', referenceEpoch: 0, p: '1', layer: '__model__', depth: -1, params: 61706, distance: 0.1 + 0.2, meanDistance: (0.1 + 0.2) / 61706, relative: 1e-7, changed: 0.625 },
  { runId: 'run-a', epoch: 2, against: 'previous', referenceEpoch: 1, p: 'inf', layer: 'dense/ü', depth: 3, params: 850, distance: 1e-300, meanDistance: 1e-300 / 850, relative: Number.POSITIVE_INFINITY, changed: 0 },
  { runId: 'run-a', epoch: 3, against: 'previous', referenceEpoch: 2, p: '2', layer: 'dense', depth: 4, params: 0, distance: Number.NaN, meanDistance: Number.NaN, relative: Number.NaN, changed: Number.NaN },
];

describe('distance table', () => {
  it('round-trips every row exactly, NaN included', () => {
    const bytes = distanceTableToArrow(rows, { runId: 'run-a' });
    assert.deepEqual(distanceTableFromArrow(bytes), rows);
  });

  it('round-trips an empty table', () => {
    assert.deepEqual(distanceTableFromArrow(distanceTableToArrow([], { runId: 'run-a' })), []);
  });

  it('is an Arrow IPC file with typed columns and paramtrail metadata', () => {
    const bytes = distanceTableToArrow(rows, { runId: 'run-a' });
    // Arrow IPC files open and close with the magic "ARROW1".
    assert.equal(Buffer.from(bytes.subarray(0, 6)).toString('latin1'), 'ARROW1');
    assert.equal(Buffer.from(bytes.subarray(bytes.length - 6)).toString('latin1'), 'ARROW1');
    const table = tableFromIPC(bytes);
    assert.equal(table.numRows, rows.length);
    const types = Object.fromEntries(table.schema.fields.map((f) => [f.name, String(f.type)]));
    assert.deepEqual(types, {
      runId: 'Utf8',
      epoch: 'Int32',
      against: 'Utf8',
      referenceEpoch: 'Int32',
      p: 'Utf8',
      layer: 'Utf8',
      depth: 'Int32',
      params: 'Int32',
      distance: 'Float64',
      meanDistance: 'Float64',
      relative: 'Float64',
      changed: 'Float64',
    });
    assert.equal(table.schema.fields.find((f) => f.name === 'distance')?.type.typeId, Type.Float);
    assert.ok(table.schema.fields.every((f) => !f.nullable));
    assert.equal(table.schema.metadata.get('paramtrail.table'), 'layer-distance');
    assert.equal(table.schema.metadata.get('paramtrail.format_version'), String(DISTANCE_TABLE_FORMAT_VERSION));
    assert.equal(table.schema.metadata.get('paramtrail.run_id'), 'run-a');
    assert.deepEqual(distanceTableMetaFromArrow(bytes), { runId: 'run-a', formatVersion: DISTANCE_TABLE_FORMAT_VERSION });
  });

  it('writes format version 2', () => {
    assert.equal(DISTANCE_TABLE_FORMAT_VERSION, 2);
  });

  it('reads a version-1 file, with NaN in the columns version 1 lacks', () => {
    const bytes = distanceTableToArrow(rows, { runId: 'run-a', formatVersion: 1 });
    const table = tableFromIPC(bytes);
    assert.deepEqual(
      table.schema.fields.map((f) => f.name),
      ['runId', 'epoch', 'against', 'referenceEpoch', 'p', 'layer', 'depth', 'params', 'distance'],
    );
    assert.deepEqual(distanceTableMetaFromArrow(bytes), { runId: 'run-a', formatVersion: 1 });
    assert.deepEqual(
      distanceTableFromArrow(bytes),
      rows.map((r) => ({ ...r, meanDistance: Number.NaN, relative: Number.NaN, changed: Number.NaN })),
    );
  });

  it('rejects a version-2 file missing a version-2 column', () => {
    const table = tableFromIPC(distanceTableToArrow(rows, { runId: 'run-a' }));
    const columns = Object.fromEntries(table.schema.fields.filter((f) => f.name !== 'changed').map((f) => [f.name, table.getChild(f.name)!]));
    const forged = new Table(columns);
    for (const [key, value] of table.schema.metadata) forged.schema.metadata.set(key, value);
    assert.throws(() => distanceTableFromArrow(tableToIPC(forged, 'file')), /expected a column "changed"; found columns runId, .*, relative$/);
  });

  it('rejects an Arrow table that is not a distance table', () => {
    const other = tableToIPC(tableFromArrays({ x: Float64Array.from([1, 2]) }), 'file');
    assert.throws(() => distanceTableFromArrow(other), /expected an Arrow IPC file with schema metadata paramtrail.table="layer-distance"; found no paramtrail.table key/);
  });

  it('rejects bytes that are not Arrow', () => {
    assert.throws(() => distanceTableFromArrow(new TextEncoder().encode('not arrow at all')), /found bytes that Arrow cannot read/);
  });

  it('rejects a format version newer than it knows', () => {
    const bytes = distanceTableToArrow(rows, { runId: 'run-a', formatVersion: DISTANCE_TABLE_FORMAT_VERSION + 1 });
    assert.throws(() => distanceTableFromArrow(bytes), new RegExp(`expected paramtrail.format_version from 1 to ${DISTANCE_TABLE_FORMAT_VERSION}; found "${DISTANCE_TABLE_FORMAT_VERSION + 1}"`));
  });

  it('rejects a table whose column has another type', () => {
    const table = tableFromIPC(distanceTableToArrow(rows, { runId: 'run-a' }));
    // Every column as written except epoch, stored as Float64: a reader must not guess.
    const columns = Object.fromEntries(table.schema.fields.map((f) => [f.name, table.getChild(f.name)!]));
    columns.epoch = vectorFromArray(rows.map((r) => r.epoch), new Float64());
    const forged = new Table(columns);
    for (const [key, value] of table.schema.metadata) forged.schema.metadata.set(key, value);
    assert.throws(() => distanceTableFromArrow(tableToIPC(forged, 'file')), /expected column "epoch" of type Int32; found Float64/);
  });

  it('rejects a table missing a column, listing the columns it found', () => {
    const table = tableFromIPC(distanceTableToArrow(rows, { runId: 'run-a' }));
    const columns = Object.fromEntries(table.schema.fields.filter((f) => f.name !== 'layer').map((f) => [f.name, table.getChild(f.name)!]));
    const forged = new Table(columns);
    for (const [key, value] of table.schema.metadata) forged.schema.metadata.set(key, value);
    assert.throws(() => distanceTableFromArrow(tableToIPC(forged, 'file')), /expected a column "layer"; found columns runId, epoch, against, referenceEpoch, p, depth, params, distance, meanDistance, relative, changed/);
  });

  it('rejects bad rows before writing, naming the row and field', () => {
    const bad = (patch: Partial<Record<keyof DistanceRow, unknown>>) => [rows[0], { ...rows[1], ...patch } as DistanceRow];
    assert.throws(() => distanceTableToArrow(bad({ against: 'final' }), { runId: 'run-a' }), /distance row 1: expected against to be one of init, previous or ref:<label>; found "final"/);
    assert.throws(() => distanceTableToArrow(bad({ against: 'ref:' }), { runId: 'run-a' }), /expected against to be one of init, previous or ref:<label>; found "ref:"/);
    assert.throws(() => distanceTableToArrow(bad({ against: 'ref:Bad Label' }), { runId: 'run-a' }), /found "ref:Bad Label"/);
    // A named reference round-trips.
    const named = distanceTableFromArrow(distanceTableToArrow(bad({ against: 'ref:pretrained' }), { runId: 'run-a' }));
    assert.equal(named[1]!.against, 'ref:pretrained');
    assert.throws(() => distanceTableToArrow(bad({ epoch: 1.5 }), { runId: 'run-a' }), /distance row 1: expected epoch to be an integer/);
    assert.throws(() => distanceTableToArrow(bad({ depth: -2 }), { runId: 'run-a' }), /expected depth to be an integer from -1/);
    assert.throws(() => distanceTableToArrow(bad({ params: 2 ** 31 }), { runId: 'run-a' }), /expected params to be an integer from 0 to 2\^31 - 1; found 2147483648/);
    assert.throws(() => distanceTableToArrow(bad({ layer: '' }), { runId: 'run-a' }), /expected layer to be a non-empty string/);
    assert.throws(() => distanceTableToArrow(bad({ changed: undefined }), { runId: 'run-a' }), /distance row 1: expected changed to be a number; found undefined/);
    assert.throws(() => distanceTableToArrow(bad({ meanDistance: '0.5' }), { runId: 'run-a' }), /expected meanDistance to be a number; found "0.5"/);
  });
});
