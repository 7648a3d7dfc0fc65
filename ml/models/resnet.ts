/**
 * One ResNet builder (He et al. 2016) for every residual and plain network of the studies: basic or
 * bottleneck blocks, any number of blocks per stage, constant or doubling width, a configurable stem,
 * ReLU or tanh, global average pool and a dense classifier (logits). `residual: false` builds the same
 * network with the shortcuts (the add and any projection) removed and nothing else changed.
 *
 * Layer names follow torchvision's (conv1, bn1, layer2.0.conv1, layer2.0.downsample.0, fc), so weights map
 * one to one onto torchvision's state dict (up to the kernel layout: tfjs [kh, kw, in, out] against
 * torch [out, in, kh, kw]). Layers without weights get names too: {prefix}.act{i}, {prefix}.add, and
 * {conv}_pad for the explicit zero padding that reproduces PyTorch's symmetric padding of strided and
 * even-sized convolutions (tfjs 'same' would pad one side only and shift the sampling grid).
 *
 * Presets (every field can be overridden; unset fields come from the preset, 'torchvision-resnet18' when
 * none is named):
 * - torchvision-resnet18/34/50/101: torchvision's ImageNet networks (widths 64..512, bottleneck
 *   expansion 4, 7x7/2 stem with 3x3/2 max-pool); 11,689,512 and 25,557,032 parameters for 18 and 50.
 * - resnet18/34/68 (basic) and resnet26/50/101 (bottleneck): the depth study's networks. Every
 *   convolution but the stem and the classifier has 128 filters (bottleneck expansion 1, so a bottleneck
 *   block's three convolutions are all 128 wide); torchvision's stem (64 filters) and stage layout
 *   [2,2,2,2], [3,4,6,3], [3,4,23,3]. The depth in each name counts stem + block convolutions + classifier
 *   (the write-up's "32 blocks" for 68 and 101 is [3,4,23,3] = 33 blocks, which is what the names imply).
 * - resnet12 and plain12: the smoothness study's networks: a 4x4 stride-2 stem with 4 filters, then five
 *   basic blocks at full resolution with widths 4, 8, 16, 32, 64, no batch norm (the write-up lists
 *   none), 2 + 10 weight layers on the main path.
 *
 * Registered in ml/models/registry.ts as 'resnet'.
 */
import * as tf from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { BatchNorm } from './layers.js';
import type { ModelContext } from './registry.js';

export interface ResNetStem {
  /** Filters of the first convolution. */
  filters: number;
  /** Its kernel size (padded by floor((k - 1) / 2) on every side, as PyTorch's padding = k // 2 for odd k). */
  kernelSize: number;
  /** Its stride. */
  strides: number;
  /** Whether a 3x3 stride-2 max-pool with padding 1 follows it (torchvision's ImageNet stem). */
  maxPool: boolean;
}

/** A fully resolved ResNet: what buildResNetModel takes and what the registry's schema outputs. */
export interface ResNetArgs {
  /** 'basic': two 3x3 convolutions; 'bottleneck': 1x1, 3x3 (carrying the stride), 1x1. */
  block: 'basic' | 'bottleneck';
  /** Number of blocks in each stage, input side first. */
  blocks: number[];
  /** Filters of each stage's inner convolutions (one entry per stage). */
  widths: number[];
  /** A block outputs width * expansion channels (torchvision: 1 for basic, 4 for bottleneck). */
  expansion: number;
  /** Stride of each stage's first block (one entry per stage). */
  strides: number[];
  /** Shortcut connections; false builds the plain network. */
  residual: boolean;
  /** The first convolution (and optional max-pool). */
  stem: ResNetStem;
  /** Activation after every batch norm (or convolution without one) and after every block. */
  activation: 'relu' | 'tanh';
  /** Batch norm after every convolution (then the convolutions have no bias, as in torchvision). */
  batchNorm: boolean;
  /** Model name (the preset's, or 'resnet'). */
  name: string;
}

export const RESNET_PRESETS = [
  'torchvision-resnet18',
  'torchvision-resnet34',
  'torchvision-resnet50',
  'torchvision-resnet101',
  'resnet18',
  'resnet26',
  'resnet34',
  'resnet50',
  'resnet68',
  'resnet101',
  'resnet12',
  'plain12',
] as const;
export type ResNetPreset = (typeof RESNET_PRESETS)[number];

/** A preset in the terms of the registry's arguments. */
interface PresetSpec {
  block: 'basic' | 'bottleneck';
  blocks: number[];
  width: number;
  growth: 'constant' | 'doubling';
  expansion: number;
  strides: number[];
  residual: boolean;
  stem: ResNetStem;
  activation: 'relu' | 'tanh';
  batchNorm: boolean;
}

