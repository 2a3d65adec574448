import type { ExceptionsByState, Outcome, Violation } from '../decision/record.js';
import type { Severity } from '../findings/finding.js';
import type { GateClosure, GateKey } from '../gate/model.js';
import type { PutApprovalOutcome } from '../gate/ports.js';

/*
 * The audit trail: every decision, every action taken on it, and every human resolution is a record of
 * its own, written once (with a condition) and never updated or deleted. Records are chained per
 * pipeline: `seq` is gapless from 1, and `prevHash` is the SHA-256 of the previous record's canonical
 * form, so a missing, changed or reordered record is detectable (`tollgate audit verify`).
 * Field names are a contract (auditors' queries, the S3 archive, Athena): add fields, never rename them.
 */

export type AuditRecordType = 'decision' | 'action' | 'resolution';

export interface AuditImage {
  readonly repository: string | null;
  readonly digest: string | null;
  readonly tags: readonly string[];
}

/** What Tollgate did with a decision. */
export interface AuditAction {
  /** `approval-result`: PutApprovalResult sent; `escalation`: the SNS message sent. */
  readonly kind: 'approval-result' | 'escalation';
  /** The result sent to CodePipeline (approval-result only). */
  readonly status: 'Approved' | 'Rejected' | null;
  /**
   * CodePipeline's answer: `accepted`, `already-completed` (someone was faster), `completed-after-lost-answer`
   * (perhaps Tollgate's own earlier attempt, whose answer was lost; the resolution record says who),
   * `invalid-token` (moved on).
   */
  readonly answer: PutApprovalOutcome | null;
  /** The escalation's subject (escalation only). */
  readonly subject: string | null;
}

/** How an approval ended, and who resolved it. */
export interface AuditResolution {
  /** The action's end: SUCCEEDED (approved), FAILED (rejected or timed out), ABANDONED, CANCELED; null when only the reviewer is known. */
  readonly state: GateClosure['state'] | null;
  /**
   * The CloudTrail identity that called PutApprovalResult, or null when no call was seen; with `source`
   * `listing`, the run's `updatedBy` in ListActionExecutions (CloudTrail's record never came).
   */
  readonly reviewer: string | null;
  /** `listing` when the reviewer was read from ListActionExecutions; absent for CloudTrail's (and older records). */
  readonly source?: 'listing';
  /**
   * The caller's role session source identity (`sts:SourceIdentity`), when it had one: the person behind a
   * shared role, which the session name in `reviewer` may not be. Absent otherwise (and on older records).
   */
  readonly sourceIdentity?: string;
  /** True when the caller was Tollgate itself. */
  readonly byTollgate: boolean;
  /** `Approved` / `Rejected` as the caller sent it, and the summary they wrote. */
  readonly status: string | null;
  readonly summary: string | null;
}

/** The content of a record, before the chain gives it its place. */
export interface AuditEntry {
  readonly type: AuditRecordType;
  readonly time: string;
  /** `tollgate` for Tollgate's own decisions and actions; the CloudTrail identity for a person. */
  readonly actor: string;
  readonly gate: GateKey;
  readonly image: AuditImage | null;
  readonly outcome: Outcome | null;
  readonly summary: string | null;
  readonly violations: readonly Violation[];
  readonly warnings: readonly Violation[];
  readonly exceptions: ExceptionsByState | null;
  readonly counts: Readonly<Record<Severity, number>> | null;
  readonly policy: { readonly name: string; readonly sha256: string } | null;
  /**
   * `advisory` when the decision was taken in advisory mode (it approves whatever the policy's rules say; the
   * gate's own blind spots, an error or an unfinished scan, still take their action), with
   * `wouldBe`, what enforce mode would have decided; on every record of that decision. Absent in enforce
   * mode, whose records hash as they always have.
   */
  readonly mode?: 'advisory';
  readonly wouldBe?: Outcome;
  /**
   * Decision records, when any were: findings set aside because their status is not one the policy judges
   * (`statuses`). `counts` leave them out; `vulnerabilities` lists them.
   */
  readonly ignored?: number;
  /** The distinct vulnerability ids the decision saw (at most VULNERABILITY_LIMIT; see `vulnerabilitiesTruncated`). */
  readonly vulnerabilities: readonly string[];
  readonly vulnerabilitiesTruncated: boolean;
  readonly action: AuditAction | null;
  readonly resolution: AuditResolution | null;
}

