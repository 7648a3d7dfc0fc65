/** Worker processes for the benchmarks that run experiments through paramtrail. */
import { spawn, type ChildProcess } from 'node:child_process';
import { workerCommand } from '../cli/connect.js';
import { PROJECT_ROOT } from '../infra/tools.js';

export interface Worker {
  child: ChildProcess;
  output: () => string;
}

/** A worker process serving every queue; resolves once it has said it is polling. */
export async function startWorker(env: NodeJS.ProcessEnv): Promise<Worker> {
  const [cmd, ...args] = workerCommand(['--task-queue', 'all']);
  const child = spawn(cmd!, args, { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const check = setInterval(() => {
      if (/paramtrail worker \S+: /.test(out)) {
        clearInterval(check);
        resolve();
      } else if (child.exitCode !== null) {
        clearInterval(check);
        reject(new Error(`expected the worker to start polling, found it exited (${child.exitCode}):\n${out}`));
      }
    }, 100);
  });
  return { child, output: () => out };
}

/** Stops the workers (SIGTERM) and waits until each has exited. */
export async function stopWorkers(workers: Worker[]): Promise<void> {
  for (const w of workers) {
    w.child.kill('SIGTERM');
    if (w.child.exitCode === null) await new Promise((r) => w.child.once('exit', r));
  }
}
