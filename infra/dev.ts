/**
 * The embedded stack behind `paramtrail dev up | down | status`, and what `paramtrail run` starts when
 * no `TEMPORAL_ADDRESS` is set: a Temporal dev server persisted in SQLite, optionally an S3-compatible
 * server (versitygw), and one worker process, all running in the background in their own process groups
 * so they outlive the command that started them.
 *
 * Everything lives under the state folder (default `<project>/.paramtrail/`):
 *   temporal.db            Temporal's SQLite file (workflow histories survive `dev down`)
 *   store/                 the local object store, the default store
 *   s3/                    versitygw's data, in S3 mode
 *   s3-credentials.json    S3 mode's keys, generated once, mode 0600, never printed
 *   logs/*.log             one log per process
 *   dev.json               pids, ports and addresses of the running stack (written atomically)
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  freePort,
  runningWorkflows,
  isAlive,
  isPortFree,
  ensureSearchAttributes,
  startTemporalDevServer,
  terminateProcessGroup,
  waitForTemporal,
} from './temporal.js';
import { DEFAULT_STATE_DIR } from '../worker/config.js';

/** Ports a developer expects (Temporal's own defaults); a free port is taken when they are busy. */
const PREFERRED_TEMPORAL_PORT = 7233;
const PREFERRED_UI_PORT = 8233;
/** The bucket the S3 mode's store lives in; the worker gets `s3://<bucket>`. */
const S3_BUCKET = 'paramtrail';
/** A worker that dies this soon after its start is reported instead of being recorded as running. */
const WORKER_SETTLE_MS = 750;

export interface DevStackStatus {
  /** True when every process recorded in dev.json is alive. */
  running: boolean;
  temporal?: { address: string; uiAddress: string; pid: number; alive: boolean };
  worker?: { pid: number; alive: boolean; log: string };
  s3?: { endpoint: string; pid: number; alive: boolean };
  /** Store URL the worker uses: `file://<stateDir>/store` or `s3://paramtrail`. */
  store: string;
  stateDir: string;
}

export interface DevUpArgs {
  /** State folder; default `<project>/.paramtrail`. */
  stateDir?: string;
  /** Environment the worker inherits (plus the stack's own variables) and where tools are looked up. */
  env: NodeJS.ProcessEnv;
  /** Use a local S3 server (versitygw) as the store instead of the local folder. Omitted: keep what runs, else folder. */
  s3?: boolean;
  /** Temporal frontend port; default 7233 when free, else a free port. */
  port?: number;
  /** argv that starts a worker (given by the CLI), e.g. `[node, --import, tsx, cli/main.ts, worker]`. */
  workerCommand: string[];
  /**
   * The code the worker should run: a stamp of the sources it loads, computed under the stack's lock. A
   * running worker started on other code (the sources changed since) is replaced by one on this code
   * when no workflow is running on the stack; with workflows running it is kept (they could not replay
   * on changed workflow code), and `onNote` says so. Omitted: whatever runs is kept.
   */
  code?: () => Promise<string>;
  /** Told when the running worker is replaced, and why. */
  onNote?: (note: string) => void;
}

/** What dev.json holds. */
interface DevState {
  version: 1;
  startedAt: string;
  /** The machine's boot the processes were started in (Linux); under another, their pids are others'. */
  bootId?: string;
  store: string;
  temporal: { pid: number; address: string; uiAddress: string; dbFile: string; log: string };
  s3?: { pid: number; endpoint: string; bucket: string; dataDir: string; log: string };
  worker: { pid: number; command: string[]; log: string; code?: string };
}

interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

function paths(stateDir: string) {
  return {
    stateDir,
    devJson: join(stateDir, 'dev.json'),
    lock: join(stateDir, 'dev.lock'),
    temporalDb: join(stateDir, 'temporal.db'),
    store: join(stateDir, 'store'),
    s3Data: join(stateDir, 's3'),
    s3Credentials: join(stateDir, 's3-credentials.json'),
    logs: join(stateDir, 'logs'),
  };
}

