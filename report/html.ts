/**
 * The static HTML report of an experiment: one self-contained page (no server, no external URLs, every
 * figure inlined as SVG) with the runs table, the final losses and accuracies of every run (S3's table),
 * their mean and spread across seeds per grid cell, the experiment-level figures (validation accuracy of
 * all runs, the gathered depth profile, CKA heatmaps with a table of the compared pairs, perturbation
 * norms and smoothness across runs), the analyses that failed, and per run its figures (Differences and
 * every analysis), config, and the keys and sha256 of everything it stored.
 *
 * Called by the `report` activity, which gathers the figures from the store; this module only turns
 * plain data into a string, so it is tested without a store. Everything that comes from an experiment
 * file (run names, labels, config values) or from the store is escaped or checked before it is written.
 */
import { seedCells, spread, type Spread } from './seeds.js';

export interface HtmlArtifact {
  /** What the object is, e.g. `snapshot epoch 2` or `distance table`. */
  label: string;
  key: string;
  sha256: string;
  bytes: number;
}

export interface HtmlFigure {
  title: string;
  /** An SVG document as the renderer wrote it; absent, the figure is named with its path, not drawn. */
  svg?: string;
  /** Where the stored figure is, shown under it. */
  path?: string;
}

export interface HtmlAttempt {
  attempt: number;
  startedFromEpoch: number;
  resumed: boolean;
}

/** A run's final metrics: the last epoch trained, or the best epoch under early stopping. */
export interface HtmlFinal {
  epoch: number;
  /** Epochs trained in all; more than `epoch` when early stopping restored an earlier best epoch. */
  epochs: number;
  /** True when `epoch` is early stopping's best epoch rather than the last one. */
  best: boolean;
  trainLoss: number;
  valLoss: number;
  trainAccuracy: number;
  valAccuracy: number;
}

export interface HtmlRun {
  name: string;
  /** The run's stage: `completed`, `failed`, ... */
  status: string;
  error?: string;
  /** How training ended: completed, stopped-early or diverged. */
  trainingStatus?: string;
  backend?: string;
  /** Epochs trained (the length of the history). */
  epochs?: number;
  valAccuracy?: number;
  testAccuracy?: number;
  testLoss?: number;
  /** The row of the final-metrics table; absent for a run without a history. */
  final?: HtmlFinal;
  attempts: HtmlAttempt[];
  /** The run's model, dataset and training, shown as JSON. */
  config?: Record<string, unknown>;
  artifacts: HtmlArtifact[];
  figures: HtmlFigure[];
}

export interface HtmlReportInput {
  title: string;
  experimentId: string;
  store: string;
  status?: string;
  /** paramtrail's version, from package.json. */
  version: string;
  /** The validation accuracy of all runs in one figure; absent when no run has a history. */
  accuracy?: HtmlFigure;
  /** Set when `accuracy` draws training accuracy, because no run holds out a validation split. */
  accuracyOfTraining?: boolean;
  /** S0's gathered per-layer differences across runs (the aggregate analysis). */
  gathered?: HtmlFigure;
  /** Pairs of runs compared by CKA and feature correlation, with a heatmap each. */
  comparisons?: {
    pairs: HtmlPair[];
    /** A heatmap per pair (the first ones, for an experiment of many pairs; `note` says so). */
    figures: HtmlFigure[];
    /** Every pair at once, run by run (two pairs or more). */
    matrix?: HtmlFigure;
    note?: string;
  };
  /** Perturb-and-retrain norms of every run that was perturbed. */
  perturbation?: HtmlFigure;
  /** Layer smoothness of every run that measured it. */
  smoothness?: HtmlFigure;
  /** The last layer's smoothness per run (S2's alpha against label noise). */
  smoothnessLastLayer?: HtmlFigure;
  /** Experiment-level analyses that failed; the runs' results stand regardless. */
  analysisErrors?: Array<{ analysis: string; message: string }>;
  runs: HtmlRun[];
}

