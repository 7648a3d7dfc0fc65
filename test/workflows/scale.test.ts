/**
 * A grid of many runs on a real Temporal dev server (in-process workers, a local store, real
 * Fashion-MNIST, native TensorFlow when built): it completes across several executions, and what the experiment
 * carries through `continueAsNew`, hands its report and returns stays small: a run's summary is about
 * half a kilobyte and Temporal caps a payload at about 2 MB, so the summaries go to the store.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import proto from '@temporalio/proto';
import { loadRuns } from '../../activities/results.js';
import { LocalStore } from '../../artifacts/local.js';
import { requireFashionMnist, tempDir, tinyExperiment } from '../support/fixtures.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const RUNS = 450;

/** Bytes of a history event's payloads. */
const payloadBytes = (payloads: { payloads?: Array<{ data?: Uint8Array | null }> | null } | null | undefined) =>
  (payloads?.payloads ?? []).reduce((n, p) => n + (p.data?.length ?? 0), 0);

describe('a grid of many runs', () => {
  let stack: TestStack;
  let store: LocalStore;

  before(async () => {
    requireFashionMnist();
    store = new LocalStore(await tempDir());
    stack = await startTestStack({ name: 'scale', deps: { store, backend: 'auto' } });
  });

  after(() => stack?.stop());

  test(`${RUNS} runs complete, and nothing the experiment carries, hands its report or returns grows with them`, { timeout: 600_000 }, async () => {
    const config = tinyExperiment({
      name: 'scale',
      models: [{ name: 'mlp', args: { hidden: [4] } }],
      datasets: [{ name: 'fashion-mnist', subset: { train: 64, test: 16 }, validationSplit: 0.25, sources: tinyExperiment().datasets[0]!.sources }],
      seeds: Array.from({ length: RUNS }, (_, i) => i),
      training: { epochs: 1, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.05 } },
      analyses: { runFigures: false, aggregate: true },
      execution: { concurrency: 4, heartbeatTimeout: '30s', maxAttempts: 2, local: true, runsPerWorkflow: 50, continueAsNewAfter: 150 },
    });
    const handle = await stack.start(config);
    const experimentId = handle.workflowId;
    const result = await handle.result();
    assert.equal(result.status, 'completed');

    // Every run's summary is in the store, a chunk per execution.
    assert.deepEqual(result.runs, []);
    assert.deepEqual(
      result.chunks?.map(({ first, count, completed }) => [first, count, completed]),
      [0, 150, 300].map((first) => [first, 150, 150]),
    );
    const runs = await loadRuns(store, result);
    assert.equal(new Set(runs.map((r) => r.name)).size, RUNS);
    assert.ok(runs.every((r) => r.stage === 'completed' && r.resultRef && r.brief), JSON.stringify(runs.find((r) => !r.resultRef)));

    // Each execution's input (what the one before carried), the report's input and the result stay a
    // few kilobytes: the config and the chunks' references, whatever the number of runs.
    const sizes: Record<string, number[]> = { input: [], report: [], aggregate: [], result: [] };
    let resultsReadBack = 0;
    // Results moved to the store by the experiment, and each execution's history in bytes.
    let resultsMoved = 0;
    const historyBytes: number[] = [];
    let runId: string | undefined = handle.firstExecutionRunId;
    while (runId) {
      const { events } = await stack.temporal.client.workflow.getHandle(experimentId, runId).fetchHistory();
      runId = undefined;
      historyBytes.push(proto.temporal.api.history.v1.History.encode({ events }).finish().length);
      for (const e of events ?? []) {
        if (e.workflowExecutionStartedEventAttributes) sizes.input!.push(payloadBytes(e.workflowExecutionStartedEventAttributes.input));
        const scheduled = e.activityTaskScheduledEventAttributes;
        const activity = scheduled?.activityType?.name;
        if (activity === 'report' || activity === 'aggregate') sizes[activity]!.push(payloadBytes(scheduled!.input));
        if (activity === 'getRunResult') resultsReadBack++;
        if (activity === 'putRunResult' || activity === 'putRunResults') resultsMoved++;
        if (e.workflowExecutionCompletedEventAttributes) sizes.result!.push(payloadBytes(e.workflowExecutionCompletedEventAttributes.result));
        runId = e.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? runId;
      }
    }
    assert.equal(sizes.input!.length, 3, 'three executions');
    // The aggregate read the runs' tables from the store itself, not through the workflow.
    assert.equal(resultsReadBack, 0, 'results read back through the workflow');
    // The runs stored their results themselves: none passed through the experiment's history. An
    // execution's history is then mostly its packs' inputs (their runs' specs), about 250 KB here; with
    // the results passing through it (each a few kilobytes, returned and then moved), 1.1-1.2 MB.
    assert.equal(resultsMoved, 0, 'results moved by the experiment');
    assert.ok(historyBytes.every((b) => b < 512 * 1024), `history of each execution: ${historyBytes.join(', ')} bytes`);
    for (const [what, bytes] of Object.entries(sizes)) assert.ok(bytes.length > 0 && bytes.every((b) => b < 16 * 1024), `${what}: ${bytes.join(', ')} bytes`);

    // The gathered depth profile covers every run.
    assert.equal(result.aggregate?.runs, RUNS, JSON.stringify(result.analysisErrors));

    // The report read the runs from the store.
    assert.ok(result.report, JSON.stringify(result.reportError));
    const html = await readFile(result.report.path, 'utf8');
    assert.match(html, new RegExp(`<dt>runs</dt><dd>${RUNS}</dd>`));
    assert.ok(html.includes(runs.at(-1)!.name));
  });
});
