/** Command-line values of the benchmarks. */

/** `v` as a positive integer, or an error naming the option `--name`. */
export function positiveInt(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: expected a positive integer, found ${JSON.stringify(v)}`);
  return n;
}
