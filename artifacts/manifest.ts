/**
 * Lineage manifests: for every stored artifact, who produced it and from what. Activities record one
 * beside each object they create; `manifests/<hh>/<sha256>.json` is found from the artifact's hash alone.
 *
 * Identical bytes have one manifest: the first producer is kept (a retry that writes the same snapshot
 * again does not rewrite its history).
 */
import type { ObjectRef } from './refs.js';
import { ObjectConflictError, type ArtifactStore } from './store.js';

export const MANIFEST_FORMAT_VERSION = 1;

export interface ManifestProducer {
  experimentId: string;
  runId: string;
  /** Temporal workflow id and run id of the workflow that scheduled the activity. */
  workflowId: string;
  workflowRunId: string;
  activity: string;
  attempt: number;
  /** `pid@host` of the worker process. */
  worker: string;
}

export interface ArtifactManifest {
  formatVersion: number;
  artifact: ObjectRef;
  /** e.g. `dataset-file`, `snapshot`, `optimizer-state`, `distance-table`, `figure`. */
  kind: string;
  producer: ManifestProducer;
  /** The artifacts this one was computed from. */
  inputs: ObjectRef[];
  attrs: Record<string, unknown>;
  /** The code that produced it: paramtrail's version and git commit (with a digest of uncommitted changes). */
  code?: { version: string; commit?: string; dirty?: string };
  /** Runtime versions: node, and the libraries that shape numbers (tfjs, apache-arrow). */
  runtime?: Record<string, string>;
  createdAt: string;
}

export function manifestKey(sha256: string): string {
  return `manifests/${sha256.slice(0, 2)}/${sha256}.json`;
}

/**
 * Stores the manifest unless one already exists for the same bytes; returns the stored manifest's ref.
 * The put itself finds an existing one (a store checks before it writes), so no HEAD goes first.
 */
export async function recordManifest(store: ArtifactStore, manifest: ArtifactManifest, signal?: AbortSignal): Promise<ObjectRef> {
  const key = manifestKey(manifest.artifact.sha256);
  try {
    return await store.put(key, new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n'), { contentType: 'application/json', signal });
  } catch (err) {
    // Another producer of the same bytes got there first: its manifest stands.
    if (err instanceof ObjectConflictError) return (await store.head(key, { signal }))!;
    throw err;
  }
}

export async function readManifest(store: ArtifactStore, sha256: string, signal?: AbortSignal): Promise<ArtifactManifest | undefined> {
  const key = manifestKey(sha256);
  if (!(await store.head(key, { signal }))) return undefined;
  return JSON.parse(new TextDecoder().decode(await store.get(key, { signal }))) as ArtifactManifest;
}
