import { createHash } from 'node:crypto';
import type { ChainHead } from '../audit/chain.js';
import type { Outcome } from '../decision/record.js';
import { type Gate, type GateKey, type GateState, gateId } from './model.js';

/*
 * What every part of the gate's work shares, deciding or closing: the report of a call, the timeline, the
 * failure that makes an event retried, and the small conversions both sides apply to what events carry.
 */

export interface ApprovalStarted {
  readonly key: GateKey;
  readonly actionExecutionId: string | undefined;
  /** The event's `time`: the wait counts from it. */
  readonly time: string;
  readonly account: string;
  readonly region: string;
  /** The sweep found the approval in progress with no gate: its STARTED event never came (discovery.ts). */
  readonly found?: boolean;
}

/** What one call into the gate did, for the handler's log line and the local run. */
export interface GateReport {
  readonly gate: string;
  readonly state: GateState;
  readonly outcome: Outcome | undefined;
  readonly note: string;
  /** This call opened the gate (approval-started; not a duplicate delivery, nor a lost race). */
  readonly opened?: boolean;
  /** This call wrote the closure or reviewer its note names (not a duplicate delivery, nor a lost race). */
  readonly changed?: boolean;
}

const TIMELINE_MAX = 40;
/** Conditional writes of one gate that lost to a concurrent writer, before the call gives up (and is retried). */
export const UPDATE_ATTEMPTS = 6;
/** Appends that lost their place in the audit chain to another gate of the pipeline, before giving up. */
export const CHAIN_ATTEMPTS = 10;
/**
 * The same, for recording an action that went out: giving up there leaves it unrecorded, and the sweep sends
 * it again (a second page), so the append keeps trying as long as one invocation reasonably can.
 */
export const CHAIN_ATTEMPTS_AFTER_ACTION = 40;

/** The audit chain's head as read (or being read) beforehand; undefined: read it when appending. */
export type HeadRead = Promise<ChainHead | undefined> | undefined;

/** Thrown at the end of a call that left work undone, so that the event is retried or dead-lettered. */
export class GateWorkFailed extends Error {
  constructor(
    message: string,
    readonly causes: readonly unknown[],
  ) {
    super(message);
    this.name = 'GateWorkFailed';
  }
}

/** A new gate, WAITING, as an approval that started at `startedAt` opens it; its scan wait runs out at `deadline`. */
export function newGate(e: ApprovalStarted, startedAt: string, now: Date, deadline: string): Gate {
  return {
    key: e.key,
    state: 'WAITING',
    version: 1,
    account: e.account,
    region: e.region,
    actionExecutionId: e.actionExecutionId,
    startedAt,
    deadline,
    image: undefined,
    imageProblem: undefined,
    tokenHash: undefined,
    lastRead: undefined,
    outcome: undefined,
    decidedAt: undefined,
    summary: undefined,
    approvalResult: undefined,
    notifications: 0,
    actingUntil: undefined,
    staleReason: undefined,
    closure: undefined,
    reviewer: undefined,
    timeline: [],
    updatedAt: now.toISOString(),
  };
}

export function entry(gate: Gate, now: Date, what: string): Gate {
  const timeline = [...gate.timeline, { at: now.toISOString(), what }];
  return { ...gate, timeline: timeline.length > TIMELINE_MAX ? timeline.slice(-TIMELINE_MAX) : timeline };
}

export function report(gate: Gate, note: string): GateReport {
  return { gate: gateId(gate.key), state: gate.state, outcome: gate.outcome, note };
}

/** The token is a credential for the approval: only its hash is stored, to match CloudTrail's record. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token.toLowerCase()).digest('hex');
}

export function validTime(text: string): string | undefined {
  const t = Date.parse(text);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

/**
 * An event's time as Tollgate keeps it: never later than its own clock, and its clock's when the event's is no
 * time. Dated ahead (a clock that runs ahead, a forged or hand-made event), an approval's start would put its
 * deadline as far ahead (never timed out, never counted overdue), and an audit record would read as forged.
 * (Not a scan's: its count is of its own time, see gate.ts scanFinished.)
 */
export function eventTime(text: string, now: Date): string {
  const t = Date.parse(text);
  return Number.isNaN(t) || t > now.getTime() ? now.toISOString() : new Date(t).toISOString();
}

/** What a sweep knows of its invocation's time: Lambda's remaining time, when it runs in Lambda. */
export interface SweepTime {
  readonly timeLeftMs?: () => number;
}

/**
 * A sweep starts no more work with less time than this left: Lambda's timeout would cut it in half and lose
 * the function's logs and metrics. One stalled AWS call alone takes 5 attempts of at most 20 s each (a 10 s
 * request timeout until the headers, then 10 s of a body gone quiet) plus at most 0.2 + 0.4 + 0.8 + 1.6 s of
 * backoff, ~103 s (adapters/aws/retry.ts: DEFAULT_RETRY, attemptMaxMs); the rest is margin for the gate's
 * other, answering calls.
 */
export const SWEEP_STOP_MS = 120_000;

/** `work` for each item, at most `concurrency` at a time, in the items' order. */
export async function inTurn<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, concurrency), items.length) }, worker));
}

export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const name = error.name && error.name !== 'Error' ? `${error.name}: ` : '';
    return `${name}${error.message}`.slice(0, 300);
  }
  return String(error).slice(0, 300);
}
