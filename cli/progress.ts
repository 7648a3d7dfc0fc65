/**
 * Live progress while `paramtrail run` waits: each run's stage from the experiment's `progress` query
 * (for a grid of many runs, the totals and the runs that fail), runs of a running pack from the pack's,
 * for a downloading run a bar of the bytes received from the download activity's last heartbeat, and
 * for a training run its epoch and batch from the train activity's.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultPayloadConverter, type Client, type WorkflowHandle } from '@temporalio/client';
import { mapLimit } from '../artifacts/concurrency.js';
import type { DownloadHeartbeat } from '../activities/download.js';
import type { TrainHeartbeat } from '../activities/types.js';
import type { ExperimentProgress, PackProgress, RunSummary } from '../workflows/types.js';

export interface RunLine {
  name: string;
  /** Stage and epoch: a new line is printed when this changes. */
  text: string;
  /** Finer progress (the batch) for a live status line on a terminal. */
  detail?: string;
}

/** The last heartbeat of the workflow's pending activity of this type, if it has sent one. */
async function lastHeartbeat<T>(client: Client, workflowId: string, activityType: string): Promise<T | undefined> {
  try {
    const desc = await client.workflow.getHandle(workflowId).describe();
    for (const pa of desc.raw.pendingActivities ?? []) {
      const payload = pa.heartbeatDetails?.payloads?.[0];
      if (pa.activityType?.name === activityType && payload) {
        return defaultPayloadConverter.fromPayload<T>(payload as never);
      }
    }
  } catch {
    // The child may not exist yet, or be closing: progress is best effort.
  }
  return undefined;
}

const BAR_WIDTH = 20;

/** `[#######-------------]` for a fraction in [0, 1] (clamped). */
export function progressBar(fraction: number, width = BAR_WIDTH): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/**
 * A download heartbeat for the live line: `file 2/4 t10k-images-idx3-ubyte.gz [####------] 21% 0.9/4.4 MB`,
 * without the bar when the size is unknown, and only the file while the store is checked for it.
 */
export function downloadDetail(hb: DownloadHeartbeat): string {
  const file = `file ${hb.index + 1}/${hb.files} ${hb.file}`;
  if (hb.received === undefined) return file;
  if (!hb.total) return `${file} ${megabytes(hb.received)} MB`;
  const fraction = hb.received / hb.total;
  return `${file} ${progressBar(fraction)} ${Math.floor(Math.min(1, fraction) * 100)}% ${megabytes(hb.received)}/${megabytes(hb.total)} MB`;
}

/**
 * How long the CLI waits for a pack to answer. A pack answers a query between workflow tasks, and a
 * local activity (its `trainPack` or a run's training) holds its task until it is renewed, at most
 * 2.4 s (80 % of a local run's 3 s workflow task timeout, workflows/experiment.ts); past this, its runs
 * are shown as the experiment has them, and `run` asks again at its next tick.
 */
export const PACK_QUERY_MS = 3000;

/** The pack's progress, or undefined if it did not answer within PACK_QUERY_MS. */
async function askPack(client: Client, workflowId: string): Promise<PackProgress | undefined> {
  try {
    // Cancelled, not given a gRPC deadline: the server answers a query past its deadline with an error the
    // client's retry policy retries, and a retry can then outlive the connection.
    return await client.withAbortSignal(AbortSignal.timeout(PACK_QUERY_MS), () => client.workflow.getHandle(workflowId).query<PackProgress>('packProgress'));
  } catch {
    return undefined; // Not started yet, or busy past the deadline.
  }
}

/** A run that shares its workflow with the other runs of a pack (execution.runsPerWorkflow). */
const inPack = (run: Pick<RunSummary, 'runId' | 'workflowId'>) => run.workflowId !== run.runId;

/**
 * The progress with each run of a running pack where it really is. The experiment learns its runs'
 * results only when their pack closes, so until then it has them all at the pack's first stage. Asked once
 * per pack: a run the pack has finished is completed or failed (with its error), one it has not reached is
 * pending, and the one it is on is at the stage the pack gives. A pack that does not answer (not started,
 * or not within PACK_QUERY_MS) leaves its runs as they were, or as its answer in `last` had them: a
 * caller that asks again and again keeps each pack's latest answer there, so its runs do not seem to go
 * back. The packs are asked at once, each once.
 */
export async function withPackProgress(client: Client, p: ExperimentProgress, last?: Map<string, PackProgress>): Promise<ExperimentProgress> {
  const asked = new Set<string>();
  for (const run of p.runs) {
    if (inPack(run) && run.stage !== 'pending' && run.stage !== 'completed' && run.stage !== 'failed') asked.add(run.workflowId);
  }
  if (!asked.size) return p;
  const packs = new Map<string, PackProgress | undefined>(
    await Promise.all(
      [...asked].map(async (id) => {
        const answer = await askPack(client, id);
        if (answer) last?.set(id, answer);
        return [id, answer ?? last?.get(id)] as const;
      }),
    ),
  );
  const runs = p.runs.map((run): RunSummary => {
    const pack = run.stage !== 'completed' && run.stage !== 'failed' ? packs.get(run.workflowId) : undefined;
    if (!pack) return run;
    if (pack.current === run.runId) return pack.stage ? { ...run, stage: pack.stage } : run;
    const failed = pack.failed?.find((f) => f.runId === run.runId);
    if (failed) return { ...run, stage: 'failed', error: { message: failed.message } };
    return { ...run, stage: pack.done.includes(run.runId) ? 'completed' : 'pending' };
  });
  return { ...p, runs };
}

