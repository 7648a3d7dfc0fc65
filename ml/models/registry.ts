/**
 * The registry of models an experiment can name. Each entry validates its own arguments (zod) and builds
 * a fresh tfjs-layers model whose last layer outputs logits; layer names are stable and ordered by depth,
 * because snapshots and per-layer analyses are keyed by them.
 *
 * Called by the CLI's validation of experiment files (argsSchema) and by the train activity (buildModel).
 */
import type * as tf from '@tensorflow/tfjs-layers';
import type { z } from 'zod';
import { LeNet5ArgsSchema, buildLeNet5Model } from './lenet.js';
import { MlpArgsSchema, buildMlpModel } from './mlp.js';

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

export const MODELS: ReadonlyMap<string, ModelDef<any>> = new Map<string, ModelDef<unknown>>([
  [lenet5.name, lenet5 as ModelDef<unknown>],
  [mlp.name, mlp as ModelDef<unknown>],
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
