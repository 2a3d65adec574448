import {
  type EventBridgeClient,
  PutEventsCommand,
  type PutEventsCommandOutput,
  type PutEventsRequestEntry,
} from '@aws-sdk/client-eventbridge';
import { gateId, gateKeyFromFields } from '../../shared/gate/model.js';
import {
  EVENT_ENTRY_MAX_BYTES,
  type EventsPort,
  type LostEvent,
  PublishFailure,
  type TollgateEvent,
} from '../../shared/gate/ports.js';
import { DEFAULT_RETRY, pause, type RetryOptions, withRetries } from './retry.js';

export const EVENT_SOURCE = 'tollgate';
/** PutEvents: at most 10 entries a request… */
export const PUT_EVENTS_MAX_ENTRIES = 10;
/** …and at most 256 KiB of them, counted as EventBridge counts an entry's size. */
export const PUT_EVENTS_MAX_BYTES = EVENT_ENTRY_MAX_BYTES;

export interface FailedEvent extends LostEvent {
  readonly resources: readonly string[];
  readonly errorCode: string;
  readonly errorMessage: string | undefined;
}

// A sweep can lose hundreds: the message names this many, `failures` holds them all.
const NAMED_MAX = 20;

/**
 * The events of one `publish` that EventBridge did not take, whether a request failed as a whole or
 * refused them one by one (twice where the refusal was retryable). Thrown once, after every batch was tried.
 */
export class PutEventsError extends PublishFailure {
  constructor(
    override readonly failures: readonly FailedEvent[],
    /** The events the `publish` was given. */
    readonly total: number = failures.length,
    options?: ErrorOptions,
  ) {
    const causes = new Map<string, number>();
    for (const f of failures) {
      const cause = `${f.errorCode}${f.errorMessage ? ` (${f.errorMessage})` : ''}`;
      causes.set(cause, (causes.get(cause) ?? 0) + 1);
    }
    const why = [...causes].map(([cause, n]) => `${n} × ${cause}`).join(', ');
    const named = failures
      .slice(0, NAMED_MAX)
      .map((f) => {
        const about = [f.gate, ...f.resources].filter((a) => a !== undefined);
        return `"${f.detailType}"${about.length > 0 ? ` (${about.join(', ')})` : ''}: ${f.errorCode}`;
      })
      .join('; ');
    const more = failures.length > NAMED_MAX ? `; and ${failures.length - NAMED_MAX} more` : '';
    // The count and causes come first: loggers cut long messages.
    super(
      `EventBridge PutEvents lost ${failures.length} of ${total} event(s): ${why}. Lost: ${named}${more}`,
      failures,
      options,
    );
    this.name = 'PutEventsError';
  }
}

interface Pending {
  readonly event: TollgateEvent;
  readonly entry: PutEventsRequestEntry;
  readonly size: number;
}

interface Outcome {
  readonly pending: Pending;
  readonly errorCode: string;
  readonly errorMessage: string | undefined;
  /** Worth sending again: a refusal EventBridge documents as retryable. */
  readonly retryable: boolean;
  /** The error of a request that failed as a whole. */
  readonly requestError?: unknown;
}

// The per-entry codes the PutEventsResultEntry reference lists as retryable; the others (MalformedDetail,
// InvalidArgument, AccessDeniedException, NotAuthorizedFor…, EntryTooLarge) fail the same way every time.
const RETRYABLE_ENTRY_CODES = new Set(['InternalFailure', 'ThrottlingException']);

function bytes(text: string | undefined): number {
  return text === undefined ? 0 : Buffer.byteLength(text, 'utf8');
}

/** EventBridge's own rule for an entry's size: source, detail type, detail and resources, in UTF-8 bytes. */
export function entrySize(entry: PutEventsRequestEntry): number {
  let size = bytes(entry.Source) + bytes(entry.DetailType) + bytes(entry.Detail);
  for (const r of entry.Resources ?? []) size += bytes(r);
  if (entry.Time !== undefined) size += 14;
  return size;
}

export class EventBridgeEvents implements EventsPort {
  constructor(
    private readonly client: EventBridgeClient,
    private readonly retry: RetryOptions = DEFAULT_RETRY,
  ) {}

