/**
 * The HTML report: the page's structure (runs, final metrics, every experiment-level section, failed
 * analyses), that nothing from a run's name or config escapes into markup, that figures are inlined (and
 * an SVG holding anything active is not), and that it is self-contained; then the `plot` and `report`
 * activities on a local store holding every analysis table: which figures they store, where, with what
 * lineage, and that the page inlines all of them.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalStore } from '../../artifacts/local.js';
import { readManifest } from '../../artifacts/manifest.js';
import { createReport, experimentFigureKey, finalOf, type ReportInput, type ReportResult } from '../../activities/report.js';
import { figureTitle } from '../../activities/plot.js';
import type { TrainResult } from '../../activities/types.js';
import { escapeHtml, inlineSvg, reportToHtml } from '../../report/html.js';
import { ANALYSIS_ERROR, EXPERIMENT_FIGURES, HOSTILE_CONFIG, HOSTILE_NAME, RUN_ANALYSIS_FIGURES, sampleReportInput, storeSampleExperiment } from '../support/report-fixture.js';
import { activityEnvironment } from '../support/logs.js';

const input = await sampleReportInput();
const html = reportToHtml(input);

describe('reportToHtml', () => {
  it('is a complete page with the header, the runs table, the accuracy figure and a section per run', () => {
    assert.match(html, /^<!DOCTYPE html>\n<html lang="en">/);
    assert.match(html, /<\/html>\n$/);
    assert.ok(html.includes('<h1>sample &lt;experiment&gt;</h1>'));
    assert.ok(html.includes('<code>sample-20261123-abcdef</code>'));
    assert.ok(html.includes('<code>file:///tmp/store</code>'));
    assert.match(html, /<dt>paramtrail<\/dt><dd>0\.1\.0<\/dd>/);
    const tbody = html.slice(html.indexOf('<table class="runs">'), html.indexOf('</table>'));
    assert.equal(tbody.match(/<tr>/g)?.length, 1 + input.runs.length, 'a header row and a row per run');
    assert.ok(tbody.includes('80.00%') && tbody.includes('74.00%'), 'final validation and test accuracy');
    assert.ok(tbody.includes('resumed: #2 from epoch 2'), 'a resumed attempt names its epoch');
    assert.equal(html.match(/<section class="run"/g)?.length, input.runs.length);
    assert.ok(html.includes('Validation accuracy of all runs'));
    for (const r of input.runs) assert.ok(html.includes(escapeHtml(r.name)), `run ${r.name} is named`);
    assert.ok(html.includes(`<code class="sha">${'ab'.repeat(32)}</code>`), 'artifact sha256 shown');
    assert.ok(html.includes('&quot;fashion-mnist&quot;'), 'config as escaped JSON');
  });

  it('has the final-metrics table: the best epoch under early stopping, losses, accuracies and test metrics', () => {
    const finals = html.slice(html.indexOf('<table class="finals">'), html.indexOf('</table>', html.indexOf('<table class="finals">')));
    assert.equal(finals.match(/<tr>/g)?.length, 1 + input.runs.length);
    for (const h of ['train loss', 'validation loss', 'train acc', 'validation acc', 'test loss', 'test acc']) assert.ok(finals.includes(`<th>${h}</th>`), h);
    const [first, second] = input.runs.map((r) => r.final!);
    assert.ok(finals.includes(`<td class="num">${first.trainLoss.toFixed(4)}</td>`), 'train loss of the last epoch');
    assert.ok(finals.includes(`<td class="num">${second.valLoss.toFixed(4)}</td>`), 'validation loss of the best epoch');
    assert.ok(finals.includes('2 <span class="muted">(best of 3)</span>'), 'the best epoch is named as such');
    assert.ok(finals.includes('<td class="num">1.6100</td>'), 'test loss');
  });

  it('has every experiment-level section, the pairs table and the failed analyses', () => {
    for (const h of ['Analyses that failed', 'Gathered differences across runs', 'Comparisons between runs', 'Perturb and retrain', 'Layer smoothness']) {
      assert.ok(html.includes(`<h2>${h}</h2>`), h);
    }
    const pairs = html.slice(html.indexOf('<table class="pairs">'), html.indexOf('</table>', html.indexOf('<table class="pairs">')));
    assert.ok(pairs.includes('<td class="num">0.800</td>') && pairs.includes('<td class="num">0.125</td>'), 'mean diagonal CKA and penultimate mean |r|');
    assert.ok(pairs.includes(escapeHtml(HOSTILE_NAME)));
    assert.ok(html.includes(`<strong>compare a b</strong>: ${escapeHtml(ANALYSIS_ERROR.message)}`));
    // Sections come in reading order: failures first, runs, then the figures across runs, then each run.
    const order = ['Analyses that failed', 'Runs', 'Final losses and accuracies', 'Validation accuracy of all runs', 'Gathered differences across runs', 'Comparisons between runs', 'Perturb and retrain', 'Layer smoothness', 'Per run'].map((h) => html.indexOf(`<h2>${h}</h2>`));
    assert.deepEqual([...order].sort((a, b) => a - b), order);
  });

  it('summarises runs that differ only by seed: completed runs, mean ± sample sd and range of their accuracies', () => {
    const base = input.runs[0]!;
    const run = (name: string, status: string, valAccuracy?: number, testAccuracy?: number) => ({ ...base, name, status, valAccuracy, testAccuracy });
    const page = reportToHtml({
      ...input,
      runs: [
        run('mlp--fashion-mnist--s0', 'completed', 0.8, 0.7),
        run('mlp--fashion-mnist--s1', 'completed', 0.9, 0.76),
        run('mlp--fashion-mnist--s2', 'failed'),
        run('cnn--fashion-mnist--s0', 'completed', 0.5, 0.4),
      ],
    });
    const table = page.slice(page.indexOf('<table class="seeds">'), page.indexOf('</table>', page.indexOf('<table class="seeds">')));
    const rows = table.split('<tr>').slice(2).map((row) => [...row.matchAll(/<td[^>]*>([^<]*)<\/td>/g)].map((m) => m[1]));
    assert.deepEqual(rows, [
      ['mlp--fashion-mnist', '2 / 3', '85.00% ± 7.07', '73.00% ± 4.24', '70.00% – 76.00%'],
      ['cnn--fashion-mnist', '1 / 1', '50.00%', '40.00%', '40.00% – 40.00%'],
    ]);
    const order = ['Final losses and accuracies', 'Across seeds', 'Validation accuracy of all runs'].map((h) => page.indexOf(`<h2>${h}</h2>`));
    assert.ok(order[0]! > 0 && order[0]! < order[1]! && order[1]! < order[2]!, 'after the final metrics, before the accuracy figure');
    assert.ok(!html.includes('<h2>Across seeds</h2>'), 'not for a grid whose cells have one run each');
  });

  it('leaves out the sections of analyses that did not run', () => {
    const bare = reportToHtml({ ...input, gathered: undefined, comparisons: undefined, perturbation: undefined, smoothness: undefined, analysisErrors: undefined });
    for (const h of ['Analyses that failed', 'Gathered differences across runs', 'Comparisons between runs', 'Perturb and retrain', 'Layer smoothness']) assert.ok(!bare.includes(`<h2>${h}</h2>`), h);
  });

  it('inlines every figure as SVG', () => {
    const svgs = html.match(/<svg[\s>]/g) ?? [];
    const experimentLevel = 1 + 1 + input.comparisons!.figures.length + 1 + 1;
    assert.equal(svgs.length, experimentLevel + input.runs.reduce((n, r) => n + r.figures.length, 0));
    assert.ok(!html.includes('<?xml'), 'no XML prolog inside HTML');
    assert.ok(!html.includes('<img'), 'no figure fell back to an image');
  });

  it('escapes a hostile run name and config string everywhere', () => {
    assert.ok(!html.includes('<script'), 'no script element at all');
    assert.ok(!html.includes(HOSTILE_NAME));
    assert.ok(!html.includes(HOSTILE_CONFIG));
    assert.ok(!/<img[^>]*onerror/i.test(html));
    assert.ok(html.includes('&lt;script&gt;window.__pwned = 1&lt;/script&gt;&quot;&amp;&#39;lenet'));
    // Inside the JSON the config's quotes are JSON-escaped first, then HTML-escaped.
    assert.ok(html.includes('&lt;/pre&gt;&lt;img src=x onerror=\\&quot;window.__pwned=2\\&quot;&gt;&lt;pre&gt;'));
    // Anchors come from a slug of the name, never the raw text.
    assert.match(html, /href="#run-1-script-window-__pwned-1-script-lenet"/);
  });

  it('loads nothing from elsewhere', () => {
    const withoutNamespaces = html.replace(/xmlns(:xlink)?="http:\/\/www\.w3\.org\/[^"]+"/g, '');
    assert.ok(!/(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i.test(withoutNamespaces), 'no external src or href');
    assert.ok(!/@import|url\(\s*["']?https?:/i.test(withoutNamespaces), 'no external CSS');
    assert.ok(!/<link\b/i.test(html));
  });

  it('is deterministic, so a retried write stores the same bytes', () => {
    assert.equal(reportToHtml(input), html);
  });

  it('says so when no run has a history', () => {
    const empty = reportToHtml({ title: input.title, experimentId: input.experimentId, store: input.store, version: input.version, runs: [] });
    assert.ok(empty.includes('No run has a training history yet.'));
    assert.ok(!empty.includes('<svg'));
  });
});

describe('inlineSvg', () => {
  it('prefixes ids and their references, so two figures on one page keep their own clip paths', () => {
    const svg = '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><clipPath id="clip1"><rect/></clipPath><g clip-path="url(#clip1)"/><use href="#clip1"/></svg>';
    const out = inlineSvg(svg, 'f7');
    assert.ok(out.startsWith('<svg'));
    assert.ok(out.includes('id="f7-clip1"'));
    assert.ok(out.includes('url(#f7-clip1)'));
    assert.ok(out.includes('href="#f7-clip1"'));
    assert.ok(!/id="clip1"|#clip1[")]/.test(out));
  });

  it('shows an SVG holding a script or an event handler as an image, where it cannot run', () => {
    for (const svg of ['<svg><script>alert(1)</script></svg>', '<svg><rect onload="alert(1)"/></svg>', '<svg><image href="https://example.com/x.png"/></svg>', 'not an svg']) {
      const out = inlineSvg(svg, 'f');
      assert.match(out, /^<img alt="figure" src="data:image\/svg\+xml;base64,[A-Za-z0-9+/=]+">$/, svg);
    }
  });
});

describe('escapeHtml', () => {
  it('escapes the five characters that matter in content and attributes', () => {
    assert.equal(escapeHtml(`<a href="x" title='y'>&</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
    assert.equal(escapeHtml(3), '3');
  });
});

describe('finalOf', () => {
  const history = [0, 1, 2, 3].map((epoch) => ({ epoch, step: epoch, trainLoss: 1 / (epoch + 1), trainAccuracy: 0.2 * epoch, valLoss: 2 / (epoch + 1), valAccuracy: 0.2 * epoch + 0.01, seconds: 1, learningRate: 0.1 }));
  const train = (extra: Partial<TrainResult>) => ({ history, ...extra }) as TrainResult;

  it('takes the last epoch, or the best one under early stopping, never epoch 0', () => {
    const last = history[3];
    assert.deepEqual(finalOf(train({})), { epoch: 3, epochs: 3, best: false, trainLoss: last.trainLoss, valLoss: last.valLoss, trainAccuracy: last.trainAccuracy, valAccuracy: last.valAccuracy });
    assert.equal(finalOf(train({ bestEpoch: 1 }))?.valLoss, history[1].valLoss);
    assert.equal(finalOf(train({ bestEpoch: 1 }))?.epoch, 1);
    assert.equal(finalOf(train({ bestEpoch: 1 }))?.best, true);
    assert.equal(finalOf(train({ bestEpoch: 3 }))?.best, false, 'the best epoch being the last is not called out');
    assert.equal(finalOf(train({ history: history.slice(0, 1) })), undefined);
  });
});

describe('plot and report activities on a stored experiment with every analysis', () => {
  let dir: string;
  let store: LocalStore;
  let input: ReportInput;
  let written: ReportResult;
  let page: string;
  const experimentId = 'every-analysis-20261123-000000';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'paramtrail-report-'));
    store = new LocalStore(join(dir, 'store'));
    input = await storeSampleExperiment(store, experimentId);
    written = (await activityEnvironment().run(createReport({ store }), input)) as ReportResult;
    page = new TextDecoder().decode(await store.get(written.key, { sha256: written.sha256 }));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('plot stores each analysis figure of a run as SVG and PNG, after the Differences figure', () => {
    for (const r of input.result.runs.filter((r) => r.result)) {
      const figures = r.result!.plot.figures;
      assert.deepEqual([...new Set(figures.map((f) => f.p))], ['2', ...RUN_ANALYSIS_FIGURES]);
      for (const p of ['2', ...RUN_ANALYSIS_FIGURES]) {
        assert.deepEqual(figures.filter((f) => f.p === p).map((f) => f.format), ['svg', 'png'], `figure ${p}`);
      }
      assert.ok(figures.every((f) => f.key.startsWith(`runs/${r.runId}/figures/`) && f.path === store.locate(f.key)));
    }
  });

  it('plot records the tables each figure was drawn from', async () => {
    const res = input.result.runs[0].result!;
    const byP = (p: string) => res.plot.figures.find((f) => f.p === p && f.format === 'png')!;
    const lineage = async (p: string) => (await readManifest(store, byP(p).sha256))!.inputs.map((i) => i.key);
    assert.deepEqual(await lineage('2'), [res.distance.table.key]);
    assert.deepEqual(await lineage('correlation'), [res.analyses!.correlation!.table.key]);
    assert.deepEqual(await lineage('perturbation-norms'), res.analyses!.perturb!.map((o) => o.norms.table.key));
  });

  it('report stores every experiment-level figure as SVG and PNG beside the page', async () => {
    for (const name of EXPERIMENT_FIGURES) {
      for (const ext of ['svg', 'png']) {
        const key = experimentFigureKey(experimentId, `${name}.${ext}`);
        assert.ok(await store.head(key), `${key} is stored`);
      }
    }
    const cka = await readManifest(store, (await store.head(experimentFigureKey(experimentId, `${EXPERIMENT_FIGURES[2]}.svg`)))!.sha256);
    assert.deepEqual(cka?.inputs.map((i) => i.key), [input.result.compare![0].table.key]);
  });

  it('inlines every run figure and every experiment-level figure, with titles and the failed analysis', () => {
    const runFigures = input.result.runs.reduce((n, r) => n + (r.result?.plot.figures.filter((f) => f.format === 'svg').length ?? 0), 0);
    assert.equal(page.match(/<svg[\s>]/g)?.length, EXPERIMENT_FIGURES.length + runFigures);
    for (const p of ['2', ...RUN_ANALYSIS_FIGURES]) assert.ok(page.includes(escapeHtml(figureTitle(p))), `caption ${figureTitle(p)}`);
    assert.ok(page.includes(escapeHtml(ANALYSIS_ERROR.message)));
    assert.ok(!page.includes('<script'), 'the hostile run name stays text');
    assert.ok(page.includes('2 <span class="muted">(best of 3)</span>'), 'the early-stopped run reports its best epoch');
    // The runs table counts epochs trained (3), not evaluations (epoch 0 is the initial weights').
    const runsTable = page.slice(page.indexOf('<table class="runs">'), page.indexOf('</table>', page.indexOf('<table class="runs">')));
    const epochs = [...runsTable.matchAll(/<\/td>\n<td class="num">([^<]*)<\/td>\n<td class="num">/g)].map((m) => m[1]);
    assert.deepEqual(epochs, input.result.runs.map((r) => (r.result ? '3' : '–')));
    assert.ok(page.includes('perturbed weights') && page.includes('norms table'), 'perturbation artifacts are listed');
  });

  it('draws training accuracy when no run holds out a validation split', async () => {
    // As a run with validationSplit 0 records it: NaN, which JSON carries as null.
    const noSplit = structuredClone(input);
    for (const r of noSplit.result.runs) for (const h of r.result?.train.history ?? []) h.valAccuracy = null as unknown as number;
    const id = `${experimentId}-no-split`;
    const report = (await activityEnvironment().run(createReport({ store }), { ...noSplit, experimentId: id })) as ReportResult;
    const html = new TextDecoder().decode(await store.get(report.key, { sha256: report.sha256 }));
    assert.ok(html.includes('<h2>Training accuracy of all runs</h2>') && !html.includes('No run has a training history'));
    const svg = new TextDecoder().decode(await store.get(experimentFigureKey(id, 'accuracy.svg')));
    assert.ok(svg.includes('training accuracy') && !svg.includes('validation accuracy'), 'the figure draws training accuracy');
    assert.ok(page.includes('<h2>Validation accuracy of all runs</h2>'), 'with a split, validation accuracy');
    assert.ok(page.includes('<figcaption>Validation accuracy per epoch, every run <code>'), 'every run drawn');
    // One run with no split among runs with one: drawn are the others, and the caption says so.
    const mixed = structuredClone(input);
    for (const h of mixed.result.runs[0]!.result!.train.history) h.valAccuracy = null as unknown as number;
    const mixedReport = (await activityEnvironment().run(createReport({ store }), { ...mixed, experimentId: `${experimentId}-mixed` })) as ReportResult;
    const mixedPage = new TextDecoder().decode(await store.get(mixedReport.key, { sha256: mixedReport.sha256 }));
    assert.ok(mixedPage.includes('Validation accuracy per epoch, every run but the 1 with no validation split'), 'the caption names the runs left out');
  });

  it('past its detailed runs, names a run\'s figures by their paths and lists its final weights and distance table', async () => {
    const brief = (await activityEnvironment().run(createReport({ store }), { ...input, experimentId: `${experimentId}-brief`, detailedRuns: 1 })) as ReportResult;
    const short = new TextDecoder().decode(await store.get(brief.key, { sha256: brief.sha256 }));
    const completed = input.result.runs.filter((r) => r.result);
    const [first, second] = completed.map((r) => r.result!.plot.figures.filter((f) => f.format === 'svg'));
    assert.equal(short.match(/<svg[\s>]/g)?.length, EXPERIMENT_FIGURES.length + first!.length, 'only the first run\'s figures are drawn');
    for (const f of second!) assert.ok(short.includes(`<figcaption>${escapeHtml(figureTitle(f.p))}: <code>${escapeHtml(f.path)}</code></figcaption>`), `${f.key} named`);
    const count = (text: string, needle: string) => text.split(needle).length - 1;
    assert.equal(count(page, 'snapshot epoch 0'), completed.length);
    assert.equal(count(short, 'snapshot epoch 0'), 1, 'the other runs list no snapshots');
    assert.equal(count(short, 'distance table'), count(page, 'distance table'), 'every run lists its distance table');
  });
});
