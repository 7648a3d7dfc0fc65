/**
 * An ArtifactStore in a folder on disk: the embedded default, used by `paramtrail run` when no S3 store
 * is configured and by unit tests. A key `a/b/c` is the file `<root>/a/b/c`, so objects can be opened
 * with any tool.
 *
 * Whole-or-nothing: bytes go to a temporary file in the destination folder, are fsynced, then hard-linked
 * to the final name. `link()` refuses to replace an existing name (EEXIST), so even two writers racing on
 * one key cannot overwrite each other: the loser compares and either returns the ref or conflicts. A torn
 * file is never visible under a key.
 *
 * Beside each object of RECORD_MIN_BYTES or more the store keeps `<name>~sha256`, a small JSON record of
 * the sha256 and the identity of the file it describes (inode, size, mtime), so `head()` answers without
 * reading the object. A smaller object is hashed when asked about: that costs less than writing a second
 * file at every put, and a sweep's checkpoints, manifests and small snapshots are most of its objects. A
 * record that does not match its file (e.g. left by an interrupted delete) is ignored and the hash
 * recomputed.
 * Names containing `~` are never keys (see validateKey), so temporary files and records cannot collide
 * with objects and are skipped by `list()`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, fsyncSync, linkSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isSha256Hex, sha256Hex } from './hash.js';
import type { ObjectRef } from './refs.js';
import {
  type ArtifactStore,
  type GetOptions,
  ObjectConflictError,
  ObjectNotFoundError,
  type PutOptions,
  validateKey,
  validatePrefix,
  verifySha256,
} from './store.js';

const RECORD_SUFFIX = '~sha256';

/** Temporary names: unique in this process by a counter, across processes (and hosts sharing the folder) by a random prefix. */
const TMP_PREFIX = randomBytes(6).toString('hex');
let tmpCount = 0;
const tmpSuffix = () => `${TMP_PREFIX}${(tmpCount++).toString(36)}`;

/** Objects at least this large get a sha256 record; smaller ones are hashed on head(). */
export const RECORD_MIN_BYTES = 1024 * 1024;

