import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createDocumentClient, DynamoStore } from '../../adapters/dynamodb/store.js';
import type { ClosingDeps } from '../../shared/gate/closing.js';
import { logPort, metricsPort } from './runtime.js';

/**
 * The parts of a Lambda runtime every function has, built once per cold start from the environment the stack
 * sets: `TOLLGATE_TABLE` (the store), `TOLLGATE_OWN_ROLES` (comma-separated role names whose CloudTrail calls
 * are Tollgate's own), Powertools' logger and metrics, and the region. A module of its own: what imports it
 * (approval-ended) gets none of the deciding code's modules.
 */
export function awsBase(env: NodeJS.ProcessEnv): {
  region: string;
  deps: Omit<ClosingDeps, 'events'>;
  logger: Logger;
  metrics: Metrics;
} {
  const table = env.TOLLGATE_TABLE;
  if (!table) throw new Error('TOLLGATE_TABLE is not set: the function cannot find its store');
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? '';
  const logger = new Logger({ serviceName: env.POWERTOOLS_SERVICE_NAME ?? 'tollgate' });
  const metrics = new Metrics({
    namespace: env.POWERTOOLS_METRICS_NAMESPACE ?? 'Tollgate',
    serviceName: env.POWERTOOLS_SERVICE_NAME ?? 'tollgate',
  });
  const deps: Omit<ClosingDeps, 'events'> = {
    store: new DynamoStore(createDocumentClient({ region }), table),
    clock: { now: () => new Date() },
    log: logPort(logger),
    metrics: metricsPort(metrics),
    config: {
      region,
      account: undefined,
      ownIdentities: (env.TOLLGATE_OWN_ROLES ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    },
  };
  return { region, deps, logger, metrics };
}
