import type { ChainHead } from '../audit/chain.js';
import type { AuditRecord } from '../audit/record.js';
import type { ScanVerdict } from '../findings/finding.js';
import type { FindingTable } from '../findings/table.js';
import type { ApprovalResult, Gate, GateKey, GateState, ScanStatus, StoredDecision } from './model.js';

/*
 * The ports: what the gate needs from the world. The AWS adapters implement them with SDK v3, the local
 * run implements them from a scenario file. Adapters translate the services' answers into these shapes
 * and their errors into the few outcomes the gate reacts to; any other failure is thrown (the caller
 * retries, then the sweep does).
 */

/** One action of `GetPipelineState`. */
export interface ActionStateView {
  readonly name: string;
  /** `InProgress`, `Succeeded`, `Failed`, `Abandoned`, … (undefined when the action never ran). */
  readonly status: string | undefined;
  readonly token: string | undefined;
  readonly actionExecutionId: string | undefined;
  /** `latestExecution.lastStatusChange` (ISO): for a run in progress, about when it started. */
  readonly since?: string | undefined;
}

export interface StageStateView {
  readonly name: string;
  /** The stage's `latestExecution.pipelineExecutionId`. */
  readonly executionId: string | undefined;
  readonly actions: readonly ActionStateView[];
}

/** One entry of `ListActionExecutions` (filtered to one pipeline execution). */
export interface ActionExecutionView {
  readonly stage: string;
  readonly action: string;
  readonly actionExecutionId: string;
  readonly status: string;
  /** `input.resolvedConfiguration.CustomData` (falls back to `input.configuration.CustomData`). */
  readonly customData: string | undefined;
  /** `output.executionResult.externalExecutionId`: the approval token in PARALLEL execution mode. */
  readonly externalExecutionId: string | undefined;
  /** `startTime` (ISO). */
  readonly startedAt?: string | undefined;
  /**
   * `input.actionTypeId` is `Approval`/`AWS`/`Manual`. Other actions carry an `externalExecutionId` too (a
   * build's id): only this says the id is an approval token. Undefined: the listing did not say.
   */
  readonly manualApproval?: boolean | undefined;
  /** `updatedBy`: the ARN of whoever ended the run (a reviewer's PutApprovalResult), when the listing says. */
  readonly updatedBy?: string | undefined;
  /** `lastUpdateTime` (ISO): for a run that ended, when it ended. */
  readonly updatedAt?: string | undefined;
  /** `output.executionResult.externalExecutionSummary`: a reviewer's comment, on a run they ended. */
  readonly summary?: string | undefined;
}

export interface PipelineExecutionView {
  readonly status: string | undefined;
  readonly executionMode: string | undefined;
  /** `STANDARD`, or `ROLLBACK` (a stage rollback: a new execution with an earlier one's artifacts). */
  readonly executionType?: string | undefined;
  /** `variables[].name → resolvedValue`. */
  readonly variables: Readonly<Record<string, string>>;
}

/**
 * CodePipeline's answer. `completed-after-lost-answer`: an attempt failed in a way that may have hidden its
 * success (a timeout, a reset, a 5xx), and the retry heard the approval was already completed (or its token
 * refused, which CodePipeline also answers to a request that already had its response): perhaps by that
 * attempt, perhaps by someone else. CloudTrail's record of the call says who.
 */
export type PutApprovalOutcome =
  | 'accepted'
  | 'already-completed'
  | 'completed-after-lost-answer'
  | 'invalid-token';

export interface PutApprovalRequest {
  readonly pipeline: string;
  readonly stage: string;
  readonly action: string;
  readonly token: string;
  readonly result: ApprovalResult;
}

/** CodePipeline. */
export interface ApprovalsPort {
  pipelineState(pipeline: string): Promise<readonly StageStateView[]>;
  /**
   * The runs of the execution's actions. Throws `ExecutionNotFound` when CodePipeline has no such execution
   * of the pipeline (made again under its name, or the execution aged out of its history): an answer, not a
   * failure to retry.
   */
  actionExecutions(pipeline: string, executionId: string): Promise<readonly ActionExecutionView[]>;
  /** Undefined when CodePipeline has no such execution (or pipeline): an approval of it is gone. */
  pipelineExecution(pipeline: string, executionId: string): Promise<PipelineExecutionView | undefined>;
  /**
   * Maps `ApprovalAlreadyCompletedException` and `InvalidApprovalTokenException`; throws on anything else,
   * the error saying whether an attempt may have reached CodePipeline (`resultMayHaveLanded`).
   */
  putApprovalResult(request: PutApprovalRequest): Promise<PutApprovalOutcome>;
}

