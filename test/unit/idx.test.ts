/**
 * IDX decoding (ml/data/idx.ts) on hand-made files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIdx } from '../../ml/data/idx.js';

/** An IDX file: magic 0 0 type ndims, big-endian uint32 dims, then the body bytes as given. */
function idx(type: number, dims: number[], body: number[]): Uint8Array {
  const header = [0, 0, type, dims.length];
  for (const d of dims) header.push((d >>> 24) & 0xff, (d >>> 16) & 0xff, (d >>> 8) & 0xff, d & 0xff);
  return Uint8Array.from([...header, ...body]);
}

test('parses a 1-d uint8 file', () => {
  const { dims, data } = parseIdx(idx(0x08, [4], [7, 0, 255, 3]));
  assert.deepEqual(dims, [4]);
  assert.ok(data instanceof Uint8Array);
  assert.deepEqual([...data], [7, 0, 255, 3]);
});

test('parses a 3-d uint8 file in row-major order', () => {
  const body = Array.from({ length: 2 * 3 * 2 }, (_, i) => i * 10);
  const { dims, data } = parseIdx(idx(0x08, [2, 3, 2], body));
  assert.deepEqual(dims, [2, 3, 2]);
  assert.deepEqual([...data], body);
});

test('reads multi-byte types big-endian', () => {
  const i32 = parseIdx(idx(0x0c, [2], [0xff, 0xff, 0xff, 0xfe, 0x00, 0x01, 0x00, 0x00]));
  assert.ok(i32.data instanceof Int32Array);
  assert.deepEqual([...i32.data], [-2, 65536]);
  const i16 = parseIdx(idx(0x0b, [1], [0x01, 0x02]));
  assert.deepEqual([...i16.data], [0x0102]);
  // 1.5 as a big-endian float32 is 3f c0 00 00.
  const f32 = parseIdx(idx(0x0d, [1], [0x3f, 0xc0, 0x00, 0x00]));
  assert.ok(f32.data instanceof Float32Array);
  assert.deepEqual([...f32.data], [1.5]);
  const i8 = parseIdx(idx(0x09, [2], [0xff, 0x01]));
  assert.deepEqual([...i8.data], [-1, 1]);
});

test('does not depend on the byte offset of the input view', () => {
  const file = idx(0x0c, [1], [0, 0, 1, 0]);
  const padded = new Uint8Array(file.length + 3);
  padded.set(file, 3);
  assert.deepEqual([...parseIdx(padded.subarray(3)).data], [256]);
});

test('rejects a bad magic number, naming what it found', () => {
  // A gzip header (1f 8b) is the likely mistake.
  assert.throws(() => parseIdx(Uint8Array.from([0x1f, 0x8b, 0x08, 0x01, 0, 0, 0, 1, 5])), /bad magic number.*0x1f 0x8b/);
});

test('rejects an unknown data type', () => {
  assert.throws(() => parseIdx(idx(0x07, [1], [1])), /unknown data type 0x07/);
});

test('rejects a truncated body with the expected and found sizes', () => {
  assert.throws(
    () => parseIdx(idx(0x08, [2, 3], [1, 2, 3, 4, 5])),
    /expected 6 bytes of data after the header.*found 5.*truncated/,
  );
  assert.throws(() => parseIdx(idx(0x0c, [2], [0, 0, 0, 1, 0, 0])), /expected 8 bytes of data after the header.*found 6/);
});

test('rejects trailing bytes and a truncated header', () => {
  assert.throws(() => parseIdx(idx(0x08, [2], [1, 2, 3])), /expected 2 bytes of data after the header.*found 3.*trailing/);
  assert.throws(() => parseIdx(Uint8Array.from([0, 0, 8, 2, 0, 0, 0, 1])), /expected a 12-byte header for 2 dimensions, found 8/);
  assert.throws(() => parseIdx(Uint8Array.from([0, 0])), /at least a 4-byte header/);
});
