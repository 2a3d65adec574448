import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { parser } from '@aws-lambda-powertools/parser/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type * as z from 'zod/mini';
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import type { GateClosing } from '../../shared/gate/closing.js';
import type { Runtime } from './runtime.js';

// zod/mini loads no locale: without one, every problem an ignored event logs would read "Invalid input".
config(en());

export interface HandlerResult {
  readonly ignored?: string;
  readonly result?: unknown;
}

/**
 * An event of the kind a function handles that its schema refuses: thrown, so that Lambda retries it and
 * then dead-letters it (the failed-events queue keeps the event, in Lambda's destination record, and pages).
 * Ignored, it would be lost with only its id in a log line.
 */
export class MalformedEventError extends Error {
  constructor(
    readonly fn: string,
    readonly problems: readonly string[],
  ) {
    super(`${fn}: an event it must handle does not have the expected shape: ${problems.join('; ')}`);
    this.name = 'MalformedEventError';
  }
}

interface Envelope {
  readonly id?: string | undefined;
  readonly account?: string;
  readonly region?: string;
}

/**
 * What Lambda's on-failure destination keeps in a failed-events queue: the event wrapped in a record of the
 * invocation. An operator redrives by invoking the function with each message's body: parsed as it stands,
 * the record would be an event of another kind, ignored, and the replay lost.
 */
interface DestinationRecord {
  readonly requestContext: { readonly functionArn: string; readonly condition: string };
  readonly requestPayload: unknown;
}

/** Lambda's on-failure destination record (what a failed-events queue holds): the event, wrapped. */
function isDestinationRecord(event: unknown): event is DestinationRecord {
  const context = (event as { requestContext?: { functionArn?: unknown; condition?: unknown } } | null)
    ?.requestContext;
  return (
    typeof context?.functionArn === 'string' &&
    typeof context.condition === 'string' &&
    typeof event === 'object' &&
    event !== null &&
    'requestPayload' in event
  );
}

/** A function's ARN without its qualifier (`:$LATEST`, a version, an alias): partition, region, account, name. */
function functionOf(arn: string): string {
  return arn.split(':').slice(0, 7).join(':');
}

/**
 * The one shape of every Tollgate function: Powertools logger (with the event id as correlation id) and
 * metrics, the event parsed with zod by the Powertools parser, then one call into the core. An event of
 * another kind, or from another account or region, is logged and ignored (it is not ours to act on, and a
 * retry would not change it); an event of the kind the function handles (`claims`) that the schema refuses
 * is malformed, and thrown (MalformedEventError) like a failure of the work itself, so Lambda retries the
 * event and finally dead-letters it. A dead-lettered message invoked as it stands (a replay) is unwrapped.
 */
