#!/usr/bin/env node
/**
 * Builds the native 'tensorflow' tensor backend (@tensorflow/tfjs-node's addon) against the TensorFlow C
 * library of a PyPI TensorFlow wheel, because tfjs-node's own install script downloads libtensorflow and
 * a prebuilt addon from storage.googleapis.com, which is not reachable from every machine (and upstream
 * reports that download failing). Explicit and idempotent: run by `npm run setup:native`, never by the
 * default setup, since the wheel and its dependencies take about 1.8 GB installed. Plain Node, no
 * dependencies.
 *
 *   node infra/native.mjs            build what is missing
 *   node infra/native.mjs --check    report only; exit 1 when the addon is not built
 *   node infra/native.mjs --gpu      the GPU wheel (tensorflow) and @tensorflow/tfjs-node-gpu instead
 *
 * Where things go:
 *   .tools/tensorflow/venv/    a Python venv with the wheel installed: its libtensorflow_cc.so.2 (which
 *                              exports the C and eager C APIs, TF_* and TFE_*), libtensorflow_framework.so.2
 *                              and include/ serve the addon; its tf.keras is the peer of bench/train.ts
 *   .tools/tfjs-node/node_modules/@tensorflow/tfjs-node(-gpu)/   the npm package without its install script,
 *                              deps/ pointing into the wheel, lib/napi-v8/tfjs_binding.node built by node-gyp
 *                              from its sources with two changes: signals blocked in its entry points,
 *                              and tensors made from JavaScript arrays copied (patchBinding says why)
 *   .tools/tfjs-node/node_modules/google-protobuf/   the one dependency of tfjs-node's backend code that
 *                              the project does not already have (@tensorflow/tfjs resolves to the
 *                              project's own copy, so there is one tfjs engine, not two)
 *   .tools/tfjs-node/native.json   what was built, read by ml/backends/native.ts
 *
 * Needs python3 3.8-3.11 (TensorFlow 2.12's wheels), a C++ compiler, make, and Node's headers
 * (<node prefix>/include/node, as Debian's nodejs package installs them).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT, SetupError, pipInstall, run } from './install.mjs';

// ---- Pinned versions. ----
// TensorFlow 2.12 is the oldest release with Python 3.11 wheels, the nearest to the 2.9.1 that tfjs-node
// 4.22.0 was built against; every TF_*/TFE_* function the binding calls is exported by its
// libtensorflow_cc.so.2 (checked below with the built addon, not assumed).
const TENSORFLOW = '2.12.1';
const TFJS_NODE = '4.22.0'; // must equal the project's @tensorflow/tfjs: the backend code uses its engine
const GOOGLE_PROTOBUF = '3.21.4'; // tfjs-node's dependency ^3.9.2, for its summary-writer protos
const NAPI_VERSION = '8'; // the highest N-API version tfjs-node's package.json lists

const TOOLS = join(ROOT, '.tools');
const VENV = join(TOOLS, 'tensorflow', 'venv');
const NATIVE = join(TOOLS, 'tfjs-node');
const STAMP = join(NATIVE, 'native.json');

const args = new Set(process.argv.slice(2));
for (const a of args) {
  if (!['--check', '--gpu'].includes(a)) {
    console.error(`setup:native: unknown option ${a}; expected --check and/or --gpu`);
    process.exit(2);
  }
}
const CHECK = args.has('--check');
const GPU = args.has('--gpu');
const WHEEL = GPU ? 'tensorflow' : 'tensorflow-cpu';
const NPM_PACKAGE = GPU ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
const PACKAGE_DIR = join(NATIVE, 'node_modules', ...NPM_PACKAGE.split('/'));
const BINDING = join(PACKAGE_DIR, 'lib', `napi-v${NAPI_VERSION}`, 'tfjs_binding.node');

function say(item, state, detail) {
  console.log(`setup:native: ${item.padEnd(10)} ${state.padEnd(9)} ${detail}`);
}

