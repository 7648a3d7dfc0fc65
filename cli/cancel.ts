/**
 * `paramtrail cancel <experiment-id> [--json] [--no-wait]`: asks Temporal to cancel an experiment
 * workflow and waits until it has closed. Called by cli/main.ts.
 *
 * Temporal carries the cancellation to the run workflows and their activities; the train activity sees
 * it at its next heartbeat and stops between store writes, so no checkpoint names an object that was
 * not stored whole. The command only asks and watches: it never terminates anything.
 */
import { connect } from './connect.js';
import { findExperimentWorkflow } from './experiment.js';
import { EXIT } from './exit.js';
import { parseOr, usageExit } from './verify.js';

const HELP = `usage: paramtrail cancel <experiment-id> [--json] [--no-wait]

Requests cancellation of a running experiment: its runs and their activities are cancelled, and
training stops at its next heartbeat. Waits until the experiment has closed and prints its final
state (CANCELLED, or COMPLETED/FAILED if it finished first). Given a run's workflow id instead (as
\`paramtrail ls\` lists it), cancels that run alone: the experiment records it as failed and goes on.

  --json      print { experimentId, state, cancelRequested } as JSON
  --no-wait   return as soon as the request is recorded

Exit status: 0 when the experiment closed as CANCELLED (or, with --no-wait, the request was
accepted); 1 when it is unknown, was already closed, or closed some other way; 2 on a usage error;
4 when the Temporal server cannot be reached.`;

export interface CancelReport {
  experimentId: string;
  /** Temporal's workflow status after the command: CANCELLED, COMPLETED, FAILED, RUNNING (with --no-wait), ... */
  state: string;
  cancelRequested: boolean;
}

const POLL_MS = 500;

export async function cmdCancel(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = parseOr({
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, 'no-wait': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (parsed instanceof Error) return usageExit(HELP, `cancel: ${parsed.message}`);
  const { values, positionals } = parsed;
  if (values.help) return usageExit(HELP, undefined);
  if (positionals.length !== 1) return usageExit(HELP, 'cancel: expected one experiment id');
  const experimentId = positionals[0];

  const { client, connection } = await connect(env, { startEmbedded: false });
  const print = (r: CancelReport, text: string) => console.log(values.json ? JSON.stringify(r, null, 2) : text);
  try {
    // A scheduled execution's experiment id stands for its workflow id too (cli/experiment.ts).
    const found = await findExperimentWorkflow(client, experimentId);
    if (!found) {
      console.error(`no experiment with id ${experimentId}`);
      return EXIT.failed;
    }
    const { handle } = found;
    let state = found.described.status.name;
    if (state !== 'RUNNING') {
      print({ experimentId, state, cancelRequested: false }, `${experimentId}: already closed (${state}); nothing to cancel`);
      return EXIT.failed;
    }
    await handle.cancel();
    if (values['no-wait']) {
      print({ experimentId, state: 'RUNNING', cancelRequested: true }, `${experimentId}: cancellation requested`);
      return EXIT.ok;
    }
    if (!values.json) console.error(`${experimentId}: cancellation requested; waiting for it to close`);
    // Polled rather than awaiting result(): result() follows continue-as-new chains and throws for
    // every outcome but success, while describe() says plainly how the execution closed.
    while (state === 'RUNNING') {
      await new Promise((r) => setTimeout(r, POLL_MS));
      state = (await handle.describe()).status.name;
    }
    print({ experimentId, state, cancelRequested: true }, `${experimentId}: ${state}`);
    return state === 'CANCELLED' ? EXIT.ok : EXIT.failed;
  } finally {
    await connection.close();
  }
}
