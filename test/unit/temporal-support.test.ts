/**
 * The test Temporal server starts from the installed CLI, answers a client, and tears down.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestTemporal } from '../support/temporal.js';

test('startTestTemporal gives a client that can start and list workflows, and tears down', async () => {
  const env = await startTestTemporal();
  try {
    assert.ok(env.nativeConnection, 'a native connection for workers');
    // No worker polls this queue: the workflow stays running, which is all listing needs.
    const handle = await env.client.workflow.start('notRegistered', {
      taskQueue: `support-${process.pid}`,
      workflowId: `support-list-${process.pid}`,
    });
    let found: string[] = [];
    // Visibility is eventually consistent; a few polls suffice on the SQLite store.
    for (let i = 0; i < 40 && !found.includes(handle.workflowId); i++) {
      found = [];
      for await (const wf of env.client.workflow.list()) found.push(wf.workflowId);
      if (!found.includes(handle.workflowId)) await sleep(250);
    }
    assert.deepEqual(found, [handle.workflowId]);
    await handle.terminate('test done');
  } finally {
    await env.teardown();
  }
});
