/**
 * One contract for every ArtifactStore, run against LocalStore (a temp folder) and S3Store (a real
 * versitygw). Each store is paired with raw access that goes around it, to check what is really
 * stored and to tamper with objects behind its back.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { after, describe, test } from 'node:test';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { sha256Hex } from '../../artifacts/hash.js';
import { LocalStore, RECORD_MIN_BYTES } from '../../artifacts/local.js';
import { InvalidStoreSettingError, openStore } from '../../artifacts/open.js';
import { S3Store, type S3StoreOptions } from '../../artifacts/s3.js';
import {
  type ArtifactStore,
  IntegrityError,
  InvalidKeyError,
  ObjectConflictError,
  ObjectNotFoundError,
  putContentAddressed,
  StoreAccessError,
  validateKey,
} from '../../artifacts/store.js';
import { runCli } from '../support/processes.js';
import { startTestS3 } from '../support/s3.js';

const MiB = 1024 * 1024;

interface Subject {
  store: ArtifactStore;
  /** The bytes stored at key, read without the store. */
  rawRead(key: string): Promise<Uint8Array>;
  /** Replaces the bytes at key without the store knowing. */
  tamper(key: string, bytes: Uint8Array): Promise<void>;
  /** Work a store may leave behind (temp files, multipart uploads): must be empty when idle. */
  leftovers(): Promise<string[]>;
  /** Strings that must never appear when the store is printed or serialized. */
  secrets: string[];
}

