/**
 * Starts and stops a Temporal dev server (`temporal server start-dev`) on this machine.
 *
 * Called by `infra/dev.ts` (the embedded stack behind `paramtrail dev up`, detached and persisted in
 * SQLite) and by tests that want a server of their own (in memory, on a free port). The server is ready
 * when `startTemporalDevServer` resolves: its frontend has answered a `DescribeNamespace` call for the
 * namespace it serves. It starts with paramtrail's search attributes registered (`workflows/search.ts`), so
 * runs can be listed by model, dataset and status from the first run on.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTE_KEYS, searchAttributeFlags } from '../workflows/search.js';
import { resolveTool } from './tools.js';

export interface TemporalDevServer {
  /** Frontend gRPC address, `host:port`. */
  address: string;
  /** Web UI address, `http://host:port`; absent when headless. */
  uiAddress?: string;
  namespace: string;
  pid: number;
  /** Stops the server (SIGTERM to its process group, SIGKILL after a grace period) and waits for it. */
  stop(): Promise<void>;
}

export interface StartTemporalDevServerArgs {
  /** SQLite file that keeps workflow state across restarts; omit for an in-memory server. */
  dbFile?: string;
  /** Frontend port; 0 or omitted picks a free one. */
  port?: number;
  /** Web UI port; 0 or omitted picks a free one. Ignored when headless. */
  uiPort?: number;
  /** No Web UI (tests do not need one). */
  headless?: boolean;
  /** Path of the `temporal` CLI; defaults to `resolveTool('temporal', env)`. */
  binary?: string;
  /** Environment for the server process and for finding the binary. */
  env: NodeJS.ProcessEnv;
  /** Server output goes here (appended); omitted, it is discarded. */
  logFile?: string;
  /** Run in its own process group and do not keep this process alive: it outlives the caller. */
  detached?: boolean;
  /** How long to wait for the frontend to answer, in milliseconds (default 60 s). */
  readyTimeoutMs?: number;
  /** Dynamic configuration to start with (default DEV_SERVER_DYNAMIC_CONFIG; `{}`: the server's defaults). */
  dynamicConfig?: Record<string, number>;
  /** Told the server's pid as soon as it is spawned, before it is ready. */
  onSpawn?: (pid: number) => void;
}

const HOST = '127.0.0.1';
const NAMESPACE = 'default';

/** A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error(`expected a bound TCP port, found ${String(address)}`))));
    });
  });
}

/** True when `port` on 127.0.0.1 can be bound now. */
export async function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

/** True while a process with this pid exists (signal 0 only checks). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM means it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Sends SIGTERM to a process group (or the process, if it leads none), waits up to `graceMs` for the
 * leader to exit, then SIGKILLs the group and waits again.
 */
export async function terminateProcessGroup(pid: number, graceMs = 10_000): Promise<void> {
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal);
    } catch {
      try {
        process.kill(pid, signal);
      } catch {
        // Already gone.
      }
    }
  };
  if (!isAlive(pid)) return;
  signalGroup('SIGTERM');
  if (await waitForExit(pid, graceMs)) return;
  signalGroup('SIGKILL');
  if (!(await waitForExit(pid, 5_000))) {
    throw new Error(`process ${pid} still alive after SIGTERM and SIGKILL`);
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await sleep(50);
  }
  return !isAlive(pid);
}

/**
 * Polls the frontend until `DescribeNamespace(namespace)` succeeds. Throws when `exited()` reports the
 * process died or when `timeoutMs` passes, with the last connection error.
 */
export async function waitForTemporal(
  address: string,
  namespace: string,
  timeoutMs: number,
  exited: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    const died = exited();
    if (died) throw new Error(`Temporal dev server at ${address} exited before it was ready: ${died}`);
    let connection: Connection | undefined;
    try {
      connection = await Connection.connect({ address, connectTimeout: 2_000 });
      await connection.workflowService.describeNamespace({ namespace });
      return;
    } catch (err) {
      lastError = err;
    } finally {
      await connection?.close().catch(() => undefined);
    }
    await sleep(250);
  }
  throw new Error(
    `expected the Temporal frontend at ${address} to answer within ${timeoutMs} ms, ` +
      `found: ${lastError instanceof Error ? lastError.message : String(lastError)}`,
  );
}

/** Temporal's IndexedValueType of each search attribute type paramtrail uses. */
const INDEXED_VALUE_TYPES: Record<string, number> = { KEYWORD: 2 };

/**
 * Creates any of paramtrail's search attributes the namespace lacks; returns the names created.
 * `start-dev --search-attribute` registers them only when it creates its database: a dev server
 * restarted on an existing `--db-filename` comes up without them, and every run workflow would then
 * fail its first task (BadSearchAttributes).
 */
export async function ensureSearchAttributes(address: string, namespace: string): Promise<string[]> {
  const connection = await Connection.connect({ address, connectTimeout: 5_000 });
  try {
    const listed = await connection.operatorService.listSearchAttributes({ namespace });
    const have = new Set(Object.keys(listed.customAttributes ?? {}));
    const missing = SEARCH_ATTRIBUTE_KEYS.filter((k) => !have.has(k.name));
    if (missing.length) {
      await connection.operatorService.addSearchAttributes({
        namespace,
        searchAttributes: Object.fromEntries(missing.map((k) => [k.name, INDEXED_VALUE_TYPES[k.type]!])),
      });
    }
    return missing.map((k) => k.name);
  } finally {
    await connection.close();
  }
}

