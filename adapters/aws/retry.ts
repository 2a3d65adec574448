import { setTimeout as sleepFor } from 'node:timers/promises';

/*
 * Retries live here, around each `send`, and not in the SDK's retry middleware. Two reasons:
 *
 * - Testability: aws-sdk-client-mock replaces `send`, so the middleware never runs under test; a wrapper of
 *   our own is exercised by the same tests as the adapters (throttling then success, 5xx then success,
 *   access denied not retried).
 * - One layer: the clients the factory builds have `maxAttempts: 1`, so the attempts do not multiply
 *   (the SDK's default of 3 under our 5 would be 15 calls), and the backoff sleeps end as soon as the
 *   caller's AbortSignal fires, which the SDK's sleeps do not.
 *
 * The classification follows the SDK's standard strategy: throttling, transient network errors, 5xx, the
 * `$retryable` trait and a corrected clock skew are retried; access denied, validation and every other 4xx
 * are not, because they fail the same way every time.
 */

export interface RetryOptions {
  /** Attempts in all, the first one included. */
  readonly attempts: number;
  /** Attempt n + 1 waits a random time below min(maxDelayMs, baseMs · 2^(n-1)) ("full jitter"). */
  readonly baseMs: number;
  readonly maxDelayMs?: number;
  readonly isRetryable?: (error: unknown) => boolean;
  /** Injectable for tests; must reject when the signal aborts. */
  readonly sleep?: (ms: number, signal: AbortSignal | undefined) => Promise<void>;
  /** In [0, 1); injectable for tests. */
  readonly random?: () => number;
}

// Five attempts with a 200 ms base wait at most 0.2 + 0.4 + 0.8 + 1.6 s: enough to ride out a burst of
// throttling, short enough for a Lambda invocation's budget.
export const DEFAULT_RETRY: RetryOptions = { attempts: 5, baseMs: 200, maxDelayMs: 5_000 };

/**
 * How long one HTTP attempt may take: its connection, the request until the answer's headers come, and the
 * answer's body, which may go quiet at most `socketTimeout` at a time.
 */
export interface HttpTimeouts {
  readonly connectionTimeout: number;
  readonly requestTimeout: number;
  /** The request timeout ends once the headers are in (@smithy/node-http-handler): a stalled body needs this. */
  readonly socketTimeout: number;
}

/**
 * Without these the SDK waits on a stalled connection until the function is killed (it sets no request
 * timeout): the invocation's remaining work is lost with it, and a PutApprovalResult that landed is not
 * recorded. A timed-out attempt fails as `TimeoutError`, which is retried and may have landed (`mayHaveLanded`),
 * unless it timed out before it connected. The socket's timeout is the one that ends an answer whose body
 * stalls after its headers; its idle timer also runs while the service works, so it is no shorter. An
 * attempt thus lasts at most both (`attemptMaxMs`), but for a body that trickles in, a byte at a time.
 * The calls answer in well under a second; 10 s leaves a slow ListFindings page room, and five attempts of
 * 20 s fit every gate function's timeout (2 minutes at least: test/infra.test.ts holds them to it).
 */
export const HTTP_TIMEOUTS: HttpTimeouts = {
  connectionTimeout: 3_000,
  requestTimeout: 10_000,
  socketTimeout: 10_000,
};

/** The longest one attempt can wait on a stalled call: until the headers, then a body gone quiet. */
export function attemptMaxMs(timeouts: HttpTimeouts = HTTP_TIMEOUTS): number {
  return timeouts.requestTimeout + timeouts.socketTimeout;
}

/** The HTTP handler settings of every client: the timeouts, and a request past its timeout is an error. */
export function httpHandlerConfig(timeouts: HttpTimeouts = HTTP_TIMEOUTS) {
  return { ...timeouts, throwOnRequestTimeout: true };
}

/** The SDK client settings the factory uses: the SDK's own retries off (ours are the only layer), timeouts on. */
export function sdkClientConfig(
  region: string | undefined,
  timeouts: HttpTimeouts = HTTP_TIMEOUTS,
): { region?: string; maxAttempts: number; requestHandler: ReturnType<typeof httpHandlerConfig> } {
  const base = { maxAttempts: 1, requestHandler: httpHandlerConfig(timeouts) };
  return region === undefined ? base : { region, ...base };
}

