/**
 * Fast CPU kernels for 2-D convolution: the forward pass (Conv2D, and FusedConv2D for inference) and both gradients
 * (Conv2DBackpropFilter, Conv2DBackpropInput), NHWC only.
 *
 * The built-in kernels of @tensorflow/tfjs-backend-cpu address every element through TensorBuffer.get
 * (an index computation and a bounds check per multiply-add), which makes Conv2DBackpropFilter about
 * 100x slower than a flat loop; LeNet-5 training spends ~97 % of its time there. These versions walk
 * the flat Float32Arrays with precomputed offsets.
 *
 * Each kernel visits the terms of every output element in the same order as the built-in kernel and
 * accumulates in the same precision (Conv2D in float32, as the built-in adds into its Float32Array
 * output; both backprops in float64, as the built-in sums into a JS number), so the results are
 * bit-identical to the built-in ones, and runs give the same bits with and without fast kernels.
 * Unsupported cases (NCHW, non-float32 inputs) return null and fall back to the built-in kernel.
 *
 * Registered by ml/backend.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util } from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { allFloat32, float32Output, float32Values, type FastKernel, type KernelArgs } from './common.js';

type Shape4 = [number, number, number, number];
type ConvPad = 'valid' | 'same' | number | backend_util.ExplicitPadding;
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

function isNHWC(dataFormat: unknown): boolean {
  // Conv2D and its gradients carry 'NHWC' / 'NCHW'; undefined means the default, NHWC.
  return dataFormat === undefined || dataFormat === 'NHWC' || dataFormat === 'channelsLast';
}

/** y = conv2d(x, w): x [b, inH, inW, inC], w [fh, fw, inC, outC], y [b, outH, outW, outC]. */
export const conv2DFast: FastKernel = {
  kernelName: 'Conv2D',
  run({ inputs, backend, attrs }: KernelArgs): TensorInfo | null {
    const x = inputs['x']!;
    const filter = inputs['filter']!;
    if (!isNHWC(attrs['dataFormat']) || !allFloat32(x, filter)) return null;
    const info = backend_util.computeConv2DInfo(
      x.shape as Shape4,
      filter.shape as Shape4,
      attrs['strides'] as number | [number, number],
      attrs['dilations'] as number | [number, number],
      attrs['pad'] as ConvPad,
      attrs['dimRoundingMode'] as Rounding,
      false,
      'channelsLast',
    );
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
    const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
    const padTop = info.padInfo.top;
    const padLeft = info.padInfo.left;
    const xv = float32Values(backend, x);
    const wv = float32Values(backend, filter);
    const y = new Float32Array(batchSize * outHeight * outWidth * outChannels);
    // Filter transposed to [outC, fh, fw, inC]: for dilation 1, one filter row times one input row is
    // then a dot product over fw * inC contiguous values in both arrays.
    const rowLen = filterWidth * inChannels;
    const wt = new Float32Array(outChannels * filterHeight * rowLen);
    for (let wR = 0; wR < filterHeight; wR++) {
      for (let k = 0; k < rowLen; k++) {
        for (let d2 = 0; d2 < outChannels; d2++) {
          wt[(d2 * filterHeight + wR) * rowLen + k] = wv[(wR * rowLen + k) * outChannels + d2]!;
        }
      }
    }
    for (let b = 0; b < batchSize; b++) {
      const xBatch = b * inHeight * inWidth * inChannels;
      for (let yR = 0; yR < outHeight; yR++) {
        const xRCorner = yR * strideHeight - padTop;
        for (let yC = 0; yC < outWidth; yC++) {
          const xCCorner = yC * strideWidth - padLeft;
          const yOff = ((b * outHeight + yR) * outWidth + yC) * outChannels;
          // Filter columns whose input column lies inside the image.
          const wCMin = Math.max(0, Math.ceil(-xCCorner / dilationWidth));
          const wCMax = Math.min(filterWidth, Math.ceil((inWidth - xCCorner) / dilationWidth));
          for (let d2 = 0; d2 < outChannels; d2++) {
            // Math.fround after every addition: the built-in kernel accumulates in its Float32Array
            // output, in this same (wR, wC, d1) order, so this reproduces its bits exactly.
            let acc = 0;
            for (let wR = 0; wR < filterHeight; wR++) {
              const xR = xRCorner + wR * dilationHeight;
              if (xR < 0 || xR >= inHeight) continue;
              const wRow = (d2 * filterHeight + wR) * rowLen;
              const xRow = xBatch + xR * inWidth * inChannels;
              if (dilationWidth === 1) {
                const xStart = xRow + (xCCorner + wCMin) * inChannels;
                const wStart = wRow + wCMin * inChannels;
                const len = (wCMax - wCMin) * inChannels;
                for (let k = 0; k < len; k++) acc = Math.fround(acc + xv[xStart + k]! * wt[wStart + k]!);
              } else {
                for (let wC = wCMin; wC < wCMax; wC++) {
                  const xOff = xRow + (xCCorner + wC * dilationWidth) * inChannels;
                  const wOff = wRow + wC * inChannels;
                  for (let d1 = 0; d1 < inChannels; d1++) acc = Math.fround(acc + xv[xOff + d1]! * wt[wOff + d1]!);
                }
              }
            }
            y[yOff + d2] = acc;
          }
        }
      }
    }
    return float32Output(backend, info.outShape, y);
  },
};

