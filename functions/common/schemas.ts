import * as z from 'zod';

/*
 * The events the functions take, as zod schemas over the EventBridge envelope. `source` and
 * `detail-type` are pinned here as well as in the rules: a handler must not act on an event another
 * rule (or a forged PutEvents) sends it. Unknown fields are stripped, not rejected: AWS adds fields.
 */

/**
 * The EventBridge envelope, field for field Powertools' `EventBridgeSchema` (a test holds them equal). Ours
 * because that module does `import { z } from 'zod'`, which puts all of zod (every locale) in each
 * function's bundle; `import * as z` lets esbuild keep only what is used.
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
  'replay-name': z.string().optional(),
});

const name = z.string().min(1).max(100);

const ApprovalType = z.object({
  category: z.literal('Approval'),
  provider: z.literal('Manual'),
  owner: z.string(),
  version: z.union([z.string(), z.number()]),
});

const ActionDetail = z.object({
  pipeline: name,
  'execution-id': z.string().min(1).max(200),
  stage: name,
  action: name,
  'action-execution-id': z.string().optional(),
  state: z.string(),
  region: z.string().optional(),
  type: ApprovalType,
});

const ActionEvent = EventBridgeSchema.extend({
  source: z.literal('aws.codepipeline'),
  'detail-type': z.literal('CodePipeline Action Execution State Change'),
});

export const ApprovalStartedEvent = ActionEvent.extend({
  detail: ActionDetail.extend({ state: z.literal('STARTED') }),
});
export type ApprovalStartedEvent = z.infer<typeof ApprovalStartedEvent>;

export const ENDED_STATES = ['SUCCEEDED', 'FAILED', 'ABANDONED', 'CANCELED'] as const;

export const ApprovalEndedEvent = ActionEvent.extend({
  detail: ActionDetail.extend({ state: z.enum(ENDED_STATES) }),
});
export type ApprovalEndedEvent = z.infer<typeof ApprovalEndedEvent>;

const digest = z.string().regex(/^sha256:[a-f0-9]{32,64}$/, { error: 'a sha256 image digest' });
// Scanners leave out severities without findings; a missing map is "no counts", never zeroes.
const counts = z.record(z.string(), z.number().int().min(0)).optional();

// Both scanners send this shape. EC2 and Lambda scans send the Inspector detail-type without a digest:
// they fail here and are ignored.
const ScanDetail = z.object({
  'scan-status': z.string().min(1),
  // Inspector sends the repository ARN here, ECR the bare name.
  'repository-name': z.string().min(1),
  'finding-severity-counts': counts,
  'image-digest': digest,
  'image-tags': z.array(z.string()).optional(),
});

export const InspectorScanEvent = EventBridgeSchema.extend({
  source: z.literal('aws.inspector2'),
  'detail-type': z.literal('Inspector2 Scan'),
  detail: ScanDetail,
});
export type InspectorScanEvent = z.infer<typeof InspectorScanEvent>;

export const EcrScanEvent = EventBridgeSchema.extend({
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
export const ApprovalResultCallEvent = EventBridgeSchema.extend({
  source: z.literal('aws.codepipeline'),
  'detail-type': z.literal('AWS API Call via CloudTrail'),
  detail: z.object({
    eventSource: z.literal('codepipeline.amazonaws.com'),
    eventName: z.literal('PutApprovalResult'),
    eventTime: z.string().optional(),
    errorCode: z.string().optional(),
    userIdentity: z.object({
      type: z.string().optional(),
      arn: z.string().optional(),
      principalId: z.string().optional(),
    }),
    requestParameters: z
      .object({
        pipelineName: z.string().optional(),
        stageName: z.string().optional(),
        actionName: z.string().optional(),
        token: z.string().optional(),
        result: z.object({ status: z.string().optional(), summary: z.string().optional() }).optional(),
      })
      .nullish(),
  }),
});
export type ApprovalResultCallEvent = z.infer<typeof ApprovalResultCallEvent>;

export const ApprovalEndedOrCallEvent = z.union([ApprovalEndedEvent, ApprovalResultCallEvent]);

/** The sweep's trigger: a scheduled event, or nothing (a manual invoke). */
export const SweepEvent = z.union([
  EventBridgeSchema.extend({ source: z.literal('aws.events'), 'detail-type': z.literal('Scheduled Event') }),
  EventBridgeSchema.extend({
    source: z.literal('aws.scheduler'),
    'detail-type': z.literal('Scheduled Event'),
  }),
  z.object({}).strict(),
]);
