/**
 * Decoded datasets kept on a worker machine's disk, so that a worker process decodes a dataset only when
 * no process on its machine has decoded it yet. Every process that trains on a dataset needs its arrays:
 * gunzipping Fashion-MNIST's files takes about 0.3 s, and Imagenette's 13,394 JPEGs about 2.8 ms each
 * (37 s), in every worker, at every start. Reading the arrays back costs a read and a sha256 of them.
 *
 * A file holds the arrays exactly as decoded (8-bit pixels, or floats for resampled images, and int32
 * labels), so training on them is bit for bit training on a fresh decode. Its name is the sha256 of what
 * the arrays derive from: the dataset's definition, the sha256 of each raw file and the code version
 * (decoding is compute code: any change to it names new files). The header records the sha256 of the
 * arrays; a file that does not match it, or is cut short, is removed and the dataset decoded again.
 *
 * Files are written whole (`<name>.writing`, then renamed; one process at a time writes a given file,
 * the others go on without it) and the folder is kept under a size: after a write, the files used least
 * recently go first. A file larger than the whole allowance, or than 2 GiB, is not kept.
 *
 * Layout: MAGIC, the header's length (uint32 LE), the header (JSON), zero padding to a multiple of 8,
 * then for the train split and the test split in turn: the values, padding to 8, the labels, padding to 8.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { DecodedSplit } from '../ml/data/datasets.js';

export interface DecodedCacheOptions {
  /** The folder, e.g. `<state folder>/cache/decoded`. */
  dir: string;
  /** What the folder may hold; the files used least recently go first. */
  maxBytes: number;
}

export interface DecodedDataset {
  train: DecodedSplit;
  test: DecodedSplit;
}

const MAGIC = new TextEncoder().encode('paramtrail decoded dataset 1\n');
const SUFFIX = '.decoded';

interface SplitHeader {
  kind: 'bytes' | 'floats';
  n: number;
  /** Number of values (bytes or floats). */
  values: number;
}

interface Header {
  /** What the arrays derive from, as the caller described it (for a reader of the file). */
  source: unknown;
  train: SplitHeader;
  test: SplitHeader;
  /** sha256 of everything after the header's padding. */
  sha256: string;
}

/** The file name for arrays derived from `source` (any JSON value). */
export function decodedCacheName(source: unknown): string {
  return createHash('sha256').update(JSON.stringify(source)).digest('hex') + SUFFIX;
}

const pad8 = (n: number) => (8 - (n % 8)) % 8;

function splitHeader(split: DecodedSplit): SplitHeader {
  return 'pixels' in split ? { kind: 'bytes', n: split.n, values: split.pixels.length } : { kind: 'floats', n: split.n, values: split.x.length };
}

function splitChunks(split: DecodedSplit): Uint8Array[] {
  const values = 'pixels' in split ? split.pixels : new Uint8Array(split.x.buffer, split.x.byteOffset, split.x.byteLength);
  const labels = new Uint8Array(split.y.buffer, split.y.byteOffset, split.y.byteLength);
  return [values, new Uint8Array(pad8(values.byteLength)), labels, new Uint8Array(pad8(labels.byteLength))];
}

/** Node reads at most 2 GiB into one buffer: Imagenette at 160 px (4.1 GB as floats) is decoded in every process. */
const MAX_FILE_BYTES = 2 ** 31 - 1;

/** A file being written that has not changed for this long was left by a process that stopped. */
const STALE_WRITE_MS = 10 * 60_000;

/**
 * Writes `data` as the file `name` in the cache, then trims the folder to its allowance. Returns false,
 * writing nothing, when the arrays alone are larger than the allowance (or 2 GiB) or another process is writing
 * the same file.
 */
