/**
 * `paramtrail`: the command researchers type. A Temporal client (plus `worker`, which starts the
 * worker process); it validates experiment files before anything starts.
 *
 *   paramtrail run <file> [--size SIZE] [--force] [--detach | --dry-run] [--json] [--id ID]
 *   paramtrail status <experiment-id> [--json]
 *   paramtrail report <experiment-id> [--out FILE]
 *   paramtrail verify | lineage | cancel | schedule | ls ...
 *   paramtrail worker [--task-queue workflows|train|analysis|all]
 *   paramtrail dev up [--s3] | down | status [--json]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { CancelledFailure, type Client, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { InvalidStoreSettingError, openStore } from '../artifacts/open.js';
import { StoreAccessError, type ArtifactStore } from '../artifacts/store.js';
import { experimentPrefix, runPrefix } from '../activities/keys.js';
import { InvalidExperimentError } from '../config/experiment.js';
import { devDown, devStatus, devUp, embeddedStoreEnv } from '../infra/dev.js';
import { DEFAULT_STATE_DIR, InvalidEnvironmentError, isEntryPoint, WORKER_HELP, WorkerArgsError, workerConfigFromEnv } from '../worker/config.js';
import { experimentWorkflow } from '../workflows/index.js';
import { queueNames, type ExperimentResult } from '../workflows/types.js';
import { connect, embeddedWorkerCode, TemporalUnreachableError, workerCommand } from './connect.js';
import { EXIT } from './exit.js';
import { EXPERIMENT_ID, EXPERIMENT_ID_RULE, loadExperiment, NotAnExperimentError, readExperimentFile } from './experiment.js';
import { formatUnpolled, queuesStillUnpolled } from './pollers.js';
import { followProgress, progressLines, withPackProgress } from './progress.js';
import { cmdCancel } from './cancel.js';
import { cmdLineage } from './lineage.js';
import { cmdLs } from './ls.js';
import { formatPlan, planExperiment } from './plan.js';
import { cmdReport, REPORT_HELP } from './report.js';
import { cmdSchedule } from './schedule.js';
import { asksForHelp, cmdVerify, usageExit } from './verify.js';
import { formatReport, reportExperiment, withStored, withRunProgress } from './summary.js';

const USAGE = `usage: paramtrail <command>

  run <file> [--size SIZE] [--force] [--detach | --dry-run] [--json] [--id ID]
                                             validate and run an experiment file (SIZE: one of its sizes);
                                             finished trainings with the same configuration, data and code
                                             are reused unless --force; --dry-run says which, starting nothing
  status <experiment-id> [--json]            where an experiment is, or what it produced
  report <experiment-id> [--out FILE]        where its HTML report is, or a copy of it
  verify <experiment-id> [--json]            re-hash every artifact; non-zero exit if any is missing or altered
  lineage <key|sha256|run-id|experiment-id> [--json|--dot] [--refresh]   what made an artifact, and what it made
  cancel <experiment-id> [--json] [--no-wait]                stop an experiment cleanly
  schedule create|list|describe|pause|unpause|trigger|delete ...   scheduled reruns (see schedule --help)
  ls [--model M] [--dataset D] [--optimizer O] [--status S] [--experiment E] [--limit N] [--json]
                                             find runs by their search attributes
  worker [--task-queue Q]                    run a worker (Q: workflows, train, analysis, all)
  dev up [--s3] | down | status [--json]     the embedded stack (Temporal dev server, store, worker)

Without TEMPORAL_ADDRESS, the commands use the embedded stack under .paramtrail/ (run and schedule create
start it if it is not running).
Every command exits 2 on a usage error or an invalid setting, and 4 when it cannot reach the Temporal
server or the store, or the store refuses it access (credentials, bucket).`;

/** Each command's own help, for `paramtrail <command> --help` (the others print theirs themselves). */
const COMMAND_HELP: Record<string, string> = {
  run: `usage: paramtrail run <file> [--size SIZE] [--force] [--detach | --dry-run] [--json] [--id ID]

Validates an experiment file, starts it as a new experiment and follows it to the end: a line per run
stage and epoch (a live status line on a terminal), then a summary of every run.

  --size SIZE   one of the sizes the file defines (e.g. smoke, cpu, paper)
  --force       retrain every run; otherwise finished trainings with the same configuration, data and
                code are reused (when their stored snapshots still verify)
  --detach      return once it has started; follow it with status
  --dry-run     start nothing: list the runs the file expands into and whether each would train or
                reuse a finished training (decided as the run would decide, re-hashing the stored
                snapshots), with the datasets still to download; reads the store, needs no Temporal
  --json        print the summary as JSON for scripts (with --detach: its id, store and status; with
                --dry-run: the plan, every run in it)
  --id ID       its experiment id (letters, digits, . _ -); an id already used is refused

Without TEMPORAL_ADDRESS it runs on the embedded stack under .paramtrail/, starting it if needed.
--dry-run compares with this checkout's code version: workers of another version would decide by theirs.
Exit status: 0 every run completed (--dry-run: the file is valid), 1 a run failed, 2 on a usage error, 3
for an invalid experiment file (nothing was started), 4 when the Temporal server cannot be reached
(nothing was started) or the store cannot be or refuses access (the message names which).`,
  status: `usage: paramtrail status <experiment-id> [--json]

Where an experiment is (its runs' stages while it runs), or what it produced once it has ended.

  --json   print it as JSON for scripts

Exit status: 0 while it runs and once every run has completed; 1 when a run failed (as run exits), or
it failed, was cancelled or is unknown; 2 on a usage error; 4 when the Temporal server or the store
cannot be reached, or the store refuses access.`,
  report: REPORT_HELP,
  worker: WORKER_HELP,
  dev: `usage: paramtrail dev up [--s3] | down | status [--json]

The embedded stack under the state folder (PARAMTRAIL_STATE_DIR, default .paramtrail/): a Temporal dev
server persisted in temporal.db, a worker, and the local store (with --s3, a versitygw S3 server).

  up       start what is not running (--s3: an S3 server as the store)
  down     stop it
  status   what runs, with the addresses of Temporal, its UI and the store

  --json   print the stack's state as JSON

Exit status: 0 on success, 2 on a usage error.`,
};

