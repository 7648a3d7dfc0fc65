/** Node's arguments that run `files` as `npm test` runs them, with `nodeOptions` added. */
export function nodeTestArgs(files: string[], nodeOptions?: string[]): string[];
