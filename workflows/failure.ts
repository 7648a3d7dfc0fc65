/** What the workflows record of a failure. */

/** The innermost cause is the one a person can act on (e.g. the activity's own message). */
export function rootCause(err: unknown): { type?: string; message: string } {
  let e = err as { cause?: unknown; message?: string; type?: string } | undefined;
  while (e && typeof e === 'object' && e.cause) e = e.cause as typeof e;
  return { type: e?.type, message: e?.message ?? String(err) };
}
