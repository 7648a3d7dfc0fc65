/**
 * `paramtrail verify <experiment-id> [--json]`: re-hashes every artifact an experiment names and lists
 * the missing and altered ones. Called by cli/main.ts.
 *
 * What is checked: every reference in the experiment's result (dataset files, snapshots, final weights,
 * distance tables, figures), and everything under the experiment's `runs/<experiment id>/` folder
 * (checkpoints and attempt records) together with every object those JSON files point at. An experiment
 * that did not complete (failed, cancelled) has no result; its `runs/` folder is still checked, so a
 * checkpoint naming a snapshot that was never stored whole shows up as missing.
 *
 * Also exports the helpers `lineage` and the tests share: how to load an experiment's result and how to
 * collect the references in a JSON value.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { mapLimit } from '../artifacts/concurrency.js';
import { isSha256Hex } from '../artifacts/hash.js';
import { openStore } from '../artifacts/open.js';
import type { ObjectRef } from '../artifacts/refs.js';
import { IntegrityError, ObjectNotFoundError, type ArtifactStore } from '../artifacts/store.js';
import { getJson } from '../activities/json.js';
import { runPrefix } from '../activities/keys.js';
import { loadRuns } from '../activities/results.js';
import type { CompareOutcome } from '../activities/types.js';
import type { ExperimentProgress, ExperimentResult, RunResult } from '../workflows/types.js';
import { connect } from './connect.js';
import { loadExperiment, type LoadedExperiment } from './experiment.js';
import { EXIT } from './exit.js';

const HELP = `usage: paramtrail verify <experiment-id> [--json]

Re-hashes every artifact the experiment names (dataset files, snapshots, final weights, distance
tables, figures, checkpoints and attempt records under runs/<experiment-id>/ and what they point at)
in the store, and lists the missing and altered ones.

  --json   print a machine-readable report

Exit status: 0 when every artifact verifies, 1 when any is missing or altered (or the experiment is
unknown, or running with no worker to say what its runs produced, so only its runs/ folder could be
checked), 2 on a usage error, 4 when the Temporal server or the store cannot be reached, or the store
refuses access.`;

/** One artifact to check: a reference, and where it was named (for the report). */
export interface NamedRef extends ObjectRef {
  /** e.g. `run mlp-fashion-mnist: snapshot epoch 2`, or the JSON object naming it. */
  from: string;
}

export interface VerifyProblem {
  key: string;
  sha256?: string;
  problem: 'missing' | 'altered' | 'unreadable';
  detail: string;
  from: string;
}

export interface VerifyReport {
  experimentId: string;
  /** The experiment's workflow state: COMPLETED, RUNNING, FAILED, CANCELED, ... */
  state: string;
  /** Once it completed, whether all its runs did: completed or completed-with-failures. */
  status?: string;
  store: string;
  checked: number;
  /** What could not be checked: a running experiment's runs' results when no worker answered. */
  unchecked?: string;
  ok: boolean;
  problems: VerifyProblem[];
}

/** Prints help or a usage error; returns the exit code, or undefined when the arguments were fine. */
export function usageExit(help: string, message: string | undefined): number {
  if (message === undefined) {
    console.log(help);
    return EXIT.ok;
  }
  console.error(`${message}\n\n${help}`);
  return EXIT.usage;
}

/** `--help` or `-h` among a command's arguments (not after `--`). */
export function asksForHelp(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/** parseArgs that turns a parse error into a usage message instead of a throw. */
export function parseOr<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> | Error {
  try {
    return parseArgs(config);
  } catch (err) {
    return err as Error;
  }
}

/** Every `{ key, sha256 }` object inside a JSON value, in the order met, each tagged with its path. */
export function collectRefs(value: unknown, from: string, out: NamedRef[] = [], path = ''): NamedRef[] {
  if (Array.isArray(value)) {
    value.forEach((v, i) => collectRefs(v, from, out, `${path}[${i}]`));
  } else if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (typeof o.key === 'string' && typeof o.sha256 === 'string' && isSha256Hex(o.sha256)) {
      out.push({ key: o.key, sha256: o.sha256, bytes: typeof o.bytes === 'number' ? o.bytes : -1, from: `${from}${path ? ` ${path}` : ''}` });
    }
    for (const [k, v] of Object.entries(o)) collectRefs(v, from, out, path ? `${path}.${k}` : k);
  }
  return out;
}

/**
 * The references an experiment's result names: its own (the report, the chunks of run summaries it
 * moved to the store, the stored outcomes of compare batches and the tables they name), then run by
 * run, with the results it moved to the store read back. A chunk, a result or outcomes that do not
 * read are still among the references, where their check reports them.
 */
export async function resultRefs(store: ArtifactStore, result: ExperimentResult | ExperimentProgress): Promise<NamedRef[]> {
  const { runs: _runs, ...rest } = result;
  // Experiment-level artifacts (e.g. a written report), then each run's.
  const refs: NamedRef[] = collectRefs(rest, 'experiment:');
  // The CKA tables of pairs compared in batches are named in the batches' stored outcomes.
  const batches = (result as Partial<ExperimentResult>).compareBatches ?? [];
  for (const [i, b] of batches.entries()) {
    const outcomes = await getJson<CompareOutcome[]>(store, b.outcomes.key, { sha256: b.outcomes.sha256 }).catch(() => undefined);
    if (outcomes) collectRefs(outcomes, `experiment: compareBatches[${i}] outcomes`, refs);
  }
  const runs = await loadRuns(store, result).catch(() => result.runs);
  // Results moved to the store are read a few at a time (a grid's thousands, from S3), named in run order.
  const moved = await mapLimit(runs, READS_AT_ONCE, (run) =>
    run.resultRef ? getJson<RunResult>(store, run.resultRef.key, { sha256: run.resultRef.sha256 }).catch(() => undefined) : Promise.resolve(undefined),
  );
  for (const [i, run] of runs.entries()) {
    const from = `run ${run.name}:`;
    if (run.result) collectRefs(run.result, from, refs);
    if (!run.resultRef) continue;
    collectRefs({ result: run.resultRef }, from, refs);
    if (moved[i]) collectRefs(moved[i], from, refs);
  }
  return refs;
}

