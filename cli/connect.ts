/**
 * How the CLI reaches Temporal: TEMPORAL_ADDRESS (a cluster, or a server you run) if set, else the
 * embedded stack under .paramtrail/, started on demand with a worker of its own.
 */
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { devUp, embeddedStoreEnv } from '../infra/dev.js';
import { codeVersion, formatCodeVersion } from '../activities/version.js';
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

/**
 * What keeps the embedded worker on this checkout's code (devUp's `code`): the sources' stamp (commit,
 * uncommitted changes, the compute digest), and a note on stderr when a worker on older code is replaced.
 */
export async function embeddedWorkerCode(): Promise<{ code: string; onNote: (note: string) => void }> {
  const v = await codeVersion();
  return { code: `${formatCodeVersion(v)}${v.compute ? `/compute-${v.compute}` : ''}`, onNote: (note) => console.error(`paramtrail: ${note}`) };
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
    const status = await devUp({ stateDir: config.stateDir, env, workerCommand: workerCommand(), ...(await embeddedWorkerCode()) });
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
