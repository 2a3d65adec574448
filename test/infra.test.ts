import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  App,
  type CfnElement,
  CfnParameter,
  NestedStack,
  RemovalPolicy,
  Stack,
  Validations,
} from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attemptMaxMs, DEFAULT_RETRY } from '../adapters/aws/retry.js';
import { TABLE_DEFINITION } from '../adapters/dynamodb/table.js';
import { READS_POLICY } from '../infra/bundling.js';
import {
  approvalActionArns,
  FUNCTION_NAMES,
  type FunctionName,
  globFilters,
  LONGEST_ARN_PLACE,
  MAX_INLINE_POLICY_CHARACTERS,
  MAX_MANAGED_POLICY_CHARACTERS,
  MAX_PATTERN_CHARACTERS,
  normaliseGlobs,
  pipelineArns,
  RULE_TARGETS,
  type RuleName,
  rulePatterns,
  TollgateConfigError,
} from '../infra/patterns.js';
import {
  CONTEXT_KEYS,
  checkContextKeys,
  configFromContext,
  contextConfig,
  gatedGlobs,
  TollgateStack,
  tollgateStackFromContext,
} from '../infra/stack.js';
import {
  OVERDUE_MARGIN_MINUTES,
  resolveConfig,
  resolveGlobs,
  Tollgate,
  type TollgateProps,
} from '../infra/tollgate.js';
import { DEFAULT_CONFIG } from '../shared/gate/gate.js';
import { InputError, parsePolicy } from '../shared/index.js';
import { ROOT } from './helpers.js';
import { acknowledgements, staleAcknowledgements } from './nag.js';

/*
 * The infrastructure, pinned by its synthesized templates. Bundling is skipped (`aws:cdk:bundling-stacks`
 * empty): esbuild takes seconds per function and `npm run synth` bundles for real.
 */

const ENV = { account: '123456789012', region: 'eu-west-1' };
const POLICY = join(ROOT, 'examples/policies/baseline.yaml');
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };

type Json = Record<string, unknown>;
type Statement = {
  Action: string | string[];
  Resource: unknown;
  Effect: string;
  Sid?: string;
  Condition?: Json;
};

function app(context: Json = {}): App {
  return new App({ analyticsReporting: false, context: { ...NO_BUNDLING, ...context } });
}

function gate(props: Partial<TollgateProps> = {}): { stack: Stack; tollgate: Tollgate; template: Template } {
  const stack = new Stack(app(), 'Gate', { env: ENV });
  const tollgate = new Tollgate(stack, 'Tollgate', {
    policyFile: POLICY,
    escalation: { emails: ['security@example.com'] },
    ...props,
  });
  return { stack, tollgate, template: Template.fromStack(stack) };
}

/** CloudWatch Logs' regional service principal as the template writes it (the partition's URL suffix). */
const LOGS_PRINCIPAL = { 'Fn::Join': ['', ['logs.eu-west-1.', { Ref: 'AWS::URLSuffix' }]] };

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);
}

/**
 * The deciding roles' grant on the escalation topic's key (`EscalationTopicKey`), one statement each, with the
 * role's statements beside it; approval-ended, which never escalates, has none.
 */
function topicKeyGrants(
  stack: Stack,
  tollgate: Tollgate,
): { name: FunctionName; role: Statement[]; st: Statement }[] {
  const template = Template.fromStack(stack);
  return FUNCTION_NAMES.flatMap((name) => {
    const role = statements(template, logicalId(tollgate.roles[name]));
    const onTopicKey = role.filter((st) => st.Sid === 'EscalationTopicKey');
    if (name === 'approval-ended') {
      expect(onTopicKey, name).toEqual([]);
      return [];
    }
    expect(onTopicKey, name).toHaveLength(1);
    return [{ name, role, st: onTopicKey[0]! }];
  });
}

function statements(template: Template, roleLogicalId?: string): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.values(policies)
    .filter((p) => {
      const roles = (p.Properties as { Roles: { Ref: string }[] }).Roles;
      return roleLogicalId === undefined || roles.some((r) => r.Ref === roleLogicalId);
    })
    .flatMap(
      (p) => (p.Properties as { PolicyDocument: { Statement: Statement[] } }).PolicyDocument.Statement,
    );
}

const actionsOf = (s: Statement): string[] => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const resourcesOf = (s: Statement): unknown[] => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]);

/** `arn:${AWS::Partition}:…` as the template writes it, back to the string the ARN builders produce. */
function arnText(resource: unknown): string {
  if (typeof resource === 'string') return resource;
  const join = (resource as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (!join) return JSON.stringify(resource);
  return join[1]
    .map((part) =>
      typeof part === 'string' ? part : (part as { Ref?: string }).Ref === 'AWS::Partition' ? 'aws' : '?',
    )
    .join(join[0]);
}

function nagViolations(scope: IConstruct): string[] {
  const report = new AwsSolutionsChecks(scope).validateScope(scope);
  return report.violations.map(
    (v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
  );
}

function configError(fn: () => unknown): TollgateConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof TollgateConfigError) return e;
    throw e;
  }
  throw new Error('expected a TollgateConfigError');
}

/** The principals the key's own policy lets use it for CloudWatch (alarms publishing to an encrypted topic). */
function cloudWatchKeyGrants(template: Template, tollgate: Tollgate): Statement[] {
  const policy = template.toJSON().Resources[logicalId(tollgate.key)].Properties.KeyPolicy as {
    Statement: (Statement & { Principal?: unknown })[];
  };
  return policy.Statement.filter((st) => JSON.stringify(st.Principal).includes('cloudwatch.amazonaws.com'));
}

/**
 * A template value as IAM receives it, every token at its longest: the partition, region and account of
 * `LONGEST_ARN_PLACE`, and any other reference (a table's, a queue's, a log group's ARN) an ARN of 150
 * characters, what CDK itself assumes of an ARN it cannot read.
 */
function resolvedAtLongest(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolvedAtLongest);
  if (value === null || typeof value !== 'object') return value;
  const v = value as Record<string, unknown>;
  const join = v['Fn::Join'] as [string, unknown[]] | undefined;
  if (join) return join[1].map(resolvedAtLongest).join(join[0]);
  if (v.Ref === 'AWS::Partition') return LONGEST_ARN_PLACE.partition;
  if (v.Ref === 'AWS::Region') return LONGEST_ARN_PLACE.region;
  if (v.Ref === 'AWS::AccountId') return LONGEST_ARN_PLACE.account;
  if (v.Ref !== undefined || v['Fn::GetAtt'] !== undefined) {
    const prefix = `arn:${LONGEST_ARN_PLACE.partition}:service:${LONGEST_ARN_PLACE.region}:${LONGEST_ARN_PLACE.account}:`;
    return prefix + 'r'.repeat(150 - prefix.length);
  }
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolvedAtLongest(x)]));
}

/**
 * Each role's policies as IAM counts them (compact JSON: IAM does not count white space), tokens at their
 * longest: its inline policies together (IAM's limit is on their sum), and each managed policy apart.
 */
function rolePolicySizes(
  template: Template,
): Map<
  string,
  { inline: number; managed: number[]; statements: { sid: string | undefined; where: string }[] }
> {
  const sizes = new Map<
    string,
    { inline: number; managed: number[]; statements: { sid: string | undefined; where: string }[] }
  >();
  const resources = template.toJSON().Resources as Record<string, { Type: string; Properties: Json }>;
  for (const [id, r] of Object.entries(resources)) {
    if (r.Type !== 'AWS::IAM::Policy' && r.Type !== 'AWS::IAM::ManagedPolicy') continue;
    const document = resolvedAtLongest(r.Properties.PolicyDocument) as { Statement: Statement[] };
    const size = JSON.stringify(document).length;
    for (const role of (r.Properties.Roles ?? []) as { Ref: string }[]) {
      const entry = sizes.get(role.Ref) ?? { inline: 0, managed: [], statements: [] };
      if (r.Type === 'AWS::IAM::Policy') entry.inline += size;
      else entry.managed.push(size);
      for (const st of document.Statement) entry.statements.push({ sid: st.Sid, where: id });
      sizes.set(role.Ref, entry);
    }
  }
  return sizes;
}

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

