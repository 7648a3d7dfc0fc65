/**
 * A reporter for node's test runner (scripts/test-args.mjs adds it beside the spec reporter) that
 * writes, one per line, each test file that ran no test at all. Node counts such a file as one passing
 * test named after the file, so a file whose tests were generated from a list that came out empty
 * would otherwise pass. A file that fails to load is a failure under its own name, as before.
 */
export default async function* emptyFiles(source) {
  for await (const event of source) {
    if (event.type === 'test:pass' && event.data.file && event.data.name === event.data.file) yield `${event.data.file}\n`;
  }
}
