/**
 * An ArtifactStore on any S3-compatible service (AWS S3, MinIO, versitygw): the store of a real
 * deployment and of the embedded stack when an S3 server is configured. Built by `openStore` from an
 * `s3://bucket/prefix` URL; tests build it directly against a real versitygw (infra/s3server.ts).
 *
 * How the store keeps its promises on S3:
 * - Exact bytes. The client adds checksums only when an operation requires them. With the SDK's newer
 *   default ('WHEN_SUPPORTED') it adds a CRC32 to every upload, sent `aws-chunked` with a trailer
 *   whenever the body is a stream, and several compatible servers store that framing instead of the
 *   object's bytes. Bodies here are always whole Uint8Arrays, sent with Content-Length.
 * - Integrity on the way in. Every PutObject and UploadPart carries Content-MD5, which every
 *   S3-compatible server verifies (BadDigest on mismatch). Single-part puts also carry ChecksumSHA256,
 *   the same sha256 that names the object; AWS, MinIO and versitygw verify and keep it. A server that
 *   rejects the header can be used with `checksumSha256: false`. The object's sha256 is always stored as
 *   user metadata (`x-amz-meta-sha256`) so `head()` answers without reading the object.
 * - Never overwrite. The write is conditional (`If-None-Match: *` on PutObject and
 *   CompleteMultipartUpload, honoured by AWS since 2024 and by versitygw); on 412 the stored object is
 *   compared and either returned or reported as a conflict. A HEAD before the write makes a repeated put
 *   of the same bytes free, and on a server that ignores the header it is the only guard (two writers
 *   racing on one key could then overwrite each other; content-addressed keys make that harmless).
 *   Below the multipart threshold the HEAD is left out, saving a round trip per new object, for
 *   content-addressed objects (any object at the key holds the same bytes) and, with
 *   `conditionalWrites` (the default on AWS), for every object.
 * - Whole or nothing. S3 makes an object visible only when its PutObject or CompleteMultipartUpload
 *   succeeds. A multipart upload that fails or is cancelled is aborted so no parts are left behind.
 */
import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { isSha256Hex, sha256Hex } from './hash.js';
import type { ObjectRef } from './refs.js';
import {
  type ArtifactStore,
  type GetOptions,
  ObjectConflictError,
  ObjectNotFoundError,
  type PutOptions,
  StoreAccessError,
  validateKey,
  validatePrefix,
  verifySha256,
} from './store.js';

const MiB = 1024 * 1024;
/** S3's smallest allowed part (except the last). */
const MIN_PART_SIZE = 5 * MiB;
/** S3's largest allowed part count. */
const MAX_PARTS = 10_000;
const SHA_METADATA = 'sha256';

export interface S3StoreOptions {
  bucket: string;
  /** Folder inside the bucket that holds every key of this store. */
  prefix?: string;
  /** URL of an S3-compatible server; omit for AWS. */
  endpoint?: string;
  /** Default us-east-1. */
  region?: string;
  /** `http://host/bucket/key` instead of `http://bucket.host/key`; most compatible servers need it. */
  forcePathStyle?: boolean;
  /** Omit to use the SDK's default chain (environment, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Objects larger than this go up in parts. Default 16 MiB. */
  multipartThreshold?: number;
  /** Default 8 MiB, min 5 MiB. */
  partSize?: number;
  /** Send x-amz-checksum-sha256 on single-part puts. Default true; turn off for servers that reject it. */
  checksumSha256?: boolean;
  /**
   * The server refuses a PutObject with `If-None-Match: *` on an existing key (AWS since 2024,
   * versitygw; test/unit/store.contract.test.ts proves it of a server): then no put below the
   * multipart threshold looks first. Default: true without an endpoint (AWS), false with one.
   */
  conditionalWrites?: boolean;
}

interface S3ErrorLike {
  name?: string;
  $metadata?: { httpStatusCode?: number };
}

function status(err: unknown): number | undefined {
  return (err as S3ErrorLike | undefined)?.$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const name = (err as S3ErrorLike | undefined)?.name;
  return status(err) === 404 || name === 'NotFound' || name === 'NoSuchKey';
}

/** 412: the key exists. 409 ConditionalRequestConflict: AWS saw a concurrent conditional write to it. */
function isExistsConflict(err: unknown): boolean {
  return status(err) === 412 || status(err) === 409;
}

/** Errors that refuse access whatever their HTTP status (versitygw answers an unknown key with a 404). */
const REFUSED_ACCESS = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'XAdminUserNotFound']);

