import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KeySchemaElement } from '@aws-sdk/client-dynamodb';
import { Duration, Fn, Names, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import { Construct } from 'constructs';
import { EVENT_SOURCE } from '../adapters/aws/eventbridge.js';
import { INDEX, TABLE_DEFINITION, TTL_ATTRIBUTE } from '../adapters/dynamodb/table.js';
import { InputError, unreadable } from '../shared/errors.js';
import { DISCOVERY_MAX_MINUTES } from '../shared/gate/discovery.js';
import { type LoadedPolicy, parsePolicy } from '../shared/policy/load.js';
import { PAGES_ON_ANY } from './alarms.js';
import { ARCHIVE_RETENTION_DEFAULT_DAYS, checkArchiveRetentionDays, TollgateArchive } from './archive.js';
import { BUNDLING, FUNCTION_ENTRIES, policyBundleHook, READS_POLICY } from './bundling.js';
import {
  APPROVAL_ACTION,
  APPROVAL_STATEMENT_SID,
  type ArnConfig,
  approvalActionArns,
  checkApprovalPolicySize,
  checkEventPatternLimit,
  checkPatternSizes,
  checkTopicArn,
  checkTopicRegion,
  type EventPattern,
  FUNCTION_NAMES,
  type FunctionName,
  longestGlobArn,
  MAX_PATTERN_CHARACTERS,
  NOT_FIFO,
  normaliseGlobs,
  pipelineArns,
  RULE_TARGETS,
  type RuleName,
  rulePatterns,
  SCAN_SOURCES,
  type ScanSource,
  shown,
  TollgateConfigError,
} from './patterns.js';

/** Where the escalations go: email addresses (Tollgate creates the topic) or an SNS topic you have. */
export type NotificationTarget = { readonly emails: readonly string[] } | { readonly topic: sns.ITopic };

export interface TollgateProps {
  /** Globs of the pipelines Tollgate gates. `*` alone gates every pipeline of the account. @default ['*'] */
  readonly pipelines?: readonly string[];
  /** Globs of the Manual approval actions Tollgate answers. @default ['Tollgate*'] */
  readonly approvalActionNames?: readonly string[];
  /**
   * The most characters an EventBridge event pattern may have in this account and region: EventBridge's
   * "Event pattern size" quota, 2048 by default and adjustable on request up to 4096. Every glob of `pipelines`
   * and `approvalActionNames` is written into the rules' patterns, and globs whose largest pattern is over this
   * limit stop the synth (`Tollgate: pipelines / approvalActionNames: …`) rather than failing the deploy. Set it
   * only once the account's quota is raised: a limit over the real quota lets the deploy fail. Whole characters
   * from 2048 to 4096 (`Tollgate: eventPatternLimit: expected whole characters from 2048 … to 4096 …; got 5000`).
   * @default 2048
   */
  readonly eventPatternLimit?: number;
  /**
   * The policy file (YAML or JSON), read and validated now, at synth time, by the loader `tollgate
   * evaluate` uses: a bad policy fails the synth with the same `file:line:col` message. It is shipped
   * with each function's code. Its `settings.scan.waitMinutes` sets the overdue alarm.
   */
  readonly policyFile: string;
  /** Who is asked when the policy escalates. */
  readonly escalation: NotificationTarget;
  /**
   * Who is paged by the alarms (a dead-letter, a failing function, gates overdue or a sweep that stopped).
   * @default the escalation's emails, or the escalation topic: the people who would otherwise find the
   * stalled approvals themselves
   */
  readonly alarms?: NotificationTarget;
  /**
   * Every this many minutes the sweep also reads the gated pipelines' state for Manual approvals in
   * progress that no gate knows (their STARTED event never came) and opens their gates. Whole minutes from
   * 0 (off) to 60. Each run costs the ListPipelines pages (the globs are matched against them, and they give
   * each pipeline's execution mode) and one GetPipelineState per gated pipeline (in PARALLEL execution mode,
   * whose state says nothing of its own executions, ListPipelineExecutions and a ListActionExecutions per
   * execution in progress).
   * @default 5
   */
  readonly discoveryMinutes?: number;
  /** `inspector`: Amazon Inspector enhanced scanning; `ecr`: ECR basic scanning. @default 'inspector' */
  readonly scanSource?: ScanSource;
  /** @default one year */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What happens to the table, key, queues and logs when the stack is deleted. `DESTROY` (for a sandbox)
   * also turns the table's deletion protection off, or the stack could never be deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /** A CloudWatch dashboard of decisions, waiting gates, functions and queues. @default false */
  readonly dashboard?: boolean;
  /**
   * The audit archive (`archive.ts`): every audit record also in S3 under Object Lock, as JSON lines by date,
   * with a Glue table and an Athena workgroup. Turns the table's stream on. @default true
   */
  readonly archive?: boolean;
  /**
   * How long each archived record is locked (S3 Object Lock, compliance mode: no one can delete it or
   * shorten this), in whole days from 1 to 36,500. @default 400
   */
  readonly archiveRetentionDays?: number;
}

/** CDK's context key for its estimate of an ARN's size that holds a token, and its default. */
const ARN_SIZE_ESTIMATE = '@aws-cdk/aws-iam.arnSizeEstimate';
const CDK_ARN_SIZE_ESTIMATE = 150;

/** What each function's code needs to be built: the repository root holds `functions/` and the lock file. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Margin past a gate's deadline before it counts as overdue (the sweep's `GatesOverdue` uses the same; a decided gate gets the acting lease on top). */
export const OVERDUE_MARGIN_MINUTES = 5;

/** The namespace of the functions' Powertools metrics. Their `service` dimension is each deployment's own. */
export const METRICS_NAMESPACE = 'Tollgate';

/** Where a deployment's metrics are: the namespace and the `service` dimension of every metric it emits. */
export interface TollgateMetrics {
  readonly namespace: string;
  readonly service: string;
}

/**
 * The `service` dimension of one deployment: its stack's name and the construct's path in it. Metrics are
 * per account and region, and two deployments there (a prod and a dev stack) sharing one name would mix:
 * one's sweep, still publishing, would keep the other's silent-sweep alarm quiet. A nested stack's name is
 * known only at deploy time, so the stack named is the nearest enclosing one whose name is known at synth
 * time; the path is then relative to it, through the nested stacks. CloudWatch takes printable ASCII of at
 * most 255 characters: a path that is not, or too long, is replaced by a hash of it, which keeps the value
 * unique per deployment (the stack's name) and stable across synths (a hash, not a counter).
 */
export function metricsServiceOf(scope: Construct): string {
  let stack = Stack.of(scope);
  while (Token.isUnresolved(stack.stackName) && stack.nestedStackParent) stack = stack.nestedStackParent;
  // A top-level stack's name is always known; a token here would be a stack we cannot name, so only the
  // construct's path can tell deployments apart.
  if (Token.isUnresolved(stack.stackName)) return Names.uniqueId(scope);
  const within = scope.node.path.slice(stack.node.path.length + 1);
  const readable = `${stack.stackName}/${within}`;
  if (/^[\x20-\x7e]{1,255}$/.test(readable)) return readable;
  return `${stack.stackName}/${createHash('sha256').update(within).digest('hex').slice(0, 16)}`;
}

interface FunctionSpec {
  readonly description: string;
  readonly memoryMb: number;
  readonly timeout: Duration;
  /** Lambda's own retries of a failed asynchronous invocation (0 to 2). */
  readonly retryAttempts: number;
  readonly maxEventAge: Duration;
  /** The table's indexes it queries (the base table is read and written by key only). */
  readonly indexes: readonly string[];
  /** The indexes only the sweep's discovery queries: granted only while discovery is on. */
  readonly discoveryIndexes?: readonly string[];
}

const FUNCTIONS: Readonly<Record<FunctionName, FunctionSpec>> = {
  'approval-started': {
    description: 'Tollgate: a gated Manual approval started; store the gate and try to decide',
    memoryMb: 1024,
    timeout: Duration.minutes(2),
    retryAttempts: 2,
    maxEventAge: Duration.hours(1),
    indexes: [],
  },
  'scan-finished': {
    description: 'Tollgate: an image scan finished; decide the gates waiting for it',
    memoryMb: 1024,
    timeout: Duration.minutes(5),
    retryAttempts: 2,
    maxEventAge: Duration.hours(1),
    indexes: [INDEX.digest],
  },
  'approval-ended': {
    description: 'Tollgate: a gated approval ended, or CloudTrail recorded who answered it; close the gate',
    memoryMb: 512,
    // One stalled call with its retries (DEFAULT_RETRY's attempts of attemptMaxMs each) must fit:
    // killed mid-way, a close that landed is retried as "already closed", and its event is never sent.
    timeout: Duration.minutes(2),
    retryAttempts: 2,
    maxEventAge: Duration.hours(6),
    indexes: [INDEX.token],
  },
  sweep: {
    description:
      'Tollgate: every minute, decide waiting gates again, apply timeouts, act where acting failed; find approvals no event announced',
    memoryMb: 1024,
    timeout: Duration.minutes(5),
    // The next run a minute later does the same work: a retry would only overlap it.
    retryAttempts: 0,
    maxEventAge: Duration.minutes(5),
    indexes: [INDEX.open],
    // by-token: discovery asks whether a gate already saw an approval's token (shared/gate/discovery.ts);
    // nothing else the sweep runs reads that index.
    discoveryIndexes: [INDEX.token],
  },
};

/**
 * Whether the function decides and acts (PutApprovalResult, findings reads, escalation publish). The functions
 * that decide are exactly those that read the policy, so this is `READS_POLICY`, not a second list: the
 * permissions to act and the policy to act on cannot go to different functions.
 */
function decides(name: FunctionName): boolean {
  return READS_POLICY.has(name);
}

/** `tollgate evaluate` reads at most this much of a policy file before the loader sees it. */
const POLICY_READ_LIMIT = 2 * 1024 * 1024;

/**
 * Reads and validates the policy as `tollgate evaluate` does (cli/evaluate.ts: the same read limit, the same
 * messages for a file that cannot be read, then `parsePolicy`), so a policy refused here is refused there in
 * the same words, and the other way round.
 */
export function loadPolicyFile(file: string): LoadedPolicy {
  const what = 'policy';
  let bytes: Buffer;
  try {
    const path = resolve(file);
    const { size } = statSync(path);
    if (size > POLICY_READ_LIMIT) {
      throw new InputError([
        {
          file,
          path: '',
          expected: `a ${what} file of at most ${POLICY_READ_LIMIT} bytes`,
          got: `${size} bytes`,
        },
      ]);
    }
    bytes = readFileSync(path);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError([{ file, path: '', expected: `a readable ${what} file`, got: unreadable(e) }]);
  }
  return parsePolicy(bytes, file);
}

const EMAIL = /^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$/;

/** Where the construct is: the stack's region and its partition, when the region is known (not a token). */
export interface TollgatePlace {
  readonly region: string;
  readonly partition: string | undefined;
}

/** Why a topic must be in the stack's region, by prop (the stack's context check says the same). */
export const SAME_REGION: Readonly<Record<'escalation' | 'alarms', string>> = {
  escalation:
    "the functions publish escalations with their own region's SNS client, and SNS refuses another region's topic",
  alarms: "a CloudWatch alarm's actions must be in the alarm's region",
};

function checkTarget(key: string, target: unknown, place: TollgatePlace | undefined): NotificationTarget {
  const expected = '{ emails: [one or more addresses] } or { topic: an SNS topic }';
  if (typeof target !== 'object' || target === null)
    throw new TollgateConfigError(key, expected, shown(target));
  const t = target as { emails?: unknown; topic?: unknown };
  if ('topic' in t && t.topic !== undefined) {
    if ('emails' in t && t.emails !== undefined) {
      throw new TollgateConfigError(key, expected, 'both emails and a topic');
    }
    const topic = t.topic as Partial<sns.ITopic>;
    if (typeof topic.topicArn !== 'string')
      throw new TollgateConfigError(`${key}.topic`, 'an SNS topic', 'no topicArn');
    // What SNS would refuse at every publish is refused now, wherever the stack is. A topic named by a token
    // (a CloudFormation parameter, an import) shows only what CDK knows of it: its `fifo`.
    if (!Token.isUnresolved(topic.topicArn)) checkTopicArn(`${key}.topic`, topic.topicArn);
    if (topic.fifo === true) {
      throw new TollgateConfigError(`${key}.topic`, `a standard SNS topic, ${NOT_FIFO}`, 'a FIFO topic');
    }
    if (place !== undefined) {
      const why = SAME_REGION[key === 'alarms' ? 'alarms' : 'escalation'];
      if (!Token.isUnresolved(topic.topicArn)) {
        checkTopicRegion(`${key}.topic`, topic.topicArn, place, why);
      } else {
        // A topic of this app named by token (made in a stack): its stack's region, when known.
        const region = (topic as sns.ITopic).env?.region;
        if (region !== undefined && !Token.isUnresolved(region) && region !== place.region) {
          throw new TollgateConfigError(
            `${key}.topic`,
            `an SNS topic in the stack's region, ${place.region}: ${why}`,
            `a topic in ${region}`,
          );
        }
      }
    }
    return { topic: t.topic as sns.ITopic };
  }
  if (!Array.isArray(t.emails) || t.emails.length === 0) {
    throw new TollgateConfigError(`${key}.emails`, 'one or more email addresses', shown(t.emails));
  }
  const emails: string[] = [];
  t.emails.forEach((e: unknown, i) => {
    if (typeof e !== 'string' || !EMAIL.test(e)) {
      throw new TollgateConfigError(`${key}.emails[${i}]`, 'an email address (name@domain.tld)', shown(e));
    }
    if (!emails.includes(e)) emails.push(e);
  });
  return { emails };
}

/** The props checked and defaulted, before any resource is made. */
export interface TollgateConfig {
  readonly pipelines: readonly string[];
  readonly approvalActionNames: readonly string[];
  readonly eventPatternLimit: number;
  readonly policy: LoadedPolicy;
  readonly escalation: NotificationTarget;
  readonly alarms: NotificationTarget;
  readonly scanSource: ScanSource;
  readonly logRetention: logs.RetentionDays;
  readonly removalPolicy: RemovalPolicy;
  readonly dashboard: boolean;
  readonly archive: boolean;
  readonly archiveRetentionDays: number;
  readonly discoveryMinutes: number;
}

/** `discoveryMinutes` checked: whole minutes from 0 (off) to 60. `key` names the prop or context key. */
export function checkDiscoveryMinutes(key: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > DISCOVERY_MAX_MINUTES) {
    throw new TollgateConfigError(
      key,
      `whole minutes from 0 (off) to ${DISCOVERY_MAX_MINUTES} between two searches for approvals no event announced`,
      shown(value),
    );
  }
  return value;
}

