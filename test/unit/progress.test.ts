/**
 * The CLI's download progress line, from the download activity's heartbeat: the file and its position,
 * a bar and the bytes received out of the total, or only the bytes when the total is unknown. Where the
 * runs of a running pack are, from the pack's progress. What is printed for a small grid and for one of many runs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Client } from '@temporalio/client';
import { downloadDetail, PACK_QUERY_MS, progressBar, progressLines, ProgressLog, progressTotals, withPackProgress, type RunLine } from '../../cli/progress.js';
import { formatReport, reportExperiment } from '../../cli/summary.js';
import type { ExperimentProgress, PackProgress, RunSummary } from '../../workflows/types.js';

test('a bar is filled in proportion, clamped to [0, 1]', () => {
  assert.equal(progressBar(0, 10), '[----------]');
  assert.equal(progressBar(0.25, 8), '[##------]');
  assert.equal(progressBar(1, 4), '[####]');
  assert.equal(progressBar(1.7, 4), '[####]');
  assert.equal(progressBar(-1, 4), '[----]');
});

test('a download line names the file, then shows a bar and the megabytes received of the total', () => {
  const where = { dataset: 'fashion-mnist', file: 'train-images-idx3-ubyte.gz', index: 0, files: 4 };
  assert.equal(downloadDetail(where), 'file 1/4 train-images-idx3-ubyte.gz');
  assert.equal(
    downloadDetail({ ...where, index: 2, received: 6_600_000, total: 26_400_000 }),
    'file 3/4 train-images-idx3-ubyte.gz [#####---------------] 25% 6.6/26.4 MB',
  );
  assert.equal(downloadDetail({ ...where, received: 26_400_000, total: 26_400_000 }), 'file 1/4 train-images-idx3-ubyte.gz [####################] 100% 26.4/26.4 MB');
  assert.equal(downloadDetail({ ...where, received: 1_250_000 }), 'file 1/4 train-images-idx3-ubyte.gz 1.3 MB');
});

test('runs of a pack: finished ones (completed or failed), the one the pack is on (with its stage), and those still waiting', async () => {
  const pack = 'e/mlp--s0..mlp--s3';
  const queried: string[] = [];
  const signals: AbortSignal[] = [];
  // What a pack's workflow answers, as a server would relay it.
  const client = {
    withAbortSignal: async (signal: AbortSignal, fn: () => Promise<unknown>) => {
      signals.push(signal);
      return fn();
    },
    workflow: {
      getHandle: (id: string) => ({
        query: async (name: string) => {
          queried.push(`${id} ${name}`);
          if (name === 'packProgress') {
            return { done: ['e/mlp--s0', 'e/mlp--s1'], failed: [{ runId: 'e/mlp--s1', message: 'no weights\nstack' }], current: 'e/mlp--s2', stage: 'distance' };
          }
          throw new Error(`unexpected query ${name}`);
        },
      }),
    },
  } as unknown as Client;
  // Until the pack closes, the experiment has its runs at the pack's first stage.
  const runs = ['s0', 's1', 's2', 's3'].map((s) => ({ name: `mlp--${s}`, runId: `e/mlp--${s}`, workflowId: pack, stage: 'download' as const }));
  const progress: ExperimentProgress = { experimentId: 'e', name: 'e', store: 'file:///s', runs: [...runs, { name: 'alone', runId: 'e/alone', workflowId: 'e/alone', stage: 'completed' }] };
  const p = await withPackProgress(client, progress);
  assert.deepEqual(
    p.runs.map((r) => r.stage),
    ['completed', 'failed', 'distance', 'pending', 'completed'],
  );
  assert.deepEqual(progressTotals(p), { runs: 5, completed: 2, failed: 1, running: 1 }, 'the totals count what the pack has finished');
  assert.deepEqual(progress.runs[0]!.stage, 'download', 'the progress it was given is left as it was');
  const lines = await progressLines(client, p);
  assert.deepEqual(
    lines.map((l) => `${l.name}: ${l.text}`),
    ['mlp--s0: completed', 'mlp--s1: failed: no weights', 'mlp--s2: distance', 'mlp--s3: pending', 'alone: completed'],
  );
  assert.deepEqual(queried, [`${pack} packProgress`], 'the pack is asked once, its progress with the stage of the run it is on: a busy workflow buffers one query and refuses the next');
  // A pack answers between workflow tasks, which a local activity holds for up to 8 s: it is not waited for past the deadline.
  assert.equal(signals.length, 1);
  assert.equal(signals[0]!.aborted, false);
  await new Promise((r) => setTimeout(r, PACK_QUERY_MS + 100));
  assert.equal(signals[0]!.aborted, true, `the query is cancelled after ${PACK_QUERY_MS} ms`);
});

test('the runs of a pack that does not answer (not started, or past the deadline) are left as the experiment has them, or as its last answer had them', async () => {
  let answer: PackProgress | undefined;
  const client = {
    withAbortSignal: async (_signal: AbortSignal, fn: () => Promise<unknown>) => fn(),
    workflow: { getHandle: () => ({ query: async () => answer ?? Promise.reject(new Error('workflow not found')) }) },
  } as unknown as Client;
  const progress: ExperimentProgress = {
    experimentId: 'e',
    name: 'e',
    store: 'file:///s',
    runs: ['s0', 's1'].map((s) => ({ name: `mlp--${s}`, runId: `e/mlp--${s}`, workflowId: 'e/pack', stage: 'download' as const })),
  };
  assert.deepEqual((await withPackProgress(client, progress)).runs, progress.runs);
  // Asked again and again, as `run` does: a pack that answered once and then is busy keeps its runs where it said.
  const last = new Map<string, PackProgress>();
  const stages = async () => (await withPackProgress(client, progress, last)).runs.map((r) => r.stage);
  assert.deepEqual(await stages(), ['download', 'download']);
  answer = { done: ['e/mlp--s0'], current: 'e/mlp--s1', stage: 'train' };
  assert.deepEqual(await stages(), ['completed', 'train']);
  answer = undefined;
  assert.deepEqual(await stages(), ['completed', 'train']);
});

/** A grid's progress: `stages` of the runs in `runs`, plus chunks of finished runs and runs not started. */
function gridProgress(stages: Array<RunSummary['stage']>, extra: Partial<ExperimentProgress> = {}): ExperimentProgress {
  const runs = stages.map((stage, i) => ({ name: `r${i}`, runId: `e/r${i}`, workflowId: `e/r${i}`, stage, ...(stage === 'failed' ? { error: { message: `r${i} broke\nstack` } } : {}) }));
  return { experimentId: 'e', name: 'e', store: 'file:///s', runs, ...extra };
}

