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
import { SEVERITIES } from '../findings/finding.js';
import { FindingTable, statusBit } from '../findings/table.js';
import type { GlobSet } from '../glob.js';
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
const UNTRIAGED_BIT = 32;

/** Something the gate knows before (or instead of) reading findings, which the policy turns into an outcome. */
export interface GateCondition {
  readonly kind: 'scan-timeout' | 'error';
  readonly reason: string;
}

export interface EvaluationInput {
  readonly findings: FindingTable | readonly Finding[];
  readonly now: Date;
  readonly pipeline?: string | undefined;
  readonly image?: ImageRef | undefined;
  /** The scan's own verdict, where the source says (ECR responses, the gate's scan status). */
  readonly scan?: ScanVerdict | undefined;
  readonly conditions?: readonly GateCondition[] | undefined;
}

/** A violation and the rows of the findings behind it, for reports and escalation messages. */
export interface ViolationDetail {
  readonly violation: Violation;
  /** Rows of `Evaluation.table`: `table.row(i)` is the full finding. */
  readonly rows: Int32Array;
}

export interface Evaluation {
  readonly record: DecisionRecord;
  readonly violations: readonly ViolationDetail[];
  readonly warnings: readonly ViolationDetail[];
  /** The findings the decision was made on. */
  readonly table: FindingTable;
}

/**
 * The policy evaluator of the policy spec §2: a pure function of the policy, the findings, `now`, the
 * pipeline and the image. Its cost is linear in the findings and runs on the table's columns: findings are
 * numbered by key and by vulnerability id once, exceptions are looked up through an index of their
 * vulnerability-id globs (once per distinct id), and rules test typed columns.
 */
