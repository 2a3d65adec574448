import { type GateKey, gateId } from '../shared/gate/model.js';
import type { GateView } from '../simulator/run.js';
import type { Replay } from './replay.js';
import { gateOfToken, type SuiteScenario } from './scenarios.js';

/*
 * The promises the gate makes, checked on a replay against the clean replay of the same scenario.
 *
 * - approval-from-incomplete-data: the gate decided APPROVE (or sent Approved) although the clean run did
 *   not approve, or with a decision whose severity counts differ from the clean run's (fewer findings read:
 *   a partial read; or a scan that was not complete and settled). An APPROVE is legitimate only if the clean
 *   run approves too and the record counts the same findings.
 * - lost-gate: a gate the clean run has is missing from the store.
 * - duplicate-action: more than one PutApprovalResult accepted for a gate, more than one escalation
 *   published for it, or both a result and an escalation.
 * - action-without-decision: a result was accepted or an escalation published with no stored decision, or
 *   with a decision that says something else (Approved needs APPROVE, Rejected REJECT, an escalation
 *   ESCALATE).
 * - bad-state: a gate in none of WAITING, DECIDED, ACTED, CLOSED, STALE.
 * - different-decision (duplicates and order only): the outcome of a gate differs from the clean run's.
 * - audit-chain: an audit chain the replay left does not verify (a gap, a changed or reordered record, a
 *   head that does not match), or a gate has a decision without exactly one decision record (none: a
 *   decision the trail lost; two: a duplicate delivery appended twice).
 */

export type ViolationKind =
  | 'approval-from-incomplete-data'
  | 'lost-gate'
  | 'duplicate-action'
  | 'action-without-decision'
  | 'bad-state'
  | 'different-decision'
  | 'audit-chain'
  | 'unquiet'
  | 'log'
  | 'crash-loop'
  | 'approval-from-hostile-input'
  | 'not-ignored'
  | 'unexpected-exception'
  | 'unlocated-error'
  | 'memory';

export interface Violation {
  readonly kind: ViolationKind;
  readonly gate?: string;
  readonly detail: string;
}

export interface GateActions {
  /** PutApprovalResult calls CodePipeline accepted, by status. */
  readonly accepted: string[];
  /** PutApprovalResult calls that reached CodePipeline and were refused (already completed, bad token). */
  readonly refused: number;
  /** Escalations SNS accepted. */
  readonly escalations: number;
  /**
   * Escalations sent again because the store never recorded the one before (every write after it failed):
   * the at-least-once window of an SNS publish followed by a DynamoDB write. Not a duplicate the gate could
   * have avoided: it did not know.
   */
  readonly unrecorded: number;
}

type Json = Record<string, unknown>;

function isJson(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What Tollgate did to the world, per gate id: results sent to CodePipeline and escalations published. */
export function actionsByGate(s: SuiteScenario, replay: Replay): Map<string, GateActions> {
  const byGate = new Map<
    string,
    { accepted: string[]; refused: number; escalations: number; unrecorded: number }
  >();
  const of = (id: string) => {
    let a = byGate.get(id);
    if (!a) {
      a = { accepted: [], refused: 0, escalations: 0, unrecorded: 0 };
      byGate.set(id, a);
    }
    return a;
  };
  const calls = replay.world.calls;
  const lastPublish = new Map<string, number>();
  calls.forEach((call, index) => {
    if (call.operation === 'PutApprovalResult') {
      const id = gateOfToken(s, String(call.input.token ?? ''), call.input);
      if (!call.failed) {
        const result = isJson(call.input.result) ? call.input.result : {};
        of(id).accepted.push(String(result.status));
      } else if (!call.injected) {
        of(id).refused++;
      }
    }
    if (call.operation === 'Publish' && !call.failed) {
      const key = escalatedGate(call.input.Message);
      const id = key ? gateId(key) : `unknown escalation: ${String(call.input.Subject)}`;
      const a = of(id);
      a.escalations++;
      const previous = lastPublish.get(id);
      if (previous !== undefined && !recorded(calls.slice(previous + 1, index), id, a.escalations - 1))
        a.unrecorded++;
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
    if (c.failed) return false;
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
  /** Also require each gate's outcome to be the clean run's (duplicates and order). */
  readonly sameDecisions?: boolean;
}

export function viewsById(gates: readonly GateView[]): Map<string, GateView> {
  return new Map(gates.map((g) => [gateId(g), g]));
}

function sameCounts(a: GateView['decision'], b: GateView['decision']): boolean {
  return JSON.stringify(a?.counts ?? null) === JSON.stringify(b?.counts ?? null);
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
    const acted = actions.get(id) ?? { accepted: [], refused: 0, escalations: 0, unrecorded: 0 };
    if (gate && gate.state !== null && !STATES.has(gate.state)) {
      violations.push({ kind: 'bad-state', gate: id, detail: `state ${String(gate.state)}` });
    }

    const approved = gate?.decision?.outcome === 'APPROVE' || acted.accepted.includes('Approved');
    if (approved) {
      const legit =
        want?.decision?.outcome === 'APPROVE' &&
        gate?.decision?.outcome === 'APPROVE' &&
        sameCounts(gate.decision, want.decision);
      if (!legit) {
        violations.push({
          kind: 'approval-from-incomplete-data',
          gate: id,
          detail: `APPROVE with counts ${JSON.stringify(gate?.decision?.counts ?? null)}; the clean run: ${want?.decision?.outcome ?? 'no decision'} with ${JSON.stringify(want?.decision?.counts ?? null)}`,
        });
      }
    }

    const repeated = acted.escalations - 1 - acted.unrecorded;
    if (acted.accepted.length > 1 || repeated > 0 || (acted.accepted.length > 0 && acted.escalations > 0)) {
      violations.push({
        kind: 'duplicate-action',
        gate: id,
        detail: `${acted.accepted.length} result(s) accepted (${acted.accepted.join(', ')}), ${acted.escalations} escalation(s) (${acted.unrecorded} after an unrecorded one)`,
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
  }
  for (const problem of run.audit.verify.problems) {
    violations.push({
      kind: 'audit-chain',
      detail: `${problem.pipeline} #${problem.seq} ${problem.kind}: ${problem.detail}`,
    });
  }
  return violations;
}