function tempPolicy(text: string, name = 'policy.yaml'): string {
  const dir = tempDir('tollgate-infra-');
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('globs to EventBridge filters and IAM ARNs', () => {
  it('translates each glob to the cheapest filter that matches it', () => {
    expect(globFilters(['*'])).toBeUndefined();
    expect(globFilters(['payments-api'])).toEqual(['payments-api']);
    expect(globFilters(['Tollgate*'])).toEqual([{ prefix: 'Tollgate' }]);
    expect(globFilters(['*-prod'])).toEqual([{ suffix: '-prod' }]);
    expect(globFilters(['pay*-prod', '*gate*'])).toEqual([{ wildcard: 'pay*-prod' }, { wildcard: '*gate*' }]);
  });

  it('normalises: runs of * collapse, duplicates go, and * alone absorbs the rest', () => {
    expect(normaliseGlobs('pipelines', ['a**b', 'a*b', 'c'], 'pipeline name')).toEqual(['a*b', 'c']);
    expect(normaliseGlobs('pipelines', ['payments-*', '*'], 'pipeline name')).toEqual(['*']);
  });

  it('refuses a glob a pipeline or action name could never match, naming where it is', () => {
    const e = configError(() => normaliseGlobs('pipelines', ['payments-*', 'pay ments'], 'pipeline name'));
    expect(e.message).toBe(
      `Tollgate: pipelines[1]: expected a pipeline name glob: 1 to 100 letters, digits, '.', '@', '-', '_' or '*'; got "pay ments"`,
    );
    expect(configError(() => normaliseGlobs('pipelines', [], 'pipeline name')).message).toMatch(
      /^Tollgate: pipelines: expected a non-empty list .*; got 0 globs$/,
    );
    expect(configError(() => normaliseGlobs('pipelines', 'payments', 'pipeline name')).got).toBe(
      '"payments"',
    );
  });

  it('builds the approval ARNs per pipeline glob and action glob, and the pipeline ARNs', () => {
    const c = {
      partition: 'aws',
      region: 'eu-west-1',
      account: '123456789012',
      pipelines: ['payments-*', 'billing-api'],
      approvalActionNames: ['Tollgate*'],
    };
    expect(approvalActionArns(c)).toEqual([
      'arn:aws:codepipeline:eu-west-1:123456789012:payments-*/*/Tollgate*',
      'arn:aws:codepipeline:eu-west-1:123456789012:billing-api/*/Tollgate*',
    ]);
    expect(pipelineArns(c)).toEqual([
      'arn:aws:codepipeline:eu-west-1:123456789012:payments-*',
      'arn:aws:codepipeline:eu-west-1:123456789012:billing-api',
    ]);
  });

  it('gives every rule pinned source, detail-type and account, and one scan rule per scan source', () => {
    const base = { account: '123456789012', pipelines: ['*'], approvalActionNames: ['Tollgate*'] };
    const inspector = rulePatterns({ ...base, scanSource: 'inspector' });
    const ecr = rulePatterns({ ...base, scanSource: 'ecr' });
    expect(Object.keys(inspector).sort()).toEqual([
      'approvalEnded',
      'approvalResultCall',
      'approvalStarted',
      'inspectorScan',
    ]);
    expect(Object.keys(ecr).sort()).toEqual([
      'approvalEnded',
      'approvalResultCall',
      'approvalStarted',
      'ecrScan',
    ]);
    for (const pattern of [...Object.values(inspector), ...Object.values(ecr)]) {
      expect(pattern.source).toHaveLength(1);
      expect(pattern['detail-type']).toHaveLength(1);
      expect(pattern.account).toEqual(['123456789012']);
    }
    // `*` gates every pipeline: no pipeline filter at all.
    expect(inspector.approvalStarted?.detail).toEqual({
      state: ['STARTED'],
      type: { category: ['Approval'], provider: ['Manual'], owner: ['AWS'] },
      action: [{ prefix: 'Tollgate' }],
    });
    expect(inspector.inspectorScan).toMatchObject({
      resources: [{ prefix: 'arn:aws:ecr:' }],
      detail: { 'image-digest': [{ exists: true }] },
    });
  });
});

describe('the Tollgate construct', () => {
  let g: ReturnType<typeof gate>;
  // Seconds alone, more beside the rest of the suite on two cores.
  beforeAll(() => {
    g = gate({ pipelines: ['payments-*', 'billing-api'], dashboard: true });
  }, 60_000);

  it('creates the table from TABLE_DEFINITION: keys, indexes, on demand, KMS, PITR, deletion protection', () => {
    g.template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: {
        KeySchema: TABLE_DEFINITION.KeySchema,
        AttributeDefinitions: Match.arrayWith(
          TABLE_DEFINITION.AttributeDefinitions.map((a) => Match.objectEquals(a)),
        ),
        GlobalSecondaryIndexes: TABLE_DEFINITION.GlobalSecondaryIndexes.map((i) =>
          Match.objectLike({
            IndexName: i.IndexName,
            KeySchema: i.KeySchema,
            Projection: { ProjectionType: 'ALL' },
          }),
        ),
        BillingMode: 'PAY_PER_REQUEST',
        SSESpecification: {
          SSEEnabled: true,
          SSEType: 'KMS',
          KMSMasterKeyId: { 'Fn::GetAtt': [logicalId(g.tollgate.key), 'Arn'] },
        },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        // Finished audit-pending markers expire by TTL, so no role needs DeleteItem.
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        DeletionProtectionEnabled: true,
      },
    });
    g.template.resourceCountIs('AWS::DynamoDB::Table', 1);
  });

  it('encrypts the topics and all queues with the one rotating key, and refuses plain-HTTP requests', () => {
    const key = logicalId(g.tollgate.key);
    // The gate's key, and the audit archive's own (test/infra-archive.test.ts).
    g.template.resourceCountIs('AWS::KMS::Key', 2);
    expect(g.template.toJSON().Resources[key].Properties.EnableKeyRotation).toBe(true);
    const topics = g.template.findResources('AWS::SNS::Topic');
    expect(Object.keys(topics)).toHaveLength(2);
    for (const t of Object.values(topics)) {
      expect(t.Properties.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [key, 'Arn'] });
    }
    const queues = g.template.findResources('AWS::SQS::Queue');
    // Undelivered events, four failed-events queues, undelivered emails, and the archive's failed batches.
    expect(Object.keys(queues)).toHaveLength(7);
    for (const q of Object.values(queues)) {
      expect(q.Properties.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [key, 'Arn'] });
      expect(q.Properties.MessageRetentionPeriod).toBe(14 * 86_400);
    }
    const denyInsecure = Match.arrayWith([
      Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    ]);
    expect(
      Object.keys(
        g.template.findResources('AWS::SNS::TopicPolicy', {
          Properties: { PolicyDocument: { Statement: denyInsecure } },
        }),
      ),
    ).toHaveLength(2);
    expect(
      Object.keys(
        g.template.findResources('AWS::SQS::QueuePolicy', {
          Properties: { PolicyDocument: { Statement: denyInsecure } },
        }),
      ),
    ).toHaveLength(7);
  });

  it('lets EventBridge, CloudWatch and SNS use the key, for this account’s rules, alarms and topics only, and no other service but CloudWatch Logs', () => {
    // Without these, EventBridge could not dead-letter into the encrypted queue and CloudWatch could not
    // publish to the encrypted alarm topic: undelivered events and every alarm would be lost, silently.
    const policy = g.template.toJSON().Resources[logicalId(g.tollgate.key)].Properties.KeyPolicy as {
      Statement: Statement[];
    };
    const forService = (service: string) =>
      policy.Statement.filter(
        (st) =>
          JSON.stringify((st as unknown as { Principal?: unknown }).Principal) ===
          JSON.stringify({ Service: service }),
      );
    // [service, source ARN, whether aws:SourceAccount is required too]. SNS (writing undelivered emails to
    // their dead-letter queue) is held by its source ARN alone, as CDK does for SNS-to-SQS subscriptions.
    const expected: [string, string, boolean][] = [
      ['events.amazonaws.com', 'arn:aws:events:eu-west-1:123456789012:rule/*', true],
      ['cloudwatch.amazonaws.com', 'arn:aws:cloudwatch:eu-west-1:123456789012:alarm:*', true],
      ['sns.amazonaws.com', 'arn:aws:sns:eu-west-1:123456789012:*', false],
    ];
    for (const [service, sourceArn, account] of expected) {
      const found = forService(service);
      expect(found, service).toHaveLength(1);
      const st = found[0]!;
      expect(st.Effect).toBe('Allow');
      expect(actionsOf(st).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
      const condition = st.Condition as { StringEquals?: Json; ArnLike: Record<string, unknown> };
      expect(condition.StringEquals).toEqual(account ? { 'aws:SourceAccount': ENV.account } : undefined);
      expect(arnText(condition.ArnLike['aws:SourceArn'])).toBe(sourceArn);
    }
    // No other service is let in.
    const services = policy.Statement.flatMap((st) => {
      const principal = (st as unknown as { Principal?: { Service?: unknown } }).Principal;
      return principal?.Service ? [JSON.stringify(principal.Service)] : [];
    });
    // CloudWatch Logs by its regional name, on the partition's URL suffix (amazonaws.com.cn in China).
    expect(services.sort()).toEqual(
      [
        '"cloudwatch.amazonaws.com"',
        '"events.amazonaws.com"',
        JSON.stringify(LOGS_PRINCIPAL),
        '"sns.amazonaws.com"',
      ].sort(),
    );
  });

  it('encrypts every log group with the key, which CloudWatch Logs may use for this account’s log groups only', () => {
    const key = logicalId(g.tollgate.key);
    const groups = g.template.findResources('AWS::Logs::LogGroup');
    // The four functions' and the archive's.
    expect(Object.keys(groups)).toHaveLength(5);
    for (const [id, group] of Object.entries(groups))
      expect(group.Properties.KmsKeyId, id).toEqual({ 'Fn::GetAtt': [key, 'Arn'] });
    // Without this statement CloudFormation cannot create the log groups: CloudWatch Logs must be let in.
    const policy = g.template.toJSON().Resources[key].Properties.KeyPolicy as { Statement: Statement[] };
    const logs = policy.Statement.filter(
      (st) =>
        JSON.stringify((st as unknown as { Principal?: unknown }).Principal) ===
        JSON.stringify({ Service: LOGS_PRINCIPAL }),
    );
    expect(logs).toHaveLength(1);
    const st = logs[0]!;
    expect(st.Effect).toBe('Allow');
    expect(actionsOf(st).sort()).toEqual([
      'kms:Decrypt*',
      'kms:Describe*',
      'kms:Encrypt*',
      'kms:GenerateDataKey*',
      'kms:ReEncrypt*',
    ]);
    const condition = st.Condition as { ArnLike: Record<string, unknown> };
    expect(Object.keys(st.Condition as object)).toEqual(['ArnLike']);
    expect(Object.keys(condition.ArnLike)).toEqual(['kms:EncryptionContext:aws:logs:arn']);
    expect(arnText(condition.ArnLike['kms:EncryptionContext:aws:logs:arn'])).toBe(
      'arn:aws:logs:eu-west-1:123456789012:log-group:*',
    );
  });

  it('runs four arm64 nodejs22.x functions with active tracing, source maps and no secrets in the environment', () => {
    const fns = g.template.findResources('AWS::Lambda::Function');
    // The gate's four and the archive's (test/infra-archive.test.ts).
    expect(Object.keys(fns)).toHaveLength(FUNCTION_NAMES.length + 1);
    for (const name of FUNCTION_NAMES) {
      const fn = fns[logicalId(g.tollgate.functions[name])];
      expect(fn, name).toBeDefined();
      const p = fn?.Properties as Json & { Environment: { Variables: Record<string, unknown> } };
      expect(p).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        TracingConfig: { Mode: 'Active' },
        Handler: 'index.handler',
      });
      const env = p.Environment.Variables;
      expect(env).toMatchObject({
        TOLLGATE_TABLE: { Ref: logicalId(g.tollgate.table) },
        POWERTOOLS_SERVICE_NAME: g.tollgate.metrics.service,
        POWERTOOLS_METRICS_NAMESPACE: 'Tollgate',
        NODE_OPTIONS: '--enable-source-maps',
      });
      expect(Object.keys(env).filter((k) => /token|secret|password|key/i.test(k))).toEqual([]);
      // The roles whose CloudTrail calls are Tollgate's own: the three that call PutApprovalResult.
      expect(env.TOLLGATE_OWN_ROLES).toEqual({
        'Fn::Join': [
          ',',
          ['approval-started', 'scan-finished', 'sweep'].map((n) => ({
            Ref: logicalId(g.tollgate.roles[n as FunctionName]),
          })),
        ],
      });
    }
    // approval-ended never escalates nor reads findings: it is given neither the topic nor the scan source.
    for (const name of FUNCTION_NAMES) {
      const fn = fns[logicalId(g.tollgate.functions[name])]!;
      const env = (fn.Properties as { Environment: { Variables: Json } }).Environment.Variables;
      const decides = name !== 'approval-ended';
      expect(env.TOLLGATE_SCAN_SOURCE, name).toEqual(decides ? 'inspector' : undefined);
      expect(env.TOLLGATE_TOPIC_ARN === undefined, name).toBe(!decides);
    }
  });

  it('ends every function that acts before the gate’s acting lease runs out', () => {
    // The lease keeps the sweep from acting beside an invocation that may still be sending; Lambda ends the
    // invocation by its timeout, so a timeout past the lease would let a second escalation out beside the first.
    const fns = g.template.findResources('AWS::Lambda::Function');
    for (const name of FUNCTION_NAMES.filter((n) => READS_POLICY.has(n))) {
      const timeout = (fns[logicalId(g.tollgate.functions[name])]!.Properties as { Timeout: number }).Timeout;
      expect(timeout * 1000, name).toBeLessThan(DEFAULT_CONFIG.leaseMs);
    }
  });

  it('gives every gate function the time of one stalled call and its retries', () => {
    // Killed mid-way, work that landed is retried as already done, and what it would have sent after is lost.
    const budget = DEFAULT_RETRY.attempts * attemptMaxMs();
    const fns = g.template.findResources('AWS::Lambda::Function');
    for (const name of FUNCTION_NAMES) {
      const timeout = (fns[logicalId(g.tollgate.functions[name])]!.Properties as { Timeout: number }).Timeout;
      expect(timeout * 1000, name).toBeGreaterThanOrEqual(budget);
    }
  });

  it('sends each function’s failed asynchronous events to its own queue, after Lambda’s retries', () => {
    for (const name of FUNCTION_NAMES) {
      g.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        FunctionName: { Ref: logicalId(g.tollgate.functions[name]) },
        MaximumRetryAttempts: name === 'sweep' ? 0 : 2,
        DestinationConfig: {
          OnFailure: { Destination: { 'Fn::GetAtt': [logicalId(g.tollgate.failedQueues[name]), 'Arn'] } },
        },
      });
    }
  });

  it('routes each rule, with its synthesized pattern, to its function, with a DLQ and a retry policy', () => {
    const patterns = rulePatterns({
      account: ENV.account,
      pipelines: ['payments-*', 'billing-api'],
      approvalActionNames: ['Tollgate*'],
      scanSource: 'inspector',
    });
    const rules = g.template.findResources('AWS::Events::Rule');
    expect(Object.keys(rules)).toHaveLength(5);
    for (const [name, pattern] of Object.entries(patterns) as [RuleName, Json][]) {
      const rule = g.tollgate.rules[name];
      expect(rule, name).toBeDefined();
      const props = rules[logicalId(rule as IConstruct)]?.Properties as Json;
      expect(props.EventPattern).toEqual(pattern);
      expect(props.State).toBe('ENABLED');
      expect(props.Targets).toEqual([
        {
          Id: 'Target0',
          Arn: { 'Fn::GetAtt': [logicalId(g.tollgate.functions[RULE_TARGETS[name]]), 'Arn'] },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalId(g.tollgate.undeliveredQueue), 'Arn'] } },
          RetryPolicy: { MaximumEventAgeInSeconds: 7200, MaximumRetryAttempts: 8 },
        },
      ]);
    }
    const sweep = rules[logicalId(g.tollgate.rules.sweepSchedule as IConstruct)]?.Properties as Json;
    expect(sweep.ScheduleExpression).toBe('rate(1 minute)');
    // A missed sweep is replaced by the next one a minute later: few retries, and none older than 5 minutes.
    expect(sweep.Targets).toEqual([
      {
        Id: 'Target0',
        Arn: { 'Fn::GetAtt': [logicalId(g.tollgate.functions.sweep), 'Arn'] },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalId(g.tollgate.undeliveredQueue), 'Arn'] } },
        RetryPolicy: { MaximumEventAgeInSeconds: 300, MaximumRetryAttempts: 2 },
      },
    ]);
    // Pipelines and actions are filtered in the patterns themselves.
    expect(patterns.approvalStarted?.detail).toMatchObject({
      pipeline: [{ prefix: 'payments-' }, 'billing-api'],
      action: [{ prefix: 'Tollgate' }],
    });
    expect(patterns.approvalResultCall?.detail).toMatchObject({
      requestParameters: {
        pipelineName: [{ prefix: 'payments-' }, 'billing-api'],
        actionName: [{ prefix: 'Tollgate' }],
      },
    });
  });

  it('lets only the rules invoke the functions, each permission for one rule', () => {
    const permissions = Object.values(g.template.findResources('AWS::Lambda::Permission'));
    const ruleIds = Object.values(g.tollgate.rules).map((r) => logicalId(r as IConstruct));
    expect(permissions).toHaveLength(ruleIds.length);
    const sources = permissions.map((p) => {
      expect(p.Properties).toMatchObject({
        Action: 'lambda:InvokeFunction',
        Principal: 'events.amazonaws.com',
      });
      return (p.Properties as { SourceArn: { 'Fn::GetAtt': [string, string] } }).SourceArn['Fn::GetAtt'][0];
    });
    expect(sources.sort()).toEqual([...ruleIds].sort());
    // The DLQ accepts messages from the rules only.
    g.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: logicalId(g.tollgate.undeliveredQueue) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: 'sqs:SendMessage',
            Principal: { Service: 'events.amazonaws.com' },
            Condition: { ArnEquals: { 'aws:SourceArn': Match.anyValue() } },
          }),
        ]),
      },
    });
  });

  it('lets PutApprovalResult reach the gated approval actions only', () => {
    const expected = approvalActionArns({
      partition: 'aws',
      region: ENV.region,
      account: ENV.account,
      pipelines: ['payments-*', 'billing-api'],
      approvalActionNames: ['Tollgate*'],
    });
    const put = statements(g.template).filter((s) => actionsOf(s).includes('codepipeline:PutApprovalResult'));
    expect(put).toHaveLength(3); // approval-started, scan-finished, sweep
    for (const s of put) {
      expect(actionsOf(s)).toEqual(['codepipeline:PutApprovalResult']);
      expect(resourcesOf(s).map(arnText)).toEqual(expected);
      expect(resourcesOf(s)).not.toContain('*');
    }
  });

  it('grants no wildcard action, no UpdateItem, no DeleteItem, no BatchWriteItem, and * only where IAM has no resources', () => {
    const all = statements(g.template);
    expect(all.flatMap(actionsOf).filter((a) => a.includes('*'))).toEqual([]);
    // BatchWriteItem is authorised as one action whether it puts or deletes: granting it would let a role
    // delete from the append-only trail. The store writes even its index items in transactions of Puts.
    expect(
      all
        .flatMap(actionsOf)
        .filter((a) => /^dynamodb:(UpdateItem|DeleteItem|BatchWriteItem|PartiQL\w*|Scan|\*)$/.test(a)),
    ).toEqual([]);
    const starActions = all.filter((s) => resourcesOf(s).includes('*')).flatMap(actionsOf);
    expect([...new Set(starActions)].sort()).toEqual([
      // The sweep's discovery lists the pipelines (globs, execution modes): ListPipelines has none either.
      'codepipeline:ListPipelines',
      // The archive's stream poller: ListStreams has no resource-level permission.
      'dynamodb:ListStreams',
      'inspector2:ListCoverage',
      'inspector2:ListFindings',
      'xray:PutTelemetryRecords',
      'xray:PutTraceSegments',
    ]);
    // No AWS managed policies on the roles: every permission is written out here.
    for (const role of Object.values(g.template.findResources('AWS::IAM::Role'))) {
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    }
  });

  it('gives each function only what it calls', () => {
    const byFunction = Object.fromEntries(
      FUNCTION_NAMES.map((n) => [n, statements(g.template, logicalId(g.tollgate.roles[n]))]),
    ) as Record<FunctionName, Statement[]>;
    const services = (n: FunctionName) =>
      [...new Set(byFunction[n].flatMap(actionsOf).map((a) => a.split(':')[0]))].sort();
    expect(services('approval-ended')).toEqual(['dynamodb', 'events', 'kms', 'logs', 'sqs', 'xray']);
    expect(services('approval-started')).toEqual([
      'codepipeline',
      'dynamodb',
      'ecr',
      'events',
      'inspector2',
      'kms',
      'logs',
      'sns',
      'sqs',
      'xray',
    ]);
    // Only the functions that open gates resolve tags (the sweep's discovery opens them too); scan-finished
    // reads findings through Inspector, and the sweep without discovery resolves nothing.
    expect(services('scan-finished')).not.toContain('ecr');
    expect(services('sweep')).toContain('ecr');
    const off = gate({ discoveryMinutes: 0 });
    const sweepOff = statements(off.template, logicalId(off.tollgate.roles.sweep));
    expect(sweepOff.flatMap(actionsOf).filter((a) => a.startsWith('ecr:'))).toEqual([]);
    // Queries reach named indexes only, and only the ones the function's store calls use.
    const table = logicalId(g.tollgate.table);
    const queried = (n: FunctionName) =>
      byFunction[n]
        .filter((s) => actionsOf(s).includes('dynamodb:Query') && s.Sid !== 'AuditPendingMarkers')
        .flatMap(resourcesOf);
    // The sweep queries the base table too, the AUDIT-PENDING partition only (audit index items to finish).
    const markers = byFunction.sweep.find((s) => s.Sid === 'AuditPendingMarkers');
    expect(actionsOf(markers as Statement)).toEqual(['dynamodb:Query']);
    expect(markers?.Condition).toEqual({
      'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['AUDIT-PENDING'] },
    });
    expect(queried('approval-started')).toEqual([]);
    expect(queried('scan-finished')).toEqual([
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [table, 'Arn'] }, '/index/by-digest']] },
    ]);
    expect(queried('sweep')).toEqual([
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [table, 'Arn'] }, '/index/open-gates']] },
      // Discovery: has a gate seen this approval's token?
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [table, 'Arn'] }, '/index/by-token']] },
    ]);
    expect(queried('approval-ended')).toEqual([
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [table, 'Arn'] }, '/index/by-token']] },
    ]);
    for (const n of FUNCTION_NAMES) {
      const publish = byFunction[n].filter((s) => actionsOf(s).includes('sns:Publish'));
      expect(publish.flatMap(resourcesOf)).toEqual(
        n === 'approval-ended' ? [] : [{ Ref: logicalId(g.tollgate.topic as sns.Topic) }],
      );
      const events = byFunction[n].find((s) => actionsOf(s).includes('events:PutEvents'));
      expect(events?.Condition).toEqual({ StringEquals: { 'events:source': ['tollgate'] } });
      expect(resourcesOf(events as Statement).map(arnText)).toEqual([
        `arn:aws:events:${ENV.region}:${ENV.account}:event-bus/default`,
      ]);
    }
  });

  it('alarms on every dead-letter queue, every function’s errors, and gates overdue (a silent sweep breaches)', () => {
    const alarmTopic = { Ref: logicalId(g.tollgate.alarmTopic as sns.Topic) };
    const alarms = Object.values(g.template.findResources('AWS::CloudWatch::Alarm')).map(
      (a) => a.Properties as Json,
    );
    // The gate's (queues, functions, overdue, oldest, undelivered emails, lost events, a borrowed role, an
    // invalid policy, failed events Lambda could not queue) and the archive's seven (failed batches, errors,
    // failed batches Lambda could not queue, lag, hash mismatches, audit records changed, stopped).
    expect(alarms).toHaveLength(5 + 4 + 2 + 1 + 1 + 1 + 1 + 4 + 7);
    // An event neither delivered nor dead-lettered (the queue or its key refused it) is lost but for this alarm:
    // every rule's InvocationsFailedToBeSentToDlq, summed.
    const lost = alarms.find((a) =>
      a.AlarmDescription === undefined
        ? false
        : String(a.AlarmDescription).includes('neither to its function'),
    );
    const metrics =
      (lost?.Metrics as { Id: string; Expression?: string; MetricStat?: { Metric: Json } }[]) ?? [];
    const ruleNames = Object.values(g.tollgate.rules).map((r) => ({ Ref: logicalId(r as IConstruct) }));
    expect(metrics.find((m) => m.Expression)?.Expression).toBe(
      `SUM([${ruleNames.map((_, i) => `m${i}`).join(',')}])`,
    );
    expect(
      metrics
        .filter((m) => m.MetricStat)
        .map((m) => [
          m.MetricStat!.Metric.Namespace,
          m.MetricStat!.Metric.MetricName,
          (m.MetricStat!.Metric.Dimensions as Json[])[0],
        ]),
    ).toEqual(
      ruleNames.map((ref) => [
        'AWS/Events',
        'InvocationsFailedToBeSentToDlq',
        { Name: 'RuleName', Value: ref },
      ]),
    );
    // A metric name is case-sensitive, and one AWS never publishes never fires: every AWS/Events name any
    // alarm watches is held to aws-cdk-lib's list of the names EventBridge publishes (`…ToDLQ` was watched once).
    // Read from the package's folder: its `exports` do not name the file.
    const cdkLib = dirname(createRequire(import.meta.url).resolve('aws-cdk-lib/package.json'));
    const published = readFileSync(join(cdkLib, 'aws-events/lib/events-canned-metrics.generated.js'), 'utf8');
    const eventsMetrics = alarms.flatMap((a) =>
      ((a.Metrics as { MetricStat?: { Metric: Json } }[] | undefined) ?? [])
        .map((m) => m.MetricStat?.Metric)
        .concat(a.Namespace === undefined ? [] : [{ Namespace: a.Namespace, MetricName: a.MetricName }])
        .filter((m) => m?.Namespace === 'AWS/Events')
        .map((m) => String(m!.MetricName)),
    );
    expect(eventsMetrics.length).toBeGreaterThan(0);
    for (const name of eventsMetrics) expect(published, name).toContain(`metricName:"${name}"`);
    // Paged at the first one: an audit record inserted with a hash that does not match its content, or
    // changed in the table (the archive sees both as they happen), and someone resolving an approval under
    // the gate's own role with a result the gate did not send.
    for (const name of [
      'ArchiveHashMismatches',
      'ArchiveAuditRecordsChanged',
      'ApprovalResultsUnderTollgateRole',
    ]) {
      expect(
        alarms.find((a) => a.MetricName === name),
        name,
      ).toMatchObject({
        Namespace: 'Tollgate',
        Dimensions: [{ Name: 'service', Value: g.tollgate.metrics.service }],
        Statistic: 'Sum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
      });
    }
    for (const a of alarms) expect(a.AlarmActions).toEqual([alarmTopic]);
    const depth = alarms.filter((a) => a.MetricName === 'ApproximateNumberOfMessagesVisible');
    expect(depth).toHaveLength(7);
    for (const a of depth) {
      expect(a).toMatchObject({
        Namespace: 'AWS/SQS',
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
      });
    }
    const queues = depth.map(
      (a) => (a.Dimensions as { Value: { 'Fn::GetAtt': string[] } }[])[0]?.Value['Fn::GetAtt'][0],
    );
    expect(queues.sort()).toEqual(
      [
        g.tollgate.undeliveredQueue,
        ...Object.values(g.tollgate.failedQueues),
        g.tollgate.undeliveredNotificationsQueue as IConstruct,
        g.tollgate.archive?.failedQueue as IConstruct,
      ]
        .map(logicalId)
        .sort(),
    );
    // A failed event Lambda cannot send to the function's queue is dropped, seen only by this metric: one
    // alarm per gate function, on that function, at the first one (and the archive's, for its batches).
    const dropped = alarms.filter((a) => a.MetricName === 'DestinationDeliveryFailures');
    expect(dropped).toHaveLength(FUNCTION_NAMES.length + 1);
    for (const a of dropped) {
      expect(a).toMatchObject({
        Namespace: 'AWS/Lambda',
        Statistic: 'Sum',
        Period: 300,
        EvaluationPeriods: 1,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [alarmTopic],
      });
    }
    for (const n of FUNCTION_NAMES) {
      const own = g.template.toJSON().Resources[logicalId(g.tollgate.alarms.undeliveredFailures[n])];
      expect(own?.Properties.MetricName, n).toBe('DestinationDeliveryFailures');
      expect(own?.Properties.Dimensions, n).toEqual([
        { Name: 'FunctionName', Value: { Ref: logicalId(g.tollgate.functions[n]) } },
      ]);
    }
    // As for AWS/Events: every AWS/Lambda name an alarm watches is one Lambda publishes.
    const lambdaPublished = readFileSync(
      join(cdkLib, 'aws-lambda/lib/lambda-canned-metrics.generated.js'),
      'utf8',
    );
    for (const a of alarms.filter((x) => x.Namespace === 'AWS/Lambda')) {
      expect(lambdaPublished, String(a.MetricName)).toContain(`metricName:"${String(a.MetricName)}"`);
    }
    const errors = alarms.filter((a) => a.MetricName === 'Errors');
    expect(errors).toHaveLength(5);
    for (const a of errors)
      expect(a).toMatchObject({
        Namespace: 'AWS/Lambda',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      });

    expect(alarms.find((a) => a.MetricName === 'GatesOverdue')).toMatchObject({
      Namespace: 'Tollgate',
      Dimensions: [{ Name: 'service', Value: g.tollgate.metrics.service }],
      Statistic: 'Maximum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'breaching',
      OKActions: [alarmTopic],
    });
    // baseline.yaml waits 30 minutes for a scan.
    expect(alarms.find((a) => a.MetricName === 'OldestWaitingMinutes')).toMatchObject({
      Namespace: 'Tollgate',
      Threshold: 30 + OVERDUE_MARGIN_MINUTES,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    // CloudWatch may publish to the (encrypted) alarm topic, for this account's alarms only.
    g.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [alarmTopic],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
          }),
        ]),
      },
    });
    g.template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });

  it('says in each alarm what repairs what failed: the sweep only where it does, a replay of the queue otherwise', () => {
    const text = (alarm: IConstruct, { template } = g): string => {
      const d = (template.findResources('AWS::CloudWatch::Alarm')[logicalId(alarm)]!.Properties as Json)
        .AlarmDescription as string | { 'Fn::Join': [string, (string | { Ref: string })[]] };
      return typeof d === 'string'
        ? d
        : d['Fn::Join'][1].map((p) => (typeof p === 'string' ? p : `<${p.Ref}>`)).join('');
    };
    const errors = g.tollgate.alarms.errors;
    // The sweep decides and acts for WAITING and DECIDED gates, and closes ACTED ones from CodePipeline's listing.
    for (const n of FUNCTION_NAMES) expect(text(errors[n]), n).not.toMatch(/the sweep repairs/);
    expect(text(errors['approval-started'])).toMatch(
      /the sweep's discovery opens the gates it did not, within 5 minutes; or replay its failed events/,
    );
    expect(text(errors['scan-finished'])).toMatch(
      /the sweep reads the scan and findings of every waiting gate itself/,
    );
    // The sweep asks 15 minutes after acting (or giving a gate up STALE), then less often as the approval waits
    // (shared/gate/reconcile.ts): not "15 minutes on".
    const asks =
      "when it next asks CodePipeline's listing \\(15 minutes after acting or giving up, then at intervals of a quarter of the approval's age, at most 6 hours\\)";
    expect(text(errors['approval-ended'])).toMatch(
      new RegExp(
        `the sweep closes the gates it did not \\(and records the end of those it gave up STALE\\) ${asks}, and names their reviewers from the listing \\(updatedBy\\), without CloudTrail's identity type and source identity: for those, replay its failed events`,
      ),
    );
    for (const n of FUNCTION_NAMES) {
      expect(text(errors[n]), n).not.toMatch(/15 minutes or so|15 minutes on/);
      expect(text(g.tollgate.alarms.undeliveredFailures[n]), n).not.toMatch(/15 minutes or so|15 minutes on/);
    }
    expect(text(errors.sweep)).toMatch(/the next sweep, a minute later/);
    const off = gate({ discoveryMinutes: 0 });
    expect(text(off.tollgate.alarms.errors['approval-started'], off)).toMatch(
      /discovery is off, so nothing opens the gates it did not: replay its failed events/,
    );
    expect(text(g.tollgate.alarms.lostEvents)).not.toMatch(/still finds/);
    expect(text(g.tollgate.alarms.lostEvents)).toMatch(
      /a lost approval end or PutApprovalResult record only by the sweep asking CodePipeline's listing \(15 minutes after the gate acted, was given up or ended, then while the approval runs at intervals of a quarter of its age, at most 6 hours; /,
    );
    expect(text(g.tollgate.alarms.lostEvents)).not.toMatch(/15 minutes on/);
    // A failed event Lambda dropped has no message to replay: each such alarm says so, and what the sweep
    // still repairs, never a replay.
    const dropped = g.tollgate.alarms.undeliveredFailures;
    for (const n of FUNCTION_NAMES) {
      expect(text(dropped[n]), n).toMatch(
        new RegExp(
          `^Tollgate: Lambda could not put events ${n} failed on into its failed-events queue .*: they are lost, with nothing to replay\\. ${n}'s log group has the failed invocations; `,
        ),
      );
      expect(text(dropped[n]), n).not.toMatch(/replay its failed events/);
    }
    expect(text(dropped['approval-started'])).toContain(
      "the sweep's discovery opens the gates it did not, within 5 minutes.",
    );
    expect(text(dropped['scan-finished'])).toContain(
      'the sweep reads the scan and findings of every waiting gate',
    );
    expect(text(dropped['approval-ended'])).toMatch(
      new RegExp(`the sweep closes the gates it did not .*${asks}`),
    );
    expect(text(dropped.sweep)).toContain('the next sweep, a minute later, takes up the gates');
    expect(text(off.tollgate.alarms.undeliveredFailures['approval-started'], off)).toContain(
      'discovery is off, so nothing opens the gates it did not: answer their approvals in CodePipeline.',
    );
    // CloudWatch holds an alarm's description to 1024 characters.
    for (const a of Object.values(g.template.findResources('AWS::CloudWatch::Alarm'))) {
      const d = (a.Properties as Json).AlarmDescription;
      expect(JSON.stringify(d).length, JSON.stringify(d)).toBeLessThan(1024);
    }
    // Lambda's destination record is what each message holds: invoking the function with it is the replay.
    for (const n of FUNCTION_NAMES) {
      expect(text(g.tollgate.alarms.failed[n]), n).toContain(
        `then invoke <${logicalId(g.tollgate.functions[n])}> with each message's body (a destination record is unwrapped).`,
      );
    }
  });

  it('pages when the deciding functions run without a policy they could load (PolicyInvalid)', () => {
    g.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'PolicyInvalid',
      Namespace: 'Tollgate',
      Dimensions: [{ Name: 'service', Value: g.tollgate.metrics.service }],
      Statistic: 'Sum',
      Period: 300,
      Threshold: 1,
      EvaluationPeriods: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: logicalId(g.tollgate.alarmTopic as sns.Topic) }],
      AlarmDescription: Match.stringLikeRegexp('every decision escalates'),
    });
  });

  it("shows every alarm, every alarmed queue and every function on the dashboard, the archive's too", () => {
    const [dashboard] = Object.values(g.template.findResources('AWS::CloudWatch::Dashboard'));
    // The body is a Fn::Join of text and references: the references are what must be there.
    const body = JSON.stringify(dashboard?.Properties?.DashboardBody);
    const alarms = Object.keys(g.template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarms.length).toBeGreaterThan(10);
    for (const id of alarms) expect(body, id).toContain(`"${id}","Arn"`);
    const queues = Object.entries(g.template.findResources('AWS::SQS::Queue')).map(([id]) => id);
    for (const id of queues) expect(body, id).toContain(`"${id}","QueueName"`);
    const functions = Object.keys(g.template.findResources('AWS::Lambda::Function')).filter((id) =>
      /Archive|ApprovalStarted|ScanFinished|ApprovalEnded|Sweep/.test(id),
    );
    expect(functions.length).toBe(5);
    for (const id of functions) expect(body, id).toContain(`{"Ref":"${id}"}`);
  });

  it('subscribes the escalation and alarm emails, with a dead-letter queue SNS may write to from those topics only', () => {
    const queue = logicalId(g.tollgate.undeliveredNotificationsQueue as IConstruct);
    g.template.resourceCountIs('AWS::SNS::Subscription', 2);
    const topics = [g.tollgate.topic, g.tollgate.alarmTopic].map((t) => logicalId(t as sns.Topic));
    for (const topic of topics) {
      g.template.hasResourceProperties('AWS::SNS::Subscription', {
        Protocol: 'email',
        Endpoint: 'security@example.com',
        TopicArn: { Ref: topic },
        RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [queue, 'Arn'] } },
      });
    }
    // Without the queue policy SNS could not dead-letter, and the message would be dropped: one statement
    // per topic, SendMessage only, for that topic's ARN.
    const [policy] = Object.values(
      g.template.findResources('AWS::SQS::QueuePolicy', { Properties: { Queues: [{ Ref: queue }] } }),
    );
    expect(policy).toBeDefined();
    const allows = (policy!.Properties.PolicyDocument.Statement as Statement[]).filter(
      (st) => st.Effect === 'Allow',
    );
    expect(
      allows.map((st) => [actionsOf(st), (st as unknown as { Principal?: unknown }).Principal, st.Condition]),
    ).toEqual(
      topics.map((topic) => [
        ['sqs:SendMessage'],
        { Service: 'sns.amazonaws.com' },
        { ArnEquals: { 'aws:SourceArn': { Ref: topic } } },
      ]),
    );
    expect(g.tollgate.alarms.undeliveredNotifications).toBeDefined();
  });

  it('passes cdk-nag AwsSolutions, every acknowledgement with a reason', () => {
    expect(nagViolations(g.stack)).toEqual([]);
    const reasons = g.stack.node
      .findAll()
      .flatMap((c) => c.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY))
      .flatMap((m) => Object.entries(m.data as Record<string, string>));
    expect(reasons.length).toBeGreaterThan(0);
    for (const [id, reason] of reasons) expect(reason.length, id).toBeGreaterThan(60);
  });

  it('acknowledges only findings that occur, on the construct they concern, never stack-wide', () => {
    const acks = acknowledgements(g.stack);
    expect(acks.length).toBeGreaterThan(0);
    expect(acks.filter((a) => a.path === g.stack.node.path || a.path === g.tollgate.node.path)).toEqual([]);
    expect(staleAcknowledgements(g.stack, acks)).toEqual([]);
  });
});