function folderStoreUrl(stateDir: string): string {
  return pathToFileURL(join(stateDir, 'store')).href;
}

function readState(devJson: string): DevState | undefined {
  if (!existsSync(devJson)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(devJson, 'utf8'));
  } catch (err) {
    throw new Error(`expected ${devJson} to hold JSON, found unreadable content (${(err as Error).message}); remove it and run "paramtrail dev up" again`);
  }
  const state = parsed as Partial<DevState>;
  if (state.version !== 1 || !state.temporal || !state.worker) {
    throw new Error(`expected ${devJson} to be a version 1 dev state with temporal and worker entries, found ${JSON.stringify(parsed).slice(0, 200)}`);
  }
  return state as DevState;
}

/** Writes to a temporary file and renames it, so a reader never sees half a dev.json. */
function writeState(devJson: string, state: DevState): void {
  const tmp = `${devJson}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  renameSync(tmp, devJson);
}

/** Reads the S3 mode's keys, generating and saving them (mode 0600) the first time. */
function s3Credentials(file: string): S3Credentials {
  if (existsSync(file)) {
    const found = JSON.parse(readFileSync(file, 'utf8')) as Partial<S3Credentials>;
    if (typeof found.accessKeyId !== 'string' || typeof found.secretAccessKey !== 'string') {
      throw new Error(`expected accessKeyId and secretAccessKey strings in ${file}, found keys ${Object.keys(found).join(', ')}`);
    }
    return { accessKeyId: found.accessKeyId, secretAccessKey: found.secretAccessKey };
  }
  const created: S3Credentials = {
    accessKeyId: 'PT' + randomBytes(9).toString('hex').toUpperCase(),
    secretAccessKey: randomBytes(30).toString('base64url'),
  };
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(created, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600); // the umask may have widened nothing, but be explicit
  renameSync(tmp, file);
  return created;
}

/**
 * The variables that open a store on a versitygw this project started (with PARAMTRAIL_STORE
 * `s3://<bucket>`): what the embedded stack's worker gets, and the benchmarks' processes.
 */
export function s3Env(endpoint: string, creds: S3Credentials, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    PARAMTRAIL_S3_ENDPOINT: endpoint,
    // versitygw refuses a conditional write to an existing key (the store contract tests prove it).
    PARAMTRAIL_S3_CONDITIONAL_WRITES: 'true',
    AWS_ACCESS_KEY_ID: creds.accessKeyId,
    AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
    // versitygw's default region; the SDK insists on one.
    AWS_REGION: env.AWS_REGION ?? 'us-east-1',
  };
}

/**
 * What a process needs in its environment to use the running embedded stack's store as its worker
 * does: in S3 mode the store URL, the server's endpoint and keys; nothing for the folder store (the
 * default) or when no stack is recorded. The CLI adds it to its own environment, so `lineage`,
 * `verify` and `report` read the store `run` wrote to.
 */
export function embeddedStoreEnv(stateDir: string, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const p = paths(resolve(stateDir));
  const state = readState(p.devJson);
  if (!state?.s3 || !existsSync(p.s3Credentials)) return {};
  return { PARAMTRAIL_STORE: state.store, ...s3Env(state.s3.endpoint, s3Credentials(p.s3Credentials), env) };
}

/**
 * Serialises `dev up` and `dev down` on one state folder: two `paramtrail run` started together must
 * not both start a stack. A lock left by a dead process is taken over.
 */
