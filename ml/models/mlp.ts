/**
 * A multi-layer perceptron: flatten, hidden dense layers, a dense output of logits. The default
 * (one hidden layer of 64 sigmoid units) is the 784-64-10 network of the tricks-of-the-trade study
 * (50,890 parameters on 28x28x1 inputs with 10 classes).
 *
 * Registered in ml/models/registry.ts.
 */
import * as tf from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import type { ModelContext } from './registry.js';

export interface MlpArgs {
  /** Units of each hidden layer, input side first; default [64]. An empty list gives a linear classifier. */
  hidden: number[];
  /** Activation of every hidden layer: 'sigmoid' (default, as in the study), 'relu' or 'tanh'. */
  activation: 'sigmoid' | 'relu' | 'tanh';
}

export const MlpArgsSchema: z.ZodType<MlpArgs> = z
  .object({
    hidden: z.array(z.number().int().min(1).max(65_536)).max(1000).default([64]),
    activation: z.enum(['sigmoid', 'relu', 'tanh']).default('sigmoid'),
  })
  .strict();

/** Layers, in depth order: flatten, fc1 .. fcN (hidden), out (logits, no softmax). */
export function buildMlpModel(args: MlpArgs, ctx: ModelContext): tf.LayersModel {
  const layers: tf.layers.Layer[] = [tf.layers.flatten({ name: 'flatten', inputShape: ctx.inputShape })];
  args.hidden.forEach((units, i) => {
    layers.push(tf.layers.dense({ name: `fc${i + 1}`, units, activation: args.activation }));
  });
  layers.push(tf.layers.dense({ name: 'out', units: ctx.numClasses }));
  return tf.sequential({ name: 'mlp', layers });
}
