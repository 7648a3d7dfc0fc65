/**
 * The 3-conv + 2-dense CNN of the regularisation ablation: 7x7/32, 5x5/64 and 3x3/128 convolutions
 * ('same' padding, i.e. PyTorch's padding 3, 2, 1), each followed by optional batch norm, ReLU, 2x2
 * max-pool and optional dropout; then dense 512 with optional batch norm, ReLU and optional dropout; then
 * dense classes (logits). The study's ablation switches batch norm and dropout 0.3 on and off.
 *
 * Dropout is SeededDropout (ml/models/layers.ts): its masks derive from the run seed and step.
 *
 * Registered in ml/models/registry.ts as 'cnn'.
 */
import * as tf from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { BatchNorm, SeededDropout } from './layers.js';
import type { ModelContext } from './registry.js';

export interface CnnArgs {
  /** Batch norm after each convolution and after the hidden dense layer; default false. */
  batchNorm: boolean;
  /** Dropout rate after each pooling and after the hidden dense layer's activation; 0 (default) adds no dropout layers. The study uses 0.3. */
  dropout: number;
  /** Filters of the three convolutions; default [32, 64, 128] (narrower for quick runs). */
  filters: [number, number, number];
  /** Units of the hidden dense layer; default 512. */
  hidden: number;
}

const positive = z.number().int().min(1).max(65_536);

export const CnnArgsSchema: z.ZodType<CnnArgs> = z
  .object({
    batchNorm: z.boolean().default(false),
    dropout: z.number().min(0).lt(1).default(0),
    filters: z.tuple([positive, positive, positive]).default([32, 64, 128]),
    hidden: positive.default(512),
  })
  .strict();

const KERNELS = [7, 5, 3] as const;

/**
 * Layers, in depth order, for block i = 1..3: conv{i}, [bn{i}], relu{i}, pool{i}, [drop{i}]; then
 * flatten, fc1, [bn4], relu4, [drop4], fc2 (logits). Bracketed layers exist only when enabled.
 */
export function buildCnnModel(args: CnnArgs, ctx: ModelContext): tf.LayersModel {
  const [h, w] = ctx.inputShape;
  if (h < 8 || w < 8) throw new Error(`cnn: expected inputs of at least 8x8 (three 2x2 poolings), found ${h}x${w}`);
  const layers: tf.layers.Layer[] = [];
  KERNELS.forEach((kernelSize, i) => {
    const n = i + 1;
    layers.push(
      tf.layers.conv2d({
        name: `conv${n}`,
        ...(i === 0 ? { inputShape: ctx.inputShape } : {}),
        filters: args.filters[i]!,
        kernelSize,
        padding: 'same',
        kernelInitializer: 'zeros',
      }),
    );
    if (args.batchNorm) layers.push(new BatchNorm({ name: `bn${n}` }));
    layers.push(tf.layers.reLU({ name: `relu${n}` }));
    // 'valid' pooling floors odd sizes, as PyTorch's MaxPool2d(2) does.
    layers.push(tf.layers.maxPooling2d({ name: `pool${n}`, poolSize: 2, strides: 2, padding: 'valid' }));
    if (args.dropout > 0) layers.push(new SeededDropout({ name: `drop${n}`, rate: args.dropout }));
  });
  layers.push(tf.layers.flatten({ name: 'flatten' }));
  layers.push(tf.layers.dense({ name: 'fc1', units: args.hidden, kernelInitializer: 'zeros' }));
  if (args.batchNorm) layers.push(new BatchNorm({ name: 'bn4' }));
  layers.push(tf.layers.reLU({ name: 'relu4' }));
  if (args.dropout > 0) layers.push(new SeededDropout({ name: 'drop4', rate: args.dropout }));
  layers.push(tf.layers.dense({ name: 'fc2', units: ctx.numClasses, kernelInitializer: 'zeros' }));
  return tf.sequential({ name: 'cnn', layers });
}
