/**
 * The embedded stack as a laptop uses it, through the CLI alone: `run` starts a Temporal dev server, a
 * worker and a folder store under the state folder. Then the machine loses power mid-training: the
 * server and the worker are SIGKILLed together. `dev up` brings the stack back from its SQLite file, and
 * the experiment goes on where it was: the run resumes from its last stored epoch and completes, and
 * every artifact verifies.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { devDown, devStatus } from '../../infra/dev.js';
import type { ExperimentReport } from '../../cli/summary.js';
import { FASHION_MNIST_SOURCES, requireFashionMnist, tempDir } from '../support/fixtures.js';
import { killGroup, runCli } from '../support/processes.js';

const experiment = {
  name: 'power-cut',
  models: [{ name: 'mlp', args: { hidden: [64] } }],
  datasets: [{ name: 'fashion-mnist', subset: { train: 4000, test: 200 }, sources: FASHION_MNIST_SOURCES }],
  training: { epochs: 6, batchSize: 32, optimizer: { name: 'adam', learningRate: 0.001 } },
  analyses: { runFigures: false },
  // The killed attempt is given up 5 s after its last heartbeat, counted by the restarted server.
  execution: { heartbeatTimeout: '5s' },
};

/** The environment of a laptop with nothing configured: no cluster, no store, only the state folder. */
function laptopEnv(stateDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PARAMTRAIL_STATE_DIR: stateDir };
  for (const name of ['TEMPORAL_ADDRESS', 'PARAMTRAIL_STORE', 'PARAMTRAIL_S3_ENDPOINT', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) delete env[name];
  return env;
}

test('a power cut mid-training: dev up brings the embedded stack back and the run resumes from its last stored epoch', { timeout: 600_000 }, async () => {
  requireFashionMnist();
  const dir = await tempDir();
  const stateDir = join(dir, 'state');
  const env = laptopEnv(stateDir);
  const file = join(dir, 'power-cut.yaml');
  await writeFile(file, stringify(experiment));
  const experimentId = 'power-cut-1';
  const runName = 'mlp--fashion-mnist--s0';
  try {
    const started = await runCli(['run', file, '--id', experimentId, '--detach', '--json'], env);
    assert.equal(started.code, 0, started.stderr);
    assert.deepEqual(JSON.parse(started.stdout), { experimentId, store: `file://${join(stateDir, 'store')}`, status: 'running' });

    // Mid-training: once the epoch-1 checkpoint is stored, and before the last one.
    const checkpoints = join(stateDir, 'store', 'runs', experimentId, runName, 'checkpoints');
    const deadline = Date.now() + 300_000;
    while (!existsSync(join(checkpoints, 'epoch-000001.json'))) {
      assert.ok(Date.now() < deadline, 'no epoch-1 checkpoint in time');
      await sleep(50);
    }
    const up = await devStatus({ stateDir });
    assert.ok(up.temporal?.alive && up.worker?.alive, JSON.stringify(up));
    await Promise.all([killGroup(up.temporal!.pid), killGroup(up.worker!.pid)]);
    assert.equal(existsSync(join(checkpoints, `epoch-${String(experiment.training.epochs).padStart(6, '0')}.json`)), false, 'the power went before training ended');

    const down = await runCli(['status', experimentId], env);
    assert.equal(down.code, 4, `status with the stack down exits 4\n${down.stdout}${down.stderr}`);
    assert.match(down.stderr, /start it with: paramtrail dev up/);

    const restarted = await runCli(['dev', 'up'], env);
    assert.equal(restarted.code, 0, restarted.stderr);
    const after = await devStatus({ stateDir });
    assert.ok(after.running, JSON.stringify(after));
    assert.notEqual(after.temporal!.pid, up.temporal!.pid);

    let report: ExperimentReport | undefined;
    while (report?.status !== 'completed') {
      assert.ok(Date.now() < deadline, `the experiment did not complete after the restart: ${JSON.stringify(report)}`);
      await sleep(1000);
      const status = await runCli(['status', experimentId, '--json'], env);
      assert.ok(status.code === 0 || status.code === 1, `status exit ${status.code}: ${status.stderr}`);
      report = JSON.parse(status.stdout) as ExperimentReport;
      assert.ok(['running', 'completed'].includes(report.status), `the experiment ${report.status}: ${status.stdout}`);
    }
    const [run] = report.runs;
    assert.equal(run?.status, 'completed', JSON.stringify(run));
    const attempts = run.training!.attempts;
    assert.ok(attempts.length >= 2, `expected a second attempt after the power cut: ${JSON.stringify(attempts)}`);
    const last = attempts.at(-1)!;
    assert.ok(last.resumed && last.startedFromEpoch >= 1, `the run must resume from a stored epoch, not start over: ${JSON.stringify(attempts)}`);
    assert.deepEqual(run.snapshots!.map((s) => s.epoch), [0, 1, 2, 3, 4, 5, 6]);
    assert.ok(report.report, 'the report was written');

    const verified = await runCli(['verify', experimentId], env);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /all \d+ artifacts verify/);
  } finally {
    await devDown({ stateDir });
  }
});
