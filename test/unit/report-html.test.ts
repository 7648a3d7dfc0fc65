/**
 * The HTML report page: its structure, that nothing from a run's name or config escapes into markup,
 * that figures are inlined (and an SVG holding anything active is not), and that it is self-contained.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { escapeHtml, inlineSvg, reportToHtml } from '../../report/html.js';
import { HOSTILE_CONFIG, HOSTILE_NAME, sampleReportInput } from '../support/report-fixture.js';

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

  it('inlines every figure as SVG', () => {
    const svgs = html.match(/<svg[\s>]/g) ?? [];
    assert.equal(svgs.length, 1 + input.runs.reduce((n, r) => n + r.figures.length, 0));
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
    const empty = reportToHtml({ ...input, accuracy: undefined, runs: [] });
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
