/**
 * What a hand-off between the Temporal server and a worker costs, with no work on either side: the
 * floor under every paramtrail run. Measured on a dev server started with paramtrail's dynamic
 * configuration (infra/temporal.ts) against one started with the server's defaults, in the same run.
 *
 * Run: npm run bench:handoff [-- --activities 200 --children 200]
 *
 * Rows: one workflow running `--activities` no-op activities one after another (ms per activity);
 * `--children` child workflows of three no-op steps each, 16 at a time, the steps as activities on the
 * task queue and as local activities (ms of wall time and of server and worker CPU per child).
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { DEV_SERVER_DYNAMIC_CONFIG, startTemporalDevServer } from '../infra/temporal.js';
import { cpuSeconds } from './cpu.js';

const WORKFLOWS = fileURLToPath(new URL('./handoff/workflows.ts', import.meta.url));
const TASK_QUEUE = 'handoff';

function options() {
  const { values } = parseArgs({ options: { activities: { type: 'string', default: '200' }, children: { type: 'string', default: '200' } } });
  const int = (name: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: expected a positive integer, found ${JSON.stringify(v)}`);
    return n;
  };
  return { activities: int('activities', values.activities), children: int('children', values.children) };
}

interface Row {
  label: string;
  perActivityMs: number;
  children: Array<{ local: boolean; wallMs: number; serverMs: number; workerMs: number }>;
}

async function measure(label: string, dynamicConfig: Record<string, number>, o: ReturnType<typeof options>): Promise<Row> {
  const server = await startTemporalDevServer({ env: process.env, headless: true, dynamicConfig });
  const connection = await Connection.connect({ address: server.address });
  let nativeConnection: NativeConnection | undefined;
  try {
    const client = new Client({ connection });
    nativeConnection = await NativeConnection.connect({ address: server.address });
    const worker = await Worker.create({
      connection: nativeConnection,
      taskQueue: TASK_QUEUE,
      workflowsPath: WORKFLOWS,
      activities: { noop: async () => undefined },
    });
    return await worker.runUntil(async () => {
      const run = (type: string, id: string, wfArgs: unknown[]) => client.workflow.execute(type, { taskQueue: TASK_QUEUE, workflowId: id, args: wfArgs });
      await run('fanOut', 'warm-up', [16, 1, false, 16]);
      let t0 = performance.now();
      await run('sequence', 'sequence', [o.activities]);
      const perActivityMs = (performance.now() - t0) / o.activities;
      const children: Row['children'] = [];
      for (const local of [false, true]) {
        const s0 = cpuSeconds(server.pid);
        const w0 = process.cpuUsage();
        t0 = performance.now();
        await run('fanOut', `fan-out-${local}`, [o.children, 3, local, 16]);
        const wall = performance.now() - t0;
        const w = process.cpuUsage(w0);
        children.push({
          local,
          wallMs: wall / o.children,
          serverMs: ((cpuSeconds(server.pid) - s0) * 1000) / o.children,
          workerMs: (w.user + w.system) / 1000 / o.children,
        });
      }
      return { label, perActivityMs, children };
    });
  } finally {
    await nativeConnection?.close();
    await connection.close();
    await server.stop();
  }
}

async function main(): Promise<void> {
  const o = options();
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const rows = [await measure('server defaults', {}, o), await measure("paramtrail's dev server", DEV_SERVER_DYNAMIC_CONFIG, o)];
  console.log(`handoff: Temporal dev server (one history shard), one worker in this process; ${o.activities} sequential activities, ${o.children} children of 3 steps, 16 at a time`);
  for (const r of rows) {
    console.log(`  ${r.label.padEnd(24)} sequential no-op activity ${r.perActivityMs.toFixed(1).padStart(6)} ms`);
    for (const c of r.children) {
      const steps = c.local ? 'local activities' : 'task-queue activities';
      console.log(
        `  ${''.padEnd(24)} child of 3 ${steps.padEnd(21)} wall ${c.wallMs.toFixed(1).padStart(5)} ms, CPU server ${c.serverMs.toFixed(1).padStart(5)} ms + worker ${c.workerMs.toFixed(1).padStart(5)} ms`,
      );
    }
  }
  const [before, after] = rows as [Row, Row];
  console.log(`  sequential activities: ${(before.perActivityMs / after.perActivityMs).toFixed(2)}x faster with paramtrail's configuration`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
