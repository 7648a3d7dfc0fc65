/**
 * The CLI's download progress line, from the download activity's heartbeat: the file and its position,
 * a bar and the bytes received out of the total, or only the bytes when the total is unknown. And the
 * lines of runs that share a pack's workflow.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Client } from '@temporalio/client';
import { downloadDetail, progressBar, progressLines } from '../../cli/progress.js';
import type { ExperimentProgress } from '../../workflows/types.js';

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

test('runs of a pack: finished ones, the one the pack is on (with its stage), and those still waiting', async () => {
  const pack = 'e/mlp--s0..mlp--s2';
  const queried: string[] = [];
  // The two queries a pack's workflow answers, as a server would relay them.
  const client = {
    workflow: {
      getHandle: (id: string) => ({
        query: async (name: string) => {
          queried.push(`${id} ${name}`);
          if (name === 'packProgress') return { done: ['e/mlp--s0'], current: 'e/mlp--s1' };
          if (name === 'stage') return 'distance';
          throw new Error(`unexpected query ${name}`);
        },
      }),
    },
  } as unknown as Client;
  const runs = ['s0', 's1', 's2'].map((s) => ({ name: `mlp--${s}`, runId: `e/mlp--${s}`, workflowId: pack, stage: 'download' as const }));
  const progress: ExperimentProgress = { experimentId: 'e', name: 'e', store: 'file:///s', runs: [...runs, { name: 'alone', runId: 'e/alone', workflowId: 'e/alone', stage: 'completed' }] };
  const lines = await progressLines(client, progress);
  assert.deepEqual(
    lines.map((l) => `${l.name}: ${l.text}`),
    ['mlp--s0: finished, pack running', 'mlp--s1: distance', 'mlp--s2: pending', 'alone: completed'],
  );
  assert.ok(!queried.some((q) => q.startsWith('e/alone')), 'a run of its own that completed is not queried');
  assert.equal(queried.filter((q) => q.endsWith('packProgress')).length, 1, 'the pack is asked once for all its runs');
});