/**
 * Whether a failed `putApprovalResult` (or `publish`) may have sent its result all the same (a timeout, a
 * 5xx): false when the error says every attempt was refused before it went out (throttled, never connected).
 * An error that says nothing gets `unmarked`: for a result, it may have (the gate then records a later
 * "already completed" as perhaps its own).
 */
export function resultMayHaveLanded(error: unknown, unmarked = true): boolean {
  const marked =
    typeof error === 'object' && error !== null
      ? (error as { readonly resultMayHaveLanded?: unknown }).resultMayHaveLanded
      : undefined;
  return typeof marked === 'boolean' ? marked : unmarked;
}

/** One entry of `ListPipelineExecutions`. */
export interface PipelineExecutionSummaryView {
  readonly executionId: string;
  /** `InProgress`, `Stopping`, `Succeeded`, … */
  readonly status: string | undefined;
  /** `startTime` (ISO). */
  readonly startedAt: string | undefined;
  /** The mode the execution runs in (`PARALLEL`, …), when the summary says. */
  readonly executionMode?: string | undefined;
}

/** A pipeline as ListPipelines names it: its `executionMode` when the summary gives one. */
export interface PipelineSummaryView {
  readonly name: string;
  readonly executionMode: string | undefined;
}

/**
 * CodePipeline's `ListPipelines` and `ListPipelineExecutions`: what the sweep looks through for approvals no
 * event told it about.
 */
export interface PipelinesPort {
  /**
   * Every pipeline of the account and region with its execution mode, which decides where an approval in
   * progress can be seen (every page; a failed page rejects the list).
   */
  pipelineSummaries(): Promise<readonly PipelineSummaryView[]>;
  /**
   * The pipeline's executions, newest first: every one on the pages it takes to reach those started before
   * `since` (so older ones on those pages too). A failed page rejects the list. A pipeline that does not
   * exist has none.
   */
  recentExecutions(pipeline: string, since: Date): Promise<RecentExecutions>;
}

export interface RecentExecutions {
  readonly executions: readonly PipelineExecutionSummaryView[];
  /**
   * False when the adapter stopped at its page limit with executions since `since` still unread: what it
   * read is there, and the caller must not take it for all.
   */
  readonly complete: boolean;
}

export interface ImageLocator {
  readonly repository: string;
  readonly digest: string;
  readonly registryId: string | undefined;
}

/** Inspector2 `ListCoverage` for one image, normalised. */
export interface CoverageView {
  /** `ACTIVE` or `INACTIVE`. */
  readonly statusCode: string;
  /** `SUCCESSFUL`, `PENDING_INITIAL_SCAN`, `UNSUPPORTED_OS`, … */
  readonly reason: string;
  readonly lastScannedAt: string | undefined;
}

/** Every page of a findings read. A failed page rejects the whole read: never a partial table. */
export interface FindingsReadResult {
  readonly table: FindingTable;
  /** Pages requested in all, and the longest chain of pages requested one after another. */
  readonly pages: number;
  readonly longestChain: number;
}

export interface EcrScanReadResult extends FindingsReadResult {
  /** The scan's own verdict (`imageScanStatus`). */
  readonly scan: ScanVerdict;
}

/** Amazon Inspector (enhanced scanning) and ECR (basic scanning) findings. */
export interface FindingsPort {
  /** Undefined when Inspector does not cover the image (yet). */
  coverage(image: ImageLocator): Promise<CoverageView | undefined>;
  inspectorFindings(
    image: ImageLocator,
    options?: { readonly signal?: AbortSignal },
  ): Promise<FindingsReadResult>;
  ecrScanFindings(
    image: ImageLocator,
    options?: { readonly signal?: AbortSignal },
  ): Promise<EcrScanReadResult>;
}

