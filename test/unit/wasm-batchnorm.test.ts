/**
 * On the 'wasm' backend the BatchNorm layer trains through paramtrail's flat batch-norm kernels
 * (ml/kernels/batchnorm.ts, registered by ml/backends/wasm.ts); on the cpu backend through tfjs ops.
 * Both give the same training-mode output, gradients for the input, gamma and beta, and updated running
 * statistics, within 1e-5 of the largest magnitude in each result, for an image batch and a dense batch
 * with non-default momentum and epsilon; a frozen layer leaves its running statistics alone on both.
 * A wrong axis, a biased running variance or a momentum taken the wrong way round differs by far more.
 * The cases and the comparison are in test/support/batchnorm.ts, shared with native-batchnorm.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WASM_BACKEND, initWasmBackend } from '../../ml/backends/wasm.js';
import { assertBatchNormMatchesCpu } from '../support/batchnorm.js';

test('BatchNorm trains alike through the wasm batch-norm kernels and through tfjs ops on cpu', async () => {
  await assertBatchNormMatchesCpu({
    backend: 'wasm',
    activate: async () => assert.equal(await initWasmBackend(), WASM_BACKEND),
    kernels: 'the wasm backend must register the batch-norm kernels',
  });
});
