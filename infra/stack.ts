import { RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as sns from 'aws-cdk-lib/aws-sns';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import type { Construct } from 'constructs';
import { checkArchiveRetentionDays } from './archive.js';
import {
  checkEventPatternLimit,
  checkTopicArn,
  checkTopicRegion,
  SCAN_SOURCES,
  type ScanSource,
  shown,
  TollgateConfigError,
} from './patterns.js';
import {
  checkDiscoveryMinutes,
  checkLogRetention,
  resolveGlobs,
  SAME_REGION,
  Tollgate,
  type TollgateProps,
} from './tollgate.js';

/** A notification target as configuration can name it: email addresses, or an existing topic's ARN. */
export type NotificationTargetSpec =
  | { readonly emails: readonly string[] }
  | { readonly topicArn: string; readonly keyArn?: string };

export interface TollgateStackProps extends StackProps {
  readonly tollgate: Omit<TollgateProps, 'escalation' | 'alarms'> & {
    readonly escalation: NotificationTargetSpec;
    readonly alarms?: NotificationTargetSpec;
  };
}

/** The Tollgate construct in a stack of its own, deployed in the account and region of the pipelines. */
export class TollgateStack extends Stack {
  readonly tollgate: Tollgate;

  constructor(scope: Construct, id: string, props: TollgateStackProps) {
    super(scope, id, props);
    const { escalation, alarms, ...rest } = props.tollgate;
    this.tollgate = new Tollgate(this, 'Tollgate', {
      ...rest,
      escalation: this.target('EscalationTopic', escalation),
      ...(alarms ? { alarms: this.target('AlarmTopic', alarms) } : {}),
    });
  }

  private target(id: string, spec: NotificationTargetSpec): TollgateProps['escalation'] {
    if ('topicArn' in spec) {
      return {
        topic: sns.Topic.fromTopicAttributes(this, id, {
          topicArn: spec.topicArn,
          ...(spec.keyArn ? { keyArn: spec.keyArn } : {}),
        }),
      };
    }
    return { emails: spec.emails };
  }
}

/**
 * The context keys the app reads (`-c key=value` or `cdk.json`'s `context`). Lists take a JSON array or a
 * comma-separated string; booleans `true` / `false`.
 */
export const CONTEXT_KEYS = {
  stackName: 'tollgate:stackName',
  account: 'tollgate:account',
  region: 'tollgate:region',
  pipelines: 'tollgate:pipelines',
  approvalActionNames: 'tollgate:approvalActionNames',
  eventPatternLimit: 'tollgate:eventPatternLimit',
  policyFile: 'tollgate:policyFile',
  scanSource: 'tollgate:scanSource',
  escalationEmails: 'tollgate:escalationEmails',
  escalationTopicArn: 'tollgate:escalationTopicArn',
  escalationTopicKeyArn: 'tollgate:escalationTopicKeyArn',
  alarmEmails: 'tollgate:alarmEmails',
  alarmTopicArn: 'tollgate:alarmTopicArn',
  logRetentionDays: 'tollgate:logRetentionDays',
  removalPolicy: 'tollgate:removalPolicy',
  dashboard: 'tollgate:dashboard',
  archive: 'tollgate:archive',
  archiveRetentionDays: 'tollgate:archiveRetentionDays',
  discoveryMinutes: 'tollgate:discoveryMinutes',
  demoPipeline: 'tollgate:demoPipeline',
} as const;

/**
 * Keys people reach for that Tollgate deliberately does not read, with where the setting lives instead. A key
 * that would be ignored is an error, not a silent default (a mistyped `tollgate:pipelines` would gate every
 * pipeline).
 */
const NOT_CONTEXT_KEYS: Readonly<Record<string, string>> = {
  'tollgate:waitMinutes':
    "no such key: how long a gate waits for a scan is the policy's settings.scan.waitMinutes " +
    `(the file ${CONTEXT_KEYS.policyFile} names), so every decision's policy hash covers it`,
};

/**
 * Refuses context keys Tollgate would ignore: an unknown `tollgate:…` key, or one of its keys written without
 * the prefix or in another case (`scanSource`, `Tollgate:scanSource`). The nearest real key is suggested.
 * Other context (CDK's feature flags, `@aws-cdk/…`) is not Tollgate's and is left alone.
 */
export function checkContextKeys(keys: Iterable<string>): void {
  const known: readonly string[] = Object.values(CONTEXT_KEYS);
  // `Tollgate:scanSource`, `tollgate.scanSource`, `scanSource` → `scansource`.
  const norm = (key: string) => key.toLowerCase().replace(/^tollgate[:._-]/, '');
  const byName = new Map(known.map((k) => [norm(k), k]));
  const notKeys = new Map(Object.entries(NOT_CONTEXT_KEYS).map(([k, why]) => [norm(k), why]));
  for (const key of keys) {
    if (known.includes(key)) continue;
    const name = norm(key);
    const instead = notKeys.get(name);
    if (instead !== undefined) throw new TollgateConfigError(key, instead, shown(key));
    const meant = byName.get(name);
    if (meant !== undefined) {
      throw new TollgateConfigError(
        key,
        `a context key Tollgate reads (did you mean ${meant}?)`,
        'one it would ignore',
      );
    }
    if (!key.toLowerCase().startsWith('tollgate')) continue;
    const nearest = known.map((k) => ({ k, d: editDistance(name, norm(k)) })).sort((a, b) => a.d - b.d)[0];
    const hint =
      nearest !== undefined && nearest.d <= 3 ? `did you mean ${nearest.k}?` : `one of ${known.join(', ')}`;
    throw new TollgateConfigError(key, `a context key Tollgate reads (${hint})`, 'one it would ignore');
  }
}

/** Levenshtein distance, for suggesting the key a typo meant. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** The example configuration's environment, used when neither context nor the CLI's credentials name one. */
export const EXAMPLE_ENV = { account: '123456789012', region: 'eu-west-1' } as const;
export const DEFAULT_STACK_NAME = 'Tollgate';

type Context = (key: string) => unknown;

function list(context: Context, key: string): string[] | undefined {
  const value = context(key);
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value as string[];
  if (typeof value === 'string') {
    const text = value.trim();
    if (text.startsWith('[')) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (Array.isArray(parsed)) return parsed as string[];
      } catch {
        // Reported below, as what it is.
      }
      throw new TollgateConfigError(key, 'a JSON array of strings or a comma-separated list', shown(value));
    }
    return text === '' ? [] : text.split(',').map((s) => s.trim());
  }
  throw new TollgateConfigError(key, 'a JSON array of strings or a comma-separated list', shown(value));
}

