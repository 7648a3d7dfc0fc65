/**
 * A report input built from figures Vega really renders, with a run whose name and config try to
 * break out of the page: shared by the HTML report's unit test and its browser test.
 */
import type { DistanceRow } from '../../artifacts/table.js';
import { accuracyFigureSpec, distanceFigureSpec } from '../../report/figures.js';
import type { HtmlReportInput } from '../../report/html.js';
import { renderSvg } from '../../report/render.js';

export const HOSTILE_NAME = '<script>window.__pwned = 1</script>"&\'lenet';
export const HOSTILE_CONFIG = '</pre><img src=x onerror="window.__pwned=2"><pre>';

function rows(runId: string): DistanceRow[] {
  const out: DistanceRow[] = [];
  for (let epoch = 1; epoch <= 3; epoch++) {
    for (const against of ['init', 'previous'] as const) {
      ['conv1', 'conv2', 'dense1', 'dense2'].forEach((layer, depth) => {
        const distance = (epoch * (depth + 1)) / (against === 'init' ? 1 : epoch);
        const params = 100 * (depth + 1);
        out.push({ runId, epoch, against, referenceEpoch: against === 'init' ? 0 : epoch - 1, p: '2', layer, depth, params, distance, meanDistance: distance / params, relative: distance / 10, changed: 1 });
      });
    }
  }
  return out;
}

export async function sampleReportInput(): Promise<HtmlReportInput> {
  const names = ['mlp--fashion-mnist--s1', HOSTILE_NAME];
  const history = names.flatMap((run, i) => [1, 2, 3].map((epoch) => ({ run, epoch, valAccuracy: 0.5 + 0.1 * epoch - 0.05 * i, trainAccuracy: 0.55 + 0.1 * epoch })));
  const accuracy = { title: 'Validation accuracy', svg: await renderSvg(accuracyFigureSpec(history, { title: 'sample: validation accuracy' })) };
  const runs = await Promise.all(
    names.map(async (name, i) => ({
      name,
      status: 'completed',
      trainingStatus: i === 0 ? 'completed' : 'stopped-early',
      backend: 'cpu',
      epochs: 3,
      valAccuracy: 0.8 - 0.05 * i,
      testAccuracy: 0.79 - 0.05 * i,
      attempts: i === 0 ? [{ attempt: 1, startedFromEpoch: 0, resumed: false }] : [{ attempt: 1, startedFromEpoch: 0, resumed: false }, { attempt: 2, startedFromEpoch: 2, resumed: true }],
      config: { model: { name: i === 0 ? 'mlp' : 'lenet5', label: name }, dataset: { name: 'fashion-mnist' }, seed: 1, training: { epochs: 3, optimizer: { name: 'sgd', note: HOSTILE_CONFIG } } },
      artifacts: [{ label: 'snapshot epoch 0', key: `tensors/ab/${'ab'.repeat(32)}.arrow`, sha256: 'ab'.repeat(32), bytes: 1234 }],
      figures: [{ title: 'Differences, p = 2', svg: await renderSvg(distanceFigureSpec(rows(`exp/${name}`), { title: name, p: '2' })), path: `/store/runs/exp/${i}/figures/distance-p2.svg` }],
    })),
  );
  return { title: 'sample <experiment>', experimentId: 'sample-20261123-abcdef', store: 'file:///tmp/store', status: 'completed', version: '0.1.0', accuracy, runs };
}
