import {
  type DecisionRecord,
  type ExceptionsByState,
  IMPLICIT_DESCRIPTIONS,
  type Outcome,
  type Violation,
  type ViolationAction,
} from '../decision/record.js';
import { buildSummary, type SummaryViolation } from '../decision/summary.js';
import type { Finding, ImageRef, ScanVerdict, Severity } from '../findings/finding.js';
import { RATED_SEVERITIES, SEVERITIES } from '../findings/finding.js';
import {
  type CompiledException,
  type CompiledPolicy,
  type CompiledRevoke,
  type CompiledRule,
  compilePolicy,
} from './compile.js';
import type { LoadedPolicy } from './load.js';

const DAY_MS = 86_400_000;

/** Something the gate knows before (or instead of) reading findings, which the policy turns into an outcome. */
export interface GateCondition {
  readonly kind: 'scan-timeout' | 'error';
  readonly reason: string;
}

export interface EvaluationInput {
  readonly findings: readonly Finding[];
  readonly now: Date;
  readonly pipeline?: string | undefined;
  readonly image?: ImageRef | undefined;
  /** The scan's own verdict, where the source says (ECR responses, the gate's scan status). */
  readonly scan?: ScanVerdict | undefined;
  readonly conditions?: readonly GateCondition[] | undefined;
}

/** A violation with the findings behind it, for reports and escalation messages. */
export interface ViolationDetail {
  readonly violation: Violation;
  readonly findings: readonly Finding[];
}

export interface Evaluation {
  readonly record: DecisionRecord;
  readonly violations: readonly ViolationDetail[];
  readonly warnings: readonly ViolationDetail[];
  /** The findings that count, after de-duplication (before exceptions). */
  readonly counted: readonly Finding[];
}

/**
 * The policy evaluator of the policy spec §2: a pure function of the policy, the findings, `now`, the
 * pipeline and the image. Its cost is linear in the findings: exceptions are looked up through an index
 * of their vulnerability-id globs (memoised per vulnerability id), never tried one by one per finding.
 */
