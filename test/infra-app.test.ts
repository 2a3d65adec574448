import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CONTEXT_KEYS } from '../infra/stack.js';

/*
 * infra/app.ts as the CDK CLI runs it (`cdk.json`: `npx tsx infra/app.ts`): context in CDK_CONTEXT_JSON, the
 * cloud assembly to CDK_OUTDIR. A configuration mistake ends the process with its one-line message and
 * status 1, not a stack trace; a good configuration writes the templates.
 */

const run = promisify(execFile);
const dirs: string[] = [];
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

interface AppRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly outdir: string;
}

async function synth(context: Record<string, unknown>): Promise<AppRun> {
  const outdir = tempDir('tollgate-app-');
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? tmpdir(),
    CDK_CONTEXT_JSON: JSON.stringify(context),
    CDK_OUTDIR: outdir,
  };
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'infra/app.ts'], { env });
    return { code: 0, stdout, stderr, outdir };
  } catch (e) {
    const failed = e as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '', outdir };
  }
}

const GATE = {
  [CONTEXT_KEYS.escalationEmails]: ['security@example.com'],
  [CONTEXT_KEYS.policyFile]: 'examples/policies/baseline.yaml',
};

describe('infra/app.ts', () => {
  it('stops on a context key it would ignore, with the key it meant, before building anything', async () => {
    const r = await synth({ ...GATE, 'tollgate:scanSorce': 'ecr' });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      'Tollgate: tollgate:scanSorce: expected a context key Tollgate reads (did you mean tollgate:scanSource?); got one it would ignore',
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);

  it.each([
    [
      'an escalation topic in another region',
      {
        [CONTEXT_KEYS.escalationEmails]: [],
        [CONTEXT_KEYS.escalationTopicArn]: 'arn:aws:sns:us-east-1:111122223333:secops',
      },
      "Tollgate: tollgate:escalationTopicArn: expected an SNS topic in the stack's region, eu-central-1 (partition aws), from tollgate:region: the functions publish escalations with their own region's SNS client, and SNS refuses another region's topic; got \"arn:aws:sns:us-east-1:111122223333:secops\" (region us-east-1)",
    ],
    [
      'an alarm topic in another region',
      { [CONTEXT_KEYS.alarmTopicArn]: 'arn:aws:sns:us-east-1:111122223333:pager' },
      "Tollgate: tollgate:alarmTopicArn: expected an SNS topic in the stack's region, eu-central-1 (partition aws), from tollgate:region: a CloudWatch alarm's actions must be in the alarm's region; got \"arn:aws:sns:us-east-1:111122223333:pager\" (region us-east-1)",
    ],
    [
      'globs whose rule patterns are over 2048 characters',
      {
        [CONTEXT_KEYS.pipelines]: Array.from(
          { length: 20 },
          (_, i) => `pipeline-${String(i).padStart(2, '0')}-${'x'.repeat(88)}`,
        ),
      },
      "Tollgate: tollgate:pipelines / tollgate:approvalActionNames: expected globs whose EventBridge rule patterns fit EventBridge's limit of 2048 characters per event pattern (fewer or shorter globs: a common prefix as one `prefix*` glob; or raise the account's quota and set eventPatternLimit / tollgate:eventPatternLimit, up to 4096); got 20 pipeline and 1 approval action globs, whose approvalEnded rule's pattern is 2361 characters",
    ],
    [
      "globs whose PutApprovalResult statement is over an IAM managed policy's 6144 characters",
      {
        [CONTEXT_KEYS.pipelines]: Array.from({ length: 7 }, (_, i) => `checkout-api-prod-${i}`),
        [CONTEXT_KEYS.approvalActionNames]: Array.from({ length: 10 }, (_, i) => `SecurityGate${i}`),
      },
      "Tollgate: tollgate:pipelines / tollgate:approvalActionNames: expected globs whose PutApprovalResult statement (one resource ARN per pipeline glob × approval action glob, in one IAM statement, which cannot be split) fits IAM's limit of 6144 characters per managed policy (fewer or broader globs: a common prefix as one `prefix*` glob); got 7 pipeline × 10 approval action globs, 70 ARNs, whose statement is 6786 characters (12-digit account, partition aws-us-gov, region us-isof-south-1)",
    ],
    [
      'an event pattern limit past the most the quota is raised to',
      { [CONTEXT_KEYS.eventPatternLimit]: '8192' },
      "Tollgate: tollgate:eventPatternLimit: expected whole characters from 2048 (EventBridge's default event pattern size quota) to 4096, the account's raised quota; got 8192",
    ],
  ])(
    'stops before building anything on a configuration AWS would refuse only at deploy or at run time: %s',
    async (_name, override, message) => {
      const r = await synth({ ...GATE, [CONTEXT_KEYS.region]: 'eu-central-1', ...override });
      expect(r.code).toBe(1);
      // The whole of stderr: no "Bundling asset" line before it, so nothing was built.
      expect(r.stderr.trim()).toBe(message);
    },
    60_000,
  );

  it('stops on a bad policy with the loader’s file:line:col message, as `tollgate evaluate` prints it', async () => {
    const file = join(tempDir('tollgate-app-policy-'), 'policy.yaml');
    writeFileSync(file, 'version: 1\nname: broken\nrules:\n  - id: r1\n    action: deny\n');
    const r = await synth({ ...GATE, [CONTEXT_KEYS.policyFile]: file });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^tollgate: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:13: `));
  }, 60_000);

  it.each([
    [
      { [CONTEXT_KEYS.pipelines]: ['payments-*'] },
      'Tollgate: tollgate:pipelines: expected globs that include the demo pipeline "tollgate-demo" (tollgate:demoPipeline is true); got ["payments-*"]',
    ],
    [
      { [CONTEXT_KEYS.approvalActionNames]: ['SecurityGate'] },
      'Tollgate: tollgate:approvalActionNames: expected globs that include the demo approval "TollgateApproval" (tollgate:demoPipeline is true); got ["SecurityGate"]',
    ],
  ])(
    'stops before building anything when the demo pipeline is asked for but the gate would not answer its approval (%j)',
    async (override, message) => {
      const r = await synth({ ...GATE, [CONTEXT_KEYS.demoPipeline]: true, ...override });
      expect(r.code).toBe(1);
      // The whole of stderr: no "Bundling asset" line before it, so nothing was built.
      expect(r.stderr.trim()).toBe(message);
    },
    60_000,
  );

  it('reads tollgate:eventPatternLimit: globs over 2048 characters of pattern pass with 4096', async () => {
    // The demo pipeline's check comes after the size check and stops the app before anything is built.
    const r = await synth({
      ...GATE,
      [CONTEXT_KEYS.demoPipeline]: true,
      [CONTEXT_KEYS.pipelines]: Array.from(
        { length: 20 },
        (_, i) => `p${String(i).padStart(2, '0')}-${'y'.repeat(96)}`,
      ),
      [CONTEXT_KEYS.eventPatternLimit]: '4096',
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(
      /^Tollgate: tollgate:pipelines: expected globs that include the demo pipeline "tollgate-demo" \(tollgate:demoPipeline is true\); got \["p00-y+",/,
    );
  }, 60_000);

  it('writes the gate’s template and, when asked, the demo pipeline’s beside it, in one environment', async () => {
    const r = await synth({
      ...GATE,
      [CONTEXT_KEYS.account]: '111122223333',
      [CONTEXT_KEYS.region]: 'eu-central-1',
      [CONTEXT_KEYS.stackName]: 'Gate',
      [CONTEXT_KEYS.demoPipeline]: true,
    });
    expect(r.stderr).not.toMatch(/AwsSolutions-/);
    expect(r.code).toBe(0);
    const manifest = JSON.parse(readFileSync(join(r.outdir, 'manifest.json'), 'utf8')) as {
      artifacts: Record<string, { type: string; environment?: string }>;
    };
    const stacks = Object.entries(manifest.artifacts)
      .filter(([, a]) => a.type === 'aws:cloudformation:stack')
      .map(([id, a]) => [id, a.environment]);
    expect(stacks.sort()).toEqual([
      ['Gate', 'aws://111122223333/eu-central-1'],
      ['GateDemoPipeline', 'aws://111122223333/eu-central-1'],
    ]);
    const demo = readFileSync(join(r.outdir, 'GateDemoPipeline.template.json'), 'utf8');
    expect(demo).toContain('"TollgateApproval"');
  }, 120_000);
});