/** Network errors of the store's client (S3): its endpoint did not answer. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET']);

/** The store the environment names, with its endpoint (never credentials), for a message. */
function storeAddress(env: NodeJS.ProcessEnv): string {
  try {
    const store = openStore(workerConfigFromEnv(env).store, env);
    const endpoint = (store as { toJSON?: () => { endpoint?: string } }).toJSON?.().endpoint;
    if (!endpoint) return store.location;
    const url = new URL(endpoint);
    url.username = '';
    url.password = '';
    return `${store.location} at ${url.origin}${url.pathname === '/' ? '' : url.pathname}`;
  } catch {
    return 'the store';
  }
}

export { EXIT };

class UsageError extends Error {}

function newExperimentId(name: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  return `${name}-${stamp}-${randomBytes(3).toString('hex')}`;
}

/**
 * An id given with --id must name a new experiment. Under an id Temporal already knows (running or
 * closed), or whose objects the store holds, the runs would resume the earlier experiment's checkpoints
 * (also under --force) and add their records to its.
 */
async function assertNewExperimentId(client: Client, store: ArtifactStore, id: string): Promise<void> {
  const described = await client.workflow
    .getHandle(id)
    .describe()
    .catch((err: unknown) => {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    });
  if (described) throw new UsageError(`run --id: experiment ${id} already exists (${described.status.name.toLowerCase()}); choose another id`);
  for (const prefix of [`${runPrefix(id)}/`, `${experimentPrefix(id)}/`]) {
    const [key] = await store.list(prefix);
    if (key) throw new UsageError(`run --id: the store ${store.location} already holds objects of an experiment ${id} (${key}); choose another id`);
  }
}

