import {
  type EventBridgeClient,
  PutEventsCommand,
  type PutEventsRequestEntry,
} from '@aws-sdk/client-eventbridge';
import type { EventsPort, TollgateEvent } from '../../shared/gate/ports.js';
import { DEFAULT_RETRY, pause, type RetryOptions, withRetries } from './retry.js';

export const EVENT_SOURCE = 'tollgate';
/** PutEvents: at most 10 entries a request… */
export const PUT_EVENTS_MAX_ENTRIES = 10;
/** …and at most 256 KiB of them, counted as EventBridge counts an entry's size. */
export const PUT_EVENTS_MAX_BYTES = 262_144;

export interface FailedEvent {
  readonly detailType: string;
  readonly resources: readonly string[];
  readonly errorCode: string;
  readonly errorMessage: string | undefined;
}

/** Events EventBridge would not take, after a second try. */
export class PutEventsError extends Error {
  constructor(readonly failures: readonly FailedEvent[]) {
    const named = failures
      .map((f) => {
        const on = f.resources.length > 0 ? ` (${f.resources.join(', ')})` : '';
        return `"${f.detailType}"${on}: ${f.errorCode}${f.errorMessage ? ` ${f.errorMessage}` : ''}`;
      })
      .join('; ');
    super(`EventBridge PutEvents failed for ${failures.length} event(s) after a retry: ${named}`);
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
}

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
   * Sends every event to the default bus. Entries EventBridge refuses one by one (`FailedEntryCount`) are
   * sent once more after a backoff; those refused again are thrown as a PutEventsError naming them. A
   * request that fails as a whole is retried by `withRetries` and then thrown.
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
    const failed = await this.send(pending);
    if (failed.length === 0) return;
    await pause(1, this.retry);
    const still = await this.send(failed.map((f) => f.pending));
    if (still.length > 0) {
      throw new PutEventsError(
        still.map((f) => ({
          detailType: f.pending.event.detailType,
          resources: f.pending.event.resources,
          errorCode: f.errorCode,
          errorMessage: f.errorMessage,
        })),
      );
    }
  }

  /** Sends the entries in batches; returns the ones refused. */
  private async send(pending: readonly Pending[]): Promise<Outcome[]> {
    const refused: Outcome[] = [];
    const sendable: Pending[] = [];
    for (const p of pending) {
      // No request can carry it: refuse it here rather than fail the batch it would be in.
      if (p.size > PUT_EVENTS_MAX_BYTES) {
        refused.push({ pending: p, errorCode: 'EntryTooLarge', errorMessage: `${p.size} bytes` });
      } else sendable.push(p);
    }
    for (const batch of batches(sendable)) {
      const out = await withRetries(
        () => this.client.send(new PutEventsCommand({ Entries: batch.map((p) => p.entry) })),
        this.retry,
      );
      if ((out.FailedEntryCount ?? 0) === 0) continue;
      // Result entries are in request order; a failed one has an ErrorCode and no EventId.
      batch.forEach((p, i) => {
        const r = out.Entries?.[i];
        if (r?.ErrorCode !== undefined || r?.EventId === undefined) {
          refused.push({ pending: p, errorCode: r?.ErrorCode ?? 'Unknown', errorMessage: r?.ErrorMessage });
        }
      });
    }
    return refused;
  }
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
