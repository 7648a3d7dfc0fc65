/** Workflows of `bench/handoff.ts`: nothing but hand-offs between the server and a worker. */
import { executeChild, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';

interface NoopActivities {
  noop(): Promise<void>;
}

const remote = proxyActivities<NoopActivities>({ startToCloseTimeout: '1 minute' });
const local = proxyLocalActivities<NoopActivities>({ startToCloseTimeout: '1 minute' });

/** `n` no-op activities one after the other. */
export async function sequence(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await remote.noop();
}

/** A run's shape: `steps` no-op activities, on the task queue or local. */
export async function step(steps: number, isLocal: boolean): Promise<void> {
  for (let i = 0; i < steps; i++) await (isLocal ? local.noop() : remote.noop());
}

/** `n` children of `steps` steps each, `window` at a time: an experiment's shape. */
export async function fanOut(n: number, steps: number, isLocal: boolean, window: number): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  for (let i = 0; i < n; i++) {
    if (inFlight.size >= window) await Promise.race(inFlight);
    const p: Promise<void> = executeChild(step, { workflowId: `step-${i}`, args: [steps, isLocal] }).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }
  await Promise.all(inFlight);
}