const linesOf = (p: ExperimentProgress): RunLine[] => p.runs.map((r) => ({ name: r.name, text: r.stage === 'failed' ? `failed: ${r.error!.message.split('\n')[0]}` : r.stage }));

test('a small grid prints a line each time a run moves on', () => {
  const printed: string[] = [];
  const log = new ProgressLog((l) => printed.push(l));
  for (const stages of [['train', 'pending'], ['train', 'pending'], ['completed', 'train'], ['completed', 'failed']] as Array<Array<RunSummary['stage']>>) {
    const p = gridProgress(stages);
    log.update(p, linesOf(p));
  }
  assert.deepEqual(printed, ['[r0] train', '[r1] pending', '[r0] completed', '[r1] train', '[r1] failed: r1 broke']);
});

test('a grid of many runs prints its totals at each percent done and a line per failed run, counting chunks and runs not started', () => {
  const printed: string[] = [];
  const log = new ProgressLog((l) => printed.push(l));
  // 1000 runs: 300 in chunks (298 completed), 16 in this execution's list, 684 not started.
  const chunks = [
    { ref: { key: 'results/aa/a.json', sha256: 'a'.repeat(64), bytes: 1 }, first: 0, count: 150, completed: 150 },
    { ref: { key: 'results/bb/b.json', sha256: 'b'.repeat(64), bytes: 1 }, first: 150, count: 150, completed: 148 },
  ];
  const step = (stages: Array<RunSummary['stage']>) => {
    const p = gridProgress(stages, { chunks, pending: 1000 - 300 - stages.length });
    log.update(p, linesOf(p));
  };
  step(Array(16).fill('train'));
  step(Array(16).fill('train')); // nothing moved
  step([...Array(9).fill('completed'), ...Array(7).fill('train')]); // 30.9 %: still 30 %
  step([...Array(15).fill('completed'), 'failed']); // 31.6 %
  step([...Array(15).fill('completed'), 'failed']);
  assert.deepEqual(printed, [
    '300/1000 runs done (30%): 298 completed, 2 failed; 16 running',
    '[r15] failed: r15 broke',
    '316/1000 runs done (31%): 313 completed, 3 failed; 0 running',
  ]);
  assert.deepEqual(progressTotals(gridProgress(['pending', 'download', 'completed'])), { runs: 3, completed: 1, failed: 0, running: 1 });
});