/**
 * `logRetention` checked: a number of days CloudWatch Logs offers (a `logs.RetentionDays` value). Only numbers:
 * `Object.values` of the enum holds its member names too, and `'ONE_YEAR'` would reach CloudFormation as the
 * retention. `key` names the prop or context key.
 */
export function checkLogRetention(key: string, value: unknown): logs.RetentionDays {
  const allowed = Object.values(logs.RetentionDays)
    .filter((v): v is number => typeof v === 'number')
    .sort((a, b) => a - b);
  if (typeof value !== 'number' || !Number.isInteger(value) || !allowed.includes(value)) {
    throw new TollgateConfigError(
      key,
      `whole days, a retention CloudWatch Logs offers (${allowed.filter((d) => d !== logs.RetentionDays.INFINITE).join(', ')}; ${logs.RetentionDays.INFINITE}: kept forever)`,
      shown(value),
    );
  }
  return value as logs.RetentionDays;
}

/**
 * The gated pipelines' and approval actions' globs as the construct will use them: defaulted, checked and
 * normalised, each problem named by its prop. Exported so a caller can check what the gate answers (the app's
 * demo pipeline) before the construct builds and bundles anything.
 */
export function resolveGlobs(
  props: Pick<TollgateProps, 'pipelines' | 'approvalActionNames' | 'eventPatternLimit'>,
): Pick<TollgateConfig, 'pipelines' | 'approvalActionNames'> {
  checkPropsObject(props);
  const pipelines = normaliseGlobs('pipelines', props.pipelines ?? ['*'], 'pipeline name');
  const approvalActionNames = normaliseGlobs(
    'approvalActionNames',
    props.approvalActionNames ?? ['Tollgate*'],
    'approval action name',
  );
  // Every glob is written into the rules' patterns, which EventBridge holds to its event pattern size quota
  // (2048 characters unless the account's is raised).
  const eventPatternLimit = checkEventPatternLimit(
    'eventPatternLimit',
    props.eventPatternLimit ?? MAX_PATTERN_CHARACTERS,
  );
  checkPatternSizes(pipelines, approvalActionNames, eventPatternLimit);
  // And into the deciding roles' PutApprovalResult statement, one ARN per pipeline glob × action glob, which
  // IAM holds to a managed policy's size when CDK moves it out of the role's inline policy.
  checkApprovalPolicySize(pipelines, approvalActionNames);
  return { pipelines, approvalActionNames };
}