/** A record in its chain. */
export interface AuditRecord extends AuditEntry {
  readonly pipeline: string;
  /** 1, 2, 3, … per pipeline, without gaps. */
  readonly seq: number;
  /** SHA-256 (hex) of the previous record's canonical form; GENESIS for seq 1. */
  readonly prevHash: string;
  /** SHA-256 (hex) of this record's canonical form (every field but `hash`). */
  readonly hash: string;
}

export const GENESIS = '0'.repeat(64);
export const VULNERABILITY_LIMIT = 5000;

/**
 * What `tollgate audit list` asks the store for; every field narrows (AND). `since` inclusive, `until`
 * exclusive. Each filter but `vulnerability` and `type` is served by a key or an index (see
 * adapters/dynamodb/README.md); `vulnerability` by index items; `type` only narrows what an index returned.
 */
export interface AuditFilter {
  readonly pipeline?: string;
  readonly since?: Date;
  readonly until?: Date;
  readonly outcome?: Outcome;
  readonly digest?: string;
  readonly repository?: string;
  /**
   * Who resolved an escalation (a resolution record's `resolution.reviewer`): the CloudTrail identity, or one
   * of its `reviewerNames` (`alice`, `SecurityEngineer/alice`).
   */
  readonly reviewer?: string;
  readonly vulnerability?: string;
  readonly type?: AuditRecordType;
  /**
   * How the approval action ended, on resolution records: SUCCEEDED is a release that went through,
   * whoever answered (and whether or not Tollgate had decided).
   */
  readonly state?: NonNullable<AuditResolution['state']>;
}

/**
 * The shorter names an auditor knows a reviewer by: the path suffixes of the identity's resource.
 * `arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice` is also `alice`,
 * `SecurityEngineer/alice` and `assumed-role/SecurityEngineer/alice`; `arn:aws:iam::123456789012:user/bob`
 * is also `bob` and `user/bob`. An identity that is not an ARN (a principal id, `AROA…:alice`) is also what
 * follows its last colon. The store files a resolution under each, so a short name is served by an index.
 */
export function reviewerNames(identity: string): string[] {
  const resource = identity.startsWith('arn:')
    ? identity.split(':').slice(5).join(':')
    : identity.slice(identity.lastIndexOf(':') + 1);
  const segments = resource.split('/').filter((s) => s !== '');
  const names: string[] = [];
  const shortest = Math.max(0, segments.length - MAX_REVIEWER_NAMES);
  for (let i = segments.length - 1; i >= shortest; i--) names.push(segments.slice(i).join('/'));
  return names.filter((name) => name !== identity);
}

/**
 * At most this many short names, the shortest: each is an index item in the resolution record's own
 * transaction (at most 100 actions), and an IAM path can hold a couple of hundred segments. Nobody asks for a
 * reviewer by the ninth suffix of a path; the whole identity is always a name too.
 */
export const MAX_REVIEWER_NAMES = 8;

/** Whether a resolution's reviewer is `who`: the whole identity, or one of its `reviewerNames`. */
export function reviewerMatches(identity: string | null | undefined, who: string): boolean {
  if (!identity) return false;
  return identity === who || reviewerNames(identity).includes(who);
}

/**
 * The names a resolution is found by (`list --reviewer`): the reviewer's identity, its `reviewerNames`, and
 * the session's source identity when it had one (the person behind a shared role).
 */
export function resolutionNames(resolution: Pick<AuditResolution, 'reviewer' | 'sourceIdentity'>): string[] {
  const names = resolution.reviewer ? [resolution.reviewer, ...reviewerNames(resolution.reviewer)] : [];
  const source = resolution.sourceIdentity;
  return source && !names.includes(source) ? [...names, source] : names;
}

/** Whether a resolution was made by `who`: one of its `resolutionNames`. */
export function resolutionMatches(
  resolution: Pick<AuditResolution, 'reviewer' | 'sourceIdentity'> | null | undefined,
  who: string,
): boolean {
  return resolution ? resolutionNames(resolution).includes(who) : false;
}