const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'BandwidthLimitExceeded',
  'SlowDown',
  'PriorRequestNotComplete',
  'TransactionInProgressException',
  // SNS (and SQS) answer a throttle of the topic's KMS key so, at HTTP 400 and not marked retryable: a burst of
  // escalations to an encrypted topic would otherwise be given up at once.
  'KMSThrottlingException',
]);

const TRANSIENT = new Set([
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalServerException',
  'InternalServerError',
  'InternalFailure',
  'InternalException',
  'InternalError',
  'ServerException',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
]);

// Resets and timeouts, and the failures before a request goes out at all: a name that did not resolve
// (DNS in a Lambda's VPC fails now and then), a network or host out of reach, a connection refused.
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null;
}

// The request never reached the service: a name that did not resolve (the lookup comes before any
// connection), a connection refused (only a connection attempt is refused: a live one is reset).
const NEVER_SENT_CODES = new Set(['ECONNREFUSED', 'EAI_AGAIN', 'ENOTFOUND']);
// Never sent only when `connect` failed with them (the error's `syscall`): on a connection already carrying
// the request, a timeout is ETIMEDOUT too, and Linux reports a lost route (an ICMP unreachable) as these.
const CONNECT_CODES = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']);
// The HTTP handler's connection timeout (@smithy/node-http-handler, current and earlier wording): the socket
// never connected, so nothing was sent. It is a `TimeoutError` like the request timeout, and has no code.
const CONNECT_TIMEOUT = /did not establish a connection|without establishing a connection/;

/** A failure before the request went out: no answer about the call was lost, as there was no call. */
function neverSent(error: Obj): boolean {
  const code = error.code;
  if (typeof code === 'string') {
    if (NEVER_SENT_CODES.has(code)) return true;
    if (CONNECT_CODES.has(code)) return error.syscall === 'connect';
    return false;
  }
  return (
    error.name === 'TimeoutError' && typeof error.message === 'string' && CONNECT_TIMEOUT.test(error.message)
  );
}

/**
 * A retried failure after which the call may nevertheless have been carried out, its answer lost: a
 * timeout, a reset connection, a 5xx. Not throttling (refused before any work), a connection that was never
 * made (`neverSent`), or a clock-skew rejection (refused at signing).
 */
export function mayHaveLanded(error: unknown): boolean {
  if (!isObj(error)) return false;
  // Answered 2xx and then failed (a body that stalled or does not parse): the call was carried out.
  if (answered2xx(error)) return true;
  if (!isRetryableAwsError(error)) return false;
  if (typeof error.name === 'string' && THROTTLING.has(error.name)) return false;
  if (neverSent(error)) return false;
  // A clock-skew rejection is refused at signing (a 4xx); the SDK marks a 5xx after skew alike.
  const meta = error.$metadata;
  if (!isObj(meta) || meta.clockSkewCorrected !== true) return true;
  return typeof meta.httpStatusCode === 'number' && meta.httpStatusCode >= 500;
}

/** An error the SDK raised reading an answer of 2xx: the service did what was asked. */
function answered2xx(error: unknown): boolean {
  const status = isObj(error) && isObj(error.$metadata) ? error.$metadata.httpStatusCode : undefined;
  return typeof status === 'number' && status >= 200 && status < 300;
}

export function isRetryableAwsError(error: unknown): boolean {
  if (!isObj(error)) return false;
  const name = error.name;
  // An abort is the caller giving up: retrying it would defeat the point.
  if (name === 'AbortError') return false;
  if (typeof name === 'string' && (THROTTLING.has(name) || TRANSIENT.has(name))) return true;
  if (isObj(error.$retryable)) return true;
  const code = error.code;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
  const meta = error.$metadata;
  if (isObj(meta)) {
    const status = meta.httpStatusCode;
    if (typeof status === 'number' && (status === 429 || status >= 500)) return true;
    if (meta.clockSkewCorrected === true) return true;
  }
  return false;
}

