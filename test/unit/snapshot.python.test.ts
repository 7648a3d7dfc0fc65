/**
 * A snapshot written by paramtrail opens in Python with pyarrow alone (test/unit/snapshot_reader.py),
 * with the same names, shapes, values and sha256s. Needs the project's Python (`npm run setup`); when
 * it is missing the test fails with resolveTool's message rather than skipping.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { type Snapshot, snapshotToArrow } from '../../artifacts/snapshot.js';
import { resolveTool } from '../../infra/tools.js';

const READER = fileURLToPath(new URL('./snapshot_reader.py', import.meta.url));

function sample(): Snapshot {
  const kernel = new Float32Array(3 * 3 * 2 * 4);
  for (let i = 0; i < kernel.length; i++) kernel[i] = Math.cos(i * 0.7) * 10 ** ((i % 7) - 3);
  return {
    runId: 'mlp-seed7',
    epoch: 2,
    step: 640,
    kind: 'weights',
    attrs: { model: 'mlp' },
    tensors: [
      { layer: 'conv2d_1', name: 'kernel', shape: [3, 3, 2, 4], values: kernel },
      { layer: 'conv2d_1', name: 'bias', shape: [6], values: new Float32Array([0.1, -0, 1e-45, NaN, Infinity, -3.5]) },
      { layer: 'dense_1', name: 'scale', shape: [], values: new Float32Array([42]) },
      { layer: 'dense_1', name: 'empty', shape: [0, 3], values: new Float32Array(0) },
    ],
  };
}

/** Expectations computed here from the input, independently of the codec. */
function expectations(s: Snapshot): object {
  return {
    run_id: s.runId,
    epoch: s.epoch,
    step: s.step,
    kind: s.kind,
    format_version: 1,
    tensors: s.tensors.map((t) => {
      const le = Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength);
      return {
        layer: t.layer,
        name: t.name,
        shape: t.shape,
        values_hex: le.toString('hex'),
        sha256: createHash('sha256').update(le).digest('hex'),
      };
    }),
  };
}

describe('snapshot read by pyarrow', () => {
  const dir = mkdtemp(join(tmpdir(), 'paramtrail-snapshot-py-'));
  after(async () => rm(await dir, { recursive: true, force: true }));

  function runReader(snapshotPath: string, expectedPath: string): { status: number | null; output: string } {
    const python = resolveTool('python', process.env);
    const result = spawnSync(python, [READER, snapshotPath, expectedPath], { encoding: 'utf8' });
    if (result.error) throw result.error;
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  }

  test('names, shapes, values and sha256s match', async () => {
    const s = sample();
    const snapshotPath = join(await dir, 'good.arrow');
    const expectedPath = join(await dir, 'good.json');
    await writeFile(snapshotPath, snapshotToArrow(s));
    await writeFile(expectedPath, JSON.stringify(expectations(s)));
    const { status, output } = runReader(snapshotPath, expectedPath);
    assert.equal(status, 0, output);
    assert.match(output, /^ok: /);
  });

  test('the reader notices a value that differs', async () => {
    const s = sample();
    const expected = expectations(s) as { tensors: Array<{ values_hex: string }> };
    // Expect one bit more in the first kernel value than was written.
    const hex = expected.tensors[0].values_hex;
    expected.tensors[0].values_hex = (parseInt(hex.slice(0, 2), 16) ^ 1).toString(16).padStart(2, '0') + hex.slice(2);
    const snapshotPath = join(await dir, 'bad.arrow');
    const expectedPath = join(await dir, 'bad.json');
    await writeFile(snapshotPath, snapshotToArrow(s));
    await writeFile(expectedPath, JSON.stringify(expected));
    const { status, output } = runReader(snapshotPath, expectedPath);
    assert.equal(status, 1, output);
    assert.match(output, /tensor 0 \(conv2d_1\/kernel\) values: first difference at index 0/);
  });
});
