import { type ChainHead, ChainHeadMovedError, chainRecord } from '../audit/chain.js';
import { resolutionEntry, resolutionOf } from '../audit/entry.js';
import type { AuditEntry, AuditRecord } from '../audit/record.js';
import { gateClosedEvent, gateStateEvent } from './events.js';
import type { Gate, GateClosure, GateKey, StoredDecision } from './model.js';
import { gateId } from './model.js';
import {
  type ClockPort,
  type EventsPort,
  type LogPort,
  type MetricsPort,
  PublishFailure,
  type StorePort,
  type TollgateEvent,
} from './ports.js';
import { reconcileAfterEnd } from './reconcile.js';
import {
  CHAIN_ATTEMPTS,
  describeError,
  entry,
  eventTime,
  type GateReport,
  GateWorkFailed,
  type HeadRead,
  hashToken,
  newGate,
  report,
  UPDATE_ATTEMPTS,
} from './work.js';

export interface ApprovalEnded {
  readonly key: GateKey;
  /** The event's run of the action: the sweep may have opened its gate under another attempt number. */
  readonly actionExecutionId?: string | undefined;
  readonly state: GateClosure['state'];
  readonly time: string;
  readonly account: string;
  readonly region: string;
}

/** CloudTrail's record of a PutApprovalResult call: trusted for who called, nothing else. */
export interface ApprovalResultCall {
  readonly token: string | undefined;
  readonly identity: string;
  readonly identityType: string | undefined;
  /** CloudTrail's `userIdentity.sessionContext.sourceIdentity`, when the role session has one. */
  readonly sourceIdentity?: string | undefined;
  readonly status: string | undefined;
  readonly summary: string | undefined;
  readonly time: string;
  /** What the caller named (requestParameters): only logged, as the caller wrote it; the token finds the gate. */
  readonly named?: {
    readonly pipeline?: string | undefined;
    readonly stage?: string | undefined;
    readonly action?: string | undefined;
  };
}

// A role session's ARN and a role's (IAM's name rules: a role or session name is [\w+=,.@-], a role's path any
// printable ASCII between slashes), read whole: the account and the role's name.
const ASSUMED_ROLE_ARN = /^arn:aws[a-z-]*:sts::(\d{12}):assumed-role\/([\w+=,.@-]{1,64})\/[\w+=,.@-]{1,64}$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::(\d{12}):role\/(?:[\x21-\x7e]*\/)?([\w+=,.@-]{1,64})$/;

export interface ClosingConfig {
  readonly region: string;
  readonly account: string | undefined;
  /** Role names whose CloudTrail calls are Tollgate's own (its own PutApprovalResult calls). */
  readonly ownIdentities: readonly string[];
}

/** What closing a gate needs: the store, the clock and Tollgate's events. No policy, no findings, no pipeline. */
export interface ClosingDeps {
  readonly events: EventsPort;
  readonly store: StorePort;
  readonly clock: ClockPort;
  readonly log: LogPort;
  readonly metrics: MetricsPort;
  readonly config: ClosingConfig;
}

/**
 * The end of a gate's life (architecture §3, approval-ended): the approval action ended, or CloudTrail says who
 * resolved it. Closing never reads the policy, the findings or the pipeline, so the function that only closes
 * runs without them (and its bundle carries none of them); `GateService` decides and closes, on top of this.
 *
 * The plumbing both share is here too: the versioned gate update with its timeline, the audit chain's append,
 * and the outbox of Tollgate events sent when the invocation ends.
 */
export class GateClosing<D extends ClosingDeps = ClosingDeps> {
  constructor(protected readonly d: D) {}

