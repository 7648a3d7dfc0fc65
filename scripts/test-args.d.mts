/** Node's arguments that run `files` as `npm test` runs them, with `nodeOptions` added. */
export function nodeTestArgs(files: string[], nodeOptions?: string[]): string[];

/** Reads the spec reporter's closing counts from its report as it streams by; the last of each kind wins. */
export function closingCounts(): {
  feed(text: string): void;
  summary(): { pass: number; fail: number; skipped: number };
};
