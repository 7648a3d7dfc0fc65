/**
 * The distance and accuracy figures, checked on the SVG that Vega actually renders and the PNG
 * that resvg makes of it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DistanceRow } from '../../artifacts/table.js';
import { DISTANCE_PANELS, accuracyFigureSpec, distanceFigureSpec } from '../../report/figures.js';
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

/** Text of every `<text>` element, in document order. */
function texts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
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
