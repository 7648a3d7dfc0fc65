/**
 * The `train` activity: trains one run, storing a checkpoint (weights snapshot, optimizer state and a
 * small JSON index) at epoch 0 and at every snapshot epoch.
 *
 * A retry, after a crash or a lost worker, resumes from the newest stored checkpoint with the optimizer
 * state and the epoch-derived shuffling order, so it ends with exactly the weights of an uninterrupted
 * run. Each attempt leaves a record of where it started. Progress is heartbeated every batch; the
 * activity's cancellation reaches the training loop and every store call.
 */
import { hostname } from 'node:os';
import { activityInfo, Context } from '@temporalio/activity';
import type { SnapshotRef } from '../artifacts/refs.js';
import { snapshotFromArrow, snapshotToArrow, type NamedTensor } from '../artifacts/snapshot.js';
import { putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import { initBackend } from '../ml/backend.js';
import { buildModel } from '../ml/models/registry.js';
import { evaluate, train, type EpochMetrics, type TrainState } from '../ml/train/loop.js';
import { tensorsToModel } from '../ml/train/weights.js';
import { loadRunData } from './data.js';
import { classify } from './errors.js';
import { recordLineage } from './lineage.js';
import { getJson, putJson } from './json.js';
import { attemptKey, checkpointKey, runPrefix, TENSOR_PREFIX } from './keys.js';
import type { AttemptRecord, Checkpoint, EpochRecord, TrainHeartbeat, TrainInput, TrainResult } from './types.js';

export interface TrainDeps {
  store: ArtifactStore;
}

function toRecord(m: EpochMetrics): EpochRecord {
  return {
    epoch: m.epoch,
    step: m.step,
    trainLoss: m.trainLoss,
    trainAccuracy: m.trainAccuracy,
    valLoss: m.valLoss,
    valAccuracy: m.valAccuracy,
    seconds: m.seconds,
  };
}

async function listCheckpoints(store: ArtifactStore, runId: string, signal: AbortSignal): Promise<Checkpoint[]> {
  const keys = (await store.list(`${runPrefix(runId)}/checkpoints/`, { signal })).filter((k) => k.endsWith('.json'));
  const out: Checkpoint[] = [];
  for (const key of keys) out.push(await getJson<Checkpoint>(store, key, { signal }));
  return out.sort((a, b) => a.epoch - b.epoch);
}

async function loadTensors(store: ArtifactStore, ref: { key: string; sha256: string }, signal: AbortSignal): Promise<NamedTensor[]> {
  const bytes = await store.get(ref.key, { sha256: ref.sha256, signal });
  return snapshotFromArrow(bytes).tensors;
}

async function stateFromCheckpoint(store: ArtifactStore, cp: Checkpoint, signal: AbortSignal): Promise<TrainState> {
  return {
    epoch: cp.epoch,
    step: cp.step,
    weights: await loadTensors(store, cp.weights, signal),
    optimizer: await loadTensors(store, cp.optimizer, signal),
    rng: cp.rng,
  };
}

export function createTrain(deps: TrainDeps) {
  const { store } = deps;
  return async function trainRun(input: TrainInput): Promise<TrainResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    const info = activityInfo();
    const { run, runId } = input;
    // Besides the beat after every batch, beat on a timer: evaluating a large split or decoding a
    // dataset takes a while without batches, and the loop yields often enough for the timer to fire.
    const before = info.heartbeatDetails as TrainHeartbeat | undefined;
    let details: TrainHeartbeat = before ?? { epoch: 0, batch: 0, batches: 0, epochs: run.training.epochs, checkpointEpoch: -1 };
    const ticker = setInterval(() => ctx.heartbeat(details), 1000);
    try {
      const backend = await initBackend();
      const data = await loadRunData(store, run.dataset, input.data, signal);
      const model = buildModel(run.model, { inputShape: data.def.inputShape, numClasses: data.def.numClasses });
      try {
        // The store, not the heartbeat, is the truth about what was saved: a heartbeat may be lost
        // with the worker, a stored checkpoint is not. The heartbeat only tells us what to expect.
        const previous = before?.checkpointEpoch;
        const checkpoints = await listCheckpoints(store, runId, signal);
        const latest = checkpoints.at(-1);
        if (previous !== undefined && (latest?.epoch ?? -1) < previous) {
          ctx.log.warn('heartbeat names a checkpoint the store does not have', { previous, found: latest?.epoch });
        }
        const resume = latest ? await stateFromCheckpoint(store, latest, signal) : undefined;
        const attempt: AttemptRecord = {
          attempt: info.attempt,
          startedFromEpoch: resume?.epoch ?? 0,
          resumed: resume !== undefined,
          startedAt: new Date().toISOString(),
          worker: `${hostname()}:${process.pid}`,
          backend,
        };
        await putJson(store, attemptKey(runId, info.attempt), attempt, signal);

        const { epochs, batchSize, snapshotEvery } = run.training;
        // What every snapshot of this attempt derives from: the dataset files and, when resuming, the checkpoint.
        const inputs = [...input.data.files, ...(latest ? [latest.weights, latest.optimizer] : [])];
        let history: EpochRecord[] = latest?.history ?? [];
        let checkpointEpoch = latest?.epoch ?? -1;
        let current = { epoch: resume?.epoch ?? 0, batch: 0, batches: 0 };
        const beat = () => {
          details = { ...current, epochs, checkpointEpoch };
          ctx.heartbeat(details);
        };

        const saveCheckpoint = async (state: TrainState, metrics: EpochMetrics) => {
          history = [...history.filter((h) => h.epoch < state.epoch), toRecord(metrics)];
          current = { epoch: state.epoch, batch: 0, batches: current.batches };
          if (state.epoch % snapshotEvery !== 0 && state.epoch !== epochs) return beat();
          const attrs = { model: run.model.name, dataset: run.dataset.name, seed: String(run.seed) };
          const meta = { runId, epoch: state.epoch, step: state.step, attrs };
          const weights = await putContentAddressed(store, TENSOR_PREFIX, snapshotToArrow({ ...meta, kind: 'weights', tensors: state.weights }), '.arrow', { signal });
          const optimizer = await putContentAddressed(store, TENSOR_PREFIX, snapshotToArrow({ ...meta, kind: 'optimizer', tensors: state.optimizer }), '.arrow', { signal });
          const lineage = { epoch: state.epoch, step: state.step, model: run.model, seed: run.seed, training: run.training, backend };
          await recordLineage(store, input, weights, 'snapshot', inputs, lineage, signal);
          await recordLineage(store, input, optimizer, 'optimizer-state', inputs, lineage, signal);
          const checkpoint: Checkpoint = {
            runId,
            epoch: state.epoch,
            step: state.step,
            weights: { ...weights, epoch: state.epoch, step: state.step },
            optimizer,
            rng: state.rng,
            history,
          };
          await putJson(store, checkpointKey(runId, state.epoch), checkpoint, signal);
          checkpointEpoch = state.epoch;
          beat();
        };

        if (resume && resume.epoch >= epochs) {
          tensorsToModel(model, resume.weights);
        } else {
          await train({
            model,
            data: { train: data.train, val: data.val, inputShape: data.def.inputShape, numClasses: data.def.numClasses },
            epochs,
            batchSize,
            optimizer: run.training.optimizer,
            init: run.training.init,
            seed: run.seed,
            resume,
            signal,
            onEpoch: saveCheckpoint,
            onBatch: (epoch, batch, batches) => {
              current = { epoch, batch, batches };
              beat();
            },
          });
        }
        const test = await evaluate(model, data.test, batchSize, signal);

        const snapshots: SnapshotRef[] = (await listCheckpoints(store, runId, signal))
          .filter((cp) => cp.epoch <= epochs)
          .map((cp) => cp.weights);
        const attemptKeys = await store.list(`${runPrefix(runId)}/attempts/`, { signal });
        const attempts: AttemptRecord[] = [];
        for (const key of attemptKeys) attempts.push(await getJson<AttemptRecord>(store, key, { signal }));
        return { runId, backend, snapshots, final: snapshots.at(-1)!, history, test, attempts };
      } finally {
        model.dispose();
      }
    } catch (err) {
      throw classify(err);
    } finally {
      clearInterval(ticker);
    }
  };
}
