// The Lambda entry point: the S3 client, logger and metrics are built once per cold start.
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { S3Client } from '@aws-sdk/client-s3';
import { sdkClientConfig } from '../../adapters/aws/retry.js';
import { archiveHandler } from './handler.js';

const bucket = process.env.TOLLGATE_ARCHIVE_BUCKET;
if (!bucket) throw new Error('TOLLGATE_ARCHIVE_BUCKET is not set: the function has nowhere to archive');
const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
const service = process.env.POWERTOOLS_SERVICE_NAME ?? 'tollgate';

export const handler = archiveHandler({
  s3: new S3Client(sdkClientConfig(region || undefined)),
  bucket,
  logger: new Logger({ serviceName: service }),
  metrics: new Metrics({
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'Tollgate',
    serviceName: service,
  }),
});
