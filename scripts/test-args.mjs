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
