/**
 * Data augmentation of training examples: random crop (zero padding, then a crop back to size),
 * horizontal flip, rotation and colour jitter, in that order.
 *
 * Each example's draws come from deriveRng(seed, 'augment', epoch, index), index being its position in
 * the training split: the same example gets the same transformation in the same epoch whatever the
 * batch size, order or interruption, so a resumed run augments exactly as an uninterrupted one.
 *
 * Images are H x W x C, channels last, in whatever scale the run feeds the model (after normalisation
 * when that is on: padding and rotation fill with 0, which is then the training mean).
 *
 * Called by ml/train/loop.ts on training batches only; validation and test examples are never augmented.
 */
import { deriveRng, type Rng } from '../rng.js';

export interface AugmentArgs {
  /** Mirror left-right with probability 1/2. */
  flip?: boolean;
  /** Pad every side with `padding` zeros, then crop a random H x W window (torchvision RandomCrop(padding=p)). */
  crop?: { padding: number };
  /** Rotate by an angle drawn uniformly from [-degrees, degrees] about the centre (bilinear, zero fill). */
  rotation?: { degrees: number };
  /**
   * Brightness: multiply by a factor from [1 - brightness, 1 + brightness]. Contrast: scale deviations
   * from the image's mean by a factor from [1 - contrast, 1 + contrast]. Saturation (3 channels only):
   * blend with the pixel's grey value by a factor from [1 - saturation, 1 + saturation].
   */
  colorJitter?: { brightness?: number; contrast?: number; saturation?: number };
}

/** True when `args` would change anything. */
export function augmentsAnything(args: AugmentArgs | undefined): args is AugmentArgs {
  if (!args) return false;
  const j = args.colorJitter;
  return Boolean(args.flip || (args.crop && args.crop.padding > 0) || (args.rotation && args.rotation.degrees > 0) ||
    (j && ((j.brightness ?? 0) > 0 || (j.contrast ?? 0) > 0 || (j.saturation ?? 0) > 0)));
}

type Shape = readonly [number, number, number];

/** Mirrors `img` left-right in place. */
export function flipImage(img: Float32Array, [h, w, c]: Shape): void {
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w >> 1; x++) {
      const a = (y * w + x) * c;
      const b = (y * w + (w - 1 - x)) * c;
      for (let k = 0; k < c; k++) {
        const t = img[a + k]!;
        img[a + k] = img[b + k]!;
        img[b + k] = t;
      }
    }
  }
}

/** The H x W window at offset (dy, dx) of `img` padded by `padding` zeros on each side, written into `img`. */
export function cropImage(img: Float32Array, [h, w, c]: Shape, padding: number, dy: number, dx: number): void {
  const src = img.slice();
  for (let y = 0; y < h; y++) {
    const sy = y + dy - padding;
    for (let x = 0; x < w; x++) {
      const sx = x + dx - padding;
      const o = (y * w + x) * c;
      const inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
      for (let k = 0; k < c; k++) img[o + k] = inside ? src[(sy * w + sx) * c + k]! : 0;
    }
  }
}

/** Rotates `img` by `degrees` (counter-clockwise) about its centre, bilinear, zero outside, in place. */
export function rotateImage(img: Float32Array, [h, w, c]: Shape, degrees: number): void {
  const src = img.slice();
  const t = (degrees * Math.PI) / 180;
  const cos = Math.cos(t);
  const sin = Math.sin(t);
  const cy = (h - 1) / 2;
  const cx = (w - 1) / 2;
  const at = (y: number, x: number, k: number) => (y >= 0 && y < h && x >= 0 && x < w ? src[(y * w + x) * c + k]! : 0);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // The source point that lands on (y, x): the inverse rotation (y grows downwards).
      const sx = cos * (x - cx) - sin * (y - cy) + cx;
      const sy = sin * (x - cx) + cos * (y - cy) + cy;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      for (let k = 0; k < c; k++) {
        img[(y * w + x) * c + k] =
          (1 - fy) * ((1 - fx) * at(y0, x0, k) + fx * at(y0, x0 + 1, k)) + fy * ((1 - fx) * at(y0 + 1, x0, k) + fx * at(y0 + 1, x0 + 1, k));
      }
    }
  }
}

function jitter(img: Float32Array, [h, w, c]: Shape, args: NonNullable<AugmentArgs['colorJitter']>, rng: Rng): void {
  const factor = (amount: number | undefined) => (amount ? 1 - amount + 2 * amount * rng.next() : 1);
  const brightness = factor(args.brightness);
  const contrast = factor(args.contrast);
  const saturation = factor(args.saturation);
  for (let i = 0; i < img.length; i++) img[i] = img[i]! * brightness;
  if (contrast !== 1) {
    let mean = 0;
    for (let i = 0; i < img.length; i++) mean += img[i]!;
    mean /= img.length;
    for (let i = 0; i < img.length; i++) img[i] = (img[i]! - mean) * contrast + mean;
  }
  if (saturation !== 1 && c === 3) {
    for (let p = 0; p < h * w; p++) {
      const o = p * 3;
      // ITU-R 601 luma, as torchvision's rgb_to_grayscale.
      const grey = 0.299 * img[o]! + 0.587 * img[o + 1]! + 0.114 * img[o + 2]!;
      for (let k = 0; k < 3; k++) img[o + k] = (img[o + k]! - grey) * saturation + grey;
    }
  }
}

/** Augments one training example in place with the draws of (seed, epoch, index). */
export function augmentExample(img: Float32Array, shape: Shape, args: AugmentArgs, seed: number, epoch: number, index: number): void {
  const rng = deriveRng(seed, 'augment', epoch, index);
  // Every draw happens whether or not its transformation changes the image, so the stream's use is fixed.
  if (args.crop && args.crop.padding > 0) {
    const span = 2 * args.crop.padding + 1;
    cropImage(img, shape, args.crop.padding, rng.int(span), rng.int(span));
  }
  if (args.flip && rng.next() < 0.5) flipImage(img, shape);
  if (args.rotation && args.rotation.degrees > 0) rotateImage(img, shape, (2 * rng.next() - 1) * args.rotation.degrees);
  if (args.colorJitter) jitter(img, shape, args.colorJitter, rng);
}
