/**
 * The aggregate activity on two hand-made distance tables (one of format version 1) in a local store:
 * the depth profile per group and for all runs, against values worked out by hand.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { DEPTH_PROFILE_TABLE, type DepthProfileRow } from '../../artifacts/analysis-tables.js';
import { LocalStore } from '../../artifacts/local.js';
import { readManifest } from '../../artifacts/manifest.js';
import { recordsFromArrow } from '../../artifacts/records.js';
import type { ObjectRef } from '../../artifacts/refs.js';
import { putContentAddressed } from '../../artifacts/store.js';
import { distanceTableToArrow, type DistanceRow } from '../../artifacts/table.js';
import { ALL_GROUP, createAggregate, runDepthRows } from '../../activities/aggregate.js';
import type { AggregateInput } from '../../activities/types.js';
import { expandRuns } from '../../config/grid.js';
import type { RunSummary } from '../../workflows/types.js';
import { tempDir, tinyExperiment } from '../support/fixtures.js';
import { activityEnvironment, runIn } from '../support/logs.js';

/** A row whose per-parameter distance is `mean` (distance = mean * params). */
function row(runId: string, epoch: number, against: 'init' | 'previous', p: string, depth: number, params: number, mean: number): DistanceRow {
  const layer = depth < 0 ? '__model__' : `layer${depth}`;
  return { runId, epoch, against, referenceEpoch: against === 'init' ? 0 : epoch - 1, p, layer, depth, params, distance: mean * params, meanDistance: mean, relative: 0.5, changed: 1 };
}

// Run A (plain, 3 layers, version 2). Per parameter, against init: epoch 1 0.15, 0.1, 0.05 (not the
// last epoch: ignored); epoch 2 0.3, 0.2, 0.1. Against previous: epoch 1 0.15, 0.1, 0.05; epoch 2 0.25,
// 0.2, 0.15, so the means are 0.2, 0.15, 0.1. Rows at p = 2 and the whole-model rows must be ignored.
const runA: DistanceRow[] = [
  ...[0, 1, 2].map((d) => row('e/a', 0, 'init', '1', d, 100, 0)),
  ...[0.15, 0.1, 0.05].map((m, d) => row('e/a', 1, 'init', '1', d, 100, m)),
  ...[0.15, 0.1, 0.05].map((m, d) => row('e/a', 1, 'previous', '1', d, 100, m)),
  ...[0.3, 0.2, 0.1].map((m, d) => row('e/a', 2, 'init', '1', d, 100, m)),
  ...[0.25, 0.2, 0.15].map((m, d) => row('e/a', 2, 'previous', '1', d, 100, m)),
  row('e/a', 2, 'init', '1', -1, 300, 99),
  ...[0, 1, 2].map((d) => row('e/a', 2, 'init', '2', d, 100, 7)),
];

// Run B (residual, 2 layers of 10 and 20 parameters, version 1: no meanDistance, so distance / params).
// Against init at epoch 2: distances 4 and 2, per parameter 0.4 and 0.1. Against previous: epoch 1
// distances 1 and 2 (0.1, 0.1), epoch 2 distances 3 and 4 (0.3, 0.2): means 0.2 and 0.15.
const bRow = (epoch: number, against: 'init' | 'previous', depth: number, distance: number) => row('e/b', epoch, against, '1', depth, depth === 0 ? 10 : 20, distance / (depth === 0 ? 10 : 20));
const runB: DistanceRow[] = [bRow(0, 'init', 0, 0), bRow(0, 'init', 1, 0), bRow(1, 'init', 0, 1), bRow(1, 'init', 1, 2), bRow(1, 'previous', 0, 1), bRow(1, 'previous', 1, 2), bRow(2, 'init', 0, 4), bRow(2, 'init', 1, 2), bRow(2, 'previous', 0, 3), bRow(2, 'previous', 1, 4)];

let store: LocalStore;
let tableA: ObjectRef;
let tableB: ObjectRef;

before(async () => {
  store = new LocalStore(await tempDir());
  tableA = await putContentAddressed(store, 'tables', distanceTableToArrow(runA, { runId: 'e/a' }), '.arrow');
  tableB = await putContentAddressed(store, 'tables', distanceTableToArrow(runB, { runId: 'e/b', formatVersion: 1 }), '.arrow');
});

const input = (): AggregateInput => ({
  experimentId: 'e',
  p: '1',
  runs: [
    { runId: 'e/a', name: 'a', group: 'plain', table: tableA },
    { runId: 'e/b', name: 'b', group: 'residual', table: tableB },
  ],
});

function at(rows: DepthProfileRow[], group: string, against: string, depth: number): DepthProfileRow {
  const found = rows.find((r) => r.group === group && r.against === against && Math.abs(r.depth - depth) < 1e-12);
  assert.ok(found, `no row for ${group} ${against} at ${depth}`);
  return found;
}