function text(context: Context, key: string): string | undefined {
  const value = context(key);
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '') {
    throw new TollgateConfigError(key, 'a non-empty string', shown(value));
  }
  return value.trim();
}

function bool(context: Context, key: string): boolean | undefined {
  const value = context(key);
  if (value === undefined) return undefined;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new TollgateConfigError(key, 'true or false', shown(value));
}

function target(
  context: Context,
  emailsKey: string,
  topicKey: string,
  keyKey: string | undefined,
): NotificationTargetSpec | undefined {
  // An empty list sets no addresses: `-c tollgate:escalationEmails=` clears cdk.json's example address, which
  // `-c` could otherwise only override with other addresses, never with a topic.
  const given = list(context, emailsKey);
  const emails = given?.length === 0 ? undefined : given;
  const topicArn = text(context, topicKey);
  if (emails !== undefined && topicArn !== undefined) {
    throw new TollgateConfigError(`${emailsKey} / ${topicKey}`, 'one of the two', 'both');
  }
  // The key is only for a topic given by ARN (Tollgate's own topic has its own key): set without one, it
  // would be ignored, and a key Tollgate would not read stops the synth.
  const strayKey = keyKey !== undefined && topicArn === undefined ? text(context, keyKey) : undefined;
  if (keyKey !== undefined && strayKey !== undefined) {
    throw new TollgateConfigError(keyKey, `a key only with ${topicKey}`, `${shown(strayKey)} without it`);
  }
  if (topicArn !== undefined) {
    checkTopicArn(topicKey, topicArn);
    const keyArn = keyKey ? text(context, keyKey) : undefined;
    // An alias's ARN too: the construct grants the key that carries the alias (`topicKeyGrant`).
    if (
      keyArn !== undefined &&
      !/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key\/[A-Za-z0-9-]+|alias\/[A-Za-z0-9/_-]+)$/.test(keyArn)
    ) {
      throw new TollgateConfigError(
        keyKey ?? '',
        'a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) or an alias ARN (arn:aws:kms:REGION:ACCOUNT:alias/NAME)',
        shown(keyArn),
      );
    }
    return { topicArn, ...(keyArn ? { keyArn } : {}) };
  }
  return emails === undefined ? undefined : { emails };
}

export interface ContextConfig {
  readonly stackName: string;
  readonly props: TollgateStackProps;
  readonly demoPipeline: boolean;
  /** Whether the environment is the example one: nothing (context or credentials) named it. */
  readonly exampleEnv: boolean;
}

/**
 * The stack's configuration from CDK context. Every problem names its context key. The environment comes
 * from `tollgate:account` / `tollgate:region`, else the CLI's credentials (CDK_DEFAULT_*), else the example
 * `123456789012` / `eu-west-1`, so that `cdk synth` works offline; deploying that example fails on the
 * account check, which is the point.
 */
