import { causesFirst } from '../decision/causes.js';
import { type DecisionRecord, type Outcome, SUMMARY_MAX, type Violation } from '../decision/record.js';
import type { Severity } from '../findings/finding.js';
import { clipUnits, wellFormed } from '../text.js';
import { partitionOf } from './events.js';
import type { FindingSummary, Gate, StoredDecision, ViolationFindings } from './model.js';
import type { EscalationMessage } from './ports.js';

/*
 * The escalation a security engineer receives: everything needed to decide without opening five consoles
 * (architecture spec §4). Pure: the SNS adapter only publishes what this renders.
 */

export interface EscalationInput {
  readonly gate: Gate;
  readonly decision: StoredDecision;
  /** The region of the pipeline (the consoles' links point there). */
  readonly region: string;
  /** The pipeline's account, when the caller knows it better than the gate does. */
  readonly account?: string;
  /** Where the findings came from: an ECR basic scan's image is never in Inspector (no link there). */
  readonly scanSource?: 'inspector' | 'ecr';
}

export const ESCALATION_VERSION = 'tollgate.escalation/1';

/**
 * SNS refuses a subject unless it is "less than 100 characters long" with no line breaks, control or
 * non-ASCII characters (Amazon SNS Publish `Subject` constraints; Amazon Managed Service for Prometheus,
 * "Understanding Amazon SNS message validation rules"). So the subject is printable ASCII only (its
 * ellipsis is `...`, not `…`), and at most 99 characters: the SNS adapter cuts anything longer blindly,
 * and a subject shortened here with care must never reach that cut.
 */
export const SUBJECT_MAX = 99;

/** The location (pipeline/stage) keeps at least this much of the subject before rule names are shown. */
const SUBJECT_LOCATION_ROOM = 60;
const SUBJECT_SEPARATOR = ' - ';

export interface EscalationFindingJson {
  readonly vulnerabilityId: string;
  readonly package: string | null;
  readonly installedVersion: string | null;
  readonly fixedInVersion: string | null;
  readonly severity: string;
  readonly score: number | null;
  readonly epss: number | null;
  readonly exploitAvailable: boolean | null;
}

export interface EscalationViolationJson {
  readonly rule: string;
  readonly action: Violation['action'];
  /** Matching findings, and how many the rule allows. */
  readonly count: number;
  readonly allow: number;
  readonly description: string | null;
  /** The worst findings, at most `DETAIL_LIMIT`. */
  readonly findings: readonly EscalationFindingJson[];
  /** Findings of the violation not in `findings` (the SNS adapter adds those it cuts to fit a message). */
  readonly more: number;
  /** The distinct vulnerability ids of the violation the decision record holds, sorted. */
  readonly vulnerabilityIds: readonly string[];
  /**
   * Distinct vulnerability ids left out of `vulnerabilityIds`, as in the published decision events: those a
   * decision too large for one item could not store (`findingsOmitted`), and those the SNS adapter cuts to
   * fit a message. `vulnerabilityIds.length + moreVulnerabilityIds` is every id of the violation.
   */
  readonly moreVulnerabilityIds: number;
}

export interface EscalationLinks {
  /** The pipeline execution in the CodePipeline console, where the approval is reviewed. */
  readonly approval: string;
  /** The pipeline in the CodePipeline console. */
  readonly pipeline: string;
  /** The image's findings in the Amazon Inspector console (needs the digest). */
  readonly inspectorFindings: string | null;
  /** The image in the Amazon ECR console (needs the digest and the registry's account). */
  readonly ecrImage: string | null;
}

/**
 * The escalation as JSON, for chat integrations: every field is always present (`null` when unknown), so a
 * bot's template never tests for a missing key.
 */