/** What a tag points at now, or why ECR shows no image to judge (a fact to escalate with, not a fault). */
export type TagResolution =
  | {
      readonly digest: string;
      /** When that image was pushed (ECR's `imagePushedAt`), if ECR says. */
      readonly pushedAt?: string;
    }
  | { readonly missing: string };

/** ECR `DescribeImages`. */
export interface ImagesPort {
  /**
   * The digest a tag points at now. No such tag or repository, or a repository Tollgate may not read, is
   * `missing` with the reason; a fault that may pass (throttling, 5xx, the network) throws, to be retried.
   */
  resolveTag(repository: string, tag: string, registryId: string | undefined): Promise<TagResolution>;
  /**
   * A digest named directly, checked as a tag's is: ECR has that image in the repository, and it is an image,
   * not an index (scanners scan its platform images, never the index: judged, it would wait out its deadline
   * as never scanned). `missing` says why not; a fault that may pass throws, to be retried.
   */
  checkDigest(repository: string, digest: string, registryId: string | undefined): Promise<TagResolution>;
}

/** The escalation, rendered: subject ≤ 100 characters, a text body, and the same content as JSON. */
export interface EscalationMessage {
  readonly subject: string;
  readonly text: string;
  readonly json: unknown;
}

/** What a `publish` that succeeded knows of its earlier attempts. */
export interface Published {
  /**
   * An attempt before the accepted one failed in a way that may have delivered it (a timeout, a reset
   * connection, a 5xx): the message may have gone out twice.
   */
  readonly mayHaveDuplicated: boolean;
}

/** SNS. */
export interface NotifierPort {
  /**
   * Throws when no attempt was accepted, the error saying whether one may have been delivered all the same
   * (`resultMayHaveLanded`).
   */
  publish(message: EscalationMessage): Promise<Published>;
}

export type TollgateEventType = 'Tollgate Decision' | 'Tollgate Gate State Change' | 'Tollgate Gate Closed';

export interface TollgateEvent {
  readonly detailType: TollgateEventType;
  /** Resources named by the event (the pipeline's ARN when known). */
  readonly resources: readonly string[];
  readonly detail: Readonly<Record<string, unknown>>;
}

/**
 * The most an event may weigh: EventBridge refuses a PutEvents entry over 256 KiB, counting its source,
 * detail type, resources and detail (in UTF-8 bytes). The builders keep under it; the adapter refuses past it.
 */
export const EVENT_ENTRY_MAX_BYTES = 256 * 1024;

/** EventBridge default bus (`source: tollgate`). Callers never let a failure here change a decision. */
export interface EventsPort {
  /** Throws a `PublishFailure` naming the events it lost; any other error means it lost them all. */
  publish(events: readonly TollgateEvent[]): Promise<void>;
}

/** One event a publish lost. */
export interface LostEvent {
  readonly detailType: string;
  /** The gate the event is about (`gateId`), when its detail names one. */
  readonly gate?: string;
}

/** CodePipeline has no such execution of the pipeline (`ApprovalsPort.actionExecutions`). */
export class ExecutionNotFound extends Error {
  constructor(
    readonly pipeline: string,
    readonly executionId: string,
    options?: ErrorOptions,
  ) {
    super(`execution ${executionId} of pipeline ${pipeline} was not found`, options);
    this.name = 'ExecutionNotFound';
  }
}

/**
 * What an `EventsPort` throws when some of the events it was given were not taken: which ones, so that the
 * caller counts only those and logs their gates (a bus that took 9 of 10 lost one event, not ten).
 */
export class PublishFailure extends Error {
  constructor(
    message: string,
    readonly failures: readonly LostEvent[],
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'PublishFailure';
  }
}

/**
 * Conditional-write outcomes: `false` means someone else got there first.
 *
 * The audit trail: a write that records a fact (a decision, an action, a resolution) takes its audit record
 * (`chainRecord` on the head read beforehand) and appends it in the same request, with the chain's head
 * moved on under a condition on the head the record was chained to. If only that condition fails (another
 * gate of the pipeline appended meanwhile), the write throws ChainHeadMovedError and writes nothing: read
 * the head again (`auditHead`), re-chain, write again. A lost race of the gate itself is `false` as before.
 */
