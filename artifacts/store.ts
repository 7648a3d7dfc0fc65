/**
 * The object store seen by the rest of paramtrail: a flat namespace of keys holding immutable bytes.
 *
 * Two implementations pass one contract suite (test/unit/store.contract.test.ts): `LocalStore`, a folder
 * on disk and the embedded default, and `S3Store`, any S3-compatible service. `openStore` picks one from
 * a URL. Activities store tensors, datasets, tables and figures here and pass only `ObjectRef`s onward.
 *
 * The rules every implementation keeps:
 * - A key, once written, holds those bytes for good: writing the same bytes again is a no-op, writing
 *   different bytes is an `ObjectConflictError` and never an overwrite.
 * - A reader sees an object whole or not at all.
 * - `get` with an expected sha256 verifies the bytes it returns.
 */
import { sha256Hex } from './hash.js';
import type { ObjectRef } from './refs.js';

export interface PutOptions {
  /** MIME type recorded with the object where the store can keep one (S3). */
  contentType?: string;
  signal?: AbortSignal;
  /**
   * The key is derived from the bytes' sha256 (putContentAddressed sets this): any object already there
   * holds these bytes. A store that looks before it writes may write at once and let its conditional
   * write find the existing object.
   */
  contentAddressed?: boolean;
}

export interface GetOptions {
  signal?: AbortSignal;
  /** When given, the bytes are verified: a mismatch throws IntegrityError. */
  sha256?: string;
}

export interface ArtifactStore {
  /** Where the store is, without credentials: `file:///abs/dir` or `s3://bucket/prefix`. */
  readonly location: string;
  /** Stores bytes at key. Same bytes already there: returns the ref, writes nothing. Different bytes there: ObjectConflictError, nothing changes. */
  put(key: string, bytes: Uint8Array, opts?: PutOptions): Promise<ObjectRef>;
  /** Throws ObjectNotFoundError naming the key. */
  get(key: string, opts?: GetOptions): Promise<Uint8Array>;
  head(key: string, opts?: { signal?: AbortSignal }): Promise<ObjectRef | undefined>;
  /** Keys under prefix, sorted. */
  list(prefix: string, opts?: { signal?: AbortSignal }): Promise<string[]>;
  /** Idempotent. */
  delete(key: string, opts?: { signal?: AbortSignal }): Promise<void>;
  /** Where someone outside paramtrail finds the object: an absolute file path (local) or s3://bucket/key. */
  locate(key: string): string;
}

/** A different object already holds the key; the stored one was left as it was. */
export class ObjectConflictError extends Error {
  override readonly name = 'ObjectConflictError';
  constructor(
    readonly key: string,
    /** sha256 of the bytes that were offered. */
    readonly expectedSha256: string,
    /** sha256 of the bytes already stored. */
    readonly foundSha256: string,
  ) {
    super(
      `object ${key} already exists with different bytes: offered sha256 ${expectedSha256}, ` +
        `stored sha256 ${foundSha256}; stored objects are never overwritten`,
    );
  }
}

export class ObjectNotFoundError extends Error {
  override readonly name = 'ObjectNotFoundError';
  constructor(
    readonly key: string,
    /** Where the store looked (a location, never credentials). */
    where: string,
  ) {
    super(`object ${key} not found in ${where}`);
  }
}

/**
 * The store refused a request for a reason that repeating it will not change: no credentials, wrong
 * ones, no right to the bucket, or no such bucket. The message names the store's location and what to
 * check, never a credential.
 */
export class StoreAccessError extends Error {
  override readonly name = 'StoreAccessError';
  constructor(
    /** Where the store is (a location, never credentials), which the message names. */
    readonly location: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Bytes read back do not hash to what the caller (or the store's own record) expected. */
export class IntegrityError extends Error {
  override readonly name = 'IntegrityError';
  constructor(
    readonly key: string,
    readonly expectedSha256: string,
    readonly foundSha256: string,
    /** What was hashed, when it is more than the whole object (e.g. one tensor of a snapshot). */
    what?: string,
  ) {
    super(
      `integrity check failed for ${what ? `${what} in ` : ''}${key}: expected sha256 ${expectedSha256}, ` +
        `found sha256 ${foundSha256}`,
    );
  }
}

export class InvalidKeyError extends Error {
  override readonly name = 'InvalidKeyError';
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`invalid object key ${JSON.stringify(key)}: ${reason}`);
  }
}

const KEY_CHARS = /^[A-Za-z0-9._=+\-/]*$/;

/**
 * Returns the key if it is one every store can hold the same way, else throws InvalidKeyError.
 * Keys are relative slash-separated paths over a small alphabet, so a key means the same file on disk
 * and the same object in S3, and no key can climb out of a local store's folder.
 */
export function validateKey(key: string): string {
  if (typeof key !== 'string' || key === '') throw new InvalidKeyError(String(key), 'expected a non-empty key');
  if (!KEY_CHARS.test(key)) {
    const bad = [...key].find((c) => !KEY_CHARS.test(c));
    throw new InvalidKeyError(key, `expected only A-Z a-z 0-9 . _ = + - /, found ${JSON.stringify(bad)}`);
  }
  if (key.startsWith('/')) throw new InvalidKeyError(key, 'expected a relative key, found a leading "/"');
  for (const segment of key.split('/')) {
    if (segment === '') throw new InvalidKeyError(key, 'expected no empty segments ("//" or a trailing "/")');
    if (segment === '.' || segment === '..') {
      throw new InvalidKeyError(key, `expected no "." or ".." segments, found "${segment}"`);
    }
  }
  return key;
}

/**
 * Returns a listing prefix: '' (everything), a key, a key followed by '/', or the start of a segment.
 * Held to the key rules so a prefix cannot name anything outside the store.
 */
export function validatePrefix(prefix: string): string {
  if (prefix === '') return prefix;
  validateKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
  return prefix;
}

/**
 * Stores bytes under a key derived from their sha256: `${prefix}/${sha.slice(0,2)}/${sha}${ext}`.
 * The same bytes always land on the same key, so storing them twice writes nothing the second time.
 */
export function putContentAddressed(
  store: ArtifactStore,
  prefix: string,
  bytes: Uint8Array,
  ext = '',
  opts?: PutOptions,
): Promise<ObjectRef> {
  const sha = sha256Hex(bytes);
  const key = validateKey(`${prefix}/${sha.slice(0, 2)}/${sha}${ext}`);
  return store.put(key, bytes, { ...opts, contentAddressed: true });
}

/** Throws IntegrityError when the bytes read for key do not hash to the expected sha256. */
export function verifySha256(key: string, bytes: Uint8Array, expected: string | undefined): void {
  if (expected === undefined) return;
  const found = sha256Hex(bytes);
  if (found !== expected.toLowerCase()) throw new IntegrityError(key, expected, found);
}