describe('the Tollgate construct, configured otherwise', () => {
  it('with ECR basic scanning: the ECR rule, ECR findings, no Inspector', () => {
    const { template, tollgate, stack } = gate({ scanSource: 'ecr' });
    expect(Object.keys(tollgate.rules).sort()).toEqual([
      'approvalEnded',
      'approvalResultCall',
      'approvalStarted',
      'ecrScan',
      'sweepSchedule',
    ]);
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.ecr'],
        'detail-type': ['ECR Image Scan'],
        detail: { 'image-digest': [{ exists: true }] },
      },
    });
    // The whole synthesized pattern, account pin included, is the one the rule-pattern tests check.
    const ecrRule = template.toJSON().Resources[logicalId(tollgate.rules.ecrScan as IConstruct)];
    expect(ecrRule.Properties.EventPattern).toEqual(
      rulePatterns({
        account: ENV.account,
        pipelines: ['*'],
        approvalActionNames: ['Tollgate*'],
        scanSource: 'ecr',
      }).ecrScan,
    );
    expect(ecrRule.Properties.EventPattern.account).toEqual([ENV.account]);
    const actions = statements(template).flatMap(actionsOf);
    expect(actions.filter((a) => a.startsWith('inspector2:'))).toEqual([]);
    expect(actions.filter((a) => a === 'ecr:DescribeImageScanFindings')).toHaveLength(3);
    // `*` pipelines: every pipeline of the account, acknowledged as such, still only Tollgate* actions.
    const put = statements(template).find((s) => actionsOf(s).includes('codepipeline:PutApprovalResult'));
    expect(resourcesOf(put as Statement).map(arnText)).toEqual([
      'arn:aws:codepipeline:eu-west-1:123456789012:*/*/Tollgate*',
    ]);
    expect(nagViolations(stack)).toEqual([]);
  });

  it('with an existing escalation topic: no topic of its own, publishes to that one', () => {
    const stack = new Stack(app(), 'Gate', { env: ENV });
    const topic = sns.Topic.fromTopicArn(stack, 'Existing', 'arn:aws:sns:eu-west-1:123456789012:secops');
    const tollgate = new Tollgate(stack, 'Tollgate', { policyFile: POLICY, escalation: { topic } });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SNS::Topic', 0); // the alarms follow the escalation target by default
    expect(tollgate.topic).toBe(topic);
    // Your topic, your subscriptions: no dead-letter queue of Tollgate's, and SNS gets no use of the key.
    expect(tollgate.undeliveredNotificationsQueue).toBeUndefined();
    expect(tollgate.alarms.undeliveredNotifications).toBeUndefined();
    expect(JSON.stringify(template.toJSON())).not.toContain('sns.amazonaws.com');
    const publish = statements(template).filter((s) => actionsOf(s).includes('sns:Publish'));
    expect(publish.flatMap(resourcesOf)).toEqual(Array(3).fill('arn:aws:sns:eu-west-1:123456789012:secops'));
    for (const a of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
      expect(a.Properties.AlarmActions).toEqual(['arn:aws:sns:eu-west-1:123456789012:secops']);
    }
    expect(nagViolations(stack)).toEqual([]);
  });

  it('with alarms to their own addresses: the alarm topic subscribes them, escalations stay apart', () => {
    const { template, tollgate, stack } = gate({ alarms: { emails: ['oncall@example.com'] } });
    const subscriptions = Object.values(template.findResources('AWS::SNS::Subscription')).map((r) => [
      r.Properties.Endpoint,
      r.Properties.TopicArn,
    ]);
    expect(subscriptions).toEqual(
      expect.arrayContaining([
        ['security@example.com', { Ref: logicalId(tollgate.topic as sns.Topic) }],
        ['oncall@example.com', { Ref: logicalId(tollgate.alarmTopic as sns.Topic) }],
      ]),
    );
    expect(subscriptions).toHaveLength(2);
    for (const a of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
      expect(a.Properties.AlarmActions).toEqual([{ Ref: logicalId(tollgate.alarmTopic as sns.Topic) }]);
    }
    expect(nagViolations(stack)).toEqual([]);
  });

  it('with alarms to an existing topic: no alarm topic of its own, every alarm goes there', () => {
    const stack = new Stack(app(), 'Gate', { env: ENV });
    const pager = sns.Topic.fromTopicArn(stack, 'Pager', 'arn:aws:sns:eu-west-1:123456789012:pager');
    new Tollgate(stack, 'Tollgate', {
      policyFile: POLICY,
      escalation: { emails: ['security@example.com'] },
      alarms: { topic: pager },
    });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SNS::Topic', 1); // the escalation topic
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarms.length).toBeGreaterThan(0);
    for (const a of alarms) {
      expect(a.Properties.AlarmActions).toEqual(['arn:aws:sns:eu-west-1:123456789012:pager']);
    }
  });

  it('lets CloudWatch use the key only when the alarms go to the topic Tollgate makes for them, encrypted with it', () => {
    const sourceArn = 'arn:aws:cloudwatch:eu-west-1:123456789012:alarm:*';
    const build = (
      topics: (scope: Stack) => Pick<TollgateProps, 'escalation' | 'alarms'>,
    ): { template: Template; tollgate: Tollgate } => {
      const stack = new Stack(app(), 'Gate', { env: ENV });
      const tollgate = new Tollgate(stack, 'Tollgate', { policyFile: POLICY, ...topics(stack) });
      return { template: Template.fromStack(stack), tollgate };
    };
    const topic = (name: string) => (scope: Stack) =>
      sns.Topic.fromTopicArn(scope, name, `arn:aws:sns:eu-west-1:123456789012:${name.toLowerCase()}`);
    // No topic of Tollgate's receives an alarm: CloudWatch gets no use of the key.
    const none: [string, (scope: Stack) => Pick<TollgateProps, 'escalation' | 'alarms'>][] = [
      [
        'both topics yours',
        (s) => ({ escalation: { topic: topic('SecOps')(s) }, alarms: { topic: topic('Ops')(s) } }),
      ],
      [
        'your escalation topic, the alarms following it',
        (s) => ({ escalation: { topic: topic('SecOps')(s) } }),
      ],
      [
        // Tollgate's escalation topic (encrypted with the key) receives escalations, never an alarm.
        'escalation emails, alarms to your topic',
        (s) => ({ escalation: { emails: ['security@example.com'] }, alarms: { topic: topic('Ops')(s) } }),
      ],
    ];
    for (const [name, topics] of none) {
      const { template, tollgate } = build(topics);
      expect(cloudWatchKeyGrants(template, tollgate), name).toEqual([]);
      for (const a of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
        expect(JSON.stringify(a.Properties.AlarmActions), name).toMatch(
          /^\["arn:aws:sns:eu-west-1:123456789012:/,
        );
      }
    }
    // Tollgate's alarm topic (alarm emails: given, or the escalation's), encrypted with the key: CloudWatch,
    // publishing an alarm to it, must use the key, for this account's alarms only.
    const some: [string, (scope: Stack) => Pick<TollgateProps, 'escalation' | 'alarms'>][] = [
      [
        'escalation emails, the alarms following them',
        () => ({ escalation: { emails: ['security@example.com'] } }),
      ],
      [
        'your escalation topic, alarm emails',
        (s) => ({ escalation: { topic: topic('SecOps')(s) }, alarms: { emails: ['oncall@example.com'] } }),
      ],
    ];
    for (const [name, topics] of some) {
      const { template, tollgate } = build(topics);
      const grants = cloudWatchKeyGrants(template, tollgate);
      expect(grants, name).toHaveLength(1);
      const condition = grants[0]!.Condition as { StringEquals: Json; ArnLike: Record<string, unknown> };
      expect(condition.StringEquals).toEqual({ 'aws:SourceAccount': ENV.account });
      expect(arnText(condition.ArnLike['aws:SourceArn'])).toBe(sourceArn);
      const alarmTopic = template.toJSON().Resources[logicalId(tollgate.alarmTopic as sns.Topic)];
      expect(alarmTopic.Properties.KmsMasterKeyId, name).toEqual({
        'Fn::GetAtt': [logicalId(tollgate.key), 'Arn'],
      });
    }
  });

  it("the largest glob configurations accepted deploy within IAM's limits on a role's policies, tokens at their longest", () => {
    // Many short globs: 7 × 9 approval ARNs is the most of these accepted (7 × 10 is refused, below); CDK moves
    // the statement into a managed policy of its own, which must hold it.
    const pipelines = (n: number) => Array.from({ length: n }, (_, i) => `checkout-api-prod-${i}`);
    const actions = (n: number) => Array.from({ length: n }, (_, i) => `SecurityGate${i}`);
    // Long globs: 22 pipelines of 100 characters and an action of 100 (23 refused), with the pattern quota
    // raised. CDK estimates an ARN that holds a token at 150 characters: unraised, it kept these 260-character
    // ARNs in the inline policy, over IAM's 10,240 characters.
    const long = (n: number) =>
      Array.from({ length: n }, (_, i) => `p${String(i).padStart(2, '0')}-${'x'.repeat(96)}`);
    const largest: Partial<TollgateProps>[] = [
      { pipelines: pipelines(7), approvalActionNames: actions(9) },
      { pipelines: long(22), approvalActionNames: [`A${'z'.repeat(99)}`], eventPatternLimit: 4096 },
      // Every glob the patterns allow of the default action: the pipelines' statement grows too.
      { pipelines: long(25), eventPatternLimit: 4096 },
    ];
    for (const props of largest) {
      const { template, tollgate } = gate(props);
      const sizes = rolePolicySizes(template);
      const label = `${props.pipelines?.length} × ${props.approvalActionNames?.length ?? 1}`;
      for (const name of FUNCTION_NAMES) {
        const role = sizes.get(logicalId(tollgate.roles[name]));
        expect(role, `${label} ${name}`).toBeDefined();
        expect(role!.inline, `${label} ${name}: inline`).toBeLessThanOrEqual(MAX_INLINE_POLICY_CHARACTERS);
        for (const size of role!.managed) {
          expect(size, `${label} ${name}: managed`).toBeLessThanOrEqual(MAX_MANAGED_POLICY_CHARACTERS);
        }
        // The statement is there, once, whichever policy holds it.
        const answers = role!.statements.filter((st) => st.sid === 'AnswerApprovals');
        expect(answers, `${label} ${name}`).toHaveLength(name === 'approval-ended' ? 0 : 1);
      }
    }
    // One glob more of either shape: refused at synth.
    expect(() => gate({ pipelines: pipelines(7), approvalActionNames: actions(10) })).toThrow(
      /^Tollgate: pipelines \/ approvalActionNames: expected globs whose PutApprovalResult statement /,
    );
    expect(() =>
      gate({ pipelines: long(23), approvalActionNames: [`A${'z'.repeat(99)}`], eventPatternLimit: 4096 }),
    ).toThrow(/got 23 pipeline × 1 approval action globs, 23 ARNs, whose statement is \d+ characters/);
  });

  it("two deployments in one account and region publish and alarm on metrics of their own (one's sweep cannot quiet the other's alarm)", () => {
    const shared = app();
    const prod = new TollgateStack(shared, 'TollgateProd', {
      env: ENV,
      tollgate: {
        policyFile: POLICY,
        pipelines: ['*-prod'],
        escalation: { emails: ['security@example.com'] },
      },
    });
    const dev = new TollgateStack(shared, 'TollgateDev', {
      env: ENV,
      tollgate: {
        policyFile: POLICY,
        pipelines: ['*-dev'],
        escalation: { emails: ['security@example.com'] },
      },
    });
    expect(prod.tollgate.metrics).toEqual({ namespace: 'Tollgate', service: 'TollgateProd/Tollgate' });
    expect(dev.tollgate.metrics).toEqual({ namespace: 'Tollgate', service: 'TollgateDev/Tollgate' });
    for (const stack of [prod, dev]) {
      const template = Template.fromStack(stack);
      const { service } = stack.tollgate.metrics;
      for (const fn of Object.values(template.findResources('AWS::Lambda::Function'))) {
        const env = (fn.Properties as { Environment: { Variables: Json } }).Environment.Variables;
        expect(env.POWERTOOLS_SERVICE_NAME).toBe(service);
      }
      const own = Object.values(template.findResources('AWS::CloudWatch::Alarm'))
        .map((a) => a.Properties as Json)
        .filter((a) => a.Namespace === 'Tollgate');
      // GatesOverdue, OldestWaitingMinutes, ApprovalResultsUnderTollgateRole, PolicyInvalid and the archive's
      // ArchiveHashMismatches and ArchiveAuditRecordsChanged.
      expect(own.map((a) => a.MetricName).sort()).toEqual([
        'ApprovalResultsUnderTollgateRole',
        'ArchiveAuditRecordsChanged',
        'ArchiveHashMismatches',
        'GatesOverdue',
        'OldestWaitingMinutes',
        'PolicyInvalid',
      ]);
      for (const a of own)
        expect(a.Dimensions, String(a.MetricName)).toEqual([{ Name: 'service', Value: service }]);
    }
  });

  it('in a nested stack, or under an id CloudWatch cannot take, each deployment still has metrics of its own', () => {
    const props = { policyFile: POLICY, escalation: { emails: ['security@example.com'] } };
    // One app deployed twice: the same construct paths, only the stack's name differs.
    const nested = (name: string, id = 'Tollgate') => {
      const top = new Stack(app(), 'Gate', { env: ENV, stackName: name });
      const inner = new NestedStack(top, 'Gates');
      return { stack: inner as Stack, tollgate: new Tollgate(inner, id, props) };
    };
    const prod = nested('prod-tollgate');
    const dev = nested('dev-tollgate');
    // The nearest stack with a name known at synth time, and the path through the nested stack.
    expect(prod.tollgate.metrics.service).toBe('prod-tollgate/Gates/Tollgate');
    expect(dev.tollgate.metrics.service).toBe('dev-tollgate/Gates/Tollgate');
    const prodOdd = nested('prod-odd', 'Péage');
    const devOdd = nested('dev-odd', 'Péage');
    const long = nested('prod-long', 'T'.repeat(300));
    for (const { tollgate } of [prodOdd, devOdd, long]) {
      expect(tollgate.metrics.service).toMatch(/^[\x20-\x7e]{1,255}$/);
    }
    expect(prodOdd.tollgate.metrics.service).toMatch(/^prod-odd\/[0-9a-f]{16}$/);
    expect(devOdd.tollgate.metrics.service).toBe(
      prodOdd.tollgate.metrics.service.replace('prod-odd', 'dev-odd'),
    );
    expect(long.tollgate.metrics.service).toMatch(/^prod-long\/[0-9a-f]{16}$/);
    const services = [prod, dev, prodOdd, devOdd, long].map((d) => d.tollgate.metrics.service);
    expect(new Set(services).size).toBe(services.length);
    // Stable across synths: the same app built again names the same service.
    expect(nested('prod-odd-again', 'Péage').tollgate.metrics.service).toBe(
      prodOdd.tollgate.metrics.service.replace('prod-odd', 'prod-odd-again'),
    );
    for (const { stack, tollgate } of [prod, dev, prodOdd, devOdd]) {
      const template = Template.fromStack(stack);
      const { service } = tollgate.metrics;
      const functions = Object.values(template.findResources('AWS::Lambda::Function'));
      expect(functions.length).toBeGreaterThan(0);
      for (const fn of functions) {
        const env = (fn.Properties as { Environment: { Variables: Json } }).Environment.Variables;
        expect(env.POWERTOOLS_SERVICE_NAME).toBe(service);
      }
      const own = Object.values(template.findResources('AWS::CloudWatch::Alarm'))
        .map((a) => a.Properties as Json)
        .filter((a) => a.Namespace === 'Tollgate');
      expect(own.length).toBeGreaterThan(0);
      for (const a of own)
        expect(a.Dimensions, String(a.MetricName)).toEqual([{ Name: 'service', Value: service }]);
    }
  });

  it('with an existing KMS-encrypted escalation topic: the deciding roles may use that key, and only they', () => {
    const keyArn = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const stack = new TollgateStack(app(), 'Gate', {
      env: ENV,
      tollgate: {
        policyFile: POLICY,
        escalation: { topicArn: 'arn:aws:sns:eu-west-1:123456789012:secops', keyArn },
      },
    });
    const template = Template.fromStack(stack);
    const keyStatements = statements(template).filter((st) => st.Sid === 'EscalationTopicKey');
    expect(keyStatements).toHaveLength(3);
    for (const st of keyStatements) {
      expect(actionsOf(st).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
      expect(resourcesOf(st)).toEqual([keyArn]);
    }
    for (const name of FUNCTION_NAMES) {
      const role = logicalId(stack.tollgate.roles[name]);
      const sids = statements(template, role).map((st) => st.Sid);
      expect(sids.includes('EscalationTopicKey'), name).toBe(name !== 'approval-ended');
    }
    expect(nagViolations(stack)).toEqual([]);
    // Without a key ARN (an unencrypted or AWS-managed-key topic) there is nothing to grant.
    const plain = new TollgateStack(app(), 'Plain', {
      env: ENV,
      tollgate: { policyFile: POLICY, escalation: { topicArn: 'arn:aws:sns:eu-west-1:123456789012:secops' } },
    });
    expect(statements(Template.fromStack(plain)).filter((st) => st.Sid === 'EscalationTopicKey')).toEqual([]);
  });

  it('with a KMS-encrypted topic of your own stack (its masterKey): the deciding roles may publish to it, with its key', () => {
    // Publishing to an SSE-KMS topic takes the publisher's use of the topic's key: without it, every
    // escalation would fail. Tollgate's own key is no use here, through SNS or not.
    const stack = new Stack(app(), 'Gate', { env: ENV });
    const masterKey = new kms.Key(stack, 'SecOpsKey', { enableKeyRotation: true });
    const topic = new sns.Topic(stack, 'SecOps', { masterKey, enforceSSL: true });
    const tollgate = new Tollgate(stack, 'Tollgate', { policyFile: POLICY, escalation: { topic } });
    const template = Template.fromStack(stack);
    expect(tollgate.topic).toBe(topic);
    template.resourceCountIs('AWS::SNS::Topic', 1); // yours: the alarms follow the escalation target
    const topicKey = logicalId(masterKey);
    for (const name of FUNCTION_NAMES) {
      const role = statements(template, logicalId(tollgate.roles[name]));
      const onTopicKey = role.filter((st) => JSON.stringify(st.Resource).includes(topicKey));
      const publish = role.filter((st) => actionsOf(st).includes('sns:Publish'));
      if (name === 'approval-ended') {
        expect(onTopicKey, name).toEqual([]);
        expect(publish, name).toEqual([]);
      } else {
        // The key of that topic, through SNS only; sns:Publish on that one topic only.
        expect(onTopicKey, name).toHaveLength(1);
        const st = onTopicKey[0]!;
        expect(st.Sid).toBe('EscalationTopicKey');
        expect(st.Effect).toBe('Allow');
        expect(actionsOf(st).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
        expect(resourcesOf(st)).toEqual([{ 'Fn::GetAtt': [topicKey, 'Arn'] }]);
        expect(st.Condition).toEqual({ StringEquals: { 'kms:ViaService': 'sns.eu-west-1.amazonaws.com' } });
        expect(publish.flatMap(resourcesOf), name).toEqual([{ Ref: logicalId(topic) }]);
      }
      // Tollgate's key is not SNS's to use for this role: the topic is not encrypted with it.
      const own = role.find((st) => st.Sid === 'Key') as Statement;
      expect(
        (own.Condition as { StringEquals: Record<string, string[]> }).StringEquals['kms:ViaService'],
        name,
      ).toEqual(['dynamodb.eu-west-1.amazonaws.com', 'sqs.eu-west-1.amazonaws.com']);
    }
    expect(nagViolations(tollgate)).toEqual([]);
  });

  it('with a topic whose masterKey is an alias of a key of your app: the key the alias names is granted, not the alias', () => {
    // An alias's keyArn is its alias ARN, which KMS never matches in an identity policy's Resource: granted
    // on it, every publish to the topic would be refused.
    const stack = new Stack(app(), 'Gate', { env: ENV });
    const key = new kms.Key(stack, 'SecOpsKey', { enableKeyRotation: true });
    const topic = new sns.Topic(stack, 'SecOps', {
      masterKey: key.addAlias('alias/secops'),
      enforceSSL: true,
    });
    const tollgate = new Tollgate(stack, 'Tollgate', { policyFile: POLICY, escalation: { topic } });
    for (const { name, role, st } of topicKeyGrants(stack, tollgate)) {
      expect(actionsOf(st).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
      expect(resourcesOf(st), name).toEqual([{ 'Fn::GetAtt': [logicalId(key), 'Arn'] }]);
      expect(st.Condition).toEqual({ StringEquals: { 'kms:ViaService': 'sns.eu-west-1.amazonaws.com' } });
      expect(JSON.stringify(role), name).not.toContain('alias/');
    }
    expect(nagViolations(stack)).toEqual([]);
    expect(staleAcknowledgements(stack)).toEqual([]);
  });

  it.each([
    ['imported by name', (stack: Stack) => kms.Alias.fromAliasName(stack, 'SecOpsAlias', 'alias/secops')],
    [
      'given as a key by its ARN',
      (stack: Stack) =>
        kms.Key.fromKeyArn(stack, 'SecOpsAlias', 'arn:aws:kms:eu-west-1:123456789012:alias/secops'),
    ],
  ] as const)(
    'with a topic whose masterKey is an alias %s: any key of the account carrying that alias, via SNS',
    (_, masterKey) => {
      const stack = new Stack(app(), 'Gate', { env: ENV });
      const topic = new sns.Topic(stack, 'SecOps', { masterKey: masterKey(stack), enforceSSL: true });
      const tollgate = new Tollgate(stack, 'Tollgate', { policyFile: POLICY, escalation: { topic } });
      for (const { name, role, st } of topicKeyGrants(stack, tollgate)) {
        expect(actionsOf(st).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
        expect(resourcesOf(st).map(arnText), name).toEqual(['arn:aws:kms:eu-west-1:123456789012:key/*']);
        expect(st.Condition).toEqual({
          StringEquals: { 'kms:ViaService': 'sns.eu-west-1.amazonaws.com' },
          'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/secops' },
        });
        // Never the alias ARN, which KMS does not match in a Resource.
        expect(JSON.stringify(role), name).not.toContain(':alias/');
      }
      // The key/* resource is a finding, acknowledged on each deciding role with why, and on nothing else.
      expect(nagViolations(stack)).toEqual([]);
      const acks = acknowledgements(stack).filter((a) => a.id.includes(':key/*'));
      expect(acks.map((a) => a.path).sort()).toEqual(
        FUNCTION_NAMES.filter((n) => n !== 'approval-ended')
          .map((n) => tollgate.roles[n].node.path)
          .sort(),
      );
      for (const a of acks) expect(a.reason).toContain('alias/secops');
      expect(staleAcknowledgements(stack)).toEqual([]);
    },
  );

  it('with a topic whose masterKey is an alias imported with its key (fromAliasAttributes): that key is granted', () => {
    const stack = new Stack(app(), 'Gate', { env: ENV });
    const keyArn = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const topic = new sns.Topic(stack, 'SecOps', {
      masterKey: kms.Alias.fromAliasAttributes(stack, 'SecOpsAlias', {
        aliasName: 'alias/secops',
        aliasTargetKey: kms.Key.fromKeyArn(stack, 'SecOpsKey', keyArn),
      }),
      enforceSSL: true,
    });
    const tollgate = new Tollgate(stack, 'Tollgate', { policyFile: POLICY, escalation: { topic } });
    const keyStatements = statements(Template.fromStack(stack)).filter(
      (st) => st.Sid === 'EscalationTopicKey',
    );
    expect(keyStatements).toHaveLength(3);
    for (const st of keyStatements) expect(resourcesOf(st)).toEqual([keyArn]);
    expect(nagViolations(tollgate)).toEqual([]);
  });

  it('with removalPolicy DESTROY (a sandbox): deletable table, key, queues and logs', () => {
    const { template } = gate({ removalPolicy: RemovalPolicy.DESTROY });
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Delete',
      Properties: Match.objectLike({ DeletionProtectionEnabled: false }),
    });
    template.hasResource('AWS::KMS::Key', {
      DeletionPolicy: 'Delete',
      Properties: Match.objectLike({ PendingWindowInDays: 7 }),
    });
    for (const type of ['AWS::SQS::Queue', 'AWS::Logs::LogGroup']) {
      for (const r of Object.values(template.findResources(type))) expect(r.DeletionPolicy).toBe('Delete');
    }
  });

  it('takes the overdue threshold from the policy’s waitMinutes', () => {
    const text = readFileSync(POLICY, 'utf8').replace('waitMinutes: 30', 'waitMinutes: 45');
    const { template, tollgate } = gate({ policyFile: tempPolicy(text) });
    expect(tollgate.waitMinutes).toBe(45);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'OldestWaitingMinutes',
      Threshold: 45 + OVERDUE_MARGIN_MINUTES,
    });
  });
});

