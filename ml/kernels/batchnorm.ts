/**
 * Training-mode batch normalisation as one forward and one backward kernel, for backends that provide
 * them. Built from tfjs ops, a batch-norm layer costs some twenty element-wise kernels forward and
 * backward over the whole activation (moments, normalise, the gradient of each); on the native backend
 * these dominate a ResNet's training step. TensorFlow has both halves fused (FusedBatchNormV3 and
 * FusedBatchNormGradV3), and ml/backends/native.ts registers them under the kernel names below;
 * ml/backends/wasm.ts registers the flat-loop versions at the end of this file.
 *
 * ml/models/layers.ts (BatchNorm) calls fusedBatchNormTraining() when fusedBatchNormAvailable() says the
 * active backend has the kernels, and its tfjs-op path otherwise, so the backend without them (cpu)
 * computes exactly what it computed before.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { float32Output, float32Values, type KernelArgs } from './common.js';

/**
 * Forward kernel. Inputs x [N, H, W, C], scale, offset, mean, variance ([C]: the running statistics).
 * Attrs epsilon, momentum. Outputs y, the updated running mean and running variance
 * ((1 - momentum) * running + momentum * batch, with the unbiased batch variance), then three opaque
 * tensors the backward kernel needs.
 */
export const FUSED_BATCH_NORM_TRAIN = 'ParamtrailFusedBatchNormTrain';

/**
 * Backward kernel. Inputs dy, x, scale and the forward kernel's three opaque outputs (reserve1..3).
 * Attr epsilon. Outputs dx, dscale, doffset.
 */
export const FUSED_BATCH_NORM_TRAIN_GRAD = 'ParamtrailFusedBatchNormTrainGrad';

/** True when the active backend has both fused kernels. */
export function fusedBatchNormAvailable(): boolean {
  const backend = tf.getBackend();
  return tf.getKernel(FUSED_BATCH_NORM_TRAIN, backend) !== undefined && tf.getKernel(FUSED_BATCH_NORM_TRAIN_GRAD, backend) !== undefined;
}

let gradientRegistered = false;

/**
 * Registers the forward kernel's gradient (once; the gradient registry is shared by every backend, but
 * only a backend with the forward kernel ever records it). The running statistics are state, not
 * parameters: their gradients are zeros, and nothing asks for them in practice.
 */
export function registerFusedBatchNormGradient(): void {
  if (gradientRegistered) return;
  tf.registerGradient({
    kernelName: FUSED_BATCH_NORM_TRAIN,
    inputsToSave: ['x', 'scale'],
    outputsToSave: [false, false, false, true, true, true],
    gradFunc: (dys, saved, attrs) => {
      const dy = Array.isArray(dys) ? dys[0] : dys;
      const [x, scale, reserve1, reserve2, reserve3] = saved as tf.Tensor[];
      // dy is null only if y does not reach the loss; the zeros then stand in for it.
      const grads = tf.engine().runKernel(
        FUSED_BATCH_NORM_TRAIN_GRAD,
        { dy: dy ?? tf.zerosLike(x!), x: x!, scale: scale!, reserve1: reserve1!, reserve2: reserve2!, reserve3: reserve3! },
        { epsilon: attrs['epsilon'] as number },
      ) as tf.Tensor[];
      const [dx, dscale, doffset] = grads;
      return {
        x: () => dx!,
        scale: () => dscale!,
        offset: () => doffset!,
        mean: () => tf.zerosLike(scale!),
        variance: () => tf.zerosLike(scale!),
      };
    },
  });
  gradientRegistered = true;
}

export interface FusedBatchNormResult {
  /** The normalised, scaled and shifted input, shaped like x. */
  y: tf.Tensor;
  /** The running mean after this batch. */
  runningMean: tf.Tensor1D;
  /** The running variance after this batch. */
  runningVariance: tf.Tensor1D;
}

/**
 * Batch normalisation of `x` ([N, C] or [N, H, W, C]) over every axis but the last, by the batch's mean
 * and biased variance, with PyTorch's running-statistics update; gradients flow to x, gamma and beta
 * through the fused backward kernel. Only call it when fusedBatchNormAvailable().
 */
export function fusedBatchNormTraining(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  runningMean: tf.Tensor,
  runningVariance: tf.Tensor,
  epsilon: number,
  momentum: number,
): FusedBatchNormResult {
  if (x.rank !== 2 && x.rank !== 4) throw new Error(`fused batch norm: expected a 2-D or 4-D input, found shape [${x.shape.join(', ')}]`);
  // TensorFlow's kernel takes 4-D NHWC; a dense [N, C] batch is N images of 1 x 1 pixels.
  const x4 = x.rank === 4 ? x : tf.reshape(x, [x.shape[0]!, 1, 1, x.shape[1]!]);
  const outputs = tf.engine().runKernel(
    FUSED_BATCH_NORM_TRAIN,
    { x: x4, scale: gamma, offset: beta, mean: runningMean, variance: runningVariance },
    { epsilon, momentum },
  ) as tf.Tensor[];
  // outputs[3..5] are saved by the tape for the backward kernel; the caller's tidy releases them.
  const [y4, mean, variance] = outputs;
  return {
    y: x.rank === 4 ? y4! : tf.reshape(y4!, x.shape),
    runningMean: mean as tf.Tensor1D,
    runningVariance: variance as tf.Tensor1D,
  };
}

