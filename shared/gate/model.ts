import type { DecisionRecord, Outcome } from '../decision/record.js';
import type { Severity } from '../findings/finding.js';

/**
 * A gate is one Manual approval action of one pipeline execution. Everything is keyed by it, never by an
 * event id, because EventBridge delivers the same fact more than once, under different ids.
 */
export interface GateKey {
  readonly pipeline: string;
  readonly executionId: string;
  readonly stage: string;
  readonly action: string;
  /**
   * The execution's attempt (`pipeline-execution-attempt`), only when above 1. Retrying a stage runs its
   * approval again within the same execution, with a new token: a new approval to decide, so a new gate
   * beside the first attempt's (whose decision and end stay as they were). Absent for the first attempt,
   * whose gate id and records read as they always have.
   */
  readonly attempt?: number;
}

/**
 * A name CodePipeline gives a pipeline (or a stage, or an action): letters, digits and `.@_-`, 1 to 100 of
 * them. A name typed otherwise (a trailing space from a paste) matches no policy scope and no record: a tool
 * taking one refuses it rather than answer for a pipeline that cannot exist.
 */
export const PIPELINE_NAME = /^[A-Za-z0-9.@_-]{1,100}$/;

/** What a pipeline name must be, for messages that refuse one. */
export const PIPELINE_NAME_EXPECTED = 'a pipeline name (letters, digits and . @ _ -, at most 100)';

/** A gate's key from an action event's detail: the first attempt keeps the four-part key. */
export function gateKeyOf(detail: {
  readonly pipeline: string;
  readonly 'execution-id': string;
  readonly stage: string;
  readonly action: string;
  readonly 'pipeline-execution-attempt'?: number | undefined;
}): GateKey {
  const key = {
    pipeline: detail.pipeline,
    executionId: detail['execution-id'],
    stage: detail.stage,
    action: detail.action,
  };
  const attempt = detail['pipeline-execution-attempt'];
  return attempt !== undefined && attempt > 1 ? { ...key, attempt } : key;
}

/** A gate key from fields not yet typed (a raw event's, a published detail's): undefined unless all four are strings. */
export function gateKeyFromFields(
  pipeline: unknown,
  executionId: unknown,
  stage: unknown,
  action: unknown,
  attempt: unknown,
): GateKey | undefined {
  if (
    typeof pipeline !== 'string' ||
    typeof executionId !== 'string' ||
    typeof stage !== 'string' ||
    typeof action !== 'string'
  ) {
    return undefined;
  }
  return gateKeyOf({
    pipeline,
    'execution-id': executionId,
    stage,
    action,
    'pipeline-execution-attempt': typeof attempt === 'number' ? attempt : undefined,
  });
}

export type GateState = 'WAITING' | 'DECIDED' | 'ACTED' | 'CLOSED' | 'STALE';

/** The image a gate judges: always a digest once the gate is stored; the tag is kept for people. */
export interface GateImage {
  /** Repository name (never an ARN). */
  readonly repository: string;
  readonly digest: string;
  readonly tags: readonly string[];
  /** Registry (account) id, when the URI named one. */
  readonly registryId: string | undefined;
  /** The text the pipeline gave (CustomData or a variable), for the record. */
  readonly source: string;
}

/** Severity counts (of a scan event, or of a read), used by the settle rule; scan events may add `TOTAL`. */
export type SeverityCounts = Readonly<Partial<Record<Severity | 'TOTAL', number>>>;

export interface FindingsRead {
  readonly at: string;
  /** ACTIVE findings by severity. */
  readonly counts: SeverityCounts;
  readonly total: number;
  /**
   * ACTIVE findings, and those that existed at the scan event's time (`firstObservedAt`) and were suppressed or
   * closed in a later second (their own `updatedAt`, not `lastObservedAt`), by severity: what can explain a read holding fewer ACTIVE findings than a scan event counted. Absent in reads
   * stored before it was kept.
   */
  readonly listed?: SeverityCounts;
}

/** What the gate sent to CodePipeline. */
export interface ApprovalResult {
  readonly status: 'Approved' | 'Rejected';
  readonly summary: string;
}

/** How an approval ended, from the action event, and who resolved it, from CloudTrail. */
export interface GateClosure {
  readonly state: 'SUCCEEDED' | 'FAILED' | 'ABANDONED' | 'CANCELED';
  readonly at: string;
}

export interface Reviewer {
  /**
   * The CloudTrail `userIdentity.arn` (or principal id when there is no ARN); with neither,
   * `identitycenter:<identityStoreArn>/<userId>` for an IAM Identity Center user, `service:<invokedBy>` for an
   * AWS service, else `unknown <type> identity`. From the listing (`source`), the run's `updatedBy`.
   */
  readonly identity: string;
  readonly type: string | undefined;
  /**
   * The role session's source identity (CloudTrail `sessionContext.sourceIdentity`): unlike the session name,
   * which whoever assumes a role chooses, it is set once (by the identity provider, or the first AssumeRole
   * where the role's trust policy requires it) and kept through role chaining.
   */
  readonly sourceIdentity?: string;
  readonly status: string | undefined;
  readonly summary: string | undefined;
  readonly at: string;
  /** True when the identity is Tollgate's own role: the result it sent itself. */
  readonly tollgate: boolean;
  /**
   * `listing`: read from the run's `updatedBy` in ListActionExecutions by the sweep, because CloudTrail's
   * record had not come (no identity type nor source identity then); CloudTrail's record, if it comes later,
   * replaces it. Absent: CloudTrail's record.
   */
  readonly source?: 'listing';
}

export interface TimelineEntry {
  readonly at: string;
  readonly what: string;
}

