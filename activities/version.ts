/**
 * The code version a worker runs: paramtrail's package version and, when the worker runs from a git
 * checkout, its commit, plus a digest of uncommitted changes (so two different dirty trees never pass
 * for the same code). Read once per process; recorded with every run and used in its reuse key.
 *
 * Reading it runs git in child processes, so a worker reads it at start, before any training, and
 * caches it: no run waits on git. (A child's exit is a signal to the worker; the native backend is
 * built with signals blocked during TensorFlow calls, see infra/native.mjs, and
 * test/unit/native-binding.test.ts trains under signals and child processes.) `createWorkers`
 * (worker/run.ts) and the worker's start do it.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export interface CodeVersion {
  /** package.json's version. */
  version: string;
  /** `git rev-parse HEAD`, or undefined outside a checkout. */
  commit?: string;
  /** sha256 (16 hex) of `git diff HEAD` when the tree has uncommitted changes to tracked files. */
  dirty?: string;
  /**
   * sha256 (16 hex) of the code that shapes a run's numbers (`COMPUTE_PATHS` as committed, plus their
   * uncommitted changes and new untracked files): what reuse compares, so a commit that touches only docs, the CLI or tests does
   * not retrain anything.
   */
  compute?: string;
}

/**
 * What a training's weights depend on: the maths (models, data decoding, kernels, training loop), the
 * train activity and its data preparation, the snapshot codec, the experiment schema's defaults and the
 * locked library versions. Analyses, figures and reports are recomputed on every run anyway.
 */
export const COMPUTE_PATHS = ['ml', 'activities/train.ts', 'activities/data.ts', 'artifacts/snapshot.ts', 'config', 'package-lock.json'];

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
    const digest = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 16);
    const diff = await git(['diff', 'HEAD', '--', '.'], root);
    const tree = await git(['ls-tree', '-r', 'HEAD', '--', ...COMPUTE_PATHS], root);
    const computeDiff = await git(['diff', 'HEAD', '--', ...COMPUTE_PATHS], root);
    // New files not yet added to git count too: their contents, by path.
    const untracked = (await git(['ls-files', '--others', '--exclude-standard', '--', ...COMPUTE_PATHS], root))?.split('\n').filter(Boolean) ?? [];
    const added = (await Promise.all(untracked.sort().map(async (f) => `${f}:${digest(await readFile(join(root, f), 'utf8').catch(() => ''))}`))).join('\n');
    return {
      version,
      commit,
      ...(diff ? { dirty: digest(diff) } : {}),
      ...(tree !== undefined ? { compute: digest(`${tree}\n${computeDiff ?? ''}\n${added}`) } : {}),
    };
  })();
  return cached;
}

/** What reuse compares: the version and the compute code's digest (the commit when there is none). */
export function reuseCodeVersion(v: CodeVersion): string {
  return v.compute ? `${v.version}+compute-${v.compute}` : formatCodeVersion(v);
}

/** One line: `0.1.0+1f29c3c0a1b2` or `0.1.0+1f29c3c0a1b2.dirty-<digest>`. */
export function formatCodeVersion(v: CodeVersion): string {
  return `${v.version}${v.commit ? `+${v.commit.slice(0, 12)}` : ''}${v.dirty ? `.dirty-${v.dirty}` : ''}`;
}