async function cmdRun(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      detach: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      json: { type: 'boolean' },
      id: { type: 'string' },
      size: { type: 'string' },
      force: { type: 'boolean' },
    },
  });
  if (positionals.length !== 1) throw new UsageError('run: expected one experiment file');
  if (values['dry-run'] && (values.detach || values.id !== undefined)) throw new UsageError('run --dry-run starts nothing: --detach and --id do not apply');
  const file = positionals[0];
  const config = await readExperimentFile(file, values.size);
  if (values.id !== undefined && !EXPERIMENT_ID.test(values.id)) {
    throw new UsageError(`run --id: expected ${EXPERIMENT_ID_RULE}; found ${JSON.stringify(values.id)}`);
  }
  if (values['dry-run']) {
    const plan = await planExperiment(config, openStore(workerConfigFromEnv(env).store, env), { force: values.force });
    console.log(values.json ? JSON.stringify(plan, null, 2) : formatPlan(plan).join('\n'));
    return EXIT.ok;
  }

  const connected = await connect(env, { startEmbedded: true });
  const { client, connection, config: wc, embedded } = connected;
  env = connected.env;
  try {
    if (values.id !== undefined) await assertNewExperimentId(client, openStore(wc.store, env), values.id);
    const experimentId = values.id ?? newExperimentId(config.size ? `${config.name}-${config.size}` : config.name);
    const queues = queueNames(wc.queuePrefix);
    const handle = await client.workflow
      .start(experimentWorkflow, {
        workflowId: experimentId,
        // Also closed experiments: a second one under the same id would mix its objects with theirs.
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        taskQueue: queues.workflows,
        args: [{ experimentId, config, queues, store: wc.store, ...(values.force ? { force: true } : {}) }],
      })
      .catch((err: unknown) => {
        if (err instanceof WorkflowExecutionAlreadyStartedError) throw new UsageError(`run --id: experiment ${experimentId} already exists; choose another id`);
        throw err;
      });
    if (!values.json) {
      console.log(`started ${experimentId} on ${embedded ? 'the embedded stack' : wc.address}; store ${wc.store}`);
    }
    const stopPolling = new AbortController();
    // A live status line only on a terminal; logs and pipes get one line per stage or epoch.
    const tty = process.stderr.isTTY && !values.json;
    const clearLive = () => tty && process.stderr.write('\r\x1b[K');
    const unpolled = queuesStillUnpolled(client, wc.namespace, queues, { signal: stopPolling.signal }).then(
      (missing) => {
        clearLive();
        for (const line of formatUnpolled(missing, wc.queuePrefix)) console.error(line);
      },
      // A server that cannot say who polls is no reason to stop following the experiment.
      () => undefined,
    );
    if (values.detach) {
      await unpolled;
      if (values.json) console.log(JSON.stringify({ experimentId, store: wc.store, status: 'running' }, null, 2));
      return EXIT.ok;
    }
    const polling = followProgress(
      client,
      handle,
      stopPolling.signal,
      (line) => {
        if (values.json) return;
        clearLive();
        console.error(line);
      },
      tty ? (status) => process.stderr.write(`\r\x1b[K${status.slice(0, (process.stderr.columns ?? 100) - 1)}`) : undefined,
    );
    let result: ExperimentResult | WorkflowFailedError;
    try {
      result = await handle.result().catch((err: unknown) => {
        if (err instanceof WorkflowFailedError) return err;
        throw err;
      });
    } finally {
      // Let the last progress call finish before the connection closes under it.
      stopPolling.abort();
      await Promise.all([polling, unpolled]);
      clearLive();
    }
    if (result instanceof WorkflowFailedError) {
      // Cancelled (`paramtrail cancel`), terminated or failed as a whole: said as `status` says it.
      const status = (await handle.describe()).status.name.toLowerCase();
      const cause = result.cause && !(result.cause instanceof CancelledFailure) ? result.cause.message : undefined;
      const closed = { experimentId, status, store: wc.store, ...(cause ? { error: cause } : {}), runs: [] };
      console.log(values.json ? JSON.stringify(closed, null, 2) : `${experimentId}: ${status}${cause ? `: ${cause}` : ''}`);
      return EXIT.failed;
    }
    const report = reportExperiment(await withStored(result, env), result.status);
    console.log(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
    return result.status === 'completed' ? EXIT.ok : EXIT.failed;
  } finally {
    await connection.close();
  }
}

async function cmdStatus(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' } } });
  if (positionals.length !== 1) throw new UsageError('status: expected one experiment id');
  const { client, connection } = await connect(env, { startEmbedded: false });
  try {
    const loaded = await loadExperiment(client, positionals[0]);
    if (!loaded) {
      console.error(`no experiment with id ${positionals[0]}`);
      return EXIT.failed;
    }
    const { state, result, unanswered } = loaded;
    if (unanswered !== undefined) {
      // Running, with no worker to say where: as a script reads a running experiment, with the reason.
      const report = { experimentId: positionals[0], status: 'running', unanswered, runs: [] };
      console.log(values.json ? JSON.stringify(report, null, 2) : `${report.experimentId}: running; no worker answered where it is (${unanswered})`);
      return EXIT.ok;
    }
    let report;
    if (state === 'COMPLETED') {
      report = reportExperiment(await withStored(result!, env), (result as ExperimentResult).status);
    } else if (state === 'RUNNING') {
      // Runs a running pack has finished, or not reached, are shown where they are; a training run with its epoch.
      const progress = await withPackProgress(client, result!);
      report = withRunProgress(reportExperiment(await withStored(progress, env), 'running'), await progressLines(client, progress));
    } else {
      report = { experimentId: positionals[0], status: state.toLowerCase(), runs: [] };
    }
    console.log(values.json ? JSON.stringify(report, null, 2) : 'store' in report ? formatReport(report) : `${report.experimentId}: ${report.status}`);
    // As `run` would have exited: a completed experiment with a failed run is a failure.
    if (state === 'RUNNING') return EXIT.ok;
    return state === 'COMPLETED' && (result as ExperimentResult).status === 'completed' ? EXIT.ok : EXIT.failed;
  } finally {
    await connection.close();
  }
}

