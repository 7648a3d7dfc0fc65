/**
 * Experiments as the commands see them: an experiment file read and validated (`run`, `schedule
 * create`), and where an experiment is, as the commands that take an experiment id need it: its Temporal
 * state and, when completed, its result, or while running, its progress.
 */
import { readFile } from 'node:fs/promises';
import { QueryRejectedError, ServiceError, WorkflowNotFoundError, type Client, type WorkflowExecutionDescription, type WorkflowHandle } from '@temporalio/client';
import { experimentFromYaml, InvalidExperimentError, type ExperimentConfig, type Registries } from '../config/experiment.js';
import { DATASET_EXAMPLES, DATASETS } from '../ml/data/datasets.js';
import { MODELS } from '../ml/models/registry.js';
import { experimentIdOf, type ExperimentProgress, type ExperimentResult } from '../workflows/types.js';

/** The models and datasets paramtrail has, and how many examples each dataset holds. */
export const REGISTRIES: Registries = { models: new Set(MODELS.keys()), datasets: new Set(DATASETS.keys()), datasetExamples: DATASET_EXAMPLES };

/** The experiment file at `file`, validated against the models and datasets paramtrail has, at `size` if given. */
export async function readExperimentFile(file: string, size: string | undefined): Promise<ExperimentConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidExperimentError(`${file}: cannot read: ${(err as Error).message}`);
  }
  // YAML reads an empty file (or only comments) as null, which the schema would call "expected object".
  if (!/^\s*[^#\s]/m.test(text)) throw new InvalidExperimentError(`${file}: invalid experiment: the file is empty; expected name, models, datasets and training`);
  return experimentFromYaml(text, file, REGISTRIES, { size });
}

/**
 * An id a user chooses for an experiment (`run --id`) or a schedule (`schedule create --id`, whose
 * executions are `<id>-<time>`): it becomes a segment of the experiment's keys (`runs/<id>/…`).
 */
export const EXPERIMENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const EXPERIMENT_ID_RULE = 'letters, digits, ".", "_" and "-", starting with a letter or digit';

/** The workflow ids an experiment id may stand for: itself, and for a scheduled execution's, the time with its colons. */
function workflowIdsOf(id: string): string[] {
  const scheduled = /^(.+-\d{4}-\d{2}-\d{2}T)(\d{2})(\d{2})(\d{2}(?:\.\d+)?Z)$/.exec(id);
  return scheduled ? [id, `${scheduled[1]}${scheduled[2]}:${scheduled[3]}:${scheduled[4]}`] : [id];
}

export interface LoadedExperiment {
  /** The experiment's workflow id and its experiment id (equal but for a scheduled execution's). */
  workflowId: string;
  experimentId: string;
  state: string;
  /** The result when it completed, else progress when it is running, else undefined. */
  result?: ExperimentResult | ExperimentProgress;
  /** Running, but no worker answered the progress query (none polls its queue, say): why. */
  unanswered?: string;
}

/** An id that names a workflow other than an experiment: a run's or a pack's, from `paramtrail ls`. */
export class NotAnExperimentError extends Error {
  override readonly name = 'NotAnExperimentError';
}

/** How long a running experiment's workers have to say where it is. */
const PROGRESS_ANSWER_MS = 10_000;

/** The workflow an experiment id names (a scheduled execution's by either id), described; undefined when Temporal knows none. */
export async function findExperimentWorkflow(client: Client, experimentId: string): Promise<{ handle: WorkflowHandle; described: WorkflowExecutionDescription } | undefined> {
  for (const workflowId of workflowIdsOf(experimentId)) {
    const handle = client.workflow.getHandle(workflowId);
    const described = await handle.describe().catch((err: unknown) => {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    });
    if (described) return { handle, described };
  }
  return undefined;
}

/** Returns undefined when Temporal knows no workflow with that id. `progress: false` asks a running one nothing. */
export async function loadExperiment(client: Client, experimentId: string, opts: { progress?: boolean } = {}): Promise<LoadedExperiment | undefined> {
  const found = await findExperimentWorkflow(client, experimentId);
  if (!found) return undefined;
  const { handle, described } = found;
  if (described.type !== 'experimentWorkflow') {
    const slash = experimentId.indexOf('/');
    throw new NotAnExperimentError(
      `${experimentId} is a ${described.type}, not an experiment${slash > 0 ? `; its experiment is ${experimentId.slice(0, slash)}` : ''}`,
    );
  }
  const ids = { workflowId: handle.workflowId, experimentId: experimentIdOf(handle.workflowId) };
  const state = described.status.name;
  if (state === 'COMPLETED') return { ...ids, state, result: (await handle.result()) as ExperimentResult };
  if (state !== 'RUNNING' || opts.progress === false) return { ...ids, state };
  try {
    // A query is answered by a worker: with none polling the experiment's queue, the server waits for one.
    return { ...ids, state, result: await client.withDeadline(Date.now() + PROGRESS_ANSWER_MS, () => handle.query<ExperimentProgress>('progress')) };
  } catch (err) {
    if (err instanceof QueryRejectedError || err instanceof ServiceError) {
      // The SDK's own message ("Failed to query Workflow") says less than the server's, its cause.
      const cause = (err as Error).cause;
      const said = cause instanceof Error ? cause.message : (err as Error).message;
      return { ...ids, state, unanswered: /DEADLINE_EXCEEDED/.test(said) ? `waited ${PROGRESS_ANSWER_MS / 1000} s` : said };
    }
    throw err;
  }
}