export async function withLock<T>(lockFile: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000;
  // The lock is whole from its first moment: the pid goes to a file of this process's own, which is then
  // linked to the lock's name (link refuses a name that exists), so no one reads an empty lock.
  const mine = `${lockFile}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(mine, String(process.pid));
  try {
    for (;;) {
      try {
        linkSync(mine, lockFile);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = lockHolder(lockFile);
      if (holder === undefined) continue; // released meanwhile
      if (!isAlive(holder)) {
        // Taken from a dead holder by a rename, which one process wins. Had someone else's live lock
        // replaced it meanwhile, that one is put back.
        const stale = `${mine}.stale`;
        try {
          renameSync(lockFile, stale);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        if (lockHolder(stale) !== holder) {
          try {
            linkSync(stale, lockFile);
          } catch {
            // Taken again already: theirs stands.
          }
        }
        rmSync(stale, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(`expected ${lockFile} to be released, found it still held by process ${holder} after 120 s`);
      }
      await sleep(200);
    }
  } finally {
    rmSync(mine, { force: true });
  }
  try {
    return await fn();
  } finally {
    rmSync(lockFile, { force: true });
  }
}

/** The pid a lock file names; undefined when there is no lock (NaN, never alive, for one that is not a pid). */
function lockHolder(lockFile: string): number | undefined {
  try {
    return Number.parseInt(readFileSync(lockFile, 'utf8'), 10);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** This boot of the machine, where Linux says (`/proc/sys/kernel/random/boot_id`). */
function currentBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Whether a process the state records still runs. After a reboot (a power cut) its pid may be any
 * other program's, which is neither alive for the stack nor to be signalled.
 */
function recordedAlive(state: DevState, pid: number): boolean {
  return (state.bootId === undefined || state.bootId === currentBootId()) && isAlive(pid);
}

function statusFrom(stateDir: string, state: DevState | undefined): DevStackStatus {
  if (!state) return { running: false, store: folderStoreUrl(stateDir), stateDir };
  const temporal = { ...pick(state.temporal, 'address', 'uiAddress', 'pid'), alive: recordedAlive(state, state.temporal.pid) };
  const worker = { pid: state.worker.pid, log: state.worker.log, alive: recordedAlive(state, state.worker.pid) };
  const s3 = state.s3 ? { endpoint: state.s3.endpoint, pid: state.s3.pid, alive: recordedAlive(state, state.s3.pid) } : undefined;
  return {
    running: temporal.alive && worker.alive && (s3?.alive ?? true),
    temporal,
    worker,
    ...(s3 ? { s3 } : {}),
    store: state.store,
    stateDir,
  };
}

function pick<T extends object, K extends keyof T>(obj: T, ...keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, obj[k]])) as Pick<T, K>;
}

async function portOrFree(preferred: number): Promise<number> {
  return (await isPortFree(preferred)) ? preferred : freePort();
}

function tail(file: string, lines: number): string {
  if (!existsSync(file)) return '(no log)';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/** Stops every process recorded in a dev state, the worker first so it does not log a lost server. */
async function stopState(state: DevState): Promise<void> {
  for (const pid of [state.worker.pid, state.s3?.pid, state.temporal.pid]) {
    if (pid !== undefined && recordedAlive(state, pid)) await terminateProcessGroup(pid);
  }
}

/**
 * Starts the embedded stack, or returns the status of the one already running. A worker that died is
 * replaced alone; if a server died, the whole stack starts again. The data under the state folder is
 * reused either way.
 */
export async function devUp(opts: DevUpArgs): Promise<DevStackStatus> {
  if (opts.workerCommand.length === 0) throw new Error('expected a worker command (argv), found an empty list');
  const p = paths(resolve(opts.stateDir ?? DEFAULT_STATE_DIR));
  mkdirSync(p.logs, { recursive: true });
  mkdirSync(p.store, { recursive: true });
  return withLock(p.lock, async () => {
    const previous = readState(p.devJson);
    if (previous) {
      const current = statusFrom(p.stateDir, previous);
      const wantS3 = opts.s3 ?? Boolean(previous.s3);
      if (wantS3 !== Boolean(previous.s3) && current.running) {
        throw new Error(
          `expected the running stack to use ${wantS3 ? 'S3' : 'the local folder store'}, found ${previous.store}; ` +
            `run "paramtrail dev down" first to switch`,
        );
      }
      if (current.running) {
        // Alive pids might have been reused by other programs; the server must also answer. A stack
        // started by an older paramtrail may lack search attributes added since: runs need them all.
        await waitForTemporal(previous.temporal.address, 'default', 10_000);
        await ensureSearchAttributes(previous.temporal.address, 'default');
        const code = await opts.code?.();
        if (code === undefined || previous.worker.code === code) return current;
        // The sources changed since the worker started: what runs now should run on them.
        const was = `the embedded worker (pid ${previous.worker.pid}) runs code ${previous.worker.code ? `with sources ${previous.worker.code}` : 'of an earlier checkout'}`;
        const running = await runningWorkflows(previous.temporal.address, 'default');
        if (running > 0) {
          opts.onNote?.(
            `${was}, not this checkout's (sources ${code}); ${running} workflow${running === 1 ? ' is' : 's are'} running on it, ` +
              'which could not replay on changed workflow code, so it is kept, and this command uses it too',
          );
          return current;
        }
        opts.onNote?.(`${was}; replacing it with one on this checkout's (sources ${code})`);
        // The new worker first: one that cannot start (an edit that does not load) leaves the old serving.
        const worker = await startWorker(p, opts.workerCommand, workerEnvOf(previous.temporal.address, previous, p, opts.env));
        const state: DevState = { ...previous, worker: { ...worker, code } };
        writeState(p.devJson, state);
        // Only the process recorded: a pid the worker's process no longer holds belongs to another program.
        if (isRecordedProcess(previous.worker.pid, previous.worker.command)) await terminateProcessGroup(previous.worker.pid);
        return statusFrom(p.stateDir, state);
      }
      // Only the worker died (killed, out of memory): a new one joins the servers, which keep running,
      // and so do the clients following experiments on them.
      if (current.temporal?.alive && (!previous.s3 || current.s3?.alive) && wantS3 === Boolean(previous.s3)) {
        const answers = await waitForTemporal(previous.temporal.address, 'default', 10_000).then(
          () => true,
          () => false,
        );
        if (answers) {
          await ensureSearchAttributes(previous.temporal.address, 'default');
          // Stamped before it starts: the sources it loads as it starts are the ones stamped.
          const code = await opts.code?.();
          const worker = await startWorker(p, opts.workerCommand, workerEnvOf(previous.temporal.address, previous, p, opts.env));
          const state: DevState = { ...previous, worker: { ...worker, ...(code === undefined ? {} : { code }) } };
          writeState(p.devJson, state);
          return statusFrom(p.stateDir, state);
        }
      }
      // A server died: stop what is left and start the whole stack again on the same data.
      await stopState(previous);
      rmSync(p.devJson, { force: true });
    }
    return startStack(p, opts, opts.s3 ?? Boolean(previous?.s3));
  });
}

