/** Node's arguments that run `files` as `npm test` runs them, with `nodeOptions` added; see test-args.mjs. */
export function nodeTestArgs(files: string[], nodeOptions?: string[], opts?: { filesLog?: string }): string[];

/** The environment the runner needs for nodeTestArgs' `filesLog`. */
export function filesLogEnv(filesLog: string): Record<string, string>;

/** The files a files log shows ran no test and did not fail as a whole. */
export function emptyFiles(logText: string): string[];

/** Reads the spec reporter's closing counts from its report as it streams by; the last of each kind wins. */
export function closingCounts(): {
  feed(text: string): void;
  summary(): { pass: number; fail: number; skipped: number };
};

/** What `npm test` reports and exits with; see test-args.mjs. */
export function verdict(
  status: number,
  counts: { pass: number; fail: number; skipped: number },
  emptyFiles?: string[],
): { code: number; line: string; notes: string[] };
