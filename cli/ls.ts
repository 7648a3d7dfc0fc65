/**
 * `paramtrail ls [--model M] [--dataset D] [--optimizer O] [--status S] [--experiment E] [--json]`:
 * lists run workflows through Temporal's visibility store, filtered on the search attributes every run
 * carries (`workflows/search.ts`). Called by cli/main.ts.
 *
 * Visibility is eventually consistent: a run started a moment ago, or a status just upserted, can take
 * a second to show.
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { DatasetKey, ExperimentKey, ModelKey, OptimizerKey, RUN_STATUSES, RunKey, StatusKey } from '../workflows/search.js';
import { connect } from './connect.js';
import { EXIT } from './exit.js';
import { experimentIdOf } from '../workflows/types.js';
import { parseOr, usageExit } from './verify.js';

const HELP = `usage: paramtrail ls [--model M] [--dataset D] [--optimizer O] [--status S] [--experiment E] [--limit N] [--json]

Lists runs, newest first, from Temporal's visibility store: run id, experiment, model, dataset,
optimizer, status and start/close time. Each flag keeps the runs whose attribute equals its value.

  --model M        registered model name (mlp, lenet5, ...)
  --dataset D      dataset name (fashion-mnist, ...)
  --optimizer O    sgd or adam
  --status S       one of ${RUN_STATUSES.join(', ')}
  --experiment E   experiment id
  --limit N        at most N runs (default 100)
  --json           print the runs as a JSON array

Runs that share a workflow (execution.runsPerWorkflow) are one row: RUN is the pack's workflow id,
<experiment>/<first run>..<last run>, and STATUS the worst of its runs'.

The runs carry the search attributes ParamtrailExperiment, ParamtrailRun, ParamtrailModel,
ParamtrailDataset, ParamtrailOptimizer and ParamtrailStatus; the embedded dev server registers them,
a cluster needs them created once (see the README, "Finding runs").

Exit status: 0 when the query ran (even with no runs); 1 when the server refused it (e.g. the search
attributes are not registered); 2 on a usage error; 4 when the Temporal server cannot be reached.`;

/** The workflow types of runs, as Temporal records them (the exported functions' names): a run, a pack of runs. */
export const RUN_WORKFLOW_TYPES = ['runWorkflow', 'packWorkflow'] as const;
const DEFAULT_LIMIT = 100;
/** gRPC status of a query the server cannot run. */
const INVALID_ARGUMENT = 3;

export interface LsFilter {
  model?: string;
  dataset?: string;
  optimizer?: string;
  status?: string;
  experiment?: string;
}

export interface LsRow {
  runId: string;
  workflowId: string;
  experiment?: string;
  model?: string;
  dataset?: string;
  optimizer?: string;
  /** The run's own status attribute (`training`, `completed`, ...). */
  status?: string;
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, ... */
  state: string;
  startTime: string;
  closeTime?: string;
}

