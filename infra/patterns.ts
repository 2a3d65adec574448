import { ENDED_STATES } from '../functions/common/schemas.js';
import { shown } from '../shared/text.js';

/*
 * Pure configuration → filters: the EventBridge patterns of every Tollgate rule and the IAM resource ARNs
 * of the gated pipelines, both from the same name globs. No CDK here, so tests can match the patterns
 * against sample events and check the ARNs without synthesising anything.
 *
 * A glob is a CodePipeline name (letters, digits, `.`, `@`, `-`, `_`: the API's own pattern) in which `*`
 * stands for any run of characters, as in the policy language (`shared/glob.ts`). A name can hold neither
 * `*` nor `\`, so no glob needs escaping in an EventBridge `wildcard` or an IAM ARN.
 */

export type ScanSource = 'inspector' | 'ecr';
export const SCAN_SOURCES: readonly ScanSource[] = ['inspector', 'ecr'];

/** One entry of an EventBridge pattern's array: an exact value or one of the content filters used here. */
export type FieldFilter =
  | string
  | { readonly prefix: string }
  | { readonly suffix: string }
  | { readonly wildcard: string }
  | { readonly exists: boolean };

/** An EventBridge event pattern, as the JSON EventBridge stores. */
export interface EventPattern {
  readonly [field: string]: readonly FieldFilter[] | EventPattern;
}

export interface PatternConfig {
  /** The account the events must come from: the stack's own. */
  readonly account: string;
  /** The partition of ECR ARNs in scan events (`aws`, `aws-cn`, `aws-us-gov`). */
  readonly partition?: string;
  /** Globs of the gated pipelines' names; `*` alone gates every pipeline. */
  readonly pipelines: readonly string[];
  /** Globs of the gated Manual approval actions' names. */
  readonly approvalActionNames: readonly string[];
  readonly scanSource: ScanSource;
}

/** Every rule the construct creates from a pattern (the sweep's schedule has none). */
export type RuleName =
  | 'approvalStarted'
  | 'approvalEnded'
  | 'approvalResultCall'
  | 'inspectorScan'
  | 'ecrScan';

export type FunctionName = 'approval-started' | 'scan-finished' | 'approval-ended' | 'sweep';
export const FUNCTION_NAMES: readonly FunctionName[] = [
  'approval-started',
  'scan-finished',
  'approval-ended',
  'sweep',
];

/** The function each rule invokes. */
export const RULE_TARGETS: Readonly<Record<RuleName, FunctionName>> = {
  approvalStarted: 'approval-started',
  approvalEnded: 'approval-ended',
  approvalResultCall: 'approval-ended',
  inspectorScan: 'scan-finished',
  ecrScan: 'scan-finished',
};

/** A configuration value that cannot work, named by where it came from. */
export class TollgateConfigError extends Error {
  constructor(
    /** The prop (or context key) and the path inside it: `pipelines[1]`. */
    readonly key: string,
    readonly expected: string,
    readonly got: string,
  ) {
    super(`Tollgate: ${key}: expected ${expected}; got ${got}`);
    this.name = 'TollgateConfigError';
  }

  /** The same problem, named by another key (the stack names context keys, not props). */
  renamed(key: string): TollgateConfigError {
    return new TollgateConfigError(key, this.expected, this.got);
  }
}

// Re-exported: the infra modules take it from here with the other helpers of a config error.
export { shown };

const NAME_GLOB = /^[A-Za-z0-9.@\-_*]{1,100}$/;
/**
 * EventBridge limits a pattern's size and its wildcard complexity, and PutApprovalResult takes one ARN per
 * pipeline glob × action glob, in one IAM statement (`checkApprovalPolicySize`). A few dozen globs is already
 * more than a naming convention needs.
 */
export const MAX_GLOBS = 25;

/**
 * Checks a list of name globs and returns it normalised: runs of `*` collapsed (EventBridge refuses `**`
 * in a wildcard; it means `*` anyway), duplicates dropped, and `['*']` when any glob is `*` alone (it
 * matches every name, so the others add nothing).
 */
