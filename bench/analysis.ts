/**
 * Benchmark of the analysis metrics (ml/metrics) at the sizes the studies reach.
 *
 * 1. Per-layer distances on a pair of ~50M-parameter snapshots shaped like VGG-19 with batch norm and
 *    a wide classifier, written with `snapshotToArrow` and read back with `snapshotFromArrow`, so the
 *    metrics run on the zero-copy views of the Arrow read path, as the `distance` activity does.
 *    The peer is a plain Float32Array copy of the same values in the same run: the memory-bandwidth
 *    limit (a copy moves 8 bytes per parameter, like a distance reading two snapshots).
 * 2. Linear CKA and the Pearson matrix on 10,000 x 512 features, and CKA against a textbook triple
 *    loop (one strided dot product per Gram entry) on 10,000 x 128, where that loop still finishes.
 *
 * Run: npm run bench:analysis            (or node --import tsx bench/analysis.ts [millions of params])
 * Memory: about 3 x 4 bytes per parameter at peak (two encoded snapshots and the copy's target).
 */
import { snapshotFromArrow, snapshotToArrow, type NamedTensor } from '../artifacts/snapshot.js';
import {
  layerChanges,
  layerDistances,
  layerShareChanged,
  linearCka,
  pearsonMatrix,
  type FeatureMatrix,
} from '../ml/metrics/index.js';

const REPS = 3;

/** Seconds of the fastest of `reps` runs (after one warm-up run when `warm`), and the last result. */
function time<T>(fn: () => T, reps = REPS, warm = true): { seconds: number; result: T } {
  let result = warm ? fn() : (undefined as T);
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    result = fn();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return { seconds: best, result };
}

/** A layer list like VGG-19 with batch norm on 32 x 32 inputs, with a classifier wide enough for ~50M. */
function layout(targetMillions: number): Array<{ layer: string; name: string; shape: number[] }> {
  const out: Array<{ layer: string; name: string; shape: number[] }> = [];
  const widths = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512];
  let cin = 3;
  widths.forEach((cout, i) => {
    out.push({ layer: `conv2d_${i + 1}`, name: 'kernel', shape: [3, 3, cin, cout] });
    out.push({ layer: `conv2d_${i + 1}`, name: 'bias', shape: [cout] });
    for (const name of ['gamma', 'beta', 'moving_mean', 'moving_variance']) {
      out.push({ layer: `batch_normalization_${i + 1}`, name, shape: [cout] });
    }
    cin = cout;
  });
  const convParams = out.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  // Classifier 512 -> h -> h -> 1000, h chosen so the model reaches the target size.
  const target = targetMillions * 1e6;
  // 512 h + h^2 + 1000 h + (2 h + 1000) biases = target - conv: solve h^2 + 1514 h - rest = 0.
  const rest = target - convParams - 1000;
  const h = Math.max(64, Math.round((-1514 + Math.sqrt(1514 ** 2 + 4 * rest)) / 2));
  const dense: Array<[number, number]> = [
    [512, h],
    [h, h],
    [h, 1000],
  ];
  dense.forEach(([i, o], k) => {
    out.push({ layer: `dense_${k + 1}`, name: 'kernel', shape: [i, o] });
    out.push({ layer: `dense_${k + 1}`, name: 'bias', shape: [o] });
  });
  return out;
}

/**
 * The tensors of a snapshot: Glorot-scale uniform values from a seeded LCG; `moved` adds a training-
 * sized step to 70 % of the weights and leaves the rest bit-identical (so share-changed has work).
 */
function tensors(shapes: ReturnType<typeof layout>, moved: boolean): NamedTensor[] {
  let s = 12345;
  let t = 777;
  return shapes.map(({ layer, name, shape }) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const fanIn = shape.length > 1 ? shape.slice(0, -1).reduce((a, b) => a * b, 1) : 1;
    const scale = Math.sqrt(6 / (fanIn + shape[shape.length - 1]));
    const values = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      let v = (s / 4294967296 - 0.5) * 2 * scale;
      if (moved) {
        t = (Math.imul(t, 22695477) + 1) >>> 0;
        if (t < 0.7 * 4294967296) v += (t / 4294967296 - 0.35) * 0.01 * scale;
      }
      values[i] = v;
    }
    return { layer, name, shape, values };
  });
}

