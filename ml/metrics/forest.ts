/**
 * A CART regression forest (Breiman 2001) over typed arrays, grown for the wavelet decomposition of
 * `smoothness.ts`: the smoothness analysis needs every node of every tree (its training-sample count,
 * its mean and its parent), not just predictions, so the trees are kept as flat typed arrays.
 *
 * Each tree is grown on a bootstrap sample (n draws with replacement; duplicates count with their
 * multiplicity, as sklearn's sample weights do). At each node, candidate features are drawn at random
 * without replacement until `maxFeatures` non-constant ones have been tried (a node whose drawn features
 * are all constant on its samples keeps drawing, as sklearn does, so a node splits whenever any feature
 * can split it). For each candidate the node's values are sorted and every threshold between distinct
 * consecutive values is scored by the variance reduction summed over the outputs,
 * maximising sum_k (S_Lk^2 / n_L + S_Rk^2 / n_R) (S = sums of the outputs on each side). The threshold
 * is the midpoint of the two values; samples with x <= threshold go left. Nodes split until pure (all
 * outputs equal), smaller than 2 * minSamplesLeaf, or at maxDepth.
 *
 * Leaves are vector-valued: a node's value is the mean of its samples' output vectors (one-hot labels
 * give class frequencies). Nodes are numbered in preorder, left child first, so a node's children and
 * its whole subtree have larger ids than it.
 *
 * Deterministic: every draw comes from `deriveRng(seed, 'forest', tree)`, so tree t is the same whatever
 * the number of trees. Pure: no I/O; called by ml/metrics/smoothness.ts.
 */
import { deriveRng, type Rng } from '../rng.js';
import { checkFeatures, type FeatureMatrix } from './gram.js';

/** How many features a split considers: `sqrt` of their number, `all`, or a fraction in (0, 1]. */
export type MaxFeatures = 'sqrt' | 'all' | number;

export interface ForestArgs {
  /** Trees in the forest (>= 1). */
  trees: number;
  /** Candidate features per split (default `sqrt`, at least 1). */
  maxFeatures?: MaxFeatures;
  /** Seed of the bootstrap samples and the feature draws. */
  seed: number;
  /** Grow each tree on a bootstrap sample (default true); false grows on the samples as given. */
  bootstrap?: boolean;
  /** Fewest training samples in a leaf (default 1). */
  minSamplesLeaf?: number;
  /** Deepest level a node may have, the root being 0 (default unlimited). */
  maxDepth?: number;
}

/** Regression targets: `rows` vectors of `outputs` values, row-major. */
export interface Targets {
  values: Float32Array | Float64Array;
  outputs: number;
}

/** One grown tree, as parallel arrays indexed by node id (0 = root). */
export interface Tree {
  nodes: number;
  /** Split feature of an internal node; -1 for a leaf. */
  feature: Int32Array;
  /** Split threshold: x[feature] <= threshold goes left. */
  threshold: Float64Array;
  left: Int32Array;
  right: Int32Array;
  /** Parent id; -1 for the root. */
  parent: Int32Array;
  /** Training samples (bootstrap draws) that reached the node. */
  count: Int32Array;
  /** Mean output vector of those samples: node i's is value[i * outputs ...]. */
  value: Float64Array;
}

export interface Forest {
  trees: Tree[];
  /** Features the forest was grown on. */
  features: number;
  outputs: number;
}

/** The number of candidate features per split for `d` features. */
export function candidateFeatures(maxFeatures: MaxFeatures, d: number): number {
  if (maxFeatures === 'all') return d;
  if (maxFeatures === 'sqrt') return Math.max(1, Math.floor(Math.sqrt(d)));
  if (typeof maxFeatures !== 'number' || !(maxFeatures > 0 && maxFeatures <= 1)) {
    throw new RangeError(`maxFeatures: expected 'sqrt', 'all' or a fraction in (0, 1]; found ${String(maxFeatures)}`);
  }
  return Math.max(1, Math.floor(maxFeatures * d));
}