test('the summary of a grid of many runs gives its totals and only the runs that need a look', () => {
  const runs = Array.from({ length: 120 }, (_, i) => ({ name: `r${i}`, runId: `e/r${i}`, workflowId: `e/r${i}`, status: 'completed' as RunSummary['stage'] }));
  runs[3] = { ...runs[3]!, status: 'failed', error: { message: 'out of memory\nstack' } } as (typeof runs)[number];
  runs[7] = { ...runs[7]!, trainingStatus: 'diverged', divergedAtEpoch: 2 } as (typeof runs)[number];
  const text = formatReport({ experimentId: 'e', name: 'sweep', status: 'completed-with-failures', store: 'file:///s', runs, report: { key: 'k', sha256: 's', bytes: 1, path: '/s/report.html' } });
  assert.deepEqual(text.split('\n'), [
    'experiment e (sweep): completed-with-failures',
    'store: file:///s',
    '',
    '120/120 runs done (100%): 119 completed, 1 failed; 0 running',
    'r3: failed - out of memory',
    'r7: diverged at epoch 2',
    '(every run, with its artifacts: --json)',
    '',
    'report: /s/report.html',
  ]);
  // A small one lists every run.
  assert.match(formatReport({ experimentId: 'e', name: 'small', status: 'completed', store: 'file:///s', runs: runs.slice(0, 3) }), /^r0: completed\nr1: completed\nr2: completed$/m);
  // A report in S3: the command that copies it to a file a browser opens.
  const inS3 = formatReport({ experimentId: 'e', name: 'small', status: 'completed', store: 's3://b/p', runs: runs.slice(0, 3), report: { key: 'k', sha256: 's', bytes: 1, path: 's3://b/p/k' } });
  assert.deepEqual(inS3.split('\n').slice(-2), ['report: s3://b/p/k', '  a copy to open: paramtrail report e --out report.html']);
});

test('the summary gives a line per grid cell across seeds: runs completed, test accuracy mean ± sd and range', () => {
  // Runs whose results are in the store, as in a grid of many runs: each carries its test accuracy in its brief.
  const stored = (name: string, testAccuracy: number): RunSummary => ({
    name,
    runId: `e/${name}`,
    workflowId: `e/${name}`,
    stage: 'completed',
    resultRef: { key: `runs/e/${name}/result.json`, sha256: 'ab'.repeat(32), bytes: 1 },
    brief: { trainingStatus: 'completed', testAccuracy, backend: 'cpu' },
  });
  const runs = [stored('mlp--fashion-mnist--s0', 0.5), stored('mlp--fashion-mnist--s1', 0.7), stored('mlp--fashion-mnist--s2', 0.6), stored('cnn--fashion-mnist--s0', 0.4)];
  runs.splice(3, 0, { name: 'mlp--fashion-mnist--s3', runId: 'e/mlp--fashion-mnist--s3', workflowId: 'e/mlp--fashion-mnist--s3', stage: 'failed', error: { message: 'diverged' } });
  const report = reportExperiment({ experimentId: 'e', name: 'seeds', store: 'file:///s', runs }, 'completed-with-failures');
  assert.deepEqual(report.runs[0]!.test, { accuracy: 0.5 }, 'a stored result reports the accuracy of its brief');
  const lines = formatReport(report).split('\n');
  assert.deepEqual(lines.slice(lines.indexOf('across seeds: test accuracy of the completed runs, mean ± sample sd (range)')), [
    'across seeds: test accuracy of the completed runs, mean ± sample sd (range)',
    '  mlp--fashion-mnist: 3/4 completed, 60.00% ± 10.00 (50.00% - 70.00%)',
    '  cnn--fashion-mnist: 1/1 completed, 40.00% (40.00% - 40.00%)',
  ]);
  // One run per cell: nothing to summarise.
  assert.ok(!formatReport(reportExperiment({ experimentId: 'e', name: 'one', store: 'file:///s', runs: runs.slice(3) }, 'completed')).includes('across seeds'));
});

