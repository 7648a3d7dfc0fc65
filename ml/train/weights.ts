/**
 * Moving a model's weights to and from plain named arrays (the form snapshots store), and listing a
 * model's variables with the stable names snapshots and optimizer state are keyed by.
 *
 * Names: `layer` is the layer's name (e.g. `conv1`), `name` is the variable's short name (e.g.
 * `kernel`). tfjs-layers makes variable names globally unique (`conv1/kernel_1` for a second model in
 * the same process), so the short name comes from the variable's original name, never its unique one.
 *
 * Called by ml/train/loop.ts, the train activity (resume from a snapshot) and analyses that need a
 * model with stored weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { NamedTensor } from '../../artifacts/snapshot.js';

export interface ModelVariable {
  layer: string;
  name: string;
  trainable: boolean;
  shape: number[];
  /** The tfjs variable holding the values (what gradients are taken with respect to). */
  variable: tf.Variable;
}

/** Every weight of every layer in depth order, trainable before non-trainable within a layer. */
export function modelVariables(model: tfl.LayersModel): ModelVariable[] {
  const out: ModelVariable[] = [];
  for (const layer of model.layers) {
    for (const w of layer.weights) {
      const name = w.originalName.split('/').pop()!;
      out.push({ layer: layer.name, name, trainable: w.trainable, shape: [...w.shape] as number[], variable: w.read() as tf.Variable });
    }
  }
  const seen = new Set<string>();
  for (const v of out) {
    const key = `${v.layer}/${v.name}`;
    if (seen.has(key)) throw new Error(`model ${model.name} has two variables named ${key}; layer names must be unique`);
    seen.add(key);
  }
  return out;
}

/** Copies of all the model's weights, in depth order. */
export function modelToTensors(model: tfl.LayersModel): NamedTensor[] {
  return modelVariables(model).map((v) => ({
    layer: v.layer,
    name: v.name,
    shape: v.shape,
    // slice(): the CPU backend hands out its own storage, which later training steps overwrite.
    values: (v.variable.dataSync() as Float32Array).slice(),
  }));
}

const describe = (t: { layer: string; name: string; shape: number[] }) => `${t.layer}/${t.name} [${t.shape.join(', ')}]`;

/**
 * Writes `tensors` into the model's variables. They must match the model's variables exactly: same
 * layer and variable names in the same order, same shapes.
 */
export function tensorsToModel(model: tfl.LayersModel, tensors: readonly NamedTensor[]): void {
  const vars = modelVariables(model);
  if (vars.length !== tensors.length) {
    throw new Error(
      `model ${model.name} has ${vars.length} weights (${vars.map(describe).join(', ')}), found ${tensors.length} tensors (${tensors.map(describe).join(', ')})`,
    );
  }
  vars.forEach((v, i) => {
    const t = tensors[i]!;
    if (t.layer !== v.layer || t.name !== v.name) {
      throw new Error(`weight ${i} of model ${model.name}: expected ${v.layer}/${v.name}, found ${t.layer}/${t.name}`);
    }
    if (t.shape.length !== v.shape.length || t.shape.some((d, j) => d !== v.shape[j])) {
      throw new Error(`weight ${v.layer}/${v.name}: expected shape [${v.shape.join(', ')}], found [${t.shape.join(', ')}]`);
    }
    const size = v.shape.reduce((a, b) => a * b, 1);
    if (t.values.length !== size) {
      throw new Error(`weight ${v.layer}/${v.name}: expected ${size} values for shape [${v.shape.join(', ')}], found ${t.values.length}`);
    }
  });
  tf.tidy(() => {
    vars.forEach((v, i) => v.variable.assign(tf.tensor(tensors[i]!.values.slice(), v.shape, 'float32')));
  });
}
