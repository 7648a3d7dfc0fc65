/**
 * Decoder for the IDX format of MNIST-style datasets (http://yann.lecun.com/exdb/mnist/):
 * two zero bytes, a type byte, the number of dimensions, each dimension as a big-endian uint32, then the
 * values, big-endian, row-major.
 *
 * Called by ml/data/datasets.ts on the decompressed bytes of each dataset file.
 */

export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxTensor {
  dims: number[];
  data: IdxData;
}

interface IdxType {
  name: string;
  bytes: number;
  read(view: DataView, offset: number, n: number): IdxData;
}

function reader<T extends IdxData>(
  make: (n: number) => T,
  get: (view: DataView, at: number) => number,
  bytes: number,
): IdxType['read'] {
  return (view, offset, n) => {
    const out = make(n);
    for (let i = 0; i < n; i++) out[i] = get(view, offset + i * bytes);
    return out;
  };
}

const TYPES: ReadonlyMap<number, IdxType> = new Map([
  [0x08, { name: 'uint8', bytes: 1, read: (v, o, n) => new Uint8Array(v.buffer, v.byteOffset + o, n).slice() }],
  [0x09, { name: 'int8', bytes: 1, read: (v, o, n) => new Int8Array(v.buffer, v.byteOffset + o, n).slice() }],
  [0x0b, { name: 'int16', bytes: 2, read: reader((n) => new Int16Array(n), (v, at) => v.getInt16(at, false), 2) }],
  [0x0c, { name: 'int32', bytes: 4, read: reader((n) => new Int32Array(n), (v, at) => v.getInt32(at, false), 4) }],
  [0x0d, { name: 'float32', bytes: 4, read: reader((n) => new Float32Array(n), (v, at) => v.getFloat32(at, false), 4) }],
  [0x0e, { name: 'float64', bytes: 8, read: reader((n) => new Float64Array(n), (v, at) => v.getFloat64(at, false), 8) }],
]);

const hex = (b: number) => `0x${b.toString(16).padStart(2, '0')}`;

/** Parses one IDX file (already decompressed). Throws on a bad magic number, an unknown type or a wrong body length. */
export function parseIdx(bytes: Uint8Array): IdxTensor {
  if (bytes.length < 4) {
    throw new Error(`IDX: expected at least a 4-byte header, found ${bytes.length} bytes`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new Error(
      `IDX: bad magic number: expected the file to start with 0x00 0x00, found ${hex(bytes[0]!)} ${hex(bytes[1]!)}` +
        ' (is the file still gzip-compressed?)',
    );
  }
  const type = TYPES.get(bytes[2]!);
  if (!type) {
    throw new Error(`IDX: unknown data type ${hex(bytes[2]!)}: expected one of ${[...TYPES.keys()].map(hex).join(', ')}`);
  }
  const ndims = bytes[3]!;
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new Error(`IDX: expected a ${headerBytes}-byte header for ${ndims} dimensions, found ${bytes.length} bytes`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const expected = count * type.bytes;
  const found = bytes.length - headerBytes;
  if (found !== expected) {
    throw new Error(
      `IDX: expected ${expected} bytes of data after the header (dims [${dims.join(', ')}] of ${type.name}), found ${found}` +
        (found < expected ? ' (the file is truncated)' : ' (the file has trailing bytes)'),
    );
  }
  return { dims, data: type.read(view, headerBytes, count) };
}