export function contextConfig(context: Context, env: NodeJS.ProcessEnv = process.env): ContextConfig {
  const k = CONTEXT_KEYS;
  // The CLI always sets CDK_DEFAULT_REGION (us-east-1 when nothing is configured), but CDK_DEFAULT_ACCOUNT
  // only with credentials: without them, its region is a guess, and the example pair is used instead.
  const withCredentials = env.CDK_DEFAULT_ACCOUNT !== undefined && env.CDK_DEFAULT_ACCOUNT !== '';
  const account = text(context, k.account) ?? (withCredentials ? env.CDK_DEFAULT_ACCOUNT : undefined);
  const region = text(context, k.region) ?? (withCredentials ? env.CDK_DEFAULT_REGION : undefined);
  if (account !== undefined && !/^\d{12}$/.test(account)) {
    throw new TollgateConfigError(k.account, 'a 12-digit AWS account id', shown(account));
  }
  if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) {
    throw new TollgateConfigError(k.region, 'an AWS region name (eu-west-1)', shown(region));
  }

  const escalation = target(context, k.escalationEmails, k.escalationTopicArn, k.escalationTopicKeyArn);
  if (!escalation) {
    throw new TollgateConfigError(
      `${k.escalationEmails} or ${k.escalationTopicArn}`,
      'who receives escalations: email addresses or an SNS topic ARN',
      'neither',
    );
  }
  const alarms = target(context, k.alarmEmails, k.alarmTopicArn, undefined);
  // A topic in another region (or partition) than the stack's would be refused by SNS at every escalation
  // or alarm: refused now, before anything is built. The stack's region is always known here.
  const stackRegion = region ?? EXAMPLE_ENV.region;
  const place = {
    region: stackRegion,
    partition: RegionInfo.get(stackRegion).partition,
    from:
      text(context, k.region) !== undefined
        ? k.region
        : region !== undefined
          ? "your credentials' region (CDK_DEFAULT_REGION)"
          : `the example environment (set ${k.region})`,
  };
  if ('topicArn' in escalation) {
    checkTopicRegion(k.escalationTopicArn, escalation.topicArn, place, SAME_REGION.escalation);
  }
  if (alarms !== undefined && 'topicArn' in alarms) {
    checkTopicRegion(k.alarmTopicArn, alarms.topicArn, place, SAME_REGION.alarms);
  }

  const scanSource = text(context, k.scanSource);
  if (scanSource !== undefined && !SCAN_SOURCES.includes(scanSource as ScanSource)) {
    throw new TollgateConfigError(k.scanSource, SCAN_SOURCES.join(' or '), shown(scanSource));
  }

  // As the other numeric keys: a number or its digits, never `Number()` of anything (`true` is 1, `[30]` 30).
  const retentionRaw = context(k.logRetentionDays);
  const logRetention =
    retentionRaw === undefined
      ? undefined
      : checkLogRetention(k.logRetentionDays, digitsAsNumber(retentionRaw));

  const removalRaw = text(context, k.removalPolicy);
  let removalPolicy: RemovalPolicy | undefined;
  if (removalRaw !== undefined) {
    if (removalRaw !== 'retain' && removalRaw !== 'destroy') {
      throw new TollgateConfigError(k.removalPolicy, 'retain or destroy', shown(removalRaw));
    }
    removalPolicy = removalRaw === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
  }

  // Whole days, as a number or its digits (`-c` passes strings); the construct's check, named by the key.
  const archiveDaysRaw = context(k.archiveRetentionDays);
  const archiveRetentionDays =
    archiveDaysRaw === undefined
      ? undefined
      : checkArchiveRetentionDays(k.archiveRetentionDays, digitsAsNumber(archiveDaysRaw));
  const archive = bool(context, k.archive);
  const discoveryRaw = context(k.discoveryMinutes);
  const discoveryMinutes =
    discoveryRaw === undefined
      ? undefined
      : checkDiscoveryMinutes(k.discoveryMinutes, digitsAsNumber(discoveryRaw));

  // EventBridge's event pattern size quota of the account, when raised: as the construct checks it.
  const patternLimitRaw = context(k.eventPatternLimit);
  const eventPatternLimit =
    patternLimitRaw === undefined
      ? undefined
      : checkEventPatternLimit(k.eventPatternLimit, digitsAsNumber(patternLimitRaw));

  const pipelines = list(context, k.pipelines);
  const approvalActionNames = list(context, k.approvalActionNames);
  const policyFile = text(context, k.policyFile);
  const dashboard = bool(context, k.dashboard);
  const stackName = text(context, k.stackName) ?? DEFAULT_STACK_NAME;
  // 116, not CloudFormation's 128: the demo stack is `<name>DemoPipeline` and the Athena workgroup
  // `<name>-audit`, both held to 128 characters.
  if (!/^[A-Za-z][A-Za-z0-9-]{0,115}$/.test(stackName)) {
    throw new TollgateConfigError(
      k.stackName,
      'a CloudFormation stack name (letters, digits, -; at most 116 characters)',
      shown(stackName),
    );
  }

  return {
    stackName,
    exampleEnv: account === undefined || region === undefined,
    demoPipeline: bool(context, k.demoPipeline) ?? false,
    props: {
      env: { account: account ?? EXAMPLE_ENV.account, region: region ?? EXAMPLE_ENV.region },
      description:
        'Tollgate: security gate for CodePipeline Manual approvals (vulnerability findings + policy)',
      tollgate: {
        policyFile: policyFile ?? 'examples/policies/baseline.yaml',
        escalation,
        ...(alarms ? { alarms } : {}),
        ...(pipelines ? { pipelines } : {}),
        ...(approvalActionNames ? { approvalActionNames } : {}),
        ...(eventPatternLimit !== undefined ? { eventPatternLimit } : {}),
        ...(scanSource ? { scanSource: scanSource as ScanSource } : {}),
        ...(logRetention !== undefined ? { logRetention } : {}),
        ...(removalPolicy ? { removalPolicy } : {}),
        ...(dashboard !== undefined ? { dashboard } : {}),
        ...(archive !== undefined ? { archive } : {}),
        ...(archiveRetentionDays !== undefined ? { archiveRetentionDays } : {}),
        ...(discoveryMinutes !== undefined ? { discoveryMinutes } : {}),
      },
    },
  };
}

