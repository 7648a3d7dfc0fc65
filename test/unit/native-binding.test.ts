/**
 * The two changes infra/native.mjs makes to tfjs-node's binding (patchBinding there):
 * - Signals do not corrupt a process that trains on the native backend. TensorFlow 2.12.1's oneDNN
 *   kernels corrupt the heap when a signal handler runs on a thread executing them; with the binding as
 *   published, the child here aborts within a second ("corrupted double-linked list" and the like). It
 *   trains graph and eager steps under ~1000 SIGUSR2 a second and a child process of its own every 5 ms
 *   (each exit a SIGCHLD) until it has handled 500 signals and seen 100 children exit, and finishes.
 * - A tensor made from a JavaScript array holds a copy: writing to the array afterwards changes nothing
 *   TensorFlow computes with. As published, TensorFlow shares the array's memory and releases it through
 *   N-API from whichever thread drops the tensor last, a pool thread for batch-norm parameters.
 *
 * Runs only where `npm run setup:native` has built the addon (test/support/backends.ts says when a
 * missing build fails instead).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { cliCommand } from '../../cli/connect.js';
import { activateNativeBackend, nativeTestGuard } from '../support/backends.js';

const CHILD = fileURLToPath(new URL('../support/train-under-signals.ts', import.meta.url));
/** Enough signals and child exits during training for the published binding to have crashed many times over. */
const GOAL = { signals: 500, children: 100, epochs: 4 };
/** Only a bound: the child stops once it has reached GOAL, within seconds on an idle machine. */
const DEADLINE_SECONDS = 90;
const native = nativeTestGuard('native-binding.test');

test('training on the native backend survives signals and child processes', { skip: native.skip, timeout: 150_000 }, async () => {
  native.assertBuilt();
  const [node, imp, loader] = cliCommand([]);
  const child = spawn(node!, [imp!, loader!, CHILD, String(DEADLINE_SECONDS), JSON.stringify(GOAL)], { stdio: ['pipe', 'pipe', 'pipe'] });
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
  // It reached its goal (enough signals handled while it trained for the old binding to have crashed
  // many times over) before the deadline.
  assert.ok(report.epochs >= GOAL.epochs, `expected ${GOAL.epochs} epochs within ${DEADLINE_SECONDS} s, found ${report.epochs}`);
  assert.ok(report.signals >= GOAL.signals, `expected ${GOAL.signals} signals handled within ${DEADLINE_SECONDS} s, found ${report.signals} (${sent} sent)`);
  assert.ok(report.children >= GOAL.children, `expected ${GOAL.children} children to have exited within ${DEADLINE_SECONDS} s, found ${report.children}`);
});

test('a tensor made from a JavaScript array keeps its values when the array changes', { skip: native.skip }, async () => {
  native.assertBuilt();
  await activateNativeBackend();
  // TensorFlow shares memory only at a 64-byte-aligned address (else it copies): of views at the 16
  // offsets 0, 4, ..., 60 bytes into one buffer, exactly one starts at such an address.
  const buffer = new ArrayBuffer(4096);
  new Float32Array(buffer).forEach((_, i, a) => (a[i] = i % 97));
  const views = Array.from({ length: 16 }, (_, i) => new Float32Array(buffer, i * 4, 256));
  const expected = views.map((v) => v.reduce((s, x) => s + x, 0));
  const tensors = views.map((v) => tf.tensor1d(v));
  // The first op hands each array to TensorFlow.
  assert.deepEqual(tensors.map((t) => tf.sum(t).dataSync()[0]), expected);
  new Float32Array(buffer).fill(-7);
  const after = tensors.map((t) => tf.sum(t).dataSync()[0]);
  assert.deepEqual(after, expected, 'expected TensorFlow to compute with its own copies, found one reading the array written after');
  tf.dispose(tensors);
});
