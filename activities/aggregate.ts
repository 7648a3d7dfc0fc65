/**
 * The `aggregate` activity: S0's gathered figure. Reads every run's distance table and averages the
 * per-layer distances across runs of different depths, with layer depth normalised to [0, 1]
 * (ml/metrics/aggregate.ts), per group of runs (residual, plain, ...) and for all runs together.
 *
 * What one run contributes, per layer, at the experiment's Minkowski order p:
 * - against `init`: the distance of its last snapshot to its initial weights, |W_T - W_0|;
 * - against `previous`: the mean over its consecutive snapshot pairs of |W_t - W_{t-1}|, the typical
 *   per-step movement of the layer over training (one number per layer, as the gathered figure needs).
 * Both per parameter (the table's `meanDistance`: distance / params), so a wide layer and a narrow one,
 * and networks of different widths, are on one scale. A version-1 table, without `meanDistance`, gives
 * distance / params, the same number.
 *
 * Rows go to a DEPTH_PROFILE_TABLE, one per (group, against, grid point) with the runs that covered the
 * point; the group `ALL_GROUP` gathers every run when there is more than one group. The experiment
 * workflow calls it after the runs, with the experiment id as producer run id.
 */
import { Context } from '@temporalio/activity';
import { DEPTH_PROFILE_TABLE, type DepthProfileRow } from '../artifacts/analysis-tables.js';
import { recordsToArrow } from '../artifacts/records.js';
import { distanceTableFromArrow, type DistanceRow } from '../artifacts/table.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import { expandRuns } from '../config/grid.js';
import type { RunResult, RunSummary } from '../workflows/types.js';
import { averageOverDepth, type DepthRow } from '../ml/metrics/aggregate.js';
import { formatMinkowskiP, MODEL_LAYER, parseMinkowskiP } from '../ml/metrics/minkowski.js';
import { classify, failForGood } from './errors.js';
import { getJson } from './json.js';
import { TABLE_PREFIX } from './keys.js';
import { recordLineage } from './lineage.js';
import { loadRuns } from './results.js';
import type { AggregateInput, AggregateResult, AggregateRun } from './types.js';

export interface AggregateDeps {
  store: ArtifactStore;
}

/** Group name of the profile over every run, written when the runs fall into more than one group. */
export const ALL_GROUP = '__all__';

/** Points of the normalised-depth grid: 0, 0.05, ..., 1, fine enough for a 100-layer network's shape. */
export const DEPTH_GRID_POINTS = 21;

const AGAINST = ['init', 'previous'] as const;

/** The per-parameter distance of a row; distance / params for a version-1 row without it. */
function perParameter(r: DistanceRow): number {
  return Number.isNaN(r.meanDistance) && !Number.isNaN(r.distance) ? r.distance / r.params : r.meanDistance;
}

/**
 * One run's per-layer values (see the module doc) from its distance-table rows at order `p`:
 * `init` from its last epoch, `previous` averaged over its snapshot pairs. The whole-model row is left out.
 */
export function runDepthRows(run: string, rows: readonly DistanceRow[], p: string): Record<'init' | 'previous', DepthRow[]> {
  const layerRows = rows.filter((r) => r.p === p && r.layer !== MODEL_LAYER);
  const out: Record<'init' | 'previous', DepthRow[]> = { init: [], previous: [] };
  const layers = new Set(layerRows.map((r) => r.depth)).size;
  const init = layerRows.filter((r) => r.against === 'init');
  const last = Math.max(...init.map((r) => r.epoch));
  for (const r of init) if (r.epoch === last) out.init.push({ run, depth: r.depth, layers, value: perParameter(r) });
  const sums = new Map<number, { sum: number; n: number }>();
  for (const r of layerRows) {
    if (r.against !== 'previous') continue;
    const s = sums.get(r.depth) ?? { sum: 0, n: 0 };
    s.sum += perParameter(r);
    s.n += 1;
    sums.set(r.depth, s);
  }
  for (const [depth, s] of [...sums].sort((a, b) => a[0] - b[0])) out.previous.push({ run, depth, layers, value: s.sum / s.n });
  return out;
}