interface ShaRecord {
  sha256: string;
  bytes: number;
  ino: string;
  mtimeNs: string;
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

function sameFile(record: ShaRecord, st: BigIntStats): boolean {
  return record.ino === String(st.ino) && record.bytes === Number(st.size) && record.mtimeNs === String(st.mtimeNs);
}

async function hashFile(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

/** fsync a folder so a new name in it survives a crash, not only the file's bytes. */
function syncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class LocalStore implements ArtifactStore {
  readonly root: string;
  readonly location: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.location = pathToFileURL(this.root).href;
  }

  locate(key: string): string {
    return join(this.root, ...validateKey(key).split('/'));
  }

  async put(key: string, bytes: Uint8Array, opts: PutOptions = {}): Promise<ObjectRef> {
    const path = this.locate(key);
    const { signal } = opts;
    signal?.throwIfAborted();
    const sha256 = sha256Hex(bytes);
    const ref: ObjectRef = { key, sha256, bytes: bytes.byteLength };

    const existing = await this.existingSha(path, signal);
    if (existing !== undefined) return this.settle(ref, existing);

    const tmp = `${path}~${tmpSuffix()}.tmp`;
    try {
      let st: BigIntStats | undefined;
      if (bytes.byteLength < RECORD_MIN_BYTES) await this.writeSmall(key, path, tmp, bytes);
      else st = await this.writeLarge(key, path, tmp, bytes, signal);
      // Last chance to honour cancellation: after link() the object exists.
      signal?.throwIfAborted();
      try {
        linkSync(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // Someone stored this key while we were writing: theirs stands; compare.
        return this.settle(ref, await hashFile(path));
      }
      syncDirSync(dirname(path));
      if (st) await this.writeRecord(path, sha256, st);
      return ref;
    } finally {
      try {
        unlinkSync(tmp);
      } catch {
        // Not written, or already gone.
      }
    }
  }

  /**
   * A small object's temporary file, written and fsynced with blocking calls: each asynchronous call is
   * a round trip through libuv's thread pool that costs more than writing a few kilobytes, and a run of
   * a sweep of tiny models puts ten such objects. On a 2-core machine's ext4 a put of 100 KB with its
   * fsyncs took 0.5 ms this way against 1.1 ms asynchronously, and the activities of 200 tiny runs
   * (`npm run bench:orchestration`'s activities loop) 4-5 ms less per run. Only a missing folder is
   * made asynchronously.
   */
  private async writeSmall(key: string, path: string, tmp: string, bytes: Uint8Array): Promise<void> {
    const fd = await this.inFolder(key, path, () => openSync(tmp, 'wx'));
    try {
      for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** A large object's temporary file, written without blocking; returns its stat for the sha256 record. */
  private async writeLarge(key: string, path: string, tmp: string, bytes: Uint8Array, signal?: AbortSignal): Promise<BigIntStats> {
    const handle = await this.inFolder(key, path, () => open(tmp, 'wx'));
    try {
      await handle.writeFile(bytes, { signal });
      await handle.sync();
      // The name linked below is this inode: its identity, size and mtime are the record's.
      return await handle.stat({ bigint: true });
    } finally {
      await handle.close();
    }
  }

  /** `create()` of a file beside the key's path, making the key's folder first when it does not exist yet. */
  private async inFolder<T>(key: string, path: string, create: () => T | Promise<T>): Promise<T> {
    try {
      return await create();
    } catch (err) {
      // No folder yet (or a file in its way, which makeParent names).
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      await this.makeParent(key, path);
      return create();
    }
  }

  async get(key: string, opts: GetOptions = {}): Promise<Uint8Array> {
    const path = this.locate(key);
    let buf: Buffer;
    try {
      buf = await readFile(path, { signal: opts.signal });
    } catch (err) {
      if (isMissing(err)) throw new ObjectNotFoundError(key, this.location);
      throw err;
    }
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    verifySha256(key, bytes, opts.sha256);
    return bytes;
  }

  async head(key: string, opts: { signal?: AbortSignal } = {}): Promise<ObjectRef | undefined> {
    const path = this.locate(key);
    let st: BigIntStats;
    try {
      st = await stat(path, { bigint: true });
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    if (!st.isFile()) return undefined;
    if (st.size < RECORD_MIN_BYTES) {
      const bytes = await readFile(path, { signal: opts.signal });
      return { key, sha256: sha256Hex(bytes), bytes: bytes.byteLength };
    }
    const record = await this.readRecord(path);
    if (record && sameFile(record, st)) return { key, sha256: record.sha256, bytes: record.bytes };
    const sha256 = await hashFile(path, opts.signal);
    await this.writeRecord(path, sha256).catch(() => undefined);
    return { key, sha256, bytes: Number(st.size) };
  }

  async list(prefix: string, opts: { signal?: AbortSignal } = {}): Promise<string[]> {
    validatePrefix(prefix);
    // Walk only the folder the prefix points into, then filter by the rest of the prefix.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash);
    const keys: string[] = [];
    const walk = async (relDir: string): Promise<void> => {
      opts.signal?.throwIfAborted();
      let entries;
      try {
        entries = await readdir(relDir === '' ? this.root : join(this.root, ...relDir.split('/')), {
          withFileTypes: true,
        });
      } catch (err) {
        if (isMissing(err)) return;
        throw err;
      }
      for (const entry of entries) {
        if (entry.name.includes('~')) continue;
        const rel = relDir === '' ? entry.name : `${relDir}/${entry.name}`;
        if (entry.isDirectory()) {
          if (rel.startsWith(prefix) || prefix.startsWith(`${rel}/`)) await walk(rel);
        } else if (entry.isFile() && rel.startsWith(prefix)) {
          keys.push(rel);
        }
      }
    };
    await walk(base);
    return keys.sort();
  }

  async delete(key: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const path = this.locate(key);
    opts.signal?.throwIfAborted();
    try {
      await unlink(path);
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    await removeQuietly(`${path}${RECORD_SUFFIX}`);
  }

  toJSON(): { type: string; location: string } {
    return { type: 'LocalStore', location: this.location };
  }

  /**
   * sha256 of the object at path, or undefined when there is none. Hashed from the file itself, not
   * the record: whether a put conflicts is decided on the bytes actually stored.
   */
  private async existingSha(path: string, signal?: AbortSignal): Promise<string | undefined> {
    // A stat of a local path answers from the inode cache: synchronously, so that the common case, a
    // new key, costs no promise and no error object.
    let st;
    try {
      st = statSync(path, { throwIfNoEntry: false });
    } catch (err) {
      // A file where a folder of the key should be: makeParent names it.
      if (isMissing(err)) return undefined;
      throw err;
    }
    if (!st) return undefined;
    if (st.isDirectory()) {
      throw new Error(`cannot store ${path}: a folder is there (a local store cannot hold both a key and keys beneath it)`);
    }
    return hashFile(path, signal);
  }

  private settle(ref: ObjectRef, storedSha: string): ObjectRef {
    if (storedSha !== ref.sha256) throw new ObjectConflictError(ref.key, ref.sha256, storedSha);
    return ref;
  }

  private async makeParent(key: string, path: string): Promise<void> {
    try {
      const first = await mkdir(dirname(path), { recursive: true });
      // Each new folder's name made durable in its parent, as put() does for the object's own name.
      if (first !== undefined) {
        for (let dir = dirname(path); ; dir = dirname(dir)) {
          syncDirSync(dirname(dir));
          if (dir === first || dir.length <= this.root.length) break;
        }
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOTDIR') {
        // The file in the way: the folder nearest the root that is not one (those below it cannot exist).
        let blocker = dirname(path);
        for (let dir = blocker; dir.length > this.root.length; dir = dirname(dir)) {
          if ((await stat(dir).catch(() => undefined))?.isFile()) blocker = dir;
        }
        throw new Error(
          `cannot store ${key} in ${this.location}: a folder was expected at ${blocker}, found a file ` +
            `(a local store cannot hold both a key and keys beneath it)`,
        );
      }
      throw err;
    }
  }

  private async readRecord(path: string): Promise<ShaRecord | undefined> {
    try {
      const record = JSON.parse(await readFile(`${path}${RECORD_SUFFIX}`, 'utf8')) as ShaRecord;
      return isSha256Hex(record.sha256) ? record : undefined;
    } catch {
      return undefined;
    }
  }

  /** Writes the record atomically (temp + rename), so a reader never sees half a record. */
  private async writeRecord(path: string, sha256: string, st?: BigIntStats): Promise<void> {
    st ??= await stat(path, { bigint: true });
    const record: ShaRecord = { sha256, bytes: Number(st.size), ino: String(st.ino), mtimeNs: String(st.mtimeNs) };
    const tmp = `${path}${RECORD_SUFFIX}~${tmpSuffix()}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(record), { flag: 'wx' });
      await rename(tmp, `${path}${RECORD_SUFFIX}`);
    } catch (err) {
      await removeQuietly(tmp);
      throw err;
    }
  }
}
