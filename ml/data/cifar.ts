/**
 * Decoder for the binary versions of CIFAR-10 and CIFAR-100 (https://www.cs.toronto.edu/~kriz/cifar.html).
 *
 * Each archive is a tar.gz of record files. A CIFAR-10 record is 1 label byte then 3072 pixel bytes; a
 * CIFAR-100 record is a coarse (superclass, 0-19) label byte, a fine (class, 0-99) label byte, then the
 * pixels. The pixels are channel-major: 1024 red, 1024 green, 1024 blue, each 32x32 row-major. Records
 * become NHWC bytes (a ByteSplit; `take` scales them to [0, 1]), the layout every model here takes.
 *
 * Called by ml/data/datasets.ts (decodeDataset) on the gunzipped archive. Pure.
 */
import type { ByteSplit } from './datasets.js';
import { tarFiles } from './tar.js';

export const CIFAR_SIDE = 32;
const PIXELS = CIFAR_SIDE * CIFAR_SIDE;
const IMAGE_BYTES = 3 * PIXELS;

export interface CifarLayout {
  /** Label bytes before the pixels of each record: 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine). */
  labelBytes: number;
  /** Which label byte is the class: 0 for CIFAR-10; 1 (fine) for CIFAR-100. */
  labelIndex: number;
  numClasses: number;
}

export interface CifarFormat extends CifarLayout {
  /** Member paths inside the archive, in the order their records are concatenated. */
  train: string[];
  test: string[];
}

export const CIFAR10_FORMAT: CifarFormat = {
  labelBytes: 1,
  labelIndex: 0,
  numClasses: 10,
  train: [1, 2, 3, 4, 5].map((i) => `cifar-10-batches-bin/data_batch_${i}.bin`),
  test: ['cifar-10-batches-bin/test_batch.bin'],
};

/** CIFAR-100 by its 100 fine labels; the 20 coarse superclasses are read past and not used. */
export const CIFAR100_FORMAT: CifarFormat = {
  labelBytes: 2,
  labelIndex: 1,
  numClasses: 100,
  train: ['cifar-100-binary/train.bin'],
  test: ['cifar-100-binary/test.bin'],
};

/** Records of one or more record files, concatenated, as a split. `what` names the source in errors. */
export function cifarRecordsToSplit(files: Uint8Array[], layout: CifarLayout, what: string[]): ByteSplit {
  const recordBytes = layout.labelBytes + IMAGE_BYTES;
  let n = 0;
  files.forEach((f, i) => {
    if (f.length % recordBytes !== 0) {
      throw new Error(
        `${what[i]}: expected a whole number of ${recordBytes}-byte records, found ${f.length} bytes ` +
          `(${Math.floor(f.length / recordBytes)} records and ${f.length % recordBytes} bytes over)`,
      );
    }
    n += f.length / recordBytes;
  });
  const pixels = new Uint8Array(n * IMAGE_BYTES);
  const y = new Int32Array(n);
  let k = 0;
  files.forEach((f, i) => {
    for (let r = 0; r < f.length; r += recordBytes, k++) {
      const label = f[r + layout.labelIndex]!;
      if (label >= layout.numClasses) {
        throw new Error(
          `${what[i]}: expected labels in [0, ${layout.numClasses}), found ${label} in record ${r / recordBytes}`,
        );
      }
      y[k] = label;
      const image = r + layout.labelBytes;
      const out = k * IMAGE_BYTES;
      // CHW in the file, HWC out: pixel p of channel c goes to (p * 3 + c).
      for (let c = 0; c < 3; c++) {
        const plane = image + c * PIXELS;
        for (let p = 0; p < PIXELS; p++) pixels[out + p * 3 + c] = f[plane + p]!;
      }
    }
  });
  return { pixels, y, n };
}

/** Finds a member by its path, also under a leading folder a repackaged archive may add. */
function member(files: Map<string, Uint8Array>, path: string, archive: string): Uint8Array {
  const exact = files.get(path);
  if (exact) return exact;
  for (const [name, data] of files) if (name.endsWith('/' + path)) return data;
  const found = [...files.keys()].slice(0, 12).join(', ');
  throw new Error(`${archive}: expected a member ${path}, found ${found || 'no files'}${files.size > 12 ? ', ...' : ''}`);
}

/** Both splits of a CIFAR archive (the tar bytes, already gunzipped). */
export function decodeCifar(tar: Uint8Array, format: CifarFormat, archive: string): { train: ByteSplit; test: ByteSplit } {
  const files = tarFiles(tar);
  const split = (paths: string[]) =>
    cifarRecordsToSplit(
      paths.map((p) => member(files, p, archive)),
      format,
      paths.map((p) => `${archive}: ${p}`),
    );
  return { train: split(format.train), test: split(format.test) };
}
