import type { Severity } from '../findings/finding.js';
import { clipUnits, wellFormed } from '../text.js';
import { causesFirst } from './causes.js';
import { type Outcome, SUMMARY_MAX, type Violation } from './record.js';

export interface SummaryViolation extends Violation {
  /** Matching findings by severity, for "2 CRITICAL, 1 HIGH". */
  readonly bySeverity: ReadonlyMap<Severity, number>;
}

export interface SummaryInput {
  readonly outcome: Outcome;
  readonly wouldBe: Outcome | undefined;
  readonly policyName: string;
  readonly violations: readonly SummaryViolation[];
  readonly warnings: readonly SummaryViolation[];
}

/**
 * One line a reviewer reads in the CodePipeline console: outcome, policy, violated rules. It must fit the
 * approval summary (512 characters), so detail is shed in steps (fewer ids, then no ids, then a cut)
 * rather than cutting a rule name in half whenever that can be avoided.
 */
export function buildSummary(input: SummaryInput): string {
  const head =
    input.wouldBe === undefined
      ? `${input.outcome} by policy ${input.policyName}`
      : `${input.outcome} (advisory; would be ${input.wouldBe}) by policy ${input.policyName}`;
  for (const ids of [5, 2, 0]) {
    const text = wellFormed(compose(head, input, ids));
    if (text.length <= SUMMARY_MAX) return text;
  }
  // Cut by UTF-16 units, as the limit counts, never through a character (half of one is no UTF-8).
  return clipUnits(wellFormed(compose(head, input, 0)), SUMMARY_MAX);
}

function compose(head: string, input: SummaryInput, ids: number): string {
  const parts = causesFirst(input.violations, input.outcome, input.wouldBe).map((v) => describe(v, ids));
  let text = `${head}: ${parts.length === 0 ? 'no violations' : parts.join('; ')}`;
  if (input.warnings.length > 0) {
    text += `; warnings: ${input.warnings.map((w) => describe(w, Math.min(ids, 2))).join('; ')}`;
  }
  return text;
}

function describe(v: SummaryViolation, ids: number): string {
  if (v.count === 0 && v.findings.length === 0) {
    return v.description ? `${v.rule} (${v.description})` : v.rule;
  }
  const severities = [...v.bySeverity.entries()].map(([s, n]) => `${n} ${s}`).join(', ');
  const counted = severities === '' ? String(v.count) : severities;
  if (ids === 0 || v.findings.length === 0) return `${v.rule} (${counted})`;
  const shown = v.findings.slice(0, ids).join(', ');
  const more = v.findings.length > ids ? ` +${v.findings.length - ids} more` : '';
  return `${v.rule} (${counted}: ${shown}${more})`;
}
