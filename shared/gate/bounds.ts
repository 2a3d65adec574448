import type { Violation } from '../decision/record.js';
import type { StoredDecision } from './model.js';

/**
 * Room for a stored decision's JSON. DynamoDB refuses an item over 400 KB, and a decision it refuses is
 * refused on every delivery and every sweep: the gate would wait, never decided, until CodePipeline's own
 * timeout. The audit record copies the record's violations beside up to 300 KB in all, so the decision
 * keeps well under both. JSON bytes are an estimate: the store measures the item its own way and refuses one
 * over the limit by name (ItemTooLargeError); half the limit leaves room for the difference.
 */
export const DECISION_BUDGET = 200_000;

const bytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value), 'utf8');

/**
 * The decision as it can be stored: within `budget`, its violations' and warnings' vulnerability ids are cut
 * to the same number each (the first ids of each sorted list, the most that fit), each cut list saying how
 * many it left out (`findingsOmitted`); when even empty lists do not fit, the findings shown per violation
 * are cut the same way (`more` counts them). Outcome, counts and summary are the evaluation's, untouched: only
 * what explains them is shortened. A decision that fits is returned as it is.
 */
export function boundedDecision(decision: StoredDecision, budget = DECISION_BUDGET): StoredDecision {
  if (bytes(decision) <= budget) return decision;
  const { record } = decision;
  const cut = (list: readonly Violation[], keep: number): Violation[] =>
    list.map((v) =>
      v.findings.length <= keep
        ? v
        : {
            ...v,
            findings: v.findings.slice(0, keep),
            findingsOmitted: (v.findingsOmitted ?? 0) + v.findings.length - keep,
          },
    );
  const withIds = (keep: number): StoredDecision => ({
    ...decision,
    record: { ...record, violations: cut(record.violations, keep), warnings: cut(record.warnings, keep) },
  });
  const longest = Math.max(0, ...[...record.violations, ...record.warnings].map((v) => v.findings.length));
  const keep = largestFitting(longest, (k) => bytes(withIds(k)) <= budget);
  if (keep !== undefined) return withIds(keep);

  const bare = withIds(0);
  const withShown = (keep: number): StoredDecision => ({
    ...bare,
    details: bare.details.map((d) =>
      d.shown.length <= keep
        ? d
        : { ...d, shown: d.shown.slice(0, keep), more: d.more + d.shown.length - keep },
    ),
  });
  const longestShown = Math.max(0, ...bare.details.map((d) => d.shown.length));
  // Past this the decision cannot be stored: the store refuses it by name (a policy of thousands of rules).
  return withShown(largestFitting(longestShown, (k) => bytes(withShown(k)) <= budget) ?? 0);
}

/** The largest n in 0..max for which `fits(n)` holds (fits is monotone: fewer always fits better). */
export function largestFitting(max: number, fits: (n: number) => boolean): number | undefined {
  if (!fits(0)) return undefined;
  let low = 0;
  let high = max;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (fits(mid)) low = mid;
    else high = mid - 1;
  }
  return low;
}