describe('bad configuration is refused before anything is built', () => {
  const build = (props: Partial<TollgateProps>) => () =>
    new Tollgate(new Stack(app(), 'Gate', { env: ENV }), 'Tollgate', {
      policyFile: POLICY,
      escalation: { emails: ['security@example.com'] },
      ...props,
    });

  it('a bad glob, named by its prop and position', () => {
    expect(build({ pipelines: ['payments-*', 'pay/ments'] })).toThrow(
      `Tollgate: pipelines[1]: expected a pipeline name glob: 1 to 100 letters, digits, '.', '@', '-', '_' or '*'; got "pay/ments"`,
    );
    expect(build({ approvalActionNames: [] })).toThrow(
      /^Tollgate: approvalActionNames: expected a non-empty list/,
    );
  });

  it('no escalation address, or a bad one', () => {
    expect(build({ escalation: { emails: [] } })).toThrow(
      'Tollgate: escalation.emails: expected one or more email addresses; got []',
    );
    expect(build({ escalation: { emails: ['security'] } })).toThrow(
      'Tollgate: escalation.emails[0]: expected an email address (name@domain.tld); got "security"',
    );
  });

  it('an unknown scan source', () => {
    expect(build({ scanSource: 'trivy' as 'ecr' })).toThrow(
      'Tollgate: scanSource: expected one of inspector, ecr; got "trivy"',
    );
  });

  it('a bad policy: the loader’s own file:line:col message, as tollgate evaluate prints it', () => {
    const text =
      'version: 1\nname: broken\nrules:\n  - id: r1\n    action: deny\n    when: { severity: [CRITICAL] }\n';
    const file = tempPolicy(text);
    let loaderMessage = '';
    try {
      parsePolicy(text, file);
    } catch (e) {
      loaderMessage = (e as Error).message;
    }
    expect(loaderMessage).toMatch(
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:13: rules\\[0\\]\\.action: expected`),
    );
    expect(build({ policyFile: file })).toThrow(InputError);
    expect(build({ policyFile: file })).toThrow(loaderMessage);
  });

  it('globs whose rule patterns EventBridge would refuse at deploy (over 2048 characters), named by both props', () => {
    // Each glob valid, and within MAX_GLOBS: only their patterns, together, are too large.
    const long = Array.from(
      { length: 20 },
      (_, i) => `pipeline-${String(i).padStart(2, '0')}-${'x'.repeat(88)}`,
    );
    expect(build({ pipelines: long })).toThrow(
      new RegExp(
        `^Tollgate: pipelines / approvalActionNames: expected globs whose EventBridge rule patterns fit EventBridge's limit of ${MAX_PATTERN_CHARACTERS} characters per event pattern .*; got 20 pipeline and 1 approval action globs, whose approvalEnded rule's pattern is \\d+ characters$`,
      ),
    );
    expect(build({ approvalActionNames: long })).toThrow(/^Tollgate: pipelines \/ approvalActionNames: /);
    expect(build({ pipelines: long.slice(0, 10), approvalActionNames: long.slice(10) })).toThrow(
      /^Tollgate: pipelines \/ approvalActionNames: .*got 10 pipeline and 10 approval action globs/,
    );
    // Fewer: accepted.
    expect(build({ pipelines: long.slice(0, 15) })).not.toThrow();
  });

  it("globs whose PutApprovalResult statement IAM would refuse at deploy (over a managed policy's 6144 characters), named by both props", () => {
    // Each kind's patterns fit EventBridge's limit: only the ARNs, one per pipeline × action glob, are too many.
    const pipelines = Array.from({ length: 7 }, (_, i) => `checkout-api-prod-${i}`);
    const actions = Array.from({ length: 10 }, (_, i) => `SecurityGate${i}`);
    const e = configError(build({ pipelines, approvalActionNames: actions }));
    expect(e.key).toBe('pipelines / approvalActionNames');
    expect(e.message).toBe(
      'Tollgate: pipelines / approvalActionNames: expected globs whose PutApprovalResult statement (one resource ' +
        "ARN per pipeline glob × approval action glob, in one IAM statement, which cannot be split) fits IAM's " +
        'limit of 6144 characters per managed policy (fewer or broader globs: a common prefix as one `prefix*` ' +
        'glob); got 7 pipeline × 10 approval action globs, 70 ARNs, whose statement is 6786 characters ' +
        '(12-digit account, partition aws-us-gov, region us-isof-south-1)',
    );
    // 10 × 8, 12 × 12 and 25 × 25 such globs, all within the patterns' limit, are refused the same way.
    const many = (n: number, name: string) => Array.from({ length: n }, (_, i) => `${name}${i}`);
    for (const [p, a] of [
      [10, 8],
      [12, 12],
      [25, 25],
    ] as const) {
      expect(
        build({ pipelines: many(p, 'checkout-api-prod-'), approvalActionNames: many(a, 'SecurityGate') }),
      ).toThrow(`got ${p} pipeline × ${a} approval action globs, ${p * a} ARNs, whose statement is `);
    }
    // One action glob fewer: accepted.
    expect(build({ pipelines, approvalActionNames: actions.slice(0, 9) })).not.toThrow();
  });

  it('eventPatternLimit: whole characters from 2048 to 4096 (the quota raised), refused by its prop otherwise', () => {
    for (const bad of [2047, 4097, 3000.5, '4096' as unknown as number]) {
      const e = configError(build({ eventPatternLimit: bad }));
      expect(e.key, String(bad)).toBe('eventPatternLimit');
      expect(e.message).toMatch(
        /^Tollgate: eventPatternLimit: expected whole characters from 2048 \(EventBridge's default event pattern size quota\) to 4096, /,
      );
    }
    for (const ok of [2048, 4096]) {
      expect(build({ eventPatternLimit: ok })().config.eventPatternLimit).toBe(ok);
    }
    expect(build({})().config.eventPatternLimit).toBe(MAX_PATTERN_CHARACTERS);
  });

  it('globs over 2048 characters of pattern, accepted with eventPatternLimit 4096, are all in the rules', () => {
    const long = Array.from(
      { length: 20 },
      (_, i) => `pipeline-${String(i).padStart(2, '0')}-${'x'.repeat(88)}`,
    );
    // The default limit refuses them, and the message says how to raise it.
    expect(build({ pipelines: long })).toThrow(
      "(fewer or shorter globs: a common prefix as one `prefix*` glob; or raise the account's quota and set eventPatternLimit / tollgate:eventPatternLimit, up to 4096)",
    );
    const stack = new Stack(app(), 'Gate', { env: ENV });
    new Tollgate(stack, 'Tollgate', {
      policyFile: POLICY,
      escalation: { emails: ['security@example.com'] },
      pipelines: long,
      eventPatternLimit: 4096,
    });
    const rules = Object.values(Template.fromStack(stack).findResources('AWS::Events::Rule'))
      .filter((r) => r.Properties.EventPattern !== undefined)
      .map((r) => JSON.stringify(r.Properties.EventPattern));
    const withGlobs = rules.filter((p) => p.includes(long[0]!));
    expect(withGlobs.length).toBeGreaterThan(0);
    for (const p of withGlobs) for (const glob of long) expect(p).toContain(glob);
    expect(Math.max(...withGlobs.map((p) => p.length))).toBeGreaterThan(MAX_PATTERN_CHARACTERS);
  });

  /** The config error a Tollgate built with these props (beside a policy and an address) stops with. */
  const refused = (props: (scope: Stack) => Partial<TollgateProps>, env: typeof ENV | undefined = ENV) =>
    configError(() => {
      const stack = new Stack(app(), 'Gate', env ? { env } : {});
      new Tollgate(stack, 'Tollgate', {
        policyFile: POLICY,
        escalation: { emails: ['security@example.com'] },
        ...props(stack),
      });
    });

  it('a topic in another region or partition than the stack’s, named by its prop (SNS would refuse every publish)', () => {
    const topicIn = (arn: string) => (scope: Stack) => sns.Topic.fromTopicArn(scope, 'Existing', arn);
    const east = topicIn('arn:aws:sns:us-east-1:123456789012:secops');
    expect(refused((scope) => ({ escalation: { topic: east(scope) } })).message).toBe(
      "Tollgate: escalation.topic: expected an SNS topic in the stack's region, eu-west-1 (partition aws): the " +
        "functions publish escalations with their own region's SNS client, and SNS refuses another region's topic; " +
        'got "arn:aws:sns:us-east-1:123456789012:secops" (region us-east-1)',
    );
    // The alarms' topic: CloudWatch alarm actions must be in the alarm's region.
    expect(refused((scope) => ({ alarms: { topic: east(scope) } })).message).toBe(
      "Tollgate: alarms.topic: expected an SNS topic in the stack's region, eu-west-1 (partition aws): a CloudWatch " +
        'alarm\'s actions must be in the alarm\'s region; got "arn:aws:sns:us-east-1:123456789012:secops" (region us-east-1)',
    );
    // The same region's name in another partition is another region.
    const china = topicIn('arn:aws-cn:sns:eu-west-1:123456789012:secops');
    expect(refused((scope) => ({ escalation: { topic: china(scope) } })).message).toMatch(
      /^Tollgate: escalation\.topic: expected an SNS topic in the stack's region, eu-west-1 \(partition aws\): .*; got "arn:aws-cn:sns:eu-west-1:123456789012:secops" \(partition aws-cn\)$/,
    );
    // A topic made in a stack of another region, named by token: its stack's region tells.
    const other = new Stack(app(), 'Elsewhere', { env: { ...ENV, region: 'us-east-1' } });
    const made = new sns.Topic(other, 'Made');
    expect(refused(() => ({ escalation: { topic: made } })).message).toMatch(
      /^Tollgate: escalation\.topic: expected an SNS topic in the stack's region, eu-west-1: .*; got a topic in us-east-1$/,
    );
    // The stack's region unknown (an environment-agnostic stack): nothing to compare with.
    const stack = new Stack(app(), 'Agnostic');
    expect(
      () =>
        new Tollgate(stack, 'Tollgate', {
          policyFile: POLICY,
          escalation: { topic: east(stack) },
        }),
    ).not.toThrow();
    // The stack from props names the prop; the same region is accepted.
    const fromProps = (topicArn: string) => () =>
      new TollgateStack(app(), 'Gate', {
        env: ENV,
        tollgate: { policyFile: POLICY, escalation: { topicArn } },
      });
    expect(configError(fromProps('arn:aws:sns:us-east-1:123456789012:secops')).key).toBe('escalation.topic');
    expect(fromProps('arn:aws:sns:eu-west-1:123456789012:secops')).not.toThrow();
  });

  it('a topic SNS would refuse every publish to: no SNS topic ARN, or a FIFO topic (a token passes)', () => {
    const standard = 'a standard SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)';
    const notFifo =
      'not a FIFO topic: SNS refuses a publish to one without a MessageGroupId, which Tollgate does not send, ' +
      "and a CloudWatch alarm's actions cannot publish to one";
    for (const key of ['escalation', 'alarms'] as const) {
      const imported = (arn: string) => (scope: Stack) => ({
        [key]: { topic: sns.Topic.fromTopicArn(scope, 'Existing', arn) },
      });
      expect(refused(imported('arn:aws:sqs:eu-west-1:123456789012:q')).message).toBe(
        `Tollgate: ${key}.topic: expected ${standard}; got "arn:aws:sqs:eu-west-1:123456789012:q"`,
      );
      // No region to compare it with (an environment-agnostic stack): still no topic's ARN.
      expect(refused(imported('arn:aws:sns:eu-west-1:123:secops'), undefined).message).toBe(
        `Tollgate: ${key}.topic: expected ${standard}; got "arn:aws:sns:eu-west-1:123:secops"`,
      );
      const asTopic = { topicArn: 'secops' } as unknown as sns.ITopic;
      expect(refused(() => ({ [key]: { topic: asTopic } })).message).toBe(
        `Tollgate: ${key}.topic: expected ${standard}; got "secops"`,
      );
      for (const env of [ENV, undefined]) {
        expect(refused(imported('arn:aws:sns:eu-west-1:123456789012:secops.fifo'), env).message).toBe(
          `Tollgate: ${key}.topic: expected ${standard}, ${notFifo}; got "arn:aws:sns:eu-west-1:123456789012:secops.fifo"`,
        );
        // Made in the stack, its ARN a token: CDK's `fifo` says it.
        expect(
          refused((scope) => ({ [key]: { topic: new sns.Topic(scope, 'Fifo', { fifo: true }) } }), env)
            .message,
        ).toBe(`Tollgate: ${key}.topic: expected a standard SNS topic, ${notFifo}; got a FIFO topic`);
      }
    }
    // A topic imported by a CloudFormation parameter cannot be read at synth: it passes, as before.
    const stack = new Stack(app(), 'Gate', { env: ENV });
    const parameter = new CfnParameter(stack, 'TopicArn').valueAsString;
    expect(
      () =>
        new Tollgate(stack, 'Tollgate', {
          policyFile: POLICY,
          escalation: { topic: sns.Topic.fromTopicArn(stack, 'Escalations', parameter) },
          alarms: { topic: sns.Topic.fromTopicArn(stack, 'Alarms', parameter) },
        }),
    ).not.toThrow();
    // From context and from the stack's props, by their own names.
    const ctx = (values: Json) => (key: string) => values[key];
    const fifo = 'arn:aws:sns:eu-west-1:123456789012:secops.fifo';
    expect(
      configError(() => contextConfig(ctx({ [CONTEXT_KEYS.escalationTopicArn]: fifo }), {})).message,
    ).toBe(`Tollgate: tollgate:escalationTopicArn: expected ${standard}, ${notFifo}; got "${fifo}"`);
    expect(
      configError(() =>
        contextConfig(
          ctx({ [CONTEXT_KEYS.escalationEmails]: ['a@example.com'], [CONTEXT_KEYS.alarmTopicArn]: fifo }),
          {},
        ),
      ).key,
    ).toBe('tollgate:alarmTopicArn');
    expect(
      configError(
        () =>
          new TollgateStack(app(), 'Gate', {
            env: ENV,
            tollgate: { policyFile: POLICY, escalation: { topicArn: fifo } },
          }),
      ).message,
    ).toBe(`Tollgate: escalation.topic: expected ${standard}, ${notFifo}; got "${fifo}"`);
  });

  it('dashboard and archive other than true or false (a JS caller, props read from JSON or YAML), and no props at all', () => {
    // 'false' is truthy: it would build the compliance-mode archive no one can delete; 0 would leave it out.
    for (const [prop, value, got] of [
      ['archive', 'false', '"false"'],
      ['archive', 0, '0'],
      ['archive', 'true', '"true"'],
      ['dashboard', 'false', '"false"'],
      ['dashboard', 1, '1'],
    ] as const) {
      expect(configError(build({ [prop]: value } as unknown as Partial<TollgateProps>)).message, prop).toBe(
        `Tollgate: ${prop}: expected true or false; got ${got}`,
      );
    }
    for (const props of [undefined, null, [], 'props.yaml']) {
      expect(
        configError(
          () =>
            new Tollgate(
              new Stack(app(), 'Gate', { env: ENV }),
              'Tollgate',
              props as unknown as TollgateProps,
            ),
        ).message,
        String(props),
      ).toBe(
        `Tollgate: props: expected an object of Tollgate props ({ policyFile, escalation, … }); got ${props === undefined ? 'nothing' : JSON.stringify(props)}`,
      );
    }
    // The globs alone, as the app checks them before building: the same message, not a TypeError.
    expect(configError(() => resolveGlobs(undefined as unknown as TollgateProps)).key).toBe('props');
    // Booleans, and leaving them out, still build.
    const built = gate({ archive: false, dashboard: false });
    expect([built.tollgate.archive, built.tollgate.dashboard]).toEqual([undefined, undefined]);
    expect(
      resolveConfig({ policyFile: POLICY, escalation: { emails: ['security@example.com'] } }),
    ).toMatchObject({
      archive: true,
      dashboard: false,
    });
  });

  it('a policy file that is not there', () => {
    expect(build({ policyFile: 'no/such/policy.yaml' })).toThrow(
      'no/such/policy.yaml: expected a readable policy file; got no such file',
    );
  });
});

describe("the sweep's discovery of approvals no STARTED event announced", () => {
  const sweepEnv = (t: ReturnType<typeof gate>) =>
    (
      t.template.findResources('AWS::Lambda::Function')[logicalId(t.tollgate.functions.sweep)]!
        .Properties as {
        Environment: { Variables: Json };
      }
    ).Environment.Variables;
  const listing = (t: ReturnType<typeof gate>) =>
    FUNCTION_NAMES.filter((n) =>
      statements(t.template, logicalId(t.tollgate.roles[n])).some((s) =>
        actionsOf(s).includes('codepipeline:ListPipelines'),
      ),
    );

  it("gives the sweep the event rules' own globs, and ListPipelines (resource *) only with discovery on", () => {
    const t = gate({ pipelines: ['payments-*', 'billing-api'], approvalActionNames: ['Tollgate*', 'Gate'] });
    expect(sweepEnv(t)).toMatchObject({
      TOLLGATE_PIPELINES: '["payments-*","billing-api"]',
      TOLLGATE_APPROVAL_ACTIONS: '["Tollgate*","Gate"]',
      TOLLGATE_DISCOVERY_MINUTES: '5',
    });
    expect(listing(t)).toEqual(['sweep']);
    const find = statements(t.template, logicalId(t.tollgate.roles.sweep)).find(
      (s) => s.Sid === 'FindPipelines',
    );
    expect(actionsOf(find as Statement)).toEqual(['codepipeline:ListPipelines']);
    expect(resourcesOf(find as Statement)).toEqual(['*']);
    for (const n of FUNCTION_NAMES.filter((f) => f !== 'sweep')) {
      const fn = t.template.findResources('AWS::Lambda::Function')[logicalId(t.tollgate.functions[n])]!;
      const env = (fn.Properties as { Environment: { Variables: Json } }).Environment.Variables;
      expect(env.TOLLGATE_PIPELINES, n).toBeUndefined();
    }
    // Literal pipeline names too: the list says which pipelines run in PARALLEL mode. A discovery turned off
    // needs nothing.
    expect(listing(gate({ pipelines: ['billing-api', 'payments-api'] }))).toEqual(['sweep']);
    const off = gate({ discoveryMinutes: 0 });
    expect(listing(off)).toEqual([]);
    expect(sweepEnv(off).TOLLGATE_DISCOVERY_MINUTES).toBe('0');
  });

  it('gives the sweep ListPipelineExecutions (PARALLEL mode) on the gated pipelines only, and only with discovery on', () => {
    const roleListing = (t: ReturnType<typeof gate>) =>
      FUNCTION_NAMES.flatMap((n) =>
        statements(t.template, logicalId(t.tollgate.roles[n]))
          .filter((s) => actionsOf(s).includes('codepipeline:ListPipelineExecutions'))
          .map((s) => [n, s.Sid, resourcesOf(s).map(arnText)]),
      );
    const pipelines = ['payments-*', 'billing-api'];
    const expected = pipelineArns({
      partition: 'aws',
      region: ENV.region,
      account: ENV.account,
      pipelines,
      approvalActionNames: ['Tollgate*'],
    });
    expect(roleListing(gate({ pipelines }))).toEqual([['sweep', 'ReadPipelines', expected]]);
    expect(roleListing(gate({ pipelines, discoveryMinutes: 0 }))).toEqual([]);
  });

  it('refuses a discoveryMinutes that is not whole minutes from 0 to 60, by prop and by context key', () => {
    for (const bad of [-1, 1.5, 61, Number.NaN, '5' as unknown as number]) {
      const e = configError(() => gate({ discoveryMinutes: bad }));
      expect(e.key).toBe('discoveryMinutes');
      expect(e.message).toMatch(/^Tollgate: discoveryMinutes: expected whole minutes from 0 \(off\) to 60 /);
    }
    const ctx = (values: Json) => (key: string) => values[key];
    const base = { [CONTEXT_KEYS.escalationEmails]: ['a@example.com'] };
    expect(
      contextConfig(ctx({ ...base, [CONTEXT_KEYS.discoveryMinutes]: '15' }), {}).props.tollgate,
    ).toMatchObject({ discoveryMinutes: 15 });
    expect(
      configError(() => contextConfig(ctx({ ...base, [CONTEXT_KEYS.discoveryMinutes]: 'hourly' }), {}))
        .message,
    ).toBe(
      'Tollgate: tollgate:discoveryMinutes: expected whole minutes from 0 (off) to 60 between two searches for approvals no event announced; got "hourly"',
    );
  });
});

describe('reading executions and the by-token index: only where a gate opens', () => {
  it('grants GetPipelineExecution and a by-token Query to the sweep only with discovery on, GetPipelineExecution to approval-started, never to scan-finished', () => {
    const on = gate();
    const off = gate({ discoveryMinutes: 0 });
    const holders = (t: ReturnType<typeof gate>, has: (s: Statement) => boolean) =>
      FUNCTION_NAMES.filter((n) => statements(t.template, logicalId(t.tollgate.roles[n])).some(has));
    const action = (a: string) => (s: Statement) => actionsOf(s).includes(a);
    const onIndex = (index: string) => (s: Statement) =>
      actionsOf(s).includes('dynamodb:Query') && JSON.stringify(resourcesOf(s)).includes(`/index/${index}"`);
    // Only `GateService.identify` reads an execution (its variables; whether a tag names its image), and only
    // a gate's opening runs it: approval-started, and the sweep's discovery opening one for a lost start.
    expect(holders(on, action('codepipeline:GetPipelineExecution'))).toEqual(['approval-started', 'sweep']);
    expect(holders(off, action('codepipeline:GetPipelineExecution'))).toEqual(['approval-started']);
    // The reads every deciding function makes stay, discovery or not.
    for (const t of [on, off]) {
      for (const a of ['codepipeline:GetPipelineState', 'codepipeline:ListActionExecutions']) {
        expect(holders(t, action(a)), a).toEqual(['approval-started', 'scan-finished', 'sweep']);
      }
      expect(holders(t, onIndex('open-gates'))).toEqual(['sweep']);
    }
    // by-token: CloudTrail's answer to its gate (approval-ended), and discovery's "has a gate seen this token?".
    expect(holders(on, onIndex('by-token'))).toEqual(['approval-ended', 'sweep']);
    expect(holders(off, onIndex('by-token'))).toEqual(['approval-ended']);
  });
});

describe('the stack from CDK context', () => {
  const ctx = (values: Json) => (key: string) => values[key];

  it('reads lists as JSON arrays or comma-separated strings, and defaults to the example environment', () => {
    const c = contextConfig(
      ctx({
        [CONTEXT_KEYS.pipelines]: 'payments-*, billing-api',
        [CONTEXT_KEYS.approvalActionNames]: '["Tollgate*","SecurityGate"]',
        [CONTEXT_KEYS.escalationEmails]: 'a@example.com,b@example.com',
        [CONTEXT_KEYS.scanSource]: 'ecr',
        [CONTEXT_KEYS.logRetentionDays]: '90',
        [CONTEXT_KEYS.removalPolicy]: 'destroy',
        [CONTEXT_KEYS.dashboard]: 'true',
      }),
      {},
    );
    expect(c.exampleEnv).toBe(true);
    expect(c.props.env).toEqual({ account: '123456789012', region: 'eu-west-1' });
    expect(c.props.tollgate).toMatchObject({
      pipelines: ['payments-*', 'billing-api'],
      approvalActionNames: ['Tollgate*', 'SecurityGate'],
      escalation: { emails: ['a@example.com', 'b@example.com'] },
      scanSource: 'ecr',
      logRetention: 90,
      removalPolicy: RemovalPolicy.DESTROY,
      dashboard: true,
      policyFile: 'examples/policies/baseline.yaml',
    });
  });

  it("reads tollgate:dashboard and tollgate:archive as booleans, -c's strings too, and refuses anything else by its key", () => {
    const base = { [CONTEXT_KEYS.escalationEmails]: ['a@example.com'], [CONTEXT_KEYS.policyFile]: POLICY };
    for (const [value, expected] of [
      ['false', false],
      [false, false],
      ['true', true],
      [true, true],
    ] as const) {
      expect(
        contextConfig(ctx({ ...base, [CONTEXT_KEYS.dashboard]: value, [CONTEXT_KEYS.archive]: value }), {})
          .props.tollgate,
      ).toMatchObject({ dashboard: expected, archive: expected });
    }
    for (const key of [CONTEXT_KEYS.dashboard, CONTEXT_KEYS.archive]) {
      expect(configError(() => contextConfig(ctx({ ...base, [key]: 'no' }), {})).message).toBe(
        `Tollgate: ${key}: expected true or false; got "no"`,
      );
    }
    // `-c tollgate:archive=false` as the CLI passes it builds no archive (and the stack's strings reach the
    // construct as booleans, which it now checks).
    const { stack } = tollgateStackFromContext(
      app({ ...base, [CONTEXT_KEYS.archive]: 'false', [CONTEXT_KEYS.dashboard]: 'true' }),
    );
    expect(stack.tollgate.archive).toBeUndefined();
    expect(stack.tollgate.dashboard).toBeDefined();
  });

  it('reads tollgate:eventPatternLimit as the eventPatternLimit prop, and refuses a bad one by its key', () => {
    const base = { [CONTEXT_KEYS.escalationEmails]: ['a@example.com'] };
    expect(CONTEXT_KEYS.eventPatternLimit).toBe('tollgate:eventPatternLimit');
    expect(
      contextConfig(ctx({ ...base, [CONTEXT_KEYS.eventPatternLimit]: '4096' }), {}).props.tollgate,
    ).toMatchObject({ eventPatternLimit: 4096 });
    expect(
      contextConfig(ctx({ ...base, [CONTEXT_KEYS.eventPatternLimit]: 3000 }), {}).props.tollgate,
    ).toMatchObject({ eventPatternLimit: 3000 });
    expect(contextConfig(ctx(base), {}).props.tollgate).not.toHaveProperty('eventPatternLimit');
    for (const [bad, got] of [
      ['5000', '5000'],
      ['2047', '2047'],
      ['high', '"high"'],
      ['', '""'],
    ]) {
      expect(
        configError(() => contextConfig(ctx({ ...base, [CONTEXT_KEYS.eventPatternLimit]: bad }), {})).message,
        bad,
      ).toBe(
        "Tollgate: tollgate:eventPatternLimit: expected whole characters from 2048 (EventBridge's default event " +
          `pattern size quota) to 4096, the account's raised quota; got ${got}`,
      );
    }
    // Large globs: refused by both keys under the default, accepted with the key, before anything is built.
    const large = {
      ...base,
      [CONTEXT_KEYS.pipelines]: Array.from(
        { length: 20 },
        (_, i) => `p${String(i).padStart(2, '0')}-${'y'.repeat(96)}`,
      ),
    };
    expect(configError(() => gatedGlobs(contextConfig(ctx(large), {}))).message).toMatch(
      /^Tollgate: tollgate:pipelines \/ tollgate:approvalActionNames: .*set eventPatternLimit \/ tollgate:eventPatternLimit, up to 4096\)/,
    );
    const raised = contextConfig(ctx({ ...large, [CONTEXT_KEYS.eventPatternLimit]: '4096' }), {});
    expect(gatedGlobs(raised).pipelines).toHaveLength(20);
  });

  it('takes the CLI’s account and region only with credentials (the CLI always guesses a region)', () => {
    const base = { [CONTEXT_KEYS.escalationEmails]: ['a@example.com'] };
    expect(contextConfig(ctx(base), { CDK_DEFAULT_REGION: 'us-east-1' }).props.env).toEqual(ENV);
    expect(
      contextConfig(ctx(base), { CDK_DEFAULT_ACCOUNT: '210987654321', CDK_DEFAULT_REGION: 'us-east-2' }).props
        .env,
    ).toEqual({ account: '210987654321', region: 'us-east-2' });
    expect(
      contextConfig(
        ctx({ ...base, [CONTEXT_KEYS.account]: '111122223333', [CONTEXT_KEYS.region]: 'eu-central-1' }),
        {},
      ).props.env,
    ).toEqual({ account: '111122223333', region: 'eu-central-1' });
  });

  it('reads tollgate:logRetentionDays as the other numeric keys: whole days, as a number or its digits', () => {
    const base = { [CONTEXT_KEYS.escalationEmails]: ['a@example.com'] };
    const retention = (value: unknown) =>
      contextConfig(ctx({ ...base, [CONTEXT_KEYS.logRetentionDays]: value } as Json), {}).props.tollgate
        .logRetention;
    expect(retention('30')).toBe(30);
    expect(retention(' 7 ')).toBe(7);
    expect(retention(90)).toBe(90);
    const expected =
      'whole days, a retention CloudWatch Logs offers (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, ' +
      '545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653; 9999: kept forever)';
    // `Number()` would have read each as an allowed retention: true as 1, [30] and 0x1E as 30.
    for (const [bad, got] of [
      [true, 'true'],
      [[30], '[30]'],
      ['0x1E', '"0x1E"'],
      ['1e1', '"1e1"'],
      ['30.0', '"30.0"'],
      ['ONE_MONTH', '"ONE_MONTH"'],
      [100, '100'],
      [30.5, '30.5'],
    ] as const) {
      const e = configError(() => retention(bad));
      expect(e.message, String(bad)).toBe(
        `Tollgate: tollgate:logRetentionDays: expected ${expected}; got ${got}`,
      );
    }
    // The prop itself: a RetentionDays value, never one of the enum's member names.
    const prop = configError(() =>
      gate({ logRetention: 'ONE_YEAR' as unknown as NonNullable<TollgateProps['logRetention']> }),
    );
    expect(prop.message).toBe(`Tollgate: logRetention: expected ${expected}; got "ONE_YEAR"`);
  });

  it('names the context key of a bad value', () => {
    const base = { [CONTEXT_KEYS.escalationEmails]: ['a@example.com'] };
    expect(configError(() => contextConfig(ctx({}), {})).message).toBe(
      'Tollgate: tollgate:escalationEmails or tollgate:escalationTopicArn: expected who receives escalations: email addresses or an SNS topic ARN; got neither',
    );
    expect(
      configError(() => contextConfig(ctx({ ...base, [CONTEXT_KEYS.removalPolicy]: 'snapshot' }), {}))
        .message,
    ).toBe('Tollgate: tollgate:removalPolicy: expected retain or destroy; got "snapshot"');
    expect(
      configError(() => contextConfig(ctx({ ...base, [CONTEXT_KEYS.logRetentionDays]: 100 }), {})).key,
    ).toBe('tollgate:logRetentionDays');
    expect(
      configError(() => contextConfig(ctx({ ...base, [CONTEXT_KEYS.escalationTopicArn]: 'secops' }), {}))
        .message,
    ).toMatch(
      /^Tollgate: tollgate:escalationEmails \/ tollgate:escalationTopicArn: expected one of the two; got both$/,
    );
    // `-c tollgate:escalationEmails=` clears the addresses cdk.json sets, so that `-c` can name a topic instead.
    const topic = 'arn:aws:sns:eu-west-1:123456789012:secops';
    expect(
      contextConfig(
        ctx({ ...base, [CONTEXT_KEYS.escalationEmails]: '', [CONTEXT_KEYS.escalationTopicArn]: topic }),
        {},
      ).props.tollgate.escalation,
    ).toEqual({ topicArn: topic });
    expect(
      configError(() => contextConfig(ctx({ ...base, [CONTEXT_KEYS.escalationEmails]: [] }), {})).message,
    ).toBe(
      'Tollgate: tollgate:escalationEmails or tollgate:escalationTopicArn: expected who receives escalations: email addresses or an SNS topic ARN; got neither',
    );
    // A problem the construct finds is reported by the context key that set it.
    const scope = app({
      ...base,
      [CONTEXT_KEYS.pipelines]: 'payments-*,pay ments',
      [CONTEXT_KEYS.policyFile]: POLICY,
    });
    expect(configError(() => tollgateStackFromContext(scope)).message).toMatch(
      /^Tollgate: tollgate:pipelines\[1\]: expected a pipeline name glob.*; got "pay ments"$/,
    );
    const bad = app({
      [CONTEXT_KEYS.escalationEmails]: 'a@example.com,not-an-address',
      [CONTEXT_KEYS.policyFile]: POLICY,
    });
    expect(configError(() => tollgateStackFromContext(bad)).key).toBe('tollgate:escalationEmails[1]');
  });

  it('gives the globs the stack will use without building it, a bad one named as the stack names it', () => {
    const base = { [CONTEXT_KEYS.escalationEmails]: ['a@example.com'], [CONTEXT_KEYS.policyFile]: POLICY };
    const scope = app(base);
    expect(gatedGlobs(configFromContext(scope))).toEqual({
      pipelines: ['*'],
      approvalActionNames: ['Tollgate*'],
    });
    // The app checks the demo pipeline against these before building: nothing may be built yet.
    expect(scope.node.children).toHaveLength(0);
    expect(
      gatedGlobs(configFromContext(app({ ...base, [CONTEXT_KEYS.pipelines]: 'pay**,pay*,billing' }))),
    ).toEqual({ pipelines: ['pay*', 'billing'], approvalActionNames: ['Tollgate*'] });
    const bad = { ...base, [CONTEXT_KEYS.approvalActionNames]: 'Tollgate*,bad name' };
    const fromStack = configError(() => tollgateStackFromContext(app(bad))).message;
    expect(fromStack).toMatch(/^Tollgate: tollgate:approvalActionNames\[1\]: expected /);
    expect(configError(() => gatedGlobs(configFromContext(app(bad)))).message).toBe(fromStack);
    // Globs whose patterns are over EventBridge's limit: both keys named, before anything is built.
    const large = {
      ...base,
      [CONTEXT_KEYS.pipelines]: Array.from(
        { length: 20 },
        (_, i) => `p${String(i).padStart(2, '0')}-${'y'.repeat(96)}`,
      ),
    };
    const tooLarge = configError(() => gatedGlobs(configFromContext(app(large)))).message;
    expect(tooLarge).toMatch(
      /^Tollgate: tollgate:pipelines \/ tollgate:approvalActionNames: expected globs whose EventBridge rule patterns fit EventBridge's limit of 2048 characters/,
    );
    expect(configError(() => tollgateStackFromContext(app(large))).message).toBe(tooLarge);
  });

  it('reads the alarm target and an existing escalation topic with its key, and refuses bad ARNs', () => {
    const base = { [CONTEXT_KEYS.escalationEmails]: ['a@example.com'] };
    expect(
      contextConfig(ctx({ ...base, [CONTEXT_KEYS.alarmEmails]: 'oncall@example.com' }), {}).props.tollgate
        .alarms,
    ).toEqual({ emails: ['oncall@example.com'] });
    expect(
      contextConfig(
        ctx({ ...base, [CONTEXT_KEYS.alarmTopicArn]: 'arn:aws:sns:eu-west-1:123456789012:pager' }),
        {},
      ).props.tollgate.alarms,
    ).toEqual({ topicArn: 'arn:aws:sns:eu-west-1:123456789012:pager' });
    // No alarm target: the construct sends alarms where escalations go.
    expect(contextConfig(ctx(base), {}).props.tollgate.alarms).toBeUndefined();
    const keyArn = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const topic = {
      [CONTEXT_KEYS.escalationTopicArn]: 'arn:aws:sns:eu-west-1:123456789012:secops',
      [CONTEXT_KEYS.escalationTopicKeyArn]: keyArn,
    };
    expect(contextConfig(ctx(topic), {}).props.tollgate.escalation).toEqual({
      topicArn: 'arn:aws:sns:eu-west-1:123456789012:secops',
      keyArn,
    });
    expect(
      configError(() =>
        contextConfig(ctx({ [CONTEXT_KEYS.escalationTopicArn]: 'arn:aws:sqs:eu-west-1:123456789012:q' }), {}),
      ).message,
    ).toBe(
      'Tollgate: tollgate:escalationTopicArn: expected a standard SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME); got "arn:aws:sqs:eu-west-1:123456789012:q"',
    );
    expect(
      configError(() =>
        contextConfig(ctx({ ...topic, [CONTEXT_KEYS.escalationTopicKeyArn]: 'alias/secops' }), {}),
      ).message,
    ).toBe(
      'Tollgate: tollgate:escalationTopicKeyArn: expected a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) or an alias ARN (arn:aws:kms:REGION:ACCOUNT:alias/NAME); got "alias/secops"',
    );
    // An alias's ARN, as infra/README.md says: the construct grants the key carrying the alias.
    const aliasArn = 'arn:aws:kms:eu-west-1:123456789012:alias/secops';
    expect(
      contextConfig(ctx({ ...topic, [CONTEXT_KEYS.escalationTopicKeyArn]: aliasArn }), {}).props.tollgate
        .escalation,
    ).toEqual({ topicArn: 'arn:aws:sns:eu-west-1:123456789012:secops', keyArn: aliasArn });
    expect(
      configError(() => contextConfig(ctx({ ...base, [CONTEXT_KEYS.alarmTopicArn]: 'pager' }), {})).key,
    ).toBe('tollgate:alarmTopicArn');
    expect(
      configError(() =>
        contextConfig(
          ctx({
            ...base,
            [CONTEXT_KEYS.alarmEmails]: 'oncall@example.com',
            [CONTEXT_KEYS.alarmTopicArn]: 'arn:aws:sns:eu-west-1:123456789012:pager',
          }),
          {},
        ),
      ).message,
    ).toBe('Tollgate: tollgate:alarmEmails / tollgate:alarmTopicArn: expected one of the two; got both');
    // A topic key without the topic would be ignored: with the addresses, or alone.
    for (const given of [{}, { [CONTEXT_KEYS.escalationEmails]: [] }]) {
      expect(
        configError(() =>
          contextConfig(ctx({ ...base, ...given, [CONTEXT_KEYS.escalationTopicKeyArn]: keyArn }), {}),
        ).message,
      ).toBe(
        `Tollgate: tollgate:escalationTopicKeyArn: expected a key only with tollgate:escalationTopicArn; got "${keyArn}" without it`,
      );
    }
    // The stack's name leaves room for the demo stack's (<name>DemoPipeline) and the workgroup's (<name>-audit).
    expect(
      contextConfig(ctx({ ...base, [CONTEXT_KEYS.stackName]: `T${'a'.repeat(115)}` }), {}).stackName,
    ).toHaveLength(116);
    expect(
      configError(() => contextConfig(ctx({ ...base, [CONTEXT_KEYS.stackName]: `T${'a'.repeat(116)}` }), {}))
        .key,
    ).toBe('tollgate:stackName');
  });

  it('refuses an escalation or alarm topic ARN in another region than the stack’s, naming the key and the region’s source', () => {
    const base = { [CONTEXT_KEYS.escalationEmails]: ['a@example.com'] };
    const east = 'arn:aws:sns:us-east-1:123456789012:secops';
    expect(
      configError(() => contextConfig(ctx({ [CONTEXT_KEYS.escalationTopicArn]: east }), {})).message,
    ).toBe(
      "Tollgate: tollgate:escalationTopicArn: expected an SNS topic in the stack's region, eu-west-1 (partition aws), " +
        "from the example environment (set tollgate:region): the functions publish escalations with their own region's " +
        `SNS client, and SNS refuses another region's topic; got "${east}" (region us-east-1)`,
    );
    expect(
      configError(() =>
        contextConfig(
          ctx({ ...base, [CONTEXT_KEYS.alarmTopicArn]: east, [CONTEXT_KEYS.region]: 'eu-west-1' }),
          {},
        ),
      ).message,
    ).toBe(
      "Tollgate: tollgate:alarmTopicArn: expected an SNS topic in the stack's region, eu-west-1 (partition aws), from " +
        "tollgate:region: a CloudWatch alarm's actions must be in the alarm's region; " +
        `got "${east}" (region us-east-1)`,
    );
    // The credentials' region, named as such; another partition is refused too.
    const credentials = { CDK_DEFAULT_ACCOUNT: '111111111111', CDK_DEFAULT_REGION: 'eu-central-1' };
    expect(
      configError(() => contextConfig(ctx({ ...base, [CONTEXT_KEYS.alarmTopicArn]: east }), credentials))
        .message,
    ).toMatch(
      /region, eu-central-1 \(partition aws\), from your credentials' region \(CDK_DEFAULT_REGION\): /,
    );
    expect(
      configError(() =>
        contextConfig(
          ctx({ [CONTEXT_KEYS.escalationTopicArn]: 'arn:aws-us-gov:sns:eu-west-1:123456789012:secops' }),
          {},
        ),
      ).message,
    ).toMatch(/; got "arn:aws-us-gov:sns:eu-west-1:123456789012:secops" \(partition aws-us-gov\)$/);
    // In the stack's region: accepted.
    const inEast = { [CONTEXT_KEYS.escalationTopicArn]: east, [CONTEXT_KEYS.region]: 'us-east-1' };
    expect(contextConfig(ctx(inEast), {}).props.tollgate.escalation).toEqual({ topicArn: east });
  });

  it('refuses a context key it would ignore, and suggests the one meant', () => {
    const message = (keys: string[]) => configError(() => checkContextKeys(keys)).message;
    expect(message(['tollgate:scanSorce'])).toBe(
      'Tollgate: tollgate:scanSorce: expected a context key Tollgate reads (did you mean tollgate:scanSource?); got one it would ignore',
    );
    // Without the prefix, or in another case: the same key, which the app would not read.
    expect(message(['pipelines'])).toMatch(/did you mean tollgate:pipelines\?/);
    expect(message(['Tollgate:escalationEmails'])).toMatch(/did you mean tollgate:escalationEmails\?/);
    expect(message(['tollgate.approvalActionNames'])).toMatch(/did you mean tollgate:approvalActionNames\?/);
    // Nothing near: the list of keys.
    expect(message(['tollgate:colour'])).toMatch(
      /\(one of tollgate:stackName, tollgate:account, .*tollgate:demoPipeline\)/,
    );
    // The wait is the policy's: the message says where it lives.
    expect(message(['tollgate:waitMinutes'])).toMatch(
      /^Tollgate: tollgate:waitMinutes: expected no such key: how long a gate waits for a scan is the policy's settings\.scan\.waitMinutes \(the file tollgate:policyFile names\)/,
    );
    expect(message(['waitminutes'])).toMatch(/settings\.scan\.waitMinutes/);
    // Every key it reads, and context that is not Tollgate's (CDK's flags), pass.
    expect(() =>
      checkContextKeys([
        ...Object.values(CONTEXT_KEYS),
        'cli-telemetry',
        '@aws-cdk/aws-lambda:recognizeLayerVersion',
        'aws:cdk:enable-path-metadata',
      ]),
    ).not.toThrow();
    // The stack from context checks before it builds anything: a mistyped list would have gated every pipeline.
    const scope = app({
      [CONTEXT_KEYS.escalationEmails]: ['a@example.com'],
      [CONTEXT_KEYS.policyFile]: POLICY,
      'tollgate:pipeline': ['payments-*'],
    });
    expect(configError(() => tollgateStackFromContext(scope)).message).toMatch(
      /^Tollgate: tollgate:pipeline: expected a context key Tollgate reads \(did you mean tollgate:pipelines\?\)/,
    );
  });

  it('builds the stack cdk.json describes, cdk-nag clean', () => {
    const cdkJson = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')) as { context: Json };
    const scope = app({ ...cdkJson.context, [CONTEXT_KEYS.policyFile]: POLICY });
    const { stack } = tollgateStackFromContext(scope);
    expect(stack).toBeInstanceOf(TollgateStack);
    expect(stack.stackName).toBe('Tollgate');
    expect({ account: stack.account, region: stack.region }).toEqual(ENV);
    expect(nagViolations(stack)).toEqual([]);
  });
});

