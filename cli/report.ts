/**
 * `paramtrail report <experiment-id> [--out FILE]`: where a finished experiment's HTML report is, or
 * (with --out) a copy of it at FILE, read from the store and checked against its sha256. The report
 * itself is written by the experiment workflow's last step; this command only finds it.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { openStore } from '../artifacts/open.js';
import type { ExperimentResult } from '../workflows/types.js';
import { connect } from './connect.js';
import { loadExperiment } from './experiment.js';

import { EXIT } from './exit.js';

const { ok: OK, failed: FAILED, usage: USAGE } = EXIT;

export const REPORT_USAGE = 'usage: paramtrail report <experiment-id> [--out FILE]';

export const REPORT_HELP = `${REPORT_USAGE}

Where a completed experiment's HTML report is in the store, or with --out a copy of it at FILE, checked
against its sha256 on the way.

  --out FILE, -o FILE   write the report to FILE (its folder is made if needed); to a folder that
                        exists, as <experiment-id>.html in it

Exit status: 0 when the report is there, 1 when the experiment is unknown, not completed or has no
report, or FILE cannot be written, 2 on a usage error, 4 when the Temporal server or the store cannot be reached, or the store
refuses access.`;

export async function cmdReport(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { out: { type: 'string', short: 'o' } } });
  } catch (err) {
    console.error(`report: ${(err as Error).message}\n${REPORT_USAGE}`);
    return USAGE;
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    console.error(`report: expected one experiment id, found ${positionals.length}\n${REPORT_USAGE}`);
    return USAGE;
  }
  const experimentId = positionals[0];
  const { client, connection } = await connect(env, { startEmbedded: false });
  try {
    const loaded = await loadExperiment(client, experimentId, { progress: false });
    if (!loaded) {
      console.error(`no experiment with id ${experimentId}`);
      return FAILED;
    }
    const { state } = loaded;
    if (state !== 'COMPLETED') {
      console.error(`experiment ${experimentId} is ${state.toLowerCase()}: the report is written when it completes`);
      return FAILED;
    }
    const result = loaded.result as ExperimentResult;
    if (!result.report) {
      const why = result.reportError ? `: ${result.reportError.message}` : ' (it finished before experiments wrote reports)';
      console.error(`experiment ${experimentId} has no report${why}`);
      return FAILED;
    }
    if (values.out === undefined) {
      console.log(result.report.path);
      return OK;
    }
    const store = openStore(result.store, env);
    const html = await store.get(result.report.key, { sha256: result.report.sha256 });
    let out = resolve(values.out);
    if ((await stat(out).catch(() => undefined))?.isDirectory()) out = join(out, `${experimentId}.html`);
    try {
      await mkdir(dirname(out), { recursive: true });
      await writeFile(out, html);
    } catch (err) {
      console.error(`report: cannot write ${out}: ${(err as Error).message}`);
      return FAILED;
    }
    console.log(out);
    return OK;
  } finally {
    await connection.close();
  }
}
