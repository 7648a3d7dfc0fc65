/** Small JSON objects in the store (checkpoints, attempt records): encode, decode, verify. */
import type { ArtifactStore } from '../artifacts/store.js';
import type { ObjectRef } from '../artifacts/refs.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function putJson(store: ArtifactStore, key: string, value: unknown, signal?: AbortSignal): Promise<ObjectRef> {
  return store.put(key, encoder.encode(JSON.stringify(value, null, 2) + '\n'), { contentType: 'application/json', signal });
}

export async function getJson<T>(store: ArtifactStore, key: string, opts: { signal?: AbortSignal; sha256?: string } = {}): Promise<T> {
  const bytes = await store.get(key, opts);
  return JSON.parse(decoder.decode(bytes)) as T;
}
