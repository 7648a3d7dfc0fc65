/** How scripts/test.mjs runs node's test runner, kept apart so that a test can run files the same way. */

/** A single test may train for minutes; one that hangs must not eat CI's whole budget. */
const DEFAULT_TEST_TIMEOUT_MS = 15 * 60 * 1000;

/**
 * Node's arguments that run `files` as `npm test` runs them, with `nodeOptions` added. With
 * `filesLog`, scripts/empty-files-reporter.mjs records what each file ran, in the file that the
 * environment variable filesLogEnv(filesLog) sets names (read it with emptyFiles).
 */
export function nodeTestArgs(files, nodeOptions = [], { filesLog } = {}) {
  return [
    '--import',
    'tsx',
    // Without it, a file's last results can be lost on the way to the runner (see the file).
    '--import',
    new URL('./blocking-stdio.mjs', import.meta.url).href,
    '--test',
    '--test-concurrency=1',
    // A file whose tests are done but that left a handle open (a server a failed hook never tore
    // down) would otherwise hang the run until CI's limit.
    '--test-force-exit',
    ...(nodeOptions.some((o) => o.startsWith('--test-timeout')) ? [] : [`--test-timeout=${DEFAULT_TEST_TIMEOUT_MS}`]),
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    ...(filesLog ? [`--test-reporter=${new URL('./empty-files-reporter.mjs', import.meta.url).href}`, '--test-reporter-destination=/dev/null'] : []),
    ...nodeOptions,
    ...files,
  ];
}

/**
 * Reads the spec reporter's closing counts ("ℹ pass 3") from its report as it streams by, chunk by
 * chunk; the last count of each kind wins. They come before the list of failing tests, which may be
 * any length, so they are picked up line by line rather than from the report's end.
 */
export function closingCounts() {
  const seen = {};
  let partial = '';
  const read = (line) => {
    const m = /^ℹ (pass|fail|cancelled|skipped|todo) (\d+)$/.exec(line);
    if (m) seen[m[1]] = Number(m[2]);
  };
  return {
    feed(text) {
      const lines = (partial + text).split('\n');
      partial = lines.pop();
      lines.forEach(read);
    },
    summary() {
      read(partial);
      const n = (k) => seen[k] ?? 0;
      return { pass: n('pass'), fail: n('fail') + n('cancelled'), skipped: n('skipped') + n('todo') };
    },
  };
}

/** The environment the runner needs for nodeTestArgs' `filesLog`. */
export function filesLogEnv(filesLog) {
  return { PARAMTRAIL_TEST_FILES_LOG: filesLog };
}

/**
 * The files a files log (see nodeTestArgs) shows ran no test and did not fail, in order seen, each with
 * whether node counted it as a passing test (a file with no test at all; an empty suite is not counted).
 */
export function emptyFiles(logText) {
  const seen = [];
  const ran = new Set();
  const counted = new Set();
  for (const line of logText.split('\n')) {
    const [kind, file] = line.split('\t');
    if (!file) continue;
    if (kind === 'seen') seen.push(file);
    else if (kind === 'counted') counted.add(file);
    else ran.add(file);
  }
  return seen.filter((file) => !ran.has(file)).map((file) => ({ file, counted: counted.has(file) }));
}

/**
 * Whether node's options select tests by name or mark (--test-name-pattern, --test-skip-pattern,
 * --test-only): a file whose tests are all filtered out then may report none (Node 22 reports no event
 * for them), which is the filter's doing, not the file's.
 */
export function filtersTests(nodeOptions) {
  return nodeOptions.some((o) => /^--test-(name-pattern|skip-pattern|only)\b/.test(o));
}

/**
 * What `npm test` reports and exits with, from node's exit status, its closing counts and the files
 * that ran no test: such a file is a failure, not the pass node counts it as, and a non-zero status
 * with no failure counted (a hook that failed after its tests passed) is one failure. `notes` say why.
 */
export function verdict(status, counts, emptyFiles = []) {
  const notes = emptyFiles.map(({ file }) => `test: ${file} ran no test`);
  let pass = counts.pass - emptyFiles.filter((f) => f.counted).length;
  let fail = counts.fail + emptyFiles.length;
  if (status !== 0 && fail === 0) {
    notes.push(`test: node's test runner exited with status ${status} with no failed test counted (a hook, or a file outside its tests, failed: see above)`);
    fail = 1;
  }
  pass = Math.max(0, pass);
  return { code: fail > 0 ? status || 1 : status, line: `tests: ${pass} passed, ${fail} failed, ${counts.skipped} skipped`, notes };
}