const IMAGENET_STEM: ResNetStem = { filters: 64, kernelSize: 7, strides: 2, maxPool: true };
const torchvision = (block: PresetSpec['block'], blocks: number[]): PresetSpec => ({
  block, blocks, width: 64, growth: 'doubling', expansion: block === 'basic' ? 1 : 4, strides: [1, 2, 2, 2],
  residual: true, stem: IMAGENET_STEM, activation: 'relu', batchNorm: true,
});
const constant128 = (block: PresetSpec['block'], blocks: number[]): PresetSpec => ({
  ...torchvision(block, blocks), width: 128, growth: 'constant', expansion: 1,
});
const smooth12 = (residual: boolean): PresetSpec => ({
  block: 'basic', blocks: [1, 1, 1, 1, 1], width: 4, growth: 'doubling', expansion: 1, strides: [1, 1, 1, 1, 1],
  residual, stem: { filters: 4, kernelSize: 4, strides: 2, maxPool: false }, activation: 'relu', batchNorm: false,
});

export const RESNET_PRESET_SPECS: Readonly<Record<ResNetPreset, PresetSpec>> = {
  'torchvision-resnet18': torchvision('basic', [2, 2, 2, 2]),
  'torchvision-resnet34': torchvision('basic', [3, 4, 6, 3]),
  'torchvision-resnet50': torchvision('bottleneck', [3, 4, 6, 3]),
  'torchvision-resnet101': torchvision('bottleneck', [3, 4, 23, 3]),
  resnet18: constant128('basic', [2, 2, 2, 2]),
  resnet34: constant128('basic', [3, 4, 6, 3]),
  resnet68: constant128('basic', [3, 4, 23, 3]),
  resnet26: constant128('bottleneck', [2, 2, 2, 2]),
  resnet50: constant128('bottleneck', [3, 4, 6, 3]),
  resnet101: constant128('bottleneck', [3, 4, 23, 3]),
  resnet12: smooth12(true),
  plain12: smooth12(false),
};

const count = z.number().int().min(1);
const channels = z.number().int().min(1).max(65_536);

/** The arguments an experiment file gives: a preset and any fields that override it. */
const ResNetInputSchema = z
  .object({
    /** Starting point; default 'torchvision-resnet18'. */
    preset: z.enum(RESNET_PRESETS).default('torchvision-resnet18'),
    block: z.enum(['basic', 'bottleneck']).optional(),
    /** Blocks per stage. */
    blocks: z.array(count.max(1000)).min(1).max(16).optional(),
    /** Filters of the first stage's inner convolutions. */
    width: channels.optional(),
    /** 'constant': every stage has `width` filters; 'doubling': stage s has width * 2^s. */
    growth: z.enum(['constant', 'doubling']).optional(),
    expansion: count.max(16).optional(),
    /** Stride per stage; default the preset's, cut or extended with its last entry to the number of stages. */
    strides: z.array(count.max(8)).min(1).max(16).optional(),
    residual: z.boolean().optional(),
    /** Stem fields to change; the others stay the preset's. */
    stem: z
      .object({ filters: channels, kernelSize: count.max(15), strides: count.max(8), maxPool: z.boolean() })
      .partial()
      .strict()
      .optional(),
    activation: z.enum(['relu', 'tanh']).optional(),
    batchNorm: z.boolean().optional(),
  })
  .strict();

export type ResNetInput = z.input<typeof ResNetInputSchema>;

/** Resolves a preset and overrides into the network to build. */
export const ResNetArgsSchema: z.ZodType<ResNetArgs> = ResNetInputSchema.transform((input, ctx): ResNetArgs => {
  const p = RESNET_PRESET_SPECS[input.preset];
  const blocks = input.blocks ?? p.blocks;
  const strides = input.strides ?? blocks.map((_, i) => p.strides[Math.min(i, p.strides.length - 1)]!);
  if (strides.length !== blocks.length) {
    ctx.addIssue({ code: 'custom', path: ['strides'], message: `expected one stride per stage (${blocks.length}), found ${strides.length}` });
    return z.NEVER;
  }
  const width = input.width ?? p.width;
  const growth = input.growth ?? p.growth;
  return {
    block: input.block ?? p.block,
    blocks,
    widths: blocks.map((_, i) => (growth === 'doubling' ? width * 2 ** i : width)),
    expansion: input.expansion ?? p.expansion,
    strides,
    residual: input.residual ?? p.residual,
    stem: { ...p.stem, ...input.stem },
    activation: input.activation ?? p.activation,
    batchNorm: input.batchNorm ?? p.batchNorm,
    name: input.preset,
  };
});

