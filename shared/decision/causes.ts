import { IMPLICIT_DESCRIPTIONS, type Outcome, type ViolationAction } from './record.js';

// Its own module, with nothing at its top that runs: the functions that only close gates import the event
// builders, and must not carry the policy schema or the summary with them.

const ACTION_OF: Readonly<Record<Outcome, ViolationAction | null>> = {
  REJECT: 'reject',
  ESCALATE: 'escalate',
  APPROVE: null,
};

/**
 * The violations in the order a line cut for length should keep them: those that set the outcome first,
 * then (advisory mode) those that set what enforce mode would do, then the rest, each group in policy
 * order. Implicit violations come last in a decision, and in advisory mode only they set the outcome: a
 * scan that could not be read must not hide behind "..." after the rules that changed nothing.
 */
export function causesFirst<V extends { readonly rule: string; readonly action: ViolationAction }>(
  violations: readonly V[],
  outcome: Outcome,
  wouldBe: Outcome | null | undefined,
): V[] {
  // Array.prototype.sort is stable: each group keeps the policy's order.
  return [...violations].sort((a, b) => causeRank(a, outcome, wouldBe) - causeRank(b, outcome, wouldBe));
}

/** 0: the violation sets the outcome; 1: it sets what enforce mode would do (advisory mode); 2: neither. */
export function causeRank(
  v: { readonly rule: string; readonly action: ViolationAction },
  outcome: Outcome,
  wouldBe: Outcome | null | undefined,
): number {
  const advisory = wouldBe !== null && wouldBe !== undefined;
  if (v.action === ACTION_OF[outcome] && (!advisory || isImplicitRule(v.rule))) return 0;
  if (advisory && v.action === ACTION_OF[wouldBe]) return 1;
  return 2;
}

/** A violation the evaluator makes itself (`scan-incomplete`, `error`, …), not a policy rule. */
export function isImplicitRule(rule: string): boolean {
  return Object.hasOwn(IMPLICIT_DESCRIPTIONS, rule);
}