export function normaliseGlobs(key: string, value: unknown, what: string): readonly string[] {
  const expected = `a non-empty list of at most ${MAX_GLOBS} ${what} globs: names of 1 to 100 letters, digits, '.', '@', '-' or '_', with '*' for any run of characters`;
  if (!Array.isArray(value)) throw new TollgateConfigError(key, expected, shown(value));
  if (value.length === 0 || value.length > MAX_GLOBS) {
    throw new TollgateConfigError(key, expected, `${value.length} globs`);
  }
  const out: string[] = [];
  value.forEach((glob: unknown, i) => {
    if (typeof glob !== 'string' || !NAME_GLOB.test(glob)) {
      throw new TollgateConfigError(
        `${key}[${i}]`,
        `a ${what} glob: 1 to 100 letters, digits, '.', '@', '-', '_' or '*'`,
        shown(glob),
      );
    }
    const collapsed = glob.replace(/\*{2,}/g, '*');
    if (!out.includes(collapsed)) out.push(collapsed);
  });
  return out.includes('*') ? ['*'] : out;
}

/**
 * The EventBridge filters matching any of the globs, or `undefined` when they match every name (the
 * pattern then leaves the field out). A literal is an exact value; a single trailing or leading `*` is the
 * cheaper `prefix` / `suffix` filter; anything else is a `wildcard`.
 */
export function globFilters(globs: readonly string[]): FieldFilter[] | undefined {
  if (globs.includes('*')) return undefined;
  return globs.map((glob): FieldFilter => {
    const stars = glob.split('*').length - 1;
    if (stars === 0) return glob;
    if (stars === 1 && glob.endsWith('*')) return { prefix: glob.slice(0, -1) };
    if (stars === 1 && glob.startsWith('*')) return { suffix: glob.slice(1) };
    return { wildcard: glob };
  });
}

function withNames(fields: Record<string, readonly FieldFilter[] | undefined>): EventPattern {
  const out: Record<string, readonly FieldFilter[]> = {};
  for (const [name, filter] of Object.entries(fields)) if (filter) out[name] = filter;
  return out;
}

const APPROVAL_TYPE: EventPattern = {
  category: ['Approval'],
  provider: ['Manual'],
  owner: ['AWS'],
};

/**
 * The pattern of every rule the configuration needs, by rule name. Every pattern pins `source`,
 * `detail-type` and `account`; the rest filters what EventBridge can, so a function only runs for work
 * it has to do (the handlers check again: a rule is not a security boundary against forged PutEvents).
 */
export function rulePatterns(config: PatternConfig): Partial<Record<RuleName, EventPattern>> {
  const pipelines = globFilters(config.pipelines);
  const actions = globFilters(config.approvalActionNames);
  const account = [config.account];
  const partition = config.partition ?? 'aws';

  const approval = (states: readonly string[]): EventPattern => ({
    source: ['aws.codepipeline'],
    'detail-type': ['CodePipeline Action Execution State Change'],
    account,
    detail: {
      state: states,
      type: APPROVAL_TYPE,
      ...withNames({ pipeline: pipelines, action: actions }),
    },
  });

  const patterns: Partial<Record<RuleName, EventPattern>> = {
    approvalStarted: approval(['STARTED']),
    approvalEnded: approval(ENDED_STATES),
    // CloudTrail's record of who answered an approval. The caller writes requestParameters, so they only
    // narrow what is delivered; the handler trusts userIdentity alone. A call that failed resolved nothing.
    approvalResultCall: {
      source: ['aws.codepipeline'],
      'detail-type': ['AWS API Call via CloudTrail'],
      account,
      detail: {
        eventSource: ['codepipeline.amazonaws.com'],
        eventName: ['PutApprovalResult'],
        errorCode: [{ exists: false }],
        ...(pipelines || actions
          ? { requestParameters: withNames({ pipelineName: pipelines, actionName: actions }) }
          : {}),
      },
    },
  };
  // Only images: Inspector sends the same detail-type for EC2 instances and Lambda functions, without a
  // digest and with the instance or function as the resource.
  const image = { 'image-digest': [{ exists: true }] };
  if (config.scanSource === 'inspector') {
    patterns.inspectorScan = {
      source: ['aws.inspector2'],
      'detail-type': ['Inspector2 Scan'],
      account,
      resources: [{ prefix: `arn:${partition}:ecr:` }],
      detail: image,
    };
  } else {
    patterns.ecrScan = {
      source: ['aws.ecr'],
      'detail-type': ['ECR Image Scan'],
      account,
      detail: image,
    };
  }
  return patterns;
}

