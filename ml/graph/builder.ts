/**
 * Building a TensorFlow GraphDef node by node: unique node names, the attributes each op needs (float32
 * throughout, NHWC), and constants. A tensor is named as TensorFlow's session feeds and fetches name it:
 * `node` for output 0, `node:k` for output k.
 *
 * Called by ml/graph/step.ts, which writes the training-step graph of a model with it.
 */
import { DT, savedModelToBytes, type Attr, type NodeDef } from './proto.js';

/** A tensor in the graph under construction: `node` or `node:k`. */
export type T = string;

const F: Attr = { type: DT.float };

export class GraphBuilder {
  readonly nodes: NodeDef[] = [];
  private readonly used = new Map<string, number>();

  /** A fresh node name from `base` (`base`, then `base_1`, `base_2`...). */
  private unique(base: string): string {
    const clean = base.replace(/[^A-Za-z0-9_./-]/g, '_').replace(/^[^A-Za-z0-9.]/, 'n');
    const n = this.used.get(clean) ?? 0;
    this.used.set(clean, n + 1);
    return n === 0 ? clean : `${clean}_${n}`;
  }

  /** Adds a node and returns its name (its output 0). */
  op(op: string, name: string, inputs: readonly T[], attrs: Record<string, Attr> = {}, controls: readonly string[] = []): T {
    const unique = this.unique(name);
    this.nodes.push({ name: unique, op, inputs: [...inputs, ...controls.map((c) => `^${c.split(':')[0]}`)], attrs });
    return unique;
  }

  /** A float32 op with attribute T. */
  f(op: string, name: string, inputs: readonly T[], attrs: Record<string, Attr> = {}): T {
    return this.op(op, name, inputs, { T: F, ...attrs });
  }

  constF(name: string, values: ArrayLike<number>, shape: readonly number[] = []): T {
    return this.op('Const', name, [], { dtype: F, value: { tensor: { dtype: 'float32', shape, values } } });
  }

  constI(name: string, values: ArrayLike<number>, shape: readonly number[] = [values.length]): T {
    return this.op('Const', name, [], { dtype: { type: DT.int32 }, value: { tensor: { dtype: 'int32', shape, values } } });
  }

  placeholder(name: string, dtype: 'float32' | 'int32', shape: readonly number[]): T {
    return this.op('Placeholder', name, [], { dtype: { type: dtype === 'float32' ? DT.float : DT.int32 }, shape: { shape } });
  }

  /** A resource variable; `shared_name` keeps it alive in the session between runs. */
  variable(name: string, shape: readonly number[]): T {
    const node = this.unique(name);
    this.nodes.push({
      name: node,
      op: 'VarHandleOp',
      inputs: [],
      attrs: { dtype: F, shape: { shape }, shared_name: { s: node }, container: { s: '' } },
    });
    return node;
  }

  read(name: string, handle: T): T {
    return this.op('ReadVariableOp', name, [handle], { dtype: F });
  }

  assign(name: string, handle: T, value: T): string {
    return this.op('AssignVariableOp', name, [handle, value], { dtype: F });
  }

  /** `value`, available only after every op in `controls` ran: how a fetch reaches ops with no output. */
  after(name: string, value: T, controls: readonly string[], dtype: 'float32' | 'int32' = 'float32'): T {
    return this.op('Identity', name, [value], { T: { type: dtype === 'float32' ? DT.float : DT.int32 } }, controls);
  }

  add(name: string, a: T, b: T): T {
    return this.f('AddV2', name, [a, b]);
  }

  sub(name: string, a: T, b: T): T {
    return this.f('Sub', name, [a, b]);
  }

  mul(name: string, a: T, b: T): T {
    return this.f('Mul', name, [a, b]);
  }

  div(name: string, a: T, b: T): T {
    return this.f('RealDiv', name, [a, b]);
  }

  /** The sum of `terms` (AddN when there are several, as where a tensor feeds several consumers). */
  sum(name: string, terms: readonly T[]): T {
    if (terms.length === 0) throw new Error(`${name}: expected at least one term to sum, found none`);
    if (terms.length === 1) return terms[0]!;
    return this.op('AddN', name, terms, { T: F, N: { i: terms.length } });
  }

  reshape(name: string, x: T, shape: readonly number[]): T {
    return this.op('Reshape', name, [x, this.constI(`${name}/shape`, shape)], { T: F, Tshape: { type: DT.int32 } });
  }

  /** The serialized SavedModel of the graph so far. */
  toSavedModel(): Uint8Array {
    return savedModelToBytes(this.nodes);
  }
}