/** The stack's worker's environment: its Temporal server, and the folder store or the S3 server's with its keys. */
function workerEnvOf(temporalAddress: string, state: Pick<DevState, 's3' | 'store'>, p: ReturnType<typeof paths>, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, TEMPORAL_ADDRESS: temporalAddress };
  if (state.s3) Object.assign(out, s3Env(state.s3.endpoint, s3Credentials(p.s3Credentials), env));
  out.PARAMTRAIL_STORE = state.store;
  return out;
}

/**
 * Whether `pid` is still the process started with `command` (Linux: its /proc cmdline); true where
 * that cannot be read, as the pid's liveness is all there is to go on.
 */
function isRecordedProcess(pid: number, command: string[]): boolean {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return isAlive(pid);
  }
  return cmdline === `${command.join('\0')}\0`;
}

/** Starts the stack's worker and waits a moment: a worker that exits at once is reported with its log. */
async function startWorker(p: ReturnType<typeof paths>, command: string[], env: NodeJS.ProcessEnv, onSpawn?: (pid: number) => void): Promise<DevState['worker']> {
  const log = join(p.logs, 'worker.log');
  const pid = spawnDetached(command, env, log);
  onSpawn?.(pid);
  await sleep(WORKER_SETTLE_MS);
  if (!isAlive(pid)) {
    throw new Error(`expected the worker (${command.join(' ')}) to keep running, found it exited; last lines of ${log}:\n${tail(log, 20)}`);
  }
  return { pid, command, log };
}

