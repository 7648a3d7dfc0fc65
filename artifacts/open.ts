/**
 * Opens the ArtifactStore a URL names. The worker and the CLI call this with the configured store URL
 * and their environment; nothing else needs to know which kind of store it is.
 */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalStore } from './local.js';
import { S3Store } from './s3.js';
import type { ArtifactStore } from './store.js';

function envFlag(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new Error(`${name}: expected true or false, found ${JSON.stringify(value)}`);
}

/**
 * `file:///abs`, a plain path, or `s3://bucket/prefix`. S3 settings from env: PARAMTRAIL_S3_ENDPOINT,
 * PARAMTRAIL_S3_FORCE_PATH_STYLE (default true when an endpoint is set),
 * PARAMTRAIL_S3_CONDITIONAL_WRITES (the server honours `If-None-Match: *`; default true on AWS, false
 * with an endpoint), AWS_REGION (default us-east-1), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN.
 */
export function openStore(url: string, env: NodeJS.ProcessEnv): ArtifactStore {
  if (!url) throw new Error('store URL: expected file:///abs/dir, a path or s3://bucket/prefix, found nothing');
  if (url.startsWith('s3://')) {
    const rest = url.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? '' : rest.slice(slash + 1);
    if (!bucket) throw new Error(`store URL ${url}: expected s3://bucket[/prefix], found no bucket`);
    const endpoint = env.PARAMTRAIL_S3_ENDPOINT || undefined;
    const forcePathStyle =
      envFlag('PARAMTRAIL_S3_FORCE_PATH_STYLE', env.PARAMTRAIL_S3_FORCE_PATH_STYLE) ?? endpoint !== undefined;
    const conditionalWrites = envFlag('PARAMTRAIL_S3_CONDITIONAL_WRITES', env.PARAMTRAIL_S3_CONDITIONAL_WRITES);
    const accessKeyId = env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
    if (Boolean(accessKeyId) !== Boolean(secretAccessKey)) {
      throw new Error(
        'S3 credentials: expected both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or neither, found only ' +
          (accessKeyId ? 'AWS_ACCESS_KEY_ID' : 'AWS_SECRET_ACCESS_KEY'),
      );
    }
    return new S3Store({
      bucket,
      prefix,
      endpoint,
      forcePathStyle,
      ...(conditionalWrites !== undefined ? { conditionalWrites } : {}),
      region: env.AWS_REGION || 'us-east-1',
      // Neither set: leave it to the SDK's default chain (profile, instance role, ...).
      credentials:
        accessKeyId && secretAccessKey
          ? { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN || undefined }
          : undefined,
    });
  }
  if (url.startsWith('file:')) return new LocalStore(fileURLToPath(url));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new Error(`store URL ${url}: expected file:// or s3://, found ${url.split(':')[0]}://`);
  }
  return new LocalStore(isAbsolute(url) ? url : resolve(url));
}
