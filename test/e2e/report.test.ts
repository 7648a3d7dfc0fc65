/**
 * The experiment report in a real browser: a real local store holds an experiment with every analysis
 * (tables encoded as the analysis activities encode them, each run's figures drawn by the `plot`
 * activity), the `report` activity (in the SDK's activity test environment) writes the page, and
 * headless Debian Chromium opens the stored file. Every figure, per run and across runs, must render
 * with a non-zero size, the page must log no errors, and a full-page screenshot is saved for a person
 * to look at.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { LocalStore } from '../../artifacts/local.js';
import { createReport, type ReportResult } from '../../activities/report.js';
import { escapeHtml } from '../../report/html.js';
import { findChromium, openInChromium } from '../support/browser.js';
import { ALL_GROUP } from '../../activities/aggregate.js';
import { EXPERIMENT_FIGURES, HOSTILE_NAME, RUN_ANALYSIS_FIGURES, storeSampleExperiment } from '../support/report-fixture.js';
import { activityEnvironment } from '../support/logs.js';

const chromium = findChromium();
/** Under CI (as nativeTestGuard does) a missing browser is a failure, not a skip. */
const required = process.env.CI === 'true' || process.env.PARAMTRAIL_REQUIRE_BROWSER === '1';

describe('the HTML report in headless Chromium', { skip: chromium || required ? false : 'Debian chromium is not installed (apt-get install -y chromium)' }, () => {
  let dir: string;
  let store: LocalStore;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'paramtrail-report-e2e-'));
    store = new LocalStore(join(dir, 'store'));
  });
  after(async () => {
    await rm(join(dir, 'store'), { recursive: true, force: true });
  });

  it('renders every figure, logs no errors, and is captured in a screenshot', async () => {
    if (!chromium) assert.fail('Debian chromium is required here (CI or PARAMTRAIL_REQUIRE_BROWSER=1) but is not installed: infra/setup.mjs installs it when run as root');
    const input = await storeSampleExperiment(store, 'browser-check-20261123-000000');
    const written = (await activityEnvironment().run(createReport({ store }), input)) as ReportResult;
    assert.equal(written.key, 'experiments/browser-check-20261123-000000/report.html');
    assert.equal(written.path, store.locate(written.key));
    const html = new TextDecoder().decode(await store.get(written.key, { sha256: written.sha256 }));
    assert.ok(html.includes(escapeHtml(HOSTILE_NAME)));
    // The depth profile says how many runs each group averages, and names the group of all runs so.
    assert.ok(html.includes('averaged over the runs of each group (plain: 2, residual: 2, all runs: 4)'), 'the depth profile caption');
    assert.ok(!html.includes(ALL_GROUP), `no group is named ${ALL_GROUP}`);

    const screenshot = join(dir, 'report.png');
    const page = await openInChromium(chromium!, pathToFileURL(written.path).href, screenshot);
    assert.deepEqual(page.errors, [], `the page logged errors (driver ${page.driver})`);
    assert.equal(page.title, 'browser-check · paramtrail report');
    // The experiment-level figures, then each completed run's Differences figure and its analysis figures.
    const completed = input.result.runs.filter((r) => r.result).length;
    assert.equal(page.svgs.length, EXPERIMENT_FIGURES.length + completed * (1 + RUN_ANALYSIS_FIGURES.length), JSON.stringify(page.svgs));
    for (const [i, box] of page.svgs.entries()) {
      assert.ok(box.width > 100 && box.height > 100, `svg ${i} rendered at ${box.width} x ${box.height}`);
    }
    const png = await stat(screenshot);
    assert.ok(png.size > 10_000, `screenshot ${screenshot} holds ${png.size} bytes`);
    // Kept for a person to look at: the temp dir's store is removed, the screenshot is not.
    console.log(`screenshot (${page.driver}): ${screenshot}`);
  });
});
