/**
 * Both convolution gradients for the 'wasm' backend as one matrix product each, run by the backend's own
 * BatchMatMul (XNNPACK, SIMD), with the data movement around it in flat loops on the wasm heap:
 *
 * - Conv2DBackpropFilter: dw = patches(x)^T . dy, where patches(x) has a row for every output position
 *   (b, y, x) holding the input values the filter saw there (zero where it overhung the padding).
 *   tfjs-backend-wasm has no such kernel; the scalar loop of ml/kernels/conv2d.ts is ~5x slower.
 * - Conv2DBackpropInput: dpatches = dy . w^T, then every patch gradient is added back onto the input
 *   position it came from (col2im). It replaces tfjs-backend-wasm's own kernel, a scalar loop ~3x slower.
 *
 * They sum in another order than the cpu built-in kernels, so the results agree to float32 rounding, not
 * bit for bit (test/unit/wasm-kernels.test.ts); on wasm itself they are deterministic. NHWC float32 only:
 * other cases return null. Registered by ml/backends/wasm.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util } from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { allFloat32, type FastKernel, type KernelArgs } from './common.js';

type Shape4 = [number, number, number, number];

function convInfo(xShape: Shape4, filterShape: Shape4, attrs: KernelArgs['attrs']): backend_util.Conv2DInfo {
  return backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    attrs['strides'] as number | [number, number],
    1, // the gradient ops have no dilation attribute; tfjs rejects dilated conv gradients earlier
    attrs['pad'] as 'valid' | 'same' | number | backend_util.ExplicitPadding,
    attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    false,
    'channelsLast',
  );
}

function matMul(backend: BackendWasm, a: TensorInfo, b: TensorInfo, transposeB: boolean): TensorInfo {
  return tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc({ inputs: { a, b }, backend, attrs: { transposeA: false, transposeB } }) as TensorInfo;
}

export const conv2DBackpropFilterMatMul: FastKernel = {
  kernelName: 'Conv2DBackpropFilter',
  run({ inputs, backend, attrs }: KernelArgs): TensorInfo | null {
    if (!('wasm' in backend)) return null;
    const wasm = backend as BackendWasm;
    const x = inputs['x']!;
    const dy = inputs['dy']!;
    const format = attrs['dataFormat'];
    if (!(format === undefined || format === 'NHWC') || !allFloat32(x, dy)) return null;
    const info = convInfo(x.shape as Shape4, attrs['filterShape'] as Shape4, attrs);
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
    const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
    const padTop = info.padInfo.top;
    const padLeft = info.padInfo.left;
    const rows = batchSize * outHeight * outWidth; // M: output positions
    const cols = filterHeight * filterWidth * inChannels; // K: filter taps
    // patches^T as [1, K, M], so the product needs no transposed operand. Allocated first: allocating
    // may grow the heap and detach views taken before.
    const patches = wasm.makeOutput([1, cols, rows], 'float32');
    const pv = wasm.typedArrayFromHeap(patches) as Float32Array;
    const xv = wasm.typedArrayFromHeap(x) as Float32Array;
    pv.fill(0);
    let m = 0;
    for (let b = 0; b < batchSize; b++) {
      const xBatch = b * inHeight * inWidth * inChannels;
      for (let yR = 0; yR < outHeight; yR++) {
        const xRCorner = yR * strideHeight - padTop;
        for (let yC = 0; yC < outWidth; yC++, m++) {
          const xCCorner = yC * strideWidth - padLeft;
          for (let wR = 0; wR < filterHeight; wR++) {
            const xR = xRCorner + wR;
            if (xR < 0 || xR >= inHeight) continue;
            for (let wC = 0; wC < filterWidth; wC++) {
              const xC = xCCorner + wC;
              if (xC < 0 || xC >= inWidth) continue;
              const xOff = xBatch + (xR * inWidth + xC) * inChannels;
              let k = (wR * filterWidth + wC) * inChannels * rows + m;
              for (let d1 = 0; d1 < inChannels; d1++, k += rows) pv[k] = xv[xOff + d1]!;
            }
          }
        }
      }
    }
    // dy's [B, OH, OW, CO] values are already the [1, M, CO] matrix: the same data, another shape.
    const dyMatrix: TensorInfo = { dataId: dy.dataId, shape: [1, rows, outChannels], dtype: 'float32' };
    const product = matMul(wasm, patches, dyMatrix, false);
    wasm.disposeData(patches.dataId);
    // [1, K, CO] is the filter [FH, FW, CI, CO] in row-major order.
    return { dataId: product.dataId, shape: [...info.filterShape], dtype: 'float32' };
  },
};

export const conv2DBackpropInputMatMul: FastKernel = {
  kernelName: 'Conv2DBackpropInput',
  run({ inputs, backend, attrs }: KernelArgs): TensorInfo | null {
    if (!('wasm' in backend)) return null;
    const wasm = backend as BackendWasm;
    const dy = inputs['dy']!;
    const filter = inputs['filter']!;
    const format = attrs['dataFormat'];
    if (!(format === undefined || format === 'NHWC') || !allFloat32(dy, filter)) return null;
    const info = convInfo(attrs['inputShape'] as Shape4, filter.shape as Shape4, attrs);
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
    const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
    const padTop = info.padInfo.top;
    const padLeft = info.padInfo.left;
    const rows = batchSize * outHeight * outWidth; // M: output positions
    const cols = filterHeight * filterWidth * inChannels; // K: filter taps
    // [1, M, CO] . ([1, K, CO])^T = [1, M, K]: the gradient of every patch. The filter [FH, FW, CI, CO]
    // is the [K, CO] matrix as it is stored.
    const dyMatrix: TensorInfo = { dataId: dy.dataId, shape: [1, rows, outChannels], dtype: 'float32' };
    const wMatrix: TensorInfo = { dataId: filter.dataId, shape: [1, cols, outChannels], dtype: 'float32' };
    const patchGrads = matMul(wasm, dyMatrix, wMatrix, true);
    const dx = wasm.makeOutput([...info.inShape], 'float32');
    // Views after the last allocation.
    const gv = wasm.typedArrayFromHeap(patchGrads) as Float32Array;
    const dxv = wasm.typedArrayFromHeap(dx) as Float32Array;
    dxv.fill(0);
    let g = 0;
    for (let b = 0; b < batchSize; b++) {
      const xBatch = b * inHeight * inWidth * inChannels;
      for (let yR = 0; yR < outHeight; yR++) {
        const xRCorner = yR * strideHeight - padTop;
        for (let yC = 0; yC < outWidth; yC++, g += cols) {
          const xCCorner = yC * strideWidth - padLeft;
          for (let wR = 0; wR < filterHeight; wR++) {
            const xR = xRCorner + wR;
            if (xR < 0 || xR >= inHeight) continue;
            for (let wC = 0; wC < filterWidth; wC++) {
              const xC = xCCorner + wC;
              if (xC < 0 || xC >= inWidth) continue;
              const xOff = xBatch + (xR * inWidth + xC) * inChannels;
              const gOff = g + (wR * filterWidth + wC) * inChannels;
              for (let d1 = 0; d1 < inChannels; d1++) dxv[xOff + d1] += gv[gOff + d1]!;
            }
          }
        }
      }
    }
    wasm.disposeData(patchGrads.dataId);
    return dx;
  },
};
