/**
 * The worker's settings, read from the environment (the only place besides cli/ that does) and
 * validated with zod so a typo fails at start with the variable's name.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { describeIssues } from '../config/experiment.js';
import type { DecodedCacheOptions } from '../activities/decoded-cache.js';
import { BACKEND_PREFERENCES, type BackendPreference } from '../ml/backend.js';
import { PROJECT_ROOT } from '../infra/tools.js';

export const ROLES = ['workflows', 'train', 'analysis'] as const;
export type Role = (typeof ROLES)[number];

export const WORKER_HELP = `usage: paramtrail worker [--task-queue ROLES]

Polls task queues of the Temporal server at TEMPORAL_ADDRESS (else the embedded stack's) until SIGINT or
SIGTERM, which hand its trainings over to another worker at once.

  --task-queue ROLES   all (default), or a comma-separated list of workflows, train and analysis

Settings come from the environment (see README, "On a cluster"): TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
TEMPORAL_TLS_CERT / _KEY / _CA, PARAMTRAIL_STORE, PARAMTRAIL_TASK_QUEUE, PARAMTRAIL_TRAIN_SLOTS,
PARAMTRAIL_BACKEND, PARAMTRAIL_STATE_DIR, PARAMTRAIL_DECODED_CACHE_GB, and the S3 settings.
Exit status: 0 once stopped, 2 on a usage error or an invalid setting, 4 when the Temporal server cannot
be reached.`;

/** A worker's command line was wrong. */
export class WorkerArgsError extends Error {
  override readonly name = 'WorkerArgsError';
}

/** The Temporal server named by TEMPORAL_ADDRESS, or the embedded one, did not answer. */
export class TemporalUnreachableError extends Error {
  override readonly name = 'TemporalUnreachableError';
  constructor(address: string, embedded: boolean, cause: Error) {
    const where = embedded ? `the embedded stack's Temporal server at ${address}` : `the Temporal server at ${address} (TEMPORAL_ADDRESS)`;
    const hint = embedded ? 'start it with: paramtrail dev up' : 'check that it runs and that TEMPORAL_ADDRESS names it';
    super(`cannot reach ${where}: ${cause.message}; ${hint}`, { cause });
  }
}

/** A setting in the environment is invalid; the message names the variable. */
export class InvalidEnvironmentError extends Error {
  override readonly name = 'InvalidEnvironmentError';
}

/** The roles named by `--task-queue`: all by default, or a comma-separated list. */
export function parseRoles(value: string | undefined): Role[] {
  if (value === undefined || value === 'all') return [...ROLES];
  const roles = value.split(',').map((s) => s.trim());
  for (const r of roles) {
    if (!(ROLES as readonly string[]).includes(r)) {
      throw new WorkerArgsError(`--task-queue: expected all or some of ${ROLES.join(', ')} (comma-separated), found ${JSON.stringify(r)}`);
    }
  }
  return roles as Role[];
}

/**
 * V8 options a worker process starts with (cli/connect.ts's workerCommand and bin/paramtrail put them on
 * node's command line; V8 reads them once, at start). A worker's main thread alternates CPU-bound
 * training with short waits on the store and the server, and by default V8 uses those waits to start
 * incremental marking of the whole heap (~70 MB once TensorFlow.js and the SDK are loaded) long before
 * allocation needs it; with this off, marking starts when allocation needs it. `npm run bench:orchestration`
 * runs a run's activities in a process started with these options or, with `--v8-defaults`, without: 100
 * tiny runs took 1 full collection and 111 ms of CPU per run against 29 and 163 ms. Workers created in
 * another process (tests, an embedded worker) run with that process's options.
 */
export const WORKER_V8_FLAGS = ['--no-incremental-marking-task'] as const;

export const DEFAULT_STATE_DIR = join(PROJECT_ROOT, '.paramtrail');

/**
 * Room for decoded datasets (activities/decoded-cache.ts), in GiB: Fashion-MNIST and MNIST take 55 MB
 * each, CIFAR-10 150 MB, Imagenette at 64 px 660 MB (at 160 px, 4.1 GB, it is not kept).
 */
export const DEFAULT_DECODED_CACHE_GB = 10;

/**
 * Sets what Temporal's core reads from a worker process's environment, where the environment does not
 * already say. Core logs a warning (TMPRL1104) for every workflow task past
 * TEMPORAL_WORKFLOW_TASK_DURATION_WARN_SECONDS, 5 by default. A local activity runs inside its workflow's
 * task, and core keeps that task open while local activities follow one another, until 80 % of the task
 * timeout, then heartbeats it. Runs and packs with `execution.local` now have a 3 s task timeout (2.4 s),
 * but those started with Temporal's default of 10 s, which a worker may still be running, hold it for
 * 8 s and would log the warning every 8 s as a matter of course. At 9 s it still names a task close to
 * its timeout.
 */
export function setCoreEnvDefaults(env: NodeJS.ProcessEnv): void {
  env.TEMPORAL_WORKFLOW_TASK_DURATION_WARN_SECONDS ??= '9';
}