/** What a notification topic must be, in every error about one. */
const STANDARD_TOPIC = 'a standard SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)';

/**
 * Why a FIFO topic is refused: SNS requires a MessageGroupId on every publish to one, which the functions'
 * publish (adapters/aws/sns.ts) does not send, and CloudWatch alarm actions cannot publish to one at all.
 */
export const NOT_FIFO =
  'not a FIFO topic: SNS refuses a publish to one without a MessageGroupId, which Tollgate does not send, ' +
  "and a CloudWatch alarm's actions cannot publish to one";

/**
 * Refuses a topic ARN (text, no token) that is not a standard SNS topic's: anything that does not parse as
 * one, or a FIFO topic's (its name ends in `.fifo`). Either would be refused by SNS at every escalation or
 * alarm, at run time.
 */
export function checkTopicArn(key: string, topicArn: string): void {
  if (topicArn.endsWith('.fifo')) {
    throw new TollgateConfigError(key, `${STANDARD_TOPIC}, ${NOT_FIFO}`, shown(topicArn));
  }
  if (!/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/.test(topicArn)) {
    throw new TollgateConfigError(key, STANDARD_TOPIC, shown(topicArn));
  }
}

/**
 * Refuses an SNS topic ARN (text, no token) outside the stack's region or partition: the functions' SNS client
 * publishes in their own region, and a CloudWatch alarm's actions must be in the alarm's region, so SNS
 * would refuse every escalation or alarm, at run time; and, first, one that is not a standard topic's
 * (`checkTopicArn`). `partition` is undefined when the region's is not known.
 */
export function checkTopicRegion(
  key: string,
  topicArn: string,
  stack: {
    readonly region: string;
    readonly partition: string | undefined;
    /** Where the stack's region comes from, when a message should say (a context key). */
    readonly from?: string;
  },
  why: string,
): void {
  // Not an SNS topic's ARN at all is refused as such, never let through for want of a region to compare.
  checkTopicArn(key, topicArn);
  const [, partition, region] = /^arn:([^:]+):sns:([^:]*):/.exec(topicArn) ?? [];
  if (region === stack.region && (stack.partition === undefined || partition === stack.partition)) return;
  const where = [
    stack.region,
    ...(stack.partition === undefined ? [] : [` (partition ${stack.partition})`]),
    ...(stack.from === undefined ? [] : [`, from ${stack.from}`]),
  ].join('');
  throw new TollgateConfigError(
    key,
    `an SNS topic in the stack's region, ${where}: ${why}`,
    `${shown(topicArn)} (${region === stack.region ? `partition ${partition}` : `region ${region}`})`,
  );
}

/**
 * The most characters an EventBridge event pattern may have by default (its "Event pattern size" quota). A
 * pattern over the limit is refused only at deploy, when CloudFormation creates the rule and rolls the stack
 * back: so it is refused at synth.
 */
export const MAX_PATTERN_CHARACTERS = 2048;

/** The most the quota can be raised to (on request): the largest `eventPatternLimit` accepted. */
export const MAX_EVENT_PATTERN_LIMIT = 4096;

/**
 * `eventPatternLimit` checked: whole characters from `MAX_PATTERN_CHARACTERS` (EventBridge's default quota) to
 * `MAX_EVENT_PATTERN_LIMIT`. `key` names the prop or context key.
 */
export function checkEventPatternLimit(key: string, value: unknown): number {
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < MAX_PATTERN_CHARACTERS ||
    value > MAX_EVENT_PATTERN_LIMIT
  ) {
    throw new TollgateConfigError(
      key,
      `whole characters from ${MAX_PATTERN_CHARACTERS} (EventBridge's default event pattern size quota) to ` +
        `${MAX_EVENT_PATTERN_LIMIT}, the account's raised quota`,
      shown(value),
    );
  }
  return value;
}