export interface EscalationJson {
  readonly version: typeof ESCALATION_VERSION;
  readonly gate: {
    readonly pipeline: string;
    readonly stage: string;
    readonly action: string;
    readonly executionId: string;
    /** The execution's attempt: 1, or more for a retried stage's approval. */
    readonly attempt: number;
    readonly actionExecutionId: string | null;
    readonly account: string | null;
    readonly region: string;
  };
  readonly image: {
    readonly repository: string | null;
    readonly tags: readonly string[];
    readonly digest: string | null;
    readonly registryId: string | null;
    /** Why no image could be identified. */
    readonly problem: string | null;
  };
  readonly outcome: Outcome;
  readonly mode: DecisionRecord['mode'];
  readonly wouldBe: Outcome | null;
  readonly summary: string;
  readonly policy: { readonly name: string; readonly sha256: string };
  readonly counts: Readonly<Record<Severity, number>>;
  readonly violations: readonly EscalationViolationJson[];
  readonly warnings: readonly EscalationViolationJson[];
  /** Exceptions this decision applied that expire within `settings.expiringSoonDays`. */
  readonly expiringSoon: readonly string[];
  /** Expiring exceptions left out of `expiringSoon` (the SNS adapter counts those it cuts to fit a message). */
  readonly moreExpiringSoon: number;
  readonly links: EscalationLinks;
  readonly decidedAt: string;
  /** What made the gate decide: `scan-finished`, `approval-started`, `sweep`, perhaps with a note (`(again)`). */
  readonly trigger: string;
}

export function renderEscalation(input: EscalationInput): EscalationMessage {
  const json = escalationJson(input);
  return { subject: renderSubject(json), text: renderText(json), json };
}

/**
 * The PutApprovalResult summary. The record's summary already fits by construction; this guards the API
 * call anyway, since a summary over the limit would make CodePipeline refuse the result itself. Lengths are
 * UTF-16 units, as CodePipeline counts them.
 */
export function approvalSummary(record: DecisionRecord): string {
  return clipUnits(cleanLine(record.summary), SUMMARY_MAX);
}

function escalationJson(input: EscalationInput): EscalationJson {
  const { gate, decision, region } = input;
  const { record } = decision;
  const key = decision.key;
  const image = decision.image ?? gate.image;
  const account = nonEmpty(input.account) ?? nonEmpty(gate.account);
  const details = new Map(decision.details.map((d) => [d.rule, d]));
  const repository = image?.repository ?? record.subject.repository;
  const digest = image?.digest ?? record.subject.digest;
  const jsonImage = {
    repository: repository === null ? null : cleanLine(repository),
    tags: (image?.tags ?? record.subject.tags).map(cleanLine),
    digest: digest === null ? null : cleanLine(digest),
    registryId: image?.registryId ?? null,
    problem: image === undefined && gate.imageProblem !== undefined ? cleanLine(gate.imageProblem) : null,
  };
  return {
    version: ESCALATION_VERSION,
    gate: {
      pipeline: cleanLine(key.pipeline),
      stage: cleanLine(key.stage),
      action: cleanLine(key.action),
      executionId: cleanLine(key.executionId),
      attempt: key.attempt ?? 1,
      actionExecutionId: gate.actionExecutionId === undefined ? null : cleanLine(gate.actionExecutionId),
      account: account ?? null,
      region,
    },
    image: jsonImage,
    outcome: record.outcome,
    mode: record.mode,
    wouldBe: record.wouldBe ?? null,
    summary: cleanLine(record.summary),
    policy: { name: cleanLine(record.policy.name), sha256: record.policy.sha256 },
    counts: record.counts,
    violations: record.violations.map((v) => violationJson(v, details.get(v.rule))),
    warnings: record.warnings.map((v) => violationJson(v, details.get(v.rule))),
    expiringSoon: record.exceptions.expiringSoon.map(cleanLine),
    moreExpiringSoon: 0,
    links: links(
      key.pipeline,
      key.executionId,
      region,
      jsonImage,
      jsonImage.registryId ?? account,
      input.scanSource ?? 'inspector',
    ),
    decidedAt: decision.decidedAt,
    trigger: cleanLine(decision.trigger),
  };
}

function violationJson(v: Violation, detail: ViolationFindings | undefined): EscalationViolationJson {
  return {
    rule: cleanLine(v.rule),
    action: v.action,
    count: v.count,
    allow: v.allow,
    description: v.description === undefined ? null : cleanLine(v.description),
    findings: (detail?.shown ?? []).map(findingJson),
    // Ids a decision too large for one item left out (findingsOmitted) are counted too.
    more: detail?.more ?? v.findings.length + (v.findingsOmitted ?? 0),
    vulnerabilityIds: v.findings.map(cleanLine),
    moreVulnerabilityIds: v.findingsOmitted ?? 0,
  };
}