/** A gate as stored. `version` is the optimistic-concurrency counter every conditional update checks. */
export interface Gate {
  readonly key: GateKey;
  readonly state: GateState;
  readonly version: number;
  readonly account: string;
  readonly region: string;
  readonly actionExecutionId: string | undefined;
  /** When the approval started (the event's `time`, else the gate's first sight of it). */
  readonly startedAt: string;
  /** After this instant the scan wait has run out (`scan.waitMinutes` after `startedAt`). */
  readonly deadline: string;
  readonly image: GateImage | undefined;
  /** Why no image could be identified: the gate escalates with it. */
  readonly imageProblem: string | undefined;
  /** SHA-256 of the approval token last seen: lets CloudTrail's PutApprovalResult find the gate without storing the token. */
  readonly tokenHash: string | undefined;
  readonly lastRead: FindingsRead | undefined;
  readonly outcome: Outcome | undefined;
  /**
   * When the gate was decided (the decision's time; undefined before, and on gates stored before it was kept):
   * a decided gate whose action has not gone out counts as overdue from here, not only from its deadline.
   */
  readonly decidedAt: string | undefined;
  readonly summary: string | undefined;
  readonly approvalResult: ApprovalResult | undefined;
  /**
   * Escalation Publish calls SNS accepted (0 or 1 in a healthy run): not deliveries, since an attempt whose
   * answer was lost may have been delivered too (the timeline then says so).
   */
  readonly notifications: number;
  /** Until this instant one invocation holds the right to act (send the result or the escalation). */
  readonly actingUntil: string | undefined;
  /**
   * When Tollgate noted that the decision's result may have reached CodePipeline with nothing recorded of it:
   * a send that failed (a timeout or a 5xx can hide one that landed), or an acting lease that ran out instead
   * of being given back (its holder may have sent, then failed to record it, or died). An approval found completed,
   * or over, is then recorded as perhaps this result, not someone else's and not STALE. Absent otherwise,
   * and on gates stored before it was kept.
   */
  readonly resultInDoubt?: string;
  /**
   * For an ACTED or STALE gate without its end, or one a person's answer ended with nobody named yet, when the
   * sweep next asks CodePipeline's listing of its run (see reconcile.ts): the end event or CloudTrail's record
   * can be lost, and nothing else would ever close the gate or name its reviewer. Absent on other gates, on
   * gates stored before it was kept, and once the listing cannot tell (`endUnknown`).
   */
  readonly reconcileAt?: string | undefined;
  /** Why how the approval ended cannot be known (its execution is gone from CodePipeline's history, say). */
  readonly endUnknown?: string | undefined;
  readonly staleReason: string | undefined;
  /**
   * The approval ended before Tollgate saw it start (the gate was made closed, from its end): `startedAt` is
   * the end's time, and how long the approval waited is unknown.
   */
  readonly startUnseen?: true;
  readonly closure: GateClosure | undefined;
  readonly reviewer: Reviewer | undefined;
  readonly timeline: readonly TimelineEntry[];
  readonly updatedAt: string;
}

/**
 * The scan status last reported for a digest. Stored apart from gates because the scan often finishes
 * before any approval starts.
 */
/**
 * What a scanner said of one image: a digest **in one repository** (of one registry). The same digest pushed
 * to two repositories is scanned, covered and listed in each apart, so a status never stands for another
 * repository's copy (`scanIsOf`).
 */
export interface ScanStatus {
  readonly digest: string;
  readonly repository: string;
  /** The registry (account) whose scan event said it; undefined when learnt for an image that named none. */
  readonly registryId: string | undefined;
  readonly source: 'inspector' | 'ecr';
  /** The scanner's own status text: `INITIAL_SCAN_COMPLETE`, `COMPLETE`, `UNSUPPORTED_IMAGE`, … */
  readonly status: string;
  readonly verdict: ScanState;
  /** Severity counts the scan event reported; a missing key means 0. Absent when learnt from coverage. */
  readonly counts: SeverityCounts | undefined;
  /** The event time: an older event never overwrites a newer status. */
  readonly at: string;
}

export type ScanState = 'complete' | 'unsupported' | 'pending';

/** One finding as an escalation shows it: enough to act on without opening a console. */
export interface FindingSummary {
  readonly vulnerabilityId: string;
  readonly package: string | undefined;
  readonly installedVersion: string | undefined;
  readonly fixedInVersion: string | undefined;
  readonly severity: string;
  readonly score: number | undefined;
  readonly epss: number | undefined;
  readonly exploitAvailable: boolean | undefined;
}

/** The findings behind one violation, bounded so that a stored decision stays small. */
export interface ViolationFindings {
  readonly rule: string;
  readonly shown: readonly FindingSummary[];
  /** Findings of the violation not shown. */
  readonly more: number;
}

/** The decision as stored: written once per gate, never updated. */
export interface StoredDecision {
  readonly key: GateKey;
  readonly record: DecisionRecord;
  /**
   * The findings behind each violation and warning (worst first, at most `DETAIL_LIMIT` each), so that an
   * escalation re-sent by the sweep says as much as the first attempt would have.
   */
  readonly details: readonly ViolationFindings[];
  readonly image: GateImage | undefined;
  /** What made the gate decide: `scan-finished`, `approval-started`, `sweep`. */
  readonly trigger: string;
  readonly decidedAt: string;
  /** Milliseconds from the approval's start to the decision. */
  readonly latencyMs: number;
}

export function gateId(key: GateKey): string {
  const id = `${key.pipeline}/${key.executionId}/${key.stage}/${key.action}`;
  return key.attempt !== undefined && key.attempt > 1 ? `${id}/attempt-${key.attempt}` : id;
}

/** Findings kept per violation in a stored decision and shown in an escalation. */
export const DETAIL_LIMIT = 20;
