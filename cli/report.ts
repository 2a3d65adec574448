import { styleText } from 'node:util';
import {
  type CompiledPolicy,
  type DecisionRecord,
  type Evaluation,
  expiryOf,
  type FindingTable,
  SEVERITIES,
  type ViolationDetail,
} from '../shared/index.js';
import { printable, printableLine } from './audit-format.js';

export interface ReportOptions {
  readonly color: boolean;
  /** Findings shown per violation; the rest are counted (the JSON record lists every id). */
  readonly maxRows?: number;
}

type Style = Parameters<typeof styleText>[0];

/**
 * A value from a findings or policy file, for one line of the report. An escape sequence in a package
 * name could clear the screen and print a forged outcome, and a line break in one could start a line of
 * its own (`APPROVE`), so both are shown escaped.
 */
const field = printableLine;

const OUTCOME_STYLE: Readonly<Record<DecisionRecord['outcome'], Style>> = {
  APPROVE: ['bold', 'green'],
  REJECT: ['bold', 'red'],
  ESCALATE: ['bold', 'yellow'],
};

/**
 * The terminal report of `tollgate evaluate`: the outcome first, then what caused it with the findings
 * behind each violation, then warnings, exception hygiene and counts: what a security engineer reads
 * before letting a policy go live.
 */
export function renderReport(evaluation: Evaluation, policy: CompiledPolicy, options: ReportOptions): string {
  const paint = (style: Style, text: string) => (options.color ? styleText(style, text) : text);
  const { record } = evaluation;
  const maxRows = options.maxRows ?? 20;
  const out: string[] = [];

  const advisory = record.wouldBe ? `  (advisory mode: would be ${record.wouldBe})` : '';
  out.push(`${paint(OUTCOME_STYLE[record.outcome], record.outcome)}${advisory}`);
  out.push(`  ${field(record.summary)}`);
  const s = record.subject;
  const image = s.repository == null ? '(repository unknown)' : field(s.repository);
  out.push(
    `  image     ${image}${s.digest ? `@${field(s.digest)}` : ''}${s.tags.length > 0 ? `  tags: ${s.tags.map(field).join(', ')}` : ''}`,
  );
  if (s.pipeline) out.push(`  pipeline  ${field(s.pipeline)}`);
  out.push(
    `  policy    ${field(record.policy.name)} (${record.mode}, sha256 ${record.policy.sha256.slice(0, 12)}…)`,
  );

  out.push('');
  if (evaluation.violations.length === 0) out.push(paint('bold', 'Violations: none'));
  else {
    out.push(paint('bold', `Violations (${evaluation.violations.length})`));
    for (const v of evaluation.violations) out.push(...renderViolation(v, evaluation.table, paint, maxRows));
  }

  if (evaluation.warnings.length > 0) {
    out.push('');
    out.push(paint('bold', `Warnings (${evaluation.warnings.length})`));
    for (const v of evaluation.warnings) out.push(...renderViolation(v, evaluation.table, paint, maxRows));
  }

  out.push('');
  out.push(paint('bold', 'Exceptions'));
  const expiries = new Map(policy.exceptions.map((e) => [e.exception.id, e.exception.expires]));
  const now = Date.parse(record.evaluatedAt);
  const line = (label: string, ids: readonly string[], withExpiry = false) => {
    const shown =
      ids.length === 0
        ? paint('dim', '-')
        : ids
            .map((id) => {
              const exp = expiries.get(id);
              return withExpiry && exp
                ? `${field(id)} (expires ${field(exp)}, ${daysUntil(exp, now)})`
                : field(id);
            })
            .join(', ');
    out.push(`  ${label.padEnd(15)}${shown}`);
  };
  line('applied', record.exceptions.applied);
  line('expiring soon', record.exceptions.expiringSoon, true);
  line('expired', record.exceptions.expired, true);
  line('revoked', record.exceptions.revoked);
  line('unused', record.exceptions.unused);

  out.push('');
  const counts = SEVERITIES.map((sev) => `${sev} ${record.counts[sev]}`).join('  ');
  out.push(`${paint('bold', 'Counts')}  ${counts}`);
  out.push(`        ignored by status ${record.ignored}`);
  out.push(paint('dim', `Evaluated at ${record.evaluatedAt}`));
  return `${out.join('\n')}\n`;
}

