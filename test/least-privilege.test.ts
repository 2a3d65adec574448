import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { App, type CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { ensureTable } from '../adapters/dynamodb/table.js';
import { FUNCTION_NAMES, type ScanSource } from '../infra/patterns.js';
import { Tollgate } from '../infra/tollgate.js';
import { runScenario } from '../simulator/run.js';
import { loadScenario } from '../simulator/scenario.js';
import type { CallRecord, World } from '../simulator/world.js';
import { useLocalDynamo } from './gate-harness.js';
import { ROOT } from './helpers.js';

/*
 * The roles are tight enough to be safe (test/infra.test.ts) and wide enough to work: every AWS call each
 * function makes in every example scenario, replayed through the real handlers, is granted to that
 * function's role in the template the construct synthesizes for the scenario's configuration (its scan
 * source, its pipeline and action names as globs). A missing grant would not approve anything (the gate fails
 * closed), but it would stop Tollgate working in a real account while every other test passed.
 */

const dynamo = useLocalDynamo();
const DIR = join(ROOT, 'examples', 'scenarios');
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();
const POLICY = join(ROOT, 'examples/policies/baseline.yaml');

type Json = Record<string, unknown>;
interface Statement {
  readonly Action: string | string[];
  readonly Resource: unknown;
}

/** What IAM authorises for one call: each action with the resource it is checked against. */
interface Need {
  readonly action: string;
  /** An ARN (partition `aws`), or a DynamoDB target (`table`, `index/<name>`) the template names by token. */
  readonly resource: string;
}

const SERVICE: Readonly<Record<string, string>> = {
  GetPipelineState: 'codepipeline',
  GetPipelineExecution: 'codepipeline',
  ListActionExecutions: 'codepipeline',
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

function needs(call: CallRecord, account: string, region: string): Need[] {
  const input = call.input;
  if (call.operation === 'TransactWriteItems') {
    return ((input.TransactItems as Json[] | undefined) ?? []).map((item) => {
      const kind = Object.keys(item)[0] ?? '';
      const action = TRANSACT_ACTION[kind];
      if (!action) throw new Error(`a transaction item of an unknown kind: ${kind}`);
      return { action, resource: 'table' };
    });
  }
  const service = SERVICE[call.operation];
  if (!service) throw new Error(`no IAM action known for the call ${call.operation}: add it here`);
  const action = `${service}:${call.operation}`;
  if (service === 'dynamodb') {
    const index = input.IndexName;
    return [{ action, resource: typeof index === 'string' ? `index/${index}` : 'table' }];
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
  return [{ action, resource: '' }];
}

/** IAM's wildcards in an ARN pattern: `*` any run of characters, `?` one. */
function arnMatches(pattern: string, arn: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(arn);
}

/** A template resource as text: ARNs with the partition resolved, the table and its indexes by name. */
function resourceText(resource: unknown, table: string): string {
  if (typeof resource === 'string') return resource;
  const json = resource as Json;
  const getAtt = json['Fn::GetAtt'] as [string, string] | undefined;
  if (getAtt) return getAtt[0] === table && getAtt[1] === 'Arn' ? 'table' : JSON.stringify(resource);
  const join = json['Fn::Join'] as [string, unknown[]] | undefined;
  if (!join) return JSON.stringify(resource);
  return join[1]
    .map((part) => {
      if (typeof part === 'string') return part;
      const p = part as Json;
      if (p.Ref === 'AWS::Partition') return 'aws';
      const att = p['Fn::GetAtt'] as [string, string] | undefined;
      if (att && att[0] === table && att[1] === 'Arn') return 'table';
      return '?';
    })
    .join(join[0])
    .replace(/^table\//, '');
}

function granted(statements: readonly Statement[], need: Need, table: string): boolean {
  return statements.some((s) => {
    const actions = Array.isArray(s.Action) ? s.Action : [s.Action];
    if (!actions.includes(need.action)) return false;
    if (need.resource === '') return true;
    const resources = (Array.isArray(s.Resource) ? s.Resource : [s.Resource]).map((r) =>
      resourceText(r, table),
    );
    return resources.some((r) =>
      need.resource.startsWith('arn:') ? arnMatches(r, need.resource) : r === need.resource,
    );
  });
}

interface Roles {
  readonly table: string;
  readonly statements: Readonly<Record<string, Statement[]>>;
}

/** The construct's roles for a configuration, from its synthesized template (bundling skipped). */
function roles(
  account: string,
  region: string,
  scanSource: ScanSource,
  pipelines: string[],
  actions: string[],
): Roles {
  const app = new App({ analyticsReporting: false, context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Gate', { env: { account, region } });
  const tollgate = new Tollgate(stack, 'Tollgate', {
    policyFile: POLICY,
    escalation: { emails: ['security@example.com'] },
    scanSource,
    pipelines,
    approvalActionNames: actions,
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
  return { table: id(tollgate.table), statements };
}

let tables = 0;

describe('every call a function makes is granted to its role', () => {
  it.each(FILES)(
    '%s',
    async (file) => {
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
      });
      const { account, region, scanSource } = loaded.scenario;
      const calls = world!.calls.filter((c) => c.caller !== undefined);
      expect(calls.length).toBeGreaterThan(0);
      // The names the scenario's approvals carry, as a platform engineer would configure them.
      const answered = calls.filter((c) => c.operation === 'PutApprovalResult').map((c) => c.input);
      const names = (field: string) => [...new Set(answered.map((i) => String(i[field])))];
      const gate = roles(
        account,
        region,
        scanSource,
        answered.length > 0 ? names('pipelineName') : ['*'],
        answered.length > 0 ? names('actionName') : ['*'],
      );
      const missing = calls.flatMap((call) =>
        needs(call, account, region)
          .filter((need) => !granted(gate.statements[call.caller!] ?? [], need, gate.table))
          .map((need) => `${call.caller}: ${need.action} ${need.resource}`),
      );
      expect([...new Set(missing)]).toEqual([]);
    },
    60_000,
  );

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
        granted(gate.statements[call.caller!] ?? [], n, gate.table),
      );
    expect(allowed(put('sweep', 'payments-api'))).toBe(true);
    // Another pipeline, or a function that never answers approvals.
    expect(allowed(put('sweep', 'billing-api'))).toBe(false);
    expect(allowed(put('approval-ended', 'payments-api'))).toBe(false);
    // The sweep's queries: its index and the AUDIT-PENDING partition of the table; not another index.
    const query = (caller: string, IndexName?: string): CallRecord => ({
      ...put(caller, 'x'),
      operation: 'Query',
      input: IndexName ? { IndexName } : {},
    });
    expect(allowed(query('sweep', 'open-gates'))).toBe(true);
    expect(allowed(query('sweep'))).toBe(true);
    expect(allowed(query('sweep', 'by-token'))).toBe(false);
    expect(allowed(query('approval-started'))).toBe(false);
    // ECR findings only where ECR basic scanning is the source.
    const ecr = { ...put('scan-finished', 'x'), operation: 'DescribeImageScanFindings', input: {} };
    expect(allowed(ecr)).toBe(false);
    expect(() => needs({ ...ecr, operation: 'DeleteTable' }, '1', 'r')).toThrow(/no IAM action known/);
  });
});
