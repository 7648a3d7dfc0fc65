/**
 * Workflow code may change while experiments are running: a worker with the new code then replays the
 * histories the old code wrote. These histories were recorded with scripts/record-histories.ts: at
 * commit 2a99d50a, before runs could share a workflow, an experiment of two local-activity runs that
 * continued as new after each run, and one of its run workflows; at commit bc0aa608, when every run of a
 * pack still set its own status, a pack of two runs; at commit d2757a3, when a local pack's runs first
 * went through trainPack, a pack of two runs again (pack-2); and when an experiment that continues as
 * new first moved its runs' summaries to the store in chunks, the two-run experiment again
 * (experiment-3 and experiment-4); when it first moved its runs' results in batches
 * (`putRunResults`), that experiment again (experiment-5 and experiment-6); and when the runs of such
 * an experiment first stored their results themselves, that experiment and its first run again
 * (experiment-7, experiment-8 and run-2); and when local trainings first went on on the train queue
 * past their local time, a run and a pack whose trainings did (run-3 and pack-3); and when an experiment
 * first compared its runs' pairs at once, the last execution of one that did (experiment-9); and when
 * many pairs first went to batches, an experiment whose pairs did (experiment-10); and when runs that
 * failed before they started first got workflows that record it, an experiment whose dataset could
 * not be read, with those of its pack and of its run alone (experiment-11, pack-4 and run-4). The
 * current workflows must replay them to the same commands, or
 * Temporal would fail those experiments with a nondeterminism error.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import '../support/logs.js';
import { workflowBundle } from '../../worker/run.js';

const HISTORIES = new URL('./histories/', import.meta.url);

for (const [file, type] of [
  ['experiment-1.binpb', 'experimentWorkflow'],
  ['experiment-2.binpb', 'experimentWorkflow'],
  ['experiment-3.binpb', 'experimentWorkflow'],
  ['experiment-4.binpb', 'experimentWorkflow'],
  ['experiment-5.binpb', 'experimentWorkflow'],
  ['experiment-6.binpb', 'experimentWorkflow'],
  ['experiment-7.binpb', 'experimentWorkflow'],
  ['experiment-8.binpb', 'experimentWorkflow'],
  ['experiment-9.binpb', 'experimentWorkflow'],
  ['experiment-10.binpb', 'experimentWorkflow'],
  ['run.binpb', 'runWorkflow'],
  ['run-2.binpb', 'runWorkflow'],
  ['pack.binpb', 'packWorkflow'],
  ['pack-2.binpb', 'packWorkflow'],
  ['run-3.binpb', 'runWorkflow'],
  ['pack-3.binpb', 'packWorkflow'],
  ['experiment-11.binpb', 'experimentWorkflow'],
  ['run-4.binpb', 'runWorkflow'],
  ['pack-4.binpb', 'packWorkflow'],
] as const) {
  test(`${file}: a ${type} history from an earlier version replays on this code`, async () => {
    // As the server returns them (temporal.api.history.v1.History, binary protobuf).
    const history = proto.temporal.api.history.v1.History.decode(await readFile(new URL(file, HISTORIES)));
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    assert.equal(started?.workflowType?.name, type);
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history);
  });
}