export function evaluate(policy: LoadedPolicy | CompiledPolicy, input: EvaluationInput): Evaluation {
  const compiled = 'rules' in policy ? policy : compilePolicy(policy);
  const { settings } = compiled.policy;
  const now = input.now.getTime();
  if (Number.isNaN(now)) throw new RangeError('evaluate: `now` is not a valid date');
  const repository = input.image?.repository;
  const pipeline = input.pipeline;

  // 1. Dedupe. 2. Count.
  const unique = dedupe(input.findings);
  const statuses: ReadonlySet<string> = new Set(settings.statuses);
  const counts: Record<Severity, number> = {
    CRITICAL: 0,
    HIGH: 0,
    MEDIUM: 0,
    LOW: 0,
    INFORMATIONAL: 0,
    UNTRIAGED: 0,
  };
  const counted: Finding[] = [];
  let ignored = 0;
  for (const f of unique) {
    if (!statuses.has(f.status)) {
      ignored++;
      continue;
    }
    counted.push(f);
    counts[severityClass(f.severity)]++;
  }

  // 3. Exceptions. Scope by repository and pipeline is the same for every finding, so it is decided once.
  const inScope = compiled.exceptions.filter(
    (e) => scopeMatches(e.repositories, repository) && scopeMatches(e.pipelines, pipeline),
  );
  const index = new ExceptionIndex(inScope);
  const matched = new Set<CompiledException>();
  const applied = new Set<CompiledException>();
  const expired = new Set<CompiledException>();
  const revoked = new Set<CompiledException>();
  const remaining: Finding[] = [];
  for (const f of counted) {
    const candidates = index.candidates(f.vulnerabilityId);
    let covered = false;
    for (let i = 0; i < candidates.length; i++) {
      const e = candidates[i]!;
      if (e.packages !== undefined && !allPackagesMatch(e, f)) continue;
      matched.add(e);
      if (now > e.expiresAt) expired.add(e);
      else if (e.revokeIf !== undefined && revokes(e.revokeIf, f)) revoked.add(e);
      else {
        applied.add(e);
        covered = true;
      }
    }
    if (!covered) remaining.push(f);
  }

  // 4. Rules. Rules scoped to another repository or pipeline match nothing here.
  const active = compiled.rules.filter(
    (r) => scopeMatches(r.repositories, repository) && scopeMatches(r.pipelines, pipeline),
  );
  const hits: Finding[][] = active.map(() => []);
  const unknown: Finding[] = [];
  for (const f of remaining) {
    for (let i = 0; i < active.length; i++) {
      if (ruleMatches(active[i]!, f, now)) hits[i]!.push(f);
    }
    if (!RATED_SEVERITIES.has(f.severity)) unknown.push(f);
  }

  const violations: DetailedViolation[] = [];
  const warnings: DetailedViolation[] = [];
  active.forEach((r, i) => {
    const found = hits[i]!;
    if (found.length <= r.rule.allow) return;
    const v = detailed(r.rule.id, r.rule.action, r.rule.allow, found, r.rule.description);
    (r.rule.action === 'warn' ? warnings : violations).push(v);
  });
  if (settings.unknownSeverity !== 'ignore' && unknown.length > 0) {
    violations.push(
      detailed(
        'unknown-severity',
        settings.unknownSeverity,
        0,
        unknown,
        IMPLICIT_DESCRIPTIONS['unknown-severity'],
      ),
    );
  }
  if (input.scan && !input.scan.complete) {
    violations.push(detailed('scan-incomplete', settings.scan.onUnsupported, 0, [], input.scan.reason));
  }
  for (const c of input.conditions ?? []) {
    const action = c.kind === 'scan-timeout' ? settings.scan.onTimeout : settings.onError;
    violations.push(detailed(c.kind, action, 0, [], c.reason || IMPLICIT_DESCRIPTIONS[c.kind]));
  }

  // 5. Outcome. 6. Mode.
  const computed: Outcome = violations.some((v) => v.violation.action === 'reject')
    ? 'REJECT'
    : violations.some((v) => v.violation.action === 'escalate')
      ? 'ESCALATE'
      : 'APPROVE';
  const advisory = compiled.policy.mode === 'advisory';
  const outcome: Outcome = advisory ? 'APPROVE' : computed;

  // Whole days left, as a person counts them (and as the report prints them): 14.5 days left is "14 days".
  const expiringSoon = (e: CompiledException) =>
    Math.floor((e.expiresAt - now) / DAY_MS) <= settings.expiringSoonDays;
  const byPolicyOrder = (set: ReadonlySet<CompiledException>) =>
    [...set].sort((a, b) => a.index - b.index).map((e) => e.exception.id);
  const exceptions: ExceptionsByState = {
    applied: byPolicyOrder(applied),
    expired: byPolicyOrder(expired),
    revoked: byPolicyOrder(revoked),
    unused: compiled.exceptions.filter((e) => !matched.has(e)).map((e) => e.exception.id),
    expiringSoon: byPolicyOrder(new Set([...applied].filter(expiringSoon))),
  };

  const summary = buildSummary({
    outcome,
    wouldBe: advisory ? computed : undefined,
    policyName: compiled.policy.name,
    violations: violations.map((v) => v.summary),
    warnings: warnings.map((v) => v.summary),
  });

  const record: DecisionRecord = {
    outcome,
    mode: compiled.policy.mode,
    ...(advisory ? { wouldBe: computed } : {}),
    summary,
    policy: { name: compiled.policy.name, sha256: compiled.sha256 },
    subject: {
      repository: repository ?? null,
      digest: input.image?.digest ?? null,
      tags: input.image ? [...input.image.tags] : [],
      pipeline: pipeline ?? null,
    },
    counts,
    violations: violations.map((v) => v.violation),
    warnings: warnings.map((v) => v.violation),
    exceptions,
    ignored,
    evaluatedAt: input.now.toISOString(),
  };
  return {
    record,
    violations: violations.map((v) => ({ violation: v.violation, findings: v.findings })),
    warnings: warnings.map((v) => ({ violation: v.violation, findings: v.findings })),
    counted,
  };
}

interface DetailedViolation {
  readonly violation: Violation;
  readonly summary: SummaryViolation;
  readonly findings: readonly Finding[];
}

function detailed(
  rule: string,
  action: ViolationAction,
  allow: number,
  findings: readonly Finding[],
  description: string | undefined,
): DetailedViolation {
  const ids = [...new Set(findings.map((f) => f.vulnerabilityId))].sort();
  const violation: Violation = {
    rule,
    action,
    allow,
    count: findings.length,
    findings: ids,
    ...(description ? { description } : {}),
  };
  const bySeverity = new Map<Severity, number>();
  for (const s of SEVERITIES) {
    const n = findings.reduce((acc, f) => (severityClass(f.severity) === s ? acc + 1 : acc), 0);
    if (n > 0) bySeverity.set(s, n);
  }
  return { violation, findings, summary: { ...violation, bySeverity } };
}

/** Unknown severities (UNTRIAGED, ECR's UNDEFINED, anything unrecognised) are all counted as UNTRIAGED. */
export function severityClass(severity: string): Severity {
  return RATED_SEVERITIES.has(severity) ? (severity as Severity) : 'UNTRIAGED';
}

function scopeMatches(globs: { test(v: string): boolean } | undefined, value: string | undefined): boolean {
  if (globs === undefined) return true;
  return value !== undefined && globs.test(value);
}