export async function writeDecoded(opts: DecodedCacheOptions, name: string, source: unknown, data: DecodedDataset): Promise<boolean> {
  const body = [...splitChunks(data.train), ...splitChunks(data.test)];
  const bodyBytes = body.reduce((sum, c) => sum + c.byteLength, 0);
  const header = (sha256: string): Header => ({ source, train: splitHeader(data.train), test: splitHeader(data.test), sha256 });
  // The header's length does not depend on the digest's value, so the size is known before hashing.
  const headerLength = new TextEncoder().encode(JSON.stringify(header('0'.repeat(64)))).byteLength;
  const head = MAGIC.byteLength + 4 + headerLength;
  if (head + pad8(head) + bodyBytes > Math.min(opts.maxBytes, MAX_FILE_BYTES)) return false;

  await mkdir(opts.dir, { recursive: true });
  const path = join(opts.dir, name);
  // One name for the file being written: processes that decoded the same dataset at once (workers
  // starting together) write it once; the others go on without waiting.
  const tmp = `${path}.writing`;
  let handle;
  try {
    handle = await open(tmp, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const since = await stat(tmp).then((st) => Date.now() - st.mtimeMs, () => 0);
    if (since < STALE_WRITE_MS) return false;
    // Left by a process that stopped while writing.
    await rm(tmp, { force: true });
    handle = await open(tmp, 'wx');
  }
  try {
    try {
      const hash = createHash('sha256');
      for (const chunk of body) hash.update(chunk);
      const headerBytes = new TextEncoder().encode(JSON.stringify(header(hash.digest('hex'))));
      const length = new Uint8Array(4);
      new DataView(length.buffer).setUint32(0, headerBytes.byteLength, true);
      for (const chunk of [MAGIC, length, headerBytes, new Uint8Array(pad8(head)), ...body]) {
        if (chunk.byteLength) await handle.write(chunk);
      }
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await trim(opts, name);
  return true;
}

/** Removes the files used least recently until the folder holds at most `maxBytes`; never `keep`. */
async function trim(opts: DecodedCacheOptions, keep: string): Promise<void> {
  const files: Array<{ name: string; bytes: number; used: number }> = [];
  for (const name of await readdir(opts.dir)) {
    if (!name.endsWith(SUFFIX)) continue;
    const st = await stat(join(opts.dir, name)).catch(() => undefined);
    if (st?.isFile()) files.push({ name, bytes: st.size, used: st.mtimeMs });
  }
  let total = files.reduce((sum, f) => sum + f.bytes, 0);
  files.sort((a, b) => a.used - b.used);
  for (const f of files) {
    if (total <= opts.maxBytes) break;
    if (f.name === keep) continue;
    await rm(join(opts.dir, f.name), { force: true });
    total -= f.bytes;
  }
}

/** Thrown for a file that is not a whole, intact decoded dataset. */
class DamagedFileError extends Error {}

function parse(buf: Uint8Array): DecodedDataset {
  const damaged = (what: string) => new DamagedFileError(what);
  if (buf.byteLength < MAGIC.byteLength + 4 || MAGIC.some((b, i) => buf[i] !== b)) throw damaged('not a decoded dataset file');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLength = view.getUint32(MAGIC.byteLength, true);
  const headerStart = MAGIC.byteLength + 4;
  if (headerStart + headerLength > buf.byteLength) throw damaged('cut short in its header');
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder().decode(buf.subarray(headerStart, headerStart + headerLength))) as Header;
  } catch {
    throw damaged('its header is not JSON');
  }
  let offset = headerStart + headerLength;
  offset += pad8(offset);
  const bodyStart = offset;
  const splits: DecodedSplit[] = [];
  for (const h of [header.train, header.test]) {
    const valueBytes = h.kind === 'bytes' ? h.values : h.values * 4;
    const labelsAt = offset + valueBytes + pad8(valueBytes);
    const end = labelsAt + h.n * 4 + pad8(h.n * 4);
    if (end > buf.byteLength) throw damaged('cut short');
    const at = buf.byteOffset;
    const y = new Int32Array(buf.buffer, at + labelsAt, h.n);
    splits.push(
      h.kind === 'bytes'
        ? { pixels: buf.subarray(offset, offset + h.values), y, n: h.n }
        : { x: new Float32Array(buf.buffer, at + offset, h.values), y, n: h.n },
    );
    offset = end;
  }
  if (offset !== buf.byteLength) throw damaged('longer than its header says');
  const sha256 = createHash('sha256').update(buf.subarray(bodyStart)).digest('hex');
  if (sha256 !== header.sha256) throw damaged(`its arrays' sha256 is ${sha256}, its header says ${header.sha256}`);
  return { train: splits[0]!, test: splits[1]! };
}

/**
 * The dataset in the file `name`, or undefined when there is none. A damaged file is removed (and
 * reported through `onDamaged`), so the caller's fresh decode can take its place.
 */
export async function readDecoded(
  opts: DecodedCacheOptions,
  name: string,
  onDamaged: (message: string) => void = () => undefined,
): Promise<DecodedDataset | undefined> {
  const path = join(opts.dir, name);
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  // Typed views need aligned offsets; a file's buffer normally starts one.
  const bytes = buf.byteOffset % 8 === 0 ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) : new Uint8Array(buf);
  try {
    const data = parse(bytes);
    const now = new Date();
    // Marks the file as used, for trim().
    await utimes(path, now, now).catch(() => undefined);
    return data;
  } catch (err) {
    if (!(err instanceof DamagedFileError)) throw err;
    onDamaged(`${path}: ${err.message}; removed, the dataset is decoded again`);
    await rm(path, { force: true });
    return undefined;
  }
}
