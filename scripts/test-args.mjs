/** How scripts/test.mjs runs node's test runner, kept apart so that a test can run files the same way. */

/** A single test may train for minutes; one that hangs must not eat CI's whole budget. */
const DEFAULT_TEST_TIMEOUT_MS = 15 * 60 * 1000;

/** Node's arguments that run `files` as `npm test` runs them, with `nodeOptions` added. */
export function nodeTestArgs(files, nodeOptions = []) {
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
