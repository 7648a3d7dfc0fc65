/**
 * The workflow bundle cache (worker/run.ts): a worker builds the bundle for a version of the sources
 * once, later workers read it, and a change to any bundled source or to the package lock is a new
 * version.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PROJECT_ROOT } from '../../infra/tools.js';
import { bundleSourcesHash, cachedBundle } from '../../worker/run.js';

const dir = await mkdtemp(join(tmpdir(), 'paramtrail-bundle-'));
after(() => rm(dir, { recursive: true, force: true }));

test('the sources hash changes with any bundled source and with the package lock, not with tests', async () => {
  const root = join(dir, 'root');
  await mkdir(join(root, 'workflows'), { recursive: true });
  await mkdir(join(root, 'test'), { recursive: true });
  await cp(join(PROJECT_ROOT, 'package-lock.json'), join(root, 'package-lock.json'));
  for (const d of ['config', 'activities', 'artifacts', 'ml', 'worker', 'cli', 'infra', 'report']) await mkdir(join(root, d, 'sub'), { recursive: true });
  await writeFile(join(root, 'workflows', 'a.ts'), 'export const a = 1;');
  await writeFile(join(root, 'ml', 'sub', 'b.ts'), 'export const b = 2;');
  const first = await bundleSourcesHash(root);
  assert.match(first, /^[0-9a-f]{32}$/);
  assert.equal(await bundleSourcesHash(root), first, 'the same sources, the same hash');

  await writeFile(join(root, 'test', 'x.test.ts'), 'export {};');
  assert.equal(await bundleSourcesHash(root), first, 'a test file is not bundled');
  await writeFile(join(root, 'ml', 'sub', 'b.ts'), 'export const b = 3;');
  const edited = await bundleSourcesHash(root);
  assert.notEqual(edited, first, 'a nested source changed');
  await writeFile(join(root, 'config', 'c.ts'), 'export {};');
  const added = await bundleSourcesHash(root);
  assert.notEqual(added, edited, 'a source added');
  await writeFile(join(root, 'package-lock.json'), '{}');
  assert.notEqual(await bundleSourcesHash(root), added, 'the package lock changed');
});

test('a bundle is built once per version and read after; older versions are removed', async () => {
  const cache = join(dir, 'cache');
  const built = await cachedBundle(cache, 'aaaa');
  assert.match(built.code, /packWorkflow/);
  assert.deepEqual(await readdir(cache), ['workflows-aaaa.js']);
  assert.equal(await readFile(join(cache, 'workflows-aaaa.js'), 'utf8'), built.code);

  // Read, not rebuilt: what the file holds is what comes back.
  await writeFile(join(cache, 'workflows-aaaa.js'), '/* stored */');
  assert.deepEqual(await cachedBundle(cache, 'aaaa'), { code: '/* stored */' });

  const next = await cachedBundle(cache, 'bbbb');
  assert.equal(next.code, built.code);
  assert.deepEqual(await readdir(cache), ['workflows-bbbb.js']);
});

test('a cache folder that cannot be written costs only the build, and says so', async (t) => {
  const blocked = join(dir, 'blocked');
  await writeFile(blocked, 'a file where the folder would be');
  const warn = t.mock.method(console, 'warn', () => undefined);
  const built = await cachedBundle(join(blocked, 'cache'), 'cccc');
  assert.match(built.code, /packWorkflow/);
  assert.equal(await readFile(blocked, 'utf8'), 'a file where the folder would be');
  assert.equal(warn.mock.callCount(), 1);
  assert.match(String(warn.mock.calls[0]!.arguments[0]), /could not keep the workflow bundle in .*blocked\/cache \(ENOTDIR/);
});
