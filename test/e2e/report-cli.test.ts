/**
 * `paramtrail report` on a real Temporal dev server and a real local store: after a one-run experiment
 * completes, the command prints where its report is, and with --out copies the stored page (checked
 * against its sha256) to the given file; an unknown experiment and a bad command line fail clearly.
 * `paramtrail status` exits as `run` would have: 1 once a run of the experiment has failed.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LocalStore } from '../../artifacts/local.js';
import { main } from '../../cli/main.js';
import { cmdReport } from '../../cli/report.js';
import { requireFashionMnist, tempDir, tinyExperiment } from '../support/fixtures.js';
import { startTestStack, type TestStack } from '../support/stack.js';

/** Runs `fn` with console.log and console.error captured. */
async function captured(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  try {
    return { code: await fn(), out: out.join('\n'), err: err.join('\n') };
  } finally {
    Object.assign(console, { log, error });
  }
}

describe('paramtrail report', () => {
  let stack: TestStack;
  let dir: string;
  let store: LocalStore;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    requireFashionMnist();
    dir = await tempDir();
    store = new LocalStore(join(dir, 'store'));
    stack = await startTestStack({ name: 'report', deps: { store } });
    const { temporal } = stack;
    env = { ...process.env, TEMPORAL_ADDRESS: temporal.address, TEMPORAL_NAMESPACE: temporal.namespace ?? 'default', PARAMTRAIL_STATE_DIR: join(dir, 'state') };
  });

  after(() => stack?.stop());

  test('prints the stored report, or copies it with --out', async () => {
    const config = tinyExperiment({ seeds: [1] });
    const experimentId = `${config.name}-${randomUUID()}`;
    const result = await stack.execute(config, { experimentId });
    assert.ok(result.report, `report written: ${JSON.stringify(result.reportError)}`);

    const printed = await captured(() => cmdReport([experimentId], env));
    assert.equal(printed.code, 0, printed.err);
    assert.equal(printed.out, result.report.path);

    const out = join(dir, 'copies', 'report.html');
    const copied = await captured(() => cmdReport([experimentId, '--out', out], env));
    assert.equal(copied.code, 0, copied.err);
    assert.equal(copied.out, out);
    const html = await readFile(out, 'utf8');
    assert.deepEqual(new TextEncoder().encode(html), await store.get(result.report.key, { sha256: result.report.sha256 }));
    assert.ok(html.includes(result.runs[0].name));

    // A folder that exists takes the report as <experiment id>.html; a path that cannot be written is named.
    const intoFolder = await captured(() => cmdReport([experimentId, '--out', join(dir, 'copies')], env));
    assert.equal(intoFolder.code, 0, intoFolder.err);
    assert.equal(intoFolder.out, join(dir, 'copies', `${experimentId}.html`));
    assert.equal(await readFile(intoFolder.out, 'utf8'), html);
    const blocked = join(out, 'under-a-file.html');
    const refused = await captured(() => cmdReport([experimentId, '--out', blocked], env));
    assert.equal(refused.code, 1);
    assert.match(refused.err, new RegExp(`^report: cannot write ${blocked.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: E(NOTDIR|EXIST)`));
  });

  test('status exits 0 for a completed experiment, 1 for one whose run failed, as run does', async () => {
    const ok = tinyExperiment({ seeds: [2], training: { epochs: 1, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.05 } } });
    const okId = `${ok.name}-${randomUUID()}`;
    assert.equal((await stack.execute(ok, { experimentId: okId })).status, 'completed');
    const done = await captured(() => main(['status', okId], env));
    assert.equal(done.code, 0, done.err);

    // A run that starts from weights the store does not have fails for good.
    const missing = { key: 'tensors/00/no-such-snapshot.arrow' };
    const bad = tinyExperiment({ seeds: [3], training: { epochs: 1, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.05 }, init: { from: missing } } });
    const badId = `${bad.name}-${randomUUID()}`;
    assert.equal((await stack.execute(bad, { experimentId: badId })).status, 'completed-with-failures');
    const failed = await captured(() => main(['status', badId, '--json'], env));
    assert.equal(failed.code, 1, failed.err);
    assert.equal(JSON.parse(failed.out).status, 'completed-with-failures');
  });

  test('an unknown experiment fails with its id named', async () => {
    const res = await captured(() => cmdReport(['no-such-experiment'], env));
    assert.equal(res.code, 1);
    assert.match(res.err, /no experiment with id no-such-experiment/);
  });

  test('a bad command line is a usage error', async () => {
    for (const argv of [[], ['a', 'b'], ['a', '--bogus']]) {
      const res = await captured(() => cmdReport(argv, env));
      assert.equal(res.code, 2, JSON.stringify(argv));
      assert.match(res.err, /usage: paramtrail report/);
    }
  });
});