function readStamp() {
  try {
    return JSON.parse(readFileSync(STAMP, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The installed wheel's tensorflow/ folder, or undefined when the venv lacks the pinned version. */
function wheelDir() {
  const lib = join(VENV, 'lib');
  if (!existsSync(lib)) return undefined;
  for (const py of readdirSync(lib)) {
    const site = join(lib, py, 'site-packages');
    const distInfo = join(site, `${WHEEL.replace('-', '_')}-${TENSORFLOW}.dist-info`);
    const dir = join(site, 'tensorflow');
    if (existsSync(distInfo) && existsSync(join(dir, 'libtensorflow_cc.so.2'))) return dir;
  }
  return undefined;
}

function installWheel() {
  const found = wheelDir();
  if (found) {
    say('wheel', 'ok', `${WHEEL} ${TENSORFLOW} in ${relative(ROOT, VENV)}`);
    return found;
  }
  if (CHECK) throw new SetupError(`${WHEEL} ${TENSORFLOW} is not installed in ${VENV}`);
  const python = process.env.PARAMTRAIL_TF_PYTHON ?? 'python3';
  const version = run(python, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { capture: true }).trim();
  const [major, minor] = version.split('.').map(Number);
  if (major !== 3 || minor < 8 || minor > 11) {
    throw new SetupError(`${WHEEL} ${TENSORFLOW} has wheels for Python 3.8-3.11; ${python} is ${version} (set PARAMTRAIL_TF_PYTHON to another interpreter)`);
  }
  say('wheel', 'install', `${WHEEL}==${TENSORFLOW} into ${relative(ROOT, VENV)} (about 1.8 GB installed with its dependencies)`);
  pipInstall(VENV, [`${WHEEL}==${TENSORFLOW}`], { python });
  const dir = wheelDir();
  if (!dir) throw new SetupError(`pip installed ${WHEEL}==${TENSORFLOW} but ${VENV} has no tensorflow/libtensorflow_cc.so.2`);
  return dir;
}

/** Extracts an npm package's tarball (fetched by `npm pack`, no install scripts run) into `dest`. */
function unpackNpm(spec, dest) {
  const tmp = join(NATIVE, 'tarballs');
  mkdirSync(tmp, { recursive: true });
  const name = run('npm', ['pack', spec, '--silent', '--pack-destination', tmp], { capture: true }).trim().split('\n').pop();
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  run('tar', ['-xzf', join(tmp, name), '-C', dest, '--strip-components=1']);
}

/**
 * Makes every call into the binding run with asynchronous signals blocked on the calling thread, so
 * TensorFlow's threads, which start inside those calls, inherit the mask. TensorFlow 2.12.1's oneDNN
 * kernels corrupt the heap when a signal handler runs on a thread that is executing them (glibc aborts
 * with "corrupted size vs. prev_size" and the like): a worker that spawns a child (SIGCHLD when it
 * exits), is profiled (SIGPROF) or gets SIGINT would crash mid-training. Blocked, such a signal waits on
 * the main thread until the call returns, or goes to a thread that is not running TensorFlow (Node's,
 * the Temporal SDK's). Faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) and SIGABRT stay
 * unblocked. Costs two rt_sigprocmask calls per op. test/unit/native-binding.test.ts trains under a
 * stream of signals.
 */
const SIGNAL_GUARD = `
#include <signal.h>
namespace tfnodejs {
// Added by paramtrail's infra/native.mjs: see patchBinding() there.
class SignalsBlocked {
 public:
  SignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT}) sigdelset(&all, sig);
    pthread_sigmask(SIG_BLOCK, &all, &saved_);
  }
  ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  SignalsBlocked(const SignalsBlocked &) = delete;
  SignalsBlocked &operator=(const SignalsBlocked &) = delete;
 private:
  sigset_t saved_;
};
}  // namespace tfnodejs
`;
const BINDING_PATCH = 'signals-blocked,tensors-copied';

/**
 * Makes createTensor copy a typed array into memory TensorFlow owns. tfjs-node hands the array's own
 * memory to TF_NewTensor (which shares it when it is 64-byte aligned, else copies) with a deallocator
 * that deletes a napi reference to the array; TensorFlow runs that deallocator on whichever thread drops
 * the tensor's last reference, and N-API may only be called on the JavaScript thread. Training a ResNet
 * with batch norm, that was one of TensorFlow's pool threads at least 100 times in 10 runs (counted with
 * the deallocator instrumented). Sharing also let TensorFlow see later writes to the array. The copy is
 * one memcpy per tensor made from JavaScript data.
 */
const ZERO_COPY = `  // Sharing V8 memory with the underlying TensorFlow tensor requires adding an
  // additional refcount. When the Tensor is deleted, the refcount will be
  // reduced in the callback helper.
  NapiAutoRef *auto_ref = new NapiAutoRef();
  nstatus = auto_ref->Init(env, array_value);
  if (nstatus != napi_ok) {
    delete auto_ref;
  }
  ENSURE_NAPI_OK_RETVAL(env, nstatus, nullptr);
`;
const ZERO_COPY_TENSOR = `  TF_AutoTensor tensor(TF_NewTensor(dtype, shape, shape_length, array_data,
                                    byte_size, DeallocTensor, auto_ref));
`;
const COPIED_TENSOR = `  // Added by paramtrail's infra/native.mjs: TensorFlow gets its own copy (see patchBinding() there).
  TF_AutoTensor tensor(TF_AllocateTensor(dtype, shape, shape_length, byte_size));
  memcpy(TF_TensorData(tensor.tensor), array_data, byte_size);
`;
const ZERO_COPY_FAILURE = `  if (TF_GetCode(tf_status.status) != TF_OK) {
    delete auto_ref;
    TFE_DeleteTensorHandle(tfe_tensor_handle);
  }
`;

function replaceOnce(file, src, from, to) {
  const at = src.indexOf(from);
  if (at < 0 || src.indexOf(from, at + 1) >= 0) throw new SetupError(`expected ${file} to hold exactly one copy of:\n${from}found ${at < 0 ? 'none' : 'several'}: the binding changed, review patchBinding()`);
  return src.slice(0, at) + to + src.slice(at + from.length);
}

/** Makes both changes to tfjs-node's sources in `packageDir`; returns how many entry points block signals. */
function patchBinding(packageDir) {
  const file = join(packageDir, 'binding', 'tfjs_binding.cc');
  let src = readFileSync(file, 'utf8');
  const include = '#include "utils.h"\n';
  if (!src.includes(include)) throw new SetupError(`expected ${file} to include "utils.h", found no such line: the binding changed, review patchBinding()`);
  src = src.replace(include, include + SIGNAL_GUARD);
  // Every function JavaScript calls, and the module's init (which creates TensorFlow's eager context).
  const entry = /^(static napi_value \w+\(napi_env env, (?:napi_callback_info info|napi_value exports)\) \{)$/gm;
  const found = src.match(entry) ?? [];
  const exported = [...src.matchAll(/\{"\w+", nullptr, (\w+),/g)].map((m) => m[1]).filter((fn) => fn !== 'nullptr');
  for (const fn of [...exported, 'InitTFNodeJSBinding']) {
    if (!found.some((line) => line.includes(` ${fn}(`))) throw new SetupError(`expected ${file} to define ${fn} as a napi entry point, found no such line: review patchBinding()`);
  }
  src = src.replace(entry, '$1\n  SignalsBlocked signals_blocked;');
  writeFileSync(file, src);

  const backendFile = join(packageDir, 'binding', 'tfjs_backend.cc');
  let backend = readFileSync(backendFile, 'utf8');
  backend = replaceOnce(backendFile, backend, ZERO_COPY, '');
  backend = replaceOnce(backendFile, backend, ZERO_COPY_TENSOR, COPIED_TENSOR);
  backend = replaceOnce(backendFile, backend, ZERO_COPY_FAILURE, ZERO_COPY_FAILURE.replace('    delete auto_ref;\n', ''));
  writeFileSync(backendFile, backend);
  return found.length;
}

/** Where Node's own headers are (node-gyp would otherwise download them from nodejs.org). */
function nodeDir() {
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  throw new SetupError(`expected Node's headers at ${join(prefix, 'include', 'node', 'node_api.h')}, found none (Debian: apt-get install libnode-dev)`);
}

function nodeGyp() {
  const bundled = resolve(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(bundled)) return bundled;
  throw new SetupError(`expected npm's bundled node-gyp at ${bundled}, found none`);
}

/** Symlinks `link` to `target` by a relative path, so the project folder can move. */
function linkTo(target, link) {
  rmSync(link, { force: true });
  symlinkSync(relative(dirname(link), target), link);
}

function buildAddon(tfDir) {
  const stamp = readStamp();
  const wanted = { tensorflow: TENSORFLOW, wheel: WHEEL, package: NPM_PACKAGE, version: TFJS_NODE, napi: NAPI_VERSION, patch: BINDING_PATCH };
  const same = stamp && Object.entries(wanted).every(([k, v]) => stamp[k] === v);
  if (same && existsSync(BINDING)) {
    say('addon', 'ok', `${relative(ROOT, BINDING)} (TensorFlow C library ${stamp.tfVersion})`);
    return;
  }
  if (CHECK) throw new SetupError(`the addon is not built for ${WHEEL} ${TENSORFLOW}: expected ${BINDING}`);
  const t0 = performance.now();
  unpackNpm(`${NPM_PACKAGE}@${TFJS_NODE}`, PACKAGE_DIR);
  unpackNpm(`google-protobuf@${GOOGLE_PROTOBUF}`, join(NATIVE, 'node_modules', 'google-protobuf'));
  const guarded = patchBinding(PACKAGE_DIR);

  // binding.gyp links -ltensorflow -ltensorflow_framework from deps/lib with rpath $ORIGIN/../../deps/lib.
  // The wheel's library is libtensorflow_cc.so.2 (soname too), so the addon records that name.
  const lib = join(PACKAGE_DIR, 'deps', 'lib');
  mkdirSync(lib, { recursive: true });
  linkTo(join(tfDir, 'include'), join(PACKAGE_DIR, 'deps', 'include'));
  for (const [name, file] of [
    ['libtensorflow.so', 'libtensorflow_cc.so.2'],
    ['libtensorflow_cc.so.2', 'libtensorflow_cc.so.2'],
    ['libtensorflow_framework.so', 'libtensorflow_framework.so.2'],
    ['libtensorflow_framework.so.2', 'libtensorflow_framework.so.2'],
  ]) {
    linkTo(join(tfDir, file), join(lib, name));
  }
  say('addon', 'build', `node-gyp for ${NPM_PACKAGE} ${TFJS_NODE} against ${WHEEL} ${TENSORFLOW}, signals blocked in its ${guarded} entry points`);
  run(process.execPath, [
    nodeGyp(), 'rebuild', `--nodedir=${nodeDir()}`, '-j', '2',
    '--module_name=tfjs_binding', `--module_path=${dirname(BINDING)}`, `--napi_build_version=${NAPI_VERSION}`,
  ], { cwd: PACKAGE_DIR, capture: true }); // its output is shown only when it fails
  rmSync(join(PACKAGE_DIR, 'build'), { recursive: true, force: true });

  // Loading it resolves every TF_*/TFE_* symbol the binding uses (a missing one fails here, by name).
  const tfVersion = run(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(BINDING)}).TF_Version)`], { capture: true }).trim();
  writeFileSync(STAMP, `${JSON.stringify({ ...wanted, tfVersion, binding: relative(NATIVE, BINDING), gpu: GPU }, null, 2)}\n`);
  say('addon', 'built', `${relative(ROOT, BINDING)}, TensorFlow C library ${tfVersion} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}

function main() {
  const tfDir = installWheel();
  buildAddon(tfDir);
}

try {
  main();
} catch (err) {
  if (!(err instanceof SetupError)) throw err;
  console.error(`setup:native: ${err.message}`);
  process.exitCode = 1;
}
