/**
 * The test Temporal server starts from the installed CLI, answers a client, and tears down; the dev
 * server starts from a CLI that lacks a flag the installed one has.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTemporalDevServer } from '../../infra/temporal.js';
import { resolveTool } from '../../infra/tools.js';
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

test('the dev server starts with its UI from a CLI that has no --ui-disable-news-fetch (v1.5.1, which setup builds without PyPI)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'paramtrail-cli-'));
  try {
    // The installed CLI, less the flag: refused when given, as v1.5.1 refuses it, and absent from its help.
    const cli = join(dir, 'temporal');
    await writeFile(
      cli,
      [
        '#!/bin/sh',
        'for a in "$@"; do [ "$a" = --ui-disable-news-fetch ] && { echo "unknown flag: $a" >&2; exit 1; }; done',
        'if [ "$3" = --help ]; then "$REAL_TEMPORAL" "$@" | grep -v -- --ui-disable-news-fetch; exit 0; fi',
        'exec "$REAL_TEMPORAL" "$@"',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const env = { ...process.env, REAL_TEMPORAL: resolveTool('temporal', process.env) };
    const server = await startTemporalDevServer({ env, binary: cli, headless: false });
    try {
      assert.ok(server.uiAddress, 'a UI address');
      const res = await fetch(server.uiAddress!);
      assert.equal(res.status, 200, `the UI answers at ${server.uiAddress}`);
    } finally {
      await server.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
