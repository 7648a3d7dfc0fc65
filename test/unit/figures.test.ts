/**
 * The figures of report/figures.ts, checked on the SVG that Vega actually renders (marks, labels, layer
 * order) and the PNG that resvg makes of it, each built from a few hand-made rows.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DistanceRow } from '../../artifacts/table.js';
import type { CkaRow, CorrelationRow, DepthProfileRow } from '../../artifacts/analysis-tables.js';
import {
  DEPTH_PROFILE_PANELS,
  DISTANCE_PANELS,
  NORM_MEASURES,
  accuracyFigureSpec,
  changedShareFigureSpec,
  ckaFigureSpec,
  pairMatrixFigureSpec,
  type PairPoint,
  correlationFigureSpec,
  depthProfileFigureSpec,
  distanceFigureSpec,
  perturbationLayersFigureSpec,
  perturbationNormsFigureSpec,
  reinitFigureSpec,
  relativeChangeFigureSpec,
  lastLayerSmoothnessFigureSpec,
  smoothnessFigureSpec,
  type LayerEpochPoint,
} from '../../report/figures.js';
import { renderSvg, svgToPng } from '../../report/render.js';

const LAYERS: Array<[string, number]> = [
  // Names out of alphabetical order, so a figure sorted by name instead of depth is caught.
  ['conv_b', 156],
  ['conv_a', 2416],
  ['dense_z', 48120],
  ['dense_y', 850],
];

function distanceRows(epochs: number, opts: { p?: string; runId?: string } = {}): DistanceRow[] {
  const rows: DistanceRow[] = [];
  for (let epoch = 1; epoch <= epochs; epoch++) {
    for (const against of ['init', 'previous'] as const) {
      LAYERS.forEach(([layer, params], depth) => {
        rows.push({
          runId: opts.runId ?? 'lenet5-a',
          epoch,
          against,
          referenceEpoch: against === 'init' ? 0 : epoch - 1,
          p: opts.p ?? '1',
          layer,
          depth,
          params,
          distance: params * 0.01 * (against === 'init' ? epoch : 1 / epoch),
          meanDistance: 0.01 * (against === 'init' ? epoch : 1 / epoch),
          relative: 0.1,
          changed: 1,
        });
      });
      rows.push({ runId: opts.runId ?? 'lenet5-a', epoch, against, referenceEpoch: 0, p: opts.p ?? '1', layer: '__model__', depth: -1, params: 51542, distance: 1, meanDistance: 1 / 51542, relative: 0.1, changed: 1 });
    }
  }
  return rows;
}

/** Line paths of one panel: Vega draws each series as a `mark-line role-mark` group holding one path. */
function linePaths(svg: string, panel: string): number {
  const re = new RegExp(`<g class="mark-line role-mark ${panel}_[^"]*"[^>]*><path`, 'g');
  return svg.match(re)?.length ?? 0;
}