function ruleMatches(r: CompiledRule, f: Finding, now: number): boolean {
  if (r.severity !== undefined && !r.severity.has(severityClass(f.severity))) return false;
  if (r.minScore !== undefined && (f.score === undefined || f.score < r.minScore)) return false;
  if (r.fixAvailable !== undefined && (f.fixAvailable === undefined || !r.fixAvailable.has(f.fixAvailable)))
    return false;
  if (r.exploitAvailable !== undefined && f.exploitAvailable !== r.exploitAvailable) return false;
  if (r.minEpss !== undefined && (f.epss === undefined || f.epss < r.minEpss)) return false;
  if (
    r.olderThanMs !== undefined &&
    (f.firstObservedAt === undefined || now - f.firstObservedAt <= r.olderThanMs)
  ) {
    return false;
  }
  if (r.vulnerabilityIds !== undefined && !r.vulnerabilityIds.test(f.vulnerabilityId)) return false;
  if (r.packages !== undefined && !f.packages.some((p) => r.packages!.test(p.name))) return false;
  return true;
}

function revokes(r: CompiledRevoke, f: Finding): boolean {
  if (r.exploitAvailable !== undefined && f.exploitAvailable === r.exploitAvailable) return true;
  if (r.minEpss !== undefined && f.epss !== undefined && f.epss >= r.minEpss) return true;
  if (r.minScore !== undefined && f.score !== undefined && f.score >= r.minScore) return true;
  if (r.fixAvailable !== undefined && f.fixAvailable !== undefined && r.fixAvailable.has(f.fixAvailable))
    return true;
  if (r.severity?.has(severityClass(f.severity))) return true;
  return false;
}

/** An exception with `packages` covers a finding only if every vulnerable package is listed (and it has some). */
function allPackagesMatch(e: CompiledException, f: Finding): boolean {
  if (f.packages.length === 0) return false;
  for (const p of f.packages) if (!e.packages!.test(p.name)) return false;
  return true;
}

/**
 * Exceptions by vulnerability id: exact ids in a map, globs by their literal prefix (so `CVE-2023-*` is one
 * map probe per distinct prefix length), globs that start with `*` tried last. Answers are memoised per
 * vulnerability id, since many findings share one.
 */
class ExceptionIndex {
  private readonly exact = new Map<string, CompiledException[]>();
  private readonly byPrefix = new Map<string, CompiledException[]>();
  private readonly prefixLengths: number[];
  private readonly leadingStar: CompiledException[] = [];
  private readonly memo = new Map<string, readonly CompiledException[]>();

  constructor(exceptions: readonly CompiledException[]) {
    const lengths = new Set<number>();
    for (const e of exceptions) {
      const g = e.vulnerabilityId;
      if (g.isLiteral) push(this.exact, g.source, e);
      else if (g.prefix === '') this.leadingStar.push(e);
      else {
        push(this.byPrefix, g.prefix, e);
        lengths.add(g.prefix.length);
      }
    }
    this.prefixLengths = [...lengths].sort((a, b) => a - b);
  }

  candidates(id: string): readonly CompiledException[] {
    const known = this.memo.get(id);
    if (known !== undefined) return known;
    const found: CompiledException[] = [...(this.exact.get(id) ?? [])];
    for (const len of this.prefixLengths) {
      if (len > id.length) break;
      for (const e of this.byPrefix.get(id.slice(0, len)) ?? [])
        if (e.vulnerabilityId.test(id)) found.push(e);
    }
    for (const e of this.leadingStar) if (e.vulnerabilityId.test(id)) found.push(e);
    found.sort((a, b) => a.index - b.index);
    this.memo.set(id, found);
    return found;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * One finding per key. When two copies differ, the choice must not depend on their order: the newer copy
 * wins, and between equally new copies the more severe reading (fail closed), then a canonical comparison.
 */
function dedupe(findings: readonly Finding[]): Finding[] {
  const byKey = new Map<string, Finding>();
  for (const f of findings) {
    const seen = byKey.get(f.key);
    if (seen === undefined) byKey.set(f.key, f);
    else if (seen !== f && prefer(f, seen)) byKey.set(f.key, f);
  }
  return byKey.size === findings.length ? (findings as Finding[]) : [...byKey.values()];
}

const SEVERITY_RANK: Readonly<Record<Severity, number>> = {
  CRITICAL: 6,
  UNTRIAGED: 5,
  HIGH: 4,
  MEDIUM: 3,
  LOW: 2,
  INFORMATIONAL: 1,
};

/** Whether `a` should replace `b` as the copy of one finding. */
function prefer(a: Finding, b: Finding): boolean {
  const ta = a.updatedAt ?? -1;
  const tb = b.updatedAt ?? -1;
  if (ta !== tb) return ta > tb;
  const sa = SEVERITY_RANK[severityClass(a.severity)];
  const sb = SEVERITY_RANK[severityClass(b.severity)];
  if (sa !== sb) return sa > sb;
  if ((a.status === 'ACTIVE') !== (b.status === 'ACTIVE')) return a.status === 'ACTIVE';
  return canonical(a) > canonical(b);
}

function canonical(f: Finding): string {
  return JSON.stringify(f);
}
