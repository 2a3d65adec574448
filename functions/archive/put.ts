import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  DEFAULT_RETRY,
  isRetryableAwsError,
  type RetryOptions,
  sendOptions,
  withRetries,
} from '../../adapters/aws/retry.js';
import type { ArchiveObject } from './layout.js';

/*
 * How an archive object is written: the archive function (handler.ts) and `tollgate audit archive` (which
 * archives again what the function gave up on) share it, so both write the same object the same way.
 */

/** The S3 answer to a conditional PUT whose key exists (412), or whose key another PUT is writing (409). */
function httpStatus(error: unknown): number | undefined {
  const meta = (error as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata;
  return typeof meta?.httpStatusCode === 'number' ? meta.httpStatusCode : undefined;
}

export const isAlreadyThere = (error: unknown): boolean =>
  httpStatus(error) === 412 || (error as { name?: unknown } | null)?.name === 'PreconditionFailed';

export const isConflict = (error: unknown): boolean =>
  httpStatus(error) === 409 || (error as { name?: unknown } | null)?.name === 'ConditionalRequestConflict';

/**
 * Writes one object if its key is absent: `written`, or `already` when the key is there (412), which holds
 * the same records since the key is a hash of them. Transient errors, and a 409 (another PUT of the same key
 * in flight: it ends in 200 or 412), are retried as `retry` says; any other error is thrown.
 */
export async function putArchiveObject(
  s3: S3Client,
  bucket: string,
  object: ArchiveObject,
  retry: RetryOptions = DEFAULT_RETRY,
  signal?: AbortSignal,
): Promise<'written' | 'already'> {
  const options: RetryOptions = {
    ...retry,
    isRetryable: (e) => isConflict(e) || (retry.isRetryable ?? isRetryableAwsError)(e),
  };
  try {
    await withRetries(
      () =>
        s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: object.key,
            Body: object.body,
            ContentType: 'application/x-ndjson',
            // Create only: a second PUT of the key would be a second version (Object Lock keeps both).
            IfNoneMatch: '*',
            // Object Lock requires an integrity header on every PUT; SHA-256 rather than the client's default.
            ChecksumAlgorithm: 'SHA256',
          }),
          sendOptions(signal),
        ),
      options,
      signal,
    );
    return 'written';
  } catch (e) {
    if (isAlreadyThere(e)) return 'already';
    throw e;
  }
}