  async approvalEnded(e: ApprovalEnded): Promise<GateReport> {
    const closure: GateClosure = { state: e.state, at: eventTime(e.time, this.now()) };
    // The decision (for the resolution record's content) and the chain head are read beside the gate.
    const head = this.d.store.auditHead(e.key.pipeline);
    head.catch(() => undefined);
    let decision: StoredDecision | undefined;
    let key = e.key;
    for (let attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
      const [gate, stored] = await Promise.all([
        this.d.store.getGate(key),
        decision ? Promise.resolve(decision) : this.d.store.getDecision(key),
      ]);
      decision = stored;
      const now = this.now();
      // A retry's run the sweep found has its gate under the run's own number, not the event's attempt;
      // and the gate under the event's number may be another run's, found by the sweep.
      const otherRun =
        gate?.actionExecutionId !== undefined &&
        e.actionExecutionId !== undefined &&
        gate.actionExecutionId !== e.actionExecutionId;
      const holder =
        (!gate || otherRun) && e.actionExecutionId
          ? await this.d.store.gateOfRun(e.actionExecutionId)
          : undefined;
      if (holder && gateId(holder) !== gateId(key)) {
        key = holder;
        decision = undefined;
        continue;
      }
      if (gate && otherRun) {
        // No gate holds this run and its number is another run's: there is nothing of it to close.
        this.d.log.warn('approval ended: the gate under its key is another run of the action', {
          gate: gateId(key),
          run: e.actionExecutionId,
        });
        return report(gate, `not this gate's run: ${e.state} of run ${e.actionExecutionId} ignored`);
      }
      if (!gate) {
        // The end arrived before the start (or the start was lost): a closed gate keeps a late start from
        // deciding an approval that is over.
        const tombstone = entry(
          {
            ...newGate(
              {
                key: e.key,
                // Claims the run, so the sweep cannot open a gate for an approval already over.
                actionExecutionId: e.actionExecutionId,
                time: closure.at,
                // The end event's own account: the gate's events name the pipeline's ARN with it.
                account: e.account,
                region: this.d.config.region,
              },
              closure.at,
              now,
              // Closed from the start: it waits for no scan.
              closure.at,
            ),
            state: 'CLOSED',
            closure,
            startUnseen: true,
            // No token was seen, so CloudTrail's record cannot find this gate: only the listing can name who
            // answered.
            reconcileAt: reconcileAfterEnd(
              closure,
              'CLOSED',
              { reviewer: undefined, approvalResult: undefined },
              now,
            ),
          },
          now,
          `approval ended ${e.state} before Tollgate saw it start`,
        );
        const resolution = resolutionEntry(tombstone, undefined, resolutionOf(tombstone), closure.at);
        const { result: created } = await this.appending(e.key.pipeline, resolution, head, (record) =>
          this.d.store.createGate(tombstone, record),
        );
        if (created) {
          this.publish(
            () => gateStateEvent(tombstone, undefined, this.region(tombstone), this.account(tombstone)),
            () => gateClosedEvent(tombstone, this.region(tombstone), this.account(tombstone)),
          );
          return report(tombstone, 'closed before it was seen starting');
        }
        continue;
      }
      if (gate.closure) return report(gate, 'already closed');
      // Read beside the gate, the decision may have been read before a decision landed that the gate read
      // after shows: the resolution record would say the approval closed undecided. The gate and its decision
      // are written together, so read after the gate, it is there.
      if (gate.outcome !== undefined && decision === undefined) {
        decision = await this.d.store.getDecision(key);
        if (decision === undefined)
          throw new GateWorkFailed(`gate ${gateId(key)} has an outcome but no stored decision`, []);
      }
      // A STALE gate keeps its state (the gate's own verdict on it) and only records how the action ended.
      const state = gate.state === 'STALE' ? 'STALE' : 'CLOSED';
      const next = this.next(
        gate,
        { state, closure, reconcileAt: reconcileAfterEnd(closure, state, gate, now) },
        now,
        `approval ended: ${e.state}`,
      );
      const resolution = resolutionEntry(next, decision, resolutionOf(next), closure.at);
      const { result: updated } = await this.appending(e.key.pipeline, resolution, head, (record) =>
        this.d.store.updateGate(next, gate.version, record),
      );
      if (updated) {
        // A STALE gate's state does not change when its action ends: only what ended it is news.
        if (next.state !== gate.state)
          this.publish(() => gateStateEvent(next, gate.state, this.region(next), this.account(next)));
        this.publish(() => gateClosedEvent(next, this.region(next), this.account(next)));
        // Only a gate still waiting: a DECIDED one has decided, and its approval often ends by its own result,
        // whose end event can come before the action is recorded.
        if (gate.state === 'WAITING') this.d.metrics.count('GatesClosedUndecided');
        return { ...report(next, `closed: ${e.state}`), changed: true };
      }
    }
    throw new GateWorkFailed(
      `gate ${gateId(e.key)}: could not record its end after ${UPDATE_ATTEMPTS} attempts`,
      [],
    );
  }

