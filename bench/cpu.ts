/** CPU time of other processes, for the benchmarks' per-process figures. */
import { readFileSync } from 'node:fs';

/** CPU seconds (user + system) a process and its children have used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  const ticks = 100; // USER_HZ on Linux
  const read = (p: number) => {
    try {
      const fields = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
      // utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the command.
      return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
    } catch {
      return 0;
    }
  };
  const children = (() => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  })();
  return (read(pid) + children.reduce((sum, c) => sum + read(c), 0)) / ticks;
}
