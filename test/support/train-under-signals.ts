/**
 * The child process of test/unit/native-binding.test.ts: trains an MLP (28x28 inputs, 32 hidden, batch
 * 64, as bench:orchestration's runs) on the native backend, one epoch at a time, alternating graph and
 * eager steps, while the test sends it SIGUSR2 and it spawns short-lived children of its own (each exit
 * is a SIGCHLD). Prints "ready" once the backend is up, then trains until it has handled the signals, seen
 * the children exit and trained the epochs its goal asks for (argv[3]), or until a deadline of argv[2]
 * seconds passes (which the test counts as a failure), then prints one JSON line: the signals it handled,
 * children it saw exit, epochs and the engines that ran; exits when its stdin closes.
 */
import { spawn } from 'node:child_process';
import { buildModel } from '../../ml/models/registry.js';
import { train } from '../../ml/train/loop.js';
import { activateNativeBackend, randomUniformValues } from './backends.js';

const seconds = Number(process.argv[2] ?? 60);
/** What to reach (argv[3], JSON): { signals, children, epochs }. */
const GOAL = JSON.parse(process.argv[3] ?? '{"signals":500,"children":100,"epochs":4}') as { signals: number; children: number; epochs: number };
let signals = 0;
process.on('SIGUSR2', () => void signals++);

await activateNativeBackend();
const inputShape: [number, number, number] = [28, 28, 1];
const n = 512;
const split = (count: number, seed: number) => ({
  x: randomUniformValues([count, ...inputShape], seed),
  y: Int32Array.from({ length: count }, (_, i) => (i * 7 + seed) % 10),
  n: count,
});
const data = { train: split(n, 1), val: split(64, 2), inputShape, numClasses: 10 };
console.log('ready');

let children = 0;
const spawner = setInterval(() => void spawn('true').once('exit', () => void children++), 5);
const deadline = Date.now() + seconds * 1000;
const engines = new Set<string>();
let epochs = 0;
const done = () => signals >= GOAL.signals && children >= GOAL.children && epochs >= GOAL.epochs;
while (!done() && Date.now() < deadline) {
  const model = buildModel({ name: 'mlp', args: { hidden: [32] } }, { inputShape, numClasses: 10 });
  const { engine } = await train({
    model,
    data,
    epochs: 1,
    batchSize: 64,
    optimizer: { name: 'sgd', learningRate: 0.05, momentum: 0.9 },
    seed: epochs,
    engine: epochs % 2 === 0 ? 'auto' : 'eager',
    onEpoch: async () => undefined,
  });
  engines.add(engine.mode);
  model.dispose();
  epochs++;
}
clearInterval(spawner);
console.log(JSON.stringify({ signals, children, epochs, engines: [...engines].sort() }));
// Exits when the test, having stopped signalling, closes stdin: a signal during exit would kill it.
process.stdin.resume().once('end', () => process.exit(0));
