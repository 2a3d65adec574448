import type { Severity } from '../findings/finding.js';
import type { ImplicitRuleId } from '../policy/schema.js';

export type Outcome = 'APPROVE' | 'REJECT' | 'ESCALATE';
export type ViolationAction = 'reject' | 'escalate' | 'warn';

export interface Violation {
  /** A rule id of the policy, or one of the implicit ids. */
  readonly rule: string;
  readonly action: ViolationAction;
  readonly allow: number;
  /** Matching findings (after de-duplication and exceptions). Implicit violations about the scan or the gate carry none. */
  readonly count: number;
  /** Distinct vulnerability ids of the matching findings, sorted. */
  readonly findings: readonly string[];
  /**
   * Stored decisions only: ids left out of `findings` so that the decision fits the table's item limit
   * (absent when none were).
   */
  readonly findingsOmitted?: number;
  /** The rule's description; for implicit violations, why they were raised. */
  readonly description?: string;
}

export interface ExceptionsByState {
  readonly applied: readonly string[];
  readonly expired: readonly string[];
  readonly revoked: readonly string[];
  readonly unused: readonly string[];
  readonly expiringSoon: readonly string[];
}

export interface DecisionSubject {
  readonly repository: string | null;
  readonly digest: string | null;
  readonly tags: readonly string[];
  readonly pipeline: string | null;
}

/**
 * The decision record of the policy spec §3: printed by `tollgate evaluate --format json`, stored by the
 * gate, read by auditors. Field names are a contract; add fields, never rename them.
 */
export interface DecisionRecord {
  readonly outcome: Outcome;
  readonly mode: 'enforce' | 'advisory';
  /** Advisory mode only: what enforce mode would have decided. */
  readonly wouldBe?: Outcome;
  readonly summary: string;
  readonly policy: { readonly name: string; readonly sha256: string };
  readonly subject: DecisionSubject;
  readonly counts: Readonly<Record<Severity, number>>;
  readonly violations: readonly Violation[];
  readonly warnings: readonly Violation[];
  readonly exceptions: ExceptionsByState;
  readonly ignored: number;
  readonly evaluatedAt: string;
}

export const IMPLICIT_DESCRIPTIONS: Readonly<Record<ImplicitRuleId, string>> = {
  'unknown-severity': 'findings whose severity is UNTRIAGED or not recognised',
  'scan-incomplete': 'the scan cannot give a verdict',
  'scan-timeout': 'no completed, settled scan within the wait',
  error: 'the gate could not finish the evaluation',
};

/** The CodePipeline approval summary's limit (PutApprovalResult `summary`). */
export const SUMMARY_MAX = 512;
