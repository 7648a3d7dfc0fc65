/**
 * LeNet-5 (LeCun et al. 1998) as used in the weight-dynamics studies: two 5x5 convolutions with average
 * pooling, then three dense layers. The first convolution pads 'same' so 28x28 inputs give the classic
 * 5x5x16 feature map before the dense layers (61,706 parameters for 28x28x1 inputs and 10 classes).
 *
 * Registered in ml/models/registry.ts.
 */
import * as tf from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import type { ModelContext } from './registry.js';

export interface LeNet5Args {
  /** Activation after each convolution and hidden dense layer: 'relu' (default) or the original 'tanh'. */
  activation: 'relu' | 'tanh';
}

export const LeNet5ArgsSchema: z.ZodType<LeNet5Args> = z
  .object({ activation: z.enum(['relu', 'tanh']).default('relu') })
  .strict();

/** Layers, in depth order: conv1, pool1, conv2, pool2, flatten, fc1, fc2, fc3 (logits, no softmax). */
export function buildLeNet5Model(args: LeNet5Args, ctx: ModelContext): tf.LayersModel {
  const { activation } = args;
  return tf.sequential({
    name: 'lenet5',
    layers: [
      tf.layers.conv2d({ name: 'conv1', inputShape: ctx.inputShape, filters: 6, kernelSize: 5, padding: 'same', activation, kernelInitializer: 'zeros' }),
      tf.layers.averagePooling2d({ name: 'pool1', poolSize: 2, strides: 2 }),
      tf.layers.conv2d({ name: 'conv2', filters: 16, kernelSize: 5, padding: 'valid', activation, kernelInitializer: 'zeros' }),
      tf.layers.averagePooling2d({ name: 'pool2', poolSize: 2, strides: 2 }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ name: 'fc1', units: 120, activation, kernelInitializer: 'zeros' }),
      tf.layers.dense({ name: 'fc2', units: 84, activation, kernelInitializer: 'zeros' }),
      // Logits: the training loss applies a numerically stable log-softmax.
      tf.layers.dense({ name: 'fc3', units: ctx.numClasses, kernelInitializer: 'zeros' }),
    ],
  });
}
