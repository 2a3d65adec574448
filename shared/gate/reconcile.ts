import type { Gate, GateClosure } from './model.js';
import type { ActionExecutionView } from './ports.js';
import { hashToken } from './work.js';

/**
 * How long after acting, and then between asks, the sweep waits before asking CodePipeline whether an ACTED
 * gate's approval has ended. The end event comes within seconds and CloudTrail's record within about 15
 * minutes as a rule: asking sooner would only race them, and an escalation waits for a person for hours.
 */
export const RECONCILE_MS = 15 * 60_000;

/**
 * After this long from its start a gate's approval has ended whatever the listing shows (a manual approval's
 * timeout is 7 days unless its action sets another, at most 60 days): a run still not found by then never
 * will be, and the sweep stops asking.
 */
export const RECONCILE_GIVE_UP_MS = 61 * 24 * 60 * 60_000;

/** How a run's status (ListActionExecutions) ends a gate; `InProgress` and unknown statuses end nothing. */
const CLOSURE_OF_RUN: Readonly<Record<string, GateClosure['state']>> = {
  Succeeded: 'SUCCEEDED',
  Failed: 'FAILED',
  Abandoned: 'ABANDONED',
};

/** The closure a run's status says, or undefined while it runs (or for a status this does not know). */
export function closureOfRun(status: string): GateClosure['state'] | undefined {
  return Object.hasOwn(CLOSURE_OF_RUN, status) ? CLOSURE_OF_RUN[status] : undefined;
}

/** The result a reviewer's PutApprovalResult sent, as the run's status shows it: only a run ended by one. */
export function resultOfRun(status: string): 'Approved' | 'Rejected' | undefined {
  return status === 'Succeeded' ? 'Approved' : status === 'Failed' ? 'Rejected' : undefined;
}

/**
 * Who answered the run, as its listing's `updatedBy` says: only for a run that succeeded, which only someone's
 * Approved does, or one that failed after the gate sent Rejected itself (that rejection, not a timeout). Any
 * other Failed run may be a rejection or the approval's timeout (7 days unless the action sets another, from 5
 * minutes to 60 days, which the listing does not show), and an abandoned one (execution stopped or superseded)
 * was answered by nobody: neither names anyone, whatever `updatedBy` holds. AWS documents
 * `updatedBy` only as "the ARN of the user who changed the pipeline execution details": that it names the
 * PutApprovalResult caller is an assumption, recorded as such (`source: listing`).
 */
export function answeredBy(run: ActionExecutionView, gate: Pick<Gate, 'approvalResult'>): string | undefined {
  const end = closureOfRun(run.status);
  return end !== undefined && answered(end, gate.approvalResult) && run.updatedBy ? run.updatedBy : undefined;
}

/**
 * How long until the sweep asks again about a gate whose approval has not ended: 15 minutes at first, longer
 * as the approval waits (a quarter of its age, at most 6 hours), so an escalation left for days costs a few
 * reads and writes a day, not one every quarter hour.
 */
export function reconcileInterval(gate: Pick<Gate, 'startedAt'>, now: number): number {
  const age = now - Date.parse(gate.startedAt);
  return Math.min(6 * 60 * 60_000, Math.max(RECONCILE_MS, Number.isNaN(age) ? 0 : age / 4));
}

/**
 * Whether the sweep still has to ask about this gate: ACTED, or STALE (given up while its approval ended
 * unseen), without its end; or ended by a person's answer (CLOSED, or STALE when that answer came before
 * Tollgate's) whose CloudTrail record has not named them. The store keeps exactly these gates in its open index.
 */
export function reconcilable(gate: Pick<Gate, 'state' | 'closure' | 'reviewer' | 'reconcileAt'>): boolean {
  if (gate.reconcileAt === undefined) return false;
  if (gate.state !== 'ACTED' && gate.state !== 'CLOSED' && gate.state !== 'STALE') return false;
  if (gate.closure === undefined) return gate.state !== 'CLOSED';
  return gate.state !== 'ACTED' && gate.reviewer === undefined;
}

/**
 * When the sweep first asks about a gate given up STALE before its end was seen: its approval is over or
 * gone, and its end event names how it ended (and appends the resolution record) within seconds as a rule;
 * lost, the listing says it. A gate whose end is already recorded has nothing to ask.
 */
export function reconcileStale(gate: Pick<Gate, 'closure'>, now: Date): string | undefined {
  return gate.closure === undefined ? new Date(now.getTime() + RECONCILE_MS).toISOString() : undefined;
}

/** Whether an approval that ended so was ended by someone's answer (see `answeredBy`). */
function answered(end: GateClosure['state'], sent: Gate['approvalResult']): boolean {
  return end === 'SUCCEEDED' || (end === 'FAILED' && sent?.status === 'Rejected');
}

/**
 * When a gate closed by this end (or a STALE one given its end) still has to be asked about: while nobody is
 * named for an answer that ended its approval (`answeredBy`).
 */
export function reconcileAfterEnd(
  closure: GateClosure,
  state: Gate['state'],
  gate: Pick<Gate, 'reviewer' | 'approvalResult'>,
  now: Date,
): string | undefined {
  return (state === 'CLOSED' || state === 'STALE') &&
    answered(closure.state, gate.approvalResult) &&
    gate.reviewer === undefined
    ? new Date(now.getTime() + RECONCILE_MS).toISOString()
    : undefined;
}

/** Whether the sweep asks about this gate now. */
export function reconcileDue(gate: Gate, now: number): boolean {
  if (!reconcilable(gate) || gate.reconcileAt === undefined) return false;
  const at = Date.parse(gate.reconcileAt);
  // A time that is no time (a hand-edited item) is asked about now, rather than never.
  return Number.isNaN(at) || at <= now;
}

/**
 * The gate's own run among an execution's action runs: by its run id when the gate knows it; else by the
 * token (a PARALLEL-mode run's externalExecutionId) whose hash the gate keeps; else the action's only run.
 * Undefined when none, or when several and nothing tells which.
 */
export function ownRun(gate: Gate, runs: readonly ActionExecutionView[]): ActionExecutionView | undefined {
  const ofAction = runs.filter((r) => r.stage === gate.key.stage && r.action === gate.key.action);
  if (gate.actionExecutionId !== undefined) {
    return ofAction.find((r) => r.actionExecutionId === gate.actionExecutionId);
  }
  if (gate.tokenHash !== undefined) {
    const byToken = ofAction.find(
      (r) => r.externalExecutionId !== undefined && hashToken(r.externalExecutionId) === gate.tokenHash,
    );
    if (byToken) return byToken;
  }
  return ofAction.length === 1 ? ofAction[0] : undefined;
}