/**
 * Props that are no object (a JS caller's `undefined`, props read from a file that holds a list) would fail
 * at the first prop read as a bare TypeError: refused by name instead.
 */
function checkPropsObject(props: unknown): void {
  if (typeof props !== 'object' || props === null || Array.isArray(props)) {
    throw new TollgateConfigError(
      'props',
      'an object of Tollgate props ({ policyFile, escalation, … })',
      shown(props),
    );
  }
}

/**
 * A boolean prop checked: only `true` or `false`. Props from JSON or YAML, or a JS caller, can bring `'false'`
 * (truthy) or `0` (falsy), and either would build the opposite of what was meant: for `archive`, a compliance-mode
 * archive no one can delete for `archiveRetentionDays`, or none at all. (`-c` strings are read by the stack.)
 */
function checkBoolean(key: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TollgateConfigError(key, 'true or false', shown(value));
  return value;
}

/**
 * Validates the props up front, each problem named by its prop: `Tollgate: pipelines[1]: expected …; got
 * …`. A bad policy file throws the loader's own `InputError` (`file:line:col: path: expected …; got …`).
 * With `place` (the stack's region, when known), a topic in another region or partition is refused too.
 */
export function resolveConfig(props: TollgateProps, place?: TollgatePlace): TollgateConfig {
  checkPropsObject(props);
  const { pipelines, approvalActionNames } = resolveGlobs(props);
  if (typeof props.policyFile !== 'string' || props.policyFile === '') {
    throw new TollgateConfigError('policyFile', 'the path of a policy file', shown(props.policyFile));
  }
  const scanSource = props.scanSource ?? 'inspector';
  if (!SCAN_SOURCES.includes(scanSource)) {
    throw new TollgateConfigError('scanSource', `one of ${SCAN_SOURCES.join(', ')}`, shown(scanSource));
  }
  const escalation = checkTarget('escalation', props.escalation, place);
  const alarms = props.alarms === undefined ? escalation : checkTarget('alarms', props.alarms, place);
  const logRetention = checkLogRetention('logRetention', props.logRetention ?? logs.RetentionDays.ONE_YEAR);
  const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
  if (removalPolicy !== RemovalPolicy.RETAIN && removalPolicy !== RemovalPolicy.DESTROY) {
    throw new TollgateConfigError(
      'removalPolicy',
      'RemovalPolicy.RETAIN or RemovalPolicy.DESTROY',
      shown(removalPolicy),
    );
  }
  const dashboard = checkBoolean('dashboard', props.dashboard ?? false);
  const archive = checkBoolean('archive', props.archive ?? true);
  // Last: the policy is the costliest check, and its message is the loader's own.
  const policy = loadPolicyFile(props.policyFile);
  return {
    pipelines,
    approvalActionNames,
    eventPatternLimit: checkEventPatternLimit(
      'eventPatternLimit',
      props.eventPatternLimit ?? MAX_PATTERN_CHARACTERS,
    ),
    policy,
    escalation,
    alarms,
    scanSource,
    logRetention,
    removalPolicy,
    dashboard,
    archive,
    archiveRetentionDays: checkArchiveRetentionDays(
      'archiveRetentionDays',
      props.archiveRetentionDays ?? ARCHIVE_RETENTION_DEFAULT_DAYS,
    ),
    discoveryMinutes: checkDiscoveryMinutes('discoveryMinutes', props.discoveryMinutes ?? 5),
  };
}

/**
 * What an identity policy grants for a topic's `masterKey`: the key's ARN, or, for a key named by an alias,
 * the ARN of the key the alias targets (a `kms.Alias` of the app, or one imported with its `aliasTargetKey`).
 * An alias's `keyArn` is its alias ARN, which KMS never matches against a policy's Resource. An alias imported
 * by name alone (`kms.Alias.fromAliasName`, whose `aliasTargetKey` throws) is granted by that name instead.
 */
function topicKeyGrant(key: kms.IKey): { readonly keyArn: string } | { readonly aliasName: string } {
  const alias = key as Partial<kms.IAlias>;
  if (typeof alias.aliasName !== 'string') {
    // A key imported by an alias's ARN (`fromKeyArn`, or a topic's `keyArn`): IAM does not match key use
    // against an alias ARN in a Resource, so it is granted as the alias imported by name is.
    const named = Token.isUnresolved(key.keyArn) ? undefined : /:(alias\/.+)$/.exec(key.keyArn)?.[1];
    return named === undefined ? { keyArn: key.keyArn } : { aliasName: named };
  }
  let target: kms.IKey | undefined;
  try {
    target = alias.aliasTargetKey;
  } catch {
    target = undefined; // imported by name: its key is not known
  }
  return target ? topicKeyGrant(target) : { aliasName: alias.aliasName };
}

/** A Lambda asynchronous-failure destination whose permission is granted explicitly (SqsDestination grants wildcard KMS actions). */
function queueDestination(queue: sqs.IQueue): lambda.IDestination {
  return { bind: () => ({ destination: queue.queueArn }) };
}

interface RoleAcknowledgement {
  readonly finding: string;
  readonly reason: string;
}

export interface TollgateAlarms {
  /** Events EventBridge could not deliver to a function. */
  readonly undelivered: cloudwatch.Alarm;
  /** Events EventBridge could deliver neither to a function nor to the dead-letter queue: lost but for this. */
  readonly lostEvents: cloudwatch.Alarm;
  /** Events a function failed on after Lambda's retries, by function. */
  readonly failed: Readonly<Record<FunctionName, cloudwatch.Alarm>>;
  /** Invocation errors, by function. */
  readonly errors: Readonly<Record<FunctionName, cloudwatch.Alarm>>;
  /**
   * Failed events Lambda could not send to the function's failed-events queue (`DestinationDeliveryFailures`),
   * by function: dropped, so the queue's depth never shows them.
   */
  readonly undeliveredFailures: Readonly<Record<FunctionName, cloudwatch.Alarm>>;
  /** Gates waiting past their deadline plus a margin; missing data (no sweep) breaches. */
  readonly gatesOverdue: cloudwatch.Alarm;
  /** The oldest waiting gate older than the policy's waitMinutes plus the margin. */
  readonly oldestWaiting: cloudwatch.Alarm;
  /** Escalation or alarm emails SNS gave up delivering (when Tollgate subscribes the addresses). */
  readonly undeliveredNotifications: cloudwatch.Alarm | undefined;
  /**
   * An approval resolved under Tollgate's own role with a result Tollgate did not send
   * (`ApprovalResultsUnderTollgateRole`): someone borrowed the gate's identity to let a release through.
   */
  readonly borrowedRole: cloudwatch.Alarm;
  /** The deployed policy failed to load (`PolicyInvalid`): every decision escalates until it is fixed. */
  readonly policyInvalid: cloudwatch.Alarm;
}

/**
 * Tollgate: the event-driven security gate for CodePipeline Manual approvals, as one construct. See
 * `infra/README.md` for the resources, the permissions and why.
 */
