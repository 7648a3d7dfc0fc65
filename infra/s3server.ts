/**
 * Starts a real S3-compatible server (versitygw over a local folder) for tests and the embedded dev
 * stack. Tests use it through test/support/s3.ts; `paramtrail dev up` starts one beside Temporal.
 *
 * The server listens on 127.0.0.1 only. Credentials go to it through its environment
 * (ROOT_ACCESS_KEY_ID / ROOT_SECRET_ACCESS_KEY) rather than flags, so they do not show in `ps`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { S3Store } from '../artifacts/s3.js';
import { resolveTool } from './tools.js';

export interface S3Server {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
  dataDir: string;
  pid: number;
  stop(): Promise<void>;
}

export interface StartS3ServerOptions {
  /** Folder whose subfolders are the buckets. Created if missing. */
  dataDir: string;
  /** 0 (default) = pick a free one. */
  port?: number;
  /** Created if missing. Default `paramtrail`. */
  bucket?: string;
  /** The versitygw executable; default resolveTool('versitygw', env). */
  binary?: string;
  env: NodeJS.ProcessEnv;
  /** Default: random for each start. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Where the server's output goes; default: kept in memory and shown if it fails to start. */
  logFile?: string;
  /**
   * Run in its own process group and let this process exit while it runs (the embedded dev stack);
   * needs `logFile`, since nobody stays to read a pipe.
   */
  detached?: boolean;
  /** Told the server's pid as soon as it is spawned, before it is ready. */
  onSpawn?: (pid: number) => void;
}

/** How long the server may take to answer its first request. Startup is normally well under a second. */
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

/** Binds the port (0 = any) on 127.0.0.1 and releases it: the port, or an error if it is taken. */
async function freePort(port = 0): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      fail(err.code === 'EADDRINUSE' ? new Error(`cannot start versitygw: 127.0.0.1:${port} is already in use`) : err),
    );
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

/** Resolves once anything answers HTTP at the endpoint (an unsigned request gets a 403: that is fine). */
function answers(endpoint: string): Promise<boolean> {
  return new Promise((done) => {
    const req = request(endpoint, { method: 'GET', timeout: 1000 }, (res) => {
      res.resume();
      done(true);
    });
    req.on('error', () => done(false));
    req.on('timeout', () => {
      req.destroy();
      done(false);
    });
    req.end();
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => child.once('exit', () => done()));
}

export async function startS3Server(opts: StartS3ServerOptions): Promise<S3Server> {
  const binary = opts.binary ?? resolveTool('versitygw', opts.env);
  const dataDir = resolve(opts.dataDir);
  const bucket = opts.bucket ?? 'paramtrail';
  const accessKeyId = opts.accessKeyId ?? `paramtrail-${randomBytes(4).toString('hex')}`;
  const secretAccessKey = opts.secretAccessKey ?? randomBytes(20).toString('hex');
  await mkdir(dataDir, { recursive: true });

  // A port picked free can be taken by someone else before the server binds it: try a few times.
  const attempts = opts.port ? 1 : 3;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    // An explicit port is checked first: otherwise whatever already listens there would answer the
    // readiness probe in place of our server.
    const port = await freePort(opts.port ?? 0);
    try {
      const server = await launch({ ...opts, binary, dataDir, bucket, accessKeyId, secretAccessKey, port });
      return server;
    } catch (err) {
      lastError = err as Error;
    }
  }
  throw lastError;
}

async function launch(
  o: StartS3ServerOptions & { binary: string; dataDir: string; bucket: string; accessKeyId: string; secretAccessKey: string; port: number },
): Promise<S3Server> {
  const endpoint = `http://127.0.0.1:${o.port}`;
  const logHandle = o.logFile ? await open(o.logFile, 'a') : undefined;
  const output: string[] = [];
  if (o.detached && !logHandle) throw new Error('startS3Server: a detached server needs a logFile');
  const child = spawn(o.binary, ['--port', `127.0.0.1:${o.port}`, '--quiet', '--keep-alive', 'posix', o.dataDir], {
    env: { ...o.env, ROOT_ACCESS_KEY_ID: o.accessKeyId, ROOT_SECRET_ACCESS_KEY: o.secretAccessKey },
    stdio: ['ignore', logHandle ? logHandle.fd : 'pipe', logHandle ? logHandle.fd : 'pipe'],
    detached: o.detached ?? false,
  });
  if (o.detached) child.unref();
  if (child.pid !== undefined) o.onSpawn?.(child.pid);
  // The child holds its own copy of the descriptor.
  await logHandle?.close();
  const keep = (chunk: Buffer): void => {
    output.push(chunk.toString());
    if (output.length > 50) output.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));

  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = exited(child);
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await gone;
    clearTimeout(timer);
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (spawnError) throw new Error(`versitygw (${o.binary}) could not start: ${spawnError.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `versitygw exited (code ${child.exitCode}, signal ${child.signalCode}) before answering on ${endpoint}` +
          (o.logFile ? `; see ${o.logFile}` : `:\n${output.join('')}`),
      );
    }
    if (await answers(endpoint)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`versitygw did not answer on ${endpoint} within ${READY_TIMEOUT_MS} ms`);
    }
    await sleep(50);
  }

  try {
    if (child.exitCode !== null) throw new Error(`versitygw exited (code ${child.exitCode}) right after starting`);
    const store = new S3Store({
      bucket: o.bucket,
      endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey },
    });
    await store.ensureBucket();
    store.client.destroy();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    endpoint,
    accessKeyId: o.accessKeyId,
    secretAccessKey: o.secretAccessKey,
    bucket: o.bucket,
    dataDir: o.dataDir,
    pid: child.pid!,
    stop,
  };
}