/** dW = sum over batch and output positions of x * dy: x [b, inH, inW, inC], dy [b, outH, outW, outC]. */
export const conv2DBackpropFilterFast: FastKernel = {
  kernelName: 'Conv2DBackpropFilter',
  run({ inputs, backend, attrs }: KernelArgs): TensorInfo | null {
    const x = inputs['x']!;
    const dy = inputs['dy']!;
    if (!isNHWC(attrs['dataFormat']) || !allFloat32(x, dy)) return null;
    const info = backend_util.computeConv2DInfo(
      x.shape as Shape4,
      attrs['filterShape'] as Shape4,
      attrs['strides'] as number | [number, number],
      1, // the gradient op has no dilation attribute; tfjs rejects dilated conv gradients earlier
      attrs['pad'] as ConvPad,
      attrs['dimRoundingMode'] as Rounding,
      false,
      'channelsLast',
    );
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
    const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
    const padTop = info.padInfo.top;
    const padLeft = info.padInfo.left;
    const xv = float32Values(backend, x);
    const dyv = float32Values(backend, dy);
    // Float64 accumulator, visited in (b, yR, yC) order for each filter element: the built-in kernel
    // sums the same terms in the same order into a JS number, then rounds once to float32.
    const acc = new Float64Array(filterHeight * filterWidth * inChannels * outChannels);
    const wRowStride = filterWidth * inChannels * outChannels;
    const wColStride = inChannels * outChannels;
    for (let b = 0; b < batchSize; b++) {
      const xBatch = b * inHeight * inWidth * inChannels;
      for (let yR = 0; yR < outHeight; yR++) {
        const xRCorner = yR * strideHeight - padTop;
        for (let yC = 0; yC < outWidth; yC++) {
          const xCCorner = yC * strideWidth - padLeft;
          const dyOff = ((b * outHeight + yR) * outWidth + yC) * outChannels;
          for (let wR = 0; wR < filterHeight; wR++) {
            const xR = xRCorner + wR;
            if (xR < 0 || xR >= inHeight) continue;
            const xRow = xBatch + xR * inWidth * inChannels;
            for (let wC = 0; wC < filterWidth; wC++) {
              const xC = xCCorner + wC;
              if (xC < 0 || xC >= inWidth) continue;
              const xOff = xRow + xC * inChannels;
              let accOff = wR * wRowStride + wC * wColStride;
              for (let d1 = 0; d1 < inChannels; d1++) {
                const xVal = xv[xOff + d1]!;
                for (let d2 = 0; d2 < outChannels; d2++) {
                  acc[accOff + d2] += xVal * dyv[dyOff + d2]!;
                }
                accOff += outChannels;
              }
            }
          }
        }
      }
    }
    return float32Output(backend, info.filterShape, Float32Array.from(acc));
  },
};

