/** Records the lineage manifest of an artifact an activity just stored, naming the activity as producer. */
import { hostname } from 'node:os';
import { activityInfo } from '@temporalio/activity';
import { MANIFEST_FORMAT_VERSION, recordManifest } from '../artifacts/manifest.js';
import type { ObjectRef } from '../artifacts/refs.js';
import type { ArtifactStore } from '../artifacts/store.js';
import type { Producer } from './types.js';

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
      createdAt: new Date().toISOString(),
    },
    signal,
  );
}
