/**
 * Graph-mode training on the native 'tensorflow' backend: the whole step of a model (forward, loss,
 * backward, batch-norm statistics, optimizer update) runs as one TensorFlow session call, where eager
 * training runs one TensorFlow op per kernel (some 460 for a small ResNet). TensorFlow optimises the
 * graph once (grappler, oneDNN fusions), as tf.keras does with a tf.function step.
 *
 * The graph (ml/graph/step.ts) is written as a SavedModel into a temporary folder, loaded through
 * tfjs-node's binding (TF_LoadSessionFromSavedModel) and the folder removed at once: the session keeps
 * the graph and its variables. Weights and optimizer state move in with load() and out with read(), in
 * exactly the forms of ml/train/weights.ts (modelToTensors) and ml/train/optimizers.ts (state()), so the
 * eager model and optimizer can be brought up to date whenever something else needs them.
 *
 * A disposed trainer's session is kept for the next trainer of the same graph (the same bytes: model,
 * frozen layers and optimizer), up to IDLE_SESSIONS per process: a sweep of one architecture loads and
 * optimises its step graph once per worker, not once per run. Reuse cannot change a result: load()
 * assigns every variable of the graph, and the graph has no other state (no random ops).
 *
 * Called by ml/train/loop.ts (when the backend is 'tensorflow' and the model is supported) and
 * bench/train.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { sha256Hex } from '../../artifacts/hash.js';
import type { NamedTensor } from '../../artifacts/snapshot.js';
import { NATIVE_BACKEND } from '../backends/native.js';
import type { Optimizer, OptimizerSpec } from '../train/optimizers.js';
import { modelToTensors, tensorsToModel } from '../train/weights.js';
import { UnsupportedGraphError, buildStepGraph, type GraphVariable, type StepGraph } from './step.js';

/** The parts of tfjs-node's backend that load and run a SavedModel session. */
interface SessionBackend {
  loadSavedModelMetaGraph(path: string, tags: string): number;
  runSavedModel(id: number, inputs: tf.Tensor[], infos: Array<{ name: string }>, outputs: string[]): tf.Tensor[];
  deleteSavedModel(id: number): void;
}

/** Sessions kept loaded, unused, per process (each holds its graph's variables: weights and optimizer slots). */
const IDLE_SESSIONS = 2;

interface IdleSession {
  key: string;
  backend: SessionBackend;
  session: number;
}

/** Unused sessions, oldest first. */
const idle: IdleSession[] = [];

/** How many sessions are kept unused for a later trainer of their graph. */
export function idleGraphSessionCount(): number {
  return idle.length;
}

/** Closes every unused session: their memory goes back, and the next trainer of each graph loads it anew. */
export function closeIdleGraphSessions(): void {
  for (const s of idle.splice(0)) s.backend.deleteSavedModel(s.session);
}

const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.999;
const MAX_EXACT_STEP = 2 ** 24;

const tensorName = (node: string) => (node.includes(':') ? node : `${node}:0`);
const describe = (t: { layer: string; name: string; shape: readonly number[] }) => `${t.layer}/${t.name} [${t.shape.join(', ')}]`;

export interface GraphTrainerArgs {
  /** The model, with layers already frozen as the run wants (their `trainable` decides what learns). */
  model: tfl.LayersModel;
  optimizer: OptimizerSpec;
}

/** The trainer, or why the model or options cannot train as a graph (train eagerly then). */
export type GraphTrainerChoice = { trainer: GraphTrainer } | { unsupported: string };

/**
 * A GraphTrainer for `args`, or the reason there is none: the active backend is not 'tensorflow', or a
 * layer or option has no graph form (ml/graph/step.ts lists what has).
 */