export function evaluate(policy: LoadedPolicy | CompiledPolicy, input: EvaluationInput): Evaluation {
  const compiled = 'rules' in policy ? policy : compilePolicy(policy);
  const { settings } = compiled.policy;
  const now = input.now.getTime();
  if (Number.isNaN(now)) throw new RangeError('evaluate: `now` is not a valid date');
  const table =
    input.findings instanceof FindingTable ? input.findings : FindingTable.fromFindings(input.findings);
  const repository = input.image?.repository;
  const pipeline = input.pipeline;

  // 1. Dedupe. 2. Count.
  const kept = dedupe(table);
  let statusMask = 0;
  for (const s of settings.statuses) statusMask |= statusBit(s);
  const perLevel = [0, 0, 0, 0, 0, 0];
  const counted = new Int32Array(kept.length);
  let countedLength = 0;
  for (let k = 0; k < kept.length; k++) {
    const i = kept[k]!;
    if ((table.statuses[i]! & statusMask) === 0) continue;
    counted[countedLength++] = i;
    perLevel[levelIndex(table.levels[i]!)]!++;
  }
  const ignored = kept.length - countedLength;

  // 3. Exceptions. Scope by repository and pipeline is the same for every finding, so it is decided once.
  const inScope = compiled.exceptions.filter(
    (e) => scopeMatches(e.repositories, repository) && scopeMatches(e.pipelines, pipeline),
  );
  const index = new ExceptionIndex(inScope);
  const packages = new PackageMatcher(table);
  const candidatesOf: (readonly CompiledException[] | undefined)[] = new Array(table.distinctIds.length);
  // Per exception (by its index in the policy): which states it reached for some finding.
  const states = new Uint8Array(compiled.exceptions.length);
  const remaining = new Int32Array(countedLength);
  let remainingLength = 0;
  for (let c = 0; c < countedLength; c++) {
    const i = counted[c]!;
    const ordinal = table.idOrdinals[i]!;
    let candidates = candidatesOf[ordinal];
    if (candidates === undefined) {
      candidates = index.candidates(table.distinctIds[ordinal]!);
      candidatesOf[ordinal] = candidates;
    }
    let covered = false;
    for (let k = 0; k < candidates.length; k++) {
      const e = candidates[k]!;
      if (e.packages !== undefined && !packages.all(e.packages, i)) continue;
      if (now > e.expiresAt) states[e.index]! |= EXPIRED;
      else if (e.revokeIf !== undefined && revokes(e.revokeIf, table, i)) states[e.index]! |= REVOKED;
      else {
        states[e.index]! |= APPLIED;
        covered = true;
      }
    }
    if (!covered) remaining[remainingLength++] = i;
  }

  // 4. Rules. Rules scoped to another repository or pipeline match nothing here.
  const active = compiled.rules.filter(
    (r) => scopeMatches(r.repositories, repository) && scopeMatches(r.pipelines, pipeline),
  );
  // Rule by rule, each condition a tight pass over the typed columns of the rows still in the running.
  const rows = remaining.subarray(0, remainingLength);
  const hits = active.map((rule) => matchRule(rule, table, rows, now, packages));
  const unknown: number[] = [];
  for (let k = 0; k < rows.length; k++) if (table.levels[rows[k]!] === UNTRIAGED_BIT) unknown.push(rows[k]!);

  const builder = new ViolationBuilder(table, table.distinctIds, table.idOrdinals);
  const violations: DetailedViolation[] = [];
  const warnings: DetailedViolation[] = [];
  active.forEach((r, i) => {
    const found = hits[i]!;
    if (found.length <= r.rule.allow) return;
    const v = builder.build(r.rule.id, r.rule.action, r.rule.allow, found, r.rule.description);
    (r.rule.action === 'warn' ? warnings : violations).push(v);
  });
  if (settings.unknownSeverity !== 'ignore' && unknown.length > 0) {
    violations.push(
      builder.build(
        'unknown-severity',
        settings.unknownSeverity,
        0,
        unknown,
        IMPLICIT_DESCRIPTIONS['unknown-severity'],
      ),
    );
  }
  if (input.scan && !input.scan.complete) {
    violations.push(builder.build('scan-incomplete', settings.scan.onUnsupported, 0, [], input.scan.reason));
  }
  for (const c of input.conditions ?? []) {
    const action = c.kind === 'scan-timeout' ? settings.scan.onTimeout : settings.onError;
    violations.push(builder.build(c.kind, action, 0, [], c.reason || IMPLICIT_DESCRIPTIONS[c.kind]));
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

  const counts = Object.fromEntries(SEVERITIES.map((s, i) => [s, perLevel[i]!])) as Record<Severity, number>;
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
    violations: violations.map((v) => ({ violation: v.violation, rows: v.rows })),
    warnings: warnings.map((v) => ({ violation: v.violation, rows: v.rows })),
    table,
  };
}

/** Index of a severity bit (levelBit) in SEVERITIES order. */
function levelIndex(bit: number): number {
  return 31 - Math.clz32(bit);
}

interface DetailedViolation {
  readonly violation: Violation;
  readonly summary: SummaryViolation;
  readonly rows: Int32Array;
}

/**
 * Builds violations from the rows of their findings. A violation lists its distinct vulnerability ids,
 * sorted: ids are marked by ordinal (numbered once) instead of hashed again per violation, and sorted once
 * for all violations when many are involved.
 */
class ViolationBuilder {
  private sortedOrdinals: Int32Array | undefined;

  constructor(
    private readonly table: FindingTable,
    private readonly ids: readonly string[],
    private readonly ordinalOf: Int32Array,
  ) {}

  build(
    rule: string,
    action: ViolationAction,
    allow: number,
    found: Int32Array | readonly number[],
    description: string | undefined,
  ): DetailedViolation {
    const rows = found instanceof Int32Array ? found : Int32Array.from(found);
    const perLevel = [0, 0, 0, 0, 0, 0];
    const marks = new Uint8Array(this.ids.length);
    let distinct = 0;
    for (let k = 0; k < rows.length; k++) {
      const i = rows[k]!;
      perLevel[levelIndex(this.table.levels[i]!)]!++;
      const o = this.ordinalOf[i]!;
      if (marks[o] === 0) {
        marks[o] = 1;
        distinct++;
      }
    }
    const violation: Violation = {
      rule,
      action,
      allow,
      count: rows.length,
      findings: this.sortedIds(marks, distinct),
      ...(description ? { description } : {}),
    };
    const bySeverity = new Map<Severity, number>();
    SEVERITIES.forEach((s, i) => {
      if (perLevel[i]! > 0) bySeverity.set(s, perLevel[i]!);
    });
    return { violation, rows, summary: { ...violation, bySeverity } };
  }

