/**
 * How activities report failures to Temporal. Bad input and corrupt data fail for good, with a stable
 * `type` that workflows and the CLI can match; anything else is a plain error that Temporal retries.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { NonRetryableType } from './failures.js';

export function failForGood(type: NonRetryableType, message: string, cause?: unknown): ApplicationFailure {
  return ApplicationFailure.create({ message, type, nonRetryable: true, cause: cause instanceof Error ? cause : undefined });
}

/** Maps the errors of our own modules that mean "bad input or corrupt data" to non-retryable failures. */
export function classify(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof ApplicationFailure) return err;
  switch (err.name) {
    case 'InvalidExperimentError':
    case 'ZodError':
    case 'InvalidModelArgsError':
    case 'InvalidKeyError':
      return failForGood('InvalidExperiment', err.message, err);
    case 'IntegrityError':
      return failForGood('IntegrityError', err.message, err);
    case 'ObjectConflictError':
      return failForGood('ObjectConflict', err.message, err);
    default:
      return err;
  }
}
