/**
 * The CLI's download progress line, from the download activity's heartbeat: the file and its position,
 * a bar and the bytes received out of the total, or only the bytes when the total is unknown.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { downloadDetail, progressBar } from '../../cli/progress.js';

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
