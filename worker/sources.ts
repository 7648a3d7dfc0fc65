/**
 * What a worker process runs, as a hash of its sources: the workflow bundle is built per value of it
 * (worker/run.ts), and the embedded stack replaces a worker started on other sources (infra/dev.ts, through
 * cli/connect.ts). Kept apart from worker/run.ts so the CLI can compute it without loading the SDK's worker.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../infra/tools.js';

/** The folders whose TypeScript a worker loads, its workflow bundle included: the workflows and what they import. */
const WORKER_SOURCES = ['workflows', 'config', 'activities', 'artifacts', 'ml', 'worker', 'cli', 'infra', 'report'];

/**
 * sha256 (32 hex) of every TypeScript file of WORKER_SOURCES (path and bytes) and the package lock (the
 * SDK's workflow runtime and webpack, and every library a worker loads). Tests, docs and experiment
 * files are not among them.
 */
export async function workerSourcesHash(root = PROJECT_ROOT): Promise<string> {
  const hash = createHash('sha256').update(await readFile(join(root, 'package-lock.json')));
  for (const dir of WORKER_SOURCES) {
    const files = (await readdir(join(root, dir), { recursive: true }).catch(() => [] as string[])).filter((f) => f.endsWith('.ts')).sort();
    for (const file of files) hash.update(`${dir}/${file}\0`).update(await readFile(join(root, dir, file))).update('\0');
  }
  return hash.digest('hex').slice(0, 32);
}
