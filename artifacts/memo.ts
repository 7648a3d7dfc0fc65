/** Reads kept for reuse: the same object asked for again within a call gets the read already made. */

/**
 * `load(item)` of each item, kept for the `capacity` keys used last: an item whose key was loaded
 * before gets the same promise, and its key becomes the one used last; a new key past `capacity`
 * forgets the key used longest ago. A promise that rejects is forgotten, so the key's next use loads
 * it again.
 */
export function lruMemo<T, V>(capacity: number, keyOf: (item: T) => string, load: (item: T) => Promise<V>): (item: T) => Promise<V> {
  if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`lruMemo: expected a capacity of 1 or more, found ${capacity}`);
  // A Map keeps insertion order: a hit moves to the end, so the first key is the one used longest ago.
  const kept = new Map<string, Promise<V>>();
  return (item) => {
    const key = keyOf(item);
    let p = kept.get(key);
    if (p) kept.delete(key);
    else {
      if (kept.size >= capacity) kept.delete(kept.keys().next().value!);
      const loading = load(item);
      // Only this promise: the key may have been forgotten and loaded again since.
      loading.catch(() => kept.get(key) === loading && kept.delete(key));
      p = loading;
    }
    kept.set(key, p);
    return p;
  };
}
