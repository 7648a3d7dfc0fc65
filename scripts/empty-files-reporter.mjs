/**
 * A reporter for node's test runner (scripts/test-args.mjs adds it beside the spec reporter) that
 * records, per test file, that the file was seen, that it ran a test, or that it failed as a whole, in
 * the file PARAMTRAIL_TEST_FILES_LOG names (see emptyFiles in test-args.mjs). It writes synchronously as
 * events arrive: with --test-force-exit, anything written after the last event could be lost, and a
 * lost line must not make a file look empty.
 *
 * Why: node counts a file with no test as one passing test named after the file, and a suite
 * (`describe`) with nothing inside as a pass, so a file whose tests were generated from a list that came
 * out empty would pass. Skipped tests count as tests.
 */
import { appendFileSync } from 'node:fs';

export default async function* filesLog(source) {
  const log = process.env.PARAMTRAIL_TEST_FILES_LOG;
  const written = new Set();
  const note = (kind, file) => {
    const line = `${kind}\t${file}\n`;
    if (!log || written.has(line)) return;
    written.add(line);
    appendFileSync(log, line);
  };
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { file, name, details } = event.data;
    if (!file) continue;
    note('seen', file);
    // A failure anywhere (a file that did not load, a suite whose body threw) is reported as one already.
    if (event.type === 'test:fail') note('failed', file);
    // Node counts a file with no test as one passing test named after the file.
    else if (name === file) note('counted', file);
    if (name !== file && details?.type !== 'suite') note('test', file);
  }
}