export interface StorePort {
  getGate(key: GateKey): Promise<Gate | undefined>;
  /**
   * Creates the gate unless one exists. A gate that names its run of the approval (`actionExecutionId`)
   * claims that run in the same write, and is refused (`false`) if another gate holds it: the sweep numbers
   * a gate it found by the action's runs, the STARTED event by the execution's attempts, and the two must
   * not open two gates for one approval. `gateOfRun` says which gate holds a run.
   */
  createGate(gate: Gate, audit?: AuditRecord): Promise<boolean>;
  /** The key of the gate that claimed this run of an approval action (see `createGate`). */
  gateOfRun(actionExecutionId: string): Promise<GateKey | undefined>;
  /** Writes `gate` (whose `version` is `expectedVersion + 1`) only if the stored version is `expectedVersion`. */
  updateGate(gate: Gate, expectedVersion: number, audit?: AuditRecord): Promise<boolean>;
  /**
   * Stores the decision (only if none exists for the gate) and the gate's update (only at `expectedVersion`),
   * both or neither, with the decision's audit record: one request, so that deciding costs one sequential call.
   */
  decide(
    decision: StoredDecision,
    gate: Gate,
    expectedVersion: number,
    audit?: AuditRecord,
  ): Promise<boolean>;
  getDecision(key: GateKey): Promise<StoredDecision | undefined>;
  /** Gates in `states` waiting on this digest (served by an index, never a scan). */
  gatesForDigest(digest: string, states: readonly GateState[]): Promise<readonly Gate[]>;
  /**
   * Gates the sweep must look at: WAITING and DECIDED, and ACTED, CLOSED and STALE ones it still has to ask
   * CodePipeline about (`reconcilable`: served by an index, never a scan).
   */
  openGates(): Promise<readonly Gate[]>;
  /** Finds the gate whose last seen token has this hash (CloudTrail's PutApprovalResult). */
  gateByTokenHash(tokenHash: string): Promise<Gate | undefined>;
  /**
   * Keeps the newest status per digest, registry and repository: an older `at` never overwrites a newer one,
   * and a status of another registry's repository of the same name is never this one's (nor merged with it).
   * `true` when `scan` is now the stored status, so the caller may use it without reading it back. A status
   * without a registry (`registryId` undefined) is refused with an error: it could be any account's.
   */
  putScan(scan: ScanStatus): Promise<boolean>;
  /**
   * The status of the digest in that registry's repository (never another repository's copy of it, nor a
   * same-named repository's of another account). Statuses stored before the registry was part of their key
   * are not found: the gate then asks coverage, as when no scan event came.
   */
  getScan(digest: string, registryId: string, repository: string): Promise<ScanStatus | undefined>;
  /** The audit chain's head of a pipeline (a consistent read); undefined before its first record. */
  auditHead(pipeline: string): Promise<ChainHead | undefined>;
  /**
   * Writes a decision record's vulnerability index items (after the record; idempotent). A failure leaves a
   * marker that `repairAuditIndexes` (the sweep) finishes.
   */
  indexAudit(record: AuditRecord): Promise<void>;
  /**
   * Finishes the index items of records whose indexing failed and are due at `now`; returns how many. Throws
   * if any could not be finished, after trying the others (their markers stay, put off for a while, so that
   * they cannot hold back the others).
   */
  repairAuditIndexes(now: Date): Promise<number>;
}

export interface ClockPort {
  now(): Date;
}

/** Structured logging without an SDK: the Lambda adapter is Powertools Logger. */
export interface LogPort {
  debug(message: string, fields?: Readonly<Record<string, unknown>>): void;
  info(message: string, fields?: Readonly<Record<string, unknown>>): void;
  warn(message: string, fields?: Readonly<Record<string, unknown>>): void;
  error(message: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** Powertools Metrics (EMF) in Lambda, counters in the local run. */
export interface MetricsPort {
  decision(outcome: string, latencyMs: number): void;
  /**
   * Each sweep: gates waiting, those overdue (waiting past their deadline plus a margin: the timeout should
   * have decided them; or decided, and not sent within an acting lease more: auto-approval has stopped
   * working), and the oldest wait in minutes.
   */
  gatesWaiting(waiting: {
    readonly count: number;
    readonly overdue: number;
    readonly oldestMinutes: number;
  }): void;
  count(name: string, value?: number): void;
}
