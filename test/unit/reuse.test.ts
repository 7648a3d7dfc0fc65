/**
 * The reuse key of a training: equal configurations hash alike whatever their key order; anything that
 * changes the weights (model args, seed, training options, dataset bytes, code version) changes it;
 * what does not (run name, analyses, group, dataset sources) leaves it alone.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalJson, trainingHash } from '../../activities/reuse.js';
import type { DownloadResult } from '../../activities/types.js';
import { codeVersion, COMPUTE_PATHS, formatCodeVersion, reuseCodeVersion } from '../../activities/version.js';
import { expandRuns } from '../../config/grid.js';
import { tinyExperiment } from '../support/fixtures.js';

const run = expandRuns(tinyExperiment())[0]!;
const data: DownloadResult = {
  dataset: 'fashion-mnist',
  files: [
    { role: 'train-images', name: 'a', key: 'datasets/aa/x', sha256: 'a'.repeat(64), bytes: 1, source: 'store' },
    { role: 'train-labels', name: 'b', key: 'datasets/bb/y', sha256: 'b'.repeat(64), bytes: 1, source: 'store' },
  ],
  fetched: 0,
  cached: 2,
};

test('canonical JSON sorts keys at every level and drops undefined', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } }), '{"a":{"d":[1,{"y":2,"z":1}]},"b":1}');
});

test('the training hash follows what changes the weights, and only that', () => {
  const h = trainingHash(run, data, '0.1.0+abc');
  assert.match(h, /^[0-9a-f]{64}$/);
  assert.equal(trainingHash({ ...run, name: 'renamed', group: 'g', analyses: { ...run.analyses, aggregate: true } }, data, '0.1.0+abc'), h);
  assert.equal(trainingHash({ ...run, dataset: { ...run.dataset, sources: ['https://elsewhere/'] } }, data, '0.1.0+abc'), h);
  assert.equal(trainingHash(run, { ...data, files: [...data.files].reverse() }, '0.1.0+abc'), h, 'file order does not matter');
  assert.notEqual(trainingHash({ ...run, seed: run.seed + 1 }, data, '0.1.0+abc'), h);
  assert.notEqual(trainingHash({ ...run, model: { ...run.model, args: { hidden: [7] } } }, data, '0.1.0+abc'), h);
  assert.notEqual(trainingHash({ ...run, training: { ...run.training, epochs: run.training.epochs + 1 } }, data, '0.1.0+abc'), h);
  assert.notEqual(trainingHash(run, { ...data, files: [data.files[0]!, { ...data.files[1]!, sha256: 'c'.repeat(64) }] }, '0.1.0+abc'), h);
  assert.notEqual(trainingHash(run, data, '0.1.0+abd'), h);
});

test('reuse compares the compute code digest, which this checkout has and which ignores docs', async () => {
  const v = await codeVersion();
  assert.match(v.compute ?? '', /^[0-9a-f]{16}$/, 'a git checkout has a compute digest');
  assert.equal(reuseCodeVersion(v), `${v.version}+compute-${v.compute}`);
  assert.equal(reuseCodeVersion({ version: '0.1.0', commit: 'abc' }), '0.1.0+abc', 'without one, the commit');
  assert.ok(COMPUTE_PATHS.includes('ml') && COMPUTE_PATHS.includes('activities/train.ts'));
  for (const other of ['docs', 'cli', 'report', 'activities/plot.ts', 'test']) assert.ok(!COMPUTE_PATHS.includes(other), `${other} does not retrain`);
});

test('code versions read as version+commit with a digest of uncommitted changes', () => {
  assert.equal(formatCodeVersion({ version: '0.1.0' }), '0.1.0');
  assert.equal(formatCodeVersion({ version: '0.1.0', commit: '1f29c3c0a1b2c3d4e5f6' }), '0.1.0+1f29c3c0a1b2');
  assert.equal(formatCodeVersion({ version: '0.1.0', commit: '1f29c3c0a1b2c3d4e5f6', dirty: '0123456789abcdef' }), '0.1.0+1f29c3c0a1b2.dirty-0123456789abcdef');
});