  private sortedIds(marks: Uint8Array, distinct: number): string[] {
    const ids = this.ids;
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

/**
 * The rows a rule matches. Each condition narrows the list in one pass over a typed column, cheapest
 * first; vulnerability ids and package names are tested once per distinct value. Unknown values never
 * match: NaN fails every comparison, and 0 is no bit of any mask. One small function per kind of column,
 * so that each loop stays monomorphic.
 */
function matchRule(
  r: CompiledRule,
  t: FindingTable,
  rows: Int32Array,
  now: number,
  packages: PackageMatcher,
): Int32Array {
  let list = rows;
  if (r.severityMask !== 0) list = keepMask(list, t.levels, r.severityMask);
  if (r.fixMask !== 0) list = keepMask(list, t.fixes, r.fixMask);
  if (r.exploit !== undefined) list = keepEqual(list, t.exploits, r.exploit);
  if (r.minScore !== undefined) list = keepAtLeast(list, t.scores, r.minScore);
  if (r.minEpss !== undefined) list = keepAtLeast(list, t.epss, r.minEpss);
  if (r.olderThanMs !== undefined) list = keepBefore(list, t.firstObserved, now - r.olderThanMs);
  if (r.packages !== undefined) list = packages.keepAny(list, r.packages);
  if (r.vulnerabilityIds !== undefined) {
    const matches = distinctMatches(t.distinctIds, r.vulnerabilityIds);
    list = keepOrdinal(list, t.idOrdinals, matches);
  }
  return list;
}

function keepMask(list: Int32Array, column: Uint8Array, mask: number): Int32Array {
  const out = new Int32Array(list.length);
  let n = 0;
  for (let k = 0; k < list.length; k++) {
    const i = list[k]!;
    if ((column[i]! & mask) !== 0) out[n++] = i;
  }
  return out.subarray(0, n);
}

function keepEqual(list: Int32Array, column: Int8Array, value: number): Int32Array {
  const out = new Int32Array(list.length);
  let n = 0;
  for (let k = 0; k < list.length; k++) {
    const i = list[k]!;
    if (column[i] === value) out[n++] = i;
  }
  return out.subarray(0, n);
}

function keepAtLeast(list: Int32Array, column: Float64Array, min: number): Int32Array {
  const out = new Int32Array(list.length);
  let n = 0;
  for (let k = 0; k < list.length; k++) {
    const i = list[k]!;
    if (column[i]! >= min) out[n++] = i;
  }
  return out.subarray(0, n);
}

function keepBefore(list: Int32Array, column: Float64Array, limit: number): Int32Array {
  const out = new Int32Array(list.length);
  let n = 0;
  for (let k = 0; k < list.length; k++) {
    const i = list[k]!;
    if (column[i]! < limit) out[n++] = i;
  }
  return out.subarray(0, n);
}

function keepOrdinal(list: Int32Array, ordinals: Int32Array, matches: Uint8Array): Int32Array {
  const out = new Int32Array(list.length);
  let n = 0;
  for (let k = 0; k < list.length; k++) {
    const i = list[k]!;
    if (matches[ordinals[i]!] === 1) out[n++] = i;
  }
  return out.subarray(0, n);
}

/** For each distinct value, 1 if one of the globs matches it. Values are few next to findings. */
function distinctMatches(values: readonly string[], globs: GlobSet): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let o = 0; o < values.length; o++) if (globs.test(values[o]!)) out[o] = 1;
  return out;
}