export function createGraphTrainer(args: GraphTrainerArgs): GraphTrainerChoice {
  if (tf.getBackend() !== NATIVE_BACKEND) return { unsupported: `graph mode needs the '${NATIVE_BACKEND}' backend, found '${tf.getBackend()}'` };
  let graph: StepGraph;
  try {
    graph = buildStepGraph(args.model, args.optimizer);
  } catch (err) {
    if (err instanceof UnsupportedGraphError) return { unsupported: err.message };
    throw err;
  }
  try {
    return { trainer: new GraphTrainer(graph, args.optimizer, tf.backend() as unknown as SessionBackend) };
  } catch (err) {
    // TensorFlow refused the graph (an op or attribute this library lacks): eager training still works.
    return { unsupported: `TensorFlow did not load the step graph: ${(err as Error).message}` };
  }
}

export class GraphTrainer {
  private readonly session: number;
  private readonly key: string;
  /** Whether the session was an unused one of an earlier trainer of the same graph. */
  readonly reused: boolean;
  /** Adam's step count (its bias corrections are computed from it in float64, as the eager optimizer does). */
  private adamStep = 0;
  private loaded = false;
  private disposed = false;

  constructor(
    private readonly graph: StepGraph,
    private readonly spec: OptimizerSpec,
    private readonly backend: SessionBackend,
  ) {
    this.key = sha256Hex(graph.bytes);
    const i = idle.findIndex((s) => s.key === this.key && s.backend === backend);
    this.reused = i >= 0;
    if (this.reused) {
      this.session = idle.splice(i, 1)[0]!.session;
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'paramtrail-graph-'));
    try {
      writeFileSync(join(dir, 'saved_model.pb'), graph.bytes);
      // No variables/ folder: the loader skips restoring, and load() assigns every variable instead.
      this.session = backend.loadSavedModelMetaGraph(dir, 'serve');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Nodes of the step graph. */
  get nodeCount(): number {
    return this.graph.nodeCount;
  }

  private run(inputs: Array<[string, tf.Tensor]>, outputs: string[]): tf.Tensor[] {
    if (this.disposed) throw new Error('graph trainer: used after dispose()');
    return this.backend.runSavedModel(
      this.session,
      inputs.map(([, t]) => t),
      inputs.map(([name]) => ({ name: tensorName(name) })),
      outputs.map(tensorName),
    );
  }

  /** Refuses to train or read before load(): a reused session still holds the variables of the trainer before. */
  private requireLoaded(what: string): void {
    if (!this.loaded) throw new Error(`graph trainer: ${what}() before load()`);
  }

  /** The session's variables: the model's weights as modelToTensors gives them, then the optimizer's state() (any Adam step first). */
  load(weights: readonly NamedTensor[], optimizerState: readonly NamedTensor[]): void {
    const vars = this.graph.variables;
    let slots = optimizerState;
    if (this.spec.name === 'adam') {
      const step = optimizerState[0];
      if (!step || step.layer !== 'adam' || step.name !== 'step') throw new Error(`graph trainer: expected Adam state to start with adam/step, found ${step ? `${step.layer}/${step.name}` : 'nothing'}`);
      this.adamStep = step.values[0]!;
      slots = optimizerState.slice(1);
    }
    const given = [...weights, ...slots];
    if (given.length !== vars.length) {
      throw new Error(`graph trainer: expected ${vars.length} tensors (${vars.map(describe).join(', ')}), found ${given.length} (${given.map(describe).join(', ')})`);
    }
    const inputs = given.map((t, i): [string, tf.Tensor] => {
      const v = vars[i]!;
      if (t.layer !== v.layer || t.name !== v.name || t.shape.length !== v.shape.length || t.shape.some((d, j) => d !== v.shape[j])) {
        throw new Error(`graph trainer: tensor ${i}: expected ${describe(v)}, found ${describe(t)}`);
      }
      return [this.graph.names.load.feeds[i]!, tf.tensor(t.values, v.shape, 'float32')];
    });
    try {
      tf.dispose(this.run(inputs, [this.graph.names.load.done]));
      this.loaded = true;
    } finally {
      tf.dispose(inputs.map(([, t]) => t));
    }
  }

  /**
   * One training step on the batch `x` [B, H, W, C] float32 and labels `y` [B] int32 at learning rate
   * `lr`: the mean loss of the batch before the update and the number of examples it classified right.
   */
  step(x: tf.Tensor, y: tf.Tensor, lr: number): { loss: number; correct: number } {
    this.requireLoaded('step');
    if (!(lr >= 0 && Number.isFinite(lr))) throw new Error(`learning rate: expected a finite non-negative number, found ${lr}`);
    const { feeds, fetches } = this.graph.names;
    const scalars: tf.Tensor[] = [];
    const scalar = (v: number) => {
      const t = tf.scalar(v, 'float32');
      scalars.push(t);
      return t;
    };
    const inputs: Array<[string, tf.Tensor]> = [[feeds.x, x], [feeds.y, y], [feeds.lr, scalar(lr)]];
    if (feeds.lrWd) inputs.push([feeds.lrWd, scalar(lr * (this.spec.weightDecay ?? 0))]);
    if (feeds.bc1 && feeds.bc2) {
      if (this.adamStep + 1 >= MAX_EXACT_STEP) throw new Error(`Adam supports at most ${MAX_EXACT_STEP - 1} steps, found ${this.adamStep + 1}`);
      const step = this.adamStep + 1;
      inputs.push([feeds.bc1, scalar(1 - Math.pow(ADAM_BETA1, step))], [feeds.bc2, scalar(1 - Math.pow(ADAM_BETA2, step))]);
    }
    try {
      const [loss, correct] = this.run(inputs, [fetches.loss, fetches.correct]);
      const result = { loss: loss!.dataSync()[0]!, correct: correct!.dataSync()[0]! };
      tf.dispose([loss!, correct!]);
      if (this.spec.name === 'adam') this.adamStep += 1;
      return result;
    } finally {
      tf.dispose(scalars);
    }
  }

  /**
   * The logits [B, classes] of the batch `x` [B, H, W, C] float32 in inference mode, from the session's
   * current weights: what `model.apply(x, { training: false })` gives once readInto() has run.
   */
  logits(x: tf.Tensor): Float32Array {
    this.requireLoaded('logits');
    const [out] = this.run([[this.graph.names.feeds.x, x]], [this.graph.names.logits]);
    try {
      return out!.dataSync() as Float32Array;
    } finally {
      out!.dispose();
    }
  }

  /** The session's weights (modelToTensors' form) and optimizer state (the eager optimizer's state() form). */
  read(): { weights: NamedTensor[]; optimizer: NamedTensor[] } {
    this.requireLoaded('read');
    const vars = this.graph.variables;
    const outs = this.run([], this.graph.names.read);
    const tensors = outs.map((t, i): NamedTensor => {
      const v: GraphVariable = vars[i]!;
      return { layer: v.layer, name: v.name, shape: [...v.shape], values: (t.dataSync() as Float32Array).slice() };
    });
    tf.dispose(outs);
    const weights = tensors.slice(0, this.graph.modelVariableCount);
    const slots = tensors.slice(this.graph.modelVariableCount);
    const optimizer = this.spec.name === 'adam' ? [{ layer: 'adam', name: 'step', shape: [], values: Float32Array.of(this.adamStep) }, ...slots] : slots;
    return { weights, optimizer };
  }

  /** Copies the session's weights and optimizer state into the eager model and optimizer. */
  readInto(model: tfl.LayersModel, optimizer: Optimizer): void {
    const { weights, optimizer: state } = this.read();
    tensorsToModel(model, weights);
    optimizer.loadState(state);
  }

  /** Loads the eager model's weights and optimizer's state into the session. */
  loadFrom(model: tfl.LayersModel, optimizer: Optimizer): void {
    this.load(modelToTensors(model), optimizer.state());
  }

  /** Gives the session up: kept for the next trainer of this graph, closing the oldest unused one beyond IDLE_SESSIONS. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    idle.push({ key: this.key, backend: this.backend, session: this.session });
    for (const s of idle.splice(0, Math.max(0, idle.length - IDLE_SESSIONS))) s.backend.deleteSavedModel(s.session);
  }
}
