/**
 * `paramtrail schedule ...`: reruns of an experiment file on a Temporal Schedule. Called by cli/main.ts.
 *
 * The file is validated once, at `create`, and stored in the schedule's action; every scheduled (or
 * triggered) execution starts `experimentWorkflow` with a workflow id of `<schedule id>-<time>`, which
 * Temporal derives from the schedule's workflow id by appending the scheduled time. The schedule id
 * and the source file are kept in the action's memo, so an execution can be traced to its schedule.
 */
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleDescription } from '@temporalio/client';
import { InvalidExperimentError } from '../config/experiment.js';
import { experimentWorkflow } from '../workflows/index.js';
import { queueNames, type ExperimentInput } from '../workflows/types.js';
import { connect } from './connect.js';
import { EXIT } from './exit.js';
import { EXPERIMENT_ID, EXPERIMENT_ID_RULE, readExperimentFile } from './experiment.js';
import { asksForHelp, parseOr, usageExit } from './verify.js';

const HELP = `usage: paramtrail schedule <subcommand>

  create <file> (--cron EXPR | --every DURATION) [--size SIZE] [--overlap POLICY] [--id ID] [--paused] [--json]
      validate an experiment file and rerun it on a schedule; ID defaults to the experiment's name
      (and size). SIZE: one of the file's sizes.
      EXPR: minute hour day-of-month month day-of-week, e.g. "0 3 * * *".
      DURATION: at least 1s, e.g. 30m, 6h, 1d. POLICY (when a rerun is due while the last still runs):
      skip (default), buffer-one, buffer-all, cancel-other, terminate-other, allow-all
  list [--json]                     every schedule
  describe <id> [--json]            spec, state, recent and next executions
  pause <id> [--note TEXT]          stop starting executions
  unpause <id> [--note TEXT]        start them again
  trigger <id>                      start one execution now (overlap: allow)
  delete <id>                       remove the schedule (running executions go on)

Each execution is an experiment with workflow id <id>-<scheduled time>; describe lists them.
Exit status: 0 on success, 1 when the schedule is unknown (or already exists, for create),
2 on a usage error, 3 for an invalid experiment file, 4 when the Temporal server cannot be reached.`;

const OVERLAP: Record<string, ScheduleOverlapPolicy> = {
  skip: ScheduleOverlapPolicy.SKIP,
  'buffer-one': ScheduleOverlapPolicy.BUFFER_ONE,
  'buffer-all': ScheduleOverlapPolicy.BUFFER_ALL,
  'cancel-other': ScheduleOverlapPolicy.CANCEL_OTHER,
  'terminate-other': ScheduleOverlapPolicy.TERMINATE_OTHER,
  'allow-all': ScheduleOverlapPolicy.ALLOW_ALL,
};

/** What Temporal's duration strings accept that we promise: a number and a unit. */
const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** Temporal refuses a shorter schedule interval. */
const SHORTEST_EVERY_MS = 1000;

/** Milliseconds of a duration in DURATION's form; undefined for any other text. */
function durationMs(text: string): number | undefined {
  const m = DURATION.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : undefined;
}

export interface ScheduleReport {
  scheduleId: string;
  paused: boolean;
  note?: string;
  cron: string[];
  every: number[];
  overlap?: string;
  workflowId?: string;
  taskQueue?: string;
  memo?: Record<string, unknown>;
  /** Executions started so far (most recent last), by workflow id. */
  recent: Array<{ workflowId: string; scheduledAt: string; takenAt: string }>;
  next: string[];
}

function reportOf(d: ScheduleDescription): ScheduleReport {
  return {
    scheduleId: d.scheduleId,
    paused: d.state.paused,
    ...(d.state.note ? { note: d.state.note } : {}),
    // Temporal keeps a cron expression only as calendar specs; `create` keeps it in the memo as given.
    cron: typeof d.action.memo?.cron === 'string' ? [d.action.memo.cron] : [],
    every: (d.spec.intervals ?? []).map((i) => i.every),
    ...(d.policies?.overlap ? { overlap: d.policies.overlap } : {}),
    workflowId: d.action.workflowId,
    taskQueue: d.action.taskQueue,
    ...(d.action.memo ? { memo: d.action.memo } : {}),
    recent: d.info.recentActions.map((a) => ({
      workflowId: a.action.workflow.workflowId,
      scheduledAt: a.scheduledAt.toISOString(),
      takenAt: a.takenAt.toISOString(),
    })),
    next: d.info.nextActionTimes.map((t) => t.toISOString()),
  };
}