function findingJson(f: FindingSummary): EscalationFindingJson {
  const text = (s: string | undefined) => (s === undefined ? null : cleanLine(s));
  return {
    vulnerabilityId: cleanLine(f.vulnerabilityId),
    package: text(f.package),
    installedVersion: text(f.installedVersion),
    fixedInVersion: text(f.fixedInVersion),
    severity: cleanLine(f.severity),
    score: f.score ?? null,
    epss: f.epss ?? null,
    exploitAvailable: f.exploitAvailable ?? null,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Console links

/*
 * Link shapes, as checked against public sources (the consoles publish no URL contract):
 * - CodePipeline execution: `/codesuite/codepipeline/pipelines/<pipeline>/executions/<id>/visualization`
 *   and `…/timeline` both appear widely in public integrations. `visualization` is used because that tab
 *   holds the approval's Review button; the AWS guide sends PARALLEL-mode reviewers to an execution's
 *   Visualization tab, as the pipeline's own view does not show their approvals. The approval-specific link
 *   of CodePipeline's own notifications (`#/view/…/approve/<token>`) carries the token, which Tollgate never
 *   puts in a message.
 * - ECR image: `/ecr/repositories/private/<account>/<repository>/_/image/<digest>/details` is confirmed by
 *   many independent public links. Repository names keep their `/` (the `_` segment ends the name).
 * - Inspector: `/inspector/v2/home#/findings/container-image/<image's resource id, encoded>` (the "by
 *   container image" view of one image), the id as Inspector names the image (`arn:…:ecr:<region>:<account>:
 *   repository/<repository>/<digest>`, a finding's `resources[].id`; the public integrations that use the view
 *   build it from the scan event's `repository-name`, that ARN, and the digest). Not documented by AWS, hence
 *   the ECR link beside it: with enhanced scanning, the ECR image page lists the same Inspector findings. None
 *   for an ECR basic scan, whose image Inspector never saw.
 */
function links(
  pipeline: string,
  executionId: string,
  region: string,
  image: EscalationJson['image'],
  account: string | undefined,
  scanSource: 'inspector' | 'ecr',
): EscalationLinks {
  const origin = consoleOrigin(region);
  const query = `?region=${encodeURIComponent(region)}`;
  const pipelinePath = `${origin}/codesuite/codepipeline/pipelines/${segment(pipeline)}`;
  const { repository, digest } = image;
  const known = repository !== null && repository !== '' && digest !== null && digest !== '';
  const inspectorFindings =
    known && account !== undefined && scanSource === 'inspector'
      ? `${origin}/inspector/v2/home${query}#/findings/container-image/${encodeURIComponent(
          `arn:${partitionOf(region)}:ecr:${region}:${account}:repository/${repository}/${digest}`,
        )}`
      : null;
  const ecrImage =
    known && account !== undefined
      ? `${origin}/ecr/repositories/private/${segment(account)}/${repository.split('/').map(segment).join('/')}/_/image/${segment(digest)}/details${query}`
      : null;
  return {
    approval: `${pipelinePath}/executions/${segment(executionId)}/visualization${query}`,
    pipeline: `${pipelinePath}/view${query}`,
    inspectorFindings,
    ecrImage,
  };
}

/** The console of the region's partition; an unrecognised region gets the global console, never a bad host. */
function consoleOrigin(region: string): string {
  if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) return 'https://console.aws.amazon.com';
  if (region.startsWith('cn-')) return `https://${region}.console.amazonaws.cn`;
  if (region.startsWith('us-gov-')) return 'https://console.amazonaws-us-gov.com';
  return `https://${region}.console.aws.amazon.com`;
}

/** A path segment: `:` and `@` may stay as they are (RFC 3986 `pchar`), as in `sha256:…` in console links. */
function segment(s: string): string {
  return encodeURIComponent(s).replace(/%3A/gi, ':').replace(/%40/g, '@');
}

// ---------------------------------------------------------------------------------------------------------
// Subject

/**
 * `Tollgate: ESCALATE payments-api/Deploy #7c0e5a1d - 2 rules (fixable-high, known-exploited)`. Which
 * release waits matters most, so the location and the execution keep their room and rule names are shed
 * first, those that set the outcome named before the rest (`causesFirst`); a long pipeline name loses its middle, where names differ least (`payments-api-...-eu-west-1`).
 */
function renderSubject(json: EscalationJson): string {
  // "would be" only when it would differ: the subject's room is better spent on what set the outcome.
  const head =
    json.wouldBe === null
      ? `Tollgate: ${json.outcome}`
      : json.wouldBe === json.outcome
        ? `Tollgate: ${json.outcome} (advisory)`
        : `Tollgate: ${json.outcome} (advisory, would be ${json.wouldBe})`;
  const pipeline = ascii(json.gate.pipeline);
  const stage = ascii(json.gate.stage);
  const execution = executionTag(json.gate.executionId, json.gate.attempt);
  const rules = causesFirst(json.violations, json.outcome, json.wouldBe).map((v) => ascii(v.rule));
  const n = rules.length;
  const candidates: string[] = [];
  if (n === 0) candidates.push('no violations');
  else {
    const counted = `${n} rule${n === 1 ? '' : 's'}`;
    for (let k = n; k >= 1; k--) {
      candidates.push(`${counted} (${rules.slice(0, k).join(', ')}${k < n ? ', ...' : ''})`);
    }
    candidates.push(counted);
  }
  const full = `${pipeline}/${stage}`.length;
  for (const [i, rulesText] of candidates.entries()) {
    const room =
      SUBJECT_MAX - head.length - 1 - execution.length - SUBJECT_SEPARATOR.length - rulesText.length;
    if (room >= Math.min(full, SUBJECT_LOCATION_ROOM) || i === candidates.length - 1) {
      const subject = `${head} ${location(pipeline, stage, room)}${execution}${SUBJECT_SEPARATOR}${rulesText}`;
      // Only an absurd number of rules could still overflow: the count is then cut, never the limit.
      return subject.length <= SUBJECT_MAX ? subject : `${subject.slice(0, SUBJECT_MAX - 3)}...`;
    }
  }
  return head;
}

/**
 * ` #7c0e5a1d`, and ` a2` for a retried stage's approval: in PARALLEL mode, or when a stage is retried, one
 * pipeline has several approvals waiting, and identical subjects would be confused (and threaded together
 * by mail clients). Eight hex digits of a UUID tell one pipeline's executions apart.
 */
function executionTag(executionId: string, attempt: number): string {
  const id = ascii(executionId).replace(/ /g, '?').slice(0, 8);
  return `${id === '' ? '' : ` #${id}`}${attempt > 1 ? ` a${attempt}` : ''}`;
}

function location(pipeline: string, stage: string, room: number): string {
  const full = `${pipeline}/${stage}`;
  if (full.length <= room) return full;
  const stageShown = clipAscii(stage, Math.max(8, Math.floor(room / 3)));
  return `${clipMiddle(pipeline, Math.max(5, room - 1 - stageShown.length))}/${stageShown}`;
}

function clipAscii(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, Math.max(0, max - 3))}...`;
}

function clipMiddle(s: string, max: number): string {
  if (s.length <= max) return s;
  const keep = Math.max(2, max - 3);
  const front = Math.ceil(keep / 2);
  return `${s.slice(0, front)}...${s.slice(s.length - (keep - front))}`;
}

// ---------------------------------------------------------------------------------------------------------
// Text body

/**
 * Bytes of vulnerability ids the text lists per violation beyond its finding lines. Email subscribers get
 * the text alone (never the JSON), so the ids are listed there; a cap keeps a rule with thousands of ids
 * from burying the rest of the message.
 */
export const TEXT_IDS_MAX_BYTES = 1_000;

const MARK: Readonly<Record<Violation['action'], string>> = { reject: '✖', escalate: '▲', warn: '!' };

const TRIGGER: Readonly<Record<string, string>> = {
  'scan-finished': 'when the scan finished',
  'approval-started': 'when the approval started',
  sweep: 'by the periodic sweep',
  'sweep (approval found)': 'by the periodic sweep, which found the approval (its start event never came)',
};

/** A trigger in words; a redelivered or raced event's note (`approval-started (again)`) is the event's. */
function triggerText(trigger: string): string {
  const known = TRIGGER[trigger];
  if (known !== undefined) return known;
  const base = trigger.replace(/ \(.*\)$/, '');
  return TRIGGER[base] ?? trigger;
}

/**
 * Plain text for email: label/value lines and one line per finding, padded into columns. Each finding line
 * names its values (`score`, `EPSS`, `exploit`), so it still reads in a mail client with a proportional font.
 */
function renderText(json: EscalationJson): string {
  const out: string[] = [];
  const verdict =
    json.outcome === 'ESCALATE'
      ? 'A release is waiting for a security decision.'
      : `Tollgate decided ${json.outcome} for this release.`;
  out.push(verdict, '', wrap(json.summary, 100), '');

  const g = json.gate;
  const img = json.image;
  const rows: [string, string][] = [
    ['Pipeline', g.pipeline],
    ['Stage', g.stage],
    ['Action', g.action],
    ['Execution', g.attempt > 1 ? `${g.executionId} (attempt ${g.attempt}: a retried stage)` : g.executionId],
    ['Account', `${g.account ?? 'unknown'} (${g.region})`],
  ];
  if (img.problem !== null && img.repository === null) rows.push(['Image', `not identified: ${img.problem}`]);
  else {
    rows.push(['Repository', img.repository ?? 'unknown']);
    rows.push(['Tags', img.tags.length > 0 ? img.tags.join(', ') : 'none']);
    rows.push(['Digest', img.digest ?? 'unknown']);
  }
  const mode =
    json.wouldBe === null ? `${json.mode} mode` : `${json.mode} mode; enforce mode would ${json.wouldBe}`;
  rows.push(['Outcome', `${json.outcome} (${mode})`]);
  rows.push(['Policy', `${json.policy.name} (sha256 ${json.policy.sha256.slice(0, 12)})`]);
  rows.push(['Decided', `${json.decidedAt}, ${triggerText(json.trigger)}`]);
  // One width whatever rows appear, so that every escalation reads the same.
  for (const [label, value] of rows) out.push(`${label.padEnd('Repository'.length + 2)}${value}`);

  out.push('');
  const elsewhere = (v: EscalationViolationJson) => whereIdsAre(v, json.links);
  if (json.violations.length === 0) out.push('Violations: none');
  else {
    out.push(`Violations (${json.violations.length})`);
    for (const v of json.violations) out.push(...renderViolation(v, elsewhere(v)));
  }
  if (json.warnings.length > 0) {
    out.push('', `Warnings (${json.warnings.length})`);
    for (const v of json.warnings) out.push(...renderViolation(v, elsewhere(v)));
  }
  if (json.expiringSoon.length > 0) {
    out.push('', 'Exceptions expiring soon (renew or fix before they lapse)');
    out.push(`  ${json.expiringSoon.join(', ')}`);
  }

  out.push('', 'Links');
  const linkRows: [string, string][] = [['Approval (CodePipeline)', json.links.approval]];
  if (json.links.inspectorFindings !== null)
    linkRows.push(['Findings (Inspector)', json.links.inspectorFindings]);
  if (json.links.ecrImage !== null) linkRows.push(['Image (ECR)', json.links.ecrImage]);
  const linkWidth = Math.max(...linkRows.map(([label]) => label.length)) + 2;
  for (const [label, url] of linkRows) out.push(`  ${label.padEnd(linkWidth)}${url}`);

  out.push('', `Approve or reject in the CodePipeline console: ${json.links.approval}`);
  return `${out.join('\n')}\n`;
}

/**
 * Where the ids the text has no room for can be read. The ECR image page lists the image's findings under
 * either scanner (the Inspector page only under enhanced scanning, which the message does not know); the
 * decision record only when it kept every id (`moreVulnerabilityIds` counts those it could not).
 */
function whereIdsAre(v: EscalationViolationJson, links: EscalationLinks): string {
  const places = [
    ...(links.ecrImage !== null
      ? ["the image's findings in ECR (Links)"]
      : links.inspectorFindings !== null
        ? ['Findings (Inspector) under Links']
        : []),
    ...(v.moreVulnerabilityIds === 0 ? ['the decision record (tollgate audit show)'] : []),
  ];
  return places.length === 0 ? "see the scanner's findings of the image" : `see ${places.join(', or ')}`;
}

/** `elsewhere` says where the ids the text has no room for can be read. */
function renderViolation(v: EscalationViolationJson, elsewhere: string): string[] {
  const out: string[] = [];
  const counted = v.count > 0 ? `: ${v.count} finding(s), ${v.allow} allowed` : '';
  out.push(`  ${MARK[v.action]} ${v.rule}  ${v.action}${counted}`);
  if (v.description !== null) out.push(`    ${clip(v.description, 200)}`);
  if (v.findings.length > 0) {
    const cells = v.findings.map((f) => [
      clip(f.vulnerabilityId, 80),
      f.severity,
      `score ${f.score === null ? '-' : f.score.toFixed(1)}`,
      `${clip(f.package ?? '(no package)', 40)} ${clip(f.installedVersion ?? '?', 28)} → ${clip(f.fixedInVersion ?? 'no fix', 28)}`,
      `EPSS ${f.epss === null ? '-' : f.epss.toFixed(4)}`,
      `exploit ${f.exploitAvailable === null ? 'unknown' : f.exploitAvailable ? 'yes' : 'no'}`,
    ]);
    out.push(...columns(cells).map((line) => `    ${line}`));
    if (v.more > 0) {
      const shown = new Set(v.findings.map((f) => f.vulnerabilityId));
      const rest = v.vulnerabilityIds.filter((id) => !shown.has(id));
      // Every id is either listed or counted, so the ids not shown are exactly these many.
      const restCount = Math.max(
        rest.length,
        v.vulnerabilityIds.length + v.moreVulnerabilityIds - shown.size,
      );
      out.push(
        ...(restCount === 0
          ? [`    … and ${v.more} more finding(s) of the vulnerabilities above`]
          : idLines(`… and ${v.more} more finding(s)`, rest, restCount, elsewhere)),
      );
    }
  } else if (v.vulnerabilityIds.length + v.moreVulnerabilityIds > 0) {
    // A decision stored without details: the ids still say what to look up.
    const all = v.vulnerabilityIds.length + v.moreVulnerabilityIds;
    out.push(
      ...idLines(`${all} vulnerability id(s), details not stored`, v.vulnerabilityIds, all, elsewhere),
    );
  }
  return out;
}

/**
 * `lead` and as many of `ids` as TEXT_IDS_MAX_BYTES allows, wrapped for email; when that is not all `total`
 * ids (the cap, or ids the stored decision could not keep), how many more and where to read them.
 */
function idLines(lead: string, ids: readonly string[], total: number, elsewhere: string): string[] {
  const listed: string[] = [];
  let used = 0;
  for (const id of ids) {
    const shown = clip(id, 80);
    used += Buffer.byteLength(shown, 'utf8') + 2;
    if (used > TEXT_IDS_MAX_BYTES && listed.length > 0) break;
    listed.push(shown);
  }
  const lines = wrap(listed.length === 0 ? lead : `${lead}: ${listed.join(', ')}`, 96)
    .split('\n')
    .map((line, i) => `${i === 0 ? '    ' : '      '}${line}`);
  const unlisted = total - listed.length;
  if (unlisted > 0) {
    lines.push(
      listed.length === 0
        ? `      ${unlisted} id(s), not listed here: ${elsewhere}`
        : `      … and ${unlisted} more id(s): ${elsewhere}`,
    );
  }
  return lines;
}

function columns(rows: readonly string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, [...c].length);
    });
  }
  return rows.map((r) =>
    r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - [...c].length))).join('  '),
  );
}

/** Breaks a long line at spaces, so that a 512-character summary does not run off an email's edge. */
function wrap(text: string, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------
// Untrusted text

/**
 * Names and ids come from pipelines, policies and scanners: a line break in one would forge lines of the
 * email (or get the subject refused), and bidirectional controls could make it read other than it is.
 */
const UNSAFE = /[\p{Cc}\p{Zl}\p{Zp}\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]+/gu;

export function cleanLine(s: string): string {
  return wellFormed(s.replace(UNSAFE, ' ')).trim();
}

/**
 * Printable ASCII, runs of spaces collapsed: the SNS adapter (`snsSubject`) also turns other whitespace into
 * spaces and trims, which printable ASCII cannot hold, so a subject rendered from these arrives unchanged.
 */
function ascii(s: string): string {
  return s.replace(/[^\x20-\x7E]/g, '?').replace(/ {2,}/g, ' ');
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

/** Clips to `max` code points, so that an ellipsis never splits a character. */
function clip(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}
