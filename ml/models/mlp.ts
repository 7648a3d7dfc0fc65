/**
 * A multi-layer perceptron: flatten, hidden dense layers, a dense output of logits. The default
 * (one hidden layer of 64 sigmoid units) is the 784-64-10 network of the tricks-of-the-trade study
 * (50,890 parameters on 28x28x1 inputs with 10 classes).
 *
 * Registered in ml/models/registry.ts.
 */
import * as tfc from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import type { ModelContext } from './registry.js';

export interface MlpArgs {
  /** Units of each hidden layer, input side first; default [64]. An empty list gives a linear classifier. */
  hidden: number[];
  /**
   * Activation of every hidden layer: 'sigmoid' (default, as in the study), 'relu', 'leaky-relu' (slope
   * 0.01 below zero, torch's default), 'tanh', or 'improved-sigmoid', LeCun's 1.7159 tanh(2x/3)
   * ("Efficient BackProp"; the tricks-of-the-trade study).
   */
  activation: 'sigmoid' | 'relu' | 'leaky-relu' | 'tanh' | 'improved-sigmoid';
}

export const MLP_ACTIVATIONS = ['sigmoid', 'relu', 'leaky-relu', 'tanh', 'improved-sigmoid'] as const;

export const MlpArgsSchema: z.ZodType<MlpArgs> = z
  .object({
    hidden: z.array(z.number().int().min(1).max(65_536)).max(1000).default([64]),
    activation: z.enum(MLP_ACTIVATIONS).default('sigmoid'),
  })
  .strict();

/** LeCun's scaled tanh, 1.7159 tanh(2x/3): unit variance out for unit variance in, and f(+-1) = +-1. */
export class ScaledTanh extends tf.layers.Layer {
  static readonly className = 'ScaledTanh';

  override call(inputs: tfc.Tensor | tfc.Tensor[]): tfc.Tensor {
    return tfc.tidy(() => tfc.mul(1.7159, tfc.tanh(tfc.mul(2 / 3, Array.isArray(inputs) ? inputs[0]! : inputs))));
  }
}
tfc.serialization.registerClass(ScaledTanh);

/**
 * Layers, in depth order: flatten, fc1 .. fcN (hidden), out (logits, no softmax). Activations tfjs has
 * built in are part of the dense layer; leaky ReLU and the improved sigmoid follow it as a layer of
 * their own without parameters (`fcK_act`), so parameter names and depths are the same for every activation.
 */
export function buildMlpModel(args: MlpArgs, ctx: ModelContext): tf.LayersModel {
  const layers: tf.layers.Layer[] = [tf.layers.flatten({ name: 'flatten', inputShape: ctx.inputShape })];
  args.hidden.forEach((units, i) => {
    const name = `fc${i + 1}`;
    if (args.activation === 'leaky-relu') {
      layers.push(tf.layers.dense({ name, units, kernelInitializer: 'zeros' }), tf.layers.leakyReLU({ name: `${name}_act`, alpha: 0.01 }));
    } else if (args.activation === 'improved-sigmoid') {
      layers.push(tf.layers.dense({ name, units, kernelInitializer: 'zeros' }), new ScaledTanh({ name: `${name}_act` }));
    } else {
      layers.push(tf.layers.dense({ name, units, activation: args.activation, kernelInitializer: 'zeros' }));
    }
  });
  layers.push(tf.layers.dense({ name: 'out', units: ctx.numClasses, kernelInitializer: 'zeros' }));
  return tf.sequential({ name: 'mlp', layers });
}