function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Deterministic, incompressible-looking bytes so that a wrong offset or a dropped part shows. */
function patterned(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

let keySeq = 0;
function freshKey(name: string): string {
  return `contract/${++keySeq}-${randomBytes(3).toString('hex')}/${name}`;
}

function contract(label: string, s: Subject): void {
  describe(`ArtifactStore contract: ${label}`, () => {
    test('put returns the ref; get, head and raw reads return exactly the bytes', async () => {
      const key = freshKey('a.bin');
      const bytes = patterned(1000, 1);
      const ref = await s.store.put(key, bytes);
      assert.deepEqual(ref, { key, sha256: sha256Hex(bytes), bytes: 1000 });
      assert.deepEqual(await s.store.get(key), bytes);
      assert.deepEqual(await s.store.head(key), ref);
      // Read around the store: what a compatible server keeps must be the object, not an upload framing.
      assert.deepEqual(await s.rawRead(key), bytes);
    });

    test('an empty object round-trips', async () => {
      const key = freshKey('empty');
      const ref = await s.store.put(key, new Uint8Array(0));
      assert.equal(ref.bytes, 0);
      assert.equal((await s.store.get(key)).byteLength, 0);
      assert.deepEqual(await s.store.head(key), ref);
    });

    test('head of a missing key is undefined; get throws ObjectNotFoundError naming the key', async () => {
      const key = freshKey('missing');
      assert.equal(await s.store.head(key), undefined);
      await assert.rejects(s.store.get(key), (err: unknown) => {
        assert.ok(err instanceof ObjectNotFoundError);
        assert.equal(err.key, key);
        assert.match(err.message, new RegExp(key));
        return true;
      });
    });

    test('putting the same bytes again is a no-op returning the same ref', async () => {
      const key = freshKey('same');
      const bytes = bytesOf('same bytes');
      const first = await s.store.put(key, bytes);
      const second = await s.store.put(key, bytes.slice());
      assert.deepEqual(second, first);
      assert.deepEqual(await s.store.list(key), [key]);
    });

    test('putting different bytes conflicts and leaves the original intact', async () => {
      const key = freshKey('conflict');
      const original = bytesOf('original');
      const ref = await s.store.put(key, original);
      const other = bytesOf('something else');
      await assert.rejects(s.store.put(key, other), (err: unknown) => {
        assert.ok(err instanceof ObjectConflictError);
        assert.equal(err.key, key);
        assert.match(err.message, new RegExp(sha256Hex(other)));
        assert.match(err.message, new RegExp(ref.sha256));
        return true;
      });
      assert.deepEqual(await s.store.get(key), original);
      assert.deepEqual(await s.store.head(key), ref);
      assert.deepEqual(await s.leftovers(), []);
    });

    test('racing puts of different bytes: exactly one wins, the others conflict', async () => {
      const key = freshKey('race');
      const candidates = [1, 2, 3, 4].map((i) => bytesOf(`candidate ${i}`));
      const results = await Promise.allSettled(candidates.map((b) => s.store.put(key, b)));
      const won = results.filter((r) => r.status === 'fulfilled');
      assert.equal(won.length, 1, `expected one winner, found ${won.length}`);
      for (const r of results) {
        if (r.status === 'rejected') assert.ok(r.reason instanceof ObjectConflictError, String(r.reason));
      }
      const stored = await s.store.get(key);
      const winner = (won[0] as PromiseFulfilledResult<{ sha256: string }>).value;
      assert.equal(sha256Hex(stored), winner.sha256);
    });

    test('get verifies the sha256 it is given', async () => {
      const key = freshKey('verify');
      const ref = await s.store.put(key, bytesOf('trusted'));
      assert.deepEqual(await s.store.get(key, { sha256: ref.sha256 }), bytesOf('trusted'));
      await s.tamper(key, bytesOf('tampered'));
      await assert.rejects(s.store.get(key, { sha256: ref.sha256 }), (err: unknown) => {
        assert.ok(err instanceof IntegrityError);
        assert.equal(err.key, key);
        assert.equal(err.expectedSha256, ref.sha256);
        assert.equal(err.foundSha256, sha256Hex(bytesOf('tampered')));
        return true;
      });
    });

    test('list returns sorted keys under a prefix; delete is idempotent', async () => {
      const base = freshKey('listing');
      const keys = [`${base}/b/2`, `${base}/a`, `${base}/b/1`, `${base}x/other`];
      for (const k of keys) await s.store.put(k, bytesOf(k));
      assert.deepEqual(await s.store.list(`${base}/`), [`${base}/a`, `${base}/b/1`, `${base}/b/2`]);
      assert.deepEqual(await s.store.list(`${base}/b/`), [`${base}/b/1`, `${base}/b/2`]);
      assert.deepEqual(await s.store.list(base), [`${base}/a`, `${base}/b/1`, `${base}/b/2`, `${base}x/other`]);
      assert.deepEqual(await s.store.list(`${base}/nothing/`), []);
      await s.store.delete(`${base}/a`);
      await s.store.delete(`${base}/a`);
      await s.store.delete(`${base}/never-existed`);
      assert.equal(await s.store.head(`${base}/a`), undefined);
      assert.deepEqual(await s.store.list(`${base}/`), [`${base}/b/1`, `${base}/b/2`]);
      // A deleted key can be written again, with other bytes.
      await s.store.put(`${base}/a`, bytesOf('reborn'));
      assert.deepEqual(await s.store.get(`${base}/a`), bytesOf('reborn'));
    });

    test('putContentAddressed names the object by its sha256', async () => {
      const bytes = bytesOf('content addressed');
      const sha = sha256Hex(bytes);
      const ref = await putContentAddressed(s.store, `${freshKey('cas')}`, bytes, '.bin');
      assert.match(ref.key, new RegExp(`/${sha.slice(0, 2)}/${sha}\\.bin$`));
      assert.deepEqual(await putContentAddressed(s.store, ref.key.split('/').slice(0, -2).join('/'), bytes, '.bin'), ref);
    });

    test('invalid keys are rejected before anything is stored', async () => {
      const bad = ['', '/abs', 'a//b', 'a/', 'a/../b', '../up', './here', 'a/./b', 'sp ace', 'tilde~', 'q?', 'ü'];
      for (const key of bad) {
        await assert.rejects(s.store.put(key, bytesOf('x')), InvalidKeyError, `put ${JSON.stringify(key)}`);
        await assert.rejects(s.store.get(key), InvalidKeyError, `get ${JSON.stringify(key)}`);
        assert.throws(() => validateKey(key), InvalidKeyError);
      }
      assert.equal(validateKey('runs/r-1/epoch=3/w+b_0.arrow'), 'runs/r-1/epoch=3/w+b_0.arrow');
    });

    test('a 12 MiB object (multipart on S3) round-trips exactly', async () => {
      const key = freshKey('big.bin');
      const bytes = patterned(12 * MiB + 123, 7);
      const ref = await s.store.put(key, bytes);
      assert.equal(ref.sha256, sha256Hex(bytes));
      assert.deepEqual(await s.store.head(key), ref);
      const back = await s.store.get(key, { sha256: ref.sha256 });
      assert.equal(Buffer.compare(back, bytes), 0);
      assert.equal(Buffer.compare(await s.rawRead(key), bytes), 0);
      assert.deepEqual(await s.leftovers(), []);
    });

    test('an aborted put throws and leaves no object behind', async () => {
      const before = new AbortController();
      before.abort();
      const k1 = freshKey('aborted-before');
      await assert.rejects(s.store.put(k1, bytesOf('x'), { signal: before.signal }), { name: 'AbortError' });
      assert.equal(await s.store.head(k1), undefined);

      // Aborted while the put is under way (after its first await).
      const during = new AbortController();
      const k2 = freshKey('aborted-during');
      const pending = s.store.put(k2, patterned(6 * MiB, 3), { signal: during.signal });
      during.abort();
      await assert.rejects(pending, { name: 'AbortError' });
      assert.equal(await s.store.head(k2), undefined);
      assert.deepEqual(await s.store.list(k2), []);
      assert.deepEqual(await s.leftovers(), []);
    });

    test('an aborted get throws', async () => {
      const key = freshKey('get-abort');
      await s.store.put(key, bytesOf('x'));
      const c = new AbortController();
      c.abort();
      await assert.rejects(s.store.get(key, { signal: c.signal }), { name: 'AbortError' });
    });

    // For a store with credentials (S3): a LocalStore has none to show.
    if (s.secrets.length > 0) test('credentials never appear in location, JSON or inspect', () => {
      const shown = [s.store.location, JSON.stringify(s.store), inspect(s.store, { depth: 10, showHidden: true })];
      for (const secret of s.secrets) for (const text of shown) assert.ok(!text.includes(secret), `found a secret in ${text}`);
    });
  });
}

// ---- LocalStore on a temp folder -------------------------------------------------------------------

const localRoot = await mkdtemp(join(tmpdir(), 'paramtrail-store-'));
after(() => rm(localRoot, { recursive: true, force: true }));
const local = new LocalStore(localRoot);
contract('LocalStore', {
    store: local,
    rawRead: async (key) => new Uint8Array(await readFile(local.locate(key))),
    tamper: (key, bytes) => writeFile(local.locate(key), bytes),
    leftovers: async () => {
      const all = await readdir(localRoot, { recursive: true });
      return all.filter((p) => p.endsWith('.tmp'));
    },
    secrets: [],
});

describe('LocalStore specifics', () => {
  test('location is a file URL and locate gives the file path', async () => {
    const root = join(localRoot, 'specifics-1');
    const store = new LocalStore(root);
    assert.equal(store.location, `file://${root}`);
    assert.equal(store.locate('a/b.bin'), join(root, 'a', 'b.bin'));
    await store.put('a/b.bin', bytesOf('x'));
    assert.deepEqual(await readFile(join(root, 'a', 'b.bin')), Buffer.from('x'));
  });

  test('put records the identity of a large file it linked, so head answers from the record', async () => {
    const store = new LocalStore(join(localRoot, 'specifics-3'));
    const large = new Uint8Array(randomBytes(RECORD_MIN_BYTES));
    await store.put('d/k', large);
    const st = await stat(store.locate('d/k'), { bigint: true });
    const record = JSON.parse(await readFile(`${store.locate('d/k')}~sha256`, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(record, { sha256: sha256Hex(large), bytes: RECORD_MIN_BYTES, ino: String(st.ino), mtimeNs: String(st.mtimeNs) });
    // The record, not the bytes, answers: a record naming another hash for this very file is believed.
    await writeFile(`${store.locate('d/k')}~sha256`, JSON.stringify({ ...record, sha256: 'ab'.repeat(32) }));
    assert.equal((await store.head('d/k'))?.sha256, 'ab'.repeat(32));
  });

  test('a small object has no record: put writes one file, and head hashes the object', async () => {
    const store = new LocalStore(join(localRoot, 'specifics-5'));
    const small = new Uint8Array(randomBytes(RECORD_MIN_BYTES - 1));
    await store.put('d/small', small);
    assert.deepEqual(await readdir(join(store.root, 'd')), ['small']);
    assert.deepEqual(await store.head('d/small'), { key: 'd/small', sha256: sha256Hex(small), bytes: small.byteLength });
    assert.deepEqual(await readdir(join(store.root, 'd')), ['small']);
    // Altered in place, it is hashed anew: head names what is stored now.
    const altered = small.slice();
    altered[0] = altered[0]! ^ 0xff;
    await writeFile(store.locate('d/small'), altered);
    assert.equal((await store.head('d/small'))?.sha256, sha256Hex(altered));
  });

  test('a key beneath a stored object is refused by name, and the object stays', async () => {
    const store = new LocalStore(join(localRoot, 'specifics-4'));
    await store.put('a/b', bytesOf('object'));
    await assert.rejects(store.put('a/b/c', bytesOf('beneath')), /a folder was expected at .*a\/b, found a file/);
    // Deeper down, the message still names the file in the way, not a folder that does not exist.
    await assert.rejects(store.put('a/b/c/d/e', bytesOf('deeper')), new RegExp(`a folder was expected at ${store.root}/a/b, found a file`));
    assert.deepEqual(await store.get('a/b'), bytesOf('object'));
  });

  test('head recomputes when its sha256 record is missing or stale', async () => {
    const store = new LocalStore(join(localRoot, 'specifics-2'));
    const first = new Uint8Array(randomBytes(RECORD_MIN_BYTES));
    const second = new Uint8Array(randomBytes(RECORD_MIN_BYTES));
    await store.put('k', first);
    await rm(`${store.locate('k')}~sha256`);
    assert.equal((await store.head('k'))?.sha256, sha256Hex(first));
    // A record left by an interrupted delete must not describe the next object at that key.
    const record = await readFile(`${store.locate('k')}~sha256`);
    await store.delete('k');
    await writeFile(`${store.locate('k')}~sha256`, record);
    await rm(store.locate('k'), { force: true });
    await store.put('k', second);
    assert.equal((await store.head('k'))?.sha256, sha256Hex(second));
  });
});

// ---- S3Store on a real versitygw ---------------------------------------------------------------------

// A low threshold so the 12 MiB contract object goes up in three parts.
const s3 = await startTestS3({ multipartThreshold: 5 * MiB, partSize: 5 * MiB });
const raw = new S3Client({
  endpoint: s3.server.endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials: { accessKeyId: s3.server.accessKeyId, secretAccessKey: s3.server.secretAccessKey },
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
after(() => raw.destroy());

/** The names of the commands the store's client sends from now on, in order. */
function commandsSent(store: S3Store): string[] {
  const sent: string[] = [];
  store.client.middlewareStack.add(
    (next, context) => async (args) => {
      sent.push(context.commandName ?? '');
      return next(args);
    },
    { step: 'initialize', name: 'recordCommands' },
  );
  return sent;
}

async function inProgressUploads(): Promise<string[]> {
  const out = await raw.send(new ListMultipartUploadsCommand({ Bucket: s3.server.bucket }));
  return (out.Uploads ?? []).map((u) => `multipart upload of ${u.Key}`);
}

const s3Subject = (store: S3Store): Subject => ({
  store,
  rawRead: async (key) => {
    const out = await raw.send(new GetObjectCommand({ Bucket: s3.server.bucket, Key: key }));
    return out.Body!.transformToByteArray();
  },
  // A raw overwrite that keeps the object's recorded sha256, as silent corruption would.
  tamper: async (key, bytes) => {
    await raw.send(
      new PutObjectCommand({
        Bucket: s3.server.bucket,
        Key: key,
        Body: bytes,
        Metadata: { sha256: (await s3.store.head(key))!.sha256 },
      }),
    );
  },
  leftovers: inProgressUploads,
  secrets: [s3.server.secretAccessKey],
});

contract('S3Store on versitygw', s3Subject(s3.store));

// Every small put without a HEAD first: the conditional write alone must keep the contract.
const conditional = new S3Store({ ...s3.storeOptions, conditionalWrites: true });
after(() => conditional.client.destroy());
contract('S3Store on versitygw, conditional writes', s3Subject(conditional));

describe('S3Store specifics', () => {
  test('cancelled between parts: the multipart upload is aborted and no object appears', async (t) => {
    const store = new S3Store(s3.storeOptions);
    t.after(() => store.client.destroy());
    const controller = new AbortController();
    // Cancel as soon as the first part is acknowledged: a real mid-upload cancellation.
    store.client.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        if (context.commandName === 'UploadPartCommand') controller.abort();
        return result;
      },
      { step: 'initialize', name: 'abortAfterFirstPart' },
    );
    const key = freshKey('cancel-mid-multipart');
    await assert.rejects(store.put(key, patterned(12 * MiB, 9), { signal: controller.signal }), { name: 'AbortError' });
    assert.equal(await store.head(key), undefined);
    assert.deepEqual(await inProgressUploads(), []);
  });

  test('uploads are sent as plain bodies, never aws-chunked with trailing checksums', async (t) => {
    // versitygw decodes aws-chunked itself, so the raw read-backs cannot tell; other compatible servers
    // store the framing. Look at what goes on the wire instead.
    const store = new S3Store(s3.storeOptions);
    t.after(() => store.client.destroy());
    const seen: Array<{ command: string; headers: Record<string, string> }> = [];
    store.client.middlewareStack.add(
      (next, context) => async (args) => {
        const headers = (args.request as { headers?: Record<string, string> }).headers ?? {};
        seen.push({ command: context.commandName ?? '', headers: { ...headers } });
        return next(args);
      },
      { step: 'finalizeRequest', name: 'recordHeaders' },
    );
    await store.put(freshKey('small'), patterned(1000, 4));
    await store.put(freshKey('multipart'), patterned(11 * MiB, 5));
    const uploads = seen.filter((r) => r.command === 'PutObjectCommand' || r.command === 'UploadPartCommand');
    assert.equal(uploads.length, 1 + 3);
    for (const { command, headers } of uploads) {
      const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
      assert.equal(lower['x-amz-trailer'], undefined, `${command} sent x-amz-trailer`);
      assert.ok(!/aws-chunked/.test(lower['content-encoding'] ?? ''), `${command} sent content-encoding ${lower['content-encoding']}`);
      assert.ok(!/^STREAMING-/.test(lower['x-amz-content-sha256'] ?? ''), `${command} streamed ${lower['x-amz-content-sha256']}`);
      assert.ok(lower['content-md5'], `${command} sent no Content-MD5`);
      // The SDK adds no checksum of its own (its CRC32 is what goes aws-chunked on streamed bodies).
      assert.equal(lower['x-amz-sdk-checksum-algorithm'], undefined, `${command} let the SDK add a checksum`);
    }
  });

  test('a small content-addressed put sends no HEAD; a repeat is answered by the conditional write', async (t) => {
    const store = new S3Store(s3.storeOptions);
    t.after(() => store.client.destroy());
    const commands = commandsSent(store);
    const prefix = freshKey('cas-conditional');
    const bytes = patterned(4000, 11);
    const ref = await putContentAddressed(store, prefix, bytes, '.bin');
    assert.deepEqual(commands, ['PutObjectCommand']);
    const stored = await store.client.send(new HeadObjectCommand({ Bucket: s3.server.bucket, Key: ref.key }));

    commands.length = 0;
    assert.deepEqual(await putContentAddressed(store, prefix, bytes, '.bin'), ref);
    // Refused with 412, then compared: the object is the first write's.
    assert.deepEqual(commands, ['PutObjectCommand', 'HeadObjectCommand']);
    const after = await store.client.send(new HeadObjectCommand({ Bucket: s3.server.bucket, Key: ref.key }));
    assert.equal(after.ETag, stored.ETag);
    assert.equal(after.LastModified?.getTime(), stored.LastModified?.getTime());
    assert.deepEqual(await store.get(ref.key), bytes);

    // Any other put looks first, so a repeat costs no upload...
    commands.length = 0;
    const plain = freshKey('plain');
    await store.put(plain, bytes);
    await store.put(plain, bytes);
    assert.deepEqual(commands, ['HeadObjectCommand', 'PutObjectCommand', 'HeadObjectCommand']);

    // ...unless the server is known to honour conditional writes; an object past the multipart
    // threshold always looks first.
    const conditional = new S3Store({ ...s3.storeOptions, conditionalWrites: true, multipartThreshold: 5000 });
    t.after(() => conditional.client.destroy());
    const seen = commandsSent(conditional);
    await conditional.put(freshKey('conditional'), bytes);
    assert.deepEqual(seen, ['PutObjectCommand']);
    seen.length = 0;
    await assert.rejects(conditional.put(plain, patterned(4000, 12)), ObjectConflictError);
    assert.deepEqual(seen, ['PutObjectCommand', 'HeadObjectCommand']);
    assert.deepEqual(await store.get(plain), bytes);
    seen.length = 0;
    await conditional.put(freshKey('large'), patterned(6000, 13));
    assert.equal(seen[0], 'HeadObjectCommand');
  });

  test('an object written by another tool (no sha256 metadata) is hashed by head', async () => {
    const key = freshKey('foreign');
    await raw.send(new PutObjectCommand({ Bucket: s3.server.bucket, Key: key, Body: bytesOf('foreign') }));
    assert.equal((await s3.store.head(key))?.sha256, sha256Hex(bytesOf('foreign')));
    await assert.rejects(s3.store.put(key, bytesOf('mine')), ObjectConflictError);
  });

  test('keys live under the store prefix; location and locate name bucket and prefix', async (t) => {
    const store = new S3Store({ ...s3.storeOptions, prefix: 'team/a/' });
    t.after(() => store.client.destroy());
    assert.equal(store.location, `s3://${s3.server.bucket}/team/a`);
    assert.equal(store.locate('x/y'), `s3://${s3.server.bucket}/team/a/x/y`);
    await store.put('x/y', bytesOf('prefixed'));
    assert.deepEqual(await store.list('x/'), ['x/y']);
    assert.deepEqual(await s3.store.list('team/a/'), ['team/a/x/y']);
  });

  test('errors from a store with a wrong secret do not carry the secret', async (t) => {
    const wrongSecret = `wrong-${randomBytes(12).toString('hex')}`;
    const store = new S3Store({ ...s3.storeOptions, credentials: { accessKeyId: s3.server.accessKeyId, secretAccessKey: wrongSecret } });
    t.after(() => store.client.destroy());
    const err = await store.get('anything').then(
      () => assert.fail('expected the request to be refused'),
      (e: unknown) => e,
    );
    const text = `${String(err)}\n${(err as Error).stack}\n${inspect(err, { depth: 10 })}\n${JSON.stringify(err)}`;
    assert.ok(!text.includes(wrongSecret), 'the secret appears in the error');
    assert.ok(!inspect(store, { depth: 10 }).includes(wrongSecret));
    // The SDK names a refused GET "UnknownError"; the store says where and what to check.
    assert.ok(err instanceof StoreAccessError, inspect(err));
    assert.equal(err.location, store.location);
    assert.match(err.message, /^the store s3:\/\/paramtrail-test refused GetObject \(HTTP 403[^)]*\); check the S3 credentials \(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY\)/);
  });

  test('a refused signature\'s reply, as AWS gives it, does not bring the session token or key id into the error', async (t) => {
    // AWS answers SignatureDoesNotMatch with the canonical request it computed, whose signed headers
    // include x-amz-security-token; the SDK copies every field of the reply onto its error. The
    // server here gives that reply (a real server of ours, versitygw, does not echo the request).
    const token = `token-${randomBytes(12).toString('hex')}`;
    // An expired token's reply (ExpiredToken) names the token itself, as Token-0; the first request gets that one.
    let requests = 0;
    const server = createServer((req, res) => {
      res.writeHead(requests++ === 0 ? 400 : 403, { 'content-type': 'application/xml' });
      res.end(
        requests === 1
          ? `<?xml version="1.0" encoding="UTF-8"?><Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message><Token-0>${req.headers['x-amz-security-token']}</Token-0><RequestId>r0</RequestId></Error>`
          : '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message>' +
              `<AWSAccessKeyId>AKIDREFUSED</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256 ${token}</StringToSign><CanonicalRequest>GET\n${req.url}\n\nx-amz-security-token:${req.headers['x-amz-security-token']}\n</CanonicalRequest><RequestId>r1</RequestId></Error>`,
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const endpoint = `http://reader:endpoint-password@127.0.0.1:${(server.address() as AddressInfo).port}`;
    const store = new S3Store({ bucket: 'b', endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'AKIDREFUSED', secretAccessKey: 'x'.repeat(40), sessionToken: token } });
    t.after(() => store.client.destroy());
    const refused = () =>
      store.get('k').then(
        () => assert.fail('expected the request to be refused'),
        (e: unknown) => e,
      );
    const expired = await refused();
    assert.ok(expired instanceof StoreAccessError, inspect(expired));
    assert.match(expired.message, /refused GetObject \(HTTP 400, ExpiredToken/);
    assert.ok(!inspect(expired, { depth: 10 }).includes(token), inspect(expired, { depth: 10 }));
    const err = await refused();
    assert.ok(err instanceof StoreAccessError, inspect(err));
    assert.match(err.message, /refused GetObject \(HTTP 403, SignatureDoesNotMatch/);
    // As Temporal's logger and console.error print it: the error with its cause, every field.
    const printed = `${inspect(err, { depth: 10 })}\n${inspect({ error: err }, { depth: 10 })}\n${JSON.stringify(err)}`;
    assert.ok((err as Error & { cause?: unknown }).cause, 'the SDK\'s error stays the cause');
    for (const secret of [token, 'AKIDREFUSED', 'endpoint-password']) assert.ok(!printed.includes(secret), `${secret} printed:\n${printed}`);
    // Nor does the store show its endpoint's password.
    assert.ok(!JSON.stringify(store).includes('endpoint-password') && !inspect(store).includes('endpoint-password'), inspect(store));
    assert.match(JSON.stringify(store), /"endpoint":"http:\/\/127\.0\.0\.1:\d+\/"/);
  });

  test('a store that cannot be reached keeps the network error\'s code, which the CLI maps to its exit code', async (t) => {
    // A port nothing listens on: a server's, once closed.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    const store = new S3Store({ bucket: 'b', endpoint: `http://127.0.0.1:${port}`, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'k', secretAccessKey: 'x'.repeat(40) } });
    t.after(() => store.client.destroy());
    const err = await store.get('k').then(
      () => assert.fail('expected the request to fail'),
      (e: unknown) => e as NodeJS.ErrnoException,
    );
    assert.equal(err.code, 'ECONNREFUSED', inspect(err));
  });

  test('an unknown key id, a missing bucket and no credentials at all are refusals naming the store', async (t) => {
    const refusal = async (store: S3Store, call: (s: S3Store) => Promise<unknown>) => {
      t.after(() => store.client.destroy());
      return call(store).then(
        () => assert.fail('expected the request to be refused'),
        (e: unknown) => (assert.ok(e instanceof StoreAccessError, inspect(e)), e.message),
      );
    };
    const unknownKey = new S3Store({ ...s3.storeOptions, credentials: { accessKeyId: 'nobody', secretAccessKey: 'x'.repeat(40) } });
    assert.match(await refusal(unknownKey, (s) => s.list('runs/')), /^the store s3:\/\/paramtrail-test refused ListObjectsV2 \(HTTP \d+, \w+: .*\); check the S3 credentials/);
    const noBucket = new S3Store({ ...s3.storeOptions, bucket: 'no-such-bucket' });
    assert.equal(await refusal(noBucket, (s) => s.list('runs/')), 'the store s3://no-such-bucket: ListObjectsV2: its bucket no-such-bucket does not exist');
    // A HEAD's 404 has no body to tell a missing bucket from a missing key: the store asks the bucket.
    assert.equal(await refusal(noBucket, (s) => s.head('datasets/ab/abcd')), 'the store s3://no-such-bucket: HeadObject: its bucket no-such-bucket does not exist');
    // What the SDK's default chain throws when no provider has credentials (a provider function is what
    // the S3 client takes; the store's options type only the static pair).
    const none = () => Promise.reject(Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }));
    const noCredentials = new S3Store({ ...s3.storeOptions, credentials: none as unknown as S3StoreOptions['credentials'] });
    assert.match(await refusal(noCredentials, (s) => s.put('k', new Uint8Array([1]))), /^the store s3:\/\/paramtrail-test: HeadObject: no S3 credentials were found; set AWS_ACCESS_KEY_ID/);
  });

  test('a command refused by the store exits 4 with the refusal, no stack trace', async () => {
    const env = {
      ...process.env,
      TEMPORAL_ADDRESS: '127.0.0.1:9',
      PARAMTRAIL_STORE: `s3://${s3.server.bucket}/p`,
      PARAMTRAIL_S3_ENDPOINT: s3.server.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: s3.server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: `wrong-${randomBytes(12).toString('hex')}`,
    };
    const r = await runCli(['lineage', 'some-run'], env);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^the store s3:\/\/paramtrail-test\/p refused \w+ \(HTTP 403\); check the S3 credentials/);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
    assert.ok(!r.stderr.includes(env.AWS_SECRET_ACCESS_KEY));
  });

  test('partSize below S3 minimum is refused', () => {
    assert.throws(() => new S3Store({ ...s3.storeOptions, partSize: MiB }), /5 MiB/);
  });
});

describe('openStore', () => {
  test('plain paths and file URLs open a LocalStore', () => {
    assert.ok(openStore('/tmp/x', {}) instanceof LocalStore);
    assert.equal(openStore('file:///tmp/x', {}).location, 'file:///tmp/x');
  });

  test('s3 URLs open an S3Store configured from env, with no secret in its location', async (t) => {
    const store = openStore(`s3://${s3.server.bucket}/via-env`, {
      PARAMTRAIL_S3_ENDPOINT: s3.server.endpoint,
      AWS_ACCESS_KEY_ID: s3.server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.server.secretAccessKey,
    });
    assert.ok(store instanceof S3Store);
    t.after(() => (store as S3Store).client.destroy());
    assert.equal(store.location, `s3://${s3.server.bucket}/via-env`);
    const ref = await store.put('k', bytesOf('through env'));
    assert.deepEqual(await s3.store.get('via-env/k'), bytesOf('through env'));
    assert.deepEqual(await store.head('k'), ref);
    assert.ok(!JSON.stringify(store).includes(s3.server.secretAccessKey));

    // PARAMTRAIL_S3_CONDITIONAL_WRITES: a new small object goes up without a HEAD first.
    const conditional = openStore(`s3://${s3.server.bucket}/via-env`, {
      PARAMTRAIL_S3_ENDPOINT: s3.server.endpoint,
      PARAMTRAIL_S3_CONDITIONAL_WRITES: 'true',
      AWS_ACCESS_KEY_ID: s3.server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.server.secretAccessKey,
    }) as S3Store;
    t.after(() => conditional.client.destroy());
    const seen = commandsSent(conditional);
    await conditional.put('k2', bytesOf('conditional through env'));
    assert.deepEqual(seen, ['PutObjectCommand']);
  });

  test('a store URL with a user or password in it is refused, and not echoed', () => {
    for (const url of ['s3://AKIDSTORE:s3cret@bucket/p', 'https://AKIDSTORE:s3cret@minio:9000/bucket', 'file://AKIDSTORE:s3cret@host/tmp/x']) {
      assert.throws(
        () => openStore(url, {}),
        (err: Error) => {
          assert.ok(err instanceof InvalidStoreSettingError, inspect(err));
          assert.match(err.message, /: expected no user or password in it/);
          assert.ok(!err.message.includes('s3cret') && !err.message.includes('AKIDSTORE'), err.message);
          return true;
        },
      );
    }
  });

  test('bad URLs and half-set credentials are refused with a message', () => {
    assert.throws(() => openStore('gs://bucket', {}), /expected file:\/\/ or s3:\/\//);
    assert.throws(() => openStore('s3://', {}), /no bucket/);
    assert.throws(() => openStore('s3://b', { AWS_ACCESS_KEY_ID: 'k' }), /AWS_SECRET_ACCESS_KEY/);
    assert.throws(() => openStore('s3://b', { PARAMTRAIL_S3_FORCE_PATH_STYLE: 'maybe' }), /PARAMTRAIL_S3_FORCE_PATH_STYLE/);
    assert.throws(() => openStore('s3://b', { PARAMTRAIL_S3_CONDITIONAL_WRITES: 'sometimes' }), /PARAMTRAIL_S3_CONDITIONAL_WRITES: expected true or false, found "sometimes"/);
  });
});
