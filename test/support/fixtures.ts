/**
 * Small experiments and folders shared by the activity, workflow and end-to-end tests. The data is the
 * real Fashion-MNIST from Debian's `dataset-fashion-mnist` (installed by `npm run setup`).
 */
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateExperiment, type ExperimentConfig } from '../../config/experiment.js';
import { REGISTRIES } from '../../cli/experiment.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
/** Straight to the local copy: tests never wait on the (unreachable) canonical host. */
export const FASHION_MNIST_SOURCES = [`file://${FASHION_MNIST_DIR}/`];

export function requireFashionMnist(): void {
  if (!existsSync(join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'))) {
    throw new Error(`Fashion-MNIST is missing from ${FASHION_MNIST_DIR}: run "npm run setup" (apt-get install dataset-fashion-mnist)`);
  }
}

const madeDirs: string[] = [];

/**
 * A new folder under the system's temporary folder, removed when the test file's process exits (each
 * file runs in a process of its own): stores of trained runs take hundreds of MB. Set
 * PARAMTRAIL_KEEP_TEST_DIRS=1 to keep them, to look into a failure.
 */
export async function tempDir(prefix = 'paramtrail-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  if (!process.env.PARAMTRAIL_KEEP_TEST_DIRS) {
    if (madeDirs.length === 0) process.once('exit', removeMadeDirs);
    madeDirs.push(dir);
  }
  return dir;
}

function removeMadeDirs(): void {
  for (const dir of madeDirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
    } catch (err) {
      // A process the test started may still be writing there; the folder is only left behind.
      console.error(`could not remove the test folder ${dir}: ${(err as Error).message}`);
    }
  }
}

export const registries = () => REGISTRIES;

/** A validated experiment small enough to train in seconds; `patch` replaces top-level fields. */
export function tinyExperiment(patch: Record<string, unknown> = {}): ExperimentConfig {
  return validateExperiment(
    {
      name: 'tiny',
      models: [{ name: 'mlp', args: { hidden: [32] } }],
      datasets: [{ name: 'fashion-mnist', subset: { train: 600, test: 200 }, sources: FASHION_MNIST_SOURCES }],
      seeds: [0],
      training: { epochs: 2, batchSize: 32, optimizer: { name: 'sgd', learningRate: 0.05, momentum: 0.9 } },
      execution: { concurrency: 2, heartbeatTimeout: '10s', maxAttempts: 3 },
      ...patch,
    },
    'test experiment',
    registries(),
  );
}
