/**
 * Runs that differ only by seed: their grid cell, and the spread of a number (an accuracy) over a
 * cell's runs. The report's "Across seeds" table and `paramtrail status` both summarise a grid so.
 */

/** A run's grid cell: its name without the seed, which config/grid.ts puts last (`--s<seed>`). */
export const seedCell = (name: string) => name.replace(/--s\d+$/, '');

/** The runs of each cell, in the order of their first run; undefined when no cell has two runs. */
export function seedCells<R extends { name: string }>(runs: readonly R[]): Map<string, R[]> | undefined {
  const cells = new Map<string, R[]>();
  for (const r of runs) {
    const cell = seedCell(r.name);
    const rs = cells.get(cell);
    if (rs) rs.push(r);
    else cells.set(cell, [r]);
  }
  return [...cells.values()].some((rs) => rs.length > 1) ? cells : undefined;
}

export interface Spread {
  /** How many finite values there were. */
  n: number;
  mean?: number;
  /** The sample standard deviation (n - 1), from two values on. */
  sd?: number;
  min?: number;
  max?: number;
}

/** Mean, sample standard deviation and range of the finite values (NaN and null, as JSON has it, left out). */
export function spread(values: ReadonlyArray<number | null | undefined>): Spread {
  const xs = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (xs.length === 0) return { n: 0 };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1)) : undefined;
  return { n: xs.length, mean, ...(sd !== undefined ? { sd } : {}), min: xs.reduce((a, b) => Math.min(a, b)), max: xs.reduce((a, b) => Math.max(a, b)) };
}
