/**
 * What the backend tests share (test/unit/native*.test.ts, test/unit/wasm-*.test.ts): each computes a
 * result on the cpu backend, switches to another backend, computes it again and compares the two with
 * `assertClose`; the native tests run only where the addon is built (`nativeTestGuard`).
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { NATIVE_BACKEND, findNativeBuild, loadNativeBackend } from '../../ml/backends/native.js';

/**
 * Of the largest magnitude in the reference. Kernels that sum the same terms in another order differ by
 * float32 rounding (~1e-7 relative); a wrong padding, stride, layout, axis or operand differs by whole units.
 */
export const RELATIVE_TOLERANCE = 1e-5;

export interface CloseOptions {
  /** The backend under test, named in the message (`|wasm - cpu| <= ...`). */
  backend: string;
  /** Also fail when the reference is all zeros, where any tolerance relative to it would be zero too. */
  nonZeroReference?: boolean;
}

/** `actual` (on `backend`) equals `expected` (on cpu) within RELATIVE_TOLERANCE of the largest |expected|. */
export function assertClose(actual: Float32Array, expected: Float32Array, what: string, { backend, nonZeroReference = false }: CloseOptions): void {
  assert.equal(actual.length, expected.length, `${what}: expected ${expected.length} values, found ${actual.length}`);
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  if (nonZeroReference) assert.ok(scale > 0, `${what}: the reference is all zeros`);
  let worst = 0;
  let at = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= worst)) [worst, at] = [d, i]; // NaN lands here too
  }
  assert.ok(
    worst <= RELATIVE_TOLERANCE * scale,
    `${what}: expected |${backend} - cpu| <= ${RELATIVE_TOLERANCE} * ${scale.toPrecision(4)}, found ${worst} at index ${at} (${backend} ${actual[at]}, cpu ${expected[at]})`,
  );
}

/** Uniform values in [lo, hi) from tfjs's seeded generator, as a plain array (the same on every backend). */
export function randomUniformValues(shape: number[], seed: number, lo = -1, hi = 1): Float32Array {
  return tf.tidy(() => tf.randomUniform(shape, lo, hi, 'float32', seed).dataSync() as Float32Array);
}

export interface NativeTestGuard {
  /** The `skip` option of the test: why it is skipped, or false when it runs. */
  skip: string | false;
  /** Fails the running test when the addon is missing (it runs anyway only where it is required). */
  assertBuilt(): void;
}

/**
 * Whether a native-backend test runs here. CI builds the addon (`npm run setup:native` in .ci/run), so
 * there, or with PARAMTRAIL_REQUIRE_NATIVE=1, a missing build is a failure; on a machine where nobody
 * built it, the test is skipped and `file` says why on the console.
 */
export function nativeTestGuard(file: string, env: NodeJS.ProcessEnv = process.env): NativeTestGuard {
  const found = findNativeBuild();
  const required = env.CI === 'true' || env.PARAMTRAIL_REQUIRE_NATIVE === '1';
  const missing = 'missing' in found ? found.missing : undefined;
  if (missing !== undefined && !required) console.log(`${file}: skipped because ${missing}`);
  return {
    skip: missing !== undefined && !required ? missing : false,
    assertBuilt() {
      if (missing !== undefined) assert.fail(`the native backend is required here (CI or PARAMTRAIL_REQUIRE_NATIVE=1) but ${missing}`);
    },
  };
}

/** Loads the native backend and makes it the active one, failing with the reasons it was not loaded. */
export async function activateNativeBackend(): Promise<void> {
  const reasons: string[] = [];
  assert.equal(await loadNativeBackend({ onMissing: (r) => reasons.push(r) }), true, `loadNativeBackend failed: ${reasons.join('; ')}`);
  assert.equal(tf.getBackend(), NATIVE_BACKEND);
}
