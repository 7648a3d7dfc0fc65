/** Node's arguments that run `files` as `npm test` runs them, with `nodeOptions` added; see test-args.mjs. */
export function nodeTestArgs(files: string[], nodeOptions?: string[], opts?: { filesLog?: string }): string[];

/** The environment the runner needs for nodeTestArgs' `filesLog`. */
export function filesLogEnv(filesLog: string): Record<string, string>;

/** The files a files log shows ran no test and did not fail, with whether node counted each as a passing test. */
export function emptyFiles(logText: string): Array<{ file: string; counted: boolean }>;

/** Whether node's options select tests by name or mark. */
export function filtersTests(nodeOptions: string[]): boolean;

/** Reads the spec reporter's closing counts from its report as it streams by; the last of each kind wins. */
export function closingCounts(): {
  feed(text: string): void;
  summary(): { pass: number; fail: number; skipped: number };
};

/** What `npm test` reports and exits with; see test-args.mjs. */
export function verdict(
  status: number,
  counts: { pass: number; fail: number; skipped: number },
  emptyFiles?: Array<{ file: string; counted: boolean }>,
): { code: number; line: string; notes: string[] };
