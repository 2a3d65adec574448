import { type GateKey, gateId } from '../shared/gate/model.js';
import type { GateView } from '../simulator/run.js';
import { TOLLGATE_ROLE } from '../simulator/world.js';
import { countsDiffer, oracleOf } from './oracle.js';
import type { Replay } from './replay.js';
import { gateOfToken, type SuiteScenario } from './scenarios.js';

/*
 * The promises the gate makes, checked on a replay against the clean replay of the same scenario.
 *
 * - approval-from-incomplete-data: the gate decided APPROVE (or sent Approved) although the clean run did
 *   not approve, or with a decision whose severity counts differ from the clean run's (fewer findings read:
 *   a partial read; or a scan that was not complete and settled). An APPROVE is legitimate only if the clean
 *   run approves too and the record counts the same findings. Every APPROVE's counts are also held against
 *   the scenario's findings files counted without the project's reader (oracle.ts): the clean run is made
 *   by the same reader, and a reader that loses findings on every run agrees with itself.
 * - decided-not-acted: the gate says it acted (ACTED, or CLOSED with no person's answer) on an APPROVE or
 *   REJECT that CodePipeline never took (no accepted PutApprovalResult of that status in the world's record
 *   of calls), or on an ESCALATE of which SNS delivered nothing (no Publish the world accepted). The world's
 *   record, not the gate's: an adapter that reports a failed call as done would have the gate agree.
 * - lost-gate: a gate the clean run has is missing from the store.
 * - duplicate-action: more than one PutApprovalResult accepted for a gate, more than one escalation
 *   published for it, or both a result and an escalation.
 * - action-without-decision: a result was accepted or an escalation published with no stored decision, or
 *   with a decision that says something else (Approved needs APPROVE, Rejected REJECT, an escalation
 *   ESCALATE).
 * - bad-state: a gate in none of WAITING, DECIDED, ACTED, CLOSED, STALE.
 * - different-decision (duplicates and order only): the outcome of a gate differs from the clean run's.
 * - unreconciled: a gate one of whose ending events was dropped (duplicates and order), or any gate with the
 *   clean run's outcome after the faults stopped (fault matrix), is still ACTED although the clean run's is
 *   not, STALE with no end where the clean run has one, or CLOSED (or STALE) with nobody named for the answer
 *   the clean run names: the sweep's reconciliation (shared/gate/reconcile.ts) did not repair the lost event.
 *   With its ending dropped, a gate must still have sent what the clean run's did (approval result,
 *   escalations): different-decision otherwise. A dropped ending marks only its own gate (execution).
 * - lost-decision (fault matrix): a gate the clean run decided has no decision after the faults stopped and
 *   the run settled. A fault may make it decide otherwise (REJECT or ESCALATE where the clean run approves:
 *   failing closed), not give up; excused only when the clean run's approval ended without its decision
 *   either (no result, no escalation: abandoned or superseded first).
 * - unsettled (fault matrix): the world's approval still waits (InProgress) at the end while its gate is
 *   STALE (given up), holds an APPROVE or REJECT (never sent: a sent one ends the approval), or an ESCALATE
 *   of which SNS delivered nothing. An escalated approval waits for a person: that one is settled.
 * - dead-letter: an event still in the dead-letter queue after the final redrive and sweeps (faults.ts), or
 *   a well-formed event dead-lettered as malformed (hostile.ts): an event lost.
 * - audit-chain: an audit chain the replay left does not verify (a gap, a changed or reordered record, a
 *   head that does not match), or a gate has a decision without exactly one decision record (none: a
 *   decision the trail lost; two: a duplicate delivery appended twice).
 */

export type ViolationKind =
  | 'approval-from-incomplete-data'
  | 'lost-gate'
  | 'duplicate-action'
  | 'action-without-decision'
  | 'decided-not-acted'
  | 'bad-state'
  | 'different-decision'
  | 'audit-chain'
  | 'unquiet'
  | 'expectation'
  | 'secret'
  | 'log'
  | 'crash-loop'
  | 'approval-from-hostile-input'
  | 'dead-fuzz'
  | 'dead-fault'
  | 'dead-lag'
  | 'not-ignored'
  | 'unexpected-exception'
  | 'unlocated-error'
  | 'memory'
  | 'oversized-result'
  | 'unreconciled'
  | 'lost-decision'
  | 'unsettled'
  | 'dead-letter';

