/** Node's arguments that run `files` as scripts/test.mjs runs them, with `nodeOptions` added. */
export function nodeTestArgs(files: string[], nodeOptions?: string[]): string[];
