/**
 * References to stored objects: the only thing about artifacts that travels through workflow
 * history (the claim-check pattern). Types only, so workflow code can import them.
 */

/** A stored object, named by key and pinned by the sha256 of its exact bytes. */
export interface ObjectRef {
  key: string;
  /** Lowercase hex sha256 of the object's bytes. */
  sha256: string;
  bytes: number;
}

/** A weight snapshot of one run at one epoch. */
export interface SnapshotRef extends ObjectRef {
  epoch: number;
  /** Optimizer steps taken when the snapshot was made. */
  step: number;
}
