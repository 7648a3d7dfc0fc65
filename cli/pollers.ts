/**
 * The task queues of an experiment that no worker polls. An experiment waits on such a queue in
 * silence, so a wrong PARAMTRAIL_TASK_QUEUE, a worker started with another `--task-queue`, or no worker
 * at all looks like a hang; `run` names those queues and the worker that would serve each.
 */
import type { Client } from '@temporalio/client';
import type { QueueNames } from '../workflows/types.js';

/** temporal.api.enums.v1.TaskQueueType: who polls the queue. */
const WORKFLOW_POLLERS = 1;
const ACTIVITY_POLLERS = 2;

export interface UnpolledQueue {
  role: keyof QueueNames;
  name: string;
}

/** The queues among `queues` with no poller the server has seen (it remembers pollers for minutes). */
export async function unpolledQueues(client: Client, namespace: string, queues: QueueNames): Promise<UnpolledQueue[]> {
  const roles = ['workflows', 'train', 'analysis'] as const;
  const polled = await Promise.all(
    roles.map(async (role) => {
      const { pollers } = await client.workflowService.describeTaskQueue({
        namespace,
        taskQueue: { name: queues[role] },
        taskQueueType: role === 'workflows' ? WORKFLOW_POLLERS : ACTIVITY_POLLERS,
      });
      return (pollers ?? []).length > 0;
    }),
  );
  return roles.filter((_, i) => !polled[i]).map((role) => ({ role, name: queues[role] }));
}

/**
 * Waits up to `graceMs` for every queue to have a poller (a worker just started takes seconds to poll),
 * then returns the queues still without one. Returns early, with nothing, once `signal` aborts.
 */
export async function queuesStillUnpolled(
  client: Client,
  namespace: string,
  queues: QueueNames,
  { graceMs = 15_000, intervalMs = 1_000, signal }: { graceMs?: number; intervalMs?: number; signal?: AbortSignal } = {},
): Promise<UnpolledQueue[]> {
  const deadline = Date.now() + graceMs;
  for (;;) {
    if (signal?.aborted) return [];
    const missing = await unpolledQueues(client, namespace, queues);
    if (missing.length === 0 || Date.now() >= deadline) return missing;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** One line per queue: what is missing and the command that serves it. */
export function formatUnpolled(missing: UnpolledQueue[], prefix: string): string[] {
  return missing.map(
    ({ role, name }) =>
      `warning: no worker polls task queue ${name} (${role}); the experiment waits there until one does: ` +
      `PARAMTRAIL_TASK_QUEUE=${prefix} paramtrail worker --task-queue ${role}`,
  );
}