function encode(shapes: ReturnType<typeof layout>, moved: boolean, epoch: number): Uint8Array {
  return snapshotToArrow({ runId: 'bench-vgg19', epoch, step: epoch * 391, kind: 'weights', tensors: tensors(shapes, moved) });
}

function randomFeatures(rows: number, cols: number, seed: number, mix?: FeatureMatrix): FeatureMatrix {
  const values = new Float32Array(rows * cols);
  let s = seed >>> 0;
  for (let i = 0; i < values.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    values[i] = s / 4294967296 - 0.5;
  }
  if (mix) for (let k = 0; k < rows; k++) for (let j = 0; j < cols; j++) values[k * cols + j] += 0.5 * mix.values[k * mix.cols + ((j * 7) % mix.cols)];
  return { values, rows, cols };
}

/** Linear CKA as a textbook would write it: centre, then every Gram entry as its own strided dot product. */
function naiveCka(x: FeatureMatrix, y: FeatureMatrix): number {
  const n = x.rows;
  const centre = (m: FeatureMatrix) => {
    const out = Float64Array.from(m.values);
    for (let j = 0; j < m.cols; j++) {
      let mean = 0;
      for (let k = 0; k < n; k++) mean += out[k * m.cols + j];
      mean /= n;
      for (let k = 0; k < n; k++) out[k * m.cols + j] -= mean;
    }
    return out;
  };
  const frob2 = (a: Float64Array, da: number, b: Float64Array, db: number) => {
    let total = 0;
    for (let i = 0; i < da; i++) {
      for (let j = 0; j < db; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += a[k * da + i] * b[k * db + j];
        total += s * s;
      }
    }
    return total;
  };
  const cx = centre(x);
  const cy = centre(y);
  return frob2(cy, y.cols, cx, x.cols) / Math.sqrt(frob2(cx, x.cols, cx, x.cols) * frob2(cy, y.cols, cy, y.cols));
}

