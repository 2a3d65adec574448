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
import { compileGlobSet, type GlobSet } from '../glob.js';
import { keepShapes } from '../strings.js';
import { wellFormed } from '../text.js';
import {
  type CompiledException,
  type CompiledPolicy,
  type CompiledRevoke,
  type CompiledRule,
  compilePolicy,
} from './compile.js';
import type { LoadedPolicy } from './load.js';
import { IMPLICIT_RULE_IDS } from './schema.js';

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
 * The policy evaluator of the policy spec §2: its result is a function of the policy, the findings, `now`,
 * the pipeline, the image, the scan verdict and the gate's conditions alone (the scratch rows it reuses
 * never carry over: see ScratchRows). Its cost is linear in the findings and runs on the table's columns:
 * findings are
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

  // The statuses the policy counts (`settings.statuses`).
  let statusMask = 0;
  for (const s of settings.statuses) statusMask |= statusBit(s);

  // 1. Dedupe.
  const kept = dedupe(table, statusMask);

  // 2. Count. 3. Exceptions. Scope by repository and pipeline is the same for every finding, so it is
  // decided once.
  const inScope = compiled.exceptions.filter(
    (e) => scopeMatches(e.repositories, repository) && scopeMatches(e.pipelines, pipeline),
  );
  const packages = new PackageMatcher(table);
  // Per exception (by its index in the policy): which states it reached for some finding.
  const states = new Uint8Array(compiled.exceptions.length);
  const perLevel = [0, 0, 0, 0, 0, 0];
  const { remaining, ignored } = countAndExcept(
    table,
    kept,
    statusMask,
    new ExceptionIndex(inScope),
    packages,
    now,
    states,
    perLevel,
  );

  // 4. Rules. Rules scoped to another repository or pipeline match nothing here.
  const active = compiled.rules.filter(
    (r) => scopeMatches(r.repositories, repository) && scopeMatches(r.pipelines, pipeline),
  );
  // All rules in one pass over the rows still in the running (see matchRules).
  const hits = matchRules(active, table, remaining, now, packages);
  const unknown = keepMask(remaining, table.levels, UNTRIAGED_BIT);

  const builder = new ViolationBuilder(table, table.distinctIds, table.idOrdinals);
  const violations: DetailedViolation[] = [];
  const warnings: DetailedViolation[] = [];
  for (let k = 0; k < active.length; k++) {
    const r = active[k]!;
    const found = hits[k];
    if (found === undefined) continue;
    const v = builder.build(r.rule.id, r.rule.action, r.rule.allow, found, r.rule.description);
    (r.rule.action === 'warn' ? warnings : violations).push(v);
  }
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
    violations.push(
      builder.build(
        'scan-incomplete',
        settings.scan.onUnsupported,
        0,
        new Int32Array(0),
        input.scan.reason === undefined ? undefined : wellFormed(input.scan.reason),
      ),
    );
  }
  for (const c of input.conditions ?? []) {
    const action = c.kind === 'scan-timeout' ? settings.scan.onTimeout : settings.onError;
    violations.push(
      // The reason may echo outside text (CustomData, an error): never half a character in the record.
      builder.build(
        c.kind,
        action,
        0,
        new Int32Array(0),
        wellFormed(c.reason) || IMPLICIT_DESCRIPTIONS[c.kind],
      ),
    );
  }

  // 5. Outcome. 6. Mode.
  const computed = outcomeOf(violations);
  const advisory = compiled.policy.mode === 'advisory';
  // Advisory mode softens the policy's rules, never the gate's own blind spots: what it could not read or
  // judge (an error, a scan that is incomplete or timed out, findings of unknown severity) still takes its
  // action, so a roll-out never approves what nobody could see (fail closed).
  const outcome: Outcome = advisory
    ? outcomeOf(violations.filter((v) => IMPLICIT_IDS.has(v.violation.rule)))
    : computed;

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

const IMPLICIT_IDS: ReadonlySet<string> = new Set(IMPLICIT_RULE_IDS);

