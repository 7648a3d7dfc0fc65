/**
 * A minimal protocol-buffer encoder for the TensorFlow messages a SavedModel of one training graph
 * needs: SavedModel, MetaGraphDef (with MetaInfoDef tags), GraphDef, NodeDef, AttrValue, TensorProto and
 * TensorShapeProto. Encoding only, and only the fields paramtrail writes; field numbers are those of
 * tensorflow/core/protobuf/{saved_model,meta_graph}.proto and tensorflow/core/framework/{graph,node_def,
 * attr_value,tensor,tensor_shape,types,versions}.proto.
 *
 * Called by ml/graph/builder.ts (savedModelToBytes).
 */

/** TensorFlow's DataType enum values (types.proto) for the dtypes the training graphs use. */
export const DT = { float: 1, int32: 3, bool: 10, resource: 20 } as const;
export type DataType = (typeof DT)[keyof typeof DT];

/** A dimension of -1 is unknown (e.g. the batch). */
export type Shape = readonly number[];

/** A constant tensor: float32 or int32 values of `shape`. */
export interface ConstTensor {
  dtype: 'float32' | 'int32';
  shape: Shape;
  values: ArrayLike<number>;
}

/** One attribute value (AttrValue's oneof), tagged by kind. */
export type Attr =
  | { s: string }
  | { i: number }
  | { f: number }
  | { b: boolean }
  | { type: DataType }
  | { shape: Shape }
  | { tensor: ConstTensor }
  | { listI: readonly number[] }
  | { listType: readonly DataType[] };

export interface NodeDef {
  name: string;
  op: string;
  /** `node`, `node:k` for output k, or `^node` for a control dependency (after all data inputs). */
  inputs: readonly string[];
  attrs: Readonly<Record<string, Attr>>;
}

const textEncoder = new TextEncoder();

/** Accumulates one message's bytes. */
class Writer {
  private readonly chunks: number[] = [];
  private readonly parts: Uint8Array[] = [];

  private flush(): void {
    if (this.chunks.length > 0) {
      this.parts.push(Uint8Array.from(this.chunks));
      this.chunks.length = 0;
    }
  }

  varint(value: number | bigint): this {
    // int64 fields: negative numbers are written as their 64-bit two's complement (ten bytes).
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.chunks.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.chunks.push(Number(v));
    return this;
  }

  private tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  uint(field: number, value: number): this {
    return this.tag(field, 0).varint(value);
  }

  bool(field: number, value: boolean): this {
    return this.uint(field, value ? 1 : 0);
  }

  float(field: number, value: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.chunks.push(...b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, 2).varint(value.length);
    this.flush();
    this.parts.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, textEncoder.encode(value));
  }

  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  /** A packed repeated varint field. */
  packed(field: number, values: readonly number[]): this {
    const inner = new Writer();
    for (const v of values) inner.varint(v);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    this.flush();
    const size = this.parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(size);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

function writeShape(w: Writer, shape: Shape): void {
  // TensorShapeProto.dim = 2, Dim.size = 1.
  for (const d of shape) w.message(2, (dim) => dim.uint(1, d));
}

function writeTensor(w: Writer, t: ConstTensor): void {
  const size = t.shape.reduce((a, b) => a * b, 1);
  if (t.values.length !== size) throw new Error(`constant tensor: expected ${size} values for shape [${t.shape.join(', ')}], found ${t.values.length}`);
  // TensorProto: dtype = 1, tensor_shape = 2, tensor_content = 4 (little-endian raw values).
  w.uint(1, t.dtype === 'float32' ? DT.float : DT.int32);
  w.message(2, (s) => writeShape(s, t.shape));
  const raw = t.dtype === 'float32' ? Float32Array.from(t.values) : Int32Array.from(t.values);
  w.bytes(4, new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
}

function writeAttr(w: Writer, a: Attr): void {
  // AttrValue: list = 1, s = 2, i = 3, f = 4, b = 5, type = 6, shape = 7, tensor = 8;
  // ListValue: i = 3 (packed), type = 6 (packed).
  if ('s' in a) w.string(2, a.s);
  else if ('i' in a) w.uint(3, a.i);
  else if ('f' in a) w.float(4, a.f);
  else if ('b' in a) w.bool(5, a.b);
  else if ('type' in a) w.uint(6, a.type);
  else if ('shape' in a) w.message(7, (s) => writeShape(s, a.shape));
  else if ('tensor' in a) w.message(8, (t) => writeTensor(t, a.tensor));
  else if ('listI' in a) w.message(1, (l) => l.packed(3, a.listI));
  else w.message(1, (l) => l.packed(6, a.listType));
}

function writeNode(w: Writer, node: NodeDef): void {
  // NodeDef: name = 1, op = 2, input = 3, attr = 5 (map<string, AttrValue>: key = 1, value = 2).
  w.string(1, node.name).string(2, node.op);
  for (const input of node.inputs) w.string(3, input);
  for (const key of Object.keys(node.attrs).sort()) {
    w.message(5, (entry) => entry.string(1, key).message(2, (v) => writeAttr(v, node.attrs[key]!)));
  }
}

/**
 * GraphDef's producer version. TensorFlow 2.12's own is 1395; any version from the 2.x line works, since
 * the loader only refuses producers older than an op's deprecation or consumers newer than itself.
 */
const GRAPH_PRODUCER = 1205;

/** A SavedModel (saved_model.pb) holding one MetaGraphDef tagged `tags` whose graph is `nodes`. */
export function savedModelToBytes(nodes: readonly NodeDef[], tags: readonly string[] = ['serve']): Uint8Array {
  const w = new Writer();
  // SavedModel: saved_model_schema_version = 1, meta_graphs = 2.
  w.uint(1, 1);
  w.message(2, (meta) => {
    // MetaGraphDef: meta_info_graph = 1 (MetaInfoDef.tags = 4), graph_def = 2.
    meta.message(1, (info) => {
      for (const t of tags) info.string(4, t);
    });
    meta.message(2, (graph) => {
      // GraphDef: node = 1, versions = 4 (VersionDef.producer = 1).
      for (const node of nodes) graph.message(1, (n) => writeNode(n, node));
      graph.message(4, (v) => v.uint(1, GRAPH_PRODUCER));
    });
  });
  return w.finish();
}
