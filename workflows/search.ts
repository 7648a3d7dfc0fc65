/**
 * The Temporal search attributes every run workflow carries, so runs can be found by experiment,
 * model, dataset, optimiser and status in the Temporal UI, with `temporal workflow list --query`, and
 * with `paramtrail ls`.
 *
 * The experiment workflow starts each child with `runSearchAttributes(experimentId, runId, spec)` as
 * its `typedSearchAttributes`; the run workflow calls `upsertRunStatus(status)` as it moves on. The CLI
 * builds its visibility queries from the same keys (`cli/ls.ts`), and the dev server and tests register
 * `SEARCH_ATTRIBUTE_KEYS` at start (`infra/temporal.ts`, `test/support/temporal.ts`). A cluster must
 * have them created once: `paramtrail`'s README gives the `temporal operator search-attribute create`
 * command.
 *
 * Dependency-free apart from the SDK, so workflows, the CLI and infra can all import it.
 */
import { defineSearchAttributeKey, type SearchAttributePair } from '@temporalio/common';
import { upsertSearchAttributes } from '@temporalio/workflow';
import type { RunSpec } from '../config/grid.js';

export const ExperimentKey = defineSearchAttributeKey('ParamtrailExperiment', 'KEYWORD');
/** The run id, `<experiment id>/<run name>`. */
export const RunKey = defineSearchAttributeKey('ParamtrailRun', 'KEYWORD');
/** The model's registered name (`mlp`, `lenet5`), not its label: what one searches by. */
export const ModelKey = defineSearchAttributeKey('ParamtrailModel', 'KEYWORD');
export const DatasetKey = defineSearchAttributeKey('ParamtrailDataset', 'KEYWORD');
/** `sgd` or `adam`. */
export const OptimizerKey = defineSearchAttributeKey('ParamtrailOptimizer', 'KEYWORD');
/** One of `RUN_STATUSES`, upserted by the run workflow as it goes. */
export const StatusKey = defineSearchAttributeKey('ParamtrailStatus', 'KEYWORD');

/** Every key, in the order they are registered and listed. */
export const SEARCH_ATTRIBUTE_KEYS = [ExperimentKey, RunKey, ModelKey, DatasetKey, OptimizerKey, StatusKey] as const;

/**
 * Where a run is, as a search attribute. `pending` until its first activity starts; `completed`,
 * `failed` and `diverged` are final (a diverged run still completes its workflow, on the snapshots it
 * stored before diverging); `cancelled` when its experiment was cancelled.
 */
export const RUN_STATUSES = ['pending', 'downloading', 'training', 'analysing', 'completed', 'diverged', 'failed', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** The attributes a run workflow starts with: pass them as `executeChild(runWorkflow, { typedSearchAttributes })`. */
export function runSearchAttributes(experimentId: string, runId: string, spec: Pick<RunSpec, 'model' | 'dataset' | 'training'>): SearchAttributePair[] {
  return [
    { key: ExperimentKey, value: experimentId },
    { key: RunKey, value: runId },
    { key: ModelKey, value: spec.model.name },
    { key: DatasetKey, value: spec.dataset.name },
    { key: OptimizerKey, value: spec.training.optimizer.name },
    { key: StatusKey, value: 'pending' satisfies RunStatus },
  ];
}

/** Records a run's status; call from inside the run workflow (it is a workflow command). */
export function upsertRunStatus(status: RunStatus): void {
  upsertSearchAttributes([{ key: StatusKey, value: status }]);
}

/** `Name=Keyword` for each key, as `temporal server start-dev --search-attribute` takes them. */
export function searchAttributeFlags(): string[] {
  return SEARCH_ATTRIBUTE_KEYS.flatMap((k) => ['--search-attribute', `${k.name}=${cliTypeName(k.type)}`]);
}

/** The Temporal CLI spells types `Keyword`, `Text`, `KeywordList`; the SDK `KEYWORD`, `KEYWORD_LIST`. */
export function cliTypeName(type: string): string {
  return type
    .toLowerCase()
    .split('_')
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join('');
}