  /**
   * Sends every event to the default bus. Entries EventBridge refuses one by one (`FailedEntryCount`) with
   * a retryable code are sent once more after a backoff, unless a request failed as a whole: that one is
   * retried by `withRetries`, no further, and nothing more is sent (not those entries either): its entries,
   * every one not sent yet and the refused ones are lost.
   * All the events lost are thrown at the end as one PutEventsError, named one by one.
   */
  async publish(events: readonly TollgateEvent[]): Promise<void> {
    if (events.length === 0) return;
    const pending = events.map((event): Pending => {
      const entry: PutEventsRequestEntry = {
        Source: EVENT_SOURCE,
        DetailType: event.detailType,
        Detail: JSON.stringify(event.detail),
        Resources: [...event.resources],
      };
      return { event, entry, size: entrySize(entry) };
    });
    const first = await this.send(pending);
    const failedWhole = first.some((f) => f.requestError !== undefined);
    const again = failedWhole ? [] : first.filter((f) => f.retryable);
    const lost = failedWhole ? first : first.filter((f) => !f.retryable);
    if (again.length > 0) {
      await pause(1, this.retry);
      lost.push(...(await this.send(again.map((f) => f.pending))));
    }
    if (lost.length === 0) return;
    // Back in the order given, so that the error reads like the events the caller built.
    const order = new Map(pending.map((p, i) => [p, i]));
    lost.sort((a, b) => (order.get(a.pending) ?? 0) - (order.get(b.pending) ?? 0));
    const requestError = lost.find((f) => f.requestError !== undefined)?.requestError;
    throw new PutEventsError(
      lost.map((f) => {
        const gate = gateOf(f.pending.event);
        return {
          detailType: f.pending.event.detailType,
          resources: f.pending.event.resources,
          ...(gate === undefined ? {} : { gate }),
          errorCode: f.errorCode,
          errorMessage: f.errorMessage,
        };
      }),
      events.length,
      requestError === undefined ? undefined : { cause: requestError },
    );
  }

  /** Sends the entries in batches; returns the ones refused, a failed request's all among them. */
  private async send(pending: readonly Pending[]): Promise<Outcome[]> {
    const refused: Outcome[] = [];
    const sendable: Pending[] = [];
    for (const p of pending) {
      // No request can carry it: refuse it here rather than fail the batch it would be in.
      if (p.size > PUT_EVENTS_MAX_BYTES) {
        refused.push({
          pending: p,
          errorCode: 'EntryTooLarge',
          errorMessage: `${p.size} bytes`,
          retryable: false,
        });
      } else sendable.push(p);
    }
    const all = batches(sendable);
    for (const [n, batch] of all.entries()) {
      let out: PutEventsCommandOutput;
      try {
        out = await withRetries(
          () => this.client.send(new PutEventsCommand({ Entries: batch.map((p) => p.entry) })),
          this.retry,
        );
      } catch (error) {
        // `withRetries` has spent the retries a retryable error gets. The later batches are not tried: a
        // request denied or timing out after its retries says the next would too, and each could take as
        // long (up to its retries' whole time), past the function's own timeout, which would lose its
        // metrics and the rest of its work with them.
        const errorCode = error instanceof Error ? error.name : 'Error';
        const errorMessage = error instanceof Error ? error.message : String(error);
        for (const p of batch)
          refused.push({ pending: p, errorCode, errorMessage, retryable: false, requestError: error });
        for (const p of all.slice(n + 1).flat()) {
          refused.push({
            pending: p,
            errorCode: 'NotSent',
            errorMessage: `an earlier request failed (${errorCode})`,
            retryable: false,
            requestError: error,
          });
        }
        break;
      }
      if ((out.FailedEntryCount ?? 0) === 0) continue;
      // Result entries are in request order; a failed one has an ErrorCode and no EventId.
      batch.forEach((p, i) => {
        const r = out.Entries?.[i];
        if (r?.ErrorCode !== undefined || r?.EventId === undefined) {
          refused.push({
            pending: p,
            errorCode: r?.ErrorCode ?? 'Unknown',
            errorMessage: r?.ErrorMessage,
            // An entry with neither an id nor a code says nothing about why: worth the one more try.
            retryable: r?.ErrorCode === undefined || RETRYABLE_ENTRY_CODES.has(r.ErrorCode),
          });
        }
      });
    }
    return refused;
  }
}

/** The gate an event is about, from the key fields every Tollgate detail carries at its top. */
function gateOf(event: TollgateEvent): string | undefined {
  const { pipeline, executionId, stage, action, attempt } = event.detail;
  const key = gateKeyFromFields(pipeline, executionId, stage, action, attempt);
  return key === undefined ? undefined : gateId(key);
}

function batches(pending: readonly Pending[]): Pending[][] {
  const out: Pending[][] = [];
  let current: Pending[] = [];
  let size = 0;
  for (const p of pending) {
    if (
      current.length === PUT_EVENTS_MAX_ENTRIES ||
      (current.length > 0 && size + p.size > PUT_EVENTS_MAX_BYTES)
    ) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(p);
    size += p.size;
  }
  if (current.length > 0) out.push(current);
  return out;
}