export function gateHandler<S extends z.ZodMiniType<Envelope>, G extends GateClosing>(
  name: string,
  schema: S,
  runtime: Runtime<G>,
  work: (event: z.output<S>, rt: Runtime<G>, context: Context) => Promise<unknown>,
  claims: (raw: unknown) => boolean = () => false,
) {
  const { logger, metrics } = runtime;
  // Whatever its shape: not ours to act on, and a retry would not change it.
  const ignoreForeign = (foreign: string, eventId: unknown): HandlerResult => {
    logger.warn(`${name}: ignored an event from ${foreign}`, { eventId });
    metrics.addMetric('ForeignEvents', MetricUnit.Count, 1);
    return { ignored: `event from ${foreign}` };
  };
  // No early timeout: middy's would answer Lambda with an error just before the deadline and leave the work
  // running, frozen with the sandbox and thawed in a later invocation, still able to send a result or an
  // escalation after its acting lease has passed to the sweep. Lambda's own timeout ends the process.
  return middy<unknown, HandlerResult, Error, Context>({ timeoutEarlyInMillis: 0 })
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics, { captureColdStartMetric: true }))
    .use({
      before: (request) => {
        // Counted on every invocation while it lasts: a log line at cold start pages nobody, and decisions
        // that all escalate look like any others.
        if (runtime.policyInvalid) metrics.addMetric('PolicyInvalid', MetricUnit.Count, 1);
        // A replay that failed again (invoked asynchronously) is dead-lettered wrapped once more: unwrapped
        // to its event, every layer checked, or the inner record would be ignored as another kind.
        for (let depth = 0; isDestinationRecord(request.event); depth++) {
          const record = request.event;
          const from = String(record.requestContext.functionArn);
          // Another function's failed event (by name, account and region) would be of another kind here, or
          // foreign, and ignored: the replay lost again.
          if (depth >= 5 || functionOf(from) !== functionOf(request.context.invokedFunctionArn))
            throw new Error(`${name}: a failed event of ${from}: replay it there`);
          logger.warn(`${name}: replaying a failed event`, record.requestContext);
          request.event = record.requestPayload;
        }
      },
    })
    .use(parser({ schema, safeParse: true }))
    .handler(async (parsed, context) => {
      if (!parsed.success) {
        const original = parsed.originalEvent as Envelope | undefined;
        const problems = problemsOf(parsed.error);
        const raw = typeof original === 'object' && original !== null ? original : {};
        const foreign = foreignOrigin(
          {
            ...(typeof raw.account === 'string' ? { account: raw.account } : {}),
            ...(typeof raw.region === 'string' ? { region: raw.region } : {}),
          },
          context,
        );
        if (foreign) return ignoreForeign(foreign, raw.id);
        if (claims(original)) {
          logger.error(`${name}: an event it must handle is malformed: retried, then dead-lettered`, {
            eventId: typeof raw.id === 'string' ? raw.id : undefined,
            problems,
          });
          metrics.addMetric('MalformedEvents', MetricUnit.Count, 1);
          throw new MalformedEventError(name, problems);
        }
        logger.warn(`${name}: ignored an event of another kind`, {
          eventId: original?.id,
          problems,
        });
        metrics.addMetric('IgnoredEvents', MetricUnit.Count, 1);
        return { ignored: 'event of another kind' };
      }
      const event = parsed.data as z.output<S>;
      if (event.id !== undefined) logger.setCorrelationId(event.id);
      const foreign = foreignOrigin(event, context);
      if (foreign) return ignoreForeign(foreign, event.id);
      try {
        return { result: await work(event, runtime, context) };
      } finally {
        await runtime.gate.flush();
      }
    });
}

/** The function's own account and region, from its ARN (undefined where the context has none). */
export function ownOrigin(context: Context): { account: string | undefined; region: string | undefined } {
  const arn = context.invokedFunctionArn?.split(':');
  return { account: arn?.[4] || undefined, region: arn?.[3] || undefined };
}

/** Events from another account or region than the function's are forged or misrouted. */
function foreignOrigin(event: Envelope, context: Context): string | undefined {
  const { account, region } = ownOrigin(context);
  if (account && event.account !== undefined && event.account !== account) return `account ${event.account}`;
  if (region && event.region !== undefined && event.region !== region) return `region ${event.region}`;
  return undefined;
}

interface Issue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
  /** zod's `invalid_union`: the issues of each branch. */
  readonly errors?: readonly (readonly Issue[])[];
}

/** What was wrong with an event, at most five problems, `path: message`. */
function problemsOf(error: Error): string[] {
  // Powertools' parser wraps the schema's issues in a ParseError, as its cause.
  const issues =
    (error as { issues?: readonly Issue[] }).issues ??
    (Array.isArray(error.cause) ? (error.cause as readonly Issue[]) : undefined);
  if (!issues) return [error.message];
  return [...new Set(flatten(issues))].slice(0, 5);
}

function flatten(issues: readonly Issue[], prefix: readonly PropertyKey[] = []): string[] {
  return issues.flatMap((issue) => {
    const path = [...prefix, ...issue.path];
    // A union has no problem of its own ("Invalid input"): its branches' problems say what was expected.
    if (issue.errors?.length) return flatten(issue.errors.flat(), path);
    const where = path.map(String).join('.');
    return [where === '' ? issue.message : `${where}: ${issue.message}`];
  });
}