/** How long to wait after failed attempt `attempt` (1-based). */
export function backoffMs(attempt: number, options: RetryOptions, error?: unknown): number {
  const cap = options.maxDelayMs ?? Number.POSITIVE_INFINITY;
  const ceiling = Math.min(cap, options.baseMs * 2 ** (attempt - 1));
  const jittered = Math.floor((options.random ?? Math.random)() * ceiling);
  // Inspector tells how long to wait when it throttles; waiting less would only be throttled again.
  const after = isObj(error) ? error.retryAfterSeconds : undefined;
  if (typeof after === 'number' && Number.isFinite(after) && after > 0) {
    return Math.max(jittered, Math.min(cap, after * 1000));
  }
  return jittered;
}

async function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0) {
    signal?.throwIfAborted();
    return;
  }
  try {
    await sleepFor(ms, undefined, signal === undefined ? {} : { signal });
  } catch (e) {
    // The timer's own AbortError says nothing; the caller's reason (a deadline, a failed chain) does.
    if (signal?.aborted === true) throw signal.reason;
    throw e;
  }
}

/** Waits the backoff of failed attempt `attempt`. */
export function pause(
  attempt: number,
  options: RetryOptions,
  signal?: AbortSignal,
  error?: unknown,
): Promise<void> {
  return (options.sleep ?? abortableSleep)(backoffMs(attempt, options, error), signal);
}

/** Runs `fn` until it succeeds, fails with an error that is not retryable, or runs out of attempts. */
export async function withRetries<T>(
  fn: () => Promise<T>,
  options: RetryOptions = DEFAULT_RETRY,
  signal?: AbortSignal,
): Promise<T> {
  const isRetryable = options.isRetryable ?? isRetryableAwsError;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn();
    } catch (e) {
      if (attempt >= options.attempts || signal?.aborted === true || !isRetryable(e)) throw e;
      await pause(attempt, options, signal, e);
    }
  }
}

/**
 * `withRetries` for a call that is not idempotent (PutApprovalResult, SNS Publish), whose answer is not
 * read: after a timeout, a reset connection or a 5xx, the attempt may have landed with only its answer lost
 * (`mayHaveLanded`). Said on success, and on the error that ends the retries as `resultMayHaveLanded` (which
 * the gate reads). An attempt answered 2xx whose body then failed (stalled, or did not parse) was carried
 * out: that is success, never retried (a retry would send it again).
 */
export async function withRetriesMayLand(
  fn: () => Promise<unknown>,
  options: RetryOptions,
): Promise<{ readonly mayHaveLanded: boolean }> {
  let landed = false;
  try {
    await withRetries(async () => {
      // Whether an attempt before this one may have landed: this one's own success is no duplicate.
      const before = landed;
      try {
        await fn();
      } catch (error: unknown) {
        if (answered2xx(error)) {
          landed = before;
          return;
        }
        // Only an error that is retried can be followed by an answer about this very call.
        if (mayHaveLanded(error)) landed = true;
        throw error;
      }
    }, options);
    return { mayHaveLanded: landed };
  } catch (e) {
    if (e instanceof Error) Object.assign(e, { resultMayHaveLanded: landed });
    throw e;
  }
}

/** The `send` options that carry an AbortSignal, when there is one. */
export function sendOptions(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal === undefined ? {} : { abortSignal: signal };
}

/**
 * Every page of a paginated read, in order, each request retried (`withRetries`); a failed page rejects
 * the read (never a partial one). Leaving the loop stops asking for pages.
 */
export async function* everyPage<P extends { readonly nextToken?: string | undefined }>(
  operation: string,
  retry: RetryOptions,
  read: (nextToken: string | undefined) => Promise<P>,
): AsyncGenerator<P> {
  const seen = new Set<string>();
  let nextToken: string | undefined;
  do {
    const token = nextToken;
    const page = await withRetries(() => read(token), retry);
    yield page;
    nextToken = nextPage(page.nextToken, seen, operation);
  } while (nextToken !== undefined);
}

/**
 * The token of the next page, or undefined at the end. A token seen before would page forever: that is a
 * service fault, thrown rather than looped on (the token itself is left out: it can be a megabyte).
 */
export function nextPage(
  token: string | undefined,
  seen: Set<string>,
  operation: string,
): string | undefined {
  if (token === undefined || token === '') return undefined;
  if (seen.has(token)) throw new Error(`${operation} returned a nextToken it had already returned`);
  seen.add(token);
  return token;
}