const rows: string[][] = [];
function row(what: string, size: string, seconds: number, rate: string): void {
  rows.push([what, size, seconds.toFixed(3), rate]);
}
function printTable(title: string): void {
  const header = ['measurement', 'size', 'seconds', 'rate'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  console.log(`\n${title}`);
  console.log(header.map((h, i) => (i === 2 ? h.padStart(widths[i]) : h.padEnd(widths[i]))).join('  '));
  for (const r of rows) console.log(r.map((c, i) => (i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  '));
  rows.length = 0;
}

const millions = (n: number) => `${(n / 1e6).toFixed(1)}M`;

async function main(): Promise<void> {
  const target = Number(process.argv[2] ?? 50);
  if (!(target > 0)) throw new Error(`expected a positive number of millions of parameters; found ${process.argv[2]}`);
  console.log(`node ${process.version}, ${process.arch}; best of ${REPS} runs after a warm-up unless noted`);

  // --- Distances on a snapshot pair read through Arrow ---
  const shapes = layout(target);
  const params = shapes.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const layers = new Set(shapes.map((t) => t.layer)).size;
  const t0 = performance.now();
  // Each snapshot's tensors are dropped as soon as it is encoded: only the Arrow bytes stay.
  const bytesA = encode(shapes, false, 0);
  const bytesB = encode(shapes, true, 10);
  console.log(`snapshots: ${params} parameters in ${shapes.length} tensors, ${layers} layers; ${(bytesA.byteLength / 2 ** 20).toFixed(0)} MiB each, built and encoded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const decode = time(() => snapshotFromArrow(bytesA, { verify: false }));
  const verified = time(() => snapshotFromArrow(bytesA), 1, false);
  const a = decode.result.tensors;
  const b = snapshotFromArrow(bytesB, { verify: false }).tensors;
  row('snapshotFromArrow, verify off', `${a.length} tensors`, decode.seconds, 'zero-copy views');
  row('snapshotFromArrow, sha256 verify', millions(params), verified.seconds, `${(bytesA.byteLength / 2 ** 30 / verified.seconds).toFixed(2)} GiB/s`);

  const l1 = time(() => layerDistances(a, b, 1));
  const l2 = time(() => layerDistances(a, b, 2));
  const rel = time(() => layerChanges(a, b, 1));
  const share = time(() => layerShareChanged(a, b, { atol: 0, rtol: 0 }));

  // The peer: copy the same contiguous values (the Arrow values buffer of snapshot A) into a new array.
  const first = a[0].values;
  const last = a[a.length - 1].values;
  const source = new Float32Array(first.buffer, first.byteOffset, (last.byteOffset - first.byteOffset) / 4 + last.length);
  if (source.length !== params) throw new Error(`expected the values buffer to hold ${params} values contiguously; found ${source.length}`);
  const target32 = new Float32Array(params);
  const copy = time(() => target32.set(source));
  // A second reference: the plainest branch-free L1 loop over the same views, tensor by tensor.
  const plainL1 = time(() => {
    let total = 0;
    for (let i = 0; i < a.length; i++) {
      const x = a[i].values;
      const y = b[i].values;
      for (let k = 0; k < x.length; k++) total += Math.abs(x[k] - y[k]);
    }
    return total;
  });

  const rate = (s: number) => `${(params / s / 1e6).toFixed(0)}M params/s`;
  row('L1 per-layer distance (layerDistances)', millions(params), l1.seconds, rate(l1.seconds));
  row('L2 per-layer distance (layerDistances)', millions(params), l2.seconds, rate(l2.seconds));
  row('L1 distance + |W_0| + relative (layerChanges)', millions(params), rel.seconds, rate(rel.seconds));
  row('share changed, atol = rtol = 0', millions(params), share.seconds, rate(share.seconds));
  row('peer: Float32Array copy of the same values', millions(params), copy.seconds, rate(copy.seconds));
  row('reference: plain loop sum Math.abs(a - b)', millions(params), plainL1.seconds, rate(plainL1.seconds));
  printTable('Weights (two snapshots read through Arrow)');
  console.log(`L1 distance / copy throughput ratio: ${(copy.seconds / l1.seconds).toFixed(2)} (1.00 = at the memory-bandwidth peer); plain loop / copy: ${(copy.seconds / plainL1.seconds).toFixed(2)}`);
  console.log(`model L1 distance ${l1.result.at(-1)!.distance.toExponential(4)}, relative ${rel.result.at(-1)!.relative.toExponential(3)}, share changed ${share.result.at(-1)!.fraction.toFixed(4)}`);

  // --- Features ---
  const n = 10_000;
  const x512 = randomFeatures(n, 512, 1);
  const y512 = randomFeatures(n, 512, 2, x512);
  const cka512 = time(() => linearCka(x512, y512), 1, false);
  const pearson512 = time(() => pearsonMatrix(x512), 1, false);
  const x128 = randomFeatures(n, 128, 3);
  const y128 = randomFeatures(n, 128, 4, x128);
  const cka128 = time(() => linearCka(x128, y128), 1, false);
  const naive128 = time(() => naiveCka(x128, y128), 1, false);
  const rel128 = Math.abs(naive128.result - cka128.result) / cka128.result;
  const macs = (d1: number, d2: number) => (n * (d1 + d2) ** 2) / 2;
  const gmacs = (d: number, s: number) => `${(macs(d, d) / s / 1e9).toFixed(2)} G mult-add/s`;
  row('linear CKA (tiled Gram)', `${n} x 512, 512`, cka512.seconds, gmacs(512, cka512.seconds));
  row('Pearson matrix (tiled Gram)', `${n} x 512`, pearson512.seconds, `${((n * 512 * 512) / 2 / pearson512.seconds / 1e9).toFixed(2)} G mult-add/s`);
  row('linear CKA (tiled Gram)', `${n} x 128, 128`, cka128.seconds, gmacs(128, cka128.seconds));
  row('peer: linear CKA, textbook triple loop', `${n} x 128, 128`, naive128.seconds, gmacs(128, naive128.seconds));
  printTable('Features (single runs)');
  console.log(`CKA 10,000 x 512: ${cka512.result.toFixed(6)}; at 128 the tiled kernel is ${(naive128.seconds / cka128.seconds).toFixed(1)}x the textbook loop (results agree to ${rel128.toExponential(1)} relative)`);
  console.log(`(the textbook loop at 512 would take about ${((naive128.seconds * macs(512, 512)) / macs(128, 128)).toFixed(0)} s by its operation count, so it is not run)`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
