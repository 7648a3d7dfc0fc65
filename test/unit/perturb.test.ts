/**
 * The pure perturbations of ml/train/perturb.ts on hand-made tensors: which values change, which are
 * left alone (batch-norm running statistics), the float32 rounding of an offset, seeded noise, and
 * re-initialising layers by name or prefix.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NamedTensor } from '../../artifacts/snapshot.js';
import { perturbTensors } from '../../ml/train/perturb.js';
import { isParameter, matchesLayer } from '../../ml/train/select.js';

const t = (layer: string, name: string, values: number[]): NamedTensor => ({ layer, name, shape: [values.length], values: Float32Array.from(values) });

const weights = (): NamedTensor[] => [
  t('dense_1', 'kernel', [0.5, -0.25, 0, 2]),
  t('dense_1', 'bias', [0, 0.125]),
  t('bn_1', 'gamma', [1, 1]),
  t('bn_1', 'beta', [0, 0.5]),
  t('bn_1', 'moving_mean', [0.3, -0.3]),
  t('bn_1', 'moving_variance', [2, 3]),
  t('dense_2', 'kernel', [-1, 1]),
];

const valuesOf = (ts: NamedTensor[]) => ts.map((x) => `${x.layer}/${x.name}=${Array.from(x.values).join(',')}`);

describe('perturbTensors', () => {
  it('tells parameters from running statistics by name', () => {
    assert.deepEqual(weights().filter(isParameter).map((x) => x.name), ['kernel', 'bias', 'gamma', 'beta', 'kernel']);
  });

  it('flips the sign of every parameter, counts the non-zero ones as changed and keeps running statistics', () => {
    const input = weights();
    const out = perturbTensors(input, { kind: 'sign-flip' });
    assert.deepEqual(valuesOf(out.tensors), [
      'dense_1/kernel=-0.5,0.25,0,-2',
      'dense_1/bias=0,-0.125',
      'bn_1/gamma=-1,-1',
      'bn_1/beta=0,-0.5',
      'bn_1/moving_mean=0.3,-0.3'.replace('0.3,-0.3', `${Math.fround(0.3)},${Math.fround(-0.3)}`),
      'bn_1/moving_variance=2,3',
      'dense_2/kernel=1,-1',
    ]);
    // 12 parameter values, 3 of them zero.
    assert.equal(out.changed, 9);
    assert.deepEqual(out.layers, ['dense_1', 'bn_1', 'dense_2']);
    assert.deepEqual(Array.from(input[0]!.values), [0.5, -0.25, 0, 2], 'the input is not modified');
    assert.equal(out.tensors[4], input[4], 'running statistics are passed through as they are');
  });

  it('adds an offset in float32: on a weight of magnitude 32 or more an offset of 1e-6 rounds away', () => {
    const out = perturbTensors([t('d', 'kernel', [0, 1, 16, 32, -64])], { kind: 'offset', value: 1e-6 });
    // Half a float32 ulp is 9.5e-7 on [16, 32) and 1.9e-6 on [32, 64).
    assert.deepEqual(Array.from(out.tensors[0]!.values), [Math.fround(1e-6), Math.fround(1 + 1e-6), 16 + 2 ** -19, 32, -64]);
    assert.equal(out.changed, 3);
  });

  it('draws noise from the seed and label: the same twice, different for another seed or label', () => {
    const a = perturbTensors(weights(), { kind: 'noise', scale: 0.1 }, { seed: 4, label: 'noise-0-1' });
    const b = perturbTensors(weights(), { kind: 'noise', scale: 0.1 }, { seed: 4, label: 'noise-0-1' });
    const c = perturbTensors(weights(), { kind: 'noise', scale: 0.1 }, { seed: 5, label: 'noise-0-1' });
    const d = perturbTensors(weights(), { kind: 'noise', scale: 0.1 }, { seed: 4, label: 'other' });
    assert.deepEqual(valuesOf(a.tensors), valuesOf(b.tensors));
    assert.notDeepEqual(valuesOf(a.tensors), valuesOf(c.tensors));
    assert.notDeepEqual(valuesOf(a.tensors), valuesOf(d.tensors));
    assert.equal(a.changed, 12);
    // A tensor's noise depends on its own name only: dense_2's is the same when dense_1 is absent.
    const alone = perturbTensors([t('dense_2', 'kernel', [-1, 1])], { kind: 'noise', scale: 0.1 }, { seed: 4, label: 'noise-0-1' });
    assert.deepEqual(Array.from(alone.tensors[0]!.values), Array.from(a.tensors[6]!.values));
    assert.throws(() => perturbTensors(weights(), { kind: 'noise', scale: 0.1 }), /noise: expected an integer seed; found undefined/);
  });

  it('re-initialises the layers a name or prefix matches, parameters only', () => {
    const initial = weights().map((x) => ({ ...x, values: x.values.map((v) => v + 10) }));
    const one = perturbTensors(weights(), { kind: 'reinit-layer', layer: 'bn_1' }, { initial });
    assert.deepEqual(valuesOf(one.tensors.slice(2, 4)), ['bn_1/gamma=11,11', 'bn_1/beta=10,10.5']);
    assert.deepEqual(valuesOf(one.tensors.slice(4)), valuesOf(weights().slice(4)), 'running statistics and other layers as trained');
    assert.deepEqual(valuesOf(one.tensors.slice(0, 2)), valuesOf(weights().slice(0, 2)));
    assert.equal(one.changed, 4);
    const prefix = perturbTensors(weights(), { kind: 'reinit-layer', layer: 'dense*' }, { initial });
    assert.deepEqual(prefix.layers, ['dense_1', 'dense_2']);
    assert.equal(prefix.changed, 8);
  });

  it('names the pattern and the available layers when a reinit matches nothing', () => {
    assert.throws(
      () => perturbTensors(weights(), { kind: 'reinit-layer', layer: 'conv*' }, { initial: weights() }),
      (err: Error) => err.name === 'InvalidExperimentError' && /"conv\*" matches no layer of the snapshot \(layers: dense_1, bn_1, dense_2\)/.test(err.message),
    );
    assert.throws(
      () => perturbTensors(weights(), { kind: 'reinit-layer', layer: 'dense_2' }, { initial: [t('dense_2', 'kernel', [1, 2, 3])] }),
      /dense_2\/kernel: expected initial shape \[2\]; found \[3\]/,
    );
  });

  it('matches layer patterns exactly or by prefix', () => {
    assert.ok(matchesLayer('dense_1', 'dense_1'));
    assert.ok(!matchesLayer('dense', 'dense_1'));
    assert.ok(matchesLayer('dense*', 'dense_1'));
    assert.ok(matchesLayer('*', 'anything'));
  });
});
