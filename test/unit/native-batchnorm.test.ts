/**
 * On the native 'tensorflow' backend the BatchNorm layer trains through TensorFlow's fused kernels
 * (ml/kernels/batchnorm.ts, registered by ml/backends/native.ts); on the cpu backend through tfjs ops.
 * Both give the same training-mode output, gradients for the input, gamma and beta, and updated running
 * statistics, within 1e-5 of the largest magnitude in each result, for an image batch and a dense batch
 * with non-default momentum and epsilon; a frozen layer leaves its running statistics alone on both.
 * A wrong axis, a biased running variance or a momentum taken the wrong way round differs by far more.
 * The cases and the comparison are in test/support/batchnorm.ts, shared with wasm-batchnorm.test.ts.
 *
 * Runs only where `npm run setup:native` has built the addon; elsewhere the test is skipped and says why
 * (in CI, or with PARAMTRAIL_REQUIRE_NATIVE=1, a missing build fails it).
 */
import { test } from 'node:test';
import { activateNativeBackend, nativeTestGuard } from '../support/backends.js';
import { assertBatchNormMatchesCpu } from '../support/batchnorm.js';

const native = nativeTestGuard('native-batchnorm.test');

test('BatchNorm trains alike through the native fused kernels and through tfjs ops on cpu', { skip: native.skip }, async () => {
  native.assertBuilt();
  await assertBatchNormMatchesCpu({
    backend: 'native',
    activate: activateNativeBackend,
    kernels: 'the native backend must register the fused batch-norm kernels',
  });
});
