#!/usr/bin/env node
/**
 * Installs the optional PyTorch peer of `npm run bench:train`: a Python venv at .tools/torch/venv with a
 * pinned torch from PyPI. Explicit and idempotent: run by `npm run setup:bench`, never by the default
 * setup or CI, because PyPI's Linux torch wheel is the CUDA build: with the nvidia-* libraries it
 * requires even to import, it takes about 5.3 GB installed (PyTorch's CPU-only wheels live on its own
 * package index, which a PyPI mirror does not serve). On a CPU it runs on the CPU like any other build.
 * Plain Node, no dependencies.
 *
 *   node infra/bench.mjs            install what is missing
 *   node infra/bench.mjs --check    report only; exit 1 when the peer is not installed
 *
 * Needs a python3 for which the pinned torch has wheels (3.10-3.14); PARAMTRAIL_TORCH_PYTHON picks
 * another interpreter.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT, SetupError, pipInstall, venvPython } from './install.mjs';

// Pinned: the peer's figures are only comparable between runs of one version.
const TORCH = '2.15.0';

const VENV = join(ROOT, '.tools', 'torch', 'venv');
const PYTHON = venvPython(VENV);

const args = process.argv.slice(2);
for (const a of args) {
  if (a !== '--check') {
    console.error(`setup:bench: unknown option ${a}; expected --check`);
    process.exit(2);
  }
}
const CHECK = args.includes('--check');

function say(state, detail) {
  console.log(`setup:bench: torch ${state.padEnd(9)} ${detail}`);
}

/** The torch version the venv imports, or undefined when it has none (or a broken one). */
function installedTorch() {
  if (!existsSync(PYTHON)) return undefined;
  const r = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function main() {
  const found = installedTorch();
  // torch reports a local version label for its build, e.g. 2.15.0+cu132.
  if (found && found.split('+')[0] === TORCH) {
    say('ok', `${found} in ${relative(ROOT, VENV)}`);
    return;
  }
  if (CHECK) throw new SetupError(`expected torch ${TORCH} in ${VENV}, found ${found ?? 'none'} (run \`npm run setup:bench\`)`);
  const python = process.env.PARAMTRAIL_TORCH_PYTHON ?? 'python3';
  say('install', `torch==${TORCH} into ${relative(ROOT, VENV)} (about 5.3 GB installed with its CUDA libraries)`);
  const t0 = performance.now();
  pipInstall(VENV, [`torch==${TORCH}`], { python });
  const now = installedTorch();
  if (!now) throw new SetupError(`pip installed torch==${TORCH} into ${VENV}, but \`import torch\` fails there`);
  say('installed', `${now} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}

try {
  main();
} catch (err) {
  if (!(err instanceof SetupError)) throw err;
  console.error(`setup:bench: ${err.message}`);
  process.exitCode = 1;
}
