/**
 * How worker processes are started: `paramtrail worker` (bin/paramtrail) and cli/connect.ts's
 * workerCommand (the embedded stack, `paramtrail dev up`, the tests' worker processes) both put the
 * worker's V8 options on node's command line, and this node accepts them. Other commands start node
 * without them. A worker process also sets core's workflow-task warning threshold unless it is set.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliCommand, CLI_MAIN, workerCommand } from '../../cli/connect.js';
import { PROJECT_ROOT } from '../../infra/tools.js';
import { setCoreEnvDefaults, WORKER_V8_FLAGS } from '../../worker/config.js';

/** The argv bin/paramtrail hands to node, read through a stand-in `node` first on PATH. */
function binArgv(args: string[]): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'paramtrail-launch-'));
  try {
    writeFileSync(join(dir, 'node'), '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n');
    chmodSync(join(dir, 'node'), 0o755);
    const out = execFileSync(join(PROJECT_ROOT, 'bin', 'paramtrail'), args, { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` }, encoding: 'utf8' });
    return out.split('\n').slice(0, -1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('paramtrail worker starts node with the worker V8 options, before the CLI; other commands without', () => {
  assert.ok(WORKER_V8_FLAGS.length > 0);
  const worker = binArgv(['worker', '--task-queue', 'train']);
  assert.deepEqual(worker.slice(0, WORKER_V8_FLAGS.length), [...WORKER_V8_FLAGS]);
  assert.deepEqual(worker.slice(-4), [join(PROJECT_ROOT, 'cli', 'main.ts'), 'worker', '--task-queue', 'train']);
  const ls = binArgv(['ls', '--json']);
  assert.ok(WORKER_V8_FLAGS.every((f) => !ls.includes(f)), `expected no worker V8 option for ls, found ${ls.join(' ')}`);
  assert.deepEqual(ls.slice(-3), [join(PROJECT_ROOT, 'cli', 'main.ts'), 'ls', '--json']);
});

test('workerCommand is the CLI command for worker with the worker V8 options, and node accepts them', () => {
  const [node, ...rest] = workerCommand(['--task-queue', 'analysis']);
  assert.equal(node, process.execPath);
  assert.deepEqual(rest.slice(0, WORKER_V8_FLAGS.length), [...WORKER_V8_FLAGS]);
  assert.deepEqual([node, ...rest.slice(WORKER_V8_FLAGS.length)], cliCommand(['worker', '--task-queue', 'analysis']));
  assert.equal(cliCommand([]).at(-1), CLI_MAIN);
  // An option this node's V8 does not know makes node refuse to start ("bad option").
  const out = execFileSync(process.execPath, [...WORKER_V8_FLAGS, '-e', 'console.log("started")'], { encoding: 'utf8' });
  assert.equal(out.trim(), 'started');
});

test("core's workflow-task warning starts at 9 s in a worker, unless the environment sets it", () => {
  const unset: NodeJS.ProcessEnv = {};
  setCoreEnvDefaults(unset);
  assert.equal(unset.TEMPORAL_WORKFLOW_TASK_DURATION_WARN_SECONDS, '9');
  const set: NodeJS.ProcessEnv = { TEMPORAL_WORKFLOW_TASK_DURATION_WARN_SECONDS: '3' };
  setCoreEnvDefaults(set);
  assert.equal(set.TEMPORAL_WORKFLOW_TASK_DURATION_WARN_SECONDS, '3');
});