/**
 * The forward kernel as flat loops over [rows, C] (every axis but the channel is a row), for the wasm
 * backend, whose tfjs-op path spends most of a ResNet step in Tile and element-wise kernels of the
 * batch-norm gradient. Statistics are summed in float64. Opaque outputs: the batch mean, 1 / sqrt(biased
 * variance + epsilon), and one unused value.
 */
export function fusedBatchNormTrainFlat({ inputs, backend, attrs }: KernelArgs): TensorInfo[] {
  const { x, scale, offset, mean, variance } = inputs as Record<string, TensorInfo>;
  const epsilon = attrs['epsilon'] as number;
  const momentum = attrs['momentum'] as number;
  const channels = x!.shape[x!.shape.length - 1]!;
  const xv = float32Values(backend, x!);
  const gv = float32Values(backend, scale!);
  const bv = float32Values(backend, offset!);
  const mv = float32Values(backend, mean!);
  const vv = float32Values(backend, variance!);
  const rows = xv.length / channels;
  const sum = new Float64Array(channels);
  for (let i = 0; i < xv.length; i += channels) for (let c = 0; c < channels; c++) sum[c] += xv[i + c]!;
  const batchMean = new Float32Array(channels);
  for (let c = 0; c < channels; c++) batchMean[c] = sum[c]! / rows;
  const sq = new Float64Array(channels);
  for (let i = 0; i < xv.length; i += channels) {
    for (let c = 0; c < channels; c++) {
      const d = xv[i + c]! - batchMean[c]!;
      sq[c] += d * d;
    }
  }
  const invStd = new Float32Array(channels);
  const runMean = new Float32Array(channels);
  const runVar = new Float32Array(channels);
  const unbias = rows > 1 ? rows / (rows - 1) : 1;
  for (let c = 0; c < channels; c++) {
    const biased = sq[c]! / rows;
    invStd[c] = 1 / Math.sqrt(biased + epsilon);
    runMean[c] = (1 - momentum) * mv[c]! + momentum * batchMean[c]!;
    runVar[c] = (1 - momentum) * vv[c]! + momentum * biased * unbias;
  }
  const y = new Float32Array(xv.length);
  for (let i = 0; i < xv.length; i += channels) {
    for (let c = 0; c < channels; c++) y[i + c] = (xv[i + c]! - batchMean[c]!) * invStd[c]! * gv[c]! + bv[c]!;
  }
  // Outputs after every input is read: allocating may move the wasm heap under earlier views.
  return [
    float32Output(backend, [...x!.shape], y),
    float32Output(backend, [channels], runMean),
    float32Output(backend, [channels], runVar),
    float32Output(backend, [channels], batchMean),
    float32Output(backend, [channels], invStd),
    float32Output(backend, [1], new Float32Array(1)),
  ];
}

/** The backward kernel matching fusedBatchNormTrainFlat: dx, dgamma, dbeta, statistics in float64. */
export function fusedBatchNormTrainGradFlat({ inputs, backend }: KernelArgs): TensorInfo[] {
  const { dy, x, scale, reserve1, reserve2 } = inputs as Record<string, TensorInfo>;
  const channels = x!.shape[x!.shape.length - 1]!;
  const dyv = float32Values(backend, dy!);
  const xv = float32Values(backend, x!);
  const gv = float32Values(backend, scale!);
  const mean = float32Values(backend, reserve1!);
  const invStd = float32Values(backend, reserve2!);
  const rows = xv.length / channels;
  const dBeta = new Float64Array(channels);
  const dGamma = new Float64Array(channels);
  for (let i = 0; i < xv.length; i += channels) {
    for (let c = 0; c < channels; c++) {
      const g = dyv[i + c]!;
      dBeta[c] += g;
      dGamma[c] += g * (xv[i + c]! - mean[c]!) * invStd[c]!;
    }
  }
  // dx = gamma * invStd * (dy - mean(dy) - xhat * mean(dy * xhat))
  const dx = new Float32Array(xv.length);
  for (let i = 0; i < xv.length; i += channels) {
    for (let c = 0; c < channels; c++) {
      const xhat = (xv[i + c]! - mean[c]!) * invStd[c]!;
      dx[i + c] = gv[c]! * invStd[c]! * (dyv[i + c]! - dBeta[c]! / rows - (xhat * dGamma[c]!) / rows);
    }
  }
  return [
    float32Output(backend, [...x!.shape], dx),
    float32Output(backend, [channels], Float32Array.from(dGamma)),
    float32Output(backend, [channels], Float32Array.from(dBeta)),
  ];
}