/** Sorts keys[lo, hi) ascending, carrying items along (introsort-free quicksort; median of three, insertion sort below 16). */
function sortPairs(keys: Float64Array, items: Int32Array, lo: number, hi: number): void {
  while (hi - lo > 16) {
    const mid = (lo + hi) >>> 1;
    // Median of three to the middle, then Hoare partition around its value.
    if (keys[mid] < keys[lo]) swap(keys, items, mid, lo);
    if (keys[hi - 1] < keys[lo]) swap(keys, items, hi - 1, lo);
    if (keys[hi - 1] < keys[mid]) swap(keys, items, hi - 1, mid);
    const pivot = keys[mid];
    let i = lo;
    let j = hi - 1;
    for (;;) {
      while (keys[i] < pivot) i++;
      while (keys[j] > pivot) j--;
      if (i >= j) break;
      swap(keys, items, i, j);
      i++;
      j--;
    }
    // Recurse into the smaller side, loop on the larger: stack depth stays O(log n).
    if (j + 1 - lo < hi - j - 1) {
      sortPairs(keys, items, lo, j + 1);
      lo = j + 1;
    } else {
      sortPairs(keys, items, j + 1, hi);
      hi = j + 1;
    }
  }
  for (let i = lo + 1; i < hi; i++) {
    const k = keys[i];
    const it = items[i];
    let j = i - 1;
    while (j >= lo && keys[j] > k) {
      keys[j + 1] = keys[j];
      items[j + 1] = items[j];
      j--;
    }
    keys[j + 1] = k;
    items[j + 1] = it;
  }
}

function swap(keys: Float64Array, items: Int32Array, a: number, b: number): void {
  const k = keys[a];
  keys[a] = keys[b];
  keys[b] = k;
  const t = items[a];
  items[a] = items[b];
  items[b] = t;
}

/** Growable node storage; trimmed to `Tree` at the end. */
class NodeBuffer {
  size = 0;
  feature = new Int32Array(64);
  threshold = new Float64Array(64);
  left = new Int32Array(64);
  right = new Int32Array(64);
  parent = new Int32Array(64);
  count = new Int32Array(64);
  value: Float64Array;

  constructor(private readonly outputs: number) {
    this.value = new Float64Array(64 * outputs);
  }

  add(parent: number, count: number): number {
    if (this.size === this.feature.length) this.grow();
    const id = this.size++;
    this.feature[id] = -1;
    this.left[id] = -1;
    this.right[id] = -1;
    this.parent[id] = parent;
    this.count[id] = count;
    return id;
  }

  private grow(): void {
    const cap = this.feature.length * 2;
    const more = <T extends Int32Array | Float64Array>(a: T, n: number): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.feature = more(this.feature, cap);
    this.threshold = more(this.threshold, cap);
    this.left = more(this.left, cap);
    this.right = more(this.right, cap);
    this.parent = more(this.parent, cap);
    this.count = more(this.count, cap);
    this.value = more(this.value, cap * this.outputs);
  }

  toTree(): Tree {
    const n = this.size;
    return {
      nodes: n,
      feature: this.feature.slice(0, n),
      threshold: this.threshold.slice(0, n),
      left: this.left.slice(0, n),
      right: this.right.slice(0, n),
      parent: this.parent.slice(0, n),
      count: this.count.slice(0, n),
      value: this.value.slice(0, n * this.outputs),
    };
  }
}

interface Grower {
  x: Float32Array | Float64Array;
  d: number;
  y: Float32Array | Float64Array;
  k: number;
  mtry: number;
  minLeaf: number;
  maxDepth: number;
  rng: Rng;
  /** Scratch: one feature's values of a node's samples, and the samples in that order. */
  keys: Float64Array;
  order: Int32Array;
  /** Scratch: the best split's sample order so far. */
  bestOrder: Int32Array;
  /** Scratch: output sums left of the scan position, and over the node. */
  sumLeft: Float64Array;
  sumAll: Float64Array;
  /** A permutation of the feature ids, partially reshuffled at each node. */
  featureOrder: Int32Array;
}

/** Whether every sample of idx[start, end) has the same output vector. */
function isPure(g: Grower, idx: Int32Array, start: number, end: number): boolean {
  const { y, k } = g;
  const first = idx[start] * k;
  for (let p = start + 1; p < end; p++) {
    const row = idx[p] * k;
    for (let o = 0; o < k; o++) if (y[row + o] !== y[first + o]) return false;
  }
  return true;
}

/**
 * Finds the best split of idx[start, end) and reorders that range so the left samples come first.
 * Returns the left size, or 0 when no feature can split the node.
 */