/**
 * Refuses globs whose rule patterns would be over `limit` characters (EventBridge's event pattern size quota,
 * `MAX_PATTERN_CHARACTERS` unless raised): each glob is written into the patterns (the pipelines' and the
 * actions' both into the same ones), so a configuration within `MAX_GLOBS` globs of 100 characters can still
 * fail at deploy. The size is that of the compact JSON, with an account of 12 digits (what a token resolves
 * to) and the scan rule of the longer partition name: the glob rules are the largest, and the same for
 * either scan source.
 */
export function checkPatternSizes(
  pipelines: readonly string[],
  approvalActionNames: readonly string[],
  limit: number = MAX_PATTERN_CHARACTERS,
): void {
  const size = largestPattern(pipelines, approvalActionNames);
  if (size !== undefined && size.size > limit) {
    const remedy =
      limit < MAX_EVENT_PATTERN_LIMIT
        ? "; or raise the account's quota and set eventPatternLimit / tollgate:eventPatternLimit, " +
          `up to ${MAX_EVENT_PATTERN_LIMIT}`
        : `; ${MAX_EVENT_PATTERN_LIMIT} is the most the quota is raised to`;
    throw new TollgateConfigError(
      'pipelines / approvalActionNames',
      `globs whose EventBridge rule patterns fit EventBridge's limit of ${limit} characters per event pattern ` +
        `(fewer or shorter globs: a common prefix as one \`prefix*\` glob${remedy})`,
      `${pipelines.length} pipeline and ${approvalActionNames.length} approval action globs, whose ` +
        `${size.rule} rule's pattern is ${size.size} characters`,
    );
  }
}

/** The largest rule pattern the globs make, as `checkPatternSizes` measures it (compact JSON). */
export function largestPattern(
  pipelines: readonly string[],
  approvalActionNames: readonly string[],
): { rule: string; size: number } | undefined {
  const patterns = rulePatterns({
    account: '123456789012',
    partition: 'aws-us-gov',
    pipelines,
    approvalActionNames,
    scanSource: 'inspector',
  });
  let largest: { rule: string; size: number } | undefined;
  for (const [rule, pattern] of Object.entries(patterns)) {
    const size = JSON.stringify(pattern).length;
    if (largest === undefined || size > largest.size) largest = { rule, size };
  }
  return largest;
}

export interface ArnConfig {
  readonly partition: string;
  readonly region: string;
  readonly account: string;
  readonly pipelines: readonly string[];
  readonly approvalActionNames: readonly string[];
}

/**
 * The gated pipelines' ARNs (GetPipelineState, GetPipelineExecution, ListActionExecutions). An IAM ARN's
 * `*` matches any run of characters, as a glob's does.
 */
export function pipelineArns(c: ArnConfig): string[] {
  return c.pipelines.map((p) => `arn:${c.partition}:codepipeline:${c.region}:${c.account}:${p}`);
}

/**
 * The gated approval actions' ARNs (PutApprovalResult authorises on `pipeline/stage/action`): any stage,
 * but only actions named by `approvalActionNames`, so Tollgate cannot answer another approval of a
 * gated pipeline (a product owner's sign-off, say).
 */
export function approvalActionArns(c: ArnConfig): string[] {
  return c.pipelines.flatMap((p) =>
    c.approvalActionNames.map((a) => `arn:${c.partition}:codepipeline:${c.region}:${c.account}:${p}/*/${a}`),
  );
}

/** The Sid and action of the statement that lets the deciding roles answer the gated approvals. */
export const APPROVAL_STATEMENT_SID = 'AnswerApprovals';
export const APPROVAL_ACTION = 'codepipeline:PutApprovalResult';

/**
 * IAM's limits on a role's policies, in characters not counting white space: its inline policies together,
 * and each managed policy. CDK keeps a role's statements in its inline policy while they fit (by its estimate)
 * and moves the others into managed policies of their own (`OverflowPolicy…`); it never splits a statement.
 */
