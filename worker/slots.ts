/** A bound on how many calls of some async functions are in progress at once. */

/**
 * Wraps functions so that, together, at most `slots` of their calls are in progress; the rest wait
 * their turn, first come first served.
 */
export function slotPool(slots: number): <A extends unknown[], R>(fn: (...args: A) => Promise<R>) => (...args: A) => Promise<R> {
  let free = slots;
  const waiting: Array<() => void> = [];
  return <A extends unknown[], R>(fn: (...args: A) => Promise<R>) => async (...args: A) => {
    if (free > 0) free--;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await fn(...args);
    } finally {
      const next = waiting.shift();
      if (next) next();
      else free++;
    }
  };
}
