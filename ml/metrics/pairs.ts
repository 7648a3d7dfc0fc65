/**
 * Matching the tensors of two snapshots of one model, layer by layer, for the metrics that compare
 * them position by position (`change.ts`). The rules, and the error messages, are those of
 * `layerDistances` in `minkowski.ts`: tensors match by (layer, name); layers keep the order in which
 * they first appear in the first snapshot; a tensor on one side only, a reshaped tensor or a
 * duplicated (layer, name) is an error naming the tensor.
 */
import type { NamedTensor } from '../../artifacts/snapshot.js';

/** One layer's matched tensors, in the order they appear in the first snapshot. */
export interface LayerPairs {
  layer: string;
  /** 0-based order of the layer among the layers that have parameters. */
  depth: number;
  pairs: Array<[NamedTensor, NamedTensor]>;
  /** Number of scalar parameters in the layer. */
  params: number;
}

function tensorKey(t: NamedTensor): string {
  // JSON keeps the pair unambiguous whatever characters the names contain.
  return JSON.stringify([t.layer, t.name]);
}

function describe(t: { layer: string; name: string }): string {
  return `tensor "${t.name}" of layer "${t.layer}"`;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Matches the tensors of `a` and `b` and groups them by layer. */
export function pairLayers(a: readonly NamedTensor[], b: readonly NamedTensor[]): LayerPairs[] {
  const others = new Map<string, NamedTensor>();
  for (const t of b) {
    const key = tensorKey(t);
    if (others.has(key)) throw new Error(`second snapshot lists ${describe(t)} twice; expected each (layer, name) once`);
    others.set(key, t);
  }
  const layers = new Map<string, LayerPairs>();
  const seen = new Set<string>();
  for (const t of a) {
    const key = tensorKey(t);
    if (seen.has(key)) throw new Error(`first snapshot lists ${describe(t)} twice; expected each (layer, name) once`);
    seen.add(key);
    const other = others.get(key);
    if (other === undefined) throw new Error(`${describe(t)} is in the first snapshot but missing from the second`);
    if (t.shape.length !== other.shape.length || t.shape.some((d, i) => d !== other.shape[i])) {
      throw new Error(`${describe(t)} has shape ${shapeText(t.shape)} in the first snapshot and ${shapeText(other.shape)} in the second`);
    }
    if (t.values.length !== other.values.length) {
      throw new Error(`${describe(t)}: expected arrays of equal length; found ${t.values.length} and ${other.values.length} values`);
    }
    let layer = layers.get(t.layer);
    if (layer === undefined) {
      layer = { layer: t.layer, depth: layers.size, pairs: [], params: 0 };
      layers.set(t.layer, layer);
    }
    layer.pairs.push([t, other]);
    layer.params += t.values.length;
  }
  for (const t of b) {
    if (!seen.has(tensorKey(t))) throw new Error(`${describe(t)} is in the second snapshot but missing from the first`);
  }
  return [...layers.values()];
}

/** Groups the tensors of one snapshot by layer, in order of first appearance. */
export function groupLayers(tensors: readonly NamedTensor[]): Array<{ layer: string; depth: number; tensors: NamedTensor[]; params: number }> {
  const layers = new Map<string, { layer: string; depth: number; tensors: NamedTensor[]; params: number }>();
  const seen = new Set<string>();
  for (const t of tensors) {
    const key = tensorKey(t);
    if (seen.has(key)) throw new Error(`snapshot lists ${describe(t)} twice; expected each (layer, name) once`);
    seen.add(key);
    let layer = layers.get(t.layer);
    if (layer === undefined) {
      layer = { layer: t.layer, depth: layers.size, tensors: [], params: 0 };
      layers.set(t.layer, layer);
    }
    layer.tensors.push(t);
    layer.params += t.values.length;
  }
  return [...layers.values()];
}
