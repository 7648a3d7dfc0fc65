/**
 * How the CLI reaches Temporal: TEMPORAL_ADDRESS (a cluster, or a server you run) if set, else the
 * embedded stack under .paramtrail/, started on demand with a worker of its own.
 */
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { devUp, embeddedStoreEnv } from '../infra/dev.js';
import { PROJECT_ROOT } from '../infra/tools.js';
import { workerSourcesHash } from '../worker/sources.js';
import { TemporalUnreachableError, tlsOptions, workerConfigFromEnv, WORKER_V8_FLAGS, type WorkerConfig } from '../worker/config.js';

export { TemporalUnreachableError };

export const CLI_MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
const TSX_LOADER = fileURLToPath(new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url));

/** argv that runs the CLI from this checkout as its own process, as bin/paramtrail does. */
export function cliCommand(args: string[]): string[] {
  return [process.execPath, '--import', TSX_LOADER, CLI_MAIN, ...args];
}

/** argv that starts `paramtrail worker` as its own process, with the worker's V8 options. */
export function workerCommand(args: string[] = []): string[] {
  const [node, ...rest] = cliCommand(['worker', ...args]);
  return [node!, ...WORKER_V8_FLAGS, ...rest];
}

/** The stamp of the sources a worker loads (worker/sources.ts), short enough for a line on stderr: 16 hex. */
export async function workerSourcesStamp(root = PROJECT_ROOT): Promise<string> {
  return (await workerSourcesHash(root)).slice(0, 16);
}

/**
 * What keeps the embedded worker on this checkout's code (devUp's `code`, computed under the stack's
 * lock), and a note on stderr when a worker on other code is replaced or kept.
 */
export function embeddedWorkerCode(): { code: () => Promise<string>; onNote: (note: string) => void } {
  return { code: () => workerSourcesStamp(), onNote: (note) => console.error(`paramtrail: ${note}`) };
}

export interface Connected {
  client: Client;
  connection: Connection;
  config: WorkerConfig;
  embedded: boolean;
  /** The environment the store is opened with: the embedded S3 server's endpoint as it runs now. */
  env: NodeJS.ProcessEnv;
}

export async function connect(env: NodeJS.ProcessEnv, opts: { startEmbedded: boolean }): Promise<Connected> {
  let config = workerConfigFromEnv(env);
  const embedded = !env.TEMPORAL_ADDRESS;
  if (embedded && opts.startEmbedded) {
    const status = await devUp({ stateDir: config.stateDir, env, workerCommand: workerCommand(), ...embeddedWorkerCode() });
    if (!status.temporal) throw new Error('the embedded Temporal server did not start; see paramtrail dev status');
    config = { ...config, address: status.temporal.address, store: status.store };
    // A stack started again (its S3 server had died) listens on a new port: the store goes there too.
    if (status.s3 && env.PARAMTRAIL_STORE === status.store) env = { ...env, ...embeddedStoreEnv(config.stateDir, env) };
  }
  const connection = await Connection.connect({ address: config.address, tls: tlsOptions(config) }).catch((err: Error) => {
    throw new TemporalUnreachableError(config.address, embedded, err);
  });
  return { client: new Client({ connection, namespace: config.namespace }), connection, config, embedded, env };
}
