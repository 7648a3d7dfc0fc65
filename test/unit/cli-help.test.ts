/**
 * Every command and subcommand of `paramtrail` answers `--help` (and `-h`) with its usage on stdout and
 * exit 0, before it connects to anything: the server address here leads nowhere, and `dev up --help`
 * must not start the embedded stack (its state folder is a temporary one, checked empty afterwards).
 * A reader that goes away before the output is written (`| head`) ends the command quietly. A wrong
 * flag or setting of a worker exits 2 with a message naming it, also before it connects; a server it
 * cannot reach, 4. The command runs from a checkout under a path with a space, and through a symlink.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cp, readdir, symlink, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { mapLimit } from '../../artifacts/concurrency.js';
import { PROJECT_ROOT } from '../../infra/tools.js';
import { tempDir } from '../support/fixtures.js';

const COMMANDS = [
  'run', 'status', 'report', 'verify', 'lineage', 'cancel', 'ls', 'worker',
  'schedule', 'schedule create', 'schedule list', 'schedule describe', 'schedule pause', 'schedule unpause', 'schedule trigger', 'schedule delete',
  'dev', 'dev up', 'dev down', 'dev status',
];

test('every command and subcommand prints its usage for --help and -h, and exits 0 without starting anything', async () => {
  const stateDir = await tempDir();
  const env = { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:9', PARAMTRAIL_STATE_DIR: stateDir };
  // -h goes the same way as --help: tried on one command of each kind.
  const cases = [...COMMANDS.map((c) => [...c.split(' '), '--help']), ...['run', 'worker', 'schedule create', 'dev up'].map((c) => [...c.split(' '), '-h'])];
  const results = await mapLimit(cases, 4, async (args) => {
    try {
      const { stdout } = await promisify(execFile)(join(PROJECT_ROOT, 'bin', 'paramtrail'), args, { env, timeout: 60_000 });
      return { args, code: 0, stdout, stderr: '' };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { args, code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  });
  for (const r of results) {
    const command = r.args[0]!;
    assert.equal(r.code, 0, `${r.args.join(' ')}: expected exit 0, found ${r.code}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^usage: paramtrail ${command}\\b`), `${r.args.join(' ')}: ${r.stdout.slice(0, 200)}`);
    assert.match(r.stdout, /\n\n/, `${r.args.join(' ')}: expected more than the usage line`);
  }
  assert.deepEqual(await readdir(stateDir), [], 'nothing was started or written');
});

test('a reader that has gone away ends the command quietly, with no EPIPE stack trace', async () => {
  const child = spawn(join(PROJECT_ROOT, 'bin', 'paramtrail'), ['schedule', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Gone before the CLI has loaded, let alone written its help.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /EPIPE/);
});

test('a wrong flag or setting (of a worker, the store, TLS, the embedded stack) exits 2 naming it before connecting, and 4 naming a server it cannot reach; no stack trace', async () => {
  const env = { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:9', PARAMTRAIL_STATE_DIR: await tempDir() };
  const quickstart = join(PROJECT_ROOT, 'experiments', 'quickstart.yaml');
  const damaged = await tempDir();
  await writeFile(join(damaged, 'dev.json'), '{"version": 1, "temporal"');
  const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['worker', '--task-queue', 'train,bogus'], env, /^worker: --task-queue: expected all or some of workflows, train, analysis \(comma-separated\), found "bogus"\n\nusage: paramtrail worker/],
    [['worker', '--bogus'], env, /^worker: Unknown option '--bogus'.*\n\nusage: paramtrail worker/s],
    [['worker'], { ...env, PARAMTRAIL_TRAIN_SLOTS: 'two' }, /^invalid worker environment:\nPARAMTRAIL_TRAIN_SLOTS: /],
    [['status', 'some-id'], { ...env, PARAMTRAIL_BACKEND: 'gpu' }, /^invalid worker environment:\nPARAMTRAIL_BACKEND: /],
    [['worker'], { ...env, PARAMTRAIL_DECODED_CACHE_GB: '-1' }, /^invalid worker environment:\nPARAMTRAIL_DECODED_CACHE_GB: /],
    // Settings of the store and of TLS, read by every command that opens one or connects.
    [['run', quickstart, '--dry-run'], { ...env, PARAMTRAIL_STORE: 'ftp://host/x' }, /^store URL ftp:\/\/host\/x: expected file:\/\/ or s3:\/\/, found ftp:\/\/\n$/],
    [['run', quickstart, '--dry-run'], { ...env, PARAMTRAIL_STORE: 's3://b', PARAMTRAIL_S3_CONDITIONAL_WRITES: 'maybe' }, /^PARAMTRAIL_S3_CONDITIONAL_WRITES: expected true or false, found "maybe"\n$/],
    [['run', quickstart, '--dry-run'], { ...env, PARAMTRAIL_STORE: 's3://b', PARAMTRAIL_S3_ENDPOINT: 'http://u:SuperSecret@minio host:9000' }, /^PARAMTRAIL_S3_ENDPOINT: expected a URL such as http:\/\/host:9000, found one that does not parse\n$/],
    [['status', 'some-id'], { ...env, TEMPORAL_TLS_CERT: '/nonexistent/cert.pem', TEMPORAL_TLS_KEY: '/nonexistent/key.pem' }, /^invalid worker environment: TEMPORAL_TLS_CERT: cannot read \/nonexistent\/cert\.pem \(ENOENT\)\n$/],
    // A CA alone is TLS without a client certificate: the file is read, not ignored.
    [['status', 'some-id'], { ...env, TEMPORAL_TLS_CA: '/nonexistent/ca.pem' }, /^invalid worker environment: TEMPORAL_TLS_CA: cannot read \/nonexistent\/ca\.pem \(ENOENT\)\n$/],
    [['ls'], { ...process.env, TEMPORAL_ADDRESS: undefined, PARAMTRAIL_STORE: undefined, PARAMTRAIL_STATE_DIR: damaged }, /^expected .*dev\.json to hold JSON, found unreadable content .*; remove it and run "paramtrail dev up" again\n$/],
  ];
  const unreachable: [string[], NodeJS.ProcessEnv, RegExp] = [['worker'], env, /^cannot reach the Temporal server at 127\.0\.0\.1:9 \(TEMPORAL_ADDRESS\): .*; check that it runs/];
  for (const [args, caseEnv, message] of [...cases, unreachable]) {
    const r = await promisify(execFile)(join(PROJECT_ROOT, 'bin', 'paramtrail'), args, { env: caseEnv, timeout: 60_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );
    assert.equal(r.code, message === unreachable[2] ? 4 : 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.doesNotMatch(r.stderr, /^\s+at /m, `${args.join(' ')}: no stack trace`);
    assert.doesNotMatch(r.stderr, /SuperSecret/, `${args.join(' ')}: no password`);
  }
});

test('a checkout under a path with a space, or the command reached through a symlink, runs the command', async () => {
  const copy = join(await tempDir(), 'my checkout');
  const skipped = new Set(['node_modules', '.tools', '.paramtrail', '.git', 'docs']);
  await cp(PROJECT_ROOT, copy, { recursive: true, filter: (src) => !skipped.has(relative(PROJECT_ROOT, src).split(sep)[0]!) });
  await symlink(join(PROJECT_ROOT, 'node_modules'), join(copy, 'node_modules'));
  const linked = join(await tempDir(), 'linked');
  await symlink(PROJECT_ROOT, linked);
  const tsx = join(PROJECT_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs');
  const starts: Array<[string, string[]]> = [
    [join(copy, 'bin', 'paramtrail'), ['frobnicate']],
    [process.execPath, ['--import', tsx, join(linked, 'cli', 'main.ts'), 'frobnicate']],
  ];
  for (const [file, args] of starts) {
    const r = await promisify(execFile)(file, args, { timeout: 60_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );
    assert.equal(r.code, 2, `${file} ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^unknown command "frobnicate"/);
  }
});
