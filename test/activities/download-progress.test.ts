/**
 * What the download activity heartbeats while it fetches from a local HTTP server, in a
 * MockActivityEnvironment with a real local store: per file, its name and position, then the bytes
 * received against the total (the registry's size, else the response's Content-Length), ending at the
 * whole file. A second download finds everything in the store and reports no bytes received. A source
 * that refuses has its response released at once.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { LocalStore } from '../../artifacts/local.js';
import { createDownload, type DownloadHeartbeat } from '../../activities/download.js';
import type { DownloadResult } from '../../activities/types.js';
import { getDataset, type DatasetDef } from '../../ml/data/datasets.js';
import { md5Hex, serveFiles, type FileServer } from '../support/datasets.js';
import { tempDir } from '../support/fixtures.js';
import { activityEnvironment } from '../support/logs.js';

/** 3.5 MiB: three progress beats at 1 MiB and a last one for the remainder. */
const large = new Uint8Array(3.5 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24);
const small = new Uint8Array(1000).map((_, i) => i % 251);

/** Two files: the first with its size in the registry, the second without (its total comes from Content-Length). */
const def: DatasetDef = {
  ...getDataset('mnist'),
  name: 'progress',
  files: [
    { role: 'trainImages', name: 'large.bin', md5: md5Hex(large), bytes: large.length, gzip: false },
    { role: 'trainLabels', name: 'small.bin', md5: md5Hex(small), gzip: false },
  ],
};
const datasets = new Map([[def.name, def]]);

let server: FileServer;
before(async () => {
  server = await serveFiles({ 'd/large.bin': large, 'd/small.bin': small });
});
after(() => server.close());

async function downloadWithBeats(store: LocalStore): Promise<{ result: DownloadResult; beats: DownloadHeartbeat[] }> {
  const env = activityEnvironment();
  const beats: DownloadHeartbeat[] = [];
  env.on('heartbeat', (d: DownloadHeartbeat) => beats.push(d));
  const download = createDownload({ store, datasets });
  const result = (await env.run(download as never, { experimentId: 'p', runId: 'p/r', dataset: { name: 'progress', sources: [server.url + 'd/'] } } as never)) as DownloadResult;
  return { result, beats };
}

test('each file reports where it is, then its bytes received out of its total, ending at the whole file', async () => {
  const { result, beats } = await downloadWithBeats(new LocalStore(await tempDir()));
  assert.equal(result.fetched, 2);
  for (const b of beats) {
    assert.equal(b.dataset, 'progress');
    assert.equal(b.files, 2);
  }
  const large0 = beats.filter((b) => b.file === 'large.bin');
  assert.ok(large0.every((b) => b.index === 0));
  assert.deepEqual(large0[0], { dataset: 'progress', file: 'large.bin', index: 0, files: 2, total: large.length }, 'first, the store is checked');
  const receivedLarge = large0.slice(1).map((b) => [b.received, b.total]);
  const MiB = 1024 * 1024;
  assert.deepEqual(receivedLarge.at(-1), [large.length, large.length], 'the last beat is the whole file');
  assert.ok(receivedLarge.length >= 4, `a beat per MiB and one for the rest, found ${JSON.stringify(receivedLarge)}`);
  for (let i = 1; i < receivedLarge.length; i++) {
    assert.ok(receivedLarge[i]![0]! > receivedLarge[i - 1]![0]!, `received grows: ${JSON.stringify(receivedLarge)}`);
    assert.ok(receivedLarge[i]![0]! - receivedLarge[i - 1]![0]! <= 2 * MiB, 'no gap wider than two steps');
  }

  const small1 = beats.filter((b) => b.file === 'small.bin');
  assert.ok(small1.every((b) => b.index === 1));
  assert.equal(small1[0]!.received, undefined);
  assert.equal(small1[0]!.total, undefined, 'the registry has no size for it');
  assert.deepEqual(small1.at(-1), { dataset: 'progress', file: 'small.bin', index: 1, files: 2, received: small.length, total: small.length }, 'Content-Length gives its total');
  // Files in order: every beat of the first file comes before the second's.
  const firstOfSecond = beats.findIndex((b) => b.index === 1);
  assert.ok(firstOfSecond > 0 && beats.slice(firstOfSecond).every((b) => b.index === 1));
});

test('a second download finds every file in the store and receives nothing', async () => {
  const store = new LocalStore(await tempDir());
  await downloadWithBeats(store);
  const requests = server.requests.length;
  const { result, beats } = await downloadWithBeats(store);
  assert.equal(result.cached, 2);
  assert.equal(server.requests.length, requests, 'no request reached the server');
  assert.deepEqual(
    beats.map((b) => [b.file, b.received]),
    [
      ['large.bin', undefined],
      ['small.bin', undefined],
    ],
  );
});

test("a source that refuses has its response released, not left open until garbage collection", async () => {
  // A 404 whose body never ends: only the client closing the response ends the request.
  const closed: Array<Promise<unknown>> = [];
  const refusing = createServer((req, res) => {
    closed.push(once(res, 'close'));
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.write('not here\n');
  });
  refusing.listen(0, '127.0.0.1');
  await once(refusing, 'listening');
  try {
    const url = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}/d/`;
    const download = createDownload({ store: new LocalStore(await tempDir()), datasets });
    await assert.rejects(
      activityEnvironment().run(download as never, { experimentId: 'p', runId: 'p/r', dataset: { name: 'progress', sources: [url] } } as never),
      /HTTP 404/,
    );
    assert.equal(closed.length, 1);
    const released = await Promise.race([closed[0]!.then(() => true), new Promise((r) => setTimeout(r, 5000, false))]);
    assert.equal(released, true, 'the server saw the response closed');
  } finally {
    refusing.closeAllConnections();
    refusing.close();
  }
});