/**
 * A line for each run: its stage, with the epoch (and batch, as detail) of a training run and a bar of a
 * downloading one, from their activities' last heartbeats. `p` is the progress as withPackProgress
 * gives it, which has the stages of the runs of packs.
 */
export async function progressLines(client: Client, p: ExperimentProgress): Promise<RunLine[]> {
  // Each running run is asked of its own workflow, a few at once.
  return mapLimit([...p.runs], 8, async (run): Promise<RunLine> => {
    let text: string = run.stage;
    let detail: string | undefined;
    if (run.stage !== 'pending' && run.stage !== 'completed' && run.stage !== 'failed') {
      // A pack's run has its stage from withPackProgress; asking again would wait on the pack's task.
      if (!inPack(run)) {
        try {
          text = await client.workflow.getHandle(run.workflowId).query<string>('stage');
        } catch {
          // Not started yet.
        }
      }
      if (text === 'download') {
        const hb = await lastHeartbeat<DownloadHeartbeat>(client, run.workflowId, 'download');
        if (hb) detail = downloadDetail(hb);
      }
      if (text === 'train') {
        const hb = await lastHeartbeat<TrainHeartbeat>(client, run.workflowId, 'train');
        if (hb) {
          text = `train epoch ${hb.epoch}/${hb.epochs}`;
          if (hb.batches) detail = `batch ${hb.batch}/${hb.batches}`;
        }
      }
    }
    if (run.stage === 'failed' && run.error) text = `failed: ${run.error.message.split('\n')[0]}`;
    return { name: run.name, text, detail };
  });
}

/**
 * Above this many runs, progress is the grid's totals, printed as they move by a percent, and a line per
 * failed run: a line for every stage of every run would be tens of thousands of lines for a sweep.
 */
export const MANY_RUNS = 100;

export interface RunTotals {
  runs: number;
  completed: number;
  failed: number;
  /** Started and not finished. */
  running: number;
}

/** The runs of a progress by where they are, counting those in chunks (all finished) and those not started. */
export function progressTotals(p: Pick<ExperimentProgress, 'chunks' | 'pending'> & { runs: ReadonlyArray<Pick<RunSummary, 'stage'>> }): RunTotals {
  const t: RunTotals = { runs: p.pending ?? 0, completed: 0, failed: 0, running: 0 };
  for (const c of p.chunks ?? []) {
    t.runs += c.count;
    t.completed += c.completed;
    t.failed += c.count - c.completed;
  }
  for (const r of p.runs) {
    t.runs++;
    if (r.stage === 'completed') t.completed++;
    else if (r.stage === 'failed') t.failed++;
    else if (r.stage !== 'pending') t.running++;
  }
  return t;
}

/** `1234/10000 runs done (12%): 1230 completed, 4 failed; 16 running`. */
export function formatTotals(t: RunTotals): string {
  const done = t.completed + t.failed;
  return `${done}/${t.runs} runs done (${Math.floor((100 * done) / t.runs)}%): ${t.completed} completed, ${t.failed} failed; ${t.running} running`;
}

/**
 * What `paramtrail run` prints as progress arrives: a line whenever a run's stage or epoch changes; for
 * a grid of more than MANY_RUNS runs, the totals each time the share of runs done passes a percent, and
 * a line for each run that fails.
 */
export class ProgressLog {
  private readonly seen = new Map<string, string>();
  private percent = -1;

  constructor(private readonly print: (line: string) => void) {}

  update(p: ExperimentProgress, lines: readonly RunLine[]): void {
    const totals = progressTotals(p);
    const many = totals.runs > MANY_RUNS;
    for (const l of lines) {
      if (this.seen.get(l.name) !== l.text && (!many || l.text.startsWith('failed'))) this.print(`[${l.name}] ${l.text}`);
      this.seen.set(l.name, l.text);
    }
    if (!many) return;
    const percent = Math.floor((100 * (totals.completed + totals.failed)) / totals.runs);
    if (percent !== this.percent) this.print(formatTotals(totals));
    this.percent = percent;
  }
}

/**
 * Prints progress (ProgressLog) checking once a second until `signal` aborts. On a terminal (`live`), a
 * status line below it also shows each downloading run's bar and each training run's batch.
 */
export async function followProgress(
  client: Client,
  handle: WorkflowHandle,
  signal: AbortSignal,
  print: (line: string) => void,
  live?: (status: string) => void,
): Promise<void> {
  const log = new ProgressLog(print);
  const packs = new Map<string, PackProgress>();
  while (!signal.aborted) {
    try {
      const p = await withPackProgress(client, await handle.query<ExperimentProgress>('progress'), packs);
      const lines = await progressLines(client, p);
      log.update(p, lines);
      const busy = lines.filter((l) => l.detail).map((l) => `${l.name}: ${l.text} ${l.detail}`);
      live?.(busy.join(' | '));
    } catch {
      // A query can fail while the workflow starts or ends; the next tick tries again.
    }
    await sleep(1000, undefined, { signal }).catch(() => undefined);
  }
}
