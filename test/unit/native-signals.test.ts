/**
 * Signals do not corrupt a process that trains on the native backend. TensorFlow 2.12.1's oneDNN kernels
 * corrupt the heap when a signal handler runs on a thread executing them: before infra/native.mjs built
 * the binding with signals blocked in its entry points, this child aborted within a second ("corrupted
 * size vs. prev_size while consolidating") under a stream of SIGUSR2, and a worker died the same way on
 * the SIGCHLD of a child process it had spawned. Here the child trains graph and eager steps for a few
 * seconds under ~1000 SIGUSR2 a second and a child process of its own every 5 ms, and finishes.
 *
 * Runs only where `npm run setup:native` has built the addon (test/support/backends.ts says when a
 * missing build fails instead).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { cliCommand } from '../../cli/connect.js';
import { nativeTestGuard } from '../support/backends.js';

const CHILD = fileURLToPath(new URL('../support/train-under-signals.ts', import.meta.url));
const SECONDS = 4;
const native = nativeTestGuard('native-signals.test');

test('training on the native backend survives signals and child processes', { skip: native.skip, timeout: 120_000 }, async () => {
  native.assertBuilt();
  const [node, imp, loader] = cliCommand([]);
  const child = spawn(node!, [imp!, loader!, CHILD, String(SECONDS)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let sent = 0;
  let pelt: NodeJS.Timeout | undefined;
  let reported = false;
  child.stdout.on('data', (d) => {
    out += d;
    // The report: stop signalling, then let it exit.
    if (!reported && out.includes('\n{')) {
      reported = true;
      clearInterval(pelt);
      child.stdin.end();
    }
  });
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const ready = setInterval(() => {
    if (!out.includes('ready\n')) return;
    clearInterval(ready);
    if (!reported) pelt = setInterval(() => {
      if (child.exitCode === null && child.signalCode === null && child.kill('SIGUSR2')) sent++;
    }, 1);
  }, 20);
  const { code, signal } = await exited;
  clearInterval(ready);
  clearInterval(pelt);
  assert.equal(signal, null, `expected the child to finish, found it killed by ${signal} after ${sent} signals:\n${err.slice(-2000)}`);
  assert.equal(code, 0, `expected exit 0, found ${code} after ${sent} signals:\n${err.slice(-2000)}`);
  const report = JSON.parse(out.trim().split('\n').at(-1)!) as { signals: number; children: number; epochs: number; engines: string[] };
  assert.deepEqual(report.engines, ['eager', 'graph']);
  assert.ok(report.epochs >= 4, `expected several epochs, found ${report.epochs}`);
  // Enough signals reached the handler while it trained for the old binding to have crashed many times over.
  assert.ok(report.signals >= 500, `expected >= 500 signals handled, found ${report.signals} (${sent} sent)`);
  assert.ok(report.children >= 100, `expected >= 100 children to have exited, found ${report.children}`);
});