  async approvalResultCalled(e: ApprovalResultCall): Promise<GateReport | undefined> {
    if (!e.token) {
      this.d.log.warn('PutApprovalResult call without a token: cannot tell which gate it resolved', {
        identity: e.identity,
      });
      return undefined;
    }
    const tokenHash = hashToken(e.token);
    return this.recordReviewer(e, () => this.d.store.gateByTokenHash(tokenHash));
  }

  /**
   * Records who resolved the gate's approval: CloudTrail's record of the call (`source` undefined), or, when
   * the sweep closes a gate whose end and record never came, the run's `updatedBy` in ListActionExecutions
   * (`listing`). CloudTrail's record, when it comes, replaces the listing's: it says more (the identity's type,
   * the session's source identity); the listing's never replaces anything.
   */
  protected async recordReviewer(
    e: Omit<ApprovalResultCall, 'token'>,
    locate: () => Promise<Gate | undefined>,
    source?: 'listing',
  ): Promise<GateReport | undefined> {
    const underOwnRole = this.ownRole(e.identity, source);
    let decision: StoredDecision | undefined;
    let head: HeadRead;
    let found: Gate | undefined;
    for (let attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
      // Found once (by the token's index, which lags its writes); read again by key after a lost race, since
      // the index could answer every retry with the version that just lost.
      const gate: Gate | undefined =
        found === undefined ? await locate() : await this.d.store.getGate(found.key);
      found = gate;
      if (!gate && source === 'listing') return undefined;
      if (!gate) {
        // An approval of a pipeline Tollgate does not gate, one that started before Tollgate was deployed,
        // or one whose token Tollgate never saw: counted and logged, so that a reviewer who cannot be
        // recorded is seen rather than silently missing from the audit trail.
        this.d.metrics.count('ApprovalResultsUnmatched');
        this.d.log.warn('PutApprovalResult for no gate Tollgate knows: its reviewer is not recorded', {
          identity: e.identity,
          status: e.status,
          time: e.time,
          ...e.named,
        });
        // Tollgate sends a result only for a gate it decided, with the token whose hash it keeps: a call under
        // its role that matches no gate is someone borrowing the role (a gate not yet told its token is the
        // easy target), and pages like one that matches. Rarely, Tollgate's own call whose record was lost.
        if (underOwnRole) this.borrowedRole(e, undefined, 'it matches no gate');
        return undefined;
      }
      if (gate.reviewer && (source === 'listing' || gate.reviewer.source === 'listing')) {
        if (source === 'listing') return report(gate, 'reviewer already recorded');
        // CloudTrail's record of the call the sweep read from the listing: it replaces it, below.
      } else if (gate.reviewer) {
        // This very call, recorded by an earlier delivery that failed after its write landed (a lost answer, a
        // timeout before the metrics went out): the borrowed role is counted again rather than never paged.
        const same = gate.reviewer.identity === e.identity && gate.reviewer.status === e.status;
        if (same && underOwnRole && !gate.reviewer.tollgate) this.borrowedRole(e, gate, 'recorded before');
        return report(gate, 'reviewer already recorded');
      }
      if (!head) {
        head = this.d.store.auditHead(gate.key.pipeline);
        head.catch(() => undefined);
      }
      decision ??= await this.d.store.getDecision(gate.key);
      const now = this.now();
      const at = eventTime(e.time, now);
      // Tollgate's own call, whose answer was lost (the retry found the approval completed): CloudTrail says
      // it landed, so the result the gate sent is the approval's.
      // Only the result the gate's own outcome sends is Tollgate's: a call under its role with another status,
      // or on a gate it escalated (Tollgate never answers those), is someone borrowing the role, recorded as a
      // reviewer like any person (the identity names the role), never as Tollgate.
      const status = e.status === 'Approved' || e.status === 'Rejected' ? e.status : undefined;
      const ownResult =
        gate.outcome === 'APPROVE' ? 'Approved' : gate.outcome === 'REJECT' ? 'Rejected' : undefined;
      const tollgate = underOwnRole && status !== undefined && status === ownResult;
      const sent: Partial<Gate> =
        tollgate && gate.approvalResult === undefined && status !== undefined
          ? { approvalResult: { status, summary: e.summary ?? '' } }
          : {};
      const next = this.next(
        gate,
        {
          ...sent,
          reviewer: {
            identity: e.identity,
            type: e.identityType,
            ...(e.sourceIdentity ? { sourceIdentity: e.sourceIdentity } : {}),
            status: e.status,
            summary: e.summary,
            at,
            tollgate,
            ...(source ? { source } : {}),
          },
          // Named, a gate whose end is recorded has nothing left for the sweep to ask.
          reconcileAt: gate.closure === undefined ? gate.reconcileAt : undefined,
        },
        now,
        `${source === 'listing' ? 'ListActionExecutions' : 'CloudTrail'}: ${
          tollgate ? 'Tollgate sent the result' : `${e.status ?? 'resolved'} by ${e.identity}`
        }`,
      );
      const resolution = resolutionEntry(next, decision, resolutionOf(next), at);
      const { result: updated } = await this.appending(gate.key.pipeline, resolution, head, (record) =>
        this.d.store.updateGate(next, gate.version, record),
      );
      if (updated) {
        // Counted for the record written, not for each lost race (a redelivery counts again: above).
        // Replacing the listing's record of the same call: counted when the listing's was recorded (which may
        // name the role, where CloudTrail names its session).
        const counted =
          gate.reviewer?.source === 'listing' &&
          !gate.reviewer.tollgate &&
          gate.reviewer.status === e.status &&
          this.ownRole(gate.reviewer.identity, 'listing');
        if (underOwnRole && !tollgate && !counted) this.borrowedRole(e, gate, "recorded as a person's");
        // CloudTrail delivers its record minutes after the action's end event as a rule, so the Gate Closed
        // already sent said `reviewer: null`: who resolved the approval goes out again, or no subscriber
        // would ever learn it.
        if (next.closure !== undefined)
          this.publish(() => gateClosedEvent(next, this.region(next), this.account(next)));
        return { ...report(next, `reviewer ${e.identity}`), changed: true };
      }
    }
    throw new GateWorkFailed(`could not record the reviewer after ${UPDATE_ATTEMPTS} attempts`, []);
  }

