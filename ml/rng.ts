/**
 * Deterministic pseudo-random numbers for everything paramtrail draws at random: weight
 * initialisation, per-epoch shuffles, dataset subsets and splits.
 *
 * tfjs's own random ops (and `model.fit`'s shuffle) draw from Math.random or backend-specific
 * generators, so two runs with the same seed need not agree and a resumed run cannot reproduce them.
 * This generator is splitmix32: 32-bit integer arithmetic only (Math.imul, shifts), so it produces the
 * same stream on every JS engine, and its whole state is one uint32 that can be stored and restored.
 *
 * Called by ml/train (init, loop) and ml/data/split.
 */

/** A splitmix32 stream. `state` is a uint32; a generator rebuilt from `state` continues the same stream. */
export class Rng {
  private s: number;

  constructor(state: number) {
    if (!Number.isInteger(state)) throw new Error(`Rng state must be an integer, found ${state}`);
    this.s = state >>> 0;
  }

  /** The generator's state: `new Rng(rng.state)` continues exactly where this one is. */
  get state(): number {
    return this.s;
  }

  /** The next uint32 of the stream. */
  nextUint32(): number {
    this.s = (this.s + 0x9e3779b9) >>> 0;
    let z = this.s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** A float in [0, 1) with 32 random bits. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer in [0, n), without modulo bias (rejection sampling). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) {
      throw new Error(`Rng.int expects an integer bound in [1, 2^32], found ${n}`);
    }
    const limit = 4294967296 - (4294967296 % n);
    let u = this.nextUint32();
    while (u >= limit) u = this.nextUint32();
    return u % n;
  }

  /** A standard normal draw (Box-Muller; V8's Math.log/cos/sqrt are fdlibm ports, identical on every platform). */
  normal(): number {
    // 1 - next() lies in (0, 1], so the logarithm is finite.
    const u1 = 1 - this.next();
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Shuffles `a` in place (Fisher-Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: number }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return a;
  }
}

/** FNV-1a hash of a string's UTF-16 code units, as a uint32. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  }
  return h >>> 0;
}

/**
 * Derives an independent stream from a seed and a path of keys, e.g. `deriveRng(seed, 'shuffle', epoch)`.
 * Each stream depends only on its own keys, so epoch k's shuffle or one layer's initial weights can be
 * recomputed without replaying any other draw (this is what makes resuming need no hidden state).
 */
export function deriveRng(seed: number, ...keys: Array<string | number>): Rng {
  if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, found ${seed}`);
  // Mix the seed (which may exceed 32 bits) and every key through the splitmix finaliser.
  const mixer = new Rng((seed >>> 0) ^ hashString(String(Math.floor(seed / 4294967296))));
  let s = mixer.nextUint32();
  for (const key of keys) {
    const k = typeof key === 'number' ? hashString(`#${key}`) : hashString(key);
    s = new Rng(s ^ k).nextUint32();
  }
  return new Rng(s);
}
