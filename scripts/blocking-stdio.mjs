/**
 * Loaded into every test process (scripts/test-args.mjs passes it with --import): makes writes to
 * stdout and stderr blocking. Each test file runs in a child process that reports its results to the
 * runner over its stdout, a pipe, and a write to a pipe is asynchronous on Linux. `--test-force-exit`
 * ends the child with process.exit() as soon as its last test is done, and that drops whatever is still
 * buffered: the last tests of a file then go missing from the counts (nodejs/node#64833). Blocking
 * writes leave nothing buffered.
 */
for (const stream of [process.stdout, process.stderr]) stream._handle?.setBlocking?.(true);
