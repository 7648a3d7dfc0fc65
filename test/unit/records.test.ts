import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tableFromIPC } from 'apache-arrow';
import { recordTable, recordsFromArrow, recordsToArrow, type RowOf } from '../../artifacts/records.js';

const CKA = recordTable('cka-matrix', 2, { layerA: 'utf8', depthA: 'int32', cka: 'float64' });
type CkaRow = RowOf<typeof CKA>;

test('records round-trip with typed columns and metadata', () => {
  const rows: CkaRow[] = [
    { layerA: 'conv1', depthA: 0, cka: 0.5 },
    { layerA: 'dense/ü', depthA: -1, cka: Number.NaN },
  ];
  const bytes = recordsToArrow(CKA, rows, { runA: 'e/r1' });
  const back = recordsFromArrow(CKA, bytes);
  assert.deepEqual(back.rows, rows);
  assert.deepEqual(back.meta, { runA: 'e/r1' });
  const table = tableFromIPC(bytes);
  assert.deepEqual(table.schema.fields.map((f) => String(f.type)), ['Utf8', 'Int32', 'Float64']);
  assert.equal(table.schema.metadata.get('paramtrail.table'), 'cka-matrix');
});

test('an empty table keeps its columns', () => {
  assert.deepEqual(recordsFromArrow(CKA, recordsToArrow(CKA, [])).rows, []);
});

test('bad rows and foreign tables are refused by name', () => {
  assert.throws(() => recordsToArrow(CKA, [{ layerA: 'x', depthA: 1.5, cka: 0 }]), /cka-matrix row 0: expected depthA to be a 32-bit integer; found 1.5/);
  assert.throws(() => recordsToArrow(CKA, [{ layerA: 3 as unknown as string, depthA: 1, cka: 0 }]), /expected layerA to be a string/);
  assert.throws(() => recordsToArrow(CKA, [], { 'paramtrail.table': 'x' }), /reserved/);
  const other = recordTable('smoothness', 1, { layer: 'utf8' });
  assert.throws(() => recordsFromArrow(other, recordsToArrow(CKA, [])), /expected a smoothness table; found a cka-matrix table/);
  const newer = recordTable('cka-matrix', 3, CKA.columns);
  assert.throws(() => recordsFromArrow(CKA, recordsToArrow(newer, [])), /expected format version 1 to 2; found 3/);
  const fewer = recordTable('cka-matrix', 1, { layerA: 'utf8' });
  assert.throws(() => recordsFromArrow(CKA, recordsToArrow(fewer, [])), /expected a column "depthA"/);
  assert.throws(() => recordsFromArrow(CKA, new Uint8Array([1, 2, 3])), /expected a cka-matrix table/);
});
