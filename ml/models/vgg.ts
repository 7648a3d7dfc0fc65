/**
 * VGG-11/13/16/19 (Simonyan and Zisserman 2015) as torchvision builds them: 3x3 'same' convolutions with
 * bias, optional batch norm after each, ReLU, five 2x2 max-pools; an adaptive average pool to 7x7; a
 * classifier of dense 4096, ReLU, dropout 0.5, dense 4096, ReLU, dropout 0.5, dense classes (logits).
 * With the defaults and 224x224x3 inputs, 1000 classes, VGG-16 has torchvision's 138,357,544 parameters
 * and VGG-19 its 143,667,240.
 *
 * The same builder serves 28x28 and 32x32 inputs: the pools pad 'same', so an odd map rounds up (28 ->
 * 14 -> 7 -> 4 -> 2 -> 1) where PyTorch would round down to an empty map; on even sizes (32, 224) this is
 * exactly PyTorch's pooling. The adaptive pool replicates the final 1x1 map to 7x7 as torchvision's does,
 * so a "paper" VGG on CIFAR keeps torchvision's parameter count; a quick one sets `avgPoolTo: 1` (or
 * null), a narrow `widthMultiplier` and a small `classifier`.
 *
 * Kernels are built as zeros: tfjs's construction-time initialisers draw from an unseeded generator and
 * ml/train/init.ts replaces every value anyway, and drawing 120 million throwaway values for the classifier
 * takes seconds. A model used without initialisation therefore outputs constant logits, not noise.
 *
 * Dropout is SeededDropout and batch norm is BatchNorm (ml/models/layers.ts). Note that tfjs flattens
 * [H, W, C] where PyTorch flattens [C, H, W]: importing torchvision's fc1 weights needs a permutation.
 *
 * Registered in ml/models/registry.ts as 'vgg' with `depth` 11, 13, 16 or 19.
 */
import * as tf from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { AdaptiveAvgPool2D, BatchNorm, SeededDropout } from './layers.js';
import type { ModelContext } from './registry.js';

export interface VggArgs {
  /** Number of weight layers: 11, 13, 16 or 19 (torchvision's configurations A, B, D, E). */
  depth: 11 | 13 | 16 | 19;
  /** Batch norm after every convolution (torchvision's vggN_bn); default false. */
  batchNorm: boolean;
  /** Scales every convolution's filters (64 .. 512), rounded, at least 1; default 1. */
  widthMultiplier: number;
  /** Units of the hidden dense layers, input side first; default [4096, 4096]. Empty: one dense layer to the classes. */
  classifier: number[];
  /** Dropout rate after each hidden dense layer's ReLU; default 0.5 (torchvision). 0 adds no dropout layers. */
  dropout: number;
  /** Side of the adaptive average pool before the classifier; default 7 (torchvision). null: flatten the feature map as it is. */
  avgPoolTo: number | null;
}

export const VggArgsSchema: z.ZodType<VggArgs> = z
  .object({
    depth: z.union([z.literal(11), z.literal(13), z.literal(16), z.literal(19)]),
    batchNorm: z.boolean().default(false),
    widthMultiplier: z.number().positive().max(16).default(1),
    classifier: z.array(z.number().int().min(1).max(65_536)).max(16).default([4096, 4096]),
    dropout: z.number().min(0).lt(1).default(0.5),
    avgPoolTo: z.number().int().min(1).max(64).nullable().default(7),
  })
  .strict();

/** Filters of each convolution, stage by stage (a max-pool follows every stage). */
export const VGG_STAGES: Readonly<Record<VggArgs['depth'], readonly (readonly number[])[]>> = {
  11: [[64], [128], [256, 256], [512, 512], [512, 512]],
  13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
  16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
  19: [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
};

/**
 * Layers, in depth order: for stage s = 1..5 and conv c: block{s}_conv{c}, [block{s}_bn{c}],
 * block{s}_relu{c}; then block{s}_pool. Then [avgpool], flatten; for hidden layer k: fc{k}, fc{k}_relu,
 * [fc{k}_dropout]; the last dense layer, fc{K+1}, gives the logits.
 */
export function buildVggModel(args: VggArgs, ctx: ModelContext): tf.LayersModel {
  const layers: tf.layers.Layer[] = [];
  VGG_STAGES[args.depth].forEach((stage, s) => {
    const b = `block${s + 1}`;
    stage.forEach((filters, c) => {
      layers.push(
        tf.layers.conv2d({
          name: `${b}_conv${c + 1}`,
          ...(layers.length === 0 ? { inputShape: ctx.inputShape } : {}),
          filters: Math.max(1, Math.round(filters * args.widthMultiplier)),
          kernelSize: 3,
          padding: 'same',
          kernelInitializer: 'zeros',
        }),
      );
      if (args.batchNorm) layers.push(new BatchNorm({ name: `${b}_bn${c + 1}` }));
      layers.push(tf.layers.reLU({ name: `${b}_relu${c + 1}` }));
    });
    layers.push(tf.layers.maxPooling2d({ name: `${b}_pool`, poolSize: 2, strides: 2, padding: 'same' }));
  });
  if (args.avgPoolTo !== null) layers.push(new AdaptiveAvgPool2D({ name: 'avgpool', outputSize: args.avgPoolTo }));
  layers.push(tf.layers.flatten({ name: 'flatten' }));
  args.classifier.forEach((units, k) => {
    layers.push(tf.layers.dense({ name: `fc${k + 1}`, units, kernelInitializer: 'zeros' }));
    layers.push(tf.layers.reLU({ name: `fc${k + 1}_relu` }));
    if (args.dropout > 0) layers.push(new SeededDropout({ name: `fc${k + 1}_dropout`, rate: args.dropout }));
  });
  layers.push(tf.layers.dense({ name: `fc${args.classifier.length + 1}`, units: ctx.numClasses, kernelInitializer: 'zeros' }));
  return tf.sequential({ name: `vgg${args.depth}${args.batchNorm ? '_bn' : ''}`, layers });
}
