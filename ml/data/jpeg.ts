/**
 * JPEG decoding for image datasets (Imagenette ships as JPEG files).
 *
 * A decoder is any function from JPEG bytes to RGB pixels (`JpegDecoder`), so another one plugs in
 * without touching the dataset code; `jpeg-js` would be one line:
 * `(b) => { const i = decode(b, { useTArray: true, formatAsRGBA: false }); return { width: i.width, height: i.height, data: i.data } }`.
 * The default decodes with resvg (already a dependency, for the report's PNGs), whose Rust JPEG decoder
 * reads baseline and progressive files, grey-scale and CMYK: the image is drawn at its own size into an
 * SVG canvas of that size, so no resampling happens and the pixels are the decoder's own.
 *
 * Called by ml/data/imagenette.ts; tests call it on JPEGs they encode themselves.
 */
import { Resvg } from '@resvg/resvg-js';

/** An 8-bit RGB image, row-major, 3 bytes per pixel. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export type JpegDecoder = (bytes: Uint8Array) => RgbImage;

const hex = (b: number) => `0x${b.toString(16).padStart(2, '0')}`;

/**
 * Width, height and component count from a JPEG's frame header (SOFn), without decoding it.
 * Throws when the bytes are not a JPEG or end before the frame header.
 */
export function jpegSize(bytes: Uint8Array): { width: number; height: number; components: number } {
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) {
    throw new Error(`JPEG: expected the start-of-image marker 0xff 0xd8, found ${hex(bytes[0] ?? 0)} ${hex(bytes[1] ?? 0)}`);
  }
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) throw new Error(`JPEG: expected a marker at byte ${at}, found ${hex(bytes[at]!)}`);
    const marker = bytes[at + 1]!;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    const length = (bytes[at + 2]! << 8) | bytes[at + 3]!;
    // SOF0..SOF15 except DHT (c4), JPG (c8) and DAC (cc) carry the frame size.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (at + 10 > bytes.length) break;
      return {
        height: (bytes[at + 5]! << 8) | bytes[at + 6]!,
        width: (bytes[at + 7]! << 8) | bytes[at + 8]!,
        components: bytes[at + 9]!,
      };
    }
    if (marker === 0xda) break; // scan data before any frame header: not a valid JPEG
    at += 2 + length;
  }
  throw new Error(`JPEG: no frame header (SOFn marker) found in ${bytes.length} bytes`);
}

/** Decodes with resvg: the JPEG as a data URL in an SVG of exactly its size, rendered to RGBA. */
export const decodeJpegWithResvg: JpegDecoder = (bytes) => {
  const { width, height } = jpegSize(bytes);
  if (width === 0 || height === 0) throw new Error(`JPEG: expected a non-empty image, found ${width}x${height}`);
  const href = `data:image/jpeg;base64,${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')}`;
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${width}" height="${height}">` +
    `<image x="0" y="0" width="${width}" height="${height}" xlink:href="${href}"/></svg>`;
  // No text is drawn, so no fonts are loaded (that alone takes most of the time otherwise).
  const rendered = new Resvg(svg, { font: { loadSystemFonts: false }, imageRendering: 1 }).render();
  if (rendered.width !== width || rendered.height !== height) {
    throw new Error(`JPEG: expected a ${width}x${height} rendering, found ${rendered.width}x${rendered.height}`);
  }
  const rgba = rendered.pixels;
  if (rgba.length !== width * height * 4) {
    // resvg draws nothing for an image it cannot decode; the canvas stays transparent but full size.
    throw new Error(`JPEG: expected ${width * height * 4} RGBA bytes, found ${rgba.length}`);
  }
  const data = new Uint8Array(width * height * 3);
  let opaque = true;
  for (let p = 0, q = 0; p < rgba.length; p += 4, q += 3) {
    data[q] = rgba[p]!;
    data[q + 1] = rgba[p + 1]!;
    data[q + 2] = rgba[p + 2]!;
    if (rgba[p + 3] !== 255) opaque = false;
  }
  if (!opaque) throw new Error(`JPEG: the ${width}x${height} image could not be decoded (resvg drew transparent pixels)`);
  return { width, height, data };
};

export const decodeJpeg: JpegDecoder = decodeJpegWithResvg;
