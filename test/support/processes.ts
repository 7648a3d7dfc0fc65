/**
 * Runs paramtrail's own commands as separate processes, as a user or a cluster would: the CLI, and
 * workers that a test can SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cliCommand, workerCommand } from '../../cli/connect.js';
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