export class Tollgate extends Construct {
  readonly config: TollgateConfig;
  /** The policy's `settings.scan.waitMinutes`: the overdue alarm's basis. */
  readonly waitMinutes: number;
  /** The one customer-managed key: table, topics and queues. */
  readonly key: kms.Key;
  readonly table: dynamodb.Table;
  /** Where escalations are published. */
  readonly topic: sns.ITopic;
  /** Where the alarms go. */
  readonly alarmTopic: sns.ITopic;
  readonly functions: Readonly<Record<FunctionName, nodejs.NodejsFunction>>;
  readonly roles: Readonly<Record<FunctionName, iam.Role>>;
  readonly rules: Readonly<Partial<Record<RuleName | 'sweepSchedule', events.Rule>>>;
  /** The dead-letter queue of every rule target: events EventBridge could not deliver. */
  readonly undeliveredQueue: sqs.Queue;
  /** Per function, the events it failed on after Lambda's retries (its on-failure destination). */
  readonly failedQueues: Readonly<Record<FunctionName, sqs.Queue>>;
  /**
   * The dead-letter queue of the email subscriptions Tollgate makes (escalations and alarms): messages SNS
   * gave up delivering. None when both topics are your own, or no address is given.
   */
  readonly undeliveredNotificationsQueue: sqs.Queue | undefined;
  readonly alarms: TollgateAlarms;
  /**
   * Where this deployment's metrics are (`Tollgate`, and `service` = `metricsServiceOf(this)`), for alarms and
   * dashboards of your own: another deployment in the account and region has another `service`.
   */
  readonly metrics: TollgateMetrics;
  readonly dashboard: cloudwatch.Dashboard | undefined;
  /** The audit archive: bucket, function, Glue table, Athena workgroup (unless the `archive` prop is false). */
  readonly archive: TollgateArchive | undefined;

