/**
 * The embedded stack: `devUp` starts a detached Temporal dev server and a worker, a second `devUp`
 * reuses them, `devDown` stops every process and keeps the data. Real processes, real server. The lock
 * that serialises them admits one process at a time and is taken from a process that died. A stack
 * recorded in an earlier boot is not signalled; Ctrl-C while one starts leaves nothing running; `run`
 * reaches the S3 server started in place of a dead one.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { devDown, devStatus, devUp, embeddedStoreEnv } from '../../infra/dev.js';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { MANIFEST_FORMAT_VERSION, recordManifest } from '../../artifacts/manifest.js';
import { openStore } from '../../artifacts/open.js';
import { putContentAddressed } from '../../artifacts/store.js';
import { cliCommand, workerSourcesStamp } from '../../cli/connect.js';
import { ensureSearchAttributes, freePort, isAlive, waitForTemporal } from '../../infra/temporal.js';
import { PROJECT_ROOT, resolveTool } from '../../infra/tools.js';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/search.js';
import { FASHION_MNIST_SOURCES } from '../support/fixtures.js';
import { killGroup } from '../support/processes.js';

// Stands in for the worker: a process that runs until it is signalled, and records its environment.
const workerCommand = (envFile: string) => [
  process.execPath,
  '-e',
  `require('fs').writeFileSync(${JSON.stringify(envFile)}, JSON.stringify(process.env)); setInterval(() => {}, 1000)`,
];

/** Runs `body` with a fresh state folder and the file the stand-in worker writes; stops the stack and removes the folder after. */
async function withStateDir(body: (stateDir: string, envFile: string) => Promise<void>): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), 'paramtrail-dev-'));
  try {
    await body(stateDir, join(stateDir, 'worker-env.json'));
  } finally {
    await devDown({ stateDir }).catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

test('dev up starts Temporal and a worker, is idempotent, and dev down stops them', async () => {
  await withStateDir(async (stateDir, envFile) => {
    const before = await devStatus({ stateDir });
    assert.equal(before.running, false);
    assert.equal(before.temporal, undefined);

    // A free port rather than 7233, which a developer's own stack may hold.
    const port = await freePort();
    const up = await devUp({ stateDir, env: process.env, port, workerCommand: workerCommand(envFile) });
    assert.equal(up.running, true);
    assert.equal(up.temporal?.address, `127.0.0.1:${port}`);
    assert.equal(up.temporal?.alive, true);
    assert.equal(up.worker?.alive, true);
    assert.equal(up.s3, undefined);
    assert.equal(up.store, `file://${join(stateDir, 'store')}`);
    assert.ok(existsSync(join(stateDir, 'dev.json')));
    assert.ok(existsSync(join(stateDir, 'temporal.db')), 'Temporal persists to SQLite under the state folder');

    const connection = await Connection.connect({ address: up.temporal!.address });
    try {
      const ns = await connection.workflowService.describeNamespace({ namespace: 'default' });
      assert.equal(ns.namespaceInfo?.name, 'default');
    } finally {
      await connection.close();
    }

    const workerEnv = JSON.parse(readFileSync(envFile, 'utf8')) as Record<string, string>;
    assert.equal(workerEnv.TEMPORAL_ADDRESS, up.temporal!.address);
    assert.equal(workerEnv.PARAMTRAIL_STORE, up.store);

    const status = await devStatus({ stateDir });
    assert.deepEqual(status, up);

    const again = await devUp({ stateDir, env: process.env, workerCommand: workerCommand(envFile) });
    assert.equal(again.temporal?.pid, up.temporal!.pid, 'same Temporal process');
    assert.equal(again.worker?.pid, up.worker!.pid, 'same worker process');

    await devDown({ stateDir });
    assert.equal(isAlive(up.temporal!.pid), false, 'Temporal stopped');
    assert.equal(isAlive(up.worker!.pid), false, 'worker stopped');
    assert.equal(existsSync(join(stateDir, 'dev.json')), false);
    assert.ok(statSync(join(stateDir, 'temporal.db')).size > 0, 'data stays');
    const after = await devStatus({ stateDir });
    assert.equal(after.running, false);
  });
});

test('dev up --s3: the worker gets the S3 store, and the CLI with no store settings of its own reads it', async () => {
  await withStateDir(async (stateDir, envFile) => {
    const up = await devUp({ stateDir, env: process.env, s3: true, port: await freePort(), workerCommand: workerCommand(envFile) });
    assert.equal(up.running, true);
    assert.equal(up.store, 's3://paramtrail');
    assert.equal(up.s3?.alive, true);
    const workerEnv = JSON.parse(readFileSync(envFile, 'utf8')) as Record<string, string>;
    assert.equal(workerEnv.PARAMTRAIL_STORE, 's3://paramtrail');
    assert.equal(workerEnv.PARAMTRAIL_S3_ENDPOINT, up.s3!.endpoint);
    assert.equal(workerEnv.PARAMTRAIL_S3_CONDITIONAL_WRITES, 'true');
    assert.ok(workerEnv.AWS_ACCESS_KEY_ID && workerEnv.AWS_SECRET_ACCESS_KEY);

    // What the CLI adds to its environment is what the worker got.
    const storeEnv = embeddedStoreEnv(stateDir, process.env);
    for (const [name, value] of Object.entries(storeEnv)) assert.equal(value, workerEnv[name], name);
    const store = openStore(storeEnv.PARAMTRAIL_STORE!, storeEnv);
    const artifact = await putContentAddressed(store, 'tensors', new TextEncoder().encode('weights'), '.arrow');
    await recordManifest(store, {
      formatVersion: MANIFEST_FORMAT_VERSION,
      artifact,
      kind: 'snapshot',
      producer: { experimentId: 'dev-s3', runId: 'dev-s3/r0', workflowId: 'w', workflowRunId: 'r', activity: 'train', attempt: 1, worker: 'test' },
      inputs: [],
      attrs: {},
      createdAt: new Date().toISOString(),
    });

    // Only the state folder: no cluster, no store URL, no keys.
    const env: NodeJS.ProcessEnv = { ...process.env, PARAMTRAIL_STATE_DIR: stateDir };
    for (const name of ['TEMPORAL_ADDRESS', 'PARAMTRAIL_STORE', 'PARAMTRAIL_S3_ENDPOINT', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) delete env[name];
    const [cmd, ...args] = cliCommand(['lineage', artifact.key, '--json']);
    const cli = spawnSync(cmd!, args, { env, encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`"runId": "dev-s3/r0"`));
    assert.ok(!`${cli.stdout}${cli.stderr}`.includes(workerEnv.AWS_SECRET_ACCESS_KEY!), 'the secret is not printed');

    // A worker started for a dead one gets the same store, keys included.
    await killGroup(up.worker!.pid);
    rmSync(envFile);
    const restarted = await devUp({ stateDir, env: process.env, workerCommand: workerCommand(envFile) });
    assert.equal(restarted.s3?.pid, up.s3!.pid, 'the same S3 server');
    const restartedEnv = JSON.parse(readFileSync(envFile, 'utf8')) as Record<string, string>;
    for (const name of ['PARAMTRAIL_STORE', ...Object.keys(storeEnv)]) assert.equal(restartedEnv[name], workerEnv[name], name);

    await devDown({ stateDir });
    assert.equal(isAlive(up.s3!.pid), false, 'the S3 server stopped');
    assert.deepEqual(embeddedStoreEnv(stateDir, process.env), {}, 'no stack recorded: the folder store');
  });
});

test('run, after the embedded S3 server died, checks its id on the S3 server started in its place', async () => {
  await withStateDir(async (stateDir, envFile) => {
    const up = await devUp({ stateDir, env: process.env, s3: true, port: await freePort(), workerCommand: workerCommand(envFile) });
    await killGroup(up.s3!.pid);
    // JSON is YAML: a file of one tiny run.
    const file = join(stateDir, 'tiny.yaml');
    writeFileSync(file, JSON.stringify({
      name: 'after-restart',
      models: [{ name: 'mlp', args: { hidden: [8] } }],
      datasets: [{ name: 'fashion-mnist', subset: { train: 64, test: 32 }, sources: FASHION_MNIST_SOURCES }],
      training: { epochs: 1, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.05 } },
    }));
    const env: NodeJS.ProcessEnv = { ...process.env, PARAMTRAIL_STATE_DIR: stateDir };
    for (const name of ['TEMPORAL_ADDRESS', 'PARAMTRAIL_STORE', 'PARAMTRAIL_S3_ENDPOINT', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) delete env[name];
    // --id makes run look in the store before it starts anything.
    // Not spawnSync: this process must go on reaping the S3 server it started and that was killed.
    const [cmd, ...args] = cliCommand(['run', file, '--detach', '--json', '--id', 'after-restart-1']);
    const cli = await promisify(execFile)(cmd!, args, { env, encoding: 'utf8', timeout: 120_000 }).then(
      (r) => ({ code: 0, stderr: r.stderr }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );
    assert.equal(cli.code, 0, cli.stderr);
    const now = await devStatus({ stateDir });
    assert.equal(now.s3?.alive, true);
    assert.notEqual(now.s3?.endpoint, up.s3!.endpoint, 'the stack started again, its S3 server on a new port');
  });
});

test('dev up starts a new worker for one that died, and leaves the running server alone', async () => {
  await withStateDir(async (stateDir, envFile) => {
    const up = await devUp({ stateDir, env: process.env, port: await freePort(), workerCommand: workerCommand(envFile) });
    const firstEnv = JSON.parse(readFileSync(envFile, 'utf8')) as Record<string, string>;
    await killGroup(up.worker!.pid);
    const broken = await devStatus({ stateDir });
    assert.equal(broken.running, false);
    assert.equal(broken.worker?.alive, false);
    assert.equal(broken.temporal?.alive, true);

    rmSync(envFile);
    const restarted = await devUp({ stateDir, env: process.env, workerCommand: workerCommand(envFile) });
    assert.equal(restarted.running, true);
    assert.notEqual(restarted.worker?.pid, up.worker!.pid);
    assert.equal(restarted.temporal?.pid, up.temporal!.pid, 'the same Temporal server: clients following experiments keep their connection');
    assert.deepEqual(await devStatus({ stateDir }), restarted);
    const secondEnv = JSON.parse(readFileSync(envFile, 'utf8')) as Record<string, string>;
    for (const name of ['TEMPORAL_ADDRESS', 'PARAMTRAIL_STORE']) assert.equal(secondEnv[name], firstEnv[name], name);
    await devDown({ stateDir });
    assert.equal(isAlive(restarted.temporal!.pid), false);
    assert.equal(isAlive(restarted.worker!.pid), false);
  });
});

test('a running worker started on other code is replaced by one on this code, unless workflows are running on it', async () => {
  await withStateDir(async (stateDir, envFile) => {
    const notes: string[] = [];
    const onNote = (note: string) => void notes.push(note);
    const code = (stamp: string) => async () => stamp;
    const up = await devUp({ stateDir, env: process.env, port: await freePort(), workerCommand: workerCommand(envFile), code: code('aaa'), onNote });
    const same = await devUp({ stateDir, env: process.env, workerCommand: workerCommand(envFile), code: code('aaa'), onNote });
    assert.equal(same.worker?.pid, up.worker!.pid, 'the same code: the same worker');
    assert.deepEqual(notes, []);

    // A workflow running on the stack (one no worker here serves): its history could not replay on
    // changed workflow code, so the worker is kept, and the note says why.
    const connection = await Connection.connect({ address: up.temporal!.address });
    try {
      const handle = await new Client({ connection }).workflow.start('heldWorkflow', { taskQueue: 'nobody-polls', workflowId: `held-${Date.now()}` });
      const kept = await devUp({ stateDir, env: process.env, workerCommand: workerCommand(envFile), code: code('bbb'), onNote });
      assert.equal(kept.worker?.pid, up.worker!.pid);
      assert.match(notes.at(-1)!, new RegExp(`the embedded worker \\(pid ${up.worker!.pid}\\) runs code with sources aaa, not this checkout's \\(sources bbb\\); 1 workflow is running on it`));
      await handle.terminate();
    } finally {
      await connection.close();
    }

    // Nothing running: the new worker starts, then the old one is stopped; the server keeps running.
    const changed = await devUp({ stateDir, env: process.env, workerCommand: workerCommand(envFile), code: code('bbb'), onNote });
    assert.equal(changed.running, true);
    assert.notEqual(changed.worker?.pid, up.worker!.pid);
    assert.equal(changed.temporal?.pid, up.temporal!.pid);
    assert.equal(isAlive(up.worker!.pid), false, 'the worker on the old code is stopped');
    assert.match(notes.at(-1)!, /runs code with sources aaa; replacing it with one on this checkout's \(sources bbb\)/);
    assert.equal((JSON.parse(readFileSync(join(stateDir, 'dev.json'), 'utf8')) as { worker: { code?: string } }).worker.code, 'bbb');
    // A caller that does not say (tests, tools) keeps whatever runs.
    const unsaid = await devUp({ stateDir, env: process.env, workerCommand: workerCommand(envFile) });
    assert.equal(unsaid.worker?.pid, changed.worker!.pid);
  });
});

test('the worker sources stamp changes with a source file and not with docs or tests', async () => {
  const root = mkdtempSync(join(tmpdir(), 'paramtrail-stamp-'));
  try {
    mkdirSync(join(root, 'ml'));
    mkdirSync(join(root, 'docs'));
    writeFileSync(join(root, 'ml', 'a.ts'), 'export const a = 1;');
    writeFileSync(join(root, 'package-lock.json'), '{}');
    const first = await workerSourcesStamp(root);
    assert.match(first, /^[0-9a-f]{16}$/);
    writeFileSync(join(root, 'docs', 'page.md'), 'words');
    assert.equal(await workerSourcesStamp(root), first, 'docs are not loaded by a worker');
    writeFileSync(join(root, 'ml', 'a.ts'), 'export const a = 2;');
    assert.notEqual(await workerSourcesStamp(root), first);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('dev up starts the whole stack again when its Temporal server died', async () => {
  await withStateDir(async (stateDir, envFile) => {
    const up = await devUp({ stateDir, env: process.env, port: await freePort(), workerCommand: workerCommand(envFile) });
    await killGroup(up.temporal!.pid);
    assert.equal((await devStatus({ stateDir })).running, false);

    const restarted = await devUp({ stateDir, env: process.env, workerCommand: workerCommand(envFile) });
    assert.equal(restarted.running, true);
    assert.notEqual(restarted.temporal?.pid, up.temporal!.pid);
    assert.notEqual(restarted.worker?.pid, up.worker!.pid, 'the worker of the dead server is replaced too');
    assert.equal(isAlive(up.worker!.pid), false);
    await devDown({ stateDir });
    assert.equal(isAlive(restarted.temporal!.pid), false);
    assert.equal(isAlive(restarted.worker!.pid), false);
  });
});

test('a worker that exits at once is reported with its log, and nothing is left running', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'paramtrail-dev-'));
  try {
    await assert.rejects(
      devUp({
        stateDir,
        env: process.env,
        port: await freePort(),
        workerCommand: [process.execPath, '-e', 'console.error("no config here"); process.exit(3)'],
      }),
      /worker .* exited[\s\S]*no config here/,
    );
    const status = await devStatus({ stateDir });
    assert.equal(status.running, false);
    assert.equal(existsSync(join(stateDir, 'dev.json')), false);
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("search attributes missing from a running server (one an older paramtrail started) are created", async () => {
  const port = await freePort();
  // A bare dev server, as one started before paramtrail registered its attributes.
  const server = spawn(resolveTool('temporal', process.env), ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--headless', '--log-level', 'error'], { stdio: 'ignore' });
  const address = `127.0.0.1:${port}`;
  try {
    await waitForTemporal(address, 'default', 60_000);
    const list = async () => {
      const connection = await Connection.connect({ address });
      try {
        return Object.keys((await connection.operatorService.listSearchAttributes({ namespace: 'default' })).customAttributes ?? {});
      } finally {
        await connection.close();
      }
    };
    assert.ok(!(await list()).includes('ParamtrailStatus'), 'the bare server starts without them');
    assert.deepEqual(await ensureSearchAttributes(address, 'default'), SEARCH_ATTRIBUTE_KEYS.map((k) => k.name));
    const names = await list();
    for (const key of SEARCH_ATTRIBUTE_KEYS) assert.ok(names.includes(key.name), `${key.name} missing from ${names.join(', ')}`);
    assert.deepEqual(await ensureSearchAttributes(address, 'default'), [], 'a second call creates nothing');
  } finally {
    server.kill('SIGTERM');
  }
});

test('a stack recorded before the machine restarted is not signalled: its pids are other programs\' now', async () => {
  await withStateDir(async (stateDir) => {
    // A program that, after the restart, has a pid the stack had.
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' });
    try {
      const pid = other.pid!;
      const log = join(stateDir, 'x.log');
      writeFileSync(join(stateDir, 'dev.json'), JSON.stringify({
        version: 1,
        startedAt: new Date(0).toISOString(),
        bootId: 'a-boot-before-this-one',
        store: pathToFileURL(join(stateDir, 'store')).href,
        temporal: { pid, address: '127.0.0.1:1', uiAddress: '', dbFile: join(stateDir, 'temporal.db'), log },
        worker: { pid, command: [], log },
      }));
      const status = await devStatus({ stateDir });
      assert.equal(status.running, false);
      assert.equal(status.temporal?.alive, false);
      await devDown({ stateDir });
      assert.equal(isAlive(pid), true, 'the program that has the pid now is left alone');
      assert.equal(existsSync(join(stateDir, 'dev.json')), false);
    } finally {
      other.kill('SIGKILL');
    }
  });
});

test('Ctrl-C while the stack starts stops what it started and releases the lock', async () => {
  await withStateDir(async (stateDir) => {
    const [cmd, ...args] = cliCommand(['dev', 'up']);
    const env: NodeJS.ProcessEnv = { ...process.env, PARAMTRAIL_STATE_DIR: stateDir };
    delete env.TEMPORAL_ADDRESS;
    const cli = spawn(cmd!, args, { env, stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => cli.on('exit', (code) => resolve(code)));
    // The server's log is opened just before it is spawned; the server then takes seconds to answer.
    const serverLog = join(stateDir, 'logs', 'temporal.log');
    for (let i = 0; i < 200 && !existsSync(serverLog); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(existsSync(serverLog), 'the stack began to start');
    await new Promise((r) => setTimeout(r, 300));
    cli.kill('SIGINT');
    assert.equal(await exited, 130);
    // Processes started for this state folder: the server names its database there.
    const ours = () =>
      readdirSync('/proc').filter((d) => {
        if (!/^\d+$/.test(d)) return false;
        try {
          return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(stateDir);
        } catch {
          return false; // gone meanwhile
        }
      });
    for (let i = 0; i < 100 && ours().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(ours(), [], 'nothing of the stack is left running');
    assert.equal(existsSync(join(stateDir, 'dev.lock')), false, 'the lock is released');
    assert.equal(existsSync(join(stateDir, 'dev.json')), false);
  });
});

test('the stack lock admits one process at a time, and a lock left by a process that died is taken over', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'paramtrail-lock-'));
  try {
    const lock = join(dir, 'dev.lock');
    const log = join(dir, 'log');
    // A process that died holding it: its pid is no one's.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(lock, dead.stdout);
    // Six processes started together, each entering the lock three times.
    const [node, , loader] = cliCommand([]);
    const url = pathToFileURL(join(PROJECT_ROOT, 'infra', 'dev.ts')).href;
    const code = `const { withLock } = await import(${JSON.stringify(url)}); const { appendFileSync } = await import('node:fs');
      for (let i = 0; i < 3; i++) await withLock(${JSON.stringify(lock)}, async () => {
        appendFileSync(${JSON.stringify(log)}, 'in ' + process.pid + '\\n'); await new Promise((r) => setTimeout(r, 20)); appendFileSync(${JSON.stringify(log)}, 'out ' + process.pid + '\\n');
      });`;
    const children = Array.from({ length: 6 }, () => spawn(node, ['--import', loader, '--input-type=module', '-e', code], { stdio: ['ignore', 'ignore', 'inherit'] }));
    const codes = await Promise.all(children.map((c) => new Promise((r) => c.on('exit', r))));
    assert.deepEqual(codes, [0, 0, 0, 0, 0, 0]);
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    assert.equal(lines.length, 6 * 3 * 2);
    for (let i = 0; i < lines.length; i += 2) {
      const [entered, left] = [lines[i]!.split(' '), lines[i + 1]!.split(' ')];
      assert.deepEqual([entered[0], left[0], left[1]], ['in', 'out', entered[1]], `line ${i + 1}: one process at a time`);
    }
    assert.equal(existsSync(lock), false, 'released');
    assert.deepEqual(readdirSync(dir).sort(), ['log'], 'no file of the lock is left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
