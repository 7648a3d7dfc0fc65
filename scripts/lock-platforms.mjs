// Completes package-lock.json with the platform packages of @swc/core (a dependency of the Temporal
// worker's bundler) that a registry mirror may not serve, as the optional, os/cpu-restricted entries npm
// writes where it can see them. Without them `npm ci` calls the lock "out of sync". Run it after any
// `npm install`: node scripts/lock-platforms.mjs [package-lock.json]
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.argv[2] ?? 'package-lock.json';
const lock = JSON.parse(readFileSync(file, 'utf8'));
const packages = lock.packages;
const core = packages['node_modules/@swc/core'];
if (!core) throw new Error(`${file}: no node_modules/@swc/core entry`);

// npm's own os/cpu names for each @swc/core-<platform> package.
const PLATFORMS = {
  'darwin-arm64': ['darwin', 'arm64'],
  'darwin-x64': ['darwin', 'x64'],
  'linux-arm-gnueabihf': ['linux', 'arm'],
  'linux-arm64-gnu': ['linux', 'arm64'],
  'linux-arm64-musl': ['linux', 'arm64'],
  'linux-ppc64-gnu': ['linux', 'ppc64'],
  'linux-s390x-gnu': ['linux', 's390x'],
  'linux-x64-gnu': ['linux', 'x64'],
  'linux-x64-musl': ['linux', 'x64'],
  'win32-arm64-msvc': ['win32', 'arm64'],
  'win32-ia32-msvc': ['win32', 'ia32'],
  'win32-x64-msvc': ['win32', 'x64'],
};

let added = 0;
for (const [name, version] of Object.entries(core.optionalDependencies ?? {})) {
  const key = `node_modules/${name}`;
  if (packages[key]) continue;
  const platform = PLATFORMS[name.replace('@swc/core-', '')];
  if (!platform) throw new Error(`${name}: unknown platform; add it to PLATFORMS`);
  const [os, cpu] = platform;
  packages[key] = { version, cpu: [cpu], license: 'Apache-2.0 AND MIT', optional: true, os: [os], engines: { node: '>=10' } };
  added++;
}
const sorted = { '': packages[''] };
for (const k of Object.keys(packages).filter((k) => k).sort((a, b) => a.localeCompare(b, 'en'))) sorted[k] = packages[k];
lock.packages = sorted;
writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
console.log(`${file}: added ${added} platform entries`);