/**
 * What to tell a user whose `operation` on the store at `location` was refused for access (no
 * credentials, wrong ones, no right to the bucket, no such bucket); undefined for any other error. A
 * HEAD of a key in a missing bucket is a plain 404 (its response has no body to say more): `head`
 * asks the bucket itself (S3Store.bucketExists).
 */
function accessProblem(err: unknown, location: string, bucket: string, operation: string): string | undefined {
  const { name, message } = (err ?? {}) as { name?: string; message?: string };
  if (name === 'CredentialsProviderError') {
    return `the store ${location}: ${operation}: no S3 credentials were found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile or an instance role)`;
  }
  if (name === 'NoSuchBucket') return `the store ${location}: ${operation}: its bucket ${bucket} does not exist`;
  const code = status(err);
  if (code !== 401 && code !== 403 && !REFUSED_ACCESS.has(name ?? '')) return undefined;
  // A refused HEAD has no body: the SDK then names it "Unknown", with nothing more to say.
  const said = name && !/^Unknown/.test(name) ? `, ${name}${message && message !== name ? `: ${message.replace(/\.$/, '')}` : ''}` : '';
  return `the store ${location} refused ${operation} (HTTP ${code}${said}); check the S3 credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the bucket's policy`;
}

/**
 * The fields of an SDK error that are kept. The SDK copies every field of an S3 error body onto its
 * error, and they print with it (a logger's inspect of the error, or of an error caused by it): a
 * refused signature's reply holds the canonical request and string to sign, with the session token
 * among their headers, and the key id; an expired token's reply holds the token (`Token-0`).
 */
const PRINTABLE_ERROR_FIELDS: ReadonlySet<string> = new Set([
  'name', 'message', 'stack', 'cause', '$metadata', '$fault', '$service', '$retryable',
  'Code', 'RequestId', 'HostId', 'BucketName', 'Key', 'Resource', 'Condition', 'Region', 'Endpoint',
]);

/**
 * Removes every field but PRINTABLE_ERROR_FIELDS from an error S3 answered (an SDK service exception,
 * which has `$fault`), in place, so it can be logged and recorded. Other errors (a refused connection's
 * `code`, `syscall`, `address`) hold nothing of the reply and are left whole.
 */
export function scrubS3Error(err: unknown): void {
  if (typeof err !== 'object' || err === null || !('$fault' in err)) return;
  for (const field of Object.keys(err)) if (!PRINTABLE_ERROR_FIELDS.has(field)) delete (err as Record<string, unknown>)[field];
}

/** An endpoint as it may be shown: without a user or password in it. */
function endpointShown(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    if (!url.username && !url.password) return endpoint;
    url.username = '';
    url.password = '';
    return url.href;
  } catch {
    return '(an endpoint that is not a URL)';
  }
}

function md5Base64(bytes: Uint8Array): string {
  return createHash('md5').update(bytes).digest('base64');
}

export class S3Store implements ArtifactStore {
  readonly location: string;
  readonly bucket: string;
  /** Folder inside the bucket, without slashes at either end ('' for the bucket root). */
  readonly prefix: string;
  /** The SDK client (for tools and tests that need a raw request). Never serialized or inspected. */
  readonly client: S3Client;
  private readonly endpoint: string | undefined;
  private readonly multipartThreshold: number;
  private readonly partSize: number;
  private readonly checksumSha256: boolean;
  private readonly conditionalWrites: boolean;
  /** The bucket answered once (bucketExists). */
  private bucketSeen = false;