  /**
   * Whether the identity is Tollgate's own role: a session of it (an assumed-role ARN whose role is one of
   * Tollgate's, by its exact name; TollgateGateRoleAdmin is not TollgateGateRole); the listing's `updatedBy`
   * may also name the role itself. The ARN is read whole, never searched: an IAM user's path may hold any
   * printable text (`user/ops:assumed-role/TollgateGateRole/mallory`), and a person so named would be
   * recorded as Tollgate.
   */
  private ownRole(identity: string, source: 'listing' | undefined): boolean {
    const role = ASSUMED_ROLE_ARN.exec(identity) ?? (source === 'listing' ? ROLE_ARN.exec(identity) : null);
    if (role === null) return false;
    const [, account, name] = role;
    if (this.d.config.account !== undefined && account !== this.d.config.account) return false;
    return this.d.config.ownIdentities.some((id) => id !== '' && id === name);
  }

  /** A PutApprovalResult under Tollgate's role with a result Tollgate did not send (alarmed). */
  private borrowedRole(e: Omit<ApprovalResultCall, 'token'>, gate: Gate | undefined, what: string): void {
    this.d.metrics.count('ApprovalResultsUnderTollgateRole');
    this.d.log.warn(`PutApprovalResult under Tollgate's role that Tollgate did not send: ${what}`, {
      ...(gate === undefined ? { ...e.named } : { gate: gateId(gate.key), outcome: gate.outcome }),
      identity: e.identity,
      status: e.status,
    });
  }