describe('bundling', () => {
  it('bundles each function with esbuild and ships the validated policy as policy.json to those that decide', () => {
    const outdir = tempDir('tollgate-synth-');
    const scope = new App({ analyticsReporting: false, outdir });
    const stack = new Stack(scope, 'Gate', { env: ENV });
    const tollgate = new Tollgate(stack, 'Tollgate', {
      policyFile: POLICY,
      escalation: { emails: ['security@example.com'] },
    });
    const template = Template.fromStack(stack);
    const policy = parsePolicy(readFileSync(POLICY), POLICY);
    for (const name of FUNCTION_NAMES) {
      const code = template.toJSON().Resources[logicalId(tollgate.functions[name])].Properties.Code as {
        S3Key: string;
      };
      const dir = join(outdir, `asset.${code.S3Key.replace(/\.zip$/, '')}`);
      const head = readFileSync(join(dir, 'index.mjs'), 'utf8').slice(0, 200);
      expect(head).toContain('createRequire');
      if (!READS_POLICY.has(name)) {
        // approval-ended closes gates without the policy: a policy change leaves its asset unchanged.
        expect(readdirSync(dir).sort(), name).toEqual(['index.mjs', 'index.mjs.map']);
        continue;
      }
      expect(readdirSync(dir).sort(), name).toEqual(['index.mjs', 'index.mjs.map', 'policy.json']);
      const shipped = JSON.parse(readFileSync(join(dir, 'policy.json'), 'utf8')) as {
        sha256: string;
        policy: unknown;
      };
      expect(shipped.sha256).toBe(policy.sha256);
      expect(shipped.policy).toEqual(policy.policy);
    }
    expect([...READS_POLICY].sort()).toEqual(['approval-started', 'scan-finished', 'sweep']);
  }, 120_000);
});
