/**
 * Fast CPU kernel for the gradient of 2-D average pooling (AvgPoolGrad), NHWC.
 *
 * The built-in kernel reads dy through TensorBuffer.get once per window position of every input
 * pixel; this version walks flat arrays with precomputed offsets. For each input pixel it adds the
 * same dy terms in the same order (ascending output row, then column) into a float64 sum and scales it
 * by 1 / (filterHeight * filterWidth) as the built-in kernel does, so the result is bit-identical.
 *
 * Registered by ml/backend.ts.
 */
import { backend_util } from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { allFloat32, float32Output, float32Values, type FastKernel, type KernelArgs } from './common.js';

export const avgPoolGradFast: FastKernel = {
  kernelName: 'AvgPoolGrad',
  run({ inputs, backend, attrs }: KernelArgs): TensorInfo | null {
    const dy = inputs['dy']!;
    const x = inputs['input']!;
    if (!allFloat32(dy)) return null;
    // Same call as the built-in kernel (it ignores dimRoundingMode for the gradient, so do we).
    const info = backend_util.computePool2DInfo(
      x.shape as [number, number, number, number],
      attrs['filterSize'] as number | [number, number],
      attrs['strides'] as number | [number, number],
      1,
      attrs['pad'] as 'valid' | 'same' | number | backend_util.ExplicitPadding,
    );
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, strideHeight, strideWidth } = info;
    const { filterHeight, filterWidth } = info;
    const padTop = info.padInfo.top;
    const padLeft = info.padInfo.left;
    const multiplier = 1 / (filterHeight * filterWidth);
    const dyv = float32Values(backend, dy);
    const dx = new Float32Array(batchSize * inHeight * inWidth * inChannels);
    const acc = new Float64Array(inChannels);
    for (let b = 0; b < batchSize; b++) {
      for (let xR = 0; xR < inHeight; xR++) {
        // Output rows whose window [yR * stride - padTop, + filterHeight) covers input row xR.
        const yRMin = Math.max(0, Math.ceil((xR + padTop - filterHeight + 1) / strideHeight));
        const yRMax = Math.min(outHeight - 1, Math.floor((xR + padTop) / strideHeight));
        for (let xC = 0; xC < inWidth; xC++) {
          const yCMin = Math.max(0, Math.ceil((xC + padLeft - filterWidth + 1) / strideWidth));
          const yCMax = Math.min(outWidth - 1, Math.floor((xC + padLeft) / strideWidth));
          acc.fill(0);
          for (let yR = yRMin; yR <= yRMax; yR++) {
            for (let yC = yCMin; yC <= yCMax; yC++) {
              const dyOff = ((b * outHeight + yR) * outWidth + yC) * inChannels;
              for (let d = 0; d < inChannels; d++) acc[d] += dyv[dyOff + d]!;
            }
          }
          const dxOff = ((b * inHeight + xR) * inWidth + xC) * inChannels;
          for (let d = 0; d < inChannels; d++) dx[dxOff + d] = acc[d]! * multiplier;
        }
      }
    }
    return float32Output(backend, x.shape, dx);
  },
};