/** Text of every `<text>` element, in document order; a multi-line text gives each `<tspan>` line. */
function texts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>(.*?)<\/text>/gs)].flatMap((m) =>
    m[1].includes('<tspan') ? [...m[1].matchAll(/<tspan[^>]*>([^<]*)<\/tspan>/g)].map((t) => t[1]) : [m[1]],
  );
}

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Uint8Array): { width: number; height: number } {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

function svgSize(svg: string): { width: number; height: number } {
  const m = /<svg[^>]* width="([\d.]+)" height="([\d.]+)"/.exec(svg);
  assert.ok(m, 'the SVG has width and height attributes');
  return { width: Number(m[1]), height: Number(m[2]) };
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

describe('distance figure', () => {
  it('draws both panels, every layer in depth order, and one line per epoch', async () => {
    const svg = await renderSvg(distanceFigureSpec(distanceRows(3), { title: 'lenet5-a' }));
    const all = texts(svg);
    assert.ok(all.includes(DISTANCE_PANELS.init), 'init panel title');
    assert.ok(all.includes(DISTANCE_PANELS.previous), 'previous panel title');
    assert.ok(all.some((t) => t.includes('lenet5-a') && t.includes('p = 1')), 'figure title names the run and p');
    // Each panel's x axis lists the layers in depth order.
    const layerLabels = all.filter((t) => LAYERS.some(([name]) => name === t));
    assert.deepEqual(layerLabels, [...LAYERS.map(([n]) => n), ...LAYERS.map(([n]) => n)]);
    assert.ok(!svg.includes('__model__'), 'whole-model rows are not drawn');
    assert.equal(linePaths(svg, 'concat_0'), 3);
    assert.equal(linePaths(svg, 'concat_1'), 3);
  });

  it('keeps one line per epoch when there are too many epochs for a discrete legend', async () => {
    const svg = await renderSvg(distanceFigureSpec(distanceRows(15), { title: 'lenet5-a', logScale: true }));
    assert.equal(linePaths(svg, 'concat_0'), 15);
    assert.equal(linePaths(svg, 'concat_1'), 15);
  });

  it('draws only the requested p and says which in the title', async () => {
    const rows = [...distanceRows(2, { p: '1' }), ...distanceRows(4, { p: 'inf' })];
    const svg = await renderSvg(distanceFigureSpec(rows, { title: 'lenet5-a', p: 'inf' }));
    assert.equal(linePaths(svg, 'concat_0'), 4);
    assert.ok(texts(svg).some((t) => t.includes('p = ∞')));
  });

  it('rejects rows with an unknown reference', () => {
    const rows = distanceRows(1);
    rows[2] = { ...rows[2], against: 'final' as DistanceRow['against'] };
    assert.throws(() => distanceFigureSpec(rows, { title: 'x' }), /expected against to be one of init, previous in row 2; found "final"/);
  });

  it('rejects an empty table, a table of whole-model rows only, and mixed runs', () => {
    assert.throws(() => distanceFigureSpec([], { title: 'x' }), /distance figure: expected at least one distance row; found none/);
    const modelOnly = distanceRows(1).filter((r) => r.layer === '__model__');
    assert.throws(() => distanceFigureSpec(modelOnly, { title: 'x' }), /expected per-layer rows; found only whole-model rows/);
    const mixed = [...distanceRows(1), ...distanceRows(1, { runId: 'mlp-b' })];
    assert.throws(() => distanceFigureSpec(mixed, { title: 'x' }), /expected rows of a single run; found runs lenet5-a, mlp-b/);
  });

  it('asks for p when rows hold several, and rejects a p they do not hold', () => {
    const rows = [...distanceRows(1, { p: '1' }), ...distanceRows(1, { p: '2' })];
    assert.throws(() => distanceFigureSpec(rows, { title: 'x' }), /expected opts.p when the rows hold several p; found p = 1, 2/);
    assert.throws(() => distanceFigureSpec(rows, { title: 'x', p: 'inf' }), /expected rows with p = inf; found p = 1, 2/);
  });

  it('rejects a layer listed at two depths', () => {
    const rows = distanceRows(2);
    const moved = rows.findIndex((r) => r.epoch === 2 && r.layer === 'conv_a');
    rows[moved] = { ...rows[moved], depth: 7 };
    assert.throws(() => distanceFigureSpec(rows, { title: 'x' }), /expected one depth per layer; found layer "conv_a" at depths 1 and 7/);
  });
});

describe('accuracy figure', () => {
  const history = ['lenet5-a', 'mlp-b', 'mlp-c'].flatMap((run, r) =>
    [1, 2, 3].map((epoch) => ({ run, epoch, valAccuracy: 0.5 + 0.1 * epoch - 0.05 * r, trainAccuracy: 0.6 + 0.1 * epoch })),
  );

  it('draws one line per run with a legend naming each run', async () => {
    const svg = await renderSvg(accuracyFigureSpec(history, { title: 'All runs' }));
    assert.equal(svg.match(/<g class="mark-line role-mark[^"]*"[^>]*><path/g)?.length, 3);
    const all = texts(svg);
    for (const run of ['lenet5-a', 'mlp-b', 'mlp-c']) assert.ok(all.includes(run), `legend names ${run}`);
    assert.ok(all.includes('All runs'));
    assert.ok(all.includes('validation accuracy'));
  });

  it('names runs whole in its legend, however long their names', async () => {
    const long = ['resnet20--cifar-10--sgd-momentum--s0', 'resnet20--cifar-10--sgd-momentum--s1'];
    const svg = await renderSvg(accuracyFigureSpec(history.map((h, i) => ({ ...h, run: long[i % 2]! })), { title: 'long names' }));
    const all = texts(svg);
    for (const run of long) assert.ok(all.includes(run), `legend names ${run} whole, found ${all.filter((t) => t.startsWith('resnet')).join(', ')}`);
  });

  it('draws a sweep of many runs as faint lines under the bold mean of each group, with a legend of groups', async () => {
    // 30 runs in two groups; group b is 0.2 above group a at every epoch.
    const many = Array.from({ length: 30 }, (_, r) =>
      [1, 2].map((epoch) => ({ run: `run-${r}`, group: r % 2 ? 'b' : 'a', epoch, valAccuracy: 0.3 + 0.1 * epoch + (r % 2) * 0.2 + 0.001 * r, trainAccuracy: 0.5 })),
    ).flat();
    const svg = await renderSvg(accuracyFigureSpec(many, { title: 'Sweep' }));
    const lines = (marks: string) => svg.match(new RegExp(`<g class="mark-line role-mark ${marks}"[^>]*><path`, 'g'))?.length;
    assert.equal(lines('layer_0_marks'), 30, 'a line per run');
    // (The mean layer's line with points compiles to a layer of its own.)
    assert.equal(lines('layer_1_layer_0_marks'), 2, 'a mean line per group');
    const all = texts(svg);
    assert.ok(all.includes('a') && all.includes('b') && all.includes('group'), 'the legend names the groups');
    assert.ok(!all.some((t) => t.startsWith('run-')), 'no legend entry per run');
    assert.ok(all.includes('30 runs: a faint line each; bold, the mean of each group'));

    // The bold lines are the groups' means: the spec averages each group's runs per epoch.
    const spec = accuracyFigureSpec(many, { title: 'Sweep' }) as { layer: Array<{ encoding: { y: { aggregate?: string } } }> };
    assert.deepEqual(spec.layer.map((l) => l.encoding.y.aggregate), [undefined, 'mean']);

    // Ten runs still get a colour and a legend entry each.
    const ten = many.filter((h) => Number(h.run.slice(4)) < 10);
    assert.ok(texts(await renderSvg(accuracyFigureSpec(ten, { title: 'Ten' }))).includes('run-9'));
  });

  it('draws training accuracy for runs with no validation split, and their nulls only there', async () => {
    const unvalidated = history.map((h) => ({ ...h, valAccuracy: null }));
    const svg = await renderSvg(accuracyFigureSpec(unvalidated, { title: 'No split', metric: 'trainAccuracy' }));
    assert.equal(svg.match(/<g class="mark-line role-mark[^"]*"[^>]*><path/g)?.length, 3);
    const all = texts(svg);
    assert.ok(all.includes('training accuracy') && !all.includes('validation accuracy'), `axis titles: ${all.filter((t) => t.includes('accuracy')).join(', ')}`);
    // Its lines are the runs' training accuracies.
    const spec = accuracyFigureSpec(unvalidated, { title: 'x', metric: 'trainAccuracy' }) as { encoding: { y: { field: string } } };
    assert.equal(spec.encoding.y.field, 'trainAccuracy');
    const sweep = Array.from({ length: 12 }, (_, r) => ({ run: `run-${r}`, epoch: 1, valAccuracy: null, trainAccuracy: 0.5 }));
    assert.ok(texts(await renderSvg(accuracyFigureSpec(sweep, { title: 'Sweep', metric: 'trainAccuracy' }))).includes('training accuracy'));
    assert.throws(() => accuracyFigureSpec(unvalidated, { title: 'x' }), /expected valAccuracy in \[0, 1\] in point 0 \(run "lenet5-a"\); found null/);
  });

  it('rejects empty histories and accuracies outside [0, 1]', () => {
    assert.throws(() => accuracyFigureSpec([], { title: 'x' }), /expected at least one history point; found none/);
    const percent = [{ run: 'a', epoch: 1, valAccuracy: 87.5, trainAccuracy: 0.9 }];
    assert.throws(() => accuracyFigureSpec(percent, { title: 'x' }), /expected valAccuracy in \[0, 1\] in point 0 \(run "a"\); found 87.5/);
  });
});

describe('svgToPng', () => {
  it('makes a PNG of the SVG at the requested scale', async () => {
    const svg = await renderSvg(distanceFigureSpec(distanceRows(3), { title: 'lenet5-a' }));
    const size = svgSize(svg);
    for (const scale of [1, 2]) {
      const png = svgToPng(svg, { scale });
      assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE);
      const { width, height } = pngSize(png);
      assert.equal(width, Math.round(size.width * scale));
      assert.equal(height, Math.round(size.height * scale));
      assert.ok(size.width > 400 && size.height > 200, `a two-panel figure is a few hundred pixels; found ${size.width}x${size.height}`);
    }
  });

  it('draws text (resvg drops text silently when it finds no font)', () => {
    const frame = (body: string) => `<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40">${body}</svg>`;
    const blank = svgToPng(frame(''));
    // The family list every figure uses (see report/render.ts).
    const withText = svgToPng(frame('<text x="5" y="25" font-family="DejaVu Sans, sans-serif" font-size="16">layer 1</text>'));
    assert.notDeepEqual(withText, blank);
  });

  it('rejects a scale that is not a positive number', () => {
    assert.throws(() => svgToPng('<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>', { scale: 0 }), /expected a positive finite scale; found 0/);
  });
});

/** Marks of one kind: Vega draws each mark set as a `<g class="mark-<type> role-mark ...">` group. */
function markItems(svg: string, type: string): string {
  const groups = [...svg.matchAll(new RegExp(`<g class="mark-${type} role-mark[^"]*"[^>]*>(.*?)</g>`, 'gs'))];
  return groups.map((m) => m[1]).join('');
}

/** Layer labels of the x axis, in the order drawn (the first occurrence of each known name). */
function labelsIn(svg: string, names: string[]): string[] {
  return texts(svg).filter((t) => names.includes(t));
}

const LAYER_NAMES = LAYERS.map(([n]) => n);

describe('correlation figure', () => {
  const bins: CorrelationRow[] = [-1, -0.5, 0, 0.5].map((binStart, i) => ({ layer: 'dense_z', binStart, binEnd: binStart + 0.5, count: [1, 4, 9, 2][i] }));

  it('draws one bar per bin and names the layer and mean |r|', async () => {
    const svg = await renderSvg(correlationFigureSpec(bins, { title: 'lenet5-a', meanAbs: 0.123456 }));
    assert.equal(markItems(svg, 'rect').match(/<path/g)?.length, 4);
    const all = texts(svg);
    assert.ok(all.includes('feature correlation at dense_z') && all.includes('lenet5-a'), 'title and run');
    assert.ok(all.includes('mean |r| off the diagonal = 0.1235'));
    assert.ok(all.includes('feature pairs'));
  });

  it('rejects bins of two layers and an empty bin', () => {
    assert.throws(() => correlationFigureSpec([...bins, { ...bins[0], layer: 'conv_a' }], { title: 'x' }), /expected bins of a single layer; found layers dense_z, conv_a/);
    assert.throws(() => correlationFigureSpec([{ ...bins[0], binEnd: -1 }], { title: 'x' }), /expected binEnd > binStart in bin 0; found \[-1, -1\]/);
    assert.throws(() => correlationFigureSpec([], { title: 'x' }), /correlation figure: expected at least one histogram bin; found none/);
  });
});

describe('CKA heatmap', () => {
  const rows: CkaRow[] = LAYER_NAMES.flatMap((layerA, depthA) => LAYER_NAMES.map((layerB, depthB) => ({ layerA, depthA, layerB, depthB, cka: depthA === depthB ? 1 : 0.25 })));

  it('draws a cell per layer pair, layers in depth order on both axes, with values in the cells', async () => {
    const svg = await renderSvg(ckaFigureSpec(rows, { title: 'pair', a: 'resnet-a', b: 'resnet-b' }));
    assert.equal(markItems(svg, 'rect').match(/<path/g)?.length, 16);
    const labels = labelsIn(svg, LAYER_NAMES);
    // x axis input to output, y axis output (top) to input (bottom).
    assert.deepEqual(labels, [...LAYER_NAMES, ...[...LAYER_NAMES].reverse()]);
    const all = texts(svg);
    assert.equal(all.filter((t) => t === '1.00').length, 4, 'the diagonal cells');
    assert.equal(all.filter((t) => t === '0.25').length, 12);
    assert.ok(all.includes('layer of resnet-a (input → output)') && all.includes('layer of resnet-b'));
    assert.ok(all.includes('CKA'), 'colour legend');
  });

  it('leaves undefined values as empty cells and labels none when there are many layers', async () => {
    const many: CkaRow[] = [];
    for (let i = 0; i < 14; i++) for (let j = 0; j < 14; j++) many.push({ layerA: `a${i}`, depthA: i, layerB: `b${j}`, depthB: j, cka: i === 0 && j === 0 ? NaN : 0.5 });
    const svg = await renderSvg(ckaFigureSpec(many, { title: 'pair', a: 'x', b: 'y' }));
    assert.equal(markItems(svg, 'rect').match(/<path/g)?.length, 14 * 14 - 1);
    assert.ok(!texts(svg).includes('0.50'));
  });

  it('rejects a layer at two depths', () => {
    const bad = rows.map((r, i) => (i === 5 ? { ...r, depthB: 9 } : r));
    assert.throws(() => ckaFigureSpec(bad, { title: 'x', a: 'A', b: 'B' }), /CKA figure \(layers of B\): expected one depth per layer; found layer "conv_a" at depths 1 and 9/);
  });
});

describe('pair matrix', () => {
  const runs = ['sgd-s0', 'sgd-s1', 'adam-s0', 'adam-s1'];
  // Same optimiser: CKA 0.9; across: 0.4; one pair without a defined CKA.
  const pairs: PairPoint[] = runs.flatMap((a, i) =>
    runs.slice(i + 1).map((b, k) => ({ a, b, meanDiagonalCka: i === 0 && k === 2 ? NaN : a.slice(0, 3) === b.slice(0, 3) ? 0.9 : 0.4, penultimateMeanAbs: 0.25 })),
  );

  it('draws each pair in both of its cells of both matrices, runs in order, an undefined value as an empty cell', async () => {
    const svg = await renderSvg(pairMatrixFigureSpec(pairs, { title: 's4' }));
    // CKA: 6 pairs x 2 cells, less the undefined pair's 2; mean |r|: all 12.
    assert.equal(markItems(svg, 'rect').match(/<path/g)?.length, 10 + 12);
    const all = texts(svg);
    assert.equal(all.filter((t) => t === '0.90').length, 4, 'sgd with sgd and adam with adam, both ways');
    assert.equal(all.filter((t) => t === '0.40').length, 6);
    assert.equal(all.filter((t) => t === '0.25').length, 12);
    assert.deepEqual(labelsIn(svg, runs).slice(0, 4), runs);
    assert.ok(all.includes('6 pairs of 4 runs') && all.includes('mean CKA, same layers') && all.includes('penultimate features, mean |r|'));
  });

  it('labels no cell of a matrix of many runs, and rejects no pairs', async () => {
    const many: PairPoint[] = Array.from({ length: 20 }, (_, i) => ({ a: `r${i}`, b: `r${i + 1}`, meanDiagonalCka: 0.5, penultimateMeanAbs: 0.5 }));
    const svg = await renderSvg(pairMatrixFigureSpec(many, { title: 'x' }));
    assert.equal(markItems(svg, 'rect').match(/<path/g)?.length, 2 * 2 * 20);
    assert.ok(!texts(svg).includes('0.50'));
    assert.throws(() => pairMatrixFigureSpec([], { title: 'x' }), /pair matrix: expected at least one compared pair; found none/);
  });
});

describe('perturbation figures', () => {
  const points = ['lenet5-a', 'lenet5-b'].flatMap((run) => [
    { run, label: 'sign-flip', theta1: 100, theta2: 120, distance: 150 },
    { run, label: 'offset-1e-6', theta1: 100, theta2: 100.5, distance: 0.02 },
  ]);

  it('draws three bars per perturbation, one panel per run, on a log axis', async () => {
    const svg = await renderSvg(perturbationNormsFigureSpec(points, { title: 'S4', p: '2' }));
    assert.equal(markItems(svg, 'rect').match(/<path/g)?.length, 2 * 2 * 3);
    const all = texts(svg);
    for (const m of Object.values(NORM_MEASURES)) assert.ok(all.includes(m), `legend names ${m}`);
    assert.ok(all.includes('lenet5-a') && all.includes('lenet5-b'), 'a header per run');
    assert.equal(all.filter((t) => t === 'sign-flip').length, 2);
    assert.ok(all.includes('norm (p = 2)'));
    assert.ok(all.includes('0.01') || all.includes('0.02'), 'the log axis reaches down to the small distance');
  });

  it('draws a single run without panels and leaves out a zero distance on the log axis', async () => {
    const one = [{ run: 'r', label: 'identity', theta1: 5, theta2: 5, distance: 0 }];
    const svg = await renderSvg(perturbationNormsFigureSpec(one, { title: 'S4' }));
    assert.equal(markItems(svg, 'rect').match(/<path/g)?.length, 2);
    const linear = await renderSvg(perturbationNormsFigureSpec(one, { title: 'S4', logScale: false }));
    assert.equal(markItems(linear, 'rect').match(/<path/g)?.length, 3);
  });

  it('draws the per-layer relative distance, one line per perturbation, without the whole model', async () => {
    const layers = LAYER_NAMES.flatMap((layer, depth) => [
      { label: 'sign-flip', layer, depth, relative: 1.5 },
      { label: 'offset-1e-6', layer, depth, relative: 1e-4 * (depth + 1) },
    ]);
    const svg = await renderSvg(perturbationLayersFigureSpec([...layers, { label: 'sign-flip', layer: '__model__', depth: -1, relative: 1.5 }], { title: 'lenet5-a' }));
    assert.equal(svg.match(/<g class="mark-line role-mark[^"]*"[^>]*><path/g)?.length, 2);
    assert.deepEqual(labelsIn(svg, LAYER_NAMES), LAYER_NAMES);
    assert.ok(!svg.includes('__model__'));
    assert.throws(() => perturbationNormsFigureSpec([], { title: 'x' }), /expected at least one perturbation; found none/);
    assert.throws(() => perturbationLayersFigureSpec([{ label: 'a', layer: '__model__', depth: -1, relative: 1 }], { title: 'x' }), /expected per-layer rows; found only whole-model rows/);
  });
});

describe('re-initialisation figure', () => {
  const input = { baseline: { accuracy: 0.9 }, layers: LAYER_NAMES.map((layer, depth) => ({ layer, depth, accuracy: 0.1 + 0.2 * depth })) };

  it('draws accuracy per reset layer in depth order and the trained accuracy as a rule', async () => {
    const svg = await renderSvg(reinitFigureSpec(input, { title: 'lenet5-a' }));
    assert.equal(svg.match(/<g class="mark-line role-mark[^"]*"[^>]*><path/g)?.length, 1);
    assert.equal(markItems(svg, 'rule').match(/<line|<path/g)?.length, 1, 'one baseline rule');
    assert.deepEqual(labelsIn(svg, LAYER_NAMES), LAYER_NAMES);
    assert.ok(texts(svg).includes('trained model: 90.00% test accuracy (dashed)'));
  });

  it('rejects accuracies given as percentages', () => {
    assert.throws(() => reinitFigureSpec({ ...input, layers: [{ layer: 'a', depth: 0, accuracy: 85 }] }, { title: 'x' }), /expected accuracy in \[0, 1\] for layer 0 \("a"\); found 85/);
    assert.throws(() => reinitFigureSpec({ ...input, baseline: { accuracy: 90 } }, { title: 'x' }), /expected a baseline accuracy in \[0, 1\]; found 90/);
    assert.throws(() => reinitFigureSpec({ ...input, layers: [] }, { title: 'x' }), /expected at least one reset layer; found none/);
  });
});

describe('smoothness figure', () => {
  const point = (run: string, scale: number) => LAYER_NAMES.map((layer, depth) => ({ run, layer, depth, alpha: scale * (depth + 1) }));

  it('names the layers for one run', async () => {
    const svg = await renderSvg(smoothnessFigureSpec(point('resnet12', 0.02), { title: 'S2' }));
    assert.equal(svg.match(/<g class="mark-line role-mark[^"]*"[^>]*><path/g)?.length, 1);
    assert.deepEqual(labelsIn(svg, LAYER_NAMES), LAYER_NAMES);
    assert.ok(texts(svg).includes('smoothness α'));
  });

  it('draws one line per run against depth for several runs', async () => {
    const svg = await renderSvg(smoothnessFigureSpec([...point('resnet12', 0.02), ...point('plain12', 0.01), ...point('plain12-noise', 0.001)], { title: 'S2' }));
    assert.equal(svg.match(/<g class="mark-line role-mark[^"]*"[^>]*><path/g)?.length, 3);
    const all = texts(svg);
    for (const run of ['resnet12', 'plain12', 'plain12-noise']) assert.ok(all.includes(run), `legend names ${run}`);
    assert.ok(all.includes('layer depth (input → output)'));
    assert.throws(() => smoothnessFigureSpec([], { title: 'x' }), /smoothness figure: expected per-layer alphas; found none/);
  });

  it('gives each of up to 20 series a colour of its own; past 20, a faint line each with no legend', async () => {
    const runs = (n: number) => Array.from({ length: n }, (_, i) => point(`run-${i}`, 0.01 * (i + 1))).flat();
    // The strokes of the line marks (axes and gridlines are other marks).
    const lineStrokes = (svg: string) => [...svg.matchAll(/<g class="mark-line role-mark[^"]*"[^>]*><path[^>]*?stroke="([^"]+)"/g)].map((m) => m[1]);
    const sixteen = lineStrokes(await renderSvg(smoothnessFigureSpec(runs(16), { title: 'S2' })));
    assert.equal(sixteen.length, 16);
    assert.equal(new Set(sixteen).size, 16, 'no two runs share a colour');
    const crowded = await renderSvg(smoothnessFigureSpec(runs(25), { title: 'S2' }));
    assert.equal(lineStrokes(crowded).length, 25);
    assert.ok(!texts(crowded).includes('run-24'), 'no legend');
  });

  it("bars each run's last layer, in the runs' order", async () => {
    const spec = lastLayerSmoothnessFigureSpec([...point('noise-0', 0.02), ...point('noise-50', 0.01), ...point('noise-100', 0.001)], { title: 'S2' }) as {
      data: { values: Array<{ run: string; layer: string; alpha: number }> };
    };
    const last = LAYER_NAMES.at(-1)!;
    const n = LAYER_NAMES.length;
    assert.deepEqual(spec.data.values, [
      { run: 'noise-0', layer: last, alpha: 0.02 * n },
      { run: 'noise-50', layer: last, alpha: 0.01 * n },
      { run: 'noise-100', layer: last, alpha: 0.001 * n },
    ]);
    const svg = await renderSvg(spec as never);
    assert.ok(svg.includes('mark-rect role-mark'), 'drawn as bars');
    assert.deepEqual(labelsIn(svg, ['noise-0', 'noise-50', 'noise-100']), ['noise-0', 'noise-50', 'noise-100']);
    assert.throws(() => lastLayerSmoothnessFigureSpec([{ run: 'x', layer: '__model__', depth: -1, alpha: 1 }], { title: 'x' }), /expected per-layer alphas of run x/);
  });
});

describe('gathered depth profile', () => {
  const rows: DepthProfileRow[] = ['plain', 'residual'].flatMap((group, g) =>
    (['init', 'previous'] as const).flatMap((against) => [0, 0.25, 0.5, 0.75, 1].map((depth) => ({ group, against, depth, mean: g === 0 ? 0.1 + depth : 1.1 - depth, runs: 3 }))),
  );

  it('draws both panels with one line per group', async () => {
    const svg = await renderSvg(depthProfileFigureSpec(rows, { title: 'S0', p: '1' }));
    assert.equal(linePaths(svg, 'concat_0'), 2);
    assert.equal(linePaths(svg, 'concat_1'), 2);
    const all = texts(svg);
    assert.ok(all.includes(DEPTH_PROFILE_PANELS.init) && all.includes(DEPTH_PROFILE_PANELS.previous));
    assert.ok(all.includes('plain') && all.includes('residual'));
    assert.ok(all.includes('mean per-parameter distance (p = 1)'));
    assert.ok(all.includes('normalised layer depth (input → output)'));
  });

  it('leaves out a reference with no rows and rejects depths outside [0, 1]', async () => {
    const svg = await renderSvg(depthProfileFigureSpec(rows.filter((r) => r.against === 'previous'), { title: 'S0' }));
    assert.ok(!texts(svg).includes(DEPTH_PROFILE_PANELS.init));
    assert.equal(linePaths(svg, 'concat_0'), 2);
    assert.throws(() => depthProfileFigureSpec([{ ...rows[0], depth: 3 }], { title: 'x' }), /expected a normalised depth in \[0, 1\] in row 0; found 3/);
    assert.throws(() => depthProfileFigureSpec([{ ...rows[0], against: 'best' }], { title: 'x' }), /expected against to be one of init, previous in row 0; found "best"/);
  });
});

describe('share changed and relative change', () => {
  const points = (value: (epoch: number, depth: number) => number): LayerEpochPoint[] =>
    [1, 2, 3].flatMap((epoch) => [...LAYERS.map(([layer], depth) => ({ epoch, layer, depth, value: value(epoch, depth) })), { epoch, layer: '__model__', depth: -1, value: 0.5 }]);

  it('draws the share changed per layer, one line per epoch, with the tolerance stated', async () => {
    const svg = await renderSvg(changedShareFigureSpec(points((e, d) => Math.min(1, 0.2 * e + 0.1 * d)), { title: 'resnet18', tolerance: { atol: 1e-8, rtol: 0 } }));
    assert.equal(svg.match(/<g class="mark-line role-mark[^"]*"[^>]*><path/g)?.length, 3);
    assert.deepEqual(labelsIn(svg, LAYER_NAMES), LAYER_NAMES);
    const all = texts(svg);
    assert.ok(all.some((t) => t.includes('atol = 1e-8, rtol = 0')));
    assert.ok(all.includes('100%') && all.includes('parameters changed'));
    assert.ok(!svg.includes('__model__'));
    assert.throws(() => changedShareFigureSpec(points(() => 12), { title: 'x' }), /expected a share in \[0, 1\] in point 0 \(layer "conv_b"\); found 12/);
  });

  it('draws the relative change per layer, on a log axis when asked', async () => {
    const svg = await renderSvg(relativeChangeFigureSpec(points((e, d) => 0.001 * e * 10 ** d), { title: 'resnet18', p: '2', logScale: true }));
    assert.equal(svg.match(/<g class="mark-line role-mark[^"]*"[^>]*><path/g)?.length, 3);
    assert.ok(texts(svg).includes('relative change per layer (p = 2)') && texts(svg).includes('resnet18'));
    assert.throws(() => relativeChangeFigureSpec([], { title: 'x' }), /relative change figure: expected per-layer rows; found none/);
  });
});
