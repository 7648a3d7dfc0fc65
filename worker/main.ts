/**
 * The worker process: `paramtrail worker [--task-queue workflows|train|analysis|all]`.
 * Connects to TEMPORAL_ADDRESS (else the embedded dev server recorded under .paramtrail/), opens the
 * store named by PARAMTRAIL_STORE, and polls the chosen queues until SIGINT/SIGTERM.
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { NativeConnection } from '@temporalio/worker';
import { openStore } from '../artifacts/open.js';
import { codeVersion } from '../activities/version.js';
import { selectBackend } from '../ml/backend.js';
import { queueNames } from '../workflows/types.js';
import { isEntryPoint, parseRoles, setCoreEnvDefaults, TemporalUnreachableError, tlsOptions, WORKER_HELP, WorkerArgsError, workerConfigFromEnv } from './config.js';
import { createWorkers, runWorkers } from './run.js';

export async function workerMain(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { 'task-queue': { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    throw new WorkerArgsError((err as Error).message);
  }
  if (values.help) {
    console.log(WORKER_HELP);
    return;
  }
  const roles = parseRoles(values['task-queue']);
  // Core reads its settings from this process's environment, whatever `env` the caller passed.
  setCoreEnvDefaults(process.env);
  const config = workerConfigFromEnv(env);
  const store = openStore(config.store, env);
  // Read at start, before any training (see activities/version.ts).
  await codeVersion();
  // Chosen once at start, so the log says what this worker trains on; each run records it too.
  const backend = await selectBackend(config.backend, (note) => console.log(note));
  const connection = await NativeConnection.connect({ address: config.address, tls: tlsOptions(config) }).catch((err: Error) => {
    throw new TemporalUnreachableError(config.address, !env.TEMPORAL_ADDRESS, err);
  });
  const queues = queueNames(config.queuePrefix);
  const identity = `${process.pid}@${hostname()}`;
  const workers = await createWorkers({ connection, namespace: config.namespace, queues, roles, deps: { store, backend: config.backend, decodedCache: config.decodedCache }, trainSlots: config.trainSlots, identity });
  console.log(`paramtrail worker ${identity}: ${roles.join(', ')} on ${config.address} (${config.namespace}), store ${store.location}, backend ${backend}`);
  try {
    await runWorkers(workers);
  } finally {
    await connection.close();
  }
}

if (isEntryPoint(import.meta.url)) {
  workerMain(process.argv.slice(2), process.env).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
