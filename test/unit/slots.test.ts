/** slotPool: never more calls in progress than slots, waiting calls start first come first served, a failure frees its slot, a cancelled wait gives up its turn. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { slotPool } from '../../worker/slots.js';

test('at most `slots` calls run at once, and the waiting ones start in call order', async () => {
  let running = 0;
  let most = 0;
  const started: number[] = [];
  const limited = slotPool(2)(async (i: number) => {
    started.push(i);
    running++;
    most = Math.max(most, running);
    await sleep(5 + (i % 3));
    running--;
    return i * 2;
  });
  const results = await Promise.all(Array.from({ length: 9 }, (_, i) => limited(i)));
  assert.deepEqual(results, [0, 2, 4, 6, 8, 10, 12, 14, 16]);
  assert.equal(most, 2);
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
});

test('a call that throws frees its slot for the next', async () => {
  const limited = slotPool(1)(async (fail: boolean) => {
    await sleep(1);
    if (fail) throw new Error('no');
    return 'ok';
  });
  const [a, b, c] = await Promise.allSettled([limited(true), limited(false), limited(true)]);
  assert.equal(a.status, 'rejected');
  assert.deepEqual(b, { status: 'fulfilled', value: 'ok' });
  assert.equal(c.status, 'rejected');
  assert.equal(await limited(false), 'ok');
});

test('functions wrapped by one slotPool share its slots', async () => {
  let running = 0;
  let most = 0;
  const work = async (ms: number) => {
    running++;
    most = Math.max(most, running);
    await sleep(ms);
    running--;
  };
  const pool = slotPool(1);
  const [a, b] = [pool(work), pool(async (ms: number) => work(ms))];
  await Promise.all([a(5), b(5), a(3), b(3)]);
  assert.equal(most, 1, 'one call at a time across both functions');
  // Separate pools do not share.
  await Promise.all([slotPool(1)(work)(5), slotPool(1)(work)(5)]);
  assert.equal(most, 2);
});

test('a waiting call whose signal aborts gives up its turn without running, and the others keep theirs', async () => {
  const signals = new Map<number, AbortController>();
  let current: number | undefined;
  const ran: number[] = [];
  const pool = slotPool(1, { signal: () => (current === undefined ? undefined : signals.get(current)?.signal) });
  const limited = pool(async (i: number) => {
    ran.push(i);
    await sleep(20);
    return i;
  });
  const call = (i: number) => {
    signals.set(i, new AbortController());
    current = i;
    const p = limited(i);
    current = undefined;
    return p;
  };
  const [first, second, third] = [call(1), call(2), call(3)];
  signals.get(2)!.abort(new Error('cancelled (test)'));
  await assert.rejects(second, /cancelled \(test\)/);
  assert.deepEqual(await Promise.all([first, third]), [1, 3]);
  assert.deepEqual(ran, [1, 3], 'the cancelled call never ran');
  // Its slot was not lost: two more calls run one after another.
  assert.deepEqual(await Promise.all([call(4), call(5)]), [4, 5]);
  // Already cancelled when it would wait: refused at once.
  const busy = call(6);
  signals.set(7, new AbortController());
  signals.get(7)!.abort(new Error('gone before'));
  current = 7;
  const late = limited(7);
  current = undefined;
  await assert.rejects(late, /gone before/);
  await busy;
});
