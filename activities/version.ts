/**
 * The code version a worker runs: paramtrail's package version and, when the worker runs from a git
 * checkout, its commit, plus a digest of uncommitted changes (so two different dirty trees never pass
 * for the same code). Read once per process; recorded with every run and used in its reuse key.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export interface CodeVersion {
  /** package.json's version. */
  version: string;
  /** `git rev-parse HEAD`, or undefined outside a checkout. */
  commit?: string;
  /** sha256 (16 hex) of `git diff HEAD` when the tree has uncommitted changes to tracked files. */
  dirty?: string;
}

const run = promisify(execFile);
let cached: Promise<CodeVersion> | undefined;

async function git(args: string[], cwd: string): Promise<string | undefined> {
  try {
    return (await run('git', args, { cwd, maxBuffer: 256 * 1024 * 1024 })).stdout;
  } catch {
    return undefined;
  }
}

/** The code version of this process (cached). */
export function codeVersion(): Promise<CodeVersion> {
  cached ??= (async () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const version = await readFile(new URL('../package.json', import.meta.url), 'utf8').then(
      (text) => String((JSON.parse(text) as { version?: unknown }).version ?? 'unknown'),
      () => 'unknown',
    );
    const commit = (await git(['rev-parse', 'HEAD'], root))?.trim();
    if (!commit) return { version };
    const diff = await git(['diff', 'HEAD', '--', '.'], root);
    return diff ? { version, commit, dirty: createHash('sha256').update(diff).digest('hex').slice(0, 16) } : { version, commit };
  })();
  return cached;
}

/** One line: `0.1.0+1f29c3c0a1b2` or `0.1.0+1f29c3c0a1b2.dirty-<digest>`. */
export function formatCodeVersion(v: CodeVersion): string {
  return `${v.version}${v.commit ? `+${v.commit.slice(0, 12)}` : ''}${v.dirty ? `.dirty-${v.dirty}` : ''}`;
}
