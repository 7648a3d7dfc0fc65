/** Records the lineage manifest of an artifact an activity just stored, naming the activity as producer. */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { activityInfo } from '@temporalio/activity';
import { MANIFEST_FORMAT_VERSION, recordManifest } from '../artifacts/manifest.js';
import type { ObjectRef } from '../artifacts/refs.js';
import type { ArtifactStore } from '../artifacts/store.js';
import type { Producer } from './types.js';
import { codeVersion } from './version.js';

let runtime: Promise<Record<string, string>> | undefined;

/** Versions of the runtime and of the libraries whose behaviour shapes stored numbers; read once. */
function runtimeVersions(): Promise<Record<string, string>> {
  runtime ??= (async () => {
    const out: Record<string, string> = { node: process.versions.node };
    for (const [name, pkg] of [['tfjs', '@tensorflow/tfjs-core'], ['apache-arrow', 'apache-arrow']] as const) {
      try {
        const url = new URL(`../node_modules/${pkg}/package.json`, import.meta.url);
        out[name] = String((JSON.parse(await readFile(url, 'utf8')) as { version?: unknown }).version);
      } catch {
        // A layout without node_modules beside the code leaves the version unrecorded rather than failing a store.
      }
    }
    return out;
  })();
  return runtime;
}

export async function recordLineage(
  store: ArtifactStore,
  producer: Producer,
  artifact: ObjectRef,
  kind: string,
  inputs: ObjectRef[],
  attrs: Record<string, unknown> = {},
  signal?: AbortSignal,
): Promise<void> {
  const info = activityInfo();
  await recordManifest(
    store,
    {
      formatVersion: MANIFEST_FORMAT_VERSION,
      artifact: { key: artifact.key, sha256: artifact.sha256, bytes: artifact.bytes },
      kind,
      producer: {
        experimentId: producer.experimentId,
        runId: producer.runId,
        workflowId: info.workflowExecution?.workflowId ?? '',
        workflowRunId: info.workflowExecution?.runId ?? '',
        activity: info.activityType,
        attempt: info.attempt,
        worker: `${process.pid}@${hostname()}`,
      },
      inputs: inputs.map(({ key, sha256, bytes }) => ({ key, sha256, bytes })),
      attrs,
      code: await codeVersion(),
      runtime: await runtimeVersions(),
      createdAt: new Date().toISOString(),
    },
    signal,
  );
}