/** A value that may go inside a quoted visibility-query literal: no quotes, backslashes or control characters. */
function literal(flag: string, value: string): string {
  // Refused rather than escaped: no model, dataset or experiment id contains these, and the visibility
  // query dialects of SQLite, PostgreSQL and Elasticsearch do not agree on how to escape them.
  if (value === '' || /["'\\`\p{Cc}]/u.test(value)) {
    throw new LsUsageError(`--${flag}: expected a non-empty value without quotes, backslashes or control characters, found ${JSON.stringify(value)}`);
  }
  return `"${value}"`;
}

class LsUsageError extends Error {}

/** The visibility query for a filter: run workflows only, each given attribute equal to its value. */
export function lsQuery(filter: LsFilter): string {
  if (filter.status !== undefined && !(RUN_STATUSES as readonly string[]).includes(filter.status)) {
    throw new LsUsageError(`--status: expected one of ${RUN_STATUSES.join(', ')}, found ${JSON.stringify(filter.status)}`);
  }
  const clauses = [`(${RUN_WORKFLOW_TYPES.map((t) => `WorkflowType = "${t}"`).join(' OR ')})`];
  const terms: Array<[keyof LsFilter, string]> = [
    ['experiment', ExperimentKey.name],
    ['model', ModelKey.name],
    ['dataset', DatasetKey.name],
    ['optimizer', OptimizerKey.name],
    ['status', StatusKey.name],
  ];
  for (const [flag, attribute] of terms) {
    const value = filter[flag];
    if (value !== undefined) clauses.push(`${attribute} = ${literal(flag, value)}`);
  }
  return clauses.join(' AND ');
}

function rowFrom(info: WorkflowExecutionInfo): LsRow {
  const sa = info.typedSearchAttributes;
  return {
    runId: sa.get(RunKey) ?? info.workflowId,
    workflowId: info.workflowId,
    experiment: sa.get(ExperimentKey),
    model: sa.get(ModelKey),
    dataset: sa.get(DatasetKey),
    optimizer: sa.get(OptimizerKey),
    status: sa.get(StatusKey),
    state: info.status.name,
    startTime: info.startTime.toISOString(),
    closeTime: info.closeTime?.toISOString(),
  };
}

/** The runs matching `filter`, newest first, at most `limit`. */
export async function listRuns(client: Client, filter: LsFilter, limit = DEFAULT_LIMIT): Promise<LsRow[]> {
  const rows: LsRow[] = [];
  for await (const info of client.workflow.list({ query: lsQuery(filter), pageSize: Math.min(limit, 1000) })) {
    rows.push(rowFrom(info));
    if (rows.length >= limit) break;
  }
  return rows;
}

/** A plain table: one header, one line per run, columns padded to their widest cell. */
export function formatRuns(rows: LsRow[]): string {
  if (rows.length === 0) return 'no runs';
  const header = ['RUN', 'MODEL', 'DATASET', 'OPTIMIZER', 'STATUS', 'STATE', 'STARTED', 'CLOSED'];
  const cells = rows.map((r) => [r.runId, r.model ?? '-', r.dataset ?? '-', r.optimizer ?? '-', r.status ?? '-', r.state, r.startTime.replace(/\.\d+Z$/, 'Z'), r.closeTime?.replace(/\.\d+Z$/, 'Z') ?? '-']);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join('  ');
  return [line(header), ...cells.map(line)].join('\n');
}

export async function cmdLs(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseOr({
    args: argv,
    allowPositionals: false,
    options: {
      model: { type: 'string' },
      dataset: { type: 'string' },
      optimizer: { type: 'string' },
      status: { type: 'string' },
      experiment: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (parsed instanceof Error) return usageExit(HELP, `ls: ${parsed.message}`);
  const { values } = parsed;
  if (values.help) return usageExit(HELP, undefined);
  const limit = values.limit === undefined ? DEFAULT_LIMIT : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) return usageExit(HELP, `ls: --limit: expected a positive integer, found ${JSON.stringify(values.limit)}`);
  const filter: LsFilter = { model: values.model, dataset: values.dataset, optimizer: values.optimizer, status: values.status, experiment: values.experiment === undefined ? undefined : experimentIdOf(values.experiment) };
  try {
    lsQuery(filter);
  } catch (err) {
    if (err instanceof LsUsageError) return usageExit(HELP, `ls: ${err.message}`);
    throw err;
  }

  const { client, connection } = await connect(env, { startEmbedded: false });
  try {
    let rows: LsRow[];
    try {
      rows = await listRuns(client, filter, limit);
    } catch (err) {
      // INVALID_ARGUMENT: most often a search attribute the cluster does not know.
      const grpc = (err as { cause?: { code?: number; details?: string } }).cause;
      if (grpc?.code === INVALID_ARGUMENT) {
        console.error(
          `ls: the server refused the query ${lsQuery(filter)}: ${grpc.details ?? (err as Error).message}\n` +
            'If a Paramtrail* search attribute is unknown, create them once (README, "Finding runs").',
        );
        return EXIT.failed;
      }
      throw err;
    }
    console.log(values.json ? JSON.stringify(rows, null, 2) : formatRuns(rows));
    return EXIT.ok;
  } finally {
    await connection.close();
  }
}