  constructor(scope: Construct, id: string, props: TollgateProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { account, region, partition } = stack;
    const config = resolveConfig(
      props,
      Token.isUnresolved(region) ? undefined : { region, partition: RegionInfo.get(region).partition },
    );
    this.config = config;
    // Before any resource: CDK sizes a role's inline policy estimating each ARN that holds a token at 150
    // characters (its `@aws-cdk/aws-iam.arnSizeEstimate`), and moves what does not fit into managed policies.
    // An ARN of long globs is longer than that: unraised, the estimate keeps in the inline policy statements
    // that IAM then finds over its 10,240 characters, at deploy. Raised for this construct's roles only.
    const arnEstimate = longestGlobArn(config.pipelines, config.approvalActionNames);
    const estimated = this.node.tryGetContext(ARN_SIZE_ESTIMATE) ?? CDK_ARN_SIZE_ESTIMATE;
    if (typeof estimated === 'number' && arnEstimate > estimated) {
      this.node.setContext(ARN_SIZE_ESTIMATE, arnEstimate);
    }
    this.metrics = { namespace: METRICS_NAMESPACE, service: metricsServiceOf(this) };
    this.waitMinutes = config.policy.policy.settings.scan.waitMinutes;
    const destroy = config.removalPolicy === RemovalPolicy.DESTROY;

    // ── encryption ──────────────────────────────────────────────────────────────────────────────────
    this.key = new kms.Key(this, 'Key', {
      description: `Tollgate ${stack.stackName}/${id}: the gate table, its topics and queues`,
      enableKeyRotation: true,
      removalPolicy: config.removalPolicy,
      ...(destroy ? { pendingWindow: Duration.days(7) } : {}),
    });
    // Services that write to the encrypted queues and topics on Tollgate's behalf, from this account only.
    this.allowService('events.amazonaws.com', `arn:${partition}:events:${region}:${account}:rule/*`);
    // CloudWatch only when the alarms go to the topic Tollgate makes for them (alarm emails), encrypted with this
    // key: a topic you pass has its own key, and the escalation topic Tollgate makes receives no alarm.
    if ('emails' in config.alarms) {
      this.allowService(
        'cloudwatch.amazonaws.com',
        `arn:${partition}:cloudwatch:${region}:${account}:alarm:*`,
      );
    }
    allowCloudWatchLogs(this.key, "Tollgate's log groups");

    // ── store ───────────────────────────────────────────────────────────────────────────────────────
    this.table = this.createTable(config.removalPolicy);

    // ── notifications ───────────────────────────────────────────────────────────────────────────────
    // An escalation email SNS cannot deliver would leave a release waiting for a person who never hears of
    // it: SNS keeps what it gives up on here, and the queue's depth pages someone (through the alarm topic,
    // or in the console when that is what failed).
    const subscribes = [config.escalation, config.alarms].some((t) => 'emails' in t && t.emails.length > 0);
    this.undeliveredNotificationsQueue = subscribes ? this.queue('UndeliveredNotifications') : undefined;
    // SNS writes to that encrypted queue with the key. Only aws:SourceArn (this account's topics): the key
    // cannot name the topics, which are encrypted with it (a cycle).
    if (subscribes)
      this.allowService('sns.amazonaws.com', `arn:${partition}:sns:${region}:${account}:*`, false);
    this.topic = this.notificationTopic('EscalationTopic', 'Tollgate escalations', config.escalation);
    this.alarmTopic = this.notificationTopic('AlarmTopic', 'Tollgate alarms', config.alarms);

    // ── queues ──────────────────────────────────────────────────────────────────────────────────────
    this.undeliveredQueue = this.queue('UndeliveredEvents');
    const failed: Partial<Record<FunctionName, sqs.Queue>> = {};
    for (const name of FUNCTION_NAMES) failed[name] = this.queue(`${pascal(name)}FailedEvents`);
    this.failedQueues = failed as Record<FunctionName, sqs.Queue>;

    // ── functions ───────────────────────────────────────────────────────────────────────────────────
    const arns: ArnConfig = {
      partition,
      region,
      account,
      pipelines: config.pipelines,
      approvalActionNames: config.approvalActionNames,
    };
    const roles: Partial<Record<FunctionName, iam.Role>> = {};
    for (const name of FUNCTION_NAMES) {
      roles[name] = new iam.Role(this, `${pascal(name)}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `Tollgate ${name}: only what this function calls`,
      });
    }
    this.roles = roles as Record<FunctionName, iam.Role>;
    // CloudTrail names the caller's role: approval-ended recognises Tollgate's own PutApprovalResult calls.
    const ownRoles = FUNCTION_NAMES.filter(decides).map((n) => this.roles[n].roleName);

    const fns: Partial<Record<FunctionName, nodejs.NodejsFunction>> = {};
    for (const name of FUNCTION_NAMES) {
      fns[name] = this.createFunction(name, config, arns, ownRoles);
    }
    this.functions = fns as Record<FunctionName, nodejs.NodejsFunction>;

    // ── rules ───────────────────────────────────────────────────────────────────────────────────────
    this.rules = this.createRules(config);

    // ── alarms ──────────────────────────────────────────────────────────────────────────────────────
    this.alarms = this.createAlarms();

    // ── audit archive ───────────────────────────────────────────────────────────────────────────────
    this.archive = config.archive
      ? new TollgateArchive(this, 'Archive', {
          table: this.table,
          tableKey: this.key,
          alarmTopic: this.alarmTopic,
          retentionDays: config.archiveRetentionDays,
          logRetention: config.logRetention,
          removalPolicy: config.removalPolicy,
          metrics: this.metrics,
        })
      : undefined;

    // ── dashboard ───────────────────────────────────────────────────────────────────────────────────
    // After the archive: it shows the archive's function, queue and alarms beside the gate's.
    this.dashboard = config.dashboard ? this.createDashboard() : undefined;

    this.acknowledgeQueues();
  }

  private allowService(service: string, sourceArn: string, sourceAccount = true): void {
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: `Allow ${service.split('.')[0]} to encrypt for Tollgate's queues and topics`,
        principals: [new iam.ServicePrincipal(service)],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
        conditions: {
          ...(sourceAccount ? { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } } : {}),
          ArnLike: { 'aws:SourceArn': sourceArn },
        },
      }),
    );
  }

  private createTable(removalPolicy: RemovalPolicy): dynamodb.Table {
    const def = TABLE_DEFINITION;
    const attribute = (name: string | undefined): dynamodb.Attribute => {
      const found = def.AttributeDefinitions.find((a) => a.AttributeName === name);
      if (!name || !found) throw new Error(`TABLE_DEFINITION: key attribute ${name} is not defined`);
      const type = {
        S: dynamodb.AttributeType.STRING,
        N: dynamodb.AttributeType.NUMBER,
        B: dynamodb.AttributeType.BINARY,
      }[found.AttributeType ?? 'S'];
      return { name, type };
    };
    const keyOf = (schema: readonly KeySchemaElement[]) => {
      const hash = schema.find((k) => k.KeyType === 'HASH');
      const range = schema.find((k) => k.KeyType === 'RANGE');
      return {
        partitionKey: attribute(hash?.AttributeName),
        ...(range ? { sortKey: attribute(range.AttributeName) } : {}),
      };
    };
    if (def.BillingMode !== 'PAY_PER_REQUEST')
      throw new Error('TABLE_DEFINITION: only on-demand billing is built');
    const table = new dynamodb.Table(this, 'Table', {
      ...keyOf(def.KeySchema),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.key,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // Only finished audit-pending markers carry it: DynamoDB removes them, so no role needs DeleteItem.
      timeToLiveAttribute: TTL_ATTRIBUTE,
      // Decision records are the audit trail: the table outlives a mistaken stack deletion, unless the
      // removal policy says this is a sandbox.
      deletionProtection: removalPolicy !== RemovalPolicy.DESTROY,
      removalPolicy,
      // Audit records reach the archive through the stream: new images only (they are written once).
      ...(this.config.archive ? { stream: dynamodb.StreamViewType.NEW_IMAGE } : {}),
    });
    for (const gsi of def.GlobalSecondaryIndexes) {
      if (gsi.Projection?.ProjectionType !== 'ALL')
        throw new Error(`TABLE_DEFINITION: ${gsi.IndexName} must project ALL`);
      table.addGlobalSecondaryIndex({
        indexName: gsi.IndexName ?? '',
        ...keyOf(gsi.KeySchema ?? []),
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }
    return table;
  }

  private notificationTopic(id: string, displayName: string, target: NotificationTarget): sns.ITopic {
    if ('topic' in target) return target.topic;
    const topic = new sns.Topic(this, id, { displayName, masterKey: this.key, enforceSSL: true });
    if (id === 'AlarmTopic') {
      // The topic policy replaces SNS's default one: CloudWatch must be let in, for this account's alarms only.
      const { partition, region, account } = Stack.of(this);
      topic.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: 'AllowAlarms',
          principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
          actions: ['sns:Publish'],
          resources: [topic.topicArn],
          conditions: {
            StringEquals: { 'aws:SourceAccount': account },
            ArnLike: { 'aws:SourceArn': `arn:${partition}:cloudwatch:${region}:${account}:alarm:*` },
          },
        }),
      );
    }
    // CDK's subscription adds the queue policy: SendMessage for SNS, from this topic only.
    const deadLetterQueue = this.undeliveredNotificationsQueue;
    for (const email of target.emails)
      topic.addSubscription(
        new subscriptions.EmailSubscription(email, deadLetterQueue ? { deadLetterQueue } : {}),
      );
    return topic;
  }

  private queue(id: string): sqs.Queue {
    return new sqs.Queue(this, id, {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: this.key,
      // Five minutes of key reuse: KMS calls stay few when a burst of failures arrives.
      dataKeyReuse: Duration.minutes(5),
      enforceSSL: true,
      // The longest SQS keeps a message: time to notice the alarm, find the cause and replay.
      retentionPeriod: Duration.days(14),
      removalPolicy: this.config.removalPolicy,
    });
  }

  private createFunction(
    name: FunctionName,
    config: TollgateConfig,
    arns: ArnConfig,
    ownRoles: readonly string[],
  ): nodejs.NodejsFunction {
    const spec = FUNCTIONS[name];
    const id = pascal(name);
    const role = this.roles[name];
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      encryptionKey: this.key,
      retention: config.logRetention,
      removalPolicy: config.removalPolicy,
    });
    const failedQueue = this.failedQueues[name];
    const acks = this.grant(name, role, logGroup, failedQueue, arns);

    const fn = new nodejs.NodejsFunction(this, id, {
      entry: FUNCTION_ENTRIES[name],
      handler: 'handler',
      projectRoot: ROOT,
      depsLockFilePath: join(ROOT, 'package-lock.json'),
      description: spec.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: spec.memoryMb,
      timeout: spec.timeout,
      role,
      logGroup,
      tracing: lambda.Tracing.ACTIVE,
      environment: {
        TOLLGATE_TABLE: this.table.tableName,
        TOLLGATE_OWN_ROLES: Fn.join(',', [...ownRoles]),
        ...(decides(name)
          ? { TOLLGATE_SCAN_SOURCE: config.scanSource, TOLLGATE_TOPIC_ARN: this.topic.topicArn }
          : {}),
        // The sweep's discovery looks through the pipelines and approvals the event rules match.
        ...(name === 'sweep'
          ? {
              TOLLGATE_PIPELINES: JSON.stringify(config.pipelines),
              TOLLGATE_APPROVAL_ACTIONS: JSON.stringify(config.approvalActionNames),
              TOLLGATE_DISCOVERY_MINUTES: String(config.discoveryMinutes),
            }
          : {}),
        POWERTOOLS_SERVICE_NAME: this.metrics.service,
        POWERTOOLS_METRICS_NAMESPACE: this.metrics.namespace,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
      },
      // The policy validated above travels with the code of the functions that decide, as policy.json.
      bundling: decides(name) ? { ...BUNDLING, commandHooks: policyBundleHook(config.policy) } : BUNDLING,
      retryAttempts: spec.retryAttempts,
      maxEventAge: spec.maxEventAge,
      onFailure: queueDestination(failedQueue),
    });
    // The role's policy must exist before Lambda checks the destination and the log group on create.
    fn.node.addDependency(role);
    for (const ack of acks) {
      Validations.of(role).acknowledge({ id: `AwsSolutions-IAM5[${ack.finding}]`, reason: ack.reason });
    }
    Validations.of(fn).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'nodejs22.x is pinned on purpose: it is the runtime the bundles target (esbuild target node22) and the ' +
        'Node line the gate is tested on; moving to a newer runtime is a tested change, not a silent default.',
    });
    return fn;
  }

  /**
   * The function's role: one statement per service, actions written out (no wildcard actions, no managed
   * policies). Returns the cdk-nag findings the wildcards that remain raise, each with its reason.
   */
  private grant(
    name: FunctionName,
    role: iam.Role,
    logGroup: logs.LogGroup,
    failedQueue: sqs.Queue,
    arns: ArnConfig,
  ): RoleAcknowledgement[] {
    const spec = FUNCTIONS[name];
    const { partition, region, account } = Stack.of(this);
    const acks: RoleAcknowledgement[] = [];
    const add = (sid: string, actions: string[], resources: string[], conditions?: Record<string, unknown>) =>
      role.addToPolicy(
        new iam.PolicyStatement({ sid, actions, resources, ...(conditions ? { conditions } : {}) }),
      );

    add('Logs', ['logs:CreateLogStream', 'logs:PutLogEvents'], [logGroup.logGroupArn]);

    // No UpdateItem: every write is a whole-item Put, most with a condition (decisions and audit records
    // are written once). TransactWriteItems is authorised per item as PutItem. No BatchWriteItem either:
    // IAM cannot tell its puts from its deletes, so the audit index items (VULN#) go out in transactions.
    add('Table', ['dynamodb:GetItem', 'dynamodb:PutItem'], [this.table.tableArn]);
    if (decides(name)) {
      // Finished markers are overwritten as done (a Put) and expire by the table's TTL: no DeleteItem.
      if (name === 'sweep') {
        add('AuditPendingMarkers', ['dynamodb:Query'], [this.table.tableArn], {
          'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['AUDIT-PENDING'] },
        });
      }
    }
    const indexes = [...spec.indexes, ...(this.discovers(name) ? (spec.discoveryIndexes ?? []) : [])];
    if (indexes.length > 0) {
      add(
        'TableIndexes',
        ['dynamodb:Query'],
        indexes.map((index) => `${this.table.tableArn}/index/${index}`),
      );
    }

    // The key only through the services that hold Tollgate's data. SNS only when the escalation topic is
    // Tollgate's own (it made it, for the emails), encrypted with this key; a topic you pass has its own key.
    const ownTopic = 'emails' in this.config.escalation;
    const via = ['dynamodb', 'sqs', ...(decides(name) && ownTopic ? ['sns'] : [])];
    add('Key', ['kms:Decrypt', 'kms:GenerateDataKey'], [this.key.keyArn], {
      StringEquals: { 'kms:ViaService': via.map((s) => `${s}.${region}.amazonaws.com`) },
    });

    add('FailedEvents', ['sqs:SendMessage'], [failedQueue.queueArn]);
    add(
      'TollgateEvents',
      ['events:PutEvents'],
      [`arn:${partition}:events:${region}:${account}:event-bus/default`],
      {
        StringEquals: { 'events:source': [EVENT_SOURCE] },
      },
    );

    if (decides(name)) {
      add('Escalate', ['sns:Publish'], [this.topic.topicArn]);
      // Publishing to a topic encrypted with a KMS key takes that key (SNS encrypts the message with the
      // publisher's permissions): the key of the topic you pass, whether made in your stack (its `masterKey`)
      // or imported with its key ARN (`Topic.fromTopicAttributes({ topicArn, keyArn })`). Only through SNS.
      // A key named by an alias (`masterKey: key.addAlias('alias/secops')`, `kms.Alias.fromAliasName`) is
      // granted as the key it names: KMS authorises no use of a key by its alias ARN in a policy's Resource.
      const topicKey = this.topic.masterKey ? topicKeyGrant(this.topic.masterKey) : undefined;
      if (topicKey && !ownTopic) {
        const viaSns = { StringEquals: { 'kms:ViaService': `sns.${region}.amazonaws.com` } };
        if ('keyArn' in topicKey) {
          add('EscalationTopicKey', ['kms:Decrypt', 'kms:GenerateDataKey'], [topicKey.keyArn], viaSns);
        } else {
          // An alias imported without its key: any key of this account and region that carries the alias.
          const anyKey = `arn:${partition}:kms:${region}:${account}:key/*`;
          add('EscalationTopicKey', ['kms:Decrypt', 'kms:GenerateDataKey'], [anyKey], {
            ...viaSns,
            'ForAnyValue:StringEquals': { 'kms:ResourceAliases': topicKey.aliasName },
          });
          const alias = Token.isUnresolved(topicKey.aliasName) ? 'its alias' : topicKey.aliasName;
          acks.push({
            finding: `Resource::${nagArn(anyKey)}`,
            reason:
              `The escalation topic's KMS key is known only by ${alias} (an alias imported without its key), and ` +
              'IAM cannot name a key by its alias in a Resource: the key is any key of this account and region ' +
              'whose aliases include it (kms:ResourceAliases), for kms:Decrypt and kms:GenerateDataKey through SNS ' +
              'only (kms:ViaService), which publishing to that encrypted topic takes.',
          });
        }
      }

      const approvals = approvalActionArns(arns);
      add(APPROVAL_STATEMENT_SID, [APPROVAL_ACTION], approvals);
      const pipelines = pipelineArns(arns);
      // Only a gate's opening reads the execution (its variables, and whether a tag can name its image:
      // `GateService.identify`), on the approval's start or when the sweep's discovery opens it for a lost start.
      const opensGates = name === 'approval-started' || this.discovers(name);
      add(
        'ReadPipelines',
        [
          'codepipeline:GetPipelineState',
          ...(opensGates ? ['codepipeline:GetPipelineExecution'] : []),
          'codepipeline:ListActionExecutions',
          // Discovery lists a PARALLEL-mode pipeline's executions: its state names none.
          ...(this.discovers(name) ? ['codepipeline:ListPipelineExecutions'] : []),
        ],
        pipelines,
      );
      // Discovery lists the account's pipelines: the globs are matched against it, and it gives their modes.
      const listsPipelines = name === 'sweep' && this.lists();
      if (listsPipelines) add('FindPipelines', ['codepipeline:ListPipelines'], ['*']);
      const everyPipeline = this.config.pipelines.includes('*');
      const globs = `pipelines ${JSON.stringify(this.config.pipelines)}, approvalActionNames ${JSON.stringify(this.config.approvalActionNames)}`;
      for (const arn of [...approvals, ...pipelines].filter((a) => a.includes('*'))) {
        acks.push({
          finding: `Resource::${nagArn(arn)}`,
          reason: everyPipeline
            ? `The gated pipelines are configured as "*": Tollgate gates every pipeline of the account (${globs}). ` +
              'PutApprovalResult stays limited to approval actions whose names match the configured globs in any stage; ' +
              'narrow it with the pipelines prop (tollgate:pipelines).'
            : `The gated pipelines and approval actions are configured as name globs (${globs}); an ARN wildcard is that glob, ` +
              'covering exactly the pipelines and actions Tollgate gates (the stage is any: the approval may sit in any stage).',
        });
      }

      // A tag in CustomData is resolved to its digest, or a digest checked (an image ECR has, not an index),
      // once, when the gate opens: on the approval's start, or when the sweep's discovery opens it for a lost
      // start. (The Sid is kept from when only tags were looked up: a deployed policy keeps its statement.)
      if (opensGates) {
        add(
          'ResolveTags',
          ['ecr:DescribeImages'],
          [`arn:${partition}:ecr:${region}:${account}:repository/*`],
        );
      }
      if (this.config.scanSource === 'ecr') {
        add(
          'ReadEcrFindings',
          ['ecr:DescribeImageScanFindings'],
          [`arn:${partition}:ecr:${region}:${account}:repository/*`],
        );
      } else {
        add('ReadInspectorFindings', ['inspector2:ListFindings', 'inspector2:ListCoverage'], ['*']);
      }
      if (opensGates || this.config.scanSource === 'ecr') {
        acks.push({
          finding: `Resource::${nagArn(`arn:${partition}:ecr:${region}:${account}:repository/*`)}`,
          reason:
            'The image a pipeline deploys is named at run time by its approval CustomData, in any ECR repository of ' +
            'this account; only read-only image actions (DescribeImages / DescribeImageScanFindings) are granted on them.',
        });
      }
    }

    const star = [
      'xray:PutTraceSegments and xray:PutTelemetryRecords (added by Lambda active tracing)',
      ...(decides(name) && this.config.scanSource === 'inspector'
        ? ['inspector2:ListFindings and inspector2:ListCoverage']
        : []),
      ...(name === 'sweep' && this.lists() ? ['codepipeline:ListPipelines'] : []),
    ];
    acks.push({
      finding: 'Resource::*',
      reason: `Resource "*" is granted only for actions that support no resource-level permissions in IAM: ${star.join('; ')}.`,
    });
    return acks;
  }

  /** Whether this function is the sweep and its discovery of approvals no event announced is on. */
  private discovers(name: FunctionName): boolean {
    return name === 'sweep' && this.config.discoveryMinutes > 0;
  }

  /**
   * Whether the sweep's discovery runs, and so lists the account's pipelines: to match a glob with a wildcard,
   * and for every pipeline's execution mode (only PARALLEL mode's approvals need the executions listed).
   */
  private lists(): boolean {
    return this.discovers('sweep');
  }

  private createRules(config: TollgateConfig): Partial<Record<RuleName | 'sweepSchedule', events.Rule>> {
    const { account, region, partition } = Stack.of(this);
    const patterns = rulePatterns({
      account,
      // A literal where the region says it, so the stored pattern is plain JSON (a token becomes Fn::Join).
      partition: Token.isUnresolved(region) ? partition : (RegionInfo.get(region).partition ?? partition),
      pipelines: config.pipelines,
      approvalActionNames: config.approvalActionNames,
      scanSource: config.scanSource,
    });
    const descriptions: Record<RuleName, string> = {
      approvalStarted: 'Tollgate: a gated Manual approval started',
      approvalEnded: 'Tollgate: a gated Manual approval ended',
      approvalResultCall: 'Tollgate: CloudTrail recorded who answered a gated approval (PutApprovalResult)',
      inspectorScan: 'Tollgate: Amazon Inspector finished scanning an ECR image',
      ecrScan: 'Tollgate: ECR basic scanning finished scanning an image',
    };
    const rules: Partial<Record<RuleName | 'sweepSchedule', events.Rule>> = {};
    for (const [ruleName, pattern] of Object.entries(patterns) as [RuleName, EventPattern][]) {
      const rule = new events.Rule(this, `${pascal(ruleName)}Rule`, {
        description: descriptions[ruleName],
        eventPattern: toCdkPattern(pattern),
      });
      rule.addTarget(this.target(RULE_TARGETS[ruleName], Duration.hours(2), 8));
      rules[ruleName] = rule;
    }
    const sweep = new events.Rule(this, 'SweepScheduleRule', {
      description: 'Tollgate: run the sweep every minute',
      schedule: events.Schedule.rate(Duration.minutes(1)),
    });
    // A sweep tick that cannot be delivered within a few minutes is superseded by the next one.
    sweep.addTarget(this.target('sweep', Duration.minutes(5), 2));
    rules.sweepSchedule = sweep;
    return rules;
  }

  private target(name: FunctionName, maxEventAge: Duration, retryAttempts: number): targets.LambdaFunction {
    // The target adds the Lambda permission for this rule's ARN only, and the queue policy for this rule.
    return new targets.LambdaFunction(this.functions[name], {
      deadLetterQueue: this.undeliveredQueue,
      maxEventAge,
      retryAttempts,
    });
  }

  private createAlarms(): TollgateAlarms {
    const action = new cwActions.SnsAction(this.alarmTopic);
    const alarm = (id: string, props: cloudwatch.AlarmProps, okAction = false): cloudwatch.Alarm => {
      const a = new cloudwatch.Alarm(this, id, props);
      a.addAlarmAction(action);
      if (okAction) a.addOkAction(action);
      return a;
    };
    const depth = (id: string, queue: sqs.Queue, what: string, replay = 'replay them') =>
      alarm(id, {
        alarmDescription: `Tollgate: ${what}. Read the messages in the queue, fix the cause, then ${replay}.`,
        metric: queue.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(1),
          statistic: 'Maximum',
        }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });

    // What mends a function's failures without a replay. The sweep asks CodePipeline about an ACTED gate, or
    // one given up STALE before its end was seen, 15 minutes after, then as long as the approval runs at
    // intervals of a quarter of its age, 15 minutes to 6 hours (shared/gate/reconcile.ts, reconcileInterval).
    const swept: Record<FunctionName, string> = {
      'approval-started':
        this.config.discoveryMinutes > 0
          ? `the sweep's discovery opens the gates it did not, within ${this.config.discoveryMinutes} minutes`
          : 'discovery is off, so nothing opens the gates it did not',
      'scan-finished': 'the sweep reads the scan and findings of every waiting gate itself, and decides them',
      'approval-ended':
        'the sweep closes the gates it did not (and records the end of those it gave up STALE) when it next asks ' +
        "CodePipeline's listing (15 minutes after acting or giving up, then at intervals of a quarter of the " +
        "approval's age, at most 6 hours), and names their reviewers from the listing (updatedBy), without " +
        "CloudTrail's identity type and source identity",
      sweep: 'the next sweep, a minute later, takes up the gates',
    };
    const replay = "replay its failed events (see that queue's alarm)";
    const repairs: Record<FunctionName, string> = {
      'approval-started':
        this.config.discoveryMinutes > 0
          ? `${swept['approval-started']}; or ${replay}`
          : `${swept['approval-started']}: ${replay}`,
      'scan-finished': swept['scan-finished'],
      'approval-ended': `${swept['approval-ended']}: for those, ${replay}`,
      sweep: swept.sweep,
    };
    // A failed event Lambda could not put in the function's queue has nothing to replay.
    const unreplayed: Record<FunctionName, string> = {
      ...swept,
      'approval-started':
        this.config.discoveryMinutes > 0
          ? swept['approval-started']
          : `${swept['approval-started']}: answer their approvals in CodePipeline`,
    };
    const failed: Partial<Record<FunctionName, cloudwatch.Alarm>> = {};
    const errors: Partial<Record<FunctionName, cloudwatch.Alarm>> = {};
    const undeliveredFailures: Partial<Record<FunctionName, cloudwatch.Alarm>> = {};
    for (const name of FUNCTION_NAMES) {
      const id = pascal(name);
      failed[name] = depth(
        `${id}FailedEventsAlarm`,
        this.failedQueues[name],
        `${name} failed on events after Lambda's retries`,
        // Each message is Lambda's destination record; the function unwraps one and handles its event.
        `invoke ${this.functions[name].functionName} with each message's body (a destination record is unwrapped)`,
      );
      errors[name] = alarm(`${id}ErrorsAlarm`, {
        alarmDescription: `Tollgate: ${name} is failing. Its log group has the errors. Once it works again, ${repairs[name]}.`,
        metric: this.functions[name].metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
        ...PAGES_ON_ANY,
      });
      // Lambda drops a failed event it cannot send to the on-failure destination (a permission on the queue or
      // its key, the record's size) and says so only by this metric: the queue's depth alarm never sees it.
      undeliveredFailures[name] = alarm(`${id}DestinationDeliveryFailuresAlarm`, {
        alarmDescription:
          `Tollgate: Lambda could not put events ${name} failed on into its failed-events queue (its role's ` +
          'sqs:SendMessage or kms:GenerateDataKey refused, or the record too large): they are lost, with nothing ' +
          `to replay. ${name}'s log group has the failed invocations; ${unreplayed[name]}. Check the role, the ` +
          "queue's policy and the key's.",
        metric: this.functions[name].metric('DestinationDeliveryFailures', {
          period: Duration.minutes(5),
          statistic: 'Sum',
        }),
        ...PAGES_ON_ANY,
      });
    }

    const gatesOverdue = alarm(
      'GatesOverdueAlarm',
      {
        alarmDescription:
          `Tollgate: a gate has waited past its deadline plus ${OVERDUE_MARGIN_MINUTES} minutes, or was decided and its ` +
          'result or escalation still could not be sent (see ActFailures and the sweep logs), or the sweep has ' +
          'published nothing for 5 minutes. Auto-approval may have stopped: check the sweep and the pending approvals.',
        metric: this.tollgateMetric('GatesOverdue', 'Maximum'),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        // The sweep publishes every minute; silence means it stopped, and that must page someone.
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      },
      true,
    );
    const oldestWaiting = alarm('OldestWaitingAlarm', {
      alarmDescription:
        `Tollgate: the oldest waiting gate has waited more than the policy's waitMinutes (${this.waitMinutes}) plus ` +
        `${OVERDUE_MARGIN_MINUTES} minutes: its timeout (scan.onTimeout) was not applied.`,
      metric: this.tollgateMetric('OldestWaitingMinutes', 'Maximum'),
      threshold: this.waitMinutes + OVERDUE_MARGIN_MINUTES,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      // GatesOverdue already pages for a silent sweep; one page is enough.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const borrowedRole = alarm('BorrowedRoleAlarm', {
      alarmDescription:
        "Tollgate: an approval was resolved under Tollgate's own role with a result Tollgate did not send (an " +
        'escalation approved, or its decision turned round). The audit trail records it as a reviewer under the ' +
        "role; approval-ended's log names the gate and the identity: find in CloudTrail who assumed the role.",
      metric: this.tollgateMetric('ApprovalResultsUnderTollgateRole', 'Sum'),
      ...PAGES_ON_ANY,
    });
    const policyInvalid = alarm('PolicyInvalidAlarm', {
      alarmDescription:
        "Tollgate: the deciding functions cannot load their policy (policy.json): every decision escalates. Their logs' " +
        'cold-start error names the problem; fix the policy and deploy again.',
      metric: this.tollgateMetric('PolicyInvalid', 'Sum'),
      ...PAGES_ON_ANY,
    });
    return {
      borrowedRole,
      policyInvalid,
      undelivered: depth(
        'UndeliveredEventsAlarm',
        this.undeliveredQueue,
        'EventBridge could not deliver events to a function',
      ),
      lostEvents: alarm('LostEventsAlarm', {
        alarmDescription:
          'Tollgate: EventBridge could deliver an event neither to its function nor to the dead-letter queue ' +
          '(the queue or its key refused it): the event is gone. The sweep still decides the waiting gates it ' +
          "concerns, but a lost approval start is found only by the sweep's discovery (when on), and a lost " +
          "approval end or PutApprovalResult record only by the sweep asking CodePipeline's listing (15 minutes " +
          'after the gate acted, was given up or ended, then while the approval runs at intervals of a quarter of ' +
          "its age, at most 6 hours; the reviewer then without CloudTrail's identity type). Check the " +
          "undelivered-events queue's policy and the key's.",
        metric: new cloudwatch.MathExpression({
          expression: `SUM([${Object.keys(this.rules)
            .map((_, i) => `m${i}`)
            .join(',')}])`,
          usingMetrics: Object.fromEntries(
            Object.values(this.rules).map((rule, i) => [
              `m${i}`,
              new cloudwatch.Metric({
                namespace: 'AWS/Events',
                metricName: 'InvocationsFailedToBeSentToDlq',
                dimensionsMap: { RuleName: rule.ruleName },
                statistic: 'Sum',
                period: Duration.minutes(5),
              }),
            ]),
          ),
          label: 'events lost (not delivered, not dead-lettered)',
          period: Duration.minutes(5),
        }),
        ...PAGES_ON_ANY,
      }),
      failed: failed as Record<FunctionName, cloudwatch.Alarm>,
      errors: errors as Record<FunctionName, cloudwatch.Alarm>,
      undeliveredFailures: undeliveredFailures as Record<FunctionName, cloudwatch.Alarm>,
      gatesOverdue,
      oldestWaiting,
      undeliveredNotifications: this.undeliveredNotificationsQueue
        ? depth(
            'UndeliveredNotificationsAlarm',
            this.undeliveredNotificationsQueue,
            'SNS gave up delivering an escalation or alarm email (a person was not told)',
          )
        : undefined,
    };
  }

  private tollgateMetric(metricName: string, statistic: string): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.metrics.namespace,
      metricName,
      dimensionsMap: { service: this.metrics.service },
      statistic,
      period: Duration.minutes(5),
    });
  }

  private createDashboard(): cloudwatch.Dashboard {
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.hours(24),
    });
    const outcomes = ['APPROVE', 'REJECT', 'ESCALATE'].map(
      (outcome) =>
        new cloudwatch.Metric({
          namespace: this.metrics.namespace,
          metricName: 'Decisions',
          dimensionsMap: { service: this.metrics.service, outcome },
          statistic: 'Sum',
          period: Duration.minutes(5),
          label: outcome,
        }),
    );
    const functions: [string, lambda.IFunction][] = [
      ...FUNCTION_NAMES.map((n): [string, lambda.IFunction] => [n, this.functions[n]]),
      ...(this.archive ? [['archive', this.archive.function] as [string, lambda.IFunction]] : []),
    ];
    const queues: [string, sqs.IQueue][] = [
      ['undelivered', this.undeliveredQueue],
      ...FUNCTION_NAMES.map((n): [string, sqs.IQueue] => [`${n} failed`, this.failedQueues[n]]),
      ...(this.undeliveredNotificationsQueue
        ? [['undelivered emails', this.undeliveredNotificationsQueue] as [string, sqs.IQueue]]
        : []),
      ...(this.archive ? [['archive failed batches', this.archive.failedQueue] as [string, sqs.IQueue]] : []),
    ];
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Decisions by outcome', left: outcomes, width: 8 }),
      new cloudwatch.GraphWidget({
        title: 'Gates waiting and overdue',
        left: [
          this.tollgateMetric('GatesWaiting', 'Maximum'),
          this.tollgateMetric('GatesOverdue', 'Maximum'),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Oldest waiting gate (minutes)',
        left: [this.tollgateMetric('OldestWaitingMinutes', 'Maximum')],
        leftAnnotations: [
          { value: this.waitMinutes, label: `policy waitMinutes (${this.waitMinutes})` },
          { value: this.waitMinutes + OVERDUE_MARGIN_MINUTES, label: 'alarm', color: '#d62728' },
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Time to decision (p50, p99)',
        left: ['p50', 'p99'].map((statistic) => this.tollgateMetric('TimeToDecision', statistic)),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Function errors',
        left: functions.map(([label, f]) => f.metricErrors({ label, statistic: 'Sum' })),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Function duration (p99)',
        left: functions.map(([label, f]) => f.metricDuration({ label, statistic: 'p99' })),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Dead-letter queues (messages)',
        left: queues.map(([label, q]) =>
          q.metricApproximateNumberOfMessagesVisible({ label, statistic: 'Maximum' }),
        ),
        width: 24,
      }),
      new cloudwatch.AlarmStatusWidget({
        title: 'Alarms',
        // Every alarm: the dashboard is where one is seen when the alarm topic's own delivery is what failed.
        alarms: [
          this.alarms.gatesOverdue,
          this.alarms.oldestWaiting,
          this.alarms.undelivered,
          this.alarms.lostEvents,
          ...FUNCTION_NAMES.flatMap((n) => [
            this.alarms.errors[n],
            this.alarms.failed[n],
            this.alarms.undeliveredFailures[n],
          ]),
          ...(this.alarms.undeliveredNotifications ? [this.alarms.undeliveredNotifications] : []),
          this.alarms.borrowedRole,
          this.alarms.policyInvalid,
          ...(this.archive ? Object.values(this.archive.alarms) : []),
        ],
        width: 24,
      }),
    );
    return dashboard;
  }

  private acknowledgeQueues(): void {
    const queues = [this.undeliveredQueue, ...Object.values(this.failedQueues)];
    if (this.undeliveredNotificationsQueue) queues.push(this.undeliveredNotificationsQueue);
    for (const queue of queues) {
      Validations.of(queue).acknowledge({
        id: 'AwsSolutions-SQS3',
        reason:
          'This queue is itself a dead-letter queue (of EventBridge rule targets, of a Lambda function’s ' +
          'asynchronous failures or of SNS email subscriptions); its depth is alarmed, and a queue behind it ' +
          'would only hide the messages.',
      });
    }
  }
}