function splitNode(g: Grower, tree: NodeBuffer, node: number, idx: Int32Array, start: number, end: number): number {
  const { x, d, y, k, minLeaf, keys, order, sumLeft, sumAll, featureOrder, rng } = g;
  const m = end - start;
  sumAll.fill(0);
  for (let p = start; p < end; p++) {
    const row = idx[p] * k;
    for (let o = 0; o < k; o++) sumAll[o] += y[row + o];
  }
  let bestProxy = -Infinity;
  let bestFeature = -1;
  let bestThreshold = 0;
  let bestLeft = 0;
  let tried = 0;
  for (let f = 0; f < d && tried < g.mtry; f++) {
    // Partial Fisher-Yates: featureOrder[f] becomes a uniform draw among the features not yet drawn.
    const r = f + rng.int(d - f);
    const feature = featureOrder[r];
    featureOrder[r] = featureOrder[f];
    featureOrder[f] = feature;

    let lo = Infinity;
    let hi = -Infinity;
    for (let p = 0; p < m; p++) {
      const s = idx[start + p];
      const v = x[s * d + feature];
      keys[p] = v;
      order[p] = s;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!(hi > lo)) continue; // constant on this node: does not count as tried
    tried++;
    sortPairs(keys, order, 0, m);
    sumLeft.fill(0);
    for (let p = 1; p < m; p++) {
      const row = order[p - 1] * k;
      for (let o = 0; o < k; o++) sumLeft[o] += y[row + o];
      if (p < minLeaf || m - p < minLeaf || keys[p - 1] === keys[p]) continue;
      let proxy = 0;
      const nl = p;
      const nr = m - p;
      for (let o = 0; o < k; o++) {
        const l = sumLeft[o];
        const rr = sumAll[o] - l;
        proxy += (l * l) / nl + (rr * rr) / nr;
      }
      if (proxy > bestProxy) {
        bestProxy = proxy;
        bestFeature = feature;
        bestLeft = p;
        // Midpoint, falling back to the lower value when rounding lands on the upper one.
        let t = keys[p - 1] / 2 + keys[p] / 2;
        if (t === keys[p] || !Number.isFinite(t)) t = keys[p - 1];
        bestThreshold = t;
      }
    }
    if (bestFeature === feature) g.bestOrder.set(order.subarray(0, m));
  }
  if (bestFeature < 0) return 0;
  tree.feature[node] = bestFeature;
  tree.threshold[node] = bestThreshold;
  idx.set(g.bestOrder.subarray(0, m), start);
  return bestLeft;
}

function growTree(g: Grower, sample: Int32Array): Tree {
  const tree = new NodeBuffer(g.k);
  // Work stack of [start, end, depth, parent, side]; side 0 = left child, 1 = right child.
  const stack: number[] = [0, sample.length, 0, -1, 0];
  while (stack.length > 0) {
    const side = stack.pop()!;
    const parent = stack.pop()!;
    const depth = stack.pop()!;
    const end = stack.pop()!;
    const start = stack.pop()!;
    const id = tree.add(parent, end - start);
    if (parent >= 0) (side === 0 ? tree.left : tree.right)[parent] = id;
    const value = tree.value;
    for (let p = start; p < end; p++) {
      const row = sample[p] * g.k;
      for (let o = 0; o < g.k; o++) value[id * g.k + o] += g.y[row + o];
    }
    for (let o = 0; o < g.k; o++) value[id * g.k + o] /= end - start;
    if (end - start < 2 * g.minLeaf || depth >= g.maxDepth || isPure(g, sample, start, end)) continue;
    const nLeft = splitNode(g, tree, id, sample, start, end);
    if (nLeft === 0) continue;
    // Right first so the left child is popped (and numbered) next: preorder, left first.
    stack.push(start + nLeft, end, depth + 1, id, 1);
    stack.push(start, start + nLeft, depth + 1, id, 0);
  }
  return tree.toTree();
}

function checkTargets(x: FeatureMatrix, y: Targets, what: string): void {
  if (!(y.values instanceof Float32Array || y.values instanceof Float64Array)) {
    throw new TypeError(`${what}: expected targets in a Float32Array or Float64Array; found ${Object.prototype.toString.call(y.values)}`);
  }
  if (!Number.isInteger(y.outputs) || y.outputs < 1) throw new RangeError(`${what}: expected at least 1 output per target; found ${y.outputs}`);
  if (y.values.length !== x.rows * y.outputs) {
    throw new RangeError(`${what}: expected ${x.rows} targets of ${y.outputs} outputs (one per example) = ${x.rows * y.outputs} values; found ${y.values.length}`);
  }
  for (let i = 0; i < y.values.length; i++) {
    if (!Number.isFinite(y.values[i])) throw new RangeError(`${what}: expected finite targets; found ${y.values[i]} at example ${Math.floor(i / y.outputs)}`);
  }
}

/** Throws when a feature value is NaN or infinite (CART's ordering is undefined on them). */
export function checkFiniteFeatures(x: FeatureMatrix, what: string): void {
  const v = x.values;
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) {
      throw new RangeError(`${what}: expected finite features; found ${v[i]} at example ${Math.floor(i / x.cols)}, feature ${i % x.cols}`);
    }
  }
}

/**
 * Grows the trees of the forest one at a time, checking the inputs first: a caller that must stay
 * responsive (an activity heartbeating, watching for cancellation) yields between trees. Tree t
 * depends only on the inputs, the seed and t.
 */
