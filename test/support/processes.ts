/**
 * Runs paramtrail's own commands as separate processes, as a user or a cluster would: the CLI, and
 * workers that a test can SIGKILL.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { cliCommand, workerCommand } from '../../cli/connect.js';
import { isAlive } from '../../infra/temporal.js';
import { PROJECT_ROOT } from '../../infra/tools.js';

export interface Spawned {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function collect(child: ChildProcess): Spawned {
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

export function spawnWorker(env: NodeJS.ProcessEnv): Spawned {
  const [cmd, ...args] = workerCommand();
  return collect(spawn(cmd, args, { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] }));
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export async function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  const [node, ...argv] = cliCommand(args);
  const child = spawn(node!, argv, { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stdout, stderr };
}

/** SIGKILLs the process group `pid` leads (a detached server or worker) and waits until `pid` is gone. */
export async function killGroup(pid: number): Promise<void> {
  process.kill(-pid, 'SIGKILL');
  for (let i = 0; i < 200 && isAlive(pid); i++) await sleep(50);
  assert.equal(isAlive(pid), false, `process ${pid} survived SIGKILL`);
}