export interface Violation {
  readonly kind: ViolationKind;
  readonly gate?: string;
  readonly detail: string;
}

export interface GateActions {
  /**
   * PutApprovalResult calls CodePipeline accepted, by status: answered, or landed with their answer lost
   * (the approval took the result all the same).
   */
  readonly accepted: string[];
  /** PutApprovalResult calls that reached CodePipeline and were refused (already completed, bad token). */
  readonly refused: number;
  /**
   * PutApprovalResult calls sent again although the one before had its answer (accepted or refused): a
   * second result from Tollgate for one approval is excused only when a fault hit the call before it (it
   * never arrived, or it landed and its answer was lost).
   */
  readonly resent: number;
  /** Escalations SNS accepted (a publish whose answer was lost included: SNS delivered it). */
  readonly escalations: number;
  /**
   * Escalations sent again in the at-least-once window of an SNS publish followed by a DynamoDB write:
   * between the two publishes an injected fault hit a store write (and no write recorded the first), or the
   * first publish's answer was lost. Not a duplicate the gate could have avoided: it did not know.
   */
  readonly unrecorded: number;
  /**
   * Of `unrecorded`, those whose first publish had its answer lost (it landed, Tollgate saw an error, so
   * nothing was to be recorded); the others, a store write failed. Both at once counts here: with the
   * answer lost, the gate had no escalation to record, whatever happened to its writes.
   */
  readonly unrecordedAnswerLost: number;
}

type Json = Record<string, unknown>;
type Call = Replay['world']['calls'][number];

function isJson(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The call reached the service and took effect: answered, or landed with its answer lost. */
function landedCall(call: Call): boolean {
  return !call.failed || call.landed === true;
}

const STORE_WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'TransactWriteItems', 'BatchWriteItem']);

/** What Tollgate did to the world, per gate id: results sent to CodePipeline and escalations published. */
export function actionsByGate(s: SuiteScenario, replay: Replay): Map<string, GateActions> {
  const byGate = new Map<
    string,
    {
      accepted: string[];
      refused: number;
      resent: number;
      escalations: number;
      unrecorded: number;
      unrecordedAnswerLost: number;
    }
  >();
  const of = (id: string) => {
    let a = byGate.get(id);
    if (!a) {
      a = { accepted: [], refused: 0, resent: 0, escalations: 0, unrecorded: 0, unrecordedAnswerLost: 0 };
      byGate.set(id, a);
    }
    return a;
  };
  const calls = replay.world.calls;
  const lastPublish = new Map<string, number>();
  const lastResult = new Map<string, Call>();
  calls.forEach((call, index) => {
    if (call.operation === 'PutApprovalResult') {
      const id = gateOfToken(s, String(call.input.token ?? ''), call.input);
      const a = of(id);
      const previous = lastResult.get(id);
      if (previous !== undefined && !previous.injected) a.resent++;
      lastResult.set(id, call);
      if (landedCall(call)) {
        const result = isJson(call.input.result) ? call.input.result : {};
        a.accepted.push(String(result.status));
      } else if (!call.injected) {
        a.refused++;
      }
    }
    if (call.operation === 'Publish' && landedCall(call)) {
      const key = escalatedGate(call.input.Message);
      const id = key ? gateId(key) : `unknown escalation: ${String(call.input.Subject)}`;
      const a = of(id);
      a.escalations++;
      const previous = lastPublish.get(id);
      if (previous !== undefined) {
        const between = calls.slice(previous + 1, index);
        const answerLost = calls[previous]?.landed === true;
        const storeFault = between.some((c) => c.injected && STORE_WRITES.has(c.operation));
        if ((answerLost || storeFault) && !recorded(between, id, a.escalations - 1)) {
          a.unrecorded++;
          if (answerLost) a.unrecordedAnswerLost++;
        }
      }
      lastPublish.set(id, index);
    }
  });
  return byGate;
}

/**
 * Whether one of these store calls wrote the gate with at least `notifications` escalations recorded: a
 * PutItem, or a TransactWriteItems (the write that records an action with its audit record).
 */