async function cmdDev(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' }, s3: { type: 'boolean' } } });
  const stateDir = workerConfigFromEnv(env).stateDir;
  const sub = positionals[0];
  let status;
  if (sub === 'up') status = await devUp({ stateDir, env, s3: values.s3, workerCommand: workerCommand(), ...embeddedWorkerCode() });
  else if (sub === 'down') {
    await devDown({ stateDir });
    status = await devStatus({ stateDir });
  } else if (sub === 'status') status = await devStatus({ stateDir });
  else throw new UsageError('dev: expected up, down or status');
  if (values.json) console.log(JSON.stringify(status, null, 2));
  else {
    console.log(`embedded stack: ${status.running ? 'running' : 'stopped'} (state in ${status.stateDir})`);
    if (status.temporal) console.log(`  temporal ${status.temporal.address} ui ${status.temporal.uiAddress} pid ${status.temporal.pid}${status.temporal.alive ? '' : ' (dead)'}`);
    if (status.s3) console.log(`  s3 ${status.s3.endpoint} pid ${status.s3.pid}${status.s3.alive ? '' : ' (dead)'}`);
    if (status.worker) console.log(`  worker pid ${status.worker.pid}${status.worker.alive ? '' : ' (dead)'}, log ${status.worker.log}`);
    console.log(`  store ${status.store}`);
  }
  return EXIT.ok;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  const help = command === undefined ? undefined : COMMAND_HELP[command];
  if (help && asksForHelp(rest)) {
    console.log(help);
    return EXIT.ok;
  }
  // Without a cluster or a store of its own, the CLI uses the store of the embedded stack, which in
  // S3 mode needs the server's endpoint and keys (`dev` manages the stack itself).
  try {
    if (command !== 'dev' && !env.TEMPORAL_ADDRESS && !env.PARAMTRAIL_STORE) {
      try {
        env = { ...env, ...embeddedStoreEnv(env.PARAMTRAIL_STATE_DIR ?? DEFAULT_STATE_DIR, env) };
      } catch (err) {
        // The embedded stack's state cannot be read (dev.json damaged, say): its message says what to do.
        throw new InvalidEnvironmentError((err as Error).message);
      }
    }
    switch (command) {
      case 'run':
        return await cmdRun(rest, env);
      case 'status':
        return await cmdStatus(rest, env);
      case 'report':
        return await cmdReport(rest, env);
      case 'verify':
        return await cmdVerify(rest, env);
      case 'lineage':
        return await cmdLineage(rest, env);
      case 'cancel':
        return await cmdCancel(rest, env);
      case 'schedule':
        return await cmdSchedule(rest, env);
      case 'ls':
        return await cmdLs(rest, env);
      case 'worker': {
        // Loaded on demand: the worker pulls in TensorFlow.js and every activity, which `run` does not need.
        const { workerMain } = await import('../worker/main.js');
        try {
          await workerMain(rest, env);
        } catch (err) {
          if (err instanceof WorkerArgsError) return usageExit(WORKER_HELP, `worker: ${err.message}`);
          throw err;
        }
        return EXIT.ok;
      }
      case 'dev':
        return await cmdDev(rest, env);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? EXIT.usage : EXIT.ok;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof InvalidExperimentError) {
      console.error(err.message);
      return EXIT.invalid;
    }
    if (err instanceof NotAnExperimentError) {
      console.error(err.message);
      return EXIT.usage;
    }
    if (err instanceof InvalidEnvironmentError || err instanceof InvalidStoreSettingError) {
      console.error(err.message);
      return EXIT.usage;
    }
    if (err instanceof TemporalUnreachableError || err instanceof StoreAccessError) {
      console.error(err.message);
      return EXIT.unreachable;
    }
    if (UNREACHABLE_CODES.has((err as NodeJS.ErrnoException).code ?? '')) {
      console.error(`cannot reach the store ${storeAddress(env)}: ${(err as Error).message}`);
      return EXIT.unreachable;
    }
    if (err instanceof UsageError || String((err as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS')) {
      console.error(`${(err as Error).message}\n\n${USAGE}`);
      return EXIT.usage;
    }
    throw err;
  }
}

if (isEntryPoint(import.meta.url)) {
  // The S3 client warns on every command under Node 20 that its releases from 2027 on will need Node 22;
  // paramtrail pins the release it uses, so the notice is for whoever upgrades it, not for each command.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // A reader that went away (`paramtrail ls | head -1`) ends the command quietly, as it would a shell tool.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(process.exitCode ?? EXIT.ok);
  });
  main(process.argv.slice(2), process.env)
    .then((code) => {
      process.exitCode = code;
    })
    .catch((err) => {
      console.error(err);
      process.exitCode = EXIT.failed;
    });
}
