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
import { levelBit, SEVERITIES } from '../findings/finding.js';
import {
  type CompiledException,
  type CompiledPolicy,
  type CompiledRevoke,
  type CompiledRule,
  compilePolicy,
} from './compile.js';
import type { LoadedPolicy } from './load.js';

const DAY_MS = 86_400_000;
const APPLIED = 1;
const EXPIRED = 2;
const REVOKED = 4;

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
    counts[f.level]++;
  }

  // 3. Exceptions. Scope by repository and pipeline is the same for every finding, so it is decided once.
  // The index also numbers the distinct vulnerability ids, which the violations use below.
  const inScope = compiled.exceptions.filter(
    (e) => scopeMatches(e.repositories, repository) && scopeMatches(e.pipelines, pipeline),
  );
  const index = new ExceptionIndex(inScope);
  const ordinals = new Int32Array(counted.length);
  // Per exception (by its index in the policy): which states it reached for some finding.
  const states = new Uint8Array(compiled.exceptions.length);
  const remaining: number[] = [];
  for (let i = 0; i < counted.length; i++) {
    const f = counted[i]!;
    const entry = index.entry(f.vulnerabilityId);
    ordinals[i] = entry.ordinal;
    const candidates = entry.candidates;
    let covered = false;
    for (let c = 0; c < candidates.length; c++) {
      const e = candidates[c]!;
      if (e.packages !== undefined && !allPackagesMatch(e, f)) continue;
      if (now > e.expiresAt) states[e.index]! |= EXPIRED;
      else if (e.revokeIf !== undefined && revokes(e.revokeIf, f)) states[e.index]! |= REVOKED;
      else {
        states[e.index]! |= APPLIED;
        covered = true;
      }
    }
    if (!covered) remaining.push(i);
  }

  // 4. Rules. Rules scoped to another repository or pipeline match nothing here.
  const active = compiled.rules.filter(
    (r) => scopeMatches(r.repositories, repository) && scopeMatches(r.pipelines, pipeline),
  );
  const hits: number[][] = active.map(() => []);
  // A rule's vulnerabilityIds globs are tested once per distinct id: 0 not yet, 1 matches, 2 does not.
  const idMemo = active.map((r) => (r.vulnerabilityIds ? new Uint8Array(index.size) : undefined));
  const unknown: number[] = [];
  for (let k = 0; k < remaining.length; k++) {
    const i = remaining[k]!;
    const f = counted[i]!;
    const ordinal = ordinals[i]!;
    for (let r = 0; r < active.length; r++) {
      const rule = active[r]!;
      if (!ruleMatches(rule, f, now)) continue;
      const memo = idMemo[r];
      if (memo !== undefined) {
        let known = memo[ordinal]!;
        if (known === 0) {
          known = rule.vulnerabilityIds!.test(f.vulnerabilityId) ? 1 : 2;
          memo[ordinal] = known;
        }
        if (known === 2) continue;
      }
      hits[r]!.push(i);
    }
    if (f.level === 'UNTRIAGED') unknown.push(i);
  }

  const ids = new ViolationIds(index, counted, ordinals);
  const violations: DetailedViolation[] = [];
  const warnings: DetailedViolation[] = [];
  active.forEach((r, i) => {
    const found = hits[i]!;
    if (found.length <= r.rule.allow) return;
    const v = ids.detailed(r.rule.id, r.rule.action, r.rule.allow, found, r.rule.description);
    (r.rule.action === 'warn' ? warnings : violations).push(v);
  });
  if (settings.unknownSeverity !== 'ignore' && unknown.length > 0) {
    violations.push(
      ids.detailed(
        'unknown-severity',
        settings.unknownSeverity,
        0,
        unknown,
        IMPLICIT_DESCRIPTIONS['unknown-severity'],
      ),
    );
  }
  if (input.scan && !input.scan.complete) {
    violations.push(ids.detailed('scan-incomplete', settings.scan.onUnsupported, 0, [], input.scan.reason));
  }
  for (const c of input.conditions ?? []) {
    const action = c.kind === 'scan-timeout' ? settings.scan.onTimeout : settings.onError;
    violations.push(ids.detailed(c.kind, action, 0, [], c.reason || IMPLICIT_DESCRIPTIONS[c.kind]));
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
  const inState = (state: number) =>
    compiled.exceptions.filter((e) => (states[e.index]! & state) !== 0).map((e) => e.exception.id);
  const exceptions: ExceptionsByState = {
    applied: inState(APPLIED),
    expired: inState(EXPIRED),
    revoked: inState(REVOKED),
    unused: compiled.exceptions.filter((e) => states[e.index] === 0).map((e) => e.exception.id),
    expiringSoon: compiled.exceptions
      .filter((e) => (states[e.index]! & APPLIED) !== 0 && expiringSoon(e))
      .map((e) => e.exception.id),
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

/**
 * Builds violations from the indices of their findings. A violation lists its distinct vulnerability ids,
 * sorted: ids are marked by ordinal (numbered once, by the exception index) instead of hashed again per
 * violation, and sorted once for all violations when many are involved.
 */
class ViolationIds {
  private sortedOrdinals: Int32Array | undefined;

  constructor(
    private readonly index: ExceptionIndex,
    private readonly counted: readonly Finding[],
    private readonly ordinals: Int32Array,
  ) {}

  detailed(
    rule: string,
    action: ViolationAction,
    allow: number,
    indices: readonly number[],
    description: string | undefined,
  ): DetailedViolation {
    const findings = new Array<Finding>(indices.length);
    const perLevel = [0, 0, 0, 0, 0, 0];
    const marks = new Uint8Array(this.index.size);
    let distinct = 0;
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!;
      const f = this.counted[i]!;
      findings[k] = f;
      perLevel[31 - Math.clz32(levelBit(f.level))]!++;
      const o = this.ordinals[i]!;
      if (marks[o] === 0) {
        marks[o] = 1;
        distinct++;
      }
    }
    const violation: Violation = {
      rule,
      action,
      allow,
      count: indices.length,
      findings: this.sortedIds(marks, distinct),
      ...(description ? { description } : {}),
    };
    const bySeverity = new Map<Severity, number>();
    SEVERITIES.forEach((s, i) => {
      if (perLevel[i]! > 0) bySeverity.set(s, perLevel[i]!);
    });
    return { violation, findings, summary: { ...violation, bySeverity } };
  }

  private sortedIds(marks: Uint8Array, distinct: number): string[] {
    const ids = this.index.ids;
    // Few ids: sort just those. Many: walk all ids in an order sorted once.
    if (distinct * 8 < ids.length) {
      const out: string[] = [];
      for (let o = 0; o < marks.length; o++) if (marks[o] === 1) out.push(ids[o]!);
      return out.sort(compareStrings);
    }
    if (this.sortedOrdinals === undefined) {
      this.sortedOrdinals = Int32Array.from(ids.keys()).sort((a, b) => compareStrings(ids[a]!, ids[b]!));
    }
    const out = new Array<string>(distinct);
    let n = 0;
    for (const o of this.sortedOrdinals) if (marks[o] === 1) out[n++] = ids[o]!;
    return out;
  }
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function scopeMatches(globs: { test(v: string): boolean } | undefined, value: string | undefined): boolean {
  if (globs === undefined) return true;
  return value !== undefined && globs.test(value);
}

/** Every condition but vulnerabilityIds, which the caller memoises per distinct id. */
function ruleMatches(r: CompiledRule, f: Finding, now: number): boolean {
  if (r.severityMask !== 0 && (r.severityMask & levelBit(f.level)) === 0) return false;
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
  if (r.packages !== undefined && !f.packages.some((p) => r.packages!.test(p.name))) return false;
  return true;
}

function revokes(r: CompiledRevoke, f: Finding): boolean {
  if (r.exploitAvailable !== undefined && f.exploitAvailable === r.exploitAvailable) return true;
  if (r.minEpss !== undefined && f.epss !== undefined && f.epss >= r.minEpss) return true;
  if (r.minScore !== undefined && f.score !== undefined && f.score >= r.minScore) return true;
  if (r.fixAvailable !== undefined && f.fixAvailable !== undefined && r.fixAvailable.has(f.fixAvailable))
    return true;
  if ((r.severityMask & levelBit(f.level)) !== 0) return true;
  return false;
}

/** An exception with `packages` covers a finding only if every vulnerable package is listed (and it has some). */
function allPackagesMatch(e: CompiledException, f: Finding): boolean {
  if (f.packages.length === 0) return false;
  for (const p of f.packages) if (!e.packages!.test(p.name)) return false;
  return true;
}

interface VulnerabilityEntry {
  /** Numbers the distinct vulnerability ids of one evaluation, from 0. */
  readonly ordinal: number;
  readonly candidates: readonly CompiledException[];
}

/**
 * Exceptions by vulnerability id. Exact ids are one map probe. Globs are filed under their literal prefix
 * and suffix (`CVE-2023-*` under "CVE-2023-"…"", `CVE-*-1234` under "CVE-"…"-1234", `*-1234` under
 * ""…"-1234"), so an id costs one probe per distinct (prefix length, suffix length) pair, however many
 * exceptions there are; only the globs filed under the id's own prefix and suffix are tested. Answers are
 * memoised per vulnerability id, since many findings share one; the memo also numbers the distinct ids.
 */
class ExceptionIndex {
  private readonly exact = new Map<string, CompiledException[]>();
  private readonly byAffixes = new Map<string, CompiledException[]>();
  private readonly affixLengths: (readonly [number, number])[];
  private readonly memo = new Map<string, VulnerabilityEntry>();
  readonly ids: string[] = [];

  constructor(exceptions: readonly CompiledException[]) {
    const lengths = new Map<string, readonly [number, number]>();
    for (const e of exceptions) {
      const g = e.vulnerabilityId;
      if (g.isLiteral) {
        push(this.exact, g.source, e);
        continue;
      }
      push(this.byAffixes, affixKey(g.prefix, g.suffix), e);
      lengths.set(`${g.prefix.length}/${g.suffix.length}`, [g.prefix.length, g.suffix.length]);
    }
    this.affixLengths = [...lengths.values()];
  }

  get size(): number {
    return this.ids.length;
  }

  entry(id: string): VulnerabilityEntry {
    const known = this.memo.get(id);
    if (known !== undefined) return known;
    const found: CompiledException[] = [...(this.exact.get(id) ?? [])];
    for (const [p, q] of this.affixLengths) {
      if (p + q > id.length) continue;
      const filed = this.byAffixes.get(affixKey(id.slice(0, p), id.slice(id.length - q)));
      if (filed) for (const e of filed) if (e.vulnerabilityId.test(id)) found.push(e);
    }
    found.sort((a, b) => a.index - b.index);
    const entry: VulnerabilityEntry = { ordinal: this.ids.length, candidates: found };
    this.ids.push(id);
    this.memo.set(id, entry);
    return entry;
  }
}

function affixKey(prefix: string, suffix: string): string {
  return `${prefix}\u0000${suffix}`;
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
  const sa = SEVERITY_RANK[a.level];
  const sb = SEVERITY_RANK[b.level];
  if (sa !== sb) return sa > sb;
  if ((a.status === 'ACTIVE') !== (b.status === 'ACTIVE')) return a.status === 'ACTIVE';
  return canonical(a) > canonical(b);
}

function canonical(f: Finding): string {
  return JSON.stringify(f);
}
