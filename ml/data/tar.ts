/**
 * A reader for tar archives (POSIX ustar, with the GNU long-name and pax extended headers that GNU tar
 * and Python's tarfile write), enough to take the members out of the dataset archives that ship as
 * `.tar.gz` (CIFAR-10, CIFAR-100, Imagenette). Decompression is the caller's: this reads the tar bytes.
 *
 * Called by ml/data/cifar.ts and ml/data/imagenette.ts. Pure: members are views into the given bytes.
 */

export interface TarEntry {
  /** Full path inside the archive, e.g. `cifar-10-batches-bin/data_batch_1.bin`. */
  name: string;
  /** '0' regular file, '5' directory, '2' symbolic link, ... (the ustar typeflag). */
  type: string;
  /** The member's bytes (a view into the archive, not a copy). Empty for directories. */
  data: Uint8Array;
}

const BLOCK = 512;
const decoder = new TextDecoder();

function field(header: Uint8Array, offset: number, length: number): string {
  const bytes = header.subarray(offset, offset + length);
  const end = bytes.indexOf(0);
  return decoder.decode(end === -1 ? bytes : bytes.subarray(0, end));
}

/** Numeric header fields are octal text, or base-256 (high bit set) for sizes of 8 GiB and more. */
function numeric(header: Uint8Array, offset: number, length: number, what: string, at: number): number {
  if (header[offset]! & 0x80) {
    let value = header[offset]! & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + header[offset + i]!;
    return value;
  }
  const text = field(header, offset, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) {
    throw new Error(`tar: expected an octal ${what} in the header at byte ${at}, found ${JSON.stringify(text)}`);
  }
  return parseInt(text, 8);
}

/** The header checksum: the sum of all header bytes with the checksum field itself read as spaces. */
function headerChecksum(header: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum;
}

/**
 * `path=` (and other) records of a pax extended header: "<length> <key>=<value>\n" each, where the
 * length counts bytes (of UTF-8), so records are cut from the bytes before they are decoded.
 */
function paxRecords(data: Uint8Array): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const length = Number(decoder.decode(data.subarray(at, space)));
    if (!Number.isInteger(length) || length <= 0 || at + length > data.length) break;
    const record = decoder.decode(data.subarray(space + 1, at + length - 1));
    const eq = record.indexOf('=');
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

/**
 * Every member of a tar archive, in archive order. Throws naming the byte offset when a header's
 * checksum is wrong or a member runs past the end (a truncated or still-compressed archive).
 */
export function readTar(bytes: Uint8Array): TarEntry[] {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    throw new Error('tar: expected a tar header at byte 0, found the gzip magic number 0x1f 0x8b (the archive is still gzip-compressed)');
  }
  const entries: TarEntry[] = [];
  let at = 0;
  let longName: string | undefined;
  let pax: Map<string, string> | undefined;
  while (at + BLOCK <= bytes.length) {
    const header = bytes.subarray(at, at + BLOCK);
    // Two zero blocks end the archive; one is enough to stop reading.
    if (header.every((b) => b === 0)) break;
    const stored = numeric(header, 148, 8, 'checksum', at);
    const computed = headerChecksum(header);
    if (stored !== computed) {
      throw new Error(`tar: bad header checksum at byte ${at}: expected ${computed}, found ${stored}`);
    }
    const size = numeric(header, 124, 12, 'size', at);
    // Old (pre-POSIX) archives leave the typeflag NUL for a regular file.
    const type = field(header, 156, 1) || '0';
    const start = at + BLOCK;
    if (start + size > bytes.length) {
      throw new Error(`tar: member at byte ${at} needs ${size} bytes, found ${bytes.length - start} (the archive is truncated)`);
    }
    const data = bytes.subarray(start, start + size);
    at = start + Math.ceil(size / BLOCK) * BLOCK;

    if (type === 'L') {
      // GNU long name: the next member's name is this member's data.
      longName = field(data, 0, data.length);
      continue;
    }
    if (type === 'x') {
      pax = paxRecords(data);
      continue;
    }
    if (type === 'g') continue; // global pax header: nothing here depends on it

    const magic = field(header, 257, 6);
    const prefix = magic.startsWith('ustar') ? field(header, 345, 155) : '';
    const shortName = field(header, 0, 100);
    const name = pax?.get('path') ?? longName ?? (prefix ? `${prefix}/${shortName}` : shortName);
    entries.push({ name, type, data: type === '5' ? data.subarray(0, 0) : data });
    longName = undefined;
    pax = undefined;
  }
  return entries;
}

/** Regular files only, keyed by path without a leading `./`. */
export function tarFiles(bytes: Uint8Array): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const e of readTar(bytes)) {
    if (e.type === '0' || e.type === '7') files.set(e.name.replace(/^(\.\/)+/, ''), e.data);
  }
  return files;
}
