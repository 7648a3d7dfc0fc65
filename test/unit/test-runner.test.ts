/**
 * The node options `npm test` runs files with (scripts/test-args.mjs): every test of every file reaches
 * the closing counts, and `npm test`'s closing line repeats them however long the list of failures
 * after them. Test files that end with many results still buffered (long names, nothing after
 * the last test) are the case where --test-force-exit alone dropped some of the last results
 * (nodejs/node#64833): without scripts/blocking-stdio.mjs, these 8 files lost 1-8 of their 1,600
 * results in 4 of 5 runs here.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { closingCounts, emptyFiles, filesLogEnv, filtersTests, nodeTestArgs, verdict } from '../../scripts/test-args.mjs';
import { PROJECT_ROOT } from '../../infra/tools.js';
import { tempDir } from '../support/fixtures.js';

const FILES = 8;
const TESTS = 200;

/** Runs `files` with `npm test`'s options; their report (stdout) and exit code. */
async function runFiles(files: string[], opts: { filesLog?: string } = {}): Promise<{ code: number | null; out: string }> {
  // Without NODE_TEST_CONTEXT, which this file's own runner set: with it, node would run as a file's child.
  const { NODE_TEST_CONTEXT: _, PARAMTRAIL_TEST_FILES_LOG: __, ...inherited } = process.env;
  const env = { ...inherited, ...(opts.filesLog ? filesLogEnv(opts.filesLog) : {}) };
  const child = spawn(process.execPath, nodeTestArgs(files, [], opts), { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, out };
}

test('every result of files that end with many results still buffered is counted', async () => {
  const dir = await tempDir();
  const files: string[] = [];
  for (let f = 0; f < FILES; f++) {
    const file = join(dir, `many-${f}.test.mjs`);
    await writeFile(file, `import { test } from 'node:test';\nfor (let i = 0; i < ${TESTS}; i++) test(\`t\${i} \${'x'.repeat(3000)}\`, () => {});\n`);
    files.push(file);
  }
  const { code, out } = await runFiles(files);
  const counts = closingCounts();
  counts.feed(out);
  assert.equal(code, 0, out.slice(-2000));
  assert.deepEqual(counts.summary(), { pass: FILES * TESTS, fail: 0, skipped: 0 });
});

test('the closing counts are read whole before a long list of failures, in chunks that split lines', async () => {
  const file = join(await tempDir(), 'failing.test.mjs');
  await writeFile(
    file,
    [
      `import assert from 'node:assert/strict';`,
      `import { test } from 'node:test';`,
      `for (let i = 0; i < 3; i++) test(\`passes \${i}\`, () => {});`,
      `test('fails at length', () => assert.equal('a'.repeat(20000), 'b'));`,
      `test('skipped', { skip: 'counted as skipped' }, () => {});`,
    ].join('\n'),
  );
  const { code, out } = await runFiles([file]);
  assert.equal(code, 1, out.slice(-2000));
  // The report after the counts (the failure listed again) is longer than the 4 KB the runner once kept.
  assert.ok(out.length - out.lastIndexOf('ℹ pass') > 8192, out.slice(-2000));
  const counts = closingCounts();
  for (let i = 0; i < out.length; i += 7) counts.feed(out.slice(i, i + 7));
  assert.deepEqual(counts.summary(), { pass: 3, fail: 1, skipped: 1 });
});

test('a file that runs no test is listed, and fails the run that node would pass', async () => {
  const dir = await tempDir();
  const empty = join(dir, 'empty.test.mjs');
  // Tests generated from a list that came out empty.
  await writeFile(empty, `import { test } from 'node:test';\nfor (const name of []) test(name, () => {});\n`);
  // A suite whose tests were generated from an empty list.
  const emptySuite = join(dir, 'empty-suite.test.mjs');
  await writeFile(emptySuite, `import { describe, it } from 'node:test';\ndescribe('generated', () => { for (const name of []) it(name, () => {}); });\n`);
  const some = join(dir, 'some.test.mjs');
  await writeFile(some, `import { describe, test } from 'node:test';\ntest('a', () => {});\ndescribe('d', () => test('b', () => {}));\ntest('s', { skip: 'a skipped test is a test' }, () => {});\n`);
  const filesLog = join(dir, 'files-log');
  const { code, out } = await runFiles([empty, emptySuite, some], { filesLog });
  assert.equal(code, 0, 'node passes them');
  const found = emptyFiles(await readFile(filesLog, 'utf8')).sort((x, y) => x.file.localeCompare(y.file));
  // Node counts the file with no test as a pass, and the empty suite as nothing.
  assert.deepEqual(found, [{ file: emptySuite, counted: false }, { file: empty, counted: true }]);
  const counts = closingCounts();
  counts.feed(out);
  assert.deepEqual(counts.summary(), { pass: 3, fail: 0, skipped: 1 }, 'a, b, and the empty file');
  const said = verdict(code!, counts.summary(), found);
  assert.equal(said.code, 1);
  assert.equal(said.line, 'tests: 2 passed, 2 failed, 1 skipped');
  assert.deepEqual(said.notes, [`test: ${emptySuite} ran no test`, `test: ${empty} ran no test`]);
  // A suite whose body throws is a failure already, not also an empty file.
  const throwing = join(dir, 'throwing.test.mjs');
  await writeFile(throwing, `import { describe } from 'node:test';\ndescribe('broken', () => { throw new Error('no tests defined'); });\n`);
  const log2 = join(dir, 'files-log-2');
  const broken = await runFiles([throwing], { filesLog: log2 });
  assert.equal(broken.code, 1);
  assert.deepEqual(emptyFiles(await readFile(log2, 'utf8')), []);
  assert.equal(filtersTests(['--test-name-pattern=x']), true);
  assert.equal(filtersTests(['--test-timeout=5']), false);
});

test('a non-zero exit with no failure counted is a failure in the closing line', () => {
  const said = verdict(1, { pass: 1, fail: 0, skipped: 0 });
  assert.equal(said.code, 1);
  assert.equal(said.line, 'tests: 1 passed, 1 failed, 0 skipped');
  assert.match(said.notes[0]!, /exited with status 1 with no failed test counted/);
  assert.deepEqual(verdict(0, { pass: 3, fail: 0, skipped: 1 }), { code: 0, line: 'tests: 3 passed, 0 failed, 1 skipped', notes: [] });
});
