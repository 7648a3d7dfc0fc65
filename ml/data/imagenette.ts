/**
 * Decoder for Imagenette (https://github.com/fastai/imagenette), ten easy ImageNet classes, as fast.ai
 * ships it: one tgz holding `<root>/train/<wnid>/*.JPEG` and `<root>/val/<wnid>/*.JPEG` (the val folder
 * is our test split). The 160 px version has every image's shorter side at 160 px.
 *
 * Each image is centre-cropped to a square and resampled to `size` x `size` by area averaging (each
 * output pixel is the mean of the input area it covers; at 160 px from the 160 px archive that is the
 * crop alone, no resampling). Classes are the WordNet ids in sorted order, as torchvision numbers them.
 *
 * Called by ml/data/datasets.ts (decodeDataset) on the gunzipped archive. Pure apart from the JPEG
 * decoder it is given.
 */
import type { Split } from './datasets.js';
import { decodeJpeg as defaultDecoder, type JpegDecoder, type RgbImage } from './jpeg.js';
import { tarFiles } from './tar.js';

/** The ten WordNet ids, sorted: the index of each is its class. */
export const IMAGENETTE_WNIDS = [
  'n01440764',
  'n02102040',
  'n02979186',
  'n03000684',
  'n03028079',
  'n03394916',
  'n03417042',
  'n03425413',
  'n03445777',
  'n03888257',
] as const;

export const IMAGENETTE_CLASS_NAMES = [
  'tench',
  'English springer',
  'cassette player',
  'chain saw',
  'church',
  'French horn',
  'garbage truck',
  'gas pump',
  'golf ball',
  'parachute',
];

export interface ImageFolderOptions {
  /** Side of the square images produced, in pixels. */
  size: number;
  /** Replaces the default JPEG decoder (resvg). */
  decodeJpeg?: JpegDecoder;
}

/** Source index ranges and weights of each output pixel along one axis, for area averaging. */
function areaWeights(inSize: number, outSize: number): Array<Array<[number, number]>> {
  const scale = inSize / outSize;
  const rows: Array<Array<[number, number]>> = [];
  for (let i = 0; i < outSize; i++) {
    const lo = i * scale;
    const hi = (i + 1) * scale;
    const taps: Array<[number, number]> = [];
    for (let j = Math.floor(lo); j < Math.min(Math.ceil(hi), inSize); j++) {
      const overlap = Math.min(j + 1, hi) - Math.max(j, lo);
      if (overlap > 1e-12) taps.push([j, overlap / scale]);
    }
    rows.push(taps);
  }
  return rows;
}

/**
 * The centred square of `image`, resampled to size x size by area averaging, written as HWC floats in
 * [0, 1] into `out` from `offset`. An odd margin leaves the extra pixel on the right or bottom.
 */
export function centerCropResize(image: RgbImage, size: number, out: Float32Array, offset = 0): void {
  const side = Math.min(image.width, image.height);
  const x0 = Math.floor((image.width - side) / 2);
  const y0 = Math.floor((image.height - side) / 2);
  const wx = areaWeights(side, size);
  const wy = areaWeights(side, size);
  // Horizontal pass over the cropped rows, then vertical.
  const rows = new Float32Array(side * size * 3);
  for (let r = 0; r < side; r++) {
    const src = ((y0 + r) * image.width + x0) * 3;
    for (let k = 0; k < size; k++) {
      let red = 0;
      let green = 0;
      let blue = 0;
      for (const [j, w] of wx[k]!) {
        const p = src + j * 3;
        red += w * image.data[p]!;
        green += w * image.data[p + 1]!;
        blue += w * image.data[p + 2]!;
      }
      const q = (r * size + k) * 3;
      rows[q] = red;
      rows[q + 1] = green;
      rows[q + 2] = blue;
    }
  }
  for (let i = 0; i < size; i++) {
    for (let k = 0; k < size; k++) {
      let red = 0;
      let green = 0;
      let blue = 0;
      for (const [j, w] of wy[i]!) {
        const q = (j * size + k) * 3;
        red += w * rows[q]!;
        green += w * rows[q + 1]!;
        blue += w * rows[q + 2]!;
      }
      const o = offset + (i * size + k) * 3;
      out[o] = red / 255;
      out[o + 1] = green / 255;
      out[o + 2] = blue / 255;
    }
  }
}

const MEMBER = /(?:^|\/)(train|val)\/(n\d{8})\/[^/]+\.jpe?g$/i;

/** Both splits of an Imagenette archive (the tar bytes, already gunzipped): train/ and val/ as test. */
export function decodeImagenette(tar: Uint8Array, opts: ImageFolderOptions, archive: string): { train: Split; test: Split } {
  const { size } = opts;
  if (!(Number.isInteger(size) && size > 0)) throw new Error(`${archive}: expected a positive integer image size, found ${size}`);
  const decode = opts.decodeJpeg ?? defaultDecoder;
  const files = tarFiles(tar);
  const members: Record<'train' | 'val', Array<{ path: string; label: number }>> = { train: [], val: [] };
  for (const path of [...files.keys()].sort()) {
    const m = MEMBER.exec(path);
    if (!m) continue;
    const label = (IMAGENETTE_WNIDS as readonly string[]).indexOf(m[2]!);
    if (label === -1) {
      throw new Error(`${archive}: ${path}: expected a class folder among ${IMAGENETTE_WNIDS.join(', ')}, found ${m[2]}`);
    }
    members[m[1]!.toLowerCase() as 'train' | 'val'].push({ path, label });
  }
  const split = (which: 'train' | 'val'): Split => {
    const list = members[which];
    if (list.length === 0) {
      const found = [...files.keys()].slice(0, 8).join(', ');
      throw new Error(`${archive}: expected JPEG files under ${which}/<wnid>/, found none (members: ${found || 'none'})`);
    }
    const per = size * size * 3;
    const x = new Float32Array(list.length * per);
    const y = new Int32Array(list.length);
    list.forEach(({ path, label }, i) => {
      let image: RgbImage;
      try {
        image = decode(files.get(path)!);
      } catch (err) {
        throw new Error(`${archive}: ${path}: ${(err as Error).message}`);
      }
      centerCropResize(image, size, x, i * per);
      y[i] = label;
    });
    return { x, y, n: list.length };
  };
  return { train: split('train'), test: split('val') };
}
