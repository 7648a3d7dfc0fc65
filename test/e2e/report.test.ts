/**
 * The experiment report in a real browser: the `report` activity (in the SDK's activity test
 * environment, on a real local store holding Vega-rendered Differences figures) writes the page, and
 * headless Debian Chromium opens the stored file. Every figure must render with a non-zero size, the
 * page must log no errors, and a full-page screenshot is saved for a person to look at.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { LocalStore } from '../../artifacts/local.js';
import { createReport, type ReportInput, type ReportResult, type ReportRunSource } from '../../activities/report.js';
import { figureKey, runIdOf } from '../../activities/keys.js';
import type { FigureRef, TrainResult } from '../../activities/types.js';
import { escapeHtml } from '../../report/html.js';
import { findChromium, openInChromium } from '../support/browser.js';
import { HOSTILE_NAME, sampleReportInput } from '../support/report-fixture.js';

const chromium = findChromium();

describe('the HTML report in headless Chromium', { skip: chromium ? false : 'Debian chromium is not installed (apt-get install -y chromium)' }, () => {
  let dir: string;
  let store: LocalStore;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'paramtrail-report-e2e-'));
    store = new LocalStore(join(dir, 'store'));
  });
  after(async () => {
    await rm(join(dir, 'store'), { recursive: true, force: true });
  });

  /** Stores each sample run's figure as the plot activity would, and describes the runs as the workflow does. */
  async function experiment(experimentId: string): Promise<ReportInput> {
    const sample = await sampleReportInput();
    const runs: ReportRunSource[] = [];
    for (const [i, r] of sample.runs.entries()) {
      const runId = runIdOf(experimentId, `run-${i}`);
      const svg = await store.put(figureKey(runId, 'distance-p2.svg'), new TextEncoder().encode(r.figures[0].svg), { contentType: 'image/svg+xml' });
      const figure: FigureRef = { ...svg, format: 'svg', p: '2', path: store.locate(svg.key) };
      const snapshot = await store.put(`tensors/${runId}/epoch-0.arrow`, new TextEncoder().encode(`weights of ${r.name}`));
      const table = await store.put(`tables/${runId}.arrow`, new TextEncoder().encode(`distances of ${r.name}`));
      const train = {
        runId,
        backend: 'cpu',
        status: i === 0 ? 'completed' : 'stopped-early',
        snapshots: [{ ...snapshot, epoch: 0, step: 0 }],
        final: { ...snapshot, epoch: 0, step: 0 },
        data: {},
        history: [1, 2, 3].map((epoch) => ({ epoch, trainLoss: 1 / epoch, trainAccuracy: 0.5 + 0.1 * epoch, valLoss: 1 / epoch, valAccuracy: 0.45 + 0.1 * epoch - 0.05 * i })),
        test: { loss: 0.4, accuracy: 0.7 },
        attempts: [{ attempt: 1, startedFromEpoch: 0, resumed: false, startedAt: '2026-11-23T00:00:00Z', worker: 'w', backend: 'cpu' }],
      } as unknown as TrainResult;
      runs.push({ name: r.name, runId, stage: 'completed', result: { train, distance: { table, rows: 24 }, plot: { figures: [figure] } } });
    }
    runs.push({ name: 'broken--fashion-mnist--s1', runId: runIdOf(experimentId, 'broken'), stage: 'failed', error: { type: 'DatasetChecksumMismatch', message: 'expected sha256 aa.., found bb..' } });
    return { experimentId, result: { name: 'browser-check', store: store.location, status: 'completed-with-failures', runs } };
  }

  it('renders every figure, logs no errors, and is captured in a screenshot', async () => {
    const input = await experiment('browser-check-20261123-000000');
    const written = (await new MockActivityEnvironment().run(createReport({ store }), input)) as ReportResult;
    assert.equal(written.key, 'experiments/browser-check-20261123-000000/report.html');
    assert.equal(written.path, store.locate(written.key));
    const html = new TextDecoder().decode(await store.get(written.key, { sha256: written.sha256 }));
    assert.ok(html.includes(escapeHtml(HOSTILE_NAME)));

    const screenshot = join(dir, 'report.png');
    const page = await openInChromium(chromium!, pathToFileURL(written.path).href, screenshot);
    assert.deepEqual(page.errors, [], `the page logged errors (driver ${page.driver})`);
    assert.equal(page.title, 'browser-check · paramtrail report');
    // The accuracy figure and each completed run's Differences figure.
    assert.equal(page.svgs.length, 3, JSON.stringify(page.svgs));
    for (const [i, box] of page.svgs.entries()) {
      assert.ok(box.width > 100 && box.height > 100, `svg ${i} rendered at ${box.width} x ${box.height}`);
    }
    const png = await stat(screenshot);
    assert.ok(png.size > 10_000, `screenshot ${screenshot} holds ${png.size} bytes`);
    // Kept for a person to look at: the temp dir's store is removed, the screenshot is not.
    console.log(`screenshot (${page.driver}): ${screenshot}`);
  });
});