/** Objects read or checked at once. */
const READS_AT_ONCE = 8;

/** Checks one reference against the store; undefined when it verifies. */
export async function checkRef(store: ArtifactStore, ref: NamedRef): Promise<VerifyProblem | undefined> {
  const base = { key: ref.key, sha256: ref.sha256, from: ref.from };
  if (!(await store.head(ref.key))) return { ...base, problem: 'missing', detail: `not in ${store.location}` };
  try {
    const bytes = await store.get(ref.key, { sha256: ref.sha256 });
    if (ref.bytes >= 0 && bytes.byteLength !== ref.bytes) {
      return { ...base, problem: 'altered', detail: `expected ${ref.bytes} bytes, found ${bytes.byteLength}` };
    }
    return undefined;
  } catch (err) {
    if (err instanceof IntegrityError) return { ...base, problem: 'altered', detail: `expected sha256 ${err.expectedSha256}, found ${err.foundSha256}` };
    if (err instanceof ObjectNotFoundError) return { ...base, problem: 'missing', detail: err.message };
    throw err;
  }
}

/**
 * Verifies an experiment's artifacts in a store: the result's references, plus the experiment's
 * `runs/` folder (each JSON object there must parse, and every reference inside must verify).
 */
export async function verifyExperiment(
  store: ArtifactStore,
  experimentId: string,
  loaded: LoadedExperiment,
): Promise<VerifyReport> {
  const refs = loaded.result ? await resultRefs(store, loaded.result) : [];
  const problems: VerifyProblem[] = [];
  // Per-run indexes: not content-addressed, so there is no hash to hold them to, but they must be
  // readable JSON, and what they point at must be whole.
  const indexKeys = (await store.list(`${runPrefix(experimentId)}/`)).filter((k) => k.endsWith('.json'));
  const indexes = await mapLimit(indexKeys, READS_AT_ONCE, async (key) => {
    try {
      return { value: JSON.parse(new TextDecoder().decode(await store.get(key))) as unknown };
    } catch (err) {
      return { error: (err as Error).message };
    }
  });
  for (const [i, read] of indexes.entries()) {
    const key = indexKeys[i]!;
    if (read.error !== undefined) problems.push({ key, problem: 'unreadable', detail: `expected JSON, found ${read.error}`, from: 'runs folder' });
    else collectRefs(read.value, key, refs);
  }
  // One check per (key, sha256): a snapshot is named by the result, its checkpoint and the final ref.
  const unique = new Map<string, NamedRef>();
  for (const r of refs) if (!unique.has(`${r.key}@${r.sha256}`)) unique.set(`${r.key}@${r.sha256}`, r);
  const found = await mapLimit([...unique.values()], READS_AT_ONCE, (r) => checkRef(store, r));
  for (const p of found) if (p) problems.push(p);
  return {
    experimentId,
    state: loaded.state,
    ...(loaded.state === 'COMPLETED' && loaded.result && 'status' in loaded.result ? { status: loaded.result.status } : {}),
    store: store.location,
    checked: unique.size + indexKeys.length,
    ...(loaded.unanswered !== undefined ? { unchecked: `its runs' results: it is running and no worker answered where it is (${loaded.unanswered})` } : {}),
    ok: problems.length === 0 && loaded.unanswered === undefined,
    problems,
  };
}

export function formatVerifyReport(r: VerifyReport): string {
  const lines = [`experiment ${r.experimentId} (${r.status ?? r.state.toLowerCase()}), store ${r.store}`];
  if (r.ok) {
    lines.push(`all ${r.checked} artifacts verify`);
  } else if (r.problems.length === 0) {
    lines.push(`the ${r.checked} artifacts checked verify; not checked: ${r.unchecked}`);
  } else {
    lines.push(`${r.problems.length} of ${r.checked} artifacts do not verify:`);
    for (const p of r.problems) lines.push(`  ${p.problem.toUpperCase()} ${p.key}: ${p.detail} (named by ${p.from})`);
  }
  return lines.join('\n');
}

export async function cmdVerify(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseOr({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (parsed instanceof Error) return usageExit(HELP, `verify: ${parsed.message}`);
  const { values, positionals } = parsed;
  if (values.help) return usageExit(HELP, undefined);
  if (positionals.length !== 1) return usageExit(HELP, 'verify: expected one experiment id');
  const experimentId = positionals[0];

  const { client, connection, config } = await connect(env, { startEmbedded: false });
  try {
    const loaded = await loadExperiment(client, experimentId);
    if (!loaded) {
      console.error(`no experiment with id ${experimentId}`);
      return EXIT.failed;
    }
    const store = openStore(config.store, env);
    if (loaded.result && loaded.result.store !== store.location) {
      // The worker configuration names the store; an experiment run against another one is checked
      // here anyway, and every one of its artifacts will then be reported missing.
      console.error(`note: the experiment recorded store ${loaded.result.store}; checking ${store.location}`);
    }
    const report = await verifyExperiment(store, loaded.experimentId, loaded);
    console.log(values.json ? JSON.stringify(report, null, 2) : formatVerifyReport(report));
    return report.ok ? EXIT.ok : EXIT.failed;
  } finally {
    await connection.close();
  }
}