function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: expected ${expected}, found ${actual}`);
}

test('one run: init from the last epoch, previous averaged over the snapshot pairs, per parameter', () => {
  const a = runDepthRows('e/a', runA, '1');
  assert.deepEqual(a.init.map((r) => [r.depth, r.layers, r.value]), [[0, 3, 0.3], [1, 3, 0.2], [2, 3, 0.1]]);
  assert.deepEqual(a.previous.map((r) => [r.depth, r.layers]), [[0, 3], [1, 3], [2, 3]]);
  [0.2, 0.15, 0.1].forEach((v, d) => close(a.previous[d]!.value, v, `previous depth ${d}`));
});

test('the depth profile per group and for all runs, against values worked out by hand', async () => {
  const result = await runIn(activityEnvironment(), createAggregate({ store }), input());
  assert.deepEqual(result.groups, ['plain', 'residual', ALL_GROUP]);
  assert.equal(result.runs, 2);
  const { rows, meta } = recordsFromArrow(DEPTH_PROFILE_TABLE, await store.get(result.table.key, { sha256: result.table.sha256 }));
  assert.deepEqual(meta, { experimentId: 'e', p: '1' });
  // 21 grid points for each of 3 groups and 2 references.
  assert.equal(rows.length, 3 * 2 * 21);
  const expected: Array<[string, string, number, number, number]> = [
    // group, against, normalised depth, mean, runs
    ['plain', 'init', 0, 0.3, 1],
    ['plain', 'init', 0.25, 0.25, 1],
    ['plain', 'init', 0.5, 0.2, 1],
    ['plain', 'init', 1, 0.1, 1],
    ['residual', 'init', 0, 0.4, 1],
    ['residual', 'init', 0.25, 0.325, 1],
    ['residual', 'init', 0.5, 0.25, 1],
    ['residual', 'init', 1, 0.1, 1],
    [ALL_GROUP, 'init', 0, 0.35, 2],
    [ALL_GROUP, 'init', 0.25, (0.25 + 0.325) / 2, 2],
    [ALL_GROUP, 'init', 0.5, 0.225, 2],
    [ALL_GROUP, 'init', 1, 0.1, 2],
    ['plain', 'previous', 0.25, 0.175, 1],
    ['residual', 'previous', 0.5, 0.175, 1],
    [ALL_GROUP, 'previous', 0, 0.2, 2],
    [ALL_GROUP, 'previous', 0.5, (0.15 + 0.175) / 2, 2],
    [ALL_GROUP, 'previous', 1, (0.1 + 0.15) / 2, 2],
  ];
  for (const [group, against, depth, mean, runs] of expected) {
    const r = at(rows, group, against, depth);
    close(r.mean, mean, `${group} ${against} at ${depth}`);
    assert.equal(r.runs, runs);
  }
  const manifest = (await readManifest(store, result.table.sha256))!;
  assert.equal(manifest.kind, 'depth-profile');
  assert.deepEqual(manifest.producer.runId, 'e');
  assert.deepEqual(manifest.inputs.map((i) => i.sha256), [tableA.sha256, tableB.sha256]);
});

test('runs read from the store (a large grid) give the same profile as runs listed in the input', async () => {
  const listed = await runIn(activityEnvironment(), createAggregate({ store }), input());
  // Three runs of the grid: a plain one, a residual one, and a plain one that failed (left out).
  const config = tinyExperiment({
    models: [
      { name: 'mlp', label: 'mlp32', args: { hidden: [32] }, group: 'plain' },
      { name: 'mlp', label: 'mlp16', args: { hidden: [16] }, group: 'residual' },
      { name: 'mlp', label: 'mlp8', args: { hidden: [8] }, group: 'plain' },
    ],
  });
  const [a, b, c] = expandRuns(config).map((s) => s.name);
  const stored = async (runId: string, name: string, table: ObjectRef): Promise<RunSummary> => {
    // The aggregate reads only the distance table of a run's result.
    const resultRef = await putContentAddressed(store, 'results', new TextEncoder().encode(JSON.stringify({ distance: { table } })), '.json');
    return { name, runId, workflowId: runId, stage: 'completed', resultRef };
  };
  const summaries = [await stored('e/a', a!, tableA), await stored('e/b', b!, tableB), { name: c!, runId: 'e/c', workflowId: 'e/c', stage: 'failed' as const }];
  const chunks = await Promise.all(
    [summaries.slice(0, 2), summaries.slice(2)].map(async (part, k) => ({
      ref: await putContentAddressed(store, 'results', new TextEncoder().encode(JSON.stringify(part)), '.json'),
      first: k * 2,
      count: part.length,
      completed: part.filter((r) => r.stage === 'completed').length,
    })),
  );
  const read = await runIn(activityEnvironment(), createAggregate({ store }), { experimentId: 'e', p: '1', stored: { chunks, config } });
  assert.equal(read.runs, 2);
  assert.deepEqual(read.groups, listed.groups);
  assert.equal(read.table.sha256, listed.table.sha256);

  // A summary naming a run the config does not have is refused, naming it.
  const stray = { ...chunks[1]!, ref: await putContentAddressed(store, 'results', new TextEncoder().encode(JSON.stringify([{ ...summaries[0], name: 'stray' }])), '.json') };
  await assert.rejects(runIn(activityEnvironment(), createAggregate({ store }), { experimentId: 'e', p: '1', stored: { chunks: [stray], config } }), /expected run "stray" in the experiment's grid/);
  await assert.rejects(runIn(activityEnvironment(), createAggregate({ store }), { experimentId: 'e', p: '1' }), /expected either runs or stored to aggregate; found neither/);
});

test('one group writes no all-runs profile', async () => {
  const one = input();
  one.runs = one.runs!.map((r) => ({ ...r, group: 'all-models' }));
  const result = await runIn(activityEnvironment(), createAggregate({ store }), one);
  assert.deepEqual(result.groups, ['all-models']);
  const { rows } = recordsFromArrow(DEPTH_PROFILE_TABLE, await store.get(result.table.key));
  close(at(rows, 'all-models', 'init', 0.5).mean, 0.225, 'all-models init at 0.5');
});

test('a p that a run has no distances for is bad input, naming the run and what it has', async () => {
  await assert.rejects(runIn(activityEnvironment(), createAggregate({ store }), { ...input(), p: '2' }), (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure);
    assert.equal(err.type, 'InvalidExperiment');
    assert.match(err.message, /expected distances at p = 2 in the table of run e\/b; found p = 1/);
    return true;
  });
});