function recorded(calls: Replay['world']['calls'], id: string, notifications: number): boolean {
  return calls.some((c) => {
    // A write that landed with its answer lost did record it: the store holds it.
    if (!landedCall(c)) return false;
    const items =
      c.operation === 'PutItem'
        ? [c.input.Item]
        : c.operation === 'TransactWriteItems' && Array.isArray(c.input.TransactItems)
          ? c.input.TransactItems.map((t: unknown) => (isJson(t) && isJson(t.Put) ? t.Put.Item : undefined))
          : [];
    return items.some((candidate) => {
      const item = isJson(candidate) ? candidate : {};
      const gate = isJson(item.gate) ? item.gate : {};
      return (
        item.pk === `GATE#${id}` && item.sk === 'GATE' && Number(gate.notifications ?? 0) >= notifications
      );
    });
  });
}

/** The gate an escalation names (the JSON rendering for machine subscribers, inside the SNS message). */
function escalatedGate(message: unknown): GateKey | undefined {
  try {
    const body: unknown = typeof message === 'string' ? JSON.parse(message) : message;
    if (!isJson(body) || typeof body.sqs !== 'string') return undefined;
    const json: unknown = JSON.parse(body.sqs);
    const gate = isJson(json) && isJson(json.gate) ? json.gate : undefined;
    if (!gate) return undefined;
    const key = {
      pipeline: String(gate.pipeline),
      executionId: String(gate.executionId),
      stage: String(gate.stage),
      action: String(gate.action),
    };
    return typeof gate.attempt === 'number' && gate.attempt > 1 ? { ...key, attempt: gate.attempt } : key;
  } catch {
    return undefined;
  }
}

const STATES = new Set(['WAITING', 'DECIDED', 'ACTED', 'CLOSED', 'STALE']);

export interface CheckOptions {
  /**
   * Gates whose approval STARTED event never reached Tollgate (dropped on purpose): opened later by the
   * sweep's discovery, if at all, so they may be missing or decide otherwise than the clean run (a timeout, a
   * person first); an APPROVE must still be the clean run's.
   */
  readonly unseen?: ReadonlySet<string>;
  /** Of `unseen`, those whose approval still waited when the steps ended: discovery must have opened them. */
  readonly mustFind?: ReadonlySet<string>;
  /**
   * Also require each gate's outcome to be the clean run's (duplicates and order); and, for a gate whose
   * STARTED and ending events all arrived (not in `unseen` nor `endingDropped`), its final state, approval
   * result, reviewer and escalations sent.
   */
  readonly sameDecisions?: boolean;
  /** Gates one of whose ending events (SUCCEEDED, FAILED, … or CloudTrail's PutApprovalResult) was dropped. */
  readonly endingDropped?: ReadonlySet<string>;
  /**
   * The fault matrix: the faults stopped, the dead-letter queue was redriven and the sweeps ran, so every
   * gate must have come to rest as the clean run's did, though perhaps failing closed: lost-decision,
   * unsettled, and (for a gate whose outcome is the clean run's) unreconciled.
   */
  readonly settled?: boolean;
}

type World = Replay['world'];

/**
 * The world's status of the approval a gate is for, for its own execution (a superseded one's is in the
 * slot's history); undefined when the world never ran it.
 */
export function approvalStatus(
  world: World,
  g: Pick<GateView, 'pipeline' | 'stage' | 'action' | 'executionId'>,
): string | undefined {
  const slot = world.findSlot(g.pipeline, g.stage, g.action);
  if (!slot) return undefined;
  if (slot.executionId === g.executionId) return slot.status;
  return slot.history.findLast((h) => h.executionId === g.executionId)?.status;
}

/**
 * Why a gate one of whose ending events may have gone missing did not come to the clean run's end: still
 * ACTED, STALE with no end, or nobody (or someone else) named for the answer; undefined when it did.
 */
export function unreconciledOf(gate: GateView, want: GateView): string | undefined {
  return gate.state === 'ACTED' && want.state !== 'ACTED'
    ? `still ACTED; the clean run ends ${want.state}`
    : gate.state === 'STALE' && gate.closure == null && want.closure != null
      ? `STALE with its end unrecorded; the clean run records ${want.closure.state}`
      : (gate.state === 'CLOSED' || gate.state === 'STALE') &&
          gate.reviewer == null &&
          want.reviewer != null &&
          // Only an answer that ended the approval is named from the listing: a success, or the gate's own
          // rejection (any other failure may be the approval's timeout: reconcile.ts answeredBy).
          (gate.closure?.state === 'SUCCEEDED' ||
            (gate.closure?.state === 'FAILED' && gate.approvalResult?.status === 'Rejected'))
        ? `${gate.state} with nobody named; the clean run names ${want.reviewer.identity}`
        : (gate.state === 'CLOSED' || gate.state === 'STALE') &&
            want.reviewer != null &&
            gate.reviewer?.identity !== want.reviewer.identity
          ? `names ${gate.reviewer?.identity}; the clean run names ${want.reviewer.identity}`
          : undefined;
}

