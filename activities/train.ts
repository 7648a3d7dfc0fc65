/**
 * The `train` activity: trains one run, storing a checkpoint (weights snapshot, optimizer state when the
 * optimizer has any, and a small JSON index) at epoch 0 and at every snapshot epoch.
 *
 * A retry, after a crash or a lost worker, resumes from the newest stored checkpoint with the optimizer
 * state and the epoch-derived shuffling order, so it ends with exactly the weights of an uninterrupted
 * run. Each attempt leaves a record of where it started (`attempts/attempt-NNNN.json`, numbered in the
 * order they started). Progress is heartbeated every batch; the activity's cancellation reaches the
 * training loop and every store call.
 *
 * Early stopping: every checkpoint after epoch 0 (the initial weights are never the best) also records
 * early stopping's state, with the best epoch's weights stored as a snapshot object (the same object as
 * that epoch's snapshot when it is a snapshot epoch), and the epoch at which training stops is always
 * checkpointed, so a retry continues or stays stopped exactly. `snapshots` lists the trajectory up to
 * the stop; `final` is the best epoch's weights.
 *
 * Given the training's reuse key and code version, a finished training is recorded under the key
 * (activities/reuse.ts) as the activity's last step, so later experiments can reuse it.
 *
 * Divergence (a non-finite loss) is a result, not a failure: the run returns status "diverged" with the
 * epoch, its snapshots and `final` are those stored before it, and its test metrics are final's.
 */
import { hostname } from 'node:os';
import { activityInfo, Context } from '@temporalio/activity';
import type { ObjectRef, SnapshotRef } from '../artifacts/refs.js';
import { getSnapshot, snapshotToArrow, type NamedTensor } from '../artifacts/snapshot.js';
import { ObjectConflictError, putContentAddressed, type ArtifactStore } from '../artifacts/store.js';
import { selectBackend, type BackendPreference } from '../ml/backend.js';
import { buildModel } from '../ml/models/registry.js';
import { evaluate, train, type EpochMetrics, type TrainState } from '../ml/train/loop.js';
import { tensorsToModel } from '../ml/train/weights.js';
import { loadRunData } from './data.js';
import type { DecodedCacheOptions } from './decoded-cache.js';
import { classify, failForGood } from './errors.js';
import { recordLineage } from './lineage.js';
import { canonicalJson, rememberTraining } from './reuse.js';
import { getJson, putJson } from './json.js';
import { attemptKey, checkpointKey, runPrefix, TENSOR_PREFIX } from './keys.js';
import type { AttemptRecord, Checkpoint, EpochRecord, TrainHeartbeat, TrainInput, TrainResult } from './types.js';

export interface TrainDeps {
  store: ArtifactStore;
  /** The backend to train on; `cpu` when not given. */
  backend?: BackendPreference;
  /** Where this machine keeps decoded datasets between processes; none when omitted. */
  decodedCache?: DecodedCacheOptions;
}

/** What earlier attempts left under the run, from one listing: its checkpoints (read, by epoch) and the keys of its attempt records. */
async function readRunState(store: ArtifactStore, runId: string, signal: AbortSignal): Promise<{ checkpoints: Checkpoint[]; attempts: string[] }> {
  const prefix = runPrefix(runId);
  const keys = await store.list(`${prefix}/`, { signal });
  const checkpoints: Checkpoint[] = [];
  for (const key of keys) {
    if (key.startsWith(`${prefix}/checkpoints/`) && key.endsWith('.json')) checkpoints.push(await getJson<Checkpoint>(store, key, { signal }));
  }
  return { checkpoints: checkpoints.sort((a, b) => a.epoch - b.epoch), attempts: keys.filter((k) => k.startsWith(`${prefix}/attempts/`)) };
}

async function loadTensors(store: ArtifactStore, ref: { key: string; sha256: string }, signal: AbortSignal): Promise<NamedTensor[]> {
  return (await getSnapshot(store, ref, signal)).tensors;
}