/** One compared pair of runs. */
export interface HtmlPair {
  a: string;
  b: string;
  /** Mean linear CKA between layers of the same name and depth; NaN when none is defined. */
  meanDiagonalCka: number;
  /** Layers on the diagonal. */
  layers: number;
  /** Mean |r| of the cross-correlation of the two penultimate feature sets. */
  penultimateMeanAbs: number;
  /** Mean r_ii of it: feature i of A with feature i of B (same order); NaN or absent when the widths differ. */
  penultimateMatched?: number;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** An id safe in an HTML attribute and a URL fragment, derived from free text. */
function slug(text: string, i: number): string {
  return `run-${i}-${text.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60)}`;
}

// Markup that could run code or load something from elsewhere once an SVG is part of the page.
const ACTIVE_SVG = /<script|<foreignObject|<iframe|\son[a-z]+\s*=|(?:href|src)\s*=\s*["']?\s*(?:javascript:|https?:|\/\/)/i;

/**
 * An SVG ready to sit inside the page. Vega's SVGs name their clip paths `clip1`, `clip2`, ... in
 * every figure, and ids are global to a page: without a per-figure prefix the second figure would
 * clip with the first one's rectangles. An SVG holding anything active is shown as an image instead,
 * where browsers never run it.
 */
export function inlineSvg(svg: string, prefix: string): string {
  const body = svg.replace(/^\s*<\?xml[^>]*\?>\s*/, '').replace(/<!DOCTYPE[^>]*>\s*/i, '');
  if (!/^<svg[\s>]/.test(body) || ACTIVE_SVG.test(body)) {
    const b64 = Buffer.from(svg, 'utf8').toString('base64');
    return `<img alt="figure" src="data:image/svg+xml;base64,${b64}">`;
  }
  return body
    .replace(/\sid="([^"]+)"/g, (_m, id: string) => ` id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_m, id: string) => `url(#${prefix}-${id})`)
    .replace(/(\s(?:xlink:)?href=")#([^"]+)"/g, (_m, attr: string, id: string) => `${attr}#${prefix}-${id}"`);
}

const pct = (x: number | undefined) => (typeof x !== 'number' || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(2)}%`);
/** Losses and other unbounded numbers: four decimals, or a dash for a missing or non-finite value (JSON turns NaN into null). */
const num = (x: number | undefined, digits = 4) => (typeof x !== 'number' || !Number.isFinite(x) ? '–' : x.toFixed(digits));

function attemptsCell(attempts: HtmlAttempt[]): string {
  if (attempts.length === 0) return '–';
  const resumed = attempts.filter((a) => a.resumed).map((a) => `#${a.attempt} from epoch ${a.startedFromEpoch}`);
  return escapeHtml(String(attempts.length)) + (resumed.length ? ` <span class="muted">(resumed: ${escapeHtml(resumed.join(', '))})</span>` : '');
}

function statusBadge(status: string): string {
  const kind = status === 'completed' ? 'ok' : status === 'failed' || status === 'diverged' ? 'bad' : 'warn';
  return `<span class="badge ${kind}">${escapeHtml(status)}</span>`;
}

function figureBlock(fig: HtmlFigure, prefix: string): string {
  if (fig.svg === undefined) return `<figure><figcaption>${escapeHtml(fig.title)}: <code>${escapeHtml(fig.path ?? '')}</code></figcaption></figure>`;
  return `<figure>
<div class="svg">${inlineSvg(fig.svg, prefix)}</div>
<figcaption>${escapeHtml(fig.title)}${fig.path ? ` <code>${escapeHtml(fig.path)}</code>` : ''}</figcaption>
</figure>`;
}

function runsTable(runs: HtmlRun[]): string {
  const rows = runs.map(
    (r, i) => `<tr>
<td><a href="#${slug(r.name, i)}">${escapeHtml(r.name)}</a></td>
<td>${statusBadge(r.status)}</td>
<td>${r.trainingStatus ? statusBadge(r.trainingStatus) : '–'}</td>
<td>${escapeHtml(r.backend ?? '–')}</td>
<td class="num">${escapeHtml(r.epochs ?? '–')}</td>
<td class="num">${pct(r.valAccuracy)}</td>
<td class="num">${pct(r.testAccuracy)}</td>
<td>${attemptsCell(r.attempts)}</td>
</tr>`,
  );
  return `<table class="runs">
<thead><tr><th>run</th><th>status</th><th>training</th><th>backend</th><th>epochs</th><th>final val acc</th><th>test acc</th><th>attempts</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>`;
}

function finalsTable(runs: HtmlRun[]): string {
  const rows = runs
    .map((r, i) => ({ r, i }))
    .filter(({ r }) => r.final)
    .map(({ r, i }) => {
      const f = r.final!;
      const epoch = f.best ? `${escapeHtml(f.epoch)} <span class="muted">(best of ${escapeHtml(f.epochs)})</span>` : escapeHtml(f.epoch);
      return `<tr>
<td><a href="#${slug(r.name, i)}">${escapeHtml(r.name)}</a></td>
<td class="num">${epoch}</td>
<td class="num">${num(f.trainLoss)}</td>
<td class="num">${num(f.valLoss)}</td>
<td class="num">${pct(f.trainAccuracy)}</td>
<td class="num">${pct(f.valAccuracy)}</td>
<td class="num">${num(r.testLoss)}</td>
<td class="num">${pct(r.testAccuracy)}</td>
</tr>`;
    });
  if (rows.length === 0) return '<p class="muted">No run has a training history yet.</p>';
  return `<table class="finals">
<thead><tr><th>run</th><th>epoch</th><th>train loss</th><th>validation loss</th><th>train acc</th><th>validation acc</th><th>test loss</th><th>test acc</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>`;
}

/** `mean ± sd` of accuracies, in percent and percentage points. */
function pctSpread({ mean, sd }: Spread): string {
  if (mean === undefined) return '–';
  return sd === undefined ? pct(mean) : `${pct(mean)} ± ${(100 * sd).toFixed(2)}`;
}

/**
 * Runs that differ only by seed, summarised per grid cell: how many completed, and the mean, sample
 * standard deviation and range of their final validation and test accuracies. Undefined when no cell
 * has two runs.
 */
function seedsTable(runs: HtmlRun[]): string | undefined {
  const cells = seedCells(runs);
  if (!cells) return undefined;
  const rows = [...cells].map(([cell, rs]) => {
    const done = rs.filter((r) => r.status === 'completed');
    const val = spread(done.map((r) => r.valAccuracy));
    const test = spread(done.map((r) => r.testAccuracy));
    const range = test.n ? `${pct(test.min)} – ${pct(test.max)}` : '–';
    return `<tr>
<td>${escapeHtml(cell)}</td>
<td class="num">${done.length} / ${rs.length}</td>
<td class="num">${pctSpread(val)}</td>
<td class="num">${pctSpread(test)}</td>
<td class="num">${range}</td>
</tr>`;
  });
  return `<table class="seeds">
<thead><tr><th>cell</th><th>runs completed</th><th>final val acc</th><th>test acc</th><th>test acc range</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
<p class="muted">Mean ± sample standard deviation (percentage points) over each cell's completed runs.</p>`;
}

function pairsTable(pairs: HtmlPair[]): string {
  return `<table class="pairs">
<thead><tr><th>run A</th><th>run B</th><th>mean CKA, same layers</th><th>layers</th><th>penultimate mean |r|</th><th>penultimate matched r (feature i with i)</th></tr></thead>
<tbody>
${pairs
  .map((p) => `<tr><td>${escapeHtml(p.a)}</td><td>${escapeHtml(p.b)}</td><td class="num">${num(p.meanDiagonalCka, 3)}</td><td class="num">${escapeHtml(p.layers)}</td><td class="num">${num(p.penultimateMeanAbs, 3)}</td><td class="num">${num(p.penultimateMatched ?? Number.NaN, 3)}</td></tr>`)
  .join('\n')}
</tbody>
</table>`;
}

function errorsList(errors: Array<{ analysis: string; message: string }>): string {
  return `<ul class="errors">
${errors.map((e) => `<li class="error"><strong>${escapeHtml(e.analysis)}</strong>: ${escapeHtml(e.message)}</li>`).join('\n')}
</ul>`;
}

/** The experiment-level figures after the accuracy one, each under its heading; nothing for an analysis not run. */
function acrossRuns(input: HtmlReportInput): string {
  const parts: string[] = [];
  if (input.gathered) parts.push(`<h2>Gathered differences across runs</h2>\n${figureBlock(input.gathered, 'gathered')}`);
  if (input.comparisons && (input.comparisons.pairs.length || input.comparisons.figures.length)) {
    parts.push(`<h2>Comparisons between runs</h2>
${input.comparisons.matrix ? figureBlock(input.comparisons.matrix, 'pairs') : ''}
${input.comparisons.pairs.length ? pairsTable(input.comparisons.pairs) : ''}
${input.comparisons.note ? `<p class="muted">${escapeHtml(input.comparisons.note)}</p>` : ''}
${input.comparisons.figures.map((f, j) => figureBlock(f, `cka-${j}`)).join('\n')}`);
  }
  if (input.perturbation) parts.push(`<h2>Perturb and retrain</h2>\n${figureBlock(input.perturbation, 'perturbation')}`);
  if (input.smoothness) {
    const last = input.smoothnessLastLayer ? `\n${figureBlock(input.smoothnessLastLayer, 'smoothness-last')}` : '';
    parts.push(`<h2>Layer smoothness</h2>\n${figureBlock(input.smoothness, 'smoothness')}${last}`);
  }
  return parts.join('\n');
}

function runSection(r: HtmlRun, i: number): string {
  const id = slug(r.name, i);
  const figures = r.figures.length ? `<div class="figures">\n${r.figures.map((f, j) => figureBlock(f, `${id}-f${j}`)).join('\n')}\n</div>` : '';
  const artifacts = r.artifacts.length
    ? `<table class="artifacts">
<thead><tr><th>artifact</th><th>key</th><th>sha256</th><th>bytes</th></tr></thead>
<tbody>
${r.artifacts
  .map((a) => `<tr><td>${escapeHtml(a.label)}</td><td><code>${escapeHtml(a.key)}</code></td><td><code class="sha">${escapeHtml(a.sha256)}</code></td><td class="num">${escapeHtml(a.bytes)}</td></tr>`)
  .join('\n')}
</tbody>
</table>`
    : '<p class="muted">No stored artifacts.</p>';
  return `<section class="run" id="${id}">
<h3>${escapeHtml(r.name)} ${statusBadge(r.status)}</h3>
${r.error ? `<p class="error">${escapeHtml(r.error)}</p>` : ''}
${figures || '<p class="muted">No figures for this run.</p>'}
${r.config ? `<details><summary>config</summary><pre>${escapeHtml(JSON.stringify(r.config, null, 2))}</pre></details>` : ''}
<details><summary>artifacts (${r.artifacts.length})</summary>
${artifacts}
</details>
</section>`;
}

const CSS = `
:root { color-scheme: light; --fg: #1d2330; --muted: #6b7280; --line: #e3e6eb; --bg: #ffffff; --panel: #f7f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 28px 24px 64px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 0 0 10px; word-break: break-all; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0 0; color: var(--muted); }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; word-break: break-all; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 0.82rem/1.4 ui-monospace, "DejaVu Sans Mono", monospace; word-break: break-all; }
code.sha { color: var(--muted); }
.badge { display: inline-block; white-space: nowrap; padding: 0 8px; border-radius: 10px; font-size: 0.78rem; font-weight: 600; vertical-align: middle; }
.badge.ok { background: #e3f4e8; color: #1b6b34; } .badge.bad { background: #fde8e8; color: #9b1c1c; } .badge.warn { background: #fdf3d8; color: #8a5a00; }
.muted { color: var(--muted); }
.error { color: #9b1c1c; background: #fde8e8; padding: 6px 10px; border-radius: 4px; }
ul.errors { list-style: none; padding: 0; margin: 12px 0; } ul.errors li { margin: 4px 0; word-break: break-word; }
section.run { margin: 18px 0; padding: 16px 18px; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); }
figure { margin: 0 0 12px; }
/* A run's figures side by side where they fit, so its analyses read as one panel. */
.figures { display: flex; flex-wrap: wrap; gap: 8px 28px; align-items: flex-start; }
.figures figure { max-width: 100%; }
/* The figure sets the width; a long path in the caption wraps instead of widening it. */
.figures figcaption { width: 0; min-width: 100%; }
figure .svg { overflow-x: auto; }
figure svg, figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.82rem; color: var(--muted); }
details { margin: 8px 0; } summary { cursor: pointer; font-weight: 600; }
pre { background: var(--panel); padding: 10px 12px; border-radius: 4px; overflow-x: auto; font: 0.82rem/1.45 ui-monospace, "DejaVu Sans Mono", monospace; }
`;

/** The whole report page. Deterministic: the same input gives the same bytes, so a retried write finds its own object. */
export function reportToHtml(input: HtmlReportInput): string {
  const accuracy = input.accuracy
    ? figureBlock(input.accuracy, 'accuracy')
    : '<p class="muted">No run has a training history yet.</p>';
  const seeds = seedsTable(input.runs);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(input.title)} · paramtrail report</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header>
<h1>${escapeHtml(input.title)}</h1>
<dl class="meta">
<dt>experiment</dt><dd><code>${escapeHtml(input.experimentId)}</code></dd>
${input.status ? `<dt>status</dt><dd>${statusBadge(input.status)}</dd>` : ''}
<dt>store</dt><dd><code>${escapeHtml(input.store)}</code></dd>
<dt>paramtrail</dt><dd>${escapeHtml(input.version)}</dd>
<dt>runs</dt><dd>${input.runs.length}</dd>
</dl>
</header>
${input.analysisErrors?.length ? `<h2>Analyses that failed</h2>\n${errorsList(input.analysisErrors)}` : ''}
<h2>Runs</h2>
${runsTable(input.runs)}
<h2>Final losses and accuracies</h2>
${finalsTable(input.runs)}
${seeds ? `<h2>Across seeds</h2>\n${seeds}\n` : ''}<h2>${input.accuracyOfTraining ? 'Training' : 'Validation'} accuracy of all runs</h2>
${accuracy}
${acrossRuns(input)}
<h2>Per run</h2>
${input.runs.map(runSection).join('\n')}
</main>
</body>
</html>
`;
}
