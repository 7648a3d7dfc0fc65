/**
 * Live progress while `paramtrail run` waits: each run's stage from the experiment's `progress` query,
 * and for a training run its epoch and batch from the train activity's last heartbeat.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultPayloadConverter, type Client, type WorkflowHandle } from '@temporalio/client';
import type { TrainHeartbeat } from '../activities/types.js';
import type { ExperimentProgress } from '../workflows/types.js';

export interface RunLine {
  name: string;
  /** Stage and epoch: a new line is printed when this changes. */
  text: string;
  /** Finer progress (the batch) for a live status line on a terminal. */
  detail?: string;
}

async function trainProgress(client: Client, workflowId: string): Promise<TrainHeartbeat | undefined> {
  try {
    const desc = await client.workflow.getHandle(workflowId).describe();
    for (const pa of desc.raw.pendingActivities ?? []) {
      const payload = pa.heartbeatDetails?.payloads?.[0];
      if (pa.activityType?.name === 'train' && payload) {
        return defaultPayloadConverter.fromPayload<TrainHeartbeat>(payload as never);
      }
    }
  } catch {
    // The child may not exist yet, or be closing: progress is best effort.
  }
  return undefined;
}

export async function progressLines(client: Client, p: ExperimentProgress): Promise<RunLine[]> {
  const lines: RunLine[] = [];
  for (const run of p.runs) {
    let text: string = run.stage;
    let detail: string | undefined;
    if (run.stage !== 'pending' && run.stage !== 'completed' && run.stage !== 'failed') {
      try {
        text = await client.workflow.getHandle(run.workflowId).query<string>('stage');
      } catch {
        // Not started yet.
      }
      if (text === 'train') {
        const hb = await trainProgress(client, run.workflowId);
        if (hb) {
          text = `train epoch ${hb.epoch}/${hb.epochs}`;
          if (hb.batches) detail = `batch ${hb.batch}/${hb.batches}`;
        }
      }
    }
    if (run.stage === 'failed' && run.error) text = `failed: ${run.error.message.split('\n')[0]}`;
    lines.push({ name: run.name, text, detail });
  }
  return lines;
}

/**
 * Prints a line whenever a run's stage or epoch changes, checking once a second until `signal` aborts.
 * On a terminal (`live`), a status line below them also shows each training run's batch.
 */
export async function followProgress(
  client: Client,
  handle: WorkflowHandle,
  signal: AbortSignal,
  print: (line: string) => void,
  live?: (status: string) => void,
): Promise<void> {
  const seen = new Map<string, string>();
  while (!signal.aborted) {
    try {
      const lines = await progressLines(client, await handle.query<ExperimentProgress>('progress'));
      for (const l of lines) {
        if (seen.get(l.name) !== l.text) print(`[${l.name}] ${l.text}`);
        seen.set(l.name, l.text);
      }
      const busy = lines.filter((l) => l.detail).map((l) => `${l.name}: ${l.text} ${l.detail}`);
      live?.(busy.join(' | '));
    } catch {
      // A query can fail while the workflow starts or ends; the next tick tries again.
    }
    await sleep(1000, undefined, { signal }).catch(() => undefined);
  }
}