/** Resolves registry arguments (a preset and overrides) without building anything. */
export function resolveResNetArgs(input: ResNetInput): ResNetArgs {
  return ResNetArgsSchema.parse(input);
}

type Sym = tf.SymbolicTensor;

/**
 * Layers, in depth order (tfjs orders a functional model's layers by their distance from the output, so
 * a projection shortcut sits beside the last convolution of its block): conv1, [bn1], act1, [maxpool];
 * for stage s = 1.. and block b = 0..: layer{s}.{b}.conv1, .bn1, .act1, .conv2, ..., then in a residual
 * network .downsample.0 (1x1 conv) and .downsample.1 (its batch norm) when the shape changes, and .add;
 * then the block's last activation; then avgpool and fc (logits).
 */
export function buildResNetModel(args: ResNetArgs, ctx: ModelContext): tf.LayersModel {
  const { stem, batchNorm } = args;
  if (args.widths.length !== args.blocks.length || args.strides.length !== args.blocks.length) {
    throw new Error(
      `resnet: expected one width and one stride per stage (${args.blocks.length} stages), found ${args.widths.length} widths and ${args.strides.length} strides`,
    );
  }

  const conv = (x: Sym, name: string, filters: number, kernelSize: number, strides: number): Sym => {
    const pad = Math.floor((kernelSize - 1) / 2);
    // Odd kernels at stride 1 pad symmetrically under 'same' too; otherwise pad explicitly as PyTorch does.
    const same = strides === 1 && kernelSize % 2 === 1;
    let y = x;
    if (!same && pad > 0) y = tf.layers.zeroPadding2d({ name: `${name}_pad`, padding: pad }).apply(y) as Sym;
    return tf.layers
      .conv2d({ name, filters, kernelSize, strides, padding: same ? 'same' : 'valid', useBias: !batchNorm, kernelInitializer: 'zeros' })
      .apply(y) as Sym;
  };
  const norm = (x: Sym, name: string): Sym => (batchNorm ? (new BatchNorm({ name }).apply(x) as Sym) : x);
  const act = (x: Sym, name: string): Sym => tf.layers.activation({ name, activation: args.activation }).apply(x) as Sym;

  const input = tf.input({ name: 'input', shape: ctx.inputShape });
  let x = act(norm(conv(input, 'conv1', stem.filters, stem.kernelSize, stem.strides), 'bn1'), 'act1');
  if (stem.maxPool) {
    // Zero padding equals PyTorch's -inf padding after ReLU (inputs >= 0); after tanh it can differ at borders.
    x = tf.layers.zeroPadding2d({ name: 'maxpool_pad', padding: 1 }).apply(x) as Sym;
    x = tf.layers.maxPooling2d({ name: 'maxpool', poolSize: 3, strides: 2, padding: 'valid' }).apply(x) as Sym;
  }
  let inChannels = stem.filters;

  args.blocks.forEach((n, s) => {
    const width = args.widths[s]!;
    const out = width * args.expansion;
    for (let b = 0; b < n; b++) {
      const p = `layer${s + 1}.${b}`;
      const stride = b === 0 ? args.strides[s]! : 1;
      let y: Sym;
      let last: number;
      if (args.block === 'basic') {
        y = act(norm(conv(x, `${p}.conv1`, width, 3, stride), `${p}.bn1`), `${p}.act1`);
        y = norm(conv(y, `${p}.conv2`, out, 3, 1), `${p}.bn2`);
        last = 2;
      } else {
        y = act(norm(conv(x, `${p}.conv1`, width, 1, 1), `${p}.bn1`), `${p}.act1`);
        y = act(norm(conv(y, `${p}.conv2`, width, 3, stride), `${p}.bn2`), `${p}.act2`);
        y = norm(conv(y, `${p}.conv3`, out, 1, 1), `${p}.bn3`);
        last = 3;
      }
      if (args.residual) {
        const project = stride !== 1 || inChannels !== out;
        const shortcut = project ? norm(conv(x, `${p}.downsample.0`, out, 1, stride), `${p}.downsample.1`) : x;
        y = tf.layers.add({ name: `${p}.add` }).apply([y, shortcut]) as Sym;
      }
      x = act(y, `${p}.act${last}`);
      inChannels = out;
    }
  });

  x = tf.layers.globalAveragePooling2d({ name: 'avgpool' }).apply(x) as Sym;
  const logits = tf.layers.dense({ name: 'fc', units: ctx.numClasses, kernelInitializer: 'zeros' }).apply(x) as Sym;
  return tf.model({ name: args.name, inputs: input, outputs: logits });
}
