/** A bound on how many calls of some async functions are in progress at once. */

/**
 * Wraps functions so that, together, at most `slots` of their calls are in progress; the rest wait
 * their turn, first come first served. `signal`, asked at each call (an activity's cancellation), lets
 * a call that is still waiting give up its turn: it rejects with the signal's reason and never runs.
 */
export function slotPool(
  slots: number,
  opts: { signal?: () => AbortSignal | undefined } = {},
): <A extends unknown[], R>(fn: (...args: A) => Promise<R>) => (...args: A) => Promise<R> {
  let free = slots;
  const waiting: Array<() => void> = [];
  const turn = (signal: AbortSignal | undefined) =>
    new Promise<void>((resolve, reject) => {
      const go = () => {
        signal?.removeEventListener('abort', giveUp);
        resolve();
      };
      const giveUp = () => {
        const at = waiting.indexOf(go);
        if (at >= 0) waiting.splice(at, 1);
        reject(signal!.reason ?? new Error('cancelled while waiting for a slot'));
      };
      if (signal?.aborted) return giveUp();
      signal?.addEventListener('abort', giveUp, { once: true });
      waiting.push(go);
    });
  return <A extends unknown[], R>(fn: (...args: A) => Promise<R>) => async (...args: A) => {
    if (free > 0) free--;
    else await turn(opts.signal?.());
    try {
      return await fn(...args);
    } finally {
      const next = waiting.shift();
      if (next) next();
      else free++;
    }
  };
}
