/**
 * infra/compose.yaml parses, has the services a deployment needs with pinned images, wires the
 * workers to Temporal and MinIO, and keeps every secret in env files (Docker itself is not available
 * where the suite runs, so this is the check the file gets).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { DEV_SERVER_DYNAMIC_CONFIG } from '../../infra/temporal.js';
import { PROJECT_ROOT } from '../../infra/tools.js';

const INFRA = join(PROJECT_ROOT, 'infra');

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[] | string;
  environment?: Record<string, string>;
  env_file?: string[];
  volumes?: string[];
}

const compose = parse(readFileSync(join(INFRA, 'compose.yaml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};
const services = compose.services;

/** Names that hold credentials; their values must come from env files. */
const SECRET_NAME = /PASSWORD|PWD|SECRET|TOKEN|ACCESS_KEY|ROOT_USER/i;

test('compose has the database, Temporal, its UI, MinIO, the bucket and search-attribute one-shots and two workers', () => {
  assert.deepEqual(Object.keys(services).sort(), [
    'create-bucket',
    'minio',
    'postgresql',
    'search-attributes',
    'temporal',
    'temporal-ui',
    'worker-analysis',
    'worker-train',
  ]);
});

test('every image is pinned to a version tag', () => {
  for (const [name, service] of Object.entries(services)) {
    if (service.build) continue;
    assert.match(service.image ?? '', /^[\w./-]+:[\w.-]*\d[\w.-]*$/, `${name}: expected image:version, found ${service.image}`);
    assert.doesNotMatch(service.image ?? '', /:latest$/, `${name} must not use :latest`);
  }
});

test('workers run paramtrail on the workflow, train and analysis queues against Temporal and MinIO', () => {
  // Every queue has a worker: a run whose workflow tasks nobody polls would wait forever.
  for (const [name, queue] of [['worker-train', 'workflows,train'], ['worker-analysis', 'analysis']] as const) {
    const worker = services[name]!;
    assert.deepEqual(worker.command, ['worker', '--task-queue', queue]);
    assert.equal(worker.build?.context, '..');
    assert.ok(existsSync(join(INFRA, '..', worker.build!.dockerfile)), `${worker.build!.dockerfile} exists`);
    assert.equal(worker.environment?.TEMPORAL_ADDRESS, 'temporal:7233');
    assert.equal(worker.environment?.PARAMTRAIL_STORE, 's3://paramtrail');
    assert.equal(worker.environment?.PARAMTRAIL_S3_ENDPOINT, 'http://minio:9000');
    // A string, as openStore reads it from the environment (a YAML boolean would not reach it as "true").
    assert.equal(worker.environment?.PARAMTRAIL_S3_CONDITIONAL_WRITES, 'true');
    assert.deepEqual(worker.env_file, ['worker.env']);
  }
  assert.match(String(services['create-bucket']!.command), /mc mb --ignore-existing store\/paramtrail/);
});

test('no secret is written inline; each env file has a committed example naming its variables', () => {
  for (const [name, service] of Object.entries(services)) {
    for (const [key, value] of Object.entries(service.environment ?? {})) {
      assert.ok(!SECRET_NAME.test(key), `${name}: ${key}=${value} is a credential and belongs in an env file`);
    }
    for (const file of service.env_file ?? []) {
      const example = join(INFRA, `${file}.example`);
      assert.ok(existsSync(example), `${name}: expected ${file}.example beside compose.yaml`);
      for (const line of readFileSync(example, 'utf8').split('\n')) {
        const m = /^([A-Z_]+)=(.*)$/.exec(line);
        if (m && SECRET_NAME.test(m[1]!)) assert.match(m[2]!, /^replace-with-/, `${file}.example: ${m[1]} must be a placeholder`);
      }
    }
  }
  const workerExample = readFileSync(join(INFRA, 'worker.env.example'), 'utf8');
  assert.match(workerExample, /^AWS_ACCESS_KEY_ID=/m);
  assert.match(workerExample, /^AWS_SECRET_ACCESS_KEY=/m);
});

test("Temporal starts with the dev server's dynamic configuration, from a file it mounts", () => {
  const temporal = services.temporal!;
  const path = temporal.environment?.DYNAMIC_CONFIG_FILE_PATH;
  assert.ok(path, 'DYNAMIC_CONFIG_FILE_PATH is set');
  // auto-setup runs in /etc/temporal and reads the path relative to it.
  const mount = (temporal.volumes ?? []).map((v) => v.split(':')).find(([, inContainer]) => inContainer === `/etc/temporal/${path}`);
  assert.ok(mount, `a volume mounts a file at /etc/temporal/${path}: ${JSON.stringify(temporal.volumes)}`);
  const file = parse(readFileSync(join(INFRA, mount[0]!), 'utf8')) as Record<string, Array<{ value: unknown }>>;
  assert.deepEqual(Object.fromEntries(Object.entries(file).map(([k, v]) => [k, v[0]!.value])), DEV_SERVER_DYNAMIC_CONFIG);
});