/**
 * Lets CloudWatch Logs encrypt log groups with `key` (the gate's and the demo stack's: they name gates, images
 * and reviewers). The actions and the encryption-context condition are those AWS documents; the logs service
 * sends no `aws:SourceArn` to KMS. The log groups cannot be named exactly: their generated names depend on the
 * key (a cycle), and fixed names would fail a redeploy beside retained ones. So any log group of the stack's
 * account and region may be encrypted with it; that lets no one read what was written.
 */
export function allowCloudWatchLogs(key: kms.Key, what: string): void {
  const { partition, region, account, urlSuffix } = Stack.of(key);
  key.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: `Allow CloudWatch Logs to encrypt ${what}`,
      // `amazonaws.com`, or `amazonaws.com.cn` in the China regions.
      principals: [new iam.ServicePrincipal(`logs.${region}.${urlSuffix}`)],
      actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
      resources: ['*'],
      conditions: {
        ArnLike: {
          'kms:EncryptionContext:aws:logs:arn': `arn:${partition}:logs:${region}:${account}:log-group:*`,
        },
      },
    }),
  );
}

/** `approval-started` → `ApprovalStarted`, `approvalStarted` → `ApprovalStarted`: construct ids. */
function pascal(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, _dash: string, c: string) => c.toUpperCase());
}

