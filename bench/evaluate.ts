/**
 * Evaluation on the native backend: the training loop's `evaluate` with the model's eager layers against
 * the same function in a graph trainer's session (the step graph's inference-mode forward pass), on an
 * MLP (one hidden layer of 32, the tiny runs of bench:orchestration), LeNet-5 and a CNN with batch norm.
 * The two are interleaved in one process, the first round discarded as warm-up.
 *
 * Run: npm run bench:evaluate [-- --rounds R]   (node --import tsx bench/evaluate.ts)
 * Prints milliseconds per evaluation of each split both ways, their ratio, and the loss and accuracy each
 * gives (the same weights: they agree to float32 rounding).
 */
import { parseArgs } from 'node:util';
import { selectBackend } from '../ml/backend.js';
import { createGraphTrainer } from '../ml/graph/trainer.js';
import { buildModel } from '../ml/models/registry.js';
import { initializeWeights } from '../ml/train/init.js';
import { evaluate } from '../ml/train/loop.js';
import { createOptimizer } from '../ml/train/optimizers.js';
import { modelVariables } from '../ml/train/weights.js';

const BATCH = 64;
const CLASSES = 10;

interface Case {
  name: string;
  spec: { name: string; args: Record<string, unknown> };
  inputShape: [number, number, number];
  /** Examples in the split. */
  n: number;
  /** Evaluations per round and mode. */
  reps: number;
}

const CASES: Case[] = [
  { name: 'MLP (32), 25 examples', spec: { name: 'mlp', args: { hidden: [32] } }, inputShape: [28, 28, 1], n: 25, reps: 200 },
  { name: 'MLP (32), 231 examples', spec: { name: 'mlp', args: { hidden: [32] } }, inputShape: [28, 28, 1], n: 231, reps: 100 },
  { name: 'LeNet-5, 6000 examples', spec: { name: 'lenet5', args: {} }, inputShape: [28, 28, 1], n: 6000, reps: 3 },
  { name: 'CNN with batch norm, 2000 examples 32x32x3', spec: { name: 'cnn', args: { batchNorm: true } }, inputShape: [32, 32, 3], n: 2000, reps: 2 },
];

/** A deterministic split in [0, 1) with labels cycling through the classes. */
function split(c: Case) {
  const size = c.inputShape[0] * c.inputShape[1] * c.inputShape[2];
  const x = new Float32Array(c.n * size);
  for (let i = 0; i < x.length; i++) x[i] = ((i * 2654435761) % 1000) / 1000;
  return { x, y: Int32Array.from({ length: c.n }, (_, i) => i % CLASSES), n: c.n };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '6' } } });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 2) throw new Error(`--rounds: expected an integer >= 2, found ${JSON.stringify(values.rounds)}`);
  // Graph sessions exist on the native backend only: this throws, saying why, where it is not built.
  const backend = await selectBackend('tensorflow');
  console.log(`evaluate: eager layers against the step graph's session, batch ${BATCH}, backend ${backend}, ${rounds - 1} rounds after a warm-up`);
  for (const c of CASES) {
    const model = buildModel(c.spec, { inputShape: c.inputShape, numClasses: CLASSES });
    initializeWeights(model, 1);
    const spec = { name: 'sgd' as const, learningRate: 0.1 };
    const optimizer = createOptimizer(spec, modelVariables(model).filter((v) => v.trainable));
    const choice = createGraphTrainer({ model, optimizer: spec });
    if (!('trainer' in choice)) throw new Error(`${c.name}: expected a graph form, found none: ${choice.unsupported}`);
    const graph = choice.trainer;
    try {
      graph.loadFrom(model, optimizer);
      const data = split(c);
      const ms = { eager: 0, graph: 0 };
      const last: Record<keyof typeof ms, { loss: number; accuracy: number }> = { eager: { loss: NaN, accuracy: NaN }, graph: { loss: NaN, accuracy: NaN } };
      for (let round = 0; round < rounds; round++) {
        for (const mode of ['eager', 'graph'] as const) {
          const t0 = performance.now();
          for (let i = 0; i < c.reps; i++) last[mode] = await evaluate(model, data, BATCH, undefined, mode === 'graph' ? graph : undefined);
          if (round > 0) ms[mode] += (performance.now() - t0) / c.reps / (rounds - 1);
        }
      }
      const figures = (mode: keyof typeof ms) => `${ms[mode].toFixed(2).padStart(8)} ms (loss ${last[mode].loss.toFixed(6)}, accuracy ${last[mode].accuracy.toFixed(4)})`;
      console.log(`  ${c.name}`);
      console.log(`    eager layers   ${figures('eager')}`);
      console.log(`    graph session  ${figures('graph')}   ${(ms.eager / ms.graph).toFixed(2)}x faster`);
    } finally {
      graph.dispose();
      optimizer.dispose();
      model.dispose();
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