const WorkerEnv = z.object({
  TEMPORAL_ADDRESS: z.string().min(1).optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /** Client certificate and key for mTLS to a Temporal cluster (paths; the contents are never logged). */
  TEMPORAL_TLS_CERT: z.string().optional(),
  TEMPORAL_TLS_KEY: z.string().optional(),
  TEMPORAL_TLS_CA: z.string().optional(),
  /** Where objects live: file:///path, a plain path, or s3://bucket/prefix. */
  PARAMTRAIL_STORE: z.string().min(1).optional(),
  /** Prefix of the task queue names: <prefix>, <prefix>-train, <prefix>-analysis. */
  PARAMTRAIL_TASK_QUEUE: z.string().regex(/^[A-Za-z0-9._-]+$/).default('paramtrail'),
  /** Trainings at once per worker process; JavaScript training is single-threaded, so 1 by default. */
  PARAMTRAIL_TRAIN_SLOTS: z.coerce.number().int().min(1).max(64).default(1),
  PARAMTRAIL_STATE_DIR: z.string().optional(),
  /** Room for decoded datasets under the state folder, in GiB; 0 keeps none (every process decodes). */
  PARAMTRAIL_DECODED_CACHE_GB: z.coerce.number().min(0).default(DEFAULT_DECODED_CACHE_GB),
  /** auto: native TensorFlow when `npm run setup:native` built it, else wasm; or force one (tensorflow, wasm, cpu). */
  PARAMTRAIL_BACKEND: z.enum(BACKEND_PREFERENCES as [BackendPreference, ...BackendPreference[]]).default('auto'),
});

export interface WorkerConfig {
  address: string;
  namespace: string;
  /** TLS to the server: a client certificate and key (mTLS), the CA that signed the server's, or both. */
  tls?: { cert?: string; key?: string; ca?: string };
  store: string;
  queuePrefix: string;
  trainSlots: number;
  stateDir: string;
  backend: BackendPreference;
  /** Where decoded datasets are kept between processes on this machine; undefined when turned off. */
  decodedCache?: DecodedCacheOptions;
}

/** Address of the embedded dev server recorded by `paramtrail dev up`, if any. */
export function embeddedAddress(stateDir: string): string | undefined {
  const file = join(stateDir, 'dev.json');
  if (!existsSync(file)) return undefined;
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { temporal?: { address?: string } }).temporal?.address;
  } catch {
    return undefined;
  }
}

export function workerConfigFromEnv(env: NodeJS.ProcessEnv): WorkerConfig {
  const parsed = WorkerEnv.safeParse(env);
  if (!parsed.success) throw new InvalidEnvironmentError(`invalid worker environment:\n${describeIssues(parsed.error)}`);
  const e = parsed.data;
  if ((e.TEMPORAL_TLS_CERT === undefined) !== (e.TEMPORAL_TLS_KEY === undefined)) {
    throw new InvalidEnvironmentError('invalid worker environment: TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together');
  }
  const stateDir = e.PARAMTRAIL_STATE_DIR ?? DEFAULT_STATE_DIR;
  return {
    address: e.TEMPORAL_ADDRESS ?? embeddedAddress(stateDir) ?? 'localhost:7233',
    namespace: e.TEMPORAL_NAMESPACE,
    tls: e.TEMPORAL_TLS_CERT || e.TEMPORAL_TLS_CA ? { cert: e.TEMPORAL_TLS_CERT, key: e.TEMPORAL_TLS_KEY, ca: e.TEMPORAL_TLS_CA } : undefined,
    store: e.PARAMTRAIL_STORE ?? `file://${join(stateDir, 'store')}`,
    queuePrefix: e.PARAMTRAIL_TASK_QUEUE,
    trainSlots: e.PARAMTRAIL_TRAIN_SLOTS,
    stateDir,
    backend: e.PARAMTRAIL_BACKEND,
    ...(e.PARAMTRAIL_DECODED_CACHE_GB > 0
      ? { decodedCache: { dir: join(stateDir, 'cache', 'decoded'), maxBytes: Math.round(e.PARAMTRAIL_DECODED_CACHE_GB * 2 ** 30) } }
      : {}),
  };
}

/** A TLS file a setting names; one that cannot be read is an invalid setting (its contents are never shown). */
function readTlsFile(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new InvalidEnvironmentError(`invalid worker environment: ${variable}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** TLS options for a Temporal connection, reading the files named by the config. */
export function tlsOptions(config: WorkerConfig) {
  const { tls } = config;
  if (!tls) return undefined;
  return {
    ...(tls.cert && tls.key ? { clientCertPair: { crt: readTlsFile('TEMPORAL_TLS_CERT', tls.cert), key: readTlsFile('TEMPORAL_TLS_KEY', tls.key) } } : {}),
    ...(tls.ca ? { serverRootCACertificate: readTlsFile('TEMPORAL_TLS_CA', tls.ca) } : {}),
  };
}

/**
 * Whether the module at `moduleUrl` is the script node was started with, also when that script's path
 * holds a space or other characters a URL escapes, or goes through a symlink.
 */
export function isEntryPoint(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === moduleUrl;
  } catch {
    return false;
  }
}