async function startStack(p: ReturnType<typeof paths>, opts: DevUpArgs, useS3: boolean): Promise<DevStackStatus> {
  const started: number[] = [];
  const onSpawn = (pid: number) => void started.push(pid);
  /**
   * Ctrl-C (or a SIGTERM) while the stack starts: its processes run detached, so the signal does not
   * reach them, and nothing records them until dev.json is written at the end. They are stopped here,
   * and the lock released, or they would hold the port and the database unseen by `dev down`.
   */
  const interrupted = (signal: NodeJS.Signals) => {
    for (const pid of started) {
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
    rmSync(p.lock, { force: true });
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    const temporalLog = join(p.logs, 'temporal.log');
    const port = opts.port ?? (await portOrFree(PREFERRED_TEMPORAL_PORT));
    const uiPort = await portOrFree(port === PREFERRED_TEMPORAL_PORT ? PREFERRED_UI_PORT : port + 1000);
    const temporal = await startTemporalDevServer({
      dbFile: p.temporalDb,
      port,
      uiPort,
      env: opts.env,
      logFile: temporalLog,
      detached: true,
      onSpawn,
    });

    let s3: DevState['s3'];
    let store = folderStoreUrl(p.stateDir);
    if (useS3) {
      const creds = s3Credentials(p.s3Credentials);
      const s3Log = join(p.logs, 's3.log');
      // Loaded only in S3 mode: the folder store needs nothing from it.
      const { startS3Server } = await import('./s3server.js');
      const server = await startS3Server({
        dataDir: p.s3Data,
        bucket: S3_BUCKET,
        env: opts.env,
        accessKeyId: creds.accessKeyId,
        secretAccessKey: creds.secretAccessKey,
        logFile: s3Log,
        detached: true,
        onSpawn,
      });
      s3 = { pid: server.pid, endpoint: server.endpoint, bucket: server.bucket, dataDir: p.s3Data, log: s3Log };
      store = `s3://${server.bucket}`;
    }
    const code = await opts.code?.();
    const worker = await startWorker(p, opts.workerCommand, workerEnvOf(temporal.address, { s3, store }, p, opts.env), onSpawn);

    const bootId = currentBootId();
    const state: DevState = {
      version: 1,
      startedAt: new Date().toISOString(),
      ...(bootId ? { bootId } : {}),
      store,
      temporal: {
        pid: temporal.pid,
        address: temporal.address,
        uiAddress: temporal.uiAddress ?? '',
        dbFile: p.temporalDb,
        log: temporalLog,
      },
      ...(s3 ? { s3 } : {}),
      worker: { ...worker, ...(code === undefined ? {} : { code }) },
    };
    writeState(p.devJson, state);
    return statusFrom(p.stateDir, state);
  } catch (err) {
    // Leave nothing half-started behind.
    for (const pid of started.reverse()) await terminateProcessGroup(pid).catch(() => undefined);
    throw err;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
  }
}

function spawnDetached(argv: string[], env: NodeJS.ProcessEnv, logFile: string): number {
  const fd = openSync(logFile, 'a');
  try {
    const [command, ...args] = argv;
    const child = spawn(command!, args, { env, stdio: ['ignore', fd, fd], detached: true });
    child.on('error', () => undefined); // reported below through the missing pid or the liveness check
    child.unref();
    if (child.pid === undefined) throw new Error(`expected ${command} to start, found no process (is it installed?)`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** Stops the stack (SIGTERM to each process group, SIGKILL after a grace period) and removes dev.json; data stays. */
export async function devDown(opts: { stateDir?: string }): Promise<void> {
  const p = paths(resolve(opts.stateDir ?? DEFAULT_STATE_DIR));
  if (!existsSync(p.stateDir)) return;
  await withLock(p.lock, async () => {
    const state = readState(p.devJson);
    if (!state) return;
    await stopState(state);
    rmSync(p.devJson, { force: true });
  });
}

/** Reports what dev.json records and which of those processes are alive; starts and stops nothing. */
export async function devStatus(opts: { stateDir?: string }): Promise<DevStackStatus> {
  const stateDir = resolve(opts.stateDir ?? DEFAULT_STATE_DIR);
  return statusFrom(stateDir, readState(paths(stateDir).devJson));
}