/** How cdk-nag prints a pseudo-parameter inside a resource ARN: `<AWS::Region>`. */
function nagPart(value: string, pseudo: string): string {
  return Token.isUnresolved(value) ? `<${pseudo}>` : value;
}

/** How cdk-nag prints an ARN built from partition, region and account: the finding id to acknowledge. */
function nagArn(arn: string): string {
  const parts = arn.split(':');
  const [prefix, partition, service, region, account, ...rest] = parts;
  return [
    prefix,
    nagPart(partition ?? '', 'AWS::Partition'),
    service,
    nagPart(region ?? '', 'AWS::Region'),
    nagPart(account ?? '', 'AWS::AccountId'),
    ...rest,
  ].join(':');
}

/** The EventBridge JSON pattern as CDK's `EventPattern` (same content, CDK's key names). */
function toCdkPattern(pattern: EventPattern): events.EventPattern {
  const {
    source,
    'detail-type': detailType,
    account,
    resources,
    detail,
  } = pattern as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  if (source) out.source = source;
  if (detailType) out.detailType = detailType;
  if (account) out.account = account;
  if (resources) out.resources = resources;
  if (detail) out.detail = detail;
  const known = new Set(['source', 'detail-type', 'account', 'resources', 'detail']);
  const unknown = Object.keys(pattern).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new Error(`toCdkPattern: no CDK field for ${unknown.join(', ')}`);
  return out as events.EventPattern;
}
