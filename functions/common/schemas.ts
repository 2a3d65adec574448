import * as z from 'zod/mini';
import { PIPELINE_NAME, PIPELINE_NAME_EXPECTED } from '../../shared/gate/model.js';

/*
 * The events the functions take, as zod schemas over the EventBridge envelope. `source` and
 * `detail-type` are pinned here as well as in the rules: a handler must not act on an event another
 * rule (or a forged PutEvents) sends it. Unknown fields are stripped, not rejected: AWS adds fields.
 */

/**
 * The EventBridge envelope, field for field Powertools' `EventBridgeSchema` (a test holds them equal). Ours
 * because that module does `import { z } from 'zod'`, which puts all of zod (every locale) in each
 * function's bundle; zod/mini's functions let esbuild keep only what is used.
 */
export const EventBridgeSchema = z.object({
  version: z.string(),
  id: z.string(),
  source: z.string(),
  account: z.string(),
  time: z.iso.datetime(),
  region: z.string(),
  resources: z.array(z.string()),
  'detail-type': z.string(),
  detail: z.unknown(),
  'replay-name': z.optional(z.string()),
});

// As CodePipeline names them ([A-Za-z0-9.@_-], at most 100): ASCII, so a key built of them is as many bytes as
// characters (DynamoDB bounds keys in bytes; a name of 100 three-byte characters would pass a length check and
// fail every write of its gate).
const name = z.string().check(z.regex(PIPELINE_NAME, { error: PIPELINE_NAME_EXPECTED }));
// An execution id is a UUID; bounded loosely, but printable ASCII for the same reason.
const ASCII_WORD = /^[\x21-\x7e]+$/;

const ApprovalType = z.object({
  category: z.literal('Approval'),
  provider: z.literal('Manual'),
  owner: z.string(),
  version: z.union([z.string(), z.number()]),
});

const ActionDetail = z.object({
  pipeline: name,
  'execution-id': z.string().check(z.minLength(1), z.maxLength(200), z.regex(ASCII_WORD)),
  stage: name,
  action: name,
  'action-execution-id': z.optional(z.string()),
  // A number (`2.0` in the samples); a retried stage's approval comes with the next attempt.
  'pipeline-execution-attempt': z.optional(z.int().check(z.minimum(1), z.maximum(1_000_000))),
  state: z.string(),
  region: z.optional(z.string()),
  type: ApprovalType,
});

const ActionEvent = z.extend(EventBridgeSchema, {
  source: z.literal('aws.codepipeline'),
  'detail-type': z.literal('CodePipeline Action Execution State Change'),
});

export const ApprovalStartedEvent = z.extend(ActionEvent, {
  detail: z.extend(ActionDetail, { state: z.literal('STARTED') }),
});
export type ApprovalStartedEvent = z.infer<typeof ApprovalStartedEvent>;

export const ENDED_STATES = ['SUCCEEDED', 'FAILED', 'ABANDONED', 'CANCELED'] as const;

export const ApprovalEndedEvent = z.extend(ActionEvent, {
  detail: z.extend(ActionDetail, { state: z.enum(ENDED_STATES) }),
});
export type ApprovalEndedEvent = z.infer<typeof ApprovalEndedEvent>;

const digest = z.string().check(z.regex(/^sha256:[a-f0-9]{32,64}$/, { error: 'a sha256 image digest' }));
// Scanners leave out severities without findings; a missing map is "no counts", never zeroes.
const counts = z.optional(z.record(z.string(), z.int().check(z.minimum(0))));

const REPOSITORY_ARN = /^arn:aws[a-z-]*:ecr:[a-z0-9-]+:\d{12}:repository\/./;

// Both scanners send this shape. EC2 and Lambda scans send the Inspector detail-type without a digest:
// they fail here and are ignored.
const ScanDetail = z.object({
  'scan-status': z.string().check(z.minLength(1), z.maxLength(64)),
  // Inspector sends the repository ARN here, ECR the bare name (ECR's names are at most 256 characters). The
  // name keys the scan's item: one past DynamoDB's key limits would fail its write on every retry.
  // An ARN names the registry the scan is of, which the event's own `account` need not be (a delegated
  // administrator's events name its members'): one without a 12-digit account (`…::repository/app`) is refused,
  // not stored under `account` (the administrator's own registry, whose same-named repository it may not be).
  'repository-name': z.string().check(
    z.minLength(1),
    z.maxLength(512),
    // ECR's names and ARNs are ASCII: 512 characters are then 512 of a sort key's 1,024 bytes.
    z.regex(ASCII_WORD, { error: 'an ECR repository name or ARN (ASCII, no spaces)' }),
    z.refine((v) => !v.startsWith('arn:') || REPOSITORY_ARN.test(v), {
      error: 'a bare repository name, or an ECR repository ARN with its 12-digit account',
    }),
  ),
  'finding-severity-counts': counts,
  'image-digest': digest,
  'image-tags': z.optional(z.array(z.string())),
});

export const InspectorScanEvent = z.extend(EventBridgeSchema, {
  source: z.literal('aws.inspector2'),
  'detail-type': z.literal('Inspector2 Scan'),
  detail: ScanDetail,
});
export type InspectorScanEvent = z.infer<typeof InspectorScanEvent>;

export const EcrScanEvent = z.extend(EventBridgeSchema, {
  source: z.literal('aws.ecr'),
  'detail-type': z.literal('ECR Image Scan'),
  detail: ScanDetail,
});
export type EcrScanEvent = z.infer<typeof EcrScanEvent>;

export const ScanEvent = z.union([InspectorScanEvent, EcrScanEvent]);
export type ScanEvent = z.infer<typeof ScanEvent>;