  constructor(opts: S3StoreOptions) {
    if (!opts.bucket) throw new Error('S3Store: expected a bucket name, found none');
    this.bucket = opts.bucket;
    this.prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
    if (this.prefix !== '') validateKey(this.prefix);
    this.endpoint = opts.endpoint;
    this.multipartThreshold = opts.multipartThreshold ?? 16 * MiB;
    this.partSize = opts.partSize ?? 8 * MiB;
    if (this.partSize < MIN_PART_SIZE) {
      throw new Error(`S3Store: expected partSize >= ${MIN_PART_SIZE} (5 MiB, S3's minimum), found ${this.partSize}`);
    }
    this.checksumSha256 = opts.checksumSha256 ?? true;
    this.conditionalWrites = opts.conditionalWrites ?? opts.endpoint === undefined;
    this.location = `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    this.client = new S3Client({
      endpoint: opts.endpoint,
      region: opts.region ?? 'us-east-1',
      forcePathStyle: opts.forcePathStyle ?? false,
      credentials: opts.credentials,
      // Checksums only where an operation requires them: the default ('WHEN_SUPPORTED') adds a CRC32
      // that goes aws-chunked with a trailer on streamed bodies, which compatible servers may store
      // verbatim instead of the object's bytes. We send our own Content-MD5 / ChecksumSHA256 headers.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      // Likewise, don't ask for or validate response checksums: multipart objects carry composite
      // checksums the SDK cannot check against the whole body. get() verifies sha256 itself.
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    // Around every request, from credentials to response: a refusal for access becomes a
    // StoreAccessError that says what to check (the SDK's own error, e.g. "UnknownError" for a refused
    // HEAD, does not).
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        try {
          return await next(args);
        } catch (err) {
          scrubS3Error(err);
          const operation = (context.commandName ?? 'request').replace(/Command$/, '');
          const problem = accessProblem(err, this.location, this.bucket, operation);
          if (problem === undefined) throw err;
          throw new StoreAccessError(this.location, problem, { cause: err });
        }
      },
      { step: 'initialize', name: 'paramtrailStoreAccess' },
    );
  }

  /** Creates the bucket unless it exists (and is ours). */
  async ensureBucket(opts: { signal?: AbortSignal } = {}): Promise<void> {
    const abortSignal = opts.signal;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal });
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }), { abortSignal });
    } catch (err) {
      // Created by someone else between our HEAD and CREATE: fine.
      if ((err as S3ErrorLike).name !== 'BucketAlreadyOwnedByYou') throw err;
    }
  }

  locate(key: string): string {
    return `s3://${this.bucket}/${this.objectKey(key)}`;
  }

