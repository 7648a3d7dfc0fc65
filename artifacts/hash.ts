/**
 * Content hashing for stored objects. Every object paramtrail stores is pinned by the sha256 of its
 * exact bytes; the stores, the snapshot codec and the activities all hash through here.
 */
import { createHash } from 'node:crypto';

/** Lowercase hex sha256 of the bytes. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** True for a lowercase 64-digit hex string, the form every ref carries. */
export function isSha256Hex(value: string): boolean {
  return /^[0-9a-f]{64}$/.test(value);
}