/**
 * CloudTrail's record of a PutApprovalResult call. `requestParameters` are written by the caller, so only
 * `userIdentity` is trusted (who called); the token only finds the gate, and the result itself comes from
 * the action's own state change event.
 */
export const ApprovalResultCallEvent = z.extend(EventBridgeSchema, {
  source: z.literal('aws.codepipeline'),
  'detail-type': z.literal('AWS API Call via CloudTrail'),
  detail: z.object({
    eventSource: z.literal('codepipeline.amazonaws.com'),
    eventName: z.literal('PutApprovalResult'),
    eventTime: z.optional(z.string()),
    errorCode: z.optional(z.string()),
    userIdentity: z.object({
      type: z.optional(z.string()),
      arn: z.optional(z.string()),
      principalId: z.optional(z.string()),
      // Who calls without an ARN or principal id: an AWS service (`AWSService`) names itself in `invokedBy`;
      // an IAM Identity Center user (`IdentityCenterUser`) is its user id in its identity store. Read only
      // when nothing else names the caller, so one of another type is dropped (`unknown <type> identity` then),
      // not the whole record refused and dead-lettered with the reviewer it names.
      // Not checked here (z.catch would bring 7 KB of zod into each bundle): the handler reads only strings.
      invokedBy: z.optional(z.unknown()),
      onBehalfOf: z.optional(z.unknown()),
      // The source identity a role session was given (sts:SourceIdentity: set by the IdP or the first
      // AssumeRole, unchangeable, kept through role chaining): the person behind a shared role.
      sessionContext: z.optional(z.object({ sourceIdentity: z.optional(z.string()) })),
    }),
    requestParameters: z.nullish(
      z.object({
        pipelineName: z.optional(z.string()),
        stageName: z.optional(z.string()),
        actionName: z.optional(z.string()),
        token: z.optional(z.string()),
        result: z.optional(z.object({ status: z.optional(z.string()), summary: z.optional(z.string()) })),
      }),
    ),
  }),
});
export type ApprovalResultCallEvent = z.infer<typeof ApprovalResultCallEvent>;

export const ApprovalEndedOrCallEvent = z.union([ApprovalEndedEvent, ApprovalResultCallEvent]);

/**
 * The sweep's trigger: a scheduled event, or a manual invoke: any object that is no EventBridge event (no
 * `source` nor `detail-type`), the console's test event `{"key1": "value1", …}` included. Its fields are
 * dropped: a manual sweep takes its account and region from the function.
 */
export const SweepEvent = z.union([
  z.extend(EventBridgeSchema, {
    source: z.literal('aws.events'),
    'detail-type': z.literal('Scheduled Event'),
  }),
  z.extend(EventBridgeSchema, {
    source: z.literal('aws.scheduler'),
    'detail-type': z.literal('Scheduled Event'),
  }),
  // `id` (a correlation id, when given) makes it an envelope to gateHandler's types.
  z.object({
    id: z.optional(z.string()),
    source: z.optional(z.never()),
    'detail-type': z.optional(z.never()),
  }),
]);

/**
 * What says an event is of a kind, taken from the kind's own schema: its source, detail-type and the detail
 * fields the rules match on. The rules deliver nothing else to a function, so an event of its kind that the
 * full schema refuses is malformed, not another kind: it is dead-lettered, not ignored (see gateHandler).
 */
const kindOf = <T extends z.ZodMiniType>(
  schema: { readonly shape: { readonly source: z.ZodMiniType; readonly 'detail-type': z.ZodMiniType } },
  detail: T,
) => z.object({ source: schema.shape.source, 'detail-type': schema.shape['detail-type'], detail });

const approvalKind = (event: typeof ApprovalStartedEvent | typeof ApprovalEndedEvent) =>
  kindOf(
    event,
    z.object({
      state: event.shape.detail.shape.state,
      type: z.object({ category: ApprovalType.shape.category, provider: ApprovalType.shape.provider }),
    }),
  );

// The rules deliver only image scans: those with an `image-digest`, whatever its value.
const scanKind = (event: typeof InspectorScanEvent | typeof EcrScanEvent) =>
  kindOf(event, z.object({ 'image-digest': z.custom<unknown>((v) => v !== undefined) }));

// Built on first use, so that the functions that take none of these events leave them out of their bundles.
let kinds: {
  readonly started: z.ZodMiniType;
  readonly ended: z.ZodMiniType;
  readonly call: z.ZodMiniType;
  readonly scans: readonly z.ZodMiniType[];
};
const eventKinds = (): typeof kinds =>
  (kinds ??= {
    started: approvalKind(ApprovalStartedEvent),
    ended: approvalKind(ApprovalEndedEvent),
    scans: [scanKind(InspectorScanEvent), scanKind(EcrScanEvent)],
    call: kindOf(
      ApprovalResultCallEvent,
      z.object({
        eventSource: ApprovalResultCallEvent.shape.detail.shape.eventSource,
        eventName: ApprovalResultCallEvent.shape.detail.shape.eventName,
      }),
    ),
  });

/** Whether a raw event is a Manual approval's STARTED action event, well formed or not. */
export const isApprovalStarted = (raw: unknown): boolean => eventKinds().started.safeParse(raw).success;

/** Whether a raw event is a Manual approval's end or CloudTrail's record of a PutApprovalResult call. */
export const isApprovalEndOrCall = (raw: unknown): boolean =>
  eventKinds().ended.safeParse(raw).success || eventKinds().call.safeParse(raw).success;

/** Whether a raw event is an image scan's (Inspector's or ECR's: it names a digest), well formed or not. */
export const isImageScan = (raw: unknown): boolean =>
  eventKinds().scans.some((k) => k.safeParse(raw).success);