  // ── plumbing ────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Appends `entry` to the pipeline's audit chain with `write` (which carries the record in its own
   * transaction): chained on `head` (read now when not given); when another gate of the pipeline appended
   * first, the head is read again and the record chained anew. The write's own result is returned as is.
   */
  protected async appending<T>(
    pipeline: string,
    entry: AuditEntry,
    head: HeadRead,
    write: (record: AuditRecord) => Promise<T>,
    readHead: (pipeline: string) => Promise<ChainHead | undefined> = (p) => this.d.store.auditHead(p),
    attempts: number = CHAIN_ATTEMPTS,
  ): Promise<{ result: T; record: AuditRecord }> {
    // A head read beforehand (beside other reads) that failed is read again: after an action, failing here
    // would leave the action unrecorded, and the sweep would act again.
    let current = head === undefined ? await readHead(pipeline) : await head.catch(() => readHead(pipeline));
    for (let attempt = 1; ; attempt++) {
      const record = chainRecord(entry, pipeline, current);
      try {
        return { result: await write(record), record };
      } catch (error) {
        if (!(error instanceof ChainHeadMovedError) || attempt >= attempts) throw error;
        this.d.metrics.count('AuditChainRetries');
        if (attempt > 1)
          await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 20 * attempt)));
        current = await readHead(pipeline);
      }
    }
  }

  protected next(gate: Gate, changes: Partial<Gate>, now: Date, what: string): Gate {
    return entry({ ...gate, ...changes, version: gate.version + 1, updatedAt: now.toISOString() }, now, what);
  }

  protected now(): Date {
    return this.d.clock.now();
  }

  protected region(gate: Gate): string {
    return gate.region || this.d.config.region;
  }

  protected account(gate: Gate): string | undefined {
    return gate.account || this.d.config.account;
  }

  protected accountField(gate: Gate): { account?: string } {
    const account = this.account(gate);
    return account === undefined ? {} : { account };
  }

  /**
   * Publishing is best effort by design: events are built and kept, then sent together when the invocation
   * ends (`flush`); a failure is logged and counted (per event) and never changes a decision.
   */
  protected publish(...builders: ReadonlyArray<() => TollgateEvent>): void {
    for (const build of builders) {
      try {
        this.outbox.push(build());
      } catch (error) {
        // A detail that does not fit its schema is a bug to see in the logs, not a reason to stop deciding.
        this.publishFailed(error);
      }
    }
    // A sweep through many gates sends as it goes, without waiting: held to the end, every event it built
    // was lost, uncounted, when Lambda ended the invocation at its timeout.
    if (this.outbox.length >= EVENTS_PER_SEND) this.sending.push(this.send());
  }

  private outbox: TollgateEvent[] = [];
  /** Sends started before the invocation ends, awaited by `flush`. */
  private sending: Promise<void>[] = [];

  private publishFailed(error: unknown, lost = 1): void {
    this.d.metrics.count('EventPublishFailures', lost);
    const gates = lostGates(error);
    this.d.log.warn('publishing Tollgate events failed', {
      error: describeError(error),
      // The gates the error names, as gate keys, so that their logs can be found by gate.
      ...(gates.length > 0 ? { gates: gates.map((gate) => ({ gate })) } : {}),
    });
  }

  /** Sends this invocation's events (in batches, by the adapter), before Lambda freezes the process. */
  async flush(): Promise<void> {
    const pending = [...this.sending, this.send()];
    this.sending = [];
    await Promise.all(pending);
  }

  /** Sends the events built so far; a failure is counted and logged, never thrown. */
  private async send(): Promise<void> {
    const events = this.outbox;
    this.outbox = [];
    if (events.length === 0) return;
    await this.d.events
      .publish(events)
      .catch((error: unknown) => this.publishFailed(error, lostCount(error, events.length)));
  }
}

/** Events built before they are sent without waiting for the invocation's end: one PutEvents request's worth. */
export const EVENTS_PER_SEND = 10;

/** The events a failed publish lost: those its `PublishFailure` names, else all it was given. */
function lostCount(error: unknown, given: number): number {
  return error instanceof PublishFailure ? error.failures.length : given;
}

/** The gates (`gateId`) of the events a failed publish lost, each once. */
function lostGates(error: unknown): string[] {
  if (!(error instanceof PublishFailure)) return [];
  return [...new Set(error.failures.flatMap((f) => (f.gate === undefined ? [] : [f.gate])))];
}