function renderViolation(
  detail: ViolationDetail,
  table: FindingTable,
  paint: (style: Style, text: string) => string,
  maxRows: number,
): string[] {
  const v = detail.violation;
  const mark =
    v.action === 'reject'
      ? paint('red', '✖')
      : v.action === 'escalate'
        ? paint('yellow', '▲')
        : paint('cyan', '!');
  const out: string[] = [];
  const counted = detail.rows.length > 0 || v.count > 0 ? `, ${v.count} finding(s) > allow ${v.allow}` : '';
  out.push(`  ${mark} ${paint('bold', field(v.rule))}  ${v.action}${counted}`);
  // A description may run over lines (a YAML block scalar): each is indented under its rule.
  if (v.description) {
    for (const l of v.description.trimEnd().split('\n')) out.push(`    ${printable(l)}`);
  }
  if (detail.rows.length === 0) return out;

  // Order on the columns, then rebuild only the findings shown.
  const order = Array.from(detail.rows).sort(byUrgency(table));
  const sorted = order.slice(0, maxRows).map((i) => table.row(i));
  const rows: string[][] = [
    ['VULNERABILITY', 'PACKAGE', 'INSTALLED → FIXED', 'SEVERITY', 'SCORE', 'EPSS', 'EXPLOIT'],
  ];
  for (const f of sorted) {
    const packages = f.packages.length > 0 ? f.packages : [undefined];
    packages.forEach((p, i) => {
      rows.push([
        i === 0 ? field(f.vulnerabilityId) : '',
        p ? clip(field(p.name), 40) : '-',
        p ? `${clip(field(p.version ?? '?'), 28)} → ${clip(field(p.fixedInVersion ?? 'no fix'), 28)}` : '-',
        i === 0 ? field(f.severity) : '',
        i === 0 ? (f.score === undefined ? '-' : f.score.toFixed(1)) : '',
        i === 0 ? (f.epss === undefined ? '-' : f.epss.toFixed(4)) : '',
        i === 0 ? (f.exploitAvailable === undefined ? '-' : f.exploitAvailable ? 'yes' : 'no') : '',
      ]);
    });
  }
  out.push(...formatTable(rows).map((r, i) => `    ${i === 0 ? paint('dim', r) : r}`));
  if (order.length > maxRows) {
    out.push(
      `    … and ${order.length - maxRows} more finding(s) (--format json lists every vulnerability id)`,
    );
  }
  return out;
}

/** Most urgent first: severity, then score, then EPSS, then id (a stable order for a stable report). */
function byUrgency(t: FindingTable): (a: number, b: number) => number {
  const num = (x: number) => (Number.isNaN(x) ? -1 : x);
  return (a, b) => {
    const ia = t.vulnerabilityId(a);
    const ib = t.vulnerabilityId(b);
    return (
      t.levels[a]! - t.levels[b]! ||
      num(t.scores[b]!) - num(t.scores[a]!) ||
      num(t.epss[b]!) - num(t.epss[a]!) ||
      (ia < ib ? -1 : ia > ib ? 1 : 0) ||
      a - b
    );
  };
}

function formatTable(rows: readonly string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, [...c].length);
    });
  }
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - [...c].length)))
      .join('  ')
      .trimEnd(),
  );
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function daysUntil(expires: string, now: number): string {
  const days = Math.floor((expiryOf(expires) - now) / 86_400_000);
  if (days < 0) return `${-days} day(s) ago`;
  if (days === 0) return 'today';
  return `in ${days} day(s)`;
}