/** Whether any revokeIf condition holds; unknown values never hold. */
function revokes(r: CompiledRevoke, t: FindingTable, i: number): boolean {
  if (r.exploit !== undefined && t.exploits[i] === r.exploit) return true;
  if (r.minEpss !== undefined && t.epss[i]! >= r.minEpss) return true;
  if (r.minScore !== undefined && t.scores[i]! >= r.minScore) return true;
  if ((r.fixMask & t.fixes[i]!) !== 0) return true;
  if ((r.severityMask & t.levels[i]!) !== 0) return true;
  return false;
}

/** Package globs against a row's packages, each glob set tested once per distinct package name. */
class PackageMatcher {
  private readonly memos = new Map<GlobSet, Uint8Array>();

  constructor(private readonly table: FindingTable) {}

  /** The rows of which one package matches (a rule's `packages`). */
  keepAny(list: Int32Array, globs: GlobSet): Int32Array {
    const t = this.table;
    const matches = this.matches(globs);
    const start = t.packageStart;
    const ordinals = t.packageOrdinals;
    const out = new Int32Array(list.length);
    let n = 0;
    for (let k = 0; k < list.length; k++) {
      const i = list[k]!;
      const end = start[i + 1]!;
      for (let p = start[i]!; p < end; p++) {
        if (matches[ordinals[p]!] === 1) {
          out[n++] = i;
          break;
        }
      }
    }
    return out.subarray(0, n);
  }

  /** An exception's `packages`: every package of the row is listed, and it has some. */
  all(globs: GlobSet, i: number): boolean {
    const t = this.table;
    const start = t.packageStart[i]!;
    const end = t.packageStart[i + 1]!;
    if (start === end) return false;
    const matches = this.matches(globs);
    for (let p = start; p < end; p++) if (matches[t.packageOrdinals[p]!] !== 1) return false;
    return true;
  }

  private matches(globs: GlobSet): Uint8Array {
    let memo = this.memos.get(globs);
    if (memo === undefined) {
      memo = distinctMatches(this.table.distinctPackages, globs);
      this.memos.set(globs, memo);
    }
    return memo;
  }
}

/**
 * Exceptions by vulnerability id. Exact ids are one map probe. Globs are filed under their literal prefix
 * and suffix (`CVE-2023-*` under "CVE-2023-"…"", `CVE-*-1234` under "CVE-"…"-1234", `*-1234` under
 * ""…"-1234"), so an id costs one probe per distinct (prefix length, suffix length) pair, however many
 * exceptions there are; only the globs filed under the id's own prefix and suffix are tested.
 */
class ExceptionIndex {
  private readonly exact = new Map<string, CompiledException[]>();
  private readonly byAffixes = new Map<string, CompiledException[]>();
  private readonly affixLengths: (readonly [number, number])[];

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

  candidates(id: string): readonly CompiledException[] {
    let found: CompiledException[] | undefined;
    const exact = this.exact.get(id);
    if (exact) found = [...exact];
    for (const [p, q] of this.affixLengths) {
      if (p + q > id.length) continue;
      const filed = this.byAffixes.get(affixKey(id.slice(0, p), id.slice(id.length - q)));
      if (filed === undefined) continue;
      for (const e of filed) {
        if (!e.vulnerabilityId.test(id)) continue;
        found ??= [];
        found.push(e);
      }
    }
    if (found === undefined) return NO_EXCEPTIONS;
    return found.length > 1 ? found.sort((a, b) => a.index - b.index) : found;
  }
}

const NO_EXCEPTIONS: readonly CompiledException[] = [];

function affixKey(prefix: string, suffix: string): string {
  return `${prefix}\u0000${suffix}`;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * One row per key, in order of first sight. When two copies differ, the choice must not depend on their
 * order: the newer copy wins, and between equally new copies the more severe reading (fail closed), then a
 * canonical comparison. Copies are rare, so only they are rebuilt as full findings to compare.
 */
function dedupe(table: FindingTable): Int32Array {
  const winner = new Int32Array(table.distinctKeys.length).fill(-1);
  for (let i = 0; i < table.length; i++) {
    const o = table.keyOrdinals[i]!;
    const seen = winner[o]!;
    if (seen === -1 || prefer(table.row(i), table.row(seen))) winner[o] = i;
  }
  return winner;
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
