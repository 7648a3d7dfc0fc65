/**
 * The failure types that no retry can fix: bad input and corrupt or conflicting data. Activities raise
 * them (activities/errors.ts); workflows list them as non-retryable in their retry policies. Dependency-
 * free, so workflow code can import it.
 */
export const NON_RETRYABLE_TYPES = ['InvalidExperiment', 'IntegrityError', 'DatasetChecksumMismatch', 'ObjectConflict'] as const;
export type NonRetryableType = (typeof NON_RETRYABLE_TYPES)[number];
