import { Logger } from '@aws-lambda-powertools/logger';
import type { ConstructorOptions } from '@aws-lambda-powertools/logger/types';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Discovery } from '../../shared/gate/discovery.js';
import type { GateClosing, GateService } from '../../shared/gate/gate.js';
import type { LogPort, MetricsPort } from '../../shared/gate/ports.js';

/**
 * What a handler runs with: the gate and its observability. Lambda builds it from the environment at cold
 * start (`aws.ts`, `aws-closing.ts`); the local run builds it over a scenario and the embedded store. The
 * handlers are the same code in both. approval-ended only closes gates, so it asks for a `GateClosing`
 * (which a `GateService` is) and its Lambda runtime has no policy, findings or pipeline clients.
 */
export interface Runtime<G extends GateClosing = GateService> {
  readonly gate: G;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The sweep's search for approvals whose STARTED event never came; absent where nothing looks. */
  readonly discovery?: Discovery | undefined;
  /** The policy failed to load (every decision escalates): each invocation counts `PolicyInvalid`. */
  readonly policyInvalid?: boolean;
}

/** Powertools Logger behind the core's logging port. */
export function logPort(logger: Logger): LogPort {
  return {
    debug: (message, fields) => logger.debug(message, { ...fields }),
    info: (message, fields) => logger.info(message, { ...fields }),
    warn: (message, fields) => logger.warn(message, { ...fields }),
    error: (message, fields) => logger.error(message, { ...fields }),
  };
}

/** Powertools Metrics (EMF) behind the core's metrics port. */
export function metricsPort(metrics: Metrics): MetricsPort {
  return {
    decision(outcome, latencyMs) {
      // Per-outcome counts need the outcome as a dimension; a single metric keeps it off the others.
      const byOutcome = metrics.singleMetric();
      byOutcome.addDimension('outcome', outcome);
      byOutcome.addMetric('Decisions', MetricUnit.Count, 1);
      metrics.addMetric('TimeToDecision', MetricUnit.Milliseconds, latencyMs);
    },
    gatesWaiting({ count, overdue, oldestMinutes }) {
      metrics.addMetric('GatesWaiting', MetricUnit.Count, count);
      metrics.addMetric('GatesOverdue', MetricUnit.Count, overdue);
      metrics.addMetric('OldestWaitingMinutes', MetricUnit.Count, oldestMinutes);
    },
    count(name, value = 1) {
      metrics.addMetric(name, MetricUnit.Count, value);
    },
  };
}

/**
 * Logger and metrics for runs outside Lambda (the simulator, tests): the same Powertools code, with EMF
 * output switched off (those lines are for CloudWatch, not a terminal) and logs at `logLevel`.
 */
export function localObservability(logLevel: NonNullable<ConstructorOptions['logLevel']>): {
  logger: Logger;
  metrics: Metrics;
} {
  process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
  const quiet = {
    debug: () => undefined,
    info: () => undefined,
    warn: () => undefined,
    error: () => undefined,
  };
  return {
    logger: new Logger({ serviceName: 'tollgate', logLevel }),
    metrics: new Metrics({ namespace: 'Tollgate', serviceName: 'tollgate', logger: quiet }),
  };
}
