/**
 * What Temporal's workers and activities log during a test: kept in memory and printed to stderr only
 * when the test file fails, so a passing suite's output is its test results. A workflow test's workers
 * log a dozen lines each as they start and stop, and every expected failure (a bad experiment, a retried
 * activity) logs a warning with its stack; printed as they came, they were five lines in six of the
 * suite's output. `PARAMTRAIL_TEST_LOGS=1` prints every entry as it comes instead, as before.
 *
 * Importing this module installs Temporal's Runtime with `testLogger` (core's own warnings forwarded to
 * it too); test/support/temporal.ts and stack.ts import it, so it is installed before any worker or
 * test server starts. Activity tests take their MockActivityEnvironment from `activityEnvironment`.
 */
import { writeSync } from 'node:fs';
import { inspect } from 'node:util';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, makeTelemetryFilterString, Runtime, type LogEntry } from '@temporalio/worker';

/** Entries kept for the dump; older ones are counted, not kept. */
const KEEP = 5_000;

const live = process.env.PARAMTRAIL_TEST_LOGS === '1';
const kept: string[] = [];
let dropped = 0;

/** One line per entry: time, level, message and its metadata. */
function formatEntry({ level, message, meta, timestampNanos }: LogEntry): string {
  const time = new Date(Number(timestampNanos / 1_000_000n)).toISOString();
  const rest = meta && Object.keys(meta).length ? ` ${inspect(meta, { breakLength: Infinity, depth: 4 })}` : '';
  return `${time} [${level}] ${message}${rest}`;
}

function keep(entry: LogEntry): void {
  const line = formatEntry(entry);
  if (live) {
    writeSync(2, `${line}\n`);
    return;
  }
  kept.push(line);
  if (kept.length > KEEP) {
    kept.shift();
    dropped++;
  }
}

/** The logger of the test process's Runtime and of its mock activity environments. */
export const testLogger = new DefaultLogger('INFO', keep);

/** A MockActivityEnvironment that logs to `testLogger`. */
export function activityEnvironment(info?: ConstructorParameters<typeof MockActivityEnvironment>[0]): MockActivityEnvironment {
  return new MockActivityEnvironment(info, { logger: testLogger });
}

/** MockActivityEnvironment.run does not infer the activity's result type; this keeps it. */
export function runIn<A extends unknown[], R>(env: MockActivityEnvironment, fn: (...args: A) => Promise<R>, ...args: A): Promise<R> {
  return env.run(fn, ...args);
}

Runtime.install({
  logger: testLogger,
  telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} } },
});

// A failed test file exits non-zero: its logs follow its results, headed so they are found.
process.on('exit', (code) => {
  if (code === 0 || !kept.length) return;
  const head = `--- Temporal logs of this test file (${kept.length} entries${dropped ? `, ${dropped} earlier ones dropped` : ''}) ---`;
  writeSync(2, `${[head, ...kept, '--- end of Temporal logs ---'].join('\n')}\n`);
});
