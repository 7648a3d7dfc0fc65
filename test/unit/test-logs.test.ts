/**
 * test/support/logs.ts: what Temporal's workers and activities log in a test file shows only when the
 * file fails, after its results; with PARAMTRAIL_TEST_LOGS=1, as it comes. Each case runs a small test
 * file with `npm test`'s node options, logging through a MockActivityEnvironment from the module.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { PROJECT_ROOT } from '../../infra/tools.js';
import { nodeTestArgs } from '../../scripts/test-args.mjs';
import { tempDir } from '../support/fixtures.js';

const LOGS = pathToFileURL(join(PROJECT_ROOT, 'test/support/logs.ts')).href;
// The file is written outside the project, where a bare package name does not resolve.
const ACTIVITY = import.meta.resolve('@temporalio/activity');

/** Runs a test file whose one test logs a warning in an activity, then passes or fails. */
async function runFile(outcome: 'pass' | 'fail', env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string }> {
  const file = join(await tempDir(), `logs-${outcome}.test.ts`);
  await writeFile(
    file,
    [
      `import assert from 'node:assert/strict';`,
      `import { test } from 'node:test';`,
      `import { Context } from '${ACTIVITY}';`,
      `import { activityEnvironment, runIn } from '${LOGS}';`,
      `test('an activity logs', async () => {`,
      `  await runIn(activityEnvironment(), async () => Context.current().log.warn('marker-of-the-log', { detail: 42 }));`,
      `  assert.equal(${JSON.stringify(outcome)}, 'pass');`,
      `});`,
    ].join('\n'),
  );
  // Without NODE_TEST_CONTEXT, which this file's own runner set: with it, node would run as a file's child.
  const { NODE_TEST_CONTEXT: _, PARAMTRAIL_TEST_LOGS: __, ...base } = process.env;
  const child = spawn(process.execPath, nodeTestArgs([file]), { cwd: PROJECT_ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, out };
}

test('a passing file prints none of its logs', async () => {
  const { code, out } = await runFile('pass');
  assert.equal(code, 0, out);
  assert.match(out, /ℹ pass 1/);
  assert.doesNotMatch(out, /marker-of-the-log/);
});

test('a failing file prints its logs after its results, one line per entry', async () => {
  const { code, out } = await runFile('fail');
  assert.equal(code, 1, out);
  assert.match(out, /--- Temporal logs of this test file \(1 entries\) ---\n\S+ \[WARN\] marker-of-the-log \{ .*detail: 42.* \}\n--- end of Temporal logs ---/);
});

test('PARAMTRAIL_TEST_LOGS=1 prints each entry as it comes, and no dump', async () => {
  const { code, out } = await runFile('fail', { PARAMTRAIL_TEST_LOGS: '1' });
  assert.equal(code, 1, out);
  assert.match(out, /\[WARN\] marker-of-the-log/);
  assert.doesNotMatch(out, /Temporal logs of this test file/);
});
