/**
 * The node options `npm test` runs files with (scripts/test-args.mjs): every test of every file reaches
 * the closing counts. Test files that end with many results still buffered (long names, nothing after
 * the last test) are the case where --test-force-exit alone dropped some of the last results
 * (nodejs/node#64833): without scripts/blocking-stdio.mjs, these 8 files lost 1-8 of their 1,600
 * results in 4 of 5 runs here.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { nodeTestArgs } from '../../scripts/test-args.mjs';
import { PROJECT_ROOT } from '../../infra/tools.js';
import { tempDir } from '../support/fixtures.js';

const FILES = 8;
const TESTS = 200;

test('every result of files that end with many results still buffered is counted', async () => {
  const dir = await tempDir();
  const files: string[] = [];
  for (let f = 0; f < FILES; f++) {
    const file = join(dir, `many-${f}.test.mjs`);
    await writeFile(file, `import { test } from 'node:test';\nfor (let i = 0; i < ${TESTS}; i++) test(\`t\${i} \${'x'.repeat(3000)}\`, () => {});\n`);
    files.push(file);
  }
  // Without NODE_TEST_CONTEXT, which this file's own runner set: with it, node would run as a file's child.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const child = spawn(process.execPath, nodeTestArgs(files), { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  const count = (name: string) => Number([...out.matchAll(new RegExp(`^ℹ ${name} (\\d+)$`, 'gm'))].at(-1)?.[1]);
  assert.equal(code, 0, out.slice(-2000));
  assert.deepEqual([count('pass'), count('fail')], [FILES * TESTS, 0]);
});