/** Any reject: REJECT; else any escalate: ESCALATE; else APPROVE (`warn` never counts). */
function outcomeOf(violations: readonly { readonly violation: Violation }[]): Outcome {
  if (violations.some((v) => v.violation.action === 'reject')) return 'REJECT';
  if (violations.some((v) => v.violation.action === 'escalate')) return 'ESCALATE';
  return 'APPROVE';
}

/**
 * Row lists that live only while one decision is made (the kept rows, the rows no exception covers, the
 * rule masks of matchRules), kept from one decision to the next. A fresh typed array of 100,000 rows is
 * often memory the system maps afresh, one page fault per 4 KB (about 16 µs each on the 2-core machine);
 * reused, it is already mapped. Each holds the largest list seen (4 bytes a row). Never handed out of
 * `evaluate`: the rows of a violation are arrays of their own. `evaluate` is synchronous, and the only code
 * of others it runs is a table's Materializer, which must not evaluate (see there); so no two decisions
 * share them at once.
 */
class ScratchRows {
  private buffer = new Int32Array(0);

  /** `n` rows of scratch, their contents left from before. */
  rows(n: number): Int32Array {
    if (this.buffer.length < n) this.buffer = new Int32Array(n);
    return this.buffer.subarray(0, n);
  }
}

const KEPT = new ScratchRows();
const REMAINING = new ScratchRows();
const MASKS = new ScratchRows();

/**
 * Steps 2 and 3 in one pass over the kept rows (a function of its own, so that its loop is optimised on
 * its own): counts the rows of the statuses the policy counts (`perLevel`, by severity), records in
 * `states` what each exception did, and returns the counted rows no exception covers, in order, and the
 * number of rows not counted.
 */