  async put(key: string, bytes: Uint8Array, opts: PutOptions = {}): Promise<ObjectRef> {
    const objectKey = this.objectKey(key);
    opts.signal?.throwIfAborted();
    const sha256 = sha256Hex(bytes);
    const ref: ObjectRef = { key, sha256, bytes: bytes.byteLength };

    // An object small enough for one PutObject skips the HEAD where the conditional write alone keeps
    // the promise: the write finds the object when it exists, at the cost of sending its bytes again.
    if (bytes.byteLength > this.multipartThreshold || !(opts.contentAddressed || this.conditionalWrites)) {
      // A missing bucket shows in the write that follows (NoSuchBucket), so no bucket check here.
      const existing = await this.headObject(key, opts.signal);
      if (existing) return this.settle(ref, existing);
    }

    try {
      if (bytes.byteLength > this.multipartThreshold) {
        await this.putMultipart(objectKey, bytes, sha256, opts);
      } else {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: objectKey,
            Body: bytes,
            ContentLength: bytes.byteLength,
            ContentType: opts.contentType,
            ContentMD5: md5Base64(bytes),
            ChecksumSHA256: this.checksumSha256 ? Buffer.from(sha256, 'hex').toString('base64') : undefined,
            Metadata: { [SHA_METADATA]: sha256 },
            IfNoneMatch: '*',
          }),
          { abortSignal: opts.signal },
        );
      }
    } catch (err) {
      if (!isExistsConflict(err)) throw err;
      // Someone stored this key between our HEAD and our write: theirs stands; compare.
      const stored = await this.headObject(key, opts.signal);
      if (!stored) throw err;
      return this.settle(ref, stored);
    }
    return ref;
  }

  async get(key: string, opts: GetOptions = {}): Promise<Uint8Array> {
    const objectKey = this.objectKey(key);
    let body: Uint8Array;
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }), {
        abortSignal: opts.signal,
      });
      if (!out.Body) throw new Error(`GetObject ${this.locate(key)}: expected a body, found none`);
      body = await out.Body.transformToByteArray();
      if (out.ContentLength !== undefined && out.ContentLength !== body.byteLength) {
        throw new Error(
          `GetObject ${this.locate(key)}: expected ${out.ContentLength} bytes, found ${body.byteLength}`,
        );
      }
    } catch (err) {
      if (isNotFound(err)) throw new ObjectNotFoundError(key, this.location);
      throw err;
    }
    verifySha256(key, body, opts.sha256);
    return body;
  }

  async head(key: string, opts: { signal?: AbortSignal } = {}): Promise<ObjectRef | undefined> {
    return (await this.headObject(key, opts.signal)) ?? this.bucketExists(opts.signal);
  }

  /** HEAD of the key: undefined on a 404, from a missing key or a missing bucket alike. */
  private async headObject(key: string, signal?: AbortSignal): Promise<ObjectRef | undefined> {
    const objectKey = this.objectKey(key);
    let out;
    try {
      out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal: signal });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const recorded = out.Metadata?.[SHA_METADATA];
    if (recorded && isSha256Hex(recorded)) return { key, sha256: recorded, bytes: out.ContentLength ?? 0 };
    // An object written by something other than paramtrail has no sha256 metadata: hash it once here.
    const bytes = await this.get(key, { signal });
    return { key, sha256: sha256Hex(bytes), bytes: bytes.byteLength };
  }

  /**
   * After a HEAD's 404, which is the same for a missing key and a missing bucket: the first time, asks
   * the bucket, so a misspelt bucket is refused (StoreAccessError) rather than read as an empty store
   * (every dataset "to download", every artifact "missing"). Once seen, a bucket is not asked again.
   */
  private async bucketExists(signal?: AbortSignal): Promise<undefined> {
    if (this.bucketSeen) return undefined;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: signal });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      throw new StoreAccessError(this.location, `the store ${this.location}: HeadObject: its bucket ${this.bucket} does not exist`, { cause: err });
    }
    this.bucketSeen = true;
    return undefined;
  }

  async list(prefix: string, opts: { signal?: AbortSignal } = {}): Promise<string[]> {
    validatePrefix(prefix);
    const base = this.prefix ? `${this.prefix}/` : '';
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: base + prefix, ContinuationToken: token }),
        { abortSignal: opts.signal },
      );
      for (const obj of out.Contents ?? []) if (obj.Key) keys.push(obj.Key.slice(base.length));
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  async delete(key: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const objectKey = this.objectKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }), {
        abortSignal: opts.signal,
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** What JSON.stringify shows: where the store is, never its credentials. */
  toJSON(): { type: string; location: string; endpoint?: string } {
    return { type: 'S3Store', location: this.location, ...(this.endpoint === undefined ? {} : { endpoint: endpointShown(this.endpoint) }) };
  }

  [inspect.custom](): string {
    return `S3Store ${inspect(this.toJSON())}`;
  }

  private objectKey(key: string): string {
    validateKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private settle(ref: ObjectRef, stored: ObjectRef): ObjectRef {
    if (stored.sha256 !== ref.sha256) throw new ObjectConflictError(ref.key, ref.sha256, stored.sha256);
    return ref;
  }

  /**
   * Create, upload parts in order, complete. Parts go up one at a time: snapshots are tens of MiB at
   * most and the store is usually near, so parallel parts would add memory, not speed. Any failure or
   * cancellation aborts the upload so the server keeps no orphaned parts.
   */
  private async putMultipart(objectKey: string, bytes: Uint8Array, sha256: string, opts: PutOptions): Promise<void> {
    const abortSignal = opts.signal;
    const partSize = Math.max(this.partSize, Math.ceil(bytes.byteLength / MAX_PARTS));
    const created = await this.client.send(
      new CreateMultipartUploadCommand({
        Bucket: this.bucket,
        Key: objectKey,
        ContentType: opts.contentType,
        Metadata: { [SHA_METADATA]: sha256 },
      }),
      { abortSignal },
    );
    const uploadId = created.UploadId;
    if (!uploadId) throw new Error(`CreateMultipartUpload ${objectKey}: expected an UploadId, found none`);
    try {
      const parts: Array<{ PartNumber: number; ETag: string | undefined }> = [];
      for (let offset = 0, partNumber = 1; offset < bytes.byteLength; offset += partSize, partNumber++) {
        const part = bytes.subarray(offset, Math.min(bytes.byteLength, offset + partSize));
        const out = await this.client.send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: objectKey,
            UploadId: uploadId,
            PartNumber: partNumber,
            Body: part,
            ContentLength: part.byteLength,
            ContentMD5: md5Base64(part),
          }),
          { abortSignal },
        );
        parts.push({ PartNumber: partNumber, ETag: out.ETag });
      }
      abortSignal?.throwIfAborted();
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: objectKey,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
          IfNoneMatch: '*',
        }),
        { abortSignal },
      );
    } catch (err) {
      // Deliberately without the caller's signal: after a cancellation the cleanup must still run.
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId }))
        .catch(() => undefined);
      throw err;
    }
  }
}