/** 86400000 -> "1d", 5400000 -> "90m": the largest unit that divides it. */
function durationText(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function formatSchedule(r: ScheduleReport): string {
  const lines = [`schedule ${r.scheduleId}: ${r.paused ? 'paused' : 'active'}${r.note ? ` (${r.note})` : ''}`];
  for (const expr of r.cron) lines.push(`  cron ${expr}`);
  for (const ms of r.every) lines.push(`  every ${durationText(ms)}`);
  if (r.overlap) lines.push(`  overlap ${r.overlap.toLowerCase().replace(/_/g, '-')}`);
  if (r.memo?.file) lines.push(`  file ${String(r.memo.file)}`);
  lines.push(`  executions: ${r.workflowId}-<time> on task queue ${r.taskQueue}`);
  for (const a of r.recent) lines.push(`  ran ${a.workflowId} (scheduled ${a.scheduledAt})`);
  // --json lists every next time Temporal gives (up to 10); three say when it runs.
  for (const t of r.next.slice(0, 3)) lines.push(`  next ${t}`);
  return lines.join('\n');
}

async function create(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseOr({
    args,
    allowPositionals: true,
    options: {
      cron: { type: 'string' },
      size: { type: 'string' },
      every: { type: 'string' },
      overlap: { type: 'string', default: 'skip' },
      id: { type: 'string' },
      paused: { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  if (parsed instanceof Error) return usageExit(HELP, `schedule create: ${parsed.message}`);
  const { values, positionals } = parsed;
  if (positionals.length !== 1) return usageExit(HELP, 'schedule create: expected one experiment file');
  if ((values.cron === undefined) === (values.every === undefined)) {
    return usageExit(HELP, 'schedule create: expected exactly one of --cron EXPR and --every DURATION');
  }
  const everyMs = values.every === undefined ? undefined : durationMs(values.every);
  if (values.every !== undefined && everyMs === undefined) {
    return usageExit(HELP, `schedule create: --every: expected a duration like 30m, 6h or 1d, found ${JSON.stringify(values.every)}`);
  }
  if (everyMs !== undefined && everyMs < SHORTEST_EVERY_MS) {
    return usageExit(HELP, `schedule create: --every: expected at least 1s (Temporal's shortest interval), found ${JSON.stringify(values.every)}`);
  }
  if (values.id !== undefined && !EXPERIMENT_ID.test(values.id)) {
    return usageExit(HELP, `schedule create: --id: expected ${EXPERIMENT_ID_RULE}; found ${JSON.stringify(values.id)}`);
  }
  const overlap = OVERLAP[values.overlap!];
  if (!overlap) return usageExit(HELP, `schedule create: --overlap: expected one of ${Object.keys(OVERLAP).join(', ')}, found ${JSON.stringify(values.overlap)}`);

  const file = positionals[0];
  const config = await readExperimentFile(file, values.size);
  const scheduleId = values.id ?? (config.size ? `${config.name}-${config.size}` : config.name);

  const { client, connection, config: wc } = await connect(env, { startEmbedded: true });
  try {
    const queues = queueNames(wc.queuePrefix);
    // No experimentId: the input is the same for every execution of a schedule, so each execution
    // takes its own workflow id (<schedule id>-<time>) as its experiment id.
    const input: ExperimentInput = { config, queues, store: wc.store };
    try {
      await client.schedule.create({
        scheduleId,
        spec: values.cron !== undefined ? { cronExpressions: [values.cron] } : { intervals: [{ every: values.every as `${number}s` }] },
        action: {
          type: 'startWorkflow',
          workflowType: experimentWorkflow,
          workflowId: scheduleId,
          taskQueue: queues.workflows,
          args: [input],
          memo: { schedule: scheduleId, file, ...(values.cron !== undefined ? { cron: values.cron } : {}) },
        },
        policies: { overlap },
        state: values.paused ? { paused: true, note: 'created paused' } : undefined,
      });
    } catch (err) {
      if (err instanceof ScheduleAlreadyRunning) {
        console.error(`schedule ${scheduleId} already exists; delete it first or pass --id`);
        return EXIT.failed;
      }
      // The client's name for a spec Temporal refused (a cron expression it cannot parse); nothing was created.
      if (err instanceof TypeError) {
        const what = values.cron !== undefined ? `--cron: Temporal refused ${JSON.stringify(values.cron)}` : `--every: Temporal refused ${JSON.stringify(values.every)}`;
        return usageExit(HELP, `schedule create: ${what}: ${err.message}`);
      }
      throw err;
    }
    const report = reportOf(await client.schedule.getHandle(scheduleId).describe());
    if (values.cron !== undefined) report.cron = [values.cron];
    console.log(values.json ? JSON.stringify(report, null, 2) : `created ${formatSchedule(report)}`);
    return EXIT.ok;
  } finally {
    await connection.close();
  }
}

async function onSchedule(sub: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseOr({ args, allowPositionals: true, options: { json: { type: 'boolean' }, note: { type: 'string' } } });
  if (parsed instanceof Error) return usageExit(HELP, `schedule ${sub}: ${parsed.message}`);
  const { values, positionals } = parsed;
  if (positionals.length !== 1) return usageExit(HELP, `schedule ${sub}: expected one schedule id`);
  const scheduleId = positionals[0];
  const { client, connection } = await connect(env, { startEmbedded: false });
  try {
    const handle = client.schedule.getHandle(scheduleId);
    try {
      if (sub === 'describe') {
        const report = reportOf(await handle.describe());
        console.log(values.json ? JSON.stringify(report, null, 2) : formatSchedule(report));
        return EXIT.ok;
      }
      if (sub === 'pause') await handle.pause(values.note);
      else if (sub === 'unpause') await handle.unpause(values.note);
      else if (sub === 'trigger') await handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
      else if (sub === 'delete') await handle.delete();
      const done = { pause: 'paused', unpause: 'unpaused', trigger: 'triggered', delete: 'deleted' }[sub];
      console.log(values.json ? JSON.stringify({ scheduleId, done }) : `schedule ${scheduleId}: ${done}`);
      return EXIT.ok;
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) {
        console.error(`no schedule with id ${scheduleId}`);
        return EXIT.failed;
      }
      throw err;
    }
  } finally {
    await connection.close();
  }
}

async function list(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseOr({ args, allowPositionals: true, options: { json: { type: 'boolean' } } });
  if (parsed instanceof Error) return usageExit(HELP, `schedule list: ${parsed.message}`);
  if (parsed.positionals.length > 0) return usageExit(HELP, 'schedule list: expected no arguments');
  const { client, connection } = await connect(env, { startEmbedded: false });
  try {
    const rows = await listSchedules(client);
    if (parsed.values.json) console.log(JSON.stringify(rows, null, 2));
    else if (rows.length === 0) console.log('no schedules');
    else for (const r of rows) console.log(`${r.scheduleId}  ${r.paused ? 'paused' : 'active'}  last ${r.lastWorkflowId ?? '-'}  next ${r.next ?? '-'}`);
    return EXIT.ok;
  } finally {
    await connection.close();
  }
}

export async function listSchedules(client: Client): Promise<Array<{ scheduleId: string; paused: boolean; lastWorkflowId?: string; next?: string }>> {
  const rows = [];
  for await (const s of client.schedule.list()) {
    rows.push({
      scheduleId: s.scheduleId,
      paused: s.state.paused,
      lastWorkflowId: s.info.recentActions.at(-1)?.action.workflow.workflowId,
      next: s.info.nextActionTimes[0]?.toISOString(),
    });
  }
  return rows.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

export async function cmdSchedule(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [sub, ...rest] = argv;
  // `schedule <subcommand> --help`: the subcommands share one help.
  if (sub !== undefined && asksForHelp(rest)) return usageExit(HELP, undefined);
  try {
    switch (sub) {
      case 'create':
        return await create(rest, env);
      case 'list':
        return await list(rest, env);
      case 'describe':
      case 'pause':
      case 'unpause':
      case 'trigger':
      case 'delete':
        return await onSchedule(sub, rest, env);
      case '--help':
      case '-h':
      case 'help':
        return usageExit(HELP, undefined);
      case undefined:
        return usageExit(HELP, 'schedule: expected one subcommand: create, list, describe, pause, unpause, trigger or delete');
      default:
        return usageExit(HELP, `schedule: unknown subcommand "${sub}"`);
    }
  } catch (err) {
    if (err instanceof InvalidExperimentError) {
      console.error(err.message);
      return EXIT.invalid;
    }
    throw err;
  }
}