/** dx = transposed convolution of dy with W: dy [b, outH, outW, outC], W [fh, fw, inC, outC]. */
export const conv2DBackpropInputFast: FastKernel = {
  kernelName: 'Conv2DBackpropInput',
  run({ inputs, backend, attrs }: KernelArgs): TensorInfo | null {
    const dy = inputs['dy']!;
    const filter = inputs['filter']!;
    if (!isNHWC(attrs['dataFormat']) || !allFloat32(dy, filter)) return null;
    const info = backend_util.computeConv2DInfo(
      attrs['inputShape'] as Shape4,
      filter.shape as Shape4,
      attrs['strides'] as number | [number, number],
      1,
      attrs['pad'] as ConvPad,
      attrs['dimRoundingMode'] as Rounding,
      false,
      'channelsLast',
    );
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
    const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
    const padTop = info.padInfo.top;
    const padLeft = info.padInfo.left;
    const dyv = float32Values(backend, dy);
    const wv = float32Values(backend, filter);
    const dx = new Float32Array(batchSize * inHeight * inWidth * inChannels);
    // Float64 per-pixel accumulator over (yR, yC, d2) in ascending order, as the built-in kernel does.
    const acc = new Float64Array(inChannels);
    const wRowStride = filterWidth * inChannels * outChannels;
    const wColStride = inChannels * outChannels;
    for (let b = 0; b < batchSize; b++) {
      for (let xR = 0; xR < inHeight; xR++) {
        // Output rows yR with yR * strideHeight + wR - padTop == xR for some filter row wR.
        const yRMin = Math.max(0, Math.ceil((xR + padTop - filterHeight + 1) / strideHeight));
        const yRMax = Math.min(outHeight - 1, Math.floor((xR + padTop) / strideHeight));
        for (let xC = 0; xC < inWidth; xC++) {
          const yCMin = Math.max(0, Math.ceil((xC + padLeft - filterWidth + 1) / strideWidth));
          const yCMax = Math.min(outWidth - 1, Math.floor((xC + padLeft) / strideWidth));
          acc.fill(0);
          for (let yR = yRMin; yR <= yRMax; yR++) {
            const wR = xR + padTop - yR * strideHeight;
            for (let yC = yCMin; yC <= yCMax; yC++) {
              const wC = xC + padLeft - yC * strideWidth;
              const dyOff = ((b * outHeight + yR) * outWidth + yC) * outChannels;
              let wOff = wR * wRowStride + wC * wColStride;
              for (let d1 = 0; d1 < inChannels; d1++) {
                let s = acc[d1]!;
                for (let d2 = 0; d2 < outChannels; d2++) {
                  s += dyv[dyOff + d2]! * wv[wOff + d2]!;
                }
                acc[d1] = s;
                wOff += outChannels;
              }
            }
          }
          const dxOff = ((b * inHeight + xR) * inWidth + xC) * inChannels;
          for (let d1 = 0; d1 < inChannels; d1++) dx[dxOff + d1] = acc[d1]!;
        }
      }
    }
    return float32Output(backend, info.inShape, dx);
  },
};

/** Kernels applied after the convolution by FusedConv2D, by activation name (as the built-in kernel does). */
const ACTIVATION_KERNELS: Record<string, string> = {
  linear: 'Identity',
  relu: 'Relu',
  relu6: 'Relu6',
  elu: 'Elu',
  sigmoid: 'Sigmoid',
  prelu: 'Prelu',
  leakyrelu: 'LeakyRelu',
};

/**
 * conv2d + bias + activation, which tfjs-layers uses for inference. The built-in kernel calls the slow
 * built-in conv2D directly (not through the registry); this one runs the fast convolution, then the
 * same registered Add and activation kernels the built-in one calls, so its result is bit-identical.
 */
export const fusedConv2DFast: FastKernel = {
  kernelName: 'FusedConv2D',
  run(args: KernelArgs): TensorInfo | null {
    const { inputs, backend, attrs } = args;
    // The cpu backend's only: it calls that backend's Add and activation kernels.
    if (!('data' in backend)) return null;
    const activation = (attrs['activation'] as string | undefined) ?? 'linear';
    if (!isNHWC(attrs['dataFormat']) || !(activation in ACTIVATION_KERNELS)) return null;
    const { x, filter, bias, preluActivationWeights } = inputs;
    const conv = conv2DFast.run({
      inputs: { x: x!, filter: filter! },
      backend,
      attrs: {
        strides: attrs['strides']!,
        pad: attrs['pad']!,
        dataFormat: 'NHWC',
        dilations: attrs['dilations']!,
        dimRoundingMode: attrs['dimRoundingMode']!,
      },
    });
    if (!conv) return null;
    const kernel = (name: string) => tf.getKernel(name, 'cpu').kernelFunc;
    let result = conv;
    if (bias) {
      const old = result;
      result = kernel('Add')({ inputs: { a: result, b: bias }, backend }) as TensorInfo;
      backend.disposeIntermediateTensorInfo(old);
    }
    const old = result;
    const act = ACTIVATION_KERNELS[activation]!;
    if (activation === 'prelu') {
      result = kernel(act)({ inputs: { x: result, alpha: preluActivationWeights! }, backend }) as TensorInfo;
    } else if (activation === 'leakyrelu') {
      result = kernel(act)({ inputs: { x: result }, backend, attrs: { alpha: attrs['leakyreluAlpha']! } }) as TensorInfo;
    } else {
      result = kernel(act)({ inputs: { x: result }, backend }) as TensorInfo;
    }
    backend.disposeIntermediateTensorInfo(old);
    return result;
  },
};
