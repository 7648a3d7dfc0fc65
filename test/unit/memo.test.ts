/** lruMemo: one load per key while it is kept, the key used longest ago forgotten first, a failed load not kept. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lruMemo } from '../../artifacts/memo.js';

/** A memo of capacity `n` over items named by their key, with every load recorded. */
function counted(n: number, fail = new Set<string>()) {
  const loads: string[] = [];
  const get = lruMemo(n, (item: { key: string }) => item.key, async ({ key }) => {
    loads.push(key);
    if (fail.has(key)) throw new Error(`cannot read ${key}`);
    return `value of ${key}`;
  });
  return { loads, get: (key: string) => get({ key }) };
}

test('a key asked for again gets the same promise while it is kept', async () => {
  const { loads, get } = counted(2);
  const first = get('a');
  assert.equal(get('a'), first);
  assert.equal(await first, 'value of a');
  await get('b');
  await get('a');
  assert.deepEqual(loads, ['a', 'b']);
});

test('past the capacity, the key used longest ago is forgotten, not the one loaded first', async () => {
  const { loads, get } = counted(2);
  await get('a');
  await get('b');
  await get('a'); // a is now the one used last
  await get('c'); // forgets b
  await get('a');
  assert.deepEqual(loads, ['a', 'b', 'c']);
  await get('b'); // loaded again, forgets c (a was used after it)
  await get('a');
  await get('c');
  assert.deepEqual(loads, ['a', 'b', 'c', 'b', 'c']);
});

test('a load that fails is not kept: the next use of its key loads again', async () => {
  const fail = new Set(['x']);
  const { loads, get } = counted(4, fail);
  await assert.rejects(get('x'), /cannot read x/);
  fail.delete('x');
  assert.equal(await get('x'), 'value of x');
  assert.equal(await get('x'), 'value of x');
  assert.deepEqual(loads, ['x', 'x']);
});

test("a failed load forgotten and loaded again: its rejection does not forget the new load", async () => {
  let reject: (err: Error) => void = () => undefined;
  let calls = 0;
  const get = lruMemo(1, (k: string) => k, (k) => {
    calls++;
    return calls === 1 ? new Promise<string>((_, r) => (reject = r)) : Promise.resolve(k);
  });
  const slow = get('a');
  await get('b'); // forgets a while its first load is still pending
  const again = get('a'); // a second load of a, now kept
  reject(new Error('first load of a failed'));
  await assert.rejects(slow, /first load of a failed/);
  assert.equal(await again, 'a');
  assert.equal(get('a'), again, 'the second load is still kept');
  assert.equal(calls, 3);
});

test('a capacity below 1 is refused, naming it', () => {
  assert.throws(() => lruMemo(0, String, async () => 1), /capacity of 1 or more, found 0/);
});
