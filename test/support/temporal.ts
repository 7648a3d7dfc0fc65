/**
 * A real Temporal dev server for workflow and end-to-end tests, started through the SDK's own test
 * environment with the CLI that `infra/setup.mjs` installed (never a download at test time).
 *
 * Usage: `const env = await startTestTemporal(); try { ... env.client ... env.nativeConnection ... }
 * finally { await env.teardown(); }`. Each call starts its own in-memory server on a free port, with
 * paramtrail's search attributes registered as `paramtrail dev up` registers them.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { resolveTool } from '../../infra/tools.js';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/search.js';
import { tempDir } from './fixtures.js';
import './logs.js';

let quietCli: Promise<string> | undefined;

/**
 * The CLI behind a script that drops its standard output: the SDK starts the server with the test's
 * own stdout, and the CLI prints a five-line banner there at every start. Its errors (stderr) still show.
 */
function quietTemporal(env: NodeJS.ProcessEnv): Promise<string> {
  quietCli ??= (async () => {
    const script = join(await tempDir('paramtrail-temporal-'), 'temporal');
    await writeFile(script, `#!/bin/sh\nexec '${resolveTool('temporal', env).replaceAll("'", `'\\''`)}' "$@" > /dev/null\n`);
    await chmod(script, 0o755);
    return script;
  })();
  return quietCli;
}

export async function startTestTemporal(env: NodeJS.ProcessEnv = process.env): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: await quietTemporal(env) },
      ip: '127.0.0.1',
      // In memory and headless by default. Errors only: the dev server warns at every start about
      // things that do not matter to a test (a generated cluster id), cluttering the test report.
      log: { format: 'pretty', level: 'error' },
      searchAttributes: [...SEARCH_ATTRIBUTE_KEYS],
    },
  });
}