/**
 * A gate whose approval a person answered before it could decide (the outage outlasting the wait for their
 * answer): nothing was left to decide. Only a person's answer ends an approval so (SUCCEEDED, or FAILED by a
 * named reviewer): a timeout or an abandoned run is not an answer, and still counts as a decision lost.
 */
function answeredFirst(gate: GateView): boolean {
  const end = gate.closure?.state;
  return end === 'SUCCEEDED' || (end === 'FAILED' && gate.reviewer != null && !gate.reviewer.tollgate);
}

/** The clean run's approval ended without the gate's decision reaching it: no result sent, nothing escalated. */
function endedUndecided(want: GateView): boolean {
  return want.state !== 'ACTED' && want.approvalResult == null && want.notifications === 0;
}

/**
 * Why a gate that says it acted did not, by the world's record of calls (`acted`); undefined when it did,
 * or when it says nothing of the kind. A gate CLOSED on a person's answer (a reviewer other than Tollgate's
 * role) had its approval ended by that person: its own result was then refused, not lost.
 */
export function decidedNotActed(
  gate: GateView | undefined,
  acted: GateActions,
  want?: GateView,
): string | undefined {
  const outcome = gate?.decision?.outcome;
  if (!gate || (gate.state !== 'ACTED' && gate.state !== 'CLOSED') || !outcome) return undefined;
  if (outcome === 'APPROVE' || outcome === 'REJECT') {
    // A gate that says it acted: ACTED, or holding the result it sent. One decided and then closed by the
    // approval's end before its result went out (abandoned, failed) claims nothing, unless the clean run's
    // sent its result (same outcome): then a CLOSED gate without one lost the result it sent, or never sent it.
    const cleanSent = want?.approvalResult != null && want.decision?.outcome === outcome;
    if (gate.state !== 'ACTED' && gate.approvalResult == null && !cleanSent) return undefined;
    const status = outcome === 'APPROVE' ? 'Approved' : 'Rejected';
    const person = gate.reviewer != null && !gate.reviewer.identity.includes(TOLLGATE_ROLE);
    if (person || acted.accepted.includes(status)) return undefined;
    return `${gate.state} on ${outcome}, yet CodePipeline accepted no ${status} for it (${acted.accepted.length} result(s) accepted: ${acted.accepted.join(', ') || 'none'}; ${acted.refused} refused)`;
  }
  // An ESCALATE CLOSED before anything was sent (a person answered first) says it sent nothing.
  if ((gate.state === 'ACTED' || gate.notifications > 0) && acted.escalations === 0) {
    return `${gate.state} on ESCALATE with ${gate.notifications} escalation(s) recorded, yet SNS delivered none`;
  }
  return undefined;
}

export function viewsById(gates: readonly GateView[]): Map<string, GateView> {
  return new Map(gates.map((g) => [gateId(g), g]));
}

/**
 * What an APPROVE was decided on: the image (its digest), the severity counts, and the findings the
 * decision names (the ids its rules' violations and warnings list, the exceptions it applied). An APPROVE
 * is the clean run's only when all of it is the same: the same counts over other findings, or another image,
 * is not the same decision.
 */
export function decisionBasis(d: GateView['decision']): string {
  if (!d) return 'null';
  const ids = new Set<string>();
  for (const v of [...(d.violations ?? []), ...(d.warnings ?? [])]) {
    for (const f of v.findings ?? []) ids.add(`${v.rule}:${f}`);
  }
  return JSON.stringify({
    digest: d.subject?.digest ?? null,
    counts: d.counts ?? null,
    findings: [...ids].sort(),
    exceptions: [...(d.exceptions?.applied ?? [])].sort(),
  });
}