async function stateFromCheckpoint(store: ArtifactStore, cp: Checkpoint, signal: AbortSignal): Promise<TrainState> {
  const es = cp.earlyStopping;
  return {
    epoch: cp.epoch,
    step: cp.step,
    weights: await loadTensors(store, cp.weights, signal),
    optimizer: cp.optimizer ? await loadTensors(store, cp.optimizer, signal) : [],
    rng: cp.rng,
    ...(es
      ? {
          earlyStopping: {
            bestEpoch: es.bestEpoch,
            bestStep: es.bestStep,
            bestValLoss: es.bestValLoss,
            wait: es.wait,
            stopped: es.stopped,
            best: await loadTensors(store, es.best, signal),
          },
        }
      : {}),
  };
}

/**
 * Stores an attempt record under the run's next free number. Temporal's attempt number does not do: a
 * local activity replayed after its worker died counts from 1 again, and a run that failed in its pack's
 * activity is then tried by the run's own.
 */
async function recordAttempt(store: ArtifactStore, runId: string, record: AttemptRecord, stored: number, signal: AbortSignal): Promise<void> {
  for (let n = stored + 1; ; n++) {
    try {
      await putJson(store, attemptKey(runId, n), record, signal);
      return;
    } catch (err) {
      // Another attempt took the number meanwhile (a duplicate after a timeout): take the next.
      if (!(err instanceof ObjectConflictError) || n > stored + 8) throw err;
    }
  }
}

/**
 * Stores the checkpoint of an epoch; returns the one that stands. Another attempt of the run may have
 * stored this epoch's meanwhile: a duplicate after a heartbeat timeout whose worker had not stopped yet
 * (a server out of reach, say). Its training state then stands when it is this one's, since only the
 * history's wall-clock timings differ between them; any other state means the attempts diverged, and this
 * one gives way with a retryable error, so the next attempt resumes from the stored checkpoint.
 */
