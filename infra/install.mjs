/**
 * The steps the setup scripts share (infra/setup.mjs, infra/native.mjs, infra/bench.mjs): running a
 * command with its output's tail in the error, and pip-installing into a venv that is created on first
 * use. Plain Node, no dependencies, imported by those scripts as they run under `node` directly.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project's root folder, where every command runs unless told otherwise. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** A failure the scripts report as one line and exit 1 on; any other error is a bug and shows its stack. */
export class SetupError extends Error {}

/**
 * Runs a command; with `capture`, returns its stdout trimmed, else streams it (or, with `quiet`, keeps it
 * back). On failure throws a SetupError whose message ends with the output's last 20 lines and whose
 * `output` is all of it.
 */
export function run(command, argv, { capture = false, quiet = false, cwd = ROOT, env = process.env, extraEnv = {} } = {}) {
  const shown = quiet ? 'pipe' : 'inherit';
  const result = spawnSync(command, argv, {
    cwd,
    env: { ...env, ...extraEnv },
    encoding: 'utf8',
    stdio: capture ? ['ignore', 'pipe', 'pipe'] : ['ignore', shown, shown],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw new SetupError(`could not run ${command}: ${result.error.message}`);
  if (result.status !== 0) {
    const full = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
    const tail = full.split('\n').slice(-20).join('\n');
    const err = new SetupError(`${command} ${argv.join(' ')} exited with ${result.status ?? result.signal}${tail ? `:\n${tail}` : ''}`);
    err.output = full;
    throw err;
  }
  return `${result.stdout ?? ''}`.trim();
}

/** The interpreter inside the venv at `venv`. */
export function venvPython(venv) {
  return join(venv, 'bin', 'python');
}

/**
 * `pip install` of `requirements` into the venv at `venv`, first creating it with `python` (a command or
 * path; needed only then) when it does not exist. `options` are run()'s.
 */
export function pipInstall(venv, requirements, { python, ...options } = {}) {
  if (!existsSync(venvPython(venv))) {
    if (!python) throw new SetupError(`expected python3 on PATH to create ${venv}, found none`);
    run(python, ['-m', 'venv', venv], options);
  }
  run(venvPython(venv), ['-m', 'pip', 'install', '--disable-pip-version-check', '--quiet', ...requirements], options);
}