/** The scenario's own `expect` (hand-written, independent of the suite) against a clean replay. */
export function checkExpectations(s: SuiteScenario, clean: Replay): Violation[] {
  return clean.result.mismatches.map((m) => ({
    kind: 'expectation' as const,
    detail: `${s.name}: the clean replay does not meet the scenario's expectation: ${m}`,
  }));
}

/** Every invariant of the replay `run`, judged against the clean replay of the same scenario. */
export function checkRun(
  s: SuiteScenario,
  clean: Replay,
  run: Replay,
  options: CheckOptions = {},
): Violation[] {
  const violations: Violation[] = [];
  const cleanGates = viewsById(clean.result.gates.filter((g) => g.state !== null));
  const runGates = viewsById(run.result.gates);
  const actions = actionsByGate(s, run);
  const unseen = options.unseen ?? new Set<string>();

  for (const [id, want] of cleanGates) {
    const got = runGates.get(id);
    if ((!got || got.state === null) && (!unseen.has(id) || options.mustFind?.has(id))) {
      violations.push({
        kind: 'lost-gate',
        gate: id,
        detail: unseen.has(id)
          ? `its STARTED event was dropped and the sweep's discovery did not find its waiting approval; the clean run ends ${want.state}`
          : `the clean run ends ${want.state}; no gate here`,
      });
    }
  }

  const ids = new Set([...runGates.keys(), ...actions.keys()]);
  for (const id of ids) {
    const gate = runGates.get(id);
    const want = cleanGates.get(id);
    const acted = actions.get(id) ?? {
      accepted: [],
      refused: 0,
      resent: 0,
      escalations: 0,
      unrecorded: 0,
      unrecordedAnswerLost: 0,
    };
    if (gate && gate.state !== null && !STATES.has(gate.state)) {
      violations.push({ kind: 'bad-state', gate: id, detail: `state ${String(gate.state)}` });
    }

    const approved = gate?.decision?.outcome === 'APPROVE' || acted.accepted.includes('Approved');
    if (approved) {
      const legit =
        want?.decision?.outcome === 'APPROVE' &&
        gate?.decision?.outcome === 'APPROVE' &&
        decisionBasis(gate.decision) === decisionBasis(want.decision);
      if (!legit) {
        violations.push({
          kind: 'approval-from-incomplete-data',
          gate: id,
          detail: `APPROVE on ${gate?.decision ? decisionBasis(gate.decision) : 'no stored decision'}; the clean run: ${want?.decision?.outcome ?? 'no decision'} on ${decisionBasis(want?.decision ?? null)}`,
        });
      }
      // The clean run itself is judged here too (checkRun(s, clean, clean)): its APPROVE must count what
      // the files hold, or a reader that drops the same findings on every run would pass.
      const digest = gate?.decision?.subject?.digest;
      const off =
        gate?.decision?.outcome === 'APPROVE'
          ? typeof digest === 'string'
            ? countsDiffer(gate.decision.counts, oracleOf(s, digest))
            : ['no image digest in the decision']
          : [];
      if (off.length > 0) {
        violations.push({
          kind: 'approval-from-incomplete-data',
          gate: id,
          detail: `APPROVE on counts the scenario's findings files do not hold: ${off.join(', ')}`,
        });
      }
    }

    const repeated = acted.escalations - 1 - acted.unrecorded;
    if (
      acted.accepted.length > 1 ||
      acted.resent > 0 ||
      repeated > 0 ||
      (acted.accepted.length > 0 && acted.escalations > 0)
    ) {
      violations.push({
        kind: 'duplicate-action',
        gate: id,
        detail: `${acted.accepted.length} result(s) accepted (${acted.accepted.join(', ')}), ${acted.resent} sent again after an answered one, ${acted.refused} refused; ${acted.escalations} escalation(s) (${acted.unrecorded} excused: a store write failed or the publish's answer was lost)`,
      });
    }

    const decided = gate?.decision?.outcome;
    for (const status of acted.accepted) {
      const needs = status === 'Approved' ? 'APPROVE' : 'REJECT';
      if (decided !== needs) {
        violations.push({
          kind: 'action-without-decision',
          gate: id,
          detail: `${status} accepted; the stored decision is ${decided ?? 'missing'}`,
        });
      }
    }
    if (acted.escalations > 0 && decided !== 'ESCALATE') {
      violations.push({
        kind: 'action-without-decision',
        gate: id,
        detail: `escalation published; the stored decision is ${decided ?? 'missing'}`,
      });
    }

    const notActed = decidedNotActed(gate, acted, want);
    if (notActed) violations.push({ kind: 'decided-not-acted', gate: id, detail: notActed });

    const records = run.audit.decisions.get(id) ?? 0;
    if ((gate?.decision ? 1 : 0) !== records) {
      violations.push({
        kind: 'audit-chain',
        gate: id,
        detail: `${records} decision record(s) in the audit trail; the gate ${gate?.decision ? 'has a decision' : 'has none'}`,
      });
    }

    if (options.sameDecisions && want && !unseen.has(id) && (gate?.outcome ?? null) !== want.outcome) {
      violations.push({
        kind: 'different-decision',
        gate: id,
        detail: `outcome ${gate?.outcome ?? 'none'}; the clean run: ${want.outcome ?? 'none'}`,
      });
    }
    if (options.sameDecisions && want && gate && !unseen.has(id) && options.endingDropped?.has(id)) {
      const unreconciled = unreconciledOf(gate, want);
      if (unreconciled) violations.push({ kind: 'unreconciled', gate: id, detail: unreconciled });
      // A lost ending may leave the gate's state and reviewer to the sweep's repair, not what it sent: the
      // result CodePipeline took and the escalations published are the clean run's all the same.
      const sent = (g: GateView) => ({
        approvalResult: g.approvalResult?.status ?? null,
        notifications: g.notifications,
      });
      const [got, wanted] = [JSON.stringify(sent(gate)), JSON.stringify(sent(want))];
      if (got !== wanted) {
        violations.push({
          kind: 'different-decision',
          gate: id,
          detail: `an ending event dropped, it sent ${got}; the clean run sent ${wanted}`,
        });
      }
    }
    if (options.settled && want && gate && gate.state !== null) {
      if (want.decision && !gate.decision && !endedUndecided(want) && !answeredFirst(gate)) {
        violations.push({
          kind: 'lost-decision',
          gate: id,
          detail: `${gate.state} with no decision; the clean run decided ${want.decision.outcome} and ends ${want.state}`,
        });
      }
      // A gate answered before it decided still names who answered, as the clean run's does.
      if (gate.outcome === want.outcome || (!gate.decision && answeredFirst(gate))) {
        const unreconciled = unreconciledOf(gate, want);
        if (unreconciled) violations.push({ kind: 'unreconciled', gate: id, detail: unreconciled });
      }
    }
    if (options.settled && gate && gate.state !== null && approvalStatus(run.world, gate) === 'InProgress') {
      const outcome = gate.decision?.outcome;
      const why =
        gate.state === 'STALE'
          ? 'STALE'
          : outcome === 'APPROVE' || outcome === 'REJECT'
            ? `${gate.state} on ${outcome}, its result never taken`
            : outcome === 'ESCALATE' && acted.escalations === 0
              ? `${gate.state} on ESCALATE, nothing delivered by SNS`
              : undefined;
      if (why) {
        violations.push({
          kind: 'unsettled',
          gate: id,
          detail: `${why} while its approval still waits in CodePipeline (InProgress); the clean run ends ${want ? `${want.state}/${want.outcome ?? '-'}` : 'without this gate'}`,
        });
      }
    }
    if (options.sameDecisions && want && gate && !unseen.has(id) && !options.endingDropped?.has(id)) {
      const ending = (g: GateView) => ({
        state: g.state,
        approvalResult: g.approvalResult?.status ?? null,
        reviewer: g.reviewer?.identity ?? null,
        notifications: g.notifications,
      });
      const [got, wanted] = [JSON.stringify(ending(gate)), JSON.stringify(ending(want))];
      if (got !== wanted) {
        violations.push({
          kind: 'different-decision',
          gate: id,
          detail: `ends ${got}; the clean run ends ${wanted}`,
        });
      }
    }
  }
  for (const problem of run.audit.verify.problems) {
    violations.push({
      kind: 'audit-chain',
      detail: `${problem.pipeline} #${problem.seq} ${problem.kind}: ${problem.detail}`,
    });
  }
  for (const problem of run.audit.raw) {
    violations.push({ kind: 'audit-chain', detail: `raw items: ${problem}` });
  }
  return violations;
}
