/**
 * The registry of models an experiment can name. Each entry validates its own arguments (zod) and builds
 * a fresh tfjs-layers model whose last layer outputs logits; layer names are stable and ordered by depth,
 * because snapshots and per-layer analyses are keyed by them.
 *
 * Every model builds its kernels as zeros: tfjs's construction-time initialisers draw from an unseeded
 * generator, ml/train/init.ts replaces every value with seeded ones anyway, and the throwaway draw cost
 * 120 ms per ResNet-18 build. A model used without initialisation outputs constant logits, not noise.
 *
 * Called by the CLI's validation of experiment files (argsSchema) and by the train activity (buildModel).
 */
import type * as tf from '@tensorflow/tfjs-layers';
import type { z } from 'zod';
import { CnnArgsSchema, buildCnnModel } from './cnn.js';
import { LeNet5ArgsSchema, buildLeNet5Model } from './lenet.js';
import { MlpArgsSchema, buildMlpModel } from './mlp.js';
import { ResNetArgsSchema, buildResNetModel } from './resnet.js';
import { VggArgsSchema, buildVggModel } from './vgg.js';

export interface ModelContext {
  /** Shape of one example: [height, width, channels]. */
  inputShape: [number, number, number];
  numClasses: number;
}

export interface ModelDef<A> {
  name: string;
  description: string;
  argsSchema: z.ZodType<A>;
  build(args: A, ctx: ModelContext): tf.LayersModel;
}

const lenet5: ModelDef<z.infer<typeof LeNet5ArgsSchema>> = {
  name: 'lenet5',
  description: 'LeNet-5: conv 6@5x5 same, avg-pool, conv 16@5x5, avg-pool, dense 120, 84, classes.',
  argsSchema: LeNet5ArgsSchema,
  build: buildLeNet5Model,
};

const mlp: ModelDef<z.infer<typeof MlpArgsSchema>> = {
  name: 'mlp',
  description: 'Multi-layer perceptron: flatten, hidden dense layers (default 64 sigmoid units), dense classes.',
  argsSchema: MlpArgsSchema,
  build: buildMlpModel,
};

const cnn: ModelDef<z.infer<typeof CnnArgsSchema>> = {
  name: 'cnn',
  description: 'CNN: conv 32@7x7, 64@5x5, 128@3x3 (each [batch norm], ReLU, max-pool 2, [dropout]), dense 512, dense classes.',
  argsSchema: CnnArgsSchema,
  build: buildCnnModel,
};

const vgg: ModelDef<z.infer<typeof VggArgsSchema>> = {
  name: 'vgg',
  description: 'VGG-11/13/16/19 (args.depth) as in torchvision, with optional batch norm, a width multiplier and a configurable classifier.',
  argsSchema: VggArgsSchema,
  build: buildVggModel,
};

const resnet: ModelDef<z.infer<typeof ResNetArgsSchema>> = {
  name: 'resnet',
  description:
    'ResNet or plain network from a preset (torchvision-resnet18/34/50/101; resnet18/26/34/50/68/101 of constant width 128; resnet12, plain12) with any field overridden.',
  argsSchema: ResNetArgsSchema,
  build: buildResNetModel,
};

export const MODELS: ReadonlyMap<string, ModelDef<any>> = new Map<string, ModelDef<unknown>>([
  [lenet5.name, lenet5 as ModelDef<unknown>],
  [mlp.name, mlp as ModelDef<unknown>],
  [cnn.name, cnn as ModelDef<unknown>],
  [vgg.name, vgg as ModelDef<unknown>],
  [resnet.name, resnet as ModelDef<unknown>],
]);

/** Builds a registered model; unknown names and invalid arguments fail with a message naming the field. */
export function buildModel(spec: { name: string; args: Record<string, unknown> }, ctx: ModelContext): tf.LayersModel {
  const def = MODELS.get(spec.name);
  if (!def) {
    throw new Error(`model.name: unknown model "${spec.name}": expected one of ${[...MODELS.keys()].join(', ')}`);
  }
  const parsed = def.argsSchema.safeParse(spec.args ?? {});
  if (!parsed.success) {
    const detail = parsed.error.issues
      .map((issue) => `model.args${issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}: ${issue.message}`)
      .join('; ');
    throw new Error(`invalid arguments for model "${spec.name}": ${detail}`);
  }
  return def.build(parsed.data, ctx);
}
