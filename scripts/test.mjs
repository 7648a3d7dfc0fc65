#!/usr/bin/env node
/**
 * The test runner behind `npm test` (after `infra/setup.mjs`) and `npm run test:only`.
 *
 *   node scripts/test.mjs                         every test/**\/*.test.ts, sorted
 *   node scripts/test.mjs test/unit               only that folder (or file; several may be given)
 *   node scripts/test.mjs store                   only files whose path contains "store"
 *   node scripts/test.mjs test/e2e --test-name-pattern=crash   options go to node as they are
 *
 * Files run one at a time (`--test-concurrency=1`): the suite starts real Temporal and S3 servers and
 * trains models, and the machines have two cores. Node's spec reporter writes to stdout, passed through
 * as it comes; its closing counts are repeated as one plain line, "tests: N passed, N failed, N
 * skipped". The exit code is node's, except that a file that ran no test fails the run (node counts it
 * as a pass), and so does node's non-zero exit with no failed test counted (see verdict).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closingCounts, emptyFiles, filesLogEnv, filtersTests, nodeTestArgs, verdict } from './test-args.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TEST_DIR = join(ROOT, 'test');

function findTests(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findTests(path));
    else if (entry.isFile() && entry.name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

/** Paths select folders or files; any other word selects files whose path contains it. */
function select(all, filters) {
  if (filters.length === 0) return all;
  return all.filter((file) =>
    filters.some((filter) => {
      const asPath = resolve(filter);
      if (existsSync(asPath)) {
        return statSync(asPath).isDirectory() ? file.startsWith(asPath + sep) : file === asPath;
      }
      return relative(ROOT, file).includes(filter);
    }),
  );
}

async function main() {
  const argv = process.argv.slice(2);
  const nodeOptions = argv.filter((a) => a.startsWith('-'));
  const filters = argv.filter((a) => !a.startsWith('-'));
  const files = select(findTests(TEST_DIR).sort(), filters);
  if (files.length === 0) {
    console.error(`test: expected test files under ${relative(ROOT, TEST_DIR)}/ matching ${filters.join(', ') || '*.test.ts'}, found none`);
    return 1;
  }

  const scratch = mkdtempSync(join(tmpdir(), 'paramtrail-test-'));
  const filesLog = join(scratch, 'files-log');
  const args = nodeTestArgs(files.map((f) => relative(ROOT, f)), nodeOptions, { filesLog });
  console.log(`test: ${files.length} file(s), one at a time`);
  // As bin/paramtrail does: the S3 client's notice that its releases from 2027 on need Node 22, printed
  // by every test process that opens an S3 store, is for whoever upgrades it.
  const env = {
    ...process.env,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ?? 'true',
    ...filesLogEnv(filesLog),
  };
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
  // Pass the report through as it comes, reading its closing counts on the way.
  const counts = closingCounts();
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    counts.feed(chunk);
  });
  const status = await new Promise((done, fail) => {
    child.once('error', fail);
    child.once('close', (code, signal) => done(code ?? (signal ? 1 : 0)));
  });
  // Selected by name, a file may run none of its tests: not the file's fault.
  const empty = filtersTests(nodeOptions) ? [] : emptyFiles(existsSync(filesLog) ? readFileSync(filesLog, 'utf8') : '').map((f) => ({ ...f, file: relative(ROOT, f.file) }));
  rmSync(scratch, { recursive: true, force: true });
  const { code, line, notes } = verdict(status, counts.summary(), empty);
  for (const note of notes) console.error(note);
  console.log(line);
  return code;
}

main().then(
  (code) => (process.exitCode = code),
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