export function* forestTrees(x: FeatureMatrix, y: Targets, args: ForestArgs): Generator<Tree, void, undefined> {
  checkFeatures(x, 'fitForest features');
  if (x.rows < 1 || x.cols < 1) throw new RangeError(`fitForest: expected at least 1 example and 1 feature; found ${x.rows} x ${x.cols}`);
  checkFiniteFeatures(x, 'fitForest');
  checkTargets(x, y, 'fitForest');
  if (!Number.isInteger(args.trees) || args.trees < 1) throw new RangeError(`fitForest: expected trees to be an integer >= 1; found ${args.trees}`);
  const minLeaf = args.minSamplesLeaf ?? 1;
  if (!Number.isInteger(minLeaf) || minLeaf < 1) throw new RangeError(`fitForest: expected minSamplesLeaf to be an integer >= 1; found ${minLeaf}`);
  const maxDepth = args.maxDepth ?? Infinity;
  if (!(maxDepth >= 0)) throw new RangeError(`fitForest: expected maxDepth >= 0; found ${maxDepth}`);
  const mtry = candidateFeatures(args.maxFeatures ?? 'sqrt', x.cols);
  const n = x.rows;
  const d = x.cols;
  for (let t = 0; t < args.trees; t++) {
    const rng = deriveRng(args.seed, 'forest', t);
    const sample = new Int32Array(n);
    if (args.bootstrap ?? true) for (let i = 0; i < n; i++) sample[i] = rng.int(n);
    else for (let i = 0; i < n; i++) sample[i] = i;
    const g: Grower = {
      x: x.values,
      d,
      y: y.values,
      k: y.outputs,
      mtry,
      minLeaf,
      maxDepth,
      rng,
      keys: new Float64Array(n),
      order: new Int32Array(n),
      bestOrder: new Int32Array(n),
      sumLeft: new Float64Array(y.outputs),
      sumAll: new Float64Array(y.outputs),
      featureOrder: Int32Array.from({ length: d }, (_, i) => i),
    };
    yield growTree(g, sample);
  }
}

/** Grows a regression forest of `args.trees` trees on features `x` (rows x cols) and targets `y`. */
export function fitForest(x: FeatureMatrix, y: Targets, args: ForestArgs): Forest {
  return { trees: [...forestTrees(x, y, args)], features: x.cols, outputs: y.outputs };
}

/** The leaf of `tree` that example `row` of `x` falls in. */
export function leafOf(tree: Tree, x: FeatureMatrix, row: number): number {
  const base = row * x.cols;
  let node = 0;
  while (tree.feature[node] >= 0) {
    node = x.values[base + tree.feature[node]] <= tree.threshold[node] ? tree.left[node] : tree.right[node];
  }
  return node;
}

/** The forest's prediction for every row of `x`: the mean over trees of the leaf values, (rows x outputs) row-major. */
export function predictForest(forest: Forest, x: FeatureMatrix): Float64Array {
  checkFeatures(x, 'predictForest features');
  if (x.cols !== forest.features) throw new RangeError(`predictForest: expected ${forest.features} features per example; found ${x.cols}`);
  const k = forest.outputs;
  const out = new Float64Array(x.rows * k);
  for (const tree of forest.trees) {
    for (let i = 0; i < x.rows; i++) {
      const leaf = leafOf(tree, x, i);
      for (let o = 0; o < k; o++) out[i * k + o] += tree.value[leaf * k + o];
    }
  }
  for (let i = 0; i < out.length; i++) out[i] /= forest.trees.length;
  return out;
}

/**
 * Which rows of `x` reach each node of `tree`: the rows are listed in `rows`, ordered by leaf in
 * preorder, so node v's rows are rows[start[v], end[v]) (its subtree's leaves are consecutive).
 */
export function nodeRows(tree: Tree, x: FeatureMatrix): { rows: Int32Array; start: Int32Array; end: Int32Array } {
  const leaves = new Int32Array(x.rows);
  const start = new Int32Array(tree.nodes);
  const end = new Int32Array(tree.nodes);
  for (let i = 0; i < x.rows; i++) {
    leaves[i] = leafOf(tree, x, i);
    end[leaves[i]]++;
  }
  // Counting sort by leaf id: node ids are preorder, so leaf order is preorder too.
  let offset = 0;
  for (let v = 0; v < tree.nodes; v++) {
    if (tree.feature[v] >= 0) continue;
    const c = end[v];
    start[v] = offset;
    end[v] = offset;
    offset += c;
  }
  const rows = new Int32Array(x.rows);
  for (let i = 0; i < x.rows; i++) rows[end[leaves[i]]++] = i;
  // Children have larger ids than their parent: one backward pass fills every internal node.
  for (let v = tree.nodes - 1; v >= 0; v--) {
    if (tree.feature[v] < 0) continue;
    start[v] = start[tree.left[v]];
    end[v] = end[tree.right[v]];
  }
  return { rows, start, end };
}