test('a run with no validation split shows "-" for its validation accuracy, not 0.00%', () => {
  // NaN, as the training loop gives it, arrives through Temporal's JSON as null.
  const history = JSON.parse(JSON.stringify([{ epoch: 1, trainLoss: 1, trainAccuracy: 0.5, valLoss: NaN, valAccuracy: NaN }])) as Array<{ epoch: number; trainLoss: number; trainAccuracy: number; valLoss: number; valAccuracy: number }>;
  const text = formatReport({ experimentId: 'e', name: 'noval', status: 'completed', store: 'file:///s', runs: [{ name: 'r', runId: 'e/r', workflowId: 'e/r', status: 'completed', backend: 'cpu', history, test: { accuracy: 0.75 } }] });
  assert.match(text, /\n {2}epoch 1: val acc -, test acc 75\.00% \(backend cpu\)$/);
});

test('the summary lists compared pairs with their mean CKA of same layers, penultimate |r| and matched r, or their spread', () => {
  const pair = (a: string, b: string, cka: number[], r: number, rii?: number) => ({
    a,
    b,
    table: { key: `tables/${a}-${b}.arrow`, sha256: 'cd'.repeat(32), bytes: 1 },
    diagonal: cka.map((c, depth) => ({ layer: `l${depth}`, depth, cka: c })),
    penultimateMeanAbs: r,
    ...(rii === undefined ? {} : { penultimateMatched: rii }),
  });
  const base = { experimentId: 'e', name: 'pairs', status: 'completed', store: 'file:///s', runs: [] };
  // The matched r of layers of different widths is NaN, null through JSON.
  const compare = JSON.parse(JSON.stringify([pair('s0', 's1', [0.9, 0.7], 0.25, 0.6), pair('s0', 's2', [0.5], 0.125, NaN)]));
  const lines = formatReport({ ...base, compare }).split('\n');
  const title = 'compared 2 pairs: mean linear CKA of same layers, penultimate features\' mean |r| and matched r (feature i with feature i)';
  assert.deepEqual(lines.slice(lines.indexOf(title)), [title, '  s0 against s1: CKA 0.800, |r| 0.250, matched r 0.600', '  s0 against s2: CKA 0.500, |r| 0.125, matched r -']);
  // Eleven pairs: their spread. CKA 0.5 .. 1.0 by 0.05, |r| 0.3 each, matched r 0.1 .. 0.2 by 0.01.
  const many = Array.from({ length: 11 }, (_, i) => pair('s0', `s${i + 1}`, [0.5 + i * 0.05], 0.3, 0.1 + i * 0.01));
  const text = formatReport({ ...base, compare: many });
  assert.match(
    text,
    /compared 11 pairs: .*\n {2}over the pairs, mean ± sample sd \(range\): CKA 0\.750 ± 0\.166 \(0\.500 - 1\.000\); \|r\| 0\.300 ± 0\.000 \(0\.300 - 0\.300\); matched r 0\.150 ± 0\.033 \(0\.100 - 0\.200\)\n {2}\(every pair: the report, or --json\)/,
  );
  assert.ok(!text.includes('s0 against s1'));
  assert.ok(!formatReport(base).includes('compared'));
});