async function storeCheckpoint(store: ArtifactStore, checkpoint: Checkpoint, signal: AbortSignal): Promise<Checkpoint> {
  const key = checkpointKey(checkpoint.runId, checkpoint.epoch);
  try {
    await putJson(store, key, checkpoint, signal);
    return checkpoint;
  } catch (err) {
    if (!(err instanceof ObjectConflictError)) throw err;
  }
  const stored = await getJson<Checkpoint>(store, key, { signal });
  const state = ({ history: _history, ...rest }: Checkpoint) => canonicalJson(rest);
  if (state(stored) === state(checkpoint)) return stored;
  throw new Error(`${key}: another attempt of this run stored this epoch's checkpoint meanwhile, with another training state; the next attempt resumes from it`);
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
    // A local activity has no heartbeats (its workflow task is its liveness); it resumes from the store.
    const sendBeat = info.isLocal ? () => undefined : () => ctx.heartbeat(details);
    const ticker = setInterval(sendBeat, 1000);
    try {
      const backend = await selectBackend(deps.backend ?? 'cpu', (note) => ctx.log.info(note));
      const data = await loadRunData(store, run.dataset, input.data, { signal, runSeed: run.seed, decodedCache: deps.decodedCache });
      const model = buildModel(run.model, { inputShape: data.def.inputShape, numClasses: data.def.numClasses });
      try {
        // The store, not the heartbeat, is the truth about what was saved: a heartbeat may be lost
        // with the worker, a stored checkpoint is not. The heartbeat only tells us what to expect.
        const previous = before?.checkpointEpoch;
        // Every checkpoint of the run, those this attempt writes included, so the snapshots are listed
        // at the end without reading them back.
        const { checkpoints, attempts: earlierAttempts } = await readRunState(store, runId, signal);
        const latest = checkpoints.at(-1);
        if (previous !== undefined && (latest?.epoch ?? -1) < previous) {
          ctx.log.warn('heartbeat names a checkpoint the store does not have', { previous, found: latest?.epoch });
        }
        const resume = latest ? await stateFromCheckpoint(store, latest, signal) : undefined;
        const attempt: AttemptRecord = {
          attempt: info.attempt,
          activity: info.activityType,
          startedFromEpoch: resume?.epoch ?? 0,
          resumed: resume !== undefined,
          startedAt: new Date().toISOString(),
          worker: `${hostname()}:${process.pid}`,
          backend,
        };
        await recordAttempt(store, runId, attempt, earlierAttempts.length, signal);

        const { epochs, batchSize, snapshotEvery } = run.training;
        // Weights to start from: only needed for a fresh start, and checked before any training.
        const from = run.training.init?.from;
        let initialWeights: { tensors: NamedTensor[]; layers?: string[] } | undefined;
        let fromRef: ObjectRef | undefined;
        if (from?.run !== undefined && !resume) {
          const key = checkpointKey(from.run, from.epoch!);
          if (!(await store.head(key, { signal }))) {
            throw failForGood('InvalidExperiment', `training.init.from: expected a checkpoint of run "${from.run}" at epoch ${from.epoch}, found no object at "${key}"`);
          }
          fromRef = (await getJson<Checkpoint>(store, key, { signal })).weights;
          initialWeights = { tensors: await loadTensors(store, fromRef, signal), ...(from.layers ? { layers: from.layers } : {}) };
        } else if (from?.key !== undefined && !resume) {
          fromRef = await store.head(from.key, { signal });
          if (!fromRef) throw failForGood('InvalidExperiment', `training.init.from.key: expected a stored snapshot, found no object at "${from.key}"`);
          if (from.sha256 && fromRef.sha256 !== from.sha256) {
            throw failForGood('InvalidExperiment', `training.init.from.sha256: expected ${from.sha256}, the object at "${from.key}" has ${fromRef.sha256}`);
          }
          initialWeights = { tensors: await loadTensors(store, fromRef, signal), ...(from.layers ? { layers: from.layers } : {}) };
        }
        // What every snapshot of this attempt derives from: the dataset files and, when resuming, the checkpoint.
        const inputs = [...input.data.files, ...(fromRef ? [fromRef] : []), ...(latest ? [latest.weights] : []), ...(latest?.optimizer ? [latest.optimizer] : [])];
        let history: EpochRecord[] = latest?.history ?? [];
        let checkpointEpoch = latest?.epoch ?? -1;
        let current = { epoch: resume?.epoch ?? 0, batch: 0, batches: 0 };
        const beat = () => {
          details = { ...current, epochs, checkpointEpoch };
          sendBeat();
        };

        const attrs = { model: run.model.name, dataset: run.dataset.name, seed: String(run.seed) };
        const storeWeights = async (epoch: number, step: number, tensors: NamedTensor[]): Promise<SnapshotRef> => {
          const bytes = snapshotToArrow({ runId, epoch, step, attrs, kind: 'weights', tensors });
          return { ...(await putContentAddressed(store, TENSOR_PREFIX, bytes, '.arrow', { signal })), epoch, step };
        };
        // The best weights are stored once per best epoch, not at every checkpoint that still names them.
        let bestRef: SnapshotRef | undefined = latest?.earlyStopping?.best;

        // A checkpoint is written while training goes on: the next epoch does not wait for the store (a
        // large model's snapshots take seconds to reach S3). One is in flight at a time, its index is
        // written after its snapshots (a retry finds only complete checkpoints), and the attempt waits
        // for it before it lists its snapshots or ends, failed or not.
        let writing: Promise<void> = Promise.resolve();
        const saveCheckpoint = async (state: TrainState, metrics: EpochMetrics) => {
          await writing;
          history = [...history.filter((h) => h.epoch < state.epoch), { ...metrics }];
          current = { epoch: state.epoch, batch: 0, batches: current.batches };
          // The stopping epoch is always stored: a retry must find that training is over.
          if (state.epoch % snapshotEvery !== 0 && state.epoch !== epochs && !state.earlyStopping?.stopped) return beat();
          writing = writeCheckpoint(state, history);
          // A failed write surfaces where `writing` is awaited next, not as an unhandled rejection.
          writing.catch(() => undefined);
        };
        /** Rethrows `err` once the checkpoint in flight has settled: no write of this attempt outlives it. */
        const settleWriting = async (err: unknown): Promise<never> => {
          await writing.catch(() => undefined);
          throw err;
        };
        const writeCheckpoint = async (state: TrainState, historySoFar: EpochRecord[]) => {
          const es = state.earlyStopping;
          const meta = { runId, epoch: state.epoch, step: state.step, attrs };
          const weights = await storeWeights(state.epoch, state.step, state.weights);
          // An optimizer without state (SGD without momentum) stores nothing: a sweep of tiny runs would
          // otherwise write an empty snapshot and its manifest at every checkpoint.
          const optimizer = state.optimizer.length
            ? await putContentAddressed(store, TENSOR_PREFIX, snapshotToArrow({ ...meta, kind: 'optimizer', tensors: state.optimizer }), '.arrow', { signal })
            : undefined;
          const lineage = {
            epoch: state.epoch, step: state.step, model: run.model, dataset: run.dataset.name, seed: run.seed, training: run.training, backend,
            ...(input.configHash ? { configHash: input.configHash } : {}),
          };
          await recordLineage(store, input, weights, 'snapshot', inputs, lineage, signal);
          if (es && bestRef?.epoch !== es.bestEpoch) {
            if (es.bestEpoch === state.epoch) {
              bestRef = weights;
            } else {
              // The best epoch fell between snapshot epochs: its weights are stored now, from the state.
              bestRef = await storeWeights(es.bestEpoch, es.bestStep, es.best);
              await recordLineage(store, input, bestRef, 'snapshot', inputs, { ...lineage, epoch: es.bestEpoch, step: es.bestStep }, signal);
            }
          }
          if (optimizer) await recordLineage(store, input, optimizer, 'optimizer-state', inputs, lineage, signal);
          const checkpoint: Checkpoint = {
            runId,
            epoch: state.epoch,
            step: state.step,
            weights,
            ...(optimizer ? { optimizer } : {}),
            rng: state.rng,
            history: historySoFar,
            ...(es
              ? {
                  earlyStopping: {
                    bestEpoch: es.bestEpoch, bestStep: es.bestStep, bestValLoss: es.bestValLoss, wait: es.wait, stopped: es.stopped,
                    best: bestRef!,
                  },
                }
              : {}),
          };
          checkpoints.push(await storeCheckpoint(store, checkpoint, signal));
          checkpointEpoch = state.epoch;
          beat();
        };

        // Also when the checkpoint is already at the last epoch or stopped: the loop then trains no
        // further, and under early stopping leaves the best weights in the model.
        const trained = await train({
          model,
          data: { train: data.train, val: data.val, inputShape: data.def.inputShape, numClasses: data.def.numClasses },
          epochs,
          batchSize,
          optimizer: run.training.optimizer,
          init: run.training.init,
          earlyStopping: run.training.earlyStopping,
          freeze: run.training.freeze,
          augment: run.training.augment,
          initialWeights,
          seed: run.seed,
          resume,
          signal,
          // Evaluated as training ends, while the last checkpoint is written (a diverged run's, below).
          test: data.test,
          onEpoch: saveCheckpoint,
          onBatch: (epoch, batch, batches) => {
            current = { epoch, batch, batches };
            beat();
          },
        }).catch(settleWriting);
        const { outcome, engine } = trained;
        await writing;
        const snapshots: SnapshotRef[] = checkpoints.filter((cp) => cp.epoch <= outcome.epoch).map((cp) => cp.weights);
        let final = snapshots.at(-1)!;
        if (outcome.status === 'diverged') {
          // The model holds the broken weights; the test metrics are those of the last stored ones.
          tensorsToModel(model, await loadTensors(store, final, signal));
        } else if (outcome.bestEpoch !== undefined) {
          final = bestRef!;
        }
        const test = trained.test ?? (await evaluate(model, data.test, batchSize, signal));
        // The earlier attempts' records, then this one's. A duplicate of this attempt that started after it
        // (after a timeout) is not listed: only one of the two results is kept.
        const attempts: AttemptRecord[] = [];
        for (const key of earlierAttempts) attempts.push(await getJson<AttemptRecord>(store, key, { signal }));
        attempts.push(attempt);
        const result: TrainResult = {
          runId,
          backend,
          engine,
          status: outcome.status,
          ...(outcome.status === 'stopped-early' ? { stoppedAtEpoch: outcome.epoch } : {}),
          ...(outcome.status === 'diverged' ? { divergedAtEpoch: outcome.divergedAtEpoch } : {}),
          ...(outcome.status !== 'diverged' && outcome.bestEpoch !== undefined ? { bestEpoch: outcome.bestEpoch } : {}),
          snapshots,
          final,
          data: data.record,
          history,
          test,
          attempts,
        };
        if (input.configHash && input.codeVersion) {
          await rememberTraining(store, { experimentId: input.experimentId, runId, configHash: input.configHash, codeVersion: input.codeVersion, train: result }, signal);
        }
        return result;
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