function countAndExcept(
  table: FindingTable,
  kept: Int32Array,
  statusMask: number,
  index: ExceptionIndex,
  packages: PackageMatcher,
  now: number,
  states: Uint8Array,
  perLevel: number[],
): { remaining: Int32Array; ignored: number } {
  const { statuses, levels, idOrdinals, distinctIds } = table;
  // The exceptions that may cover an id, looked up once per distinct id.
  const candidatesOf: (readonly CompiledException[] | undefined)[] = new Array(distinctIds.length);
  const remaining = REMAINING.rows(kept.length);
  let counted = 0;
  let n = 0;
  for (let k = 0; k < kept.length; k++) {
    const i = kept[k]!;
    if ((statuses[i]! & statusMask) === 0) continue;
    counted++;
    perLevel[levelIndex(levels[i]!)]!++;
    const ordinal = idOrdinals[i]!;
    let candidates = candidatesOf[ordinal];
    if (candidates === undefined) {
      candidates = index.candidates(distinctIds[ordinal]!);
      candidatesOf[ordinal] = candidates;
    }
    let covered = false;
    for (let c = 0; c < candidates.length; c++) {
      const e = candidates[c]!;
      if (e.packages !== undefined && !packages.all(e.packages, i)) continue;
      if (now > e.expiresAt) states[e.index]! |= EXPIRED;
      else if (e.revokeIf !== undefined && revokes(e.revokeIf, table, i)) states[e.index]! |= REVOKED;
      else {
        states[e.index]! |= APPLIED;
        covered = true;
      }
    }
    if (!covered) remaining[n++] = i;
  }
  return { remaining: remaining.subarray(0, n), ignored: kept.length - counted };
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
 * sorted: ids are marked by ordinal (numbered once) instead of hashed again per violation, and when a
 * violation has many, all ids are sorted once (by ordinal, see sortOrdinals) for all violations.
 */
class ViolationBuilder {
  private sortedOrdinals: Int32Array | undefined;
  /** `marks[o] === stamp`: id o is among the ids of the violation being built (no clearing between them). */
  private readonly marks: Int32Array;
  private stamp = 0;
  /** The ordinals of the violation's distinct ids, in order of first sight. */
  private readonly seen: Int32Array;

  constructor(
    private readonly table: FindingTable,
    private readonly ids: readonly string[],
    private readonly ordinalOf: Int32Array,
  ) {
    this.marks = new Int32Array(ids.length);
    this.seen = new Int32Array(ids.length);
  }

  build(
    rule: string,
    action: ViolationAction,
    allow: number,
    rows: Int32Array,
    description: string | undefined,
  ): DetailedViolation {
    const perLevel = [0, 0, 0, 0, 0, 0];
    const { marks, seen, ordinalOf } = this;
    const levels = this.table.levels;
    const stamp = ++this.stamp;
    let distinct = 0;
    for (let k = 0; k < rows.length; k++) {
      const i = rows[k]!;
      perLevel[levelIndex(levels[i]!)]!++;
      const o = ordinalOf[i]!;
      if (marks[o] !== stamp) {
        marks[o] = stamp;
        seen[distinct++] = o;
      }
    }
    const violation: Violation = {
      rule,
      action,
      allow,
      count: rows.length,
      findings: this.sortedIds(distinct, stamp),
      ...(description ? { description } : {}),
    };
    const bySeverity = new Map<Severity, number>();
    for (let l = 0; l < SEVERITIES.length; l++) {
      if (perLevel[l]! > 0) bySeverity.set(SEVERITIES[l]!, perLevel[l]!);
    }
    return { violation, rows, summary: { ...violation, bySeverity } };
  }

  private sortedIds(distinct: number, stamp: number): string[] {
    const ids = this.ids;
    // Few ids: sort just those. Many: walk all ids in an order sorted once.
    if (distinct * 8 < ids.length) {
      const out = new Array<string>(distinct);
      for (let k = 0; k < distinct; k++) out[k] = ids[this.seen[k]!]!;
      return out.sort(compareStrings);
    }
    this.sortedOrdinals ??= sortOrdinals(ids);
    const sorted = this.sortedOrdinals;
    const marks = this.marks;
    const out = new Array<string>(distinct);
    let n = 0;
    for (let k = 0; k < sorted.length; k++) {
      const o = sorted[k]!;
      if (marks[o] === stamp) out[n++] = ids[o]!;
    }
    return out;
  }
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The ordinals of `strings`, in the order of the strings (as `<` orders them: by UTF-16 code units). A
 * three-way radix quicksort (Bentley and Sedgewick's multikey quicksort): partitions on one character at a
 * time, so the long prefixes ids share (`CVE-20`) are read once per level instead of once per comparison,
 * and no comparator is called through the ordinals.
 */
function sortOrdinals(strings: readonly string[]): Int32Array {
  const ordinals = new Int32Array(strings.length);
  for (let o = 0; o < ordinals.length; o++) ordinals[o] = o;
  multikeySort(strings, ordinals, 0, ordinals.length, 0);
  return ordinals;
}

/** Sorts a[lo..hi), whose strings are known to share their first `depth` characters. */
function multikeySort(
  strings: readonly string[],
  a: Int32Array,
  lo: number,
  hi: number,
  depth: number,
): void {
  for (;;) {
    if (hi - lo < 12) {
      // Insertion sort; strings that share a prefix compare the same whole or from `depth`.
      for (let i = lo + 1; i < hi; i++) {
        const o = a[i]!;
        const s = strings[o]!;
        let j = i - 1;
        while (j >= lo && strings[a[j]!]! > s) {
          a[j + 1] = a[j]!;
          j--;
        }
        a[j + 1] = o;
      }
      return;
    }
    // Partition on the character at `depth` (-1 past the end, so shorter strings come first):
    // a[lo..lt) below the pivot, a[lt..gt] equal to it, a(gt..hi) above it.
    const pivot = charAt(strings[a[(lo + hi) >>> 1]!]!, depth);
    let lt = lo;
    let gt = hi - 1;
    let i = lo;
    while (i <= gt) {
      const o = a[i]!;
      const c = charAt(strings[o]!, depth);
      if (c < pivot) {
        a[i++] = a[lt]!;
        a[lt++] = o;
      } else if (c > pivot) {
        a[i] = a[gt]!;
        a[gt--] = o;
      } else i++;
    }
    multikeySort(strings, a, lo, lt, depth);
    multikeySort(strings, a, gt + 1, hi, depth);
    // Equal strings (all ended here) are done; the others share one more character.
    if (pivot < 0) return;
    lo = lt;
    hi = gt + 1;
    depth++;
  }
}

function charAt(s: string, i: number): number {
  return i < s.length ? s.charCodeAt(i) : -1;
}

function scopeMatches(globs: { test(v: string): boolean } | undefined, value: string | undefined): boolean {
  if (globs === undefined) return true;
  return value !== undefined && globs.test(value);
}

/**
 * The rows each rule matches, for the rules that match more rows than they allow (undefined for the
 * others, which are no violation), each in the order of `rows`.
 *
 * One pass over the rows for all rules (up to 31; more take one pass per 31): each condition of each rule
 * is turned into a set of rules, as a bit mask, that a row's value satisfies, and a row matches the rules
 * left in the AND of its masks. Severity, fix and exploit masks are looked up by the column's value; score,
 * EPSS and age compare the value with each distinct threshold; package and vulnerability-id globs are
 * tested once per distinct name or id before the pass, and looked up only for rows some rule with such a
 * condition still wants. So a row costs a few lookups however many rules there are, and its columns are
 * read once. Unknown values never match: NaN fails every comparison, and 0 is no bit of any mask.
 */
function matchRules(
  rules: readonly CompiledRule[],
  t: FindingTable,
  rows: Int32Array,
  now: number,
  packages: PackageMatcher,
): (Int32Array | undefined)[] {
  const hits = new Array<Int32Array | undefined>(rules.length);
  const masks = MASKS.rows(rows.length);
  for (let base = 0; base < rules.length; base += RULES_PER_PASS) {
    const chunk = rules.slice(base, base + RULES_PER_PASS);
    const m = new RuleMasks(chunk, t, now, packages);
    const counts = new Int32Array(chunk.length);
    for (let k = 0; k < rows.length; k++) {
      let bits = m.of(rows[k]!);
      masks[k] = bits;
      while (bits !== 0) {
        const r = 31 - Math.clz32(bits);
        counts[r]!++;
        bits ^= 1 << r;
      }
    }
    // Only the rules that are violated need their rows.
    const out: (Int32Array | undefined)[] = chunk.map((r, k) =>
      counts[k]! > r.rule.allow ? new Int32Array(counts[k]!) : undefined,
    );
    const filled = new Int32Array(chunk.length);
    for (let k = 0; k < rows.length; k++) {
      let bits = masks[k]!;
      while (bits !== 0) {
        const r = 31 - Math.clz32(bits);
        const list = out[r];
        if (list !== undefined) list[filled[r]!++] = rows[k]!;
        bits ^= 1 << r;
      }
    }
    for (let k = 0; k < chunk.length; k++) hits[base + k] = out[k];
  }
  return hits;
}

/** Rules matched in one pass: one bit each in an int32, the sign bit left alone. */
const RULES_PER_PASS = 31;

/** The rule masks of matchRules for up to 31 rules (bit r: rule r of the chunk). */
class RuleMasks {
  /** By column value: the rules whose condition on that column the value satisfies (or that set none). */
  private readonly byLevel = new Int32Array(256);
  private readonly byFix = new Int32Array(256);
  /** By the exploit column's value as a byte (-1, unknown, is 255). */
  private readonly byExploit = new Int32Array(256);
  private readonly score: Thresholds;
  private readonly epss: Thresholds;
  /** On firstObserved: a row satisfies a rule's `olderThanDays` when first seen before `now - olderThanMs`. */
  private readonly firstBefore: Thresholds;
  /** Rules with a `packages` (`vulnerabilityIds`) condition, and per distinct package (id) those it meets. */
  private readonly packageRules: number;
  private readonly packageBits: DistinctBits;
  private readonly idRules: number;
  private readonly idBits: DistinctBits;

  constructor(
    rules: readonly CompiledRule[],
    private readonly t: FindingTable,
    now: number,
    packages: PackageMatcher,
  ) {
    for (let v = 0; v < 256; v++) {
      const exploit = v > 127 ? v - 256 : v;
      for (let r = 0; r < rules.length; r++) {
        const rule = rules[r]!;
        const bit = 1 << r;
        if (rule.severityMask === 0 || (rule.severityMask & v) !== 0) this.byLevel[v]! |= bit;
        if (rule.fixMask === 0 || (rule.fixMask & v) !== 0) this.byFix[v]! |= bit;
        if (rule.exploit === undefined || rule.exploit === exploit) this.byExploit[v]! |= bit;
      }
    }
    this.score = new Thresholds(rules, (r) => r.minScore, 'atLeast');
    this.epss = new Thresholds(rules, (r) => r.minEpss, 'atLeast');
    this.firstBefore = new Thresholds(
      rules,
      (r) => (r.olderThanMs === undefined ? undefined : now - r.olderThanMs),
      'below',
    );
    let packageRules = 0;
    let idRules = 0;
    const packageGlobs: GlobSet[] = [];
    const idGlobs: GlobSet[] = [];
    for (let r = 0; r < rules.length; r++) {
      const { packages: p, vulnerabilityIds: v } = rules[r]!;
      if (p !== undefined) packageRules |= 1 << r;
      if (v !== undefined) idRules |= 1 << r;
      packageGlobs.push(p ?? MATCH_ALL);
      idGlobs.push(v ?? MATCH_ALL);
    }
    this.packageRules = packageRules;
    this.idRules = idRules;
    this.packageBits = new DistinctBits(packages.names.length, packageGlobs, packageRules, (g) =>
      packages.matches(g),
    );
    this.idBits = new DistinctBits(t.distinctIds.length, idGlobs, idRules, (g) =>
      distinctMatches(t.distinctIds, g),
    );
  }

  /** The rules row i matches; conditions no rule still in the running sets are not looked at. */
  of(i: number): number {
    const t = this.t;
    let bits =
      this.byLevel[t.levels[i]!]! & this.byFix[t.fixes[i]!]! & this.byExploit[t.exploits[i]! & 0xff]!;
    if ((bits & this.score.rules) !== 0) bits &= this.score.met(t.scores[i]!);
    if ((bits & this.epss.rules) !== 0) bits &= this.epss.met(t.epss[i]!);
    if ((bits & this.firstBefore.rules) !== 0) bits &= this.firstBefore.met(t.firstObserved[i]!);
    if ((bits & this.packageRules) !== 0) {
      // A rule's `packages` holds when one of the row's packages matches; the others need none.
      let any = 0;
      const end = t.packageStart[i + 1]!;
      for (let p = t.packageStart[i]!; p < end; p++) any |= this.packageBits.of(t.packageOrdinals[p]!);
      bits &= any | ~this.packageRules;
    }
    if ((bits & this.idRules) !== 0) bits &= this.idBits.of(t.idOrdinals[i]!) | ~this.idRules;
    return bits;
  }
}

/** A glob set that every value matches: it stands for "no such condition" in DistinctBits. */
const MATCH_ALL: GlobSet = compileGlobSet(['*']);

/**
 * Per distinct value (package name, vulnerability id), the rules whose globs match it: each glob set is
 * tested once per distinct value, all up front, in one tight loop per rule (tested as rows ask, the tests
 * would sit in the row loop, which then runs slower for every row). Values no row in the running has are
 * tested too: they are no more than the table's rows, and usually far fewer.
 */
class DistinctBits {
  private readonly bits: Int32Array;

  constructor(
    length: number,
    /** By rule: its globs (MATCH_ALL where it sets none); only the rules in `tested` are tested. */
    globs: readonly GlobSet[],
    tested: number,
    /** For each value, 1 where the globs match it (for packages, from PackageMatcher's cache). */
    matches: (globs: GlobSet) => Uint8Array,
  ) {
    this.bits = new Int32Array(tested === 0 ? 0 : length);
    for (let r = 0; r < globs.length; r++) {
      if ((tested & (1 << r)) === 0) continue;
      const m = matches(globs[r]!);
      const bit = 1 << r;
      for (let o = 0; o < length; o++) if (m[o] === 1) this.bits[o]! |= bit;
    }
  }

  of(ordinal: number): number {
    return this.bits[ordinal]!;
  }
}

/**
 * One numeric condition of several rules (`minScore`, `minEpss`: value ≥ threshold; `olderThanDays`:
 * value < limit). The distinct thresholds are kept from the easiest to meet to the hardest, each with the
 * rules it is the threshold of, so a value collects rules until the first threshold it fails. NaN fails
 * the first; rules without the condition are always met.
 */
class Thresholds {
  /** The rules that set the condition. */
  readonly rules: number;
  private readonly values: Float64Array;
  private readonly ruleBits: Int32Array;
  private readonly always: number;
  private readonly below: boolean;

  constructor(
    rules: readonly CompiledRule[],
    threshold: (r: CompiledRule) => number | undefined,
    kind: 'atLeast' | 'below',
  ) {
    const byValue = new Map<number, number>();
    let always = 0;
    rules.forEach((r, k) => {
      const v = threshold(r);
      if (v === undefined) always |= 1 << k;
      else byValue.set(v, (byValue.get(v) ?? 0) | (1 << k));
    });
    // Easiest first: the lowest minimum, or the highest limit.
    const order = [...byValue.keys()].sort((a, b) => (kind === 'atLeast' ? a - b : b - a));
    this.values = Float64Array.from(order);
    this.ruleBits = Int32Array.from(order, (v) => byValue.get(v)!);
    this.always = always;
    this.rules = ~always & (rules.length === 32 ? -1 : (1 << rules.length) - 1);
    this.below = kind === 'below';
  }

  /** The rules whose condition `value` meets. */
  met(value: number): number {
    let bits = this.always;
    const values = this.values;
    if (this.below) {
      for (let k = 0; k < values.length && value < values[k]!; k++) bits |= this.ruleBits[k]!;
    } else {
      for (let k = 0; k < values.length && value >= values[k]!; k++) bits |= this.ruleBits[k]!;
    }
    return bits;
  }
}

/** The rows whose column has a bit of `mask`. */
function keepMask(list: Int32Array, column: Uint8Array, mask: number): Int32Array {
  let n = 0;
  for (let k = 0; k < list.length; k++) if ((column[list[k]!]! & mask) !== 0) n++;
  const out = new Int32Array(n);
  n = 0;
  for (let k = 0; k < list.length; k++) {
    const i = list[k]!;
    if ((column[i]! & mask) !== 0) out[n++] = i;
  }
  return out;
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

/**
 * Package globs against a row's packages, each list of globs tested once per distinct package name, however
 * many rules and exceptions give it.
 */
class PackageMatcher {
  /**
   * By glob set. The policy compiles equal lists of patterns to one set (see compilePolicy), so a list a
   * rule and an exception both give is matched once; and a probe per row (see `all`) builds no key.
   */
  private readonly memos = new Map<GlobSet, Uint8Array>();

  constructor(private readonly table: FindingTable) {}

  /** The distinct package names, by ordinal. */
  get names(): readonly string[] {
    return this.table.distinctPackages;
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

  /** For each distinct package name, 1 if one of the globs matches it. */
  matches(globs: GlobSet): Uint8Array {
    let memo = this.memos.get(globs);
    if (memo === undefined) {
      memo = distinctMatches(this.table.distinctPackages, globs);
      this.memos.set(globs, memo);
    }
    return memo;
  }
}

/**
 * Exceptions by vulnerability id. Exact ids are one map probe. Globs are grouped by the lengths of their
 * literal prefix and suffix (`CVE-2023-*`: 9 and 0, `CVE-*-1234`: 4 and 5, `*-1234`: 0 and 5) and, within a
 * group, filed under a hash of that prefix and suffix. An id is hashed once from each end, reading its
 * characters in place (no substring or key string is built per id), and costs one probe per group, however
 * many exceptions there are; only the globs filed under its own hashes are tested, and the test settles any
 * hash collision.
 */
class ExceptionIndex {
  private readonly exact = new Map<string, CompiledException[]>();
  private readonly groups: AffixGroup[] = [];
  /** The distinct prefix and suffix lengths of the globs, ascending. */
  private readonly prefixLengths: number[];
  private readonly suffixLengths: number[];
  /** Scratch: the hashes of the id's prefixes and suffixes of those lengths. */
  private readonly prefixHashes: Int32Array;
  private readonly suffixHashes: Int32Array;

  constructor(exceptions: readonly CompiledException[]) {
    const globs: CompiledException[] = [];
    for (const e of exceptions) {
      if (e.vulnerabilityId.isLiteral) push(this.exact, e.vulnerabilityId.source, e);
      else globs.push(e);
    }
    const ascending = (a: number, b: number) => a - b;
    this.prefixLengths = [...new Set(globs.map((e) => e.vulnerabilityId.prefix.length))].sort(ascending);
    this.suffixLengths = [...new Set(globs.map((e) => e.vulnerabilityId.suffix.length))].sort(ascending);
    this.prefixHashes = new Int32Array(this.prefixLengths.length);
    this.suffixHashes = new Int32Array(this.suffixLengths.length);
    const byLengths = new Map<string, AffixGroup>();
    for (const e of globs) {
      const { prefix, suffix } = e.vulnerabilityId;
      const lengths = `${prefix.length}/${suffix.length}`;
      let group = byLengths.get(lengths);
      if (group === undefined) {
        group = {
          prefix: this.prefixLengths.indexOf(prefix.length),
          suffix: this.suffixLengths.indexOf(suffix.length),
          minLength: prefix.length + suffix.length,
          filed: new Map(),
        };
        byLengths.set(lengths, group);
        this.groups.push(group);
      }
      push(group.filed, affixHash(prefixHash(prefix, prefix.length), suffixHash(suffix, suffix.length)), e);
    }
  }

  candidates(id: string): readonly CompiledException[] {
    let found: CompiledException[] | undefined;
    const exact = this.exact.get(id);
    if (exact) found = [...exact];
    const groups = this.groups;
    if (groups.length === 0) return found ?? NO_EXCEPTIONS;
    // FNV-1a of the id's first p characters for each prefix length p (and of its last q, read from the end,
    // for each suffix length q), each extending the previous one. Lengths beyond the id are left stale:
    // the groups that use them need a longer id and are skipped.
    const n = id.length;
    const prefixLengths = this.prefixLengths;
    const prefixHashes = this.prefixHashes;
    let h = FNV_OFFSET;
    for (let k = 0, j = 0; k < prefixLengths.length && prefixLengths[k]! <= n; k++) {
      for (const p = prefixLengths[k]!; j < p; j++) h = Math.imul(h ^ id.charCodeAt(j), FNV_PRIME);
      prefixHashes[k] = h;
    }
    const suffixLengths = this.suffixLengths;
    const suffixHashes = this.suffixHashes;
    h = FNV_OFFSET;
    for (let k = 0, j = 0; k < suffixLengths.length && suffixLengths[k]! <= n; k++) {
      for (const q = suffixLengths[k]!; j < q; j++) h = Math.imul(h ^ id.charCodeAt(n - 1 - j), FNV_PRIME);
      suffixHashes[k] = h;
    }
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g]!;
      if (group.minLength > n) continue;
      const filed = group.filed.get(affixHash(prefixHashes[group.prefix]!, suffixHashes[group.suffix]!));
      if (filed === undefined) continue;
      for (let k = 0; k < filed.length; k++) {
        const e = filed[k]!;
        if (!e.vulnerabilityId.test(id)) continue;
        found ??= [];
        found.push(e);
      }
    }
    if (found === undefined) return NO_EXCEPTIONS;
    return found.length > 1 ? found.sort(byIndex) : found;
  }
}

/** Globs with one length of literal prefix and of literal suffix, by the hash of those affixes. */
interface AffixGroup {
  /** Index of the prefix length in `prefixLengths` (and of the suffix length in `suffixLengths`). */
  readonly prefix: number;
  readonly suffix: number;
  /** Prefix and suffix lengths together: no shorter id can match. */
  readonly minLength: number;
  readonly filed: Map<number, CompiledException[]>;
}

const NO_EXCEPTIONS: readonly CompiledException[] = [];
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;

/** FNV-1a of the first `length` characters of `s` (the hash `candidates` computes from an id's start). */
function prefixHash(s: string, length: number): number {
  let h = FNV_OFFSET;
  for (let j = 0; j < length; j++) h = Math.imul(h ^ s.charCodeAt(j), FNV_PRIME);
  return h;
}

/** FNV-1a of the last `length` characters of `s`, read from the end. */
function suffixHash(s: string, length: number): number {
  let h = FNV_OFFSET;
  for (let j = 0; j < length; j++) h = Math.imul(h ^ s.charCodeAt(s.length - 1 - j), FNV_PRIME);
  return h;
}

/** One map key for a prefix and a suffix hash, kept within V8's small integers so that it is not boxed. */
function affixHash(prefix: number, suffix: number): number {
  return (Math.imul(prefix, 0x9e3779b1) ^ suffix) & 0x3fffffff;
}

function byIndex(a: CompiledException, b: CompiledException): number {
  return a.index - b.index;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * One row per key, in order of first sight. When two copies differ, the choice must not depend on their
 * order: the newer copy wins, and between equally new copies the stricter reading (fail closed: a copy of a
 * status the policy counts, then the more severe), then a canonical comparison. Copies are rare, so only they
 * are rebuilt as full findings to compare.
 */
function dedupe(table: FindingTable, statusMask: number): Int32Array {
  const winner = KEPT.rows(table.keyCount).fill(-1);
  for (let i = 0; i < table.length; i++) {
    const o = table.keyOrdinals[i]!;
    const seen = winner[o]!;
    if (seen === -1 || prefer(table.row(i), table.row(seen), statusMask)) winner[o] = i;
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

/** Whether `a` should replace `b` as the copy of one finding (`statusMask`: the statuses the policy counts). */
function prefer(a: Finding, b: Finding, statusMask: number): boolean {
  const ta = a.updatedAt ?? -1;
  const tb = b.updatedAt ?? -1;
  if (ta !== tb) return ta > tb;
  // A copy of a status the policy counts is counted, one of another status is not: whatever their
  // severities, the counted reading is the stricter, so it comes before severity. A finding without a
  // status is ACTIVE, as the table reads it.
  const ca = (statusBit(a.status ?? 'ACTIVE') & statusMask) !== 0;
  const cb = (statusBit(b.status ?? 'ACTIVE') & statusMask) !== 0;
  if (ca !== cb) return ca;
  const sa = SEVERITY_RANK[a.level];
  const sb = SEVERITY_RANK[b.level];
  if (sa !== sb) return sa > sb;
  return canonical(a) > canonical(b);
}

function canonical(f: Finding): string {
  return JSON.stringify(f);
}

// See keepShapes: none of these helpers outlives its decision.
{
  const table = FindingTable.fromFindings([]);
  keepShapes(
    new ExceptionIndex([]),
    new PackageMatcher(table),
    new RuleMasks([], table, 0, new PackageMatcher(table)),
    new DistinctBits(0, [], 0, () => new Uint8Array(0)),
    new Thresholds([], () => undefined, 'atLeast'),
    new ViolationBuilder(table, table.distinctIds, table.idOrdinals),
  );
}