/**
 * The completed runs of an experiment whose summaries are in the store (`AggregateInput.stored`), with
 * their distance tables from their results, in the grid's order: what the workflow lists itself for a
 * smaller grid.
 */
async function storedRuns(store: ArtifactStore, stored: NonNullable<AggregateInput['stored']>, signal: AbortSignal): Promise<AggregateRun[]> {
  const groups = new Map(expandRuns(stored.config).map((s) => [s.name, s.group]));
  const out: AggregateRun[] = [];
  const summaries = await loadRuns<RunSummary>(store, { runs: [], chunks: stored.chunks }, signal);
  for (const [i, r] of summaries.entries()) {
    Context.current().heartbeat({ reading: i, runs: summaries.length });
    if (r.stage !== 'completed') continue;
    const result = r.result ?? (r.resultRef ? await getJson<RunResult>(store, r.resultRef.key, { sha256: r.resultRef.sha256, signal }) : undefined);
    if (!result) continue;
    const group = groups.get(r.name);
    if (group === undefined) throw failForGood('InvalidExperiment', `expected run "${r.name}" in the experiment's grid; found no run of that name`);
    out.push({ runId: r.runId, name: r.name, group, table: result.distance.table });
  }
  return out;
}

export function createAggregate(deps: AggregateDeps) {
  return async function aggregate(input: AggregateInput): Promise<AggregateResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    const producer = { experimentId: input.experimentId, runId: input.experimentId };
    try {
      if (!input.runs === !input.stored) throw failForGood('InvalidExperiment', `${input.experimentId}: expected either runs or stored to aggregate; found ${input.runs ? 'both' : 'neither'}`);
      const runs = input.runs ?? (await storedRuns(deps.store, input.stored!, signal));
      if (runs.length === 0) throw failForGood('InvalidExperiment', `${input.experimentId}: expected runs to aggregate; found none`);
      let p: string;
      try {
        p = formatMinkowskiP(parseMinkowskiP(input.p));
      } catch (err) {
        throw failForGood('InvalidExperiment', `${input.experimentId}: ${(err as Error).message}`, err);
      }
      const groups = [...new Set(runs.map((r) => r.group))];
      const byGroup = new Map<string, Record<'init' | 'previous', DepthRow[]>>(
        [...groups, ...(groups.length > 1 ? [ALL_GROUP] : [])].map((g) => [g, { init: [], previous: [] }]),
      );
      for (const [i, run] of runs.entries()) {
        ctx.heartbeat({ run: i, runs: runs.length });
        const rows = distanceTableFromArrow(await deps.store.get(run.table.key, { sha256: run.table.sha256, signal }));
        if (!rows.some((r) => r.p === p)) {
          throw failForGood(
            'InvalidExperiment',
            `${input.experimentId}: expected distances at p = ${p} in the table of run ${run.runId}; found p = ${[...new Set(rows.map((r) => r.p))].join(', ') || 'no rows'}`,
          );
        }
        const depthRows = runDepthRows(run.runId, rows, p);
        for (const g of groups.length > 1 ? [run.group, ALL_GROUP] : [run.group]) {
          for (const a of AGAINST) byGroup.get(g)![a].push(...depthRows[a]);
        }
      }
      const out: DepthProfileRow[] = [];
      for (const [group, rows] of byGroup) {
        for (const against of AGAINST) {
          if (rows[against].length === 0) continue;
          for (const point of averageOverDepth(rows[against], DEPTH_GRID_POINTS)) {
            out.push({ group, against, depth: point.position, mean: point.mean, runs: point.runs });
          }
        }
      }
      const bytes = recordsToArrow(DEPTH_PROFILE_TABLE, out, { experimentId: input.experimentId, p });
      const table = await putContentAddressed(deps.store, TABLE_PREFIX, bytes, '.arrow', { signal });
      await recordLineage(deps.store, producer, table, 'depth-profile', runs.map((r) => r.table), { p, runs: runs.map((r) => ({ runId: r.runId, group: r.group })) }, signal);
      return { table, groups: [...byGroup.keys()], runs: runs.length };
    } catch (err) {
      throw classify(err);
    }
  };
}