/** How many workflow executions of `namespace` are running on the server at `address`. */
export async function runningWorkflows(address: string, namespace: string): Promise<number> {
  const connection = await Connection.connect({ address, connectTimeout: 5_000 });
  try {
    const { count } = await connection.workflowService.countWorkflowExecutions({ namespace, query: 'ExecutionStatus = "Running"' });
    return Number(count ?? 0);
  } finally {
    await connection.close();
  }
}

/**
 * Dynamic configuration the dev server starts with. It runs one history shard, and each shard reads its
 * queue of pending tasks (dispatch a workflow or activity task, start a child, fire a timer, update
 * visibility) at most 20 times a second by default: past a short burst every workflow task then waits
 * ~37 ms before it reaches a worker, whatever the load. A cluster spreads that budget over hundreds of
 * shards; one shard gets the whole machine's.
 */
export const DEV_SERVER_DYNAMIC_CONFIG: Record<string, number> = {
  'history.transferProcessorMaxPollRPS': 10_000,
  'history.timerProcessorMaxPollRPS': 10_000,
  'history.visibilityProcessorMaxPollRPS': 10_000,
};

/** `--dynamic-config-value KEY=VALUE` for each entry. */
function dynamicConfigFlags(config: Record<string, number>): string[] {
  return Object.entries(config).flatMap(([key, value]) => ['--dynamic-config-value', `${key}=${value}`]);
}

/** Whether `temporal server start-dev` of the CLI `binary` lists `flag` in its help. */
function startDevTakes(binary: string, flag: string): boolean {
  const help = spawnSync(binary, ['server', 'start-dev', '--help'], { encoding: 'utf8', timeout: 30_000 });
  return (help.stdout ?? '').split(/[\s=]+/).includes(flag);
}

/** Starts `temporal server start-dev` and resolves once its frontend answers with paramtrail's search attributes. */
export async function startTemporalDevServer(opts: StartTemporalDevServerArgs): Promise<TemporalDevServer> {
  const binary = opts.binary ?? resolveTool('temporal', opts.env);
  const port = opts.port || (await freePort());
  const uiPort = opts.headless ? undefined : opts.uiPort || (await freePort());
  const args = ['server', 'start-dev', '--ip', HOST, '--port', String(port), '--log-level', 'warn', ...searchAttributeFlags(), ...dynamicConfigFlags(opts.dynamicConfig ?? DEV_SERVER_DYNAMIC_CONFIG)];
  if (opts.dbFile) {
    mkdirSync(dirname(opts.dbFile), { recursive: true });
    args.push('--db-filename', opts.dbFile);
  }
  if (uiPort === undefined) args.push('--headless');
  else {
    args.push('--ui-port', String(uiPort));
    // No network here but package registries; the UI's news feed would only log failures. (CLI
    // v1.5.1, which setup builds when PyPI is out of reach, has no such flag and refuses it.)
    if (startDevTakes(binary, '--ui-disable-news-fetch')) args.push('--ui-disable-news-fetch');
  }

  let logFd: number | undefined;
  if (opts.logFile) {
    mkdirSync(dirname(opts.logFile), { recursive: true });
    logFd = openSync(opts.logFile, 'a');
  }
  const out = logFd ?? 'ignore';
  let child: ChildProcess;
  try {
    child = spawn(binary, args, {
      env: opts.env,
      stdio: ['ignore', out, out],
      // Detached: its own process group, so it outlives the caller and a Ctrl-C in the caller's
      // terminal does not reach it; stop() then signals the whole group.
      detached: opts.detached ?? false,
    });
  } finally {
    // The child holds its own copy of the descriptor.
    if (logFd !== undefined) closeSync(logFd);
  }
  let exitReason: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitReason = `exit code ${code ?? 'none'}, signal ${signal ?? 'none'}` + (opts.logFile ? ` (see ${opts.logFile})` : '');
      resolve();
    });
    child.once('error', (err) => {
      exitReason = `could not start ${binary}: ${err.message}`;
      resolve();
    });
  });
  if (opts.detached) child.unref();
  const pid = child.pid;
  if (pid !== undefined) opts.onSpawn?.(pid);
  const address = `${HOST}:${port}`;

  const stop = async () => {
    if (pid === undefined || exitReason !== undefined) return;
    await terminateProcessGroup(pid);
    if (!opts.detached) await exited;
  };

  try {
    await waitForTemporal(address, NAMESPACE, opts.readyTimeoutMs ?? 60_000, () => exitReason);
    await ensureSearchAttributes(address, NAMESPACE);
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  if (pid === undefined) throw new Error(`expected a pid for ${binary}, found none`);
  return {
    address,
    uiAddress: uiPort === undefined ? undefined : `http://${HOST}:${uiPort}`,
    namespace: NAMESPACE,
    pid,
    stop,
  };
}
