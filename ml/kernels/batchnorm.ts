/**
 * Training-mode batch normalisation as one forward and one backward kernel, for backends that provide
 * them. Built from tfjs ops, a batch-norm layer costs some twenty element-wise kernels forward and
 * backward over the whole activation (moments, normalise, the gradient of each); on the native backend
 * these dominate a ResNet's training step. TensorFlow has both halves fused (FusedBatchNormV3 and
 * FusedBatchNormGradV3), and ml/backends/native.ts registers them under the kernel names below.
 *
 * ml/models/layers.ts (BatchNorm) calls fusedBatchNormTraining() when fusedBatchNormAvailable() says the
 * active backend has the kernels, and its tfjs-op path otherwise, so backends without them (cpu, wasm)
 * compute exactly what they computed before.
 */
import * as tf from '@tensorflow/tfjs-core';

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
