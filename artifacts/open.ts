/**
 * Opens the ArtifactStore a URL names. The worker and the CLI call this with the configured store URL
 * and their environment; nothing else needs to know which kind of store it is.
 */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalStore } from './local.js';
import { S3Store } from './s3.js';
import type { ArtifactStore } from './store.js';

/** A store setting that cannot name a store (the commands exit 2 on it, as on any invalid setting). */
export class InvalidStoreSettingError extends Error {
  override readonly name = 'InvalidStoreSettingError';
}

function envFlag(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new InvalidStoreSettingError(`${name}: expected true or false, found ${JSON.stringify(value)}`);
}

/** `scheme://user[:password]@` at the start of a URL; the scheme is group 1. */
const USER_INFO = /^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i;

/**
 * `file:///abs`, a plain path, or `s3://bucket/prefix`. S3 settings from env: PARAMTRAIL_S3_ENDPOINT,
 * PARAMTRAIL_S3_FORCE_PATH_STYLE (default true when an endpoint is set),
 * PARAMTRAIL_S3_CONDITIONAL_WRITES (the server honours `If-None-Match: *`; default true on AWS, false
 * with an endpoint), AWS_REGION (default us-east-1), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN.
 */
export function openStore(url: string, env: NodeJS.ProcessEnv): ArtifactStore {
  if (!url) throw new InvalidStoreSettingError('store URL: expected file:///abs/dir, a path or s3://bucket/prefix, found nothing');
  // A URL is recorded in every experiment's input and shown in its report: no credentials in it.
  if (USER_INFO.test(url)) {
    throw new InvalidStoreSettingError(
      `store URL ${url.replace(USER_INFO, '$1…@')}: expected no user or password in it (it is recorded with every experiment); ` +
        'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for S3',
    );
  }
  if (url.startsWith('s3://')) {
    const rest = url.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? '' : rest.slice(slash + 1);
    if (!bucket) throw new InvalidStoreSettingError(`store URL ${url}: expected s3://bucket[/prefix], found no bucket`);
    const endpoint = env.PARAMTRAIL_S3_ENDPOINT || undefined;
    // Not echoed: an endpoint may carry a user and password.
    if (endpoint !== undefined && !URL.canParse(endpoint)) {
      throw new InvalidStoreSettingError('PARAMTRAIL_S3_ENDPOINT: expected a URL such as http://host:9000, found one that does not parse');
    }
    const forcePathStyle =
      envFlag('PARAMTRAIL_S3_FORCE_PATH_STYLE', env.PARAMTRAIL_S3_FORCE_PATH_STYLE) ?? endpoint !== undefined;
    const conditionalWrites = envFlag('PARAMTRAIL_S3_CONDITIONAL_WRITES', env.PARAMTRAIL_S3_CONDITIONAL_WRITES);
    const accessKeyId = env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
    if (Boolean(accessKeyId) !== Boolean(secretAccessKey)) {
      throw new InvalidStoreSettingError(
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
  if (url.startsWith('file:')) {
    let path: string;
    try {
      path = fileURLToPath(url);
    } catch (err) {
      throw new InvalidStoreSettingError(`store URL ${url}: expected file:///absolute/path (${(err as Error).message})`);
    }
    return new LocalStore(path);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new InvalidStoreSettingError(`store URL ${url}: expected file:// or s3://, found ${url.split(':')[0]}://`);
  }
  return new LocalStore(isAbsolute(url) ? url : resolve(url));
}