/** `-c` passes strings: digits are read as the whole number they spell; anything else is left to the check. */
function digitsAsNumber(raw: unknown): unknown {
  return typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : raw;
}

/** The construct's prop names (as its errors name them) → the context key that set them. */
function contextKeyOf(key: string, escalationIsTopic: boolean, alarmsIsTopic: boolean): string {
  const k = CONTEXT_KEYS;
  // `pipelines / approvalActionNames`: a problem of two props together.
  if (key.includes(' / ')) {
    return key
      .split(' / ')
      .map((part) => contextKeyOf(part, escalationIsTopic, alarmsIsTopic))
      .join(' / ');
  }
  const [head = '', ...tail] = key.split(/(?=[.[])/);
  const rest = tail.join('');
  const direct: Record<string, string> = {
    pipelines: k.pipelines,
    approvalActionNames: k.approvalActionNames,
    eventPatternLimit: k.eventPatternLimit,
    policyFile: k.policyFile,
    scanSource: k.scanSource,
    logRetention: k.logRetentionDays,
    removalPolicy: k.removalPolicy,
    archiveRetentionDays: k.archiveRetentionDays,
    discoveryMinutes: k.discoveryMinutes,
  };
  if (direct[head]) return `${direct[head]}${rest}`;
  if (head === 'escalation') {
    return escalationIsTopic ? k.escalationTopicArn : `${k.escalationEmails}${rest.replace(/^\.emails/, '')}`;
  }
  if (head === 'alarms')
    return alarmsIsTopic ? k.alarmTopicArn : `${k.alarmEmails}${rest.replace(/^\.emails/, '')}`;
  return key;
}

/**
 * The configuration the context gives, its keys checked (`checkContextKeys`): what `tollgateStackFromContext`
 * builds from. Nothing is built, so the app can refuse a configuration before the stack's bundling starts.
 */
export function configFromContext(scope: Construct): ContextConfig {
  checkContextKeys(Object.keys(scope.node.getAllContext()));
  return contextConfig((key) => scope.node.tryGetContext(key));
}

/**
 * The gated pipelines' and approval actions' globs the stack will use (`resolveGlobs`), without building it;
 * a bad glob is reported by its context key, as the stack would report it.
 */
export function gatedGlobs(config: ContextConfig): ReturnType<typeof resolveGlobs> {
  return byContextKey(config, () => resolveGlobs(config.props.tollgate));
}

/**
 * The stack as the context configures it (`config`: `configFromContext(scope)` unless given); a
 * configuration problem is reported by its context key.
 */
export function tollgateStackFromContext(
  scope: Construct,
  config: ContextConfig = configFromContext(scope),
): { stack: TollgateStack; config: ContextConfig } {
  const stack = byContextKey(
    config,
    () => new TollgateStack(scope, config.stackName, { ...config.props, stackName: config.stackName }),
  );
  return { stack, config };
}

/** Runs `work`, a construct-level TollgateConfigError renamed to the context key that set the prop. */
function byContextKey<T>(config: ContextConfig, work: () => T): T {
  try {
    return work();
  } catch (e) {
    if (e instanceof TollgateConfigError) {
      const { escalation, alarms } = config.props.tollgate;
      throw e.renamed(
        contextKeyOf(e.key, 'topicArn' in escalation, alarms !== undefined && 'topicArn' in alarms),
      );
    }
    throw e;
  }
}
