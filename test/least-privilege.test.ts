import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { App, type CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { ensureTable, TABLE_DEFINITION } from '../adapters/dynamodb/table.js';
import { FUNCTION_NAMES, type ScanSource } from '../infra/patterns.js';
import { Tollgate } from '../infra/tollgate.js';
import { exampleScenarios } from '../reliability/scenarios.js';
import { runScenario, type SimulationOptions } from '../simulator/run.js';
import { loadScenario } from '../simulator/scenario.js';
import type { CallRecord, World } from '../simulator/world.js';
import { useLocalDynamo } from './gate-harness.js';
import { ROOT } from './helpers.js';

/*
 * The roles are tight enough to be safe (test/infra.test.ts) and wide enough to work: every AWS call each
 * function makes in every example scenario, replayed through the real handlers, is granted to that
 * function's role in the template the construct synthesizes for the scenario's configuration (its scan
 * source, its pipeline and action names as globs), conditions included: a grant of the right action on the
 * right resource is no grant if its Condition refuses the request. A missing grant would not approve anything (the gate fails
 * closed), but it would stop Tollgate working in a real account while every other test passed.
 */

const dynamo = useLocalDynamo();
const DIR = join(ROOT, 'examples', 'scenarios');
// The whole folder, not one extension: the test below holds it to the reliability suite's listing, so a
// scenario in a format a filter here would miss (the loader reads YAML too) is replayed or fails that test.
const FILES = readdirSync(DIR).sort();
const POLICY = join(ROOT, 'examples/policies/baseline.yaml');

type Json = Record<string, unknown>;
interface Statement {
  readonly Sid?: string;
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
  readonly Condition?: Record<string, Record<string, unknown>>;
}

/** What IAM authorises for one call: each action with the resource it is checked against. */
interface Need {
  readonly action: string;
  /**
   * An ARN (partition `aws`); `*` for an action IAM checks against no resource; or what the template names by
   * token: a DynamoDB target (`table`, `index/<name>`), the `topic`.
   */
  readonly resource: string;
  /**
   * The request's values of the condition keys the test knows for this call (`dynamodb:LeadingKeys`,
   * `events:source`). A statement conditioned on a key missing here makes `granted` throw: IAM would decide on
   * a value the test does not have, and `ForAllValues` over no values is true, the opposite of a check.
   */
  readonly context?: Readonly<Record<string, readonly string[]>>;
}

const SERVICE: Readonly<Record<string, string>> = {
  GetPipelineState: 'codepipeline',
  GetPipelineExecution: 'codepipeline',
  ListActionExecutions: 'codepipeline',
  ListPipelines: 'codepipeline',
  ListPipelineExecutions: 'codepipeline',
  PutApprovalResult: 'codepipeline',
  ListFindings: 'inspector2',
  ListCoverage: 'inspector2',
  DescribeImages: 'ecr',
  DescribeImageScanFindings: 'ecr',
  Publish: 'sns',
  PutEvents: 'events',
  GetItem: 'dynamodb',
  PutItem: 'dynamodb',
  Query: 'dynamodb',
};

/** A transaction is authorised per item, as the item's own operation (DynamoDB's IAM documentation). */
const TRANSACT_ACTION: Readonly<Record<string, string>> = {
  Put: 'dynamodb:PutItem',
  Update: 'dynamodb:UpdateItem',
  Delete: 'dynamodb:DeleteItem',
  ConditionCheck: 'dynamodb:ConditionCheckItem',
};

const TABLE_PARTITION_KEY = TABLE_DEFINITION.KeySchema.find((k) => k.KeyType === 'HASH')!.AttributeName!;

/** An attribute value as the document client sends it, or as the low-level client does (`{ S: … }`). */
function stringValue(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  const s = (value as { S?: unknown } | undefined)?.S;
  return typeof s === 'string' ? s : undefined;
}

/** `dynamodb:LeadingKeys` of a call on the base table: the partition key of its item (a Key or an Item). */
function leadingKeys(call: string, item: unknown): NonNullable<Need['context']> {
  const value = stringValue((item as Json | undefined)?.[TABLE_PARTITION_KEY]);
  if (value === undefined) throw new Error(`${call}: no ${TABLE_PARTITION_KEY} the test can read`);
  return { 'dynamodb:LeadingKeys': [value] };
}

/** The partition a base-table Query reads: the value its key condition gives the partition key. */
function queriedPartition(input: Json): string {
  const expression = String(input.KeyConditionExpression ?? '');
  const names = (input.ExpressionAttributeNames ?? {}) as Record<string, string>;
  const values = (input.ExpressionAttributeValues ?? {}) as Json;
  for (const clause of expression.split(/\s+AND\s+/i)) {
    const m = /^\s*(#?[A-Za-z0-9_]+)\s*=\s*(:[A-Za-z0-9_]+)\s*$/.exec(clause);
    if (!m) continue;
    const name = m[1]!.startsWith('#') ? names[m[1]!] : m[1];
    if (name !== TABLE_PARTITION_KEY) continue;
    const value = stringValue(values[m[2]!]);
    if (value !== undefined) return value;
  }
  throw new Error(`a Query whose partition the test cannot read: ${JSON.stringify(expression)}`);
}

function needs(call: CallRecord, account: string, region: string): Need[] {
  const input = call.input;
  if (call.operation === 'TransactWriteItems') {
    return ((input.TransactItems as Json[] | undefined) ?? []).map((item) => {
      const kind = Object.keys(item)[0] ?? '';
      const action = TRANSACT_ACTION[kind];
      if (!action) throw new Error(`a transaction item of an unknown kind: ${kind}`);
      const request = item[kind] as Json;
      return { action, resource: 'table', context: leadingKeys(action, request.Item ?? request.Key) };
    });
  }
  const service = SERVICE[call.operation];
  if (!service) throw new Error(`no IAM action known for the call ${call.operation}: add it here`);
  const action = `${service}:${call.operation}`;
  if (service === 'dynamodb') {
    const index = input.IndexName;
    // An index query's leading keys are left out: no statement on an index is conditioned, and if one were,
    // `granted` would throw rather than guess which partition key IAM reads there.
    if (typeof index === 'string') return [{ action, resource: `index/${index}` }];
    const context =
      call.operation === 'Query'
        ? { 'dynamodb:LeadingKeys': [queriedPartition(input)] }
        : leadingKeys(action, input.Key ?? input.Item);
    return [{ action, resource: 'table', context }];
  }
  const text = (field: string): string => {
    const value = input[field];
    if (typeof value !== 'string' || value === '')
      throw new Error(`${call.operation}: no ${field} in its input`);
    return value;
  };
  if (call.operation === 'PutEvents') {
    // Authorised entry by entry, on the entry's bus: its source is the request's `events:source`.
    const entries = (input.Entries as Json[] | undefined) ?? [];
    if (entries.length === 0) throw new Error('a PutEvents call with no entries');
    return entries.map((entry) => ({
      action,
      resource: `arn:aws:events:${region}:${account}:event-bus/${String(entry.EventBusName ?? 'default')}`,
      context: { 'events:source': [String(entry.Source)] },
    }));
  }
  if (call.operation === 'PutApprovalResult') {
    const { pipelineName, stageName, actionName } = input as Record<string, string>;
    return [
      {
        action,
        resource: `arn:aws:codepipeline:${region}:${account}:${pipelineName}/${stageName}/${actionName}`,
      },
    ];
  }
  // ListPipelines has no resource-level permission: IAM checks it against "*".
  if (call.operation === 'ListPipelines') return [{ action, resource: '*' }];
  switch (service) {
    case 'codepipeline':
      return [
        {
          action,
          resource: `arn:aws:codepipeline:${region}:${account}:${text(call.operation === 'GetPipelineState' ? 'name' : 'pipelineName')}`,
        },
      ];
    case 'ecr':
      return [
        {
          action,
          resource: `arn:aws:ecr:${region}:${String(input.registryId ?? account)}:repository/${text('repositoryName')}`,
        },
      ];
    case 'sns':
      // The template names the topic by a token: the one topic the stack has is what the test can compare.
      text('TopicArn');
      return [{ action, resource: 'topic' }];
    case 'inspector2':
      // ListFindings and ListCoverage take no resource-level permissions: IAM checks them against `*`.
      return [{ action, resource: '*' }];
    default:
      throw new Error(`no resource known for the call ${call.operation}: add it here`);
  }
}

/** IAM's wildcards in an ARN pattern: `*` any run of characters, `?` one. */
function arnMatches(pattern: string, arn: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(arn);
}

/**
 * A template resource as text: ARNs with the partition, region and account resolved, the table and its
 * indexes by name, the topic as `topic`. Any other token throws: read as a wildcard or as text, it would
 * grant or refuse by accident.
 */
function resourceText(resource: unknown, names: ResourceNames): string {
  if (typeof resource === 'string') return resource;
  const json = resource as Json;
  if (typeof json.Ref === 'string' && json.Ref === names.topic) return 'topic';
  const getAtt = json['Fn::GetAtt'] as [string, string] | undefined;
  const unknown = () => new Error(`a resource the test cannot read: ${JSON.stringify(resource)}`);
  if (getAtt) {
    if (getAtt[0] === names.table && getAtt[1] === 'Arn') return 'table';
    throw unknown();
  }
  const join = json['Fn::Join'] as [string, unknown[]] | undefined;
  if (!join) throw unknown();
  return join[1]
    .map((part) => {
      if (typeof part === 'string') return part;
      const p = part as Json;
      if (p.Ref === 'AWS::Partition') return 'aws';
      const att = p['Fn::GetAtt'] as [string, string] | undefined;
      if (att && att[0] === names.table && att[1] === 'Arn') return 'table';
      throw unknown();
    })
    .join(join[0])
    .replace(/^table\//, '');
}

const STATEMENT_FIELDS = new Set(['Sid', 'Effect', 'Action', 'Resource', 'Condition']);

/** The logical ids of the resources the template names by token. */
interface ResourceNames {
  readonly table: string;
  readonly topic: string;
}

/**
 * Whether the statements grant the need. Every statement is checked before any is applied, and every one whose
 * action and resource match is evaluated: a statement this evaluator cannot judge (a Deny, an unknown field or
 * condition) must throw even after one that already grants, since IAM would weigh it too.
 */
function granted(statements: readonly Statement[], need: Need, names: ResourceNames): boolean {
  for (const s of statements) checkStatement(s);
  const grants = statements.map((s) => {
    const actions = Array.isArray(s.Action) ? s.Action : [s.Action];
    if (!actions.includes(need.action)) return false;
    const resources = (Array.isArray(s.Resource) ? s.Resource : [s.Resource]).map((r) =>
      resourceText(r, names),
    );
    const matched = resources.some((r) =>
      need.resource.startsWith('arn:') || need.resource === '*'
        ? arnMatches(r, need.resource)
        : r === need.resource,
    );
    if (!matched) return false;
    return conditionsHold(s, need);
  });
  return grants.some(Boolean);
}

/**
 * Throws on a statement of a shape the evaluator does not implement. Deny, NotAction, NotResource, Principal…:
 * an evaluator that skipped them would grant what IAM refuses.
 */
function checkStatement(s: Statement): void {
  const unknown = Object.keys(s).filter((k) => !STATEMENT_FIELDS.has(k));
  if (s.Effect !== 'Allow' || unknown.length > 0) {
    throw new Error(
      `statement ${s.Sid}: the test evaluates Allow statements of ${[...STATEMENT_FIELDS]}, not ${JSON.stringify(s)}`,
    );
  }
  const actions: unknown[] = Array.isArray(s.Action) ? s.Action : [s.Action];
  if (actions.length === 0 || !actions.every((a) => typeof a === 'string')) {
    throw new Error(`statement ${s.Sid}: an Action other than names: ${JSON.stringify(s.Action)}`);
  }
  if (s.Condition === undefined) return;
  if (typeof s.Condition !== 'object' || s.Condition === null || Array.isArray(s.Condition)) {
    throw new Error(`statement ${s.Sid}: a Condition that is not a block: ${JSON.stringify(s.Condition)}`);
  }
  for (const [operator, block] of Object.entries(s.Condition)) {
    comparisonOf(s, operator);
    if (typeof block !== 'object' || block === null || Array.isArray(block)) {
      throw new Error(`statement ${s.Sid}: ${operator} is not a block of keys: ${JSON.stringify(block)}`);
    }
    for (const [key, expected] of Object.entries(block)) {
      const patterns: unknown[] = Array.isArray(expected) ? expected : [expected];
      if (patterns.length === 0 || !patterns.every((p) => typeof p === 'string')) {
        throw new Error(`statement ${s.Sid}: ${operator} ${key} compares to ${JSON.stringify(expected)}`);
      }
    }
  }
}

/** IAM's string comparisons: `StringLike` takes `*` and `?` as `arnMatches` does. */
const STRING_OPERATORS: Readonly<Record<string, (pattern: string, value: string) => boolean>> = {
  StringEquals: (pattern, value) => pattern === value,
  StringLike: arnMatches,
};

/** A condition operator's comparison and whether it is `ForAllValues:`; throws on any other operator. */
function comparisonOf(
  s: Statement,
  operator: string,
): { readonly compare: (pattern: string, value: string) => boolean; readonly forAll: boolean } {
  const m = /^(ForAllValues:)?([A-Za-z]+)$/.exec(operator);
  const compare = m ? STRING_OPERATORS[m[2]!] : undefined;
  if (!m || !compare)
    throw new Error(`statement ${s.Sid}: condition operator ${operator} is not implemented`);
  return { compare, forAll: m[1] !== undefined };
}

/**
 * A statement's Condition block for the need: every operator and key must hold. Only what the template uses is
 * implemented (`StringEquals` / `StringLike`, alone or as `ForAllValues:`); any other operator, a value the
 * template leaves to CloudFormation (refused by `checkStatement`), or a key whose request value the need does
 * not carry throws, so a condition is never ignored.
 */
function conditionsHold(s: Statement, need: Need): boolean {
  for (const [operator, block] of Object.entries(s.Condition ?? {})) {
    const { compare, forAll } = comparisonOf(s, operator);
    for (const [key, expected] of Object.entries(block)) {
      const patterns = (Array.isArray(expected) ? expected : [expected]) as string[];
      const values = need.context?.[key];
      if (values === undefined || values.length === 0) {
        throw new Error(
          `statement ${s.Sid}: the test does not know ${key} for ${need.action} ${need.resource}`,
        );
      }
      if (!forAll && values.length !== 1) {
        throw new Error(`statement ${s.Sid}: ${operator} on ${key}, which this request gives several values`);
      }
      if (!values.every((v) => patterns.some((p) => compare(p, v)))) return false;
    }
  }
  return true;
}

interface Roles {
  readonly names: ResourceNames;
  readonly statements: Readonly<Record<string, Statement[]>>;
}

/** The construct's roles for a configuration, from its synthesized template (bundling skipped). */
function roles(
  account: string,
  region: string,
  scanSource: ScanSource,
  pipelines: string[],
  actions: string[],
  /** The sweep's discovery period (the construct's default, 5, when not given; 0: off). */
  discoveryMinutes?: number,
): Roles {
  const app = new App({ analyticsReporting: false, context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Gate', { env: { account, region } });
  const tollgate = new Tollgate(stack, 'Tollgate', {
    policyFile: POLICY,
    escalation: { emails: ['security@example.com'] },
    scanSource,
    pipelines,
    approvalActionNames: actions,
    ...(discoveryMinutes === undefined ? {} : { discoveryMinutes }),
  });
  const resources = Template.fromStack(stack).toJSON().Resources as Record<
    string,
    { Type: string; Properties: Json }
  >;
  const id = (c: { node: { defaultChild?: unknown } }) =>
    stack.getLogicalId(c.node.defaultChild as CfnElement);
  const statements: Record<string, Statement[]> = {};
  for (const name of FUNCTION_NAMES) {
    const role = id(tollgate.roles[name]);
    statements[name] = Object.values(resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy')
      .filter((r) => (r.Properties.Roles as { Ref: string }[]).some((x) => x.Ref === role))
      .flatMap((r) => (r.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
  }
  return { names: { table: id(tollgate.table), topic: id(tollgate.topic) }, statements };
}

let tables = 0;

/**
 * Replays the scenario and lists the calls its role does not grant, with the template built for the
 * scenario's configuration: the names its approvals carry (or `pipelines`, as a platform engineer would
 * write them).
 */
async function ungranted(
  file: string,
  options: Partial<SimulationOptions> = {},
  pipelines?: string[],
  discoveryMinutes?: number,
  /** Given every call the functions made, after the replay. */
  onCalls?: (calls: readonly CallRecord[]) => void,
): Promise<string[]> {
  const { client } = dynamo();
  const tableName = `tollgate-least-privilege-${process.pid}-${++tables}`;
  await ensureTable(client, tableName);
  const loaded = loadScenario(join(DIR, file));
  let world: World | undefined;
  await runScenario(loaded, {
    doc: client,
    tableName,
    onWorld: (w) => {
      world = w;
    },
    ...options,
  });
  const { account, region, scanSource } = loaded.scenario;
  const calls = world!.calls.filter((c) => c.caller !== undefined);
  expect(calls.length).toBeGreaterThan(0);
  onCalls?.(calls);
  const answered = calls.filter((c) => c.operation === 'PutApprovalResult').map((c) => c.input);
  const names = (field: string) => [...new Set(answered.map((i) => String(i[field])))];
  const gate = roles(
    account,
    region,
    scanSource,
    pipelines ?? (answered.length > 0 ? names('pipelineName') : ['*']),
    answered.length > 0 ? names('actionName') : ['*'],
    discoveryMinutes,
  );
  const missing = calls.flatMap((call) =>
    needs(call, account, region)
      .filter((need) => !granted(gate.statements[call.caller!] ?? [], need, gate.names))
      .map(
        (need) =>
          `${call.caller}: ${need.action} ${need.resource}${need.context ? ` ${JSON.stringify(need.context)}` : ''}`,
      ),
  );
  return [...new Set(missing)];
}

describe('every call a function makes is granted to its role', () => {
  it('replays the example scenarios the reliability suite replays, and there are some', () => {
    expect(FILES.length).toBeGreaterThan(0);
    expect(FILES.map((f) => join(DIR, f))).toEqual(exampleScenarios().map((s) => s.file));
  });

  it.each(FILES)(
    '%s',
    async (file) => {
      expect(await ungranted(file)).toEqual([]);
    },
    60_000,
  );

  it.each([
    ['01-clean-image-approved.json', 'billing-*'],
    // A tag in CustomData: the sweep resolves it, as approval-started would have.
    ['02-critical-rejected.json', 'payments-*'],
    // PARALLEL mode: the sweep lists the pipeline's executions and their runs.
    ['10-parallel-mode-approval-started-event-lost.json', 'fulfilment-*'],
  ])(
    'the sweep finding an approval whose STARTED event was lost (%s, ListPipelines for %s)',
    async (file, glob) => {
      let lists = 0;
      const missing = await ungranted(
        file,
        {
          deliverVia: async (event, deliver) => {
            const detail = event.detail as Json | undefined;
            if (detail?.state !== 'STARTED') await deliver(event);
          },
          discovery: { everyMinutes: 1, graceMs: 0, pipelines: [glob] },
          afterSteps: async (control) => {
            control.clock.set(control.clock.now().getTime() + 60_000);
            await control.sweep();
            lists = control.world.calls.filter((c) => c.operation === 'ListPipelines').length;
          },
        },
        [glob],
      );
      expect(lists).toBeGreaterThan(0);
      expect(missing).toEqual([]);
    },
    60_000,
  );

  // With discovery off (discoveryMinutes 0) the sweep's role has no GetPipelineExecution, no ListPipelines and
  // no by-token index: a path from the sweep into a gate's opening (identify, gateByTokenHash) without
  // discovery would be refused by IAM in such a stack. Each scenario ends with a sweep, so the sweep is replayed
  // in every one.
  it.each(FILES)(
    '%s, with discovery off (discoveryMinutes: 0)',
    async (file) => {
      let sweeps = 0;
      const missing = await ungranted(
        file,
        {
          discovery: false,
          afterSteps: async (control) => {
            control.clock.set(control.clock.now().getTime() + 60_000);
            await control.sweep();
          },
        },
        undefined,
        0,
        (calls) => {
          sweeps = calls.filter((c) => c.caller === 'sweep').length;
        },
      );
      expect(sweeps).toBeGreaterThan(0);
      expect(missing).toEqual([]);
    },
    60_000,
  );

  it('would see the sweep reach discovery with discovery off (the check itself)', async () => {
    // The lost STARTED event found by discovery, against the roles of a stack without it: the calls a sweep
    // opening a gate makes are not granted, and the replay says so.
    const missing = await ungranted(
      '01-clean-image-approved.json',
      {
        deliverVia: async (event, deliver) => {
          if ((event.detail as Json | undefined)?.state !== 'STARTED') await deliver(event);
        },
        discovery: { everyMinutes: 1, graceMs: 0, pipelines: ['billing-*'] },
        afterSteps: async (control) => {
          control.clock.set(control.clock.now().getTime() + 60_000);
          await control.sweep();
        },
      },
      ['billing-*'],
      0,
    );
    expect(missing).toEqual(
      expect.arrayContaining([expect.stringMatching(/^sweep: codepipeline:ListPipelines /)]),
    );
    expect(
      missing.some((m) =>
        /^sweep: (codepipeline:GetPipelineExecution|dynamodb:Query index\/by-token)/.test(m),
      ),
    ).toBe(true);
  });

  it('would see a grant taken away (the check itself)', () => {
    const gate = roles('123456789012', 'eu-west-1', 'inspector', ['payments-*'], ['Tollgate*']);
    const put = (caller: string, pipelineName: string): CallRecord => ({
      operation: 'PutApprovalResult',
      start: 0,
      end: 0,
      depth: 1,
      failed: false,
      injected: false,
      caller,
      input: { pipelineName, stageName: 'Gate', actionName: 'TollgateApproval' },
    });
    const allowed = (call: CallRecord) =>
      needs(call, '123456789012', 'eu-west-1').every((n) =>
        granted(gate.statements[call.caller!] ?? [], n, gate.names),
      );
    expect(allowed(put('sweep', 'payments-api'))).toBe(true);
    // Another pipeline, or a function that never answers approvals.
    expect(allowed(put('sweep', 'billing-api'))).toBe(false);
    expect(allowed(put('approval-ended', 'payments-api'))).toBe(false);
    // The sweep's queries: its indexes and the AUDIT-PENDING partition of the table; not another index, not
    // another partition (the statement's dynamodb:LeadingKeys condition).
    const query = (caller: string, input: Json): CallRecord => ({
      ...put(caller, 'x'),
      operation: 'Query',
      input,
    });
    const partition = (pk: string) => ({
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': pk },
    });
    expect(allowed(query('sweep', { IndexName: 'open-gates' }))).toBe(true);
    expect(allowed(query('sweep', partition('AUDIT-PENDING')))).toBe(true);
    expect(
      allowed(
        query('sweep', {
          KeyConditionExpression: 'begins_with(sk, :s) AND #p = :v',
          ExpressionAttributeNames: { '#p': 'pk' },
          ExpressionAttributeValues: { ':v': { S: 'AUDIT-PENDING' }, ':s': 'x' },
        }),
      ),
    ).toBe(true);
    expect(allowed(query('sweep', partition('GATE#payments-api/e1/Gate/TollgateApproval')))).toBe(false);
    expect(allowed(query('sweep', partition('AUDIT-PENDING-X')))).toBe(false);
    expect(allowed(query('sweep', { IndexName: 'by-token' }))).toBe(true);
    expect(allowed(query('sweep', { IndexName: 'by-digest' }))).toBe(false);
    expect(allowed(query('approval-started', partition('AUDIT-PENDING')))).toBe(false);
    expect(() => allowed(query('sweep', { KeyConditionExpression: 'sk = :s' }))).toThrow(
      /partition the test cannot read/,
    );
    // Events only with Tollgate's own source.
    const events = (Source: string): CallRecord => ({
      ...put('sweep', 'x'),
      operation: 'PutEvents',
      input: { Entries: [{ Source: 'tollgate' }, { Source }] },
    });
    expect(allowed(events('tollgate'))).toBe(true);
    expect(allowed(events('aws.codepipeline'))).toBe(false);
    // A condition the evaluator does not implement is an error, never a pass.
    const conditioned = (Condition: NonNullable<Statement['Condition']>): Statement[] => [
      { Sid: 'S', Effect: 'Allow', Action: 'dynamodb:Query', Resource: '*', Condition },
    ];
    const need: Need = {
      action: 'dynamodb:Query',
      resource: '*',
      context: { 'dynamodb:LeadingKeys': ['a'] },
    };
    const none: ResourceNames = { table: '', topic: '' };
    expect(
      granted(conditioned({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['a*'] } }), need, none),
    ).toBe(true);
    expect(() => granted(conditioned({ Bool: { 'aws:SecureTransport': 'true' } }), need, none)).toThrow(
      /operator Bool is not implemented/,
    );
    expect(() =>
      granted(conditioned({ 'ForAnyValue:StringEquals': { 'dynamodb:LeadingKeys': ['a'] } }), need, none),
    ).toThrow(/operator ForAnyValue:StringEquals is not implemented/);
    expect(() =>
      granted(conditioned({ StringEqualsIfExists: { 'dynamodb:LeadingKeys': ['a'] } }), need, none),
    ).toThrow(/not implemented/);
    expect(() => granted(conditioned({ StringEquals: { 'aws:SourceVpc': 'vpc-1' } }), need, none)).toThrow(
      /does not know aws:SourceVpc/,
    );
    expect(() =>
      granted([{ Sid: 'D', Effect: 'Deny', Action: 'dynamodb:Query', Resource: '*' }], need, none),
    ).toThrow(/Allow statements/);
    // Every statement is checked, and every matching one evaluated, even after one that already grants.
    const allow: Statement = { Sid: 'A', Effect: 'Allow', Action: 'dynamodb:Query', Resource: '*' };
    expect(granted([allow], need, none)).toBe(true);
    expect(() =>
      granted([allow, { Sid: 'D', Effect: 'Deny', Action: 'dynamodb:Query', Resource: '*' }], need, none),
    ).toThrow(/statement D: the test evaluates Allow statements/);
    // A Deny of another action still refuses: IAM would weigh it, and this evaluator does not.
    expect(() =>
      granted([allow, { Sid: 'D', Effect: 'Deny', Action: 'sns:Publish', Resource: '*' }], need, none),
    ).toThrow(/statement D: the test evaluates Allow statements/);
    expect(() => granted([allow, { ...allow, Sid: 'N', NotResource: '*' } as Statement], need, none)).toThrow(
      /statement N: the test evaluates Allow statements/,
    );
    expect(() =>
      granted([allow, ...conditioned({ Bool: { 'aws:SecureTransport': 'true' } })], need, none),
    ).toThrow(/operator Bool is not implemented/);
    // Of another action too: the operator is refused before the statement is matched.
    expect(() =>
      granted(
        [allow, { ...conditioned({ Bool: { 'aws:SecureTransport': 'true' } })[0]!, Action: 'sns:Publish' }],
        need,
        none,
      ),
    ).toThrow(/operator Bool is not implemented/);
    expect(() =>
      granted([allow, ...conditioned({ StringEquals: { 'aws:SourceVpc': 'vpc-1' } })], need, none),
    ).toThrow(/does not know aws:SourceVpc/);
    expect(() =>
      granted(
        [allow, ...conditioned({ StringEquals: { 'dynamodb:LeadingKeys': { Ref: 'X' } } })],
        need,
        none,
      ),
    ).toThrow(/compares to/);
    expect(() =>
      granted(
        [allow, { Sid: 'R', Effect: 'Allow', Action: 'dynamodb:Query', Resource: { Ref: 'X' } }],
        need,
        none,
      ),
    ).toThrow(/a resource the test cannot read/);
    // ECR findings only where ECR basic scanning is the source.
    const ecr = {
      ...put('scan-finished', 'x'),
      operation: 'DescribeImageScanFindings',
      input: { repositoryName: 'payments/api' },
    };
    expect(allowed(ecr)).toBe(false);
    const call = (caller: string, operation: string, input: Json): CallRecord => ({
      ...put(caller, 'x'),
      operation,
      input,
    });
    // Tags resolved in this account's repositories only, and by approval-started only.
    expect(allowed(call('approval-started', 'DescribeImages', { repositoryName: 'payments/api' }))).toBe(
      true,
    );
    expect(
      allowed(
        call('approval-started', 'DescribeImages', {
          repositoryName: 'payments/api',
          registryId: '999999999999',
        }),
      ),
    ).toBe(false);
    // Only the functions that open gates resolve tags (the sweep's discovery opens them too).
    expect(allowed(call('scan-finished', 'DescribeImages', { repositoryName: 'payments/api' }))).toBe(false);
    expect(allowed(call('sweep', 'DescribeImages', { repositoryName: 'payments/api' }))).toBe(true);
    // Pipelines read where they are gated.
    expect(allowed(call('sweep', 'GetPipelineState', { name: 'payments-api' }))).toBe(true);
    expect(allowed(call('sweep', 'GetPipelineExecution', { pipelineName: 'billing-api' }))).toBe(false);
    expect(allowed(call('approval-ended', 'ListActionExecutions', { pipelineName: 'payments-api' }))).toBe(
      false,
    );
    // The escalation topic, by the deciding functions; events on the default bus only.
    expect(allowed(call('scan-finished', 'Publish', { TopicArn: 'arn:aws:sns:eu-west-1:1:t' }))).toBe(true);
    expect(allowed(call('approval-ended', 'Publish', { TopicArn: 'arn:aws:sns:eu-west-1:1:t' }))).toBe(false);
    expect(
      allowed(call('sweep', 'PutEvents', { Entries: [{ Source: 'tollgate', EventBusName: 'other' }] })),
    ).toBe(false);
    // A resource the evaluator cannot read is an error, never a wildcard.
    expect(() =>
      granted(
        [{ Sid: 'R', Effect: 'Allow', Action: 'sns:Publish', Resource: { 'Fn::ImportValue': 'topic' } }],
        { action: 'sns:Publish', resource: 'topic' },
        none,
      ),
    ).toThrow(/a resource the test cannot read/);
    expect(() => needs({ ...ecr, operation: 'DeleteTable' }, '1', 'r')).toThrow(/no IAM action known/);
  });
});