export const MAX_INLINE_POLICY_CHARACTERS = 10_240;
export const MAX_MANAGED_POLICY_CHARACTERS = 6_144;

/**
 * What the tokens of an ARN resolve to at their longest, for a size that holds wherever the stack deploys: a
 * 12-digit account, the longest partition name (`aws-us-gov`; `aws-iso-b` is shorter) and the longest
 * region name.
 */
export const LONGEST_ARN_PLACE: Pick<ArnConfig, 'partition' | 'region' | 'account'> = {
  partition: 'aws-us-gov',
  region: 'us-isof-south-1',
  account: '123456789012',
};

/** The PutApprovalResult statement as CloudFormation hands it to IAM (CDK writes a single value bare). */
export function approvalStatement(c: ArnConfig): Record<string, unknown> {
  const arns = approvalActionArns(c);
  return {
    Action: APPROVAL_ACTION,
    Effect: 'Allow',
    Resource: arns.length === 1 ? arns[0] : arns,
    Sid: APPROVAL_STATEMENT_SID,
  };
}

/**
 * The size IAM counts for the PutApprovalResult statement alone in a policy document (compact JSON: IAM does
 * not count white space), its ARNs at their longest (`LONGEST_ARN_PLACE`), and their number.
 */
export function approvalPolicySize(
  pipelines: readonly string[],
  approvalActionNames: readonly string[],
): { arns: number; size: number } {
  const c = { ...LONGEST_ARN_PLACE, pipelines, approvalActionNames };
  const document = { Statement: [approvalStatement(c)], Version: '2012-10-17' };
  return { arns: pipelines.length * approvalActionNames.length, size: JSON.stringify(document).length };
}

/**
 * The longest ARN the globs put in a role's policy (a gated approval action's, or a gated pipeline's), at its
 * longest (`LONGEST_ARN_PLACE`). CDK estimates an ARN that holds a token at 150 characters when it sizes a
 * role's inline policy; the construct raises that estimate to this length, so that CDK moves statements of long
 * globs out of the inline policy before IAM's limit, not after.
 */
export function longestGlobArn(pipelines: readonly string[], approvalActionNames: readonly string[]): number {
  const c = { ...LONGEST_ARN_PLACE, pipelines, approvalActionNames };
  return Math.max(...[...approvalActionArns(c), ...pipelineArns(c)].map((arn) => arn.length));
}

/**
 * Refuses globs whose PutApprovalResult statement cannot be deployed: it holds one ARN per pipeline glob ×
 * approval action glob, CDK cannot split a statement, and a statement CDK moves out of the role's inline policy
 * must fit a managed policy of its own (`MAX_MANAGED_POLICY_CHARACTERS`); IAM would refuse it only at deploy, in
 * CloudFormation's rollback. Measured as `approvalPolicySize` does, at the ARNs' longest. Widening the ARNs
 * instead (one per pipeline, any stage and any action) would let Tollgate answer approvals it does not gate (a
 * product owner's sign-off), so the globs are what must change.
 */
export function checkApprovalPolicySize(
  pipelines: readonly string[],
  approvalActionNames: readonly string[],
): void {
  const { arns, size } = approvalPolicySize(pipelines, approvalActionNames);
  if (size <= MAX_MANAGED_POLICY_CHARACTERS) return;
  throw new TollgateConfigError(
    'pipelines / approvalActionNames',
    `globs whose PutApprovalResult statement (one resource ARN per pipeline glob × approval action glob, in one ` +
      `IAM statement, which cannot be split) fits IAM's limit of ${MAX_MANAGED_POLICY_CHARACTERS} characters per ` +
      'managed policy (fewer or broader globs: a common prefix as one `prefix*` glob)',
    `${pipelines.length} pipeline × ${approvalActionNames.length} approval action globs, ${arns} ARNs, whose ` +
      `statement is ${size} characters (12-digit account, partition ${LONGEST_ARN_PLACE.partition}, region ` +
      `${LONGEST_ARN_PLACE.region})`,
  );
}
