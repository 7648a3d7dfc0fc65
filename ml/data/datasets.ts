/**
 * The registry of datasets paramtrail can train on: where each file comes from, the sha256 and size
 * it must have, and how its decompressed bytes become training arrays.
 *
 * Called by the download activity (sources, names, hashes: it fetches, checks and gunzips) and by the
 * train activity (decodeDataset). Pure: no fs, no network.
 */
import { parseIdx } from './idx.js';

export type FileRole = 'trainImages' | 'trainLabels' | 'testImages' | 'testLabels';

export const FILE_ROLES: readonly FileRole[] = ['trainImages', 'trainLabels', 'testImages', 'testLabels'];

export interface DatasetFile {
  role: FileRole;
  /** File name appended to each source base URL, e.g. `train-images-idx3-ubyte.gz`. */
  name: string;
  /** sha256 (hex) of the file exactly as downloaded (the compressed bytes when `gzip`). */
  sha256: string;
  /** Size in bytes of the file as downloaded. */
  bytes: number;
  /** True when the file is gzip-compressed and must be gunzipped before decodeDataset. */
  gzip: boolean;
}

export interface DatasetDef {
  name: string;
  description: string;
  /** Shape of one example: [height, width, channels]. */
  inputShape: [number, number, number];
  numClasses: number;
  classNames?: string[];
  /** Base URLs tried in order, each followed by the file name: canonical https first, then local mirrors (file://). */
  sources: string[];
  files: DatasetFile[];
}

/** One split of a dataset, examples in NHWC order. */
export interface Split {
  /** N*H*W*C values scaled to [0, 1]. */
  x: Float32Array;
  /** N class indices in [0, numClasses). */
  y: Int32Array;
  n: number;
}

const fashionMnist: DatasetDef = {
  name: 'fashion-mnist',
  description: 'Zalando Fashion-MNIST: 28x28 grey-scale images of clothing in 10 classes, 60,000 train and 10,000 test.',
  inputShape: [28, 28, 1],
  numClasses: 10,
  classNames: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
  sources: [
    'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
    // Debian's dataset-fashion-mnist package installs the same four files here.
    'file:///usr/share/datasets/fashion-mnist/',
  ],
  files: [
    {
      role: 'trainImages',
      name: 'train-images-idx3-ubyte.gz',
      sha256: 'b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7',
      bytes: 26421856,
      gzip: true,
    },
    {
      role: 'trainLabels',
      name: 'train-labels-idx1-ubyte.gz',
      sha256: '0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056',
      bytes: 29491,
      gzip: true,
    },
    {
      role: 'testImages',
      name: 't10k-images-idx3-ubyte.gz',
      sha256: 'cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa',
      bytes: 4422079,
      gzip: true,
    },
    {
      role: 'testLabels',
      name: 't10k-labels-idx1-ubyte.gz',
      sha256: '8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05',
      bytes: 5125,
      gzip: true,
    },
  ],
};

export const DATASETS: ReadonlyMap<string, DatasetDef> = new Map([[fashionMnist.name, fashionMnist]]);

/** The registered dataset called `name`; the error lists the known names. */
export function getDataset(name: string): DatasetDef {
  const def = DATASETS.get(name);
  if (!def) throw new Error(`unknown dataset "${name}": expected one of ${[...DATASETS.keys()].join(', ')}`);
  return def;
}

function fileName(def: DatasetDef, role: FileRole): string {
  return def.files.find((f) => f.role === role)?.name ?? role;
}

function decodeIdxFile(def: DatasetDef, role: FileRole, bytes: Uint8Array | undefined) {
  const name = fileName(def, role);
  if (!bytes) throw new Error(`${def.name}: missing file ${name} (${role})`);
  try {
    return parseIdx(bytes);
  } catch (err) {
    throw new Error(`${def.name}: ${name}: ${(err as Error).message}`);
  }
}

function decodeSplit(def: DatasetDef, raw: Record<FileRole, Uint8Array>, images: FileRole, labels: FileRole): Split {
  const [h, w, c] = def.inputShape;
  const img = decodeIdxFile(def, images, raw[images]);
  const lab = decodeIdxFile(def, labels, raw[labels]);
  const imgName = fileName(def, images);
  const labName = fileName(def, labels);
  const expectedDims = c === 1 ? [h, w] : [h, w, c];
  if (!(img.data instanceof Uint8Array)) {
    throw new Error(`${def.name}: ${imgName}: expected uint8 pixels, found ${img.data.constructor.name}`);
  }
  if (img.dims.length !== expectedDims.length + 1 || expectedDims.some((d, i) => img.dims[i + 1] !== d)) {
    throw new Error(
      `${def.name}: ${imgName}: expected dims [N, ${expectedDims.join(', ')}], found [${img.dims.join(', ')}]`,
    );
  }
  if (lab.dims.length !== 1 || !(lab.data instanceof Uint8Array)) {
    throw new Error(`${def.name}: ${labName}: expected a 1-d uint8 label vector, found dims [${lab.dims.join(', ')}]`);
  }
  const n = img.dims[0]!;
  if (lab.dims[0] !== n) {
    throw new Error(`${def.name}: ${labName}: expected ${n} labels (one per image in ${imgName}), found ${lab.dims[0]}`);
  }
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = lab.data[i]!;
    if (label >= def.numClasses) {
      throw new Error(`${def.name}: ${labName}: expected labels in [0, ${def.numClasses}), found ${label} at index ${i}`);
    }
    y[i] = label;
  }
  const x = new Float32Array(img.data.length);
  for (let i = 0; i < x.length; i++) x[i] = img.data[i]! / 255;
  return { x, y, n };
}

/** raw = the DEcompressed bytes of each file (the caller gunzips). Validates counts/dims and names the file on error. */
export function decodeDataset(def: DatasetDef, raw: Record<FileRole, Uint8Array>): { train: Split; test: Split } {
  return {
    train: decodeSplit(def, raw, 'trainImages', 'trainLabels'),
    test: decodeSplit(def, raw, 'testImages', 'testLabels'),
  };
}
