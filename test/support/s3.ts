/**
 * A real S3 server for one test file: starts versitygw over a temporary folder, returns an S3Store on
 * a fresh bucket (ensureBucket done), and stops the server and removes the folder when the file's
 * tests are over. Call it at the top level of a test file (or in a `before` hook of a describe):
 *
 *     const s3 = await startTestS3();
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { type S3Server, startS3Server } from '../../infra/s3server.js';
import { S3Store, type S3StoreOptions } from '../../artifacts/s3.js';

export interface TestS3 {
  server: S3Server;
  store: S3Store;
  /** Options that open another store on the same bucket (e.g. with other multipart settings). */
  storeOptions: S3StoreOptions;
}

export async function startTestS3(
  opts: Partial<Omit<S3StoreOptions, 'bucket' | 'endpoint' | 'credentials'>> = {},
): Promise<TestS3> {
  const dataDir = await mkdtemp(join(tmpdir(), 'paramtrail-s3-'));
  const server = await startS3Server({ dataDir, env: process.env, bucket: 'paramtrail-test' });
  const storeOptions: S3StoreOptions = {
    forcePathStyle: true,
    ...opts,
    bucket: server.bucket,
    endpoint: server.endpoint,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  };
  const store = new S3Store(storeOptions);
  await store.ensureBucket();
  after(async () => {
    store.client.destroy();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  return { server, store, storeOptions };
}
