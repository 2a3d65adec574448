import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { App, Stack } from 'aws-cdk-lib';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type { Metafile } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalDynamo } from '../adapters/dynamodb/local.js';
import { DynamoStore } from '../adapters/dynamodb/store.js';
import { ensureTable } from '../adapters/dynamodb/table.js';
import {
  BENCH_POLICY,
  type FreshNodeRun,
  FUNCTION_ENV,
  inFreshNode,
  measureBundles,
  median,
  SPLIT_FROM,
} from '../bench/bundles.js';
import {
  buildSdkFloor,
  buildSdkSplits,
  SDK_SPLITS,
  type SdkFloor,
  sdkCalls,
  sdkFloorSource,
  sdkSplitCalls,
} from '../bench/sdk-floor.js';
import {
  BUNDLE_FILE,
  BUNDLING,
  buildFunctionBundles,
  entryOutput,
  esbuildOptions,
  FUNCTION_ENTRIES,
  type FunctionBundle,
  POLICY_BUNDLE_FILE,
  policyBundleHook,
  READS_POLICY,
} from '../infra/bundling.js';
import { FUNCTION_NAMES } from '../infra/patterns.js';
import { InputError } from '../shared/errors.js';
import { readPolicyBundle } from '../shared/policy/bundle.js';
import { parsePolicy } from '../shared/policy/load.js';

/*
 * The gate's functions as Lambda runs them: the four bundles built with the stack's esbuild settings
 * (infra/bundling.ts), each imported and called in a fresh `node`, checked for what must not be in them, and
 * held to a size budget.
 *
 * The target is 400 KB. `approval-ended` (the store and EventBridge only) meets it: it builds a
 * `GateClosing`, which has no policy, findings or pipeline code. The three that decide and act do not come
 * near: each is ~645–655 KB, and a bundle making the same AWS SDK calls and nothing else already weighs 402 KB
 * (six clients, their schemas and error classes, @smithy/core's protocols and signing; measured below and by
 * the bench). The rest (243–252 KB) is our own code ~168–177 KB, Powertools with middy ~48 KB and zod/mini
 * ~36 KB, by esbuild's metafile. MAX_BYTES is the largest plus a margin of ~5 KB, so a regression fails here. Both budgets grew by 10 KB once, for the sweep's
 * discovery of approvals whose STARTED event was lost (shared/gate/discovery.ts and its adapters, ~5 KB in
 * the sweep) and the run claims that keep it to one gate per approval (~1 KB in each function that opens
 * gates): before it, such an approval stalled with no alarm. MAX_BYTES grew by 5 KB more when discovery
 * learnt PARALLEL execution mode (ListPipelineExecutions and the runs' listing: ~2.8 KB in the sweep, 0.9 KB
 * of it the SDK's), whose lost approvals stalled the same way. Both grew by 5 KB after the fail-closed fixes
 * of 2026-11-26 (~2.4 KB in each function that decides) left the sweep 5 bytes under OWN_MAX_BYTES: a scan
 * status per repository, ECR lists short of their own counts, the settle rule's shortfall check, CustomData
 * naming two images, the acting lease given back; each one an approval, or a second escalation, that should
 * not have happened. Both grew by 5 KB more after the second review of that day (~1 KB in each function that
 * decides) left the sweep 471 bytes over OWN_MAX_BYTES: a tag judged only if pushed before the approval
 * started, no decision recorded (or escalation sent) for an approval already over, a decision retried on a
 * gate that only learnt its token meanwhile, the gate's account named to coverage and the findings read.
 * Both grew by 7 KB after the review of 2026-11-27 (~3.5 KB in each function that decides, ~4.1 KB in the
 * sweep) left the sweep 1.3 KB over MAX_BYTES and 2.9 KB over OWN_MAX_BYTES: a publish that loses events
 * names each and stops before the function's timeout, the reviewer CloudTrail names after the end is
 * published, escalation subjects tell executions apart and emails list the ids, a token not in the API's
 * format is never sent.
 * Both grew by 5 KB after the reviews of the next session (~3.4 KB in each function that decides, ~5.1 KB in
 * the sweep), leaving the sweep 2.3 KB over MAX_BYTES and 3.9 KB over OWN_MAX_BYTES: coverage asked for an
 * image with closed findings or an old scan status, the own run's CustomData only, every image CustomData
 * names counted, tags refused in PARALLEL mode and rollbacks, a gone execution read as an answer, a decided
 * gate overdue from its decision, ECR's UNDEFINED count and changed scans, Dates held to epoch bounds.
 * OWN_MAX_BYTES grew by 3 KB when a decision's event learnt to fit EventBridge's 256 KB (~1.8 KB in each
 * function that decides, the sweep 1.7 KB over): a decision of thousands of violated rules was stored and its
 * event refused on every try. Both grew by 5 KB after the review of 2026-11-27's second session (~3 KB in
 * each function that decides, ~5 KB in the sweep), leaving the sweep 3 KB over MAX_BYTES: a result that may
 * have gone out kept in mind (not recorded as someone else's, nor STALE), a changed token taken for another
 * run, an approval answered before Tollgate decided not decided nor paged, a refused result recorded when
 * the approval ended meanwhile, coverage without a scan time not a finished scan, a tag naming an image
 * index refused, pipelines' execution modes read, and the sweep stopping short of its timeout.
 * Both grew by 5 KB after the reviews of 2026-11-27's third session (~2 KB in each function that decides,
 * ~1.9 KB in the sweep), leaving the sweep 1.1 KB over MAX_BYTES and 1.7 KB over OWN_MAX_BYTES: an escalation
 * whose Publish may have gone out twice (or at all) says so, a conditional write whose answer was lost
 * recognised as its own, an answer's stalled body timed out, a finding naming two images and empty ECR counts
 * refused, a failed event's destination record replayed, an invalid policy paged.
 * Both grew by 7 KB in 2026-11-27's fourth session (~7.7 KB in each function that decides, ~7.8 KB in the
 * sweep), leaving the sweep 4.3 KB over MAX_BYTES and 4.8 KB over OWN_MAX_BYTES: an ACTED gate whose end
 * event was lost closed, and a lost reviewer named, from the run's listing (before, nothing but a replay did:
 * the gate stayed ACTED and auditors saw an escalation nobody answered); scan statuses kept per registry and
 * suppressed findings held to the event's time (two paths to an approval on incomplete findings); CustomData
 * described rather than quoted where it is not an image; the escalation's email text kept its share.
 * Both grew by 4 KB in 2026-11-27's fifth session (~1.3 KB in each function that decides and in the sweep),
 * leaving the sweep 1 KB under MAX_BYTES and 0.4 KB under OWN_MAX_BYTES, too little for the next fix: a
 * STALE gate's lost end recorded from the listing, a digest in CustomData checked for an index (every
 * release of a buildx image waited out its deadline), event times held to the clock (a start dated ahead
 * was never timed out), the Inspector link by the image's resource id, a failed evaluation's record
 * naming its image.
 */
const CLOSING_MAX_BYTES = 400_000;
const MAX_BYTES = 661_000;
/**
 * What Tollgate adds to the SDK: a bundle's bytes less those of the same SDK calls bundled alone
 * (bench/sdk-floor.ts). Our code, Powertools, middy and zod/mini: ~243 KB in the functions that decide, ~252
 * KB in the sweep (~4.4 KB under this budget). This budget holds whatever the SDK's next release weighs.
 */
const OWN_MAX_BYTES = 257_000;

let dir: string;
let bundles: FunctionBundle[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tollgate-bundles-test-'));
  bundles = await buildFunctionBundles(dir, { policy: BENCH_POLICY });
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The modules esbuild put code of in the bundle (a module merely imported and shaken away has none). */
function contents(bundle: { readonly metafile: Metafile }): string[] {
  return Object.entries(entryOutput(bundle.metafile).inputs)
    .filter(([, input]) => input.bytesInOutput > 0)
    .map(([path]) => path);
}

function sourceMap(folder: string): unknown {
  const map = JSON.parse(readFileSync(join(folder, `${BUNDLE_FILE}.map`), 'utf8')) as { sources: string[] };
  return { ...map, sources: map.sources.map((s) => resolve(folder, s)) };
}

const OTHER_KIND = { 'detail-type': 'Something Else', source: 'aws.s3', detail: {} };
const SCHEDULED = {
  version: '0',
  id: '0f2d9d1c-4f5e-4a43-9a7b-2e8e1f5c0a11',
  'detail-type': 'Scheduled Event',
  source: 'aws.events',
  account: '123456789012',
  // Not a whole multiple of 5 minutes: this sweep does not look for lost approvals (that would need
  // CodePipeline, which has no local stand-in here), only at the table.
  time: '2026-11-25T12:01:00Z',
  region: 'eu-west-1',
  resources: ['arn:aws:events:eu-west-1:123456789012:rule/tollgate-sweep'],
  detail: {},
};

describe('function bundles', () => {
  it('are one ES module each, with a source map, and the policy bundle beside those that decide', () => {
    expect(bundles.map((b) => b.name)).toEqual([...FUNCTION_NAMES]);
    for (const b of bundles) {
      const policy = READS_POLICY.has(b.name) ? [POLICY_BUNDLE_FILE] : [];
      expect(readdirSync(b.dir).sort()).toEqual([BUNDLE_FILE, `${BUNDLE_FILE}.map`, ...policy]);
      expect(readFileSync(b.file, 'utf8')).toMatch(/^import\{createRequire\}from'module';/);
    }
  });

  it.each([...FUNCTION_NAMES])(
    '%s: imports in a fresh node, reads its policy.json if it decides, and its handler ignores an event of another kind',
    async (name) => {
      const bundle = bundles.find((b) => b.name === name)!;
      const run = await inFreshNode(bundle.file, { event: OTHER_KIND });
      expect(run.handler).toBe('function');
      expect(run.result).toEqual({ ignored: 'event of another kind' });
      expect(run.stdout).not.toMatch(/policy is invalid/);
      // Powertools writes warnings and errors to stderr: nothing else may be there (a Node warning, a crash).
      const stderr = run.stderr.split('\n').filter((l) => l !== '');
      const logs = stderr.map((l) => JSON.parse(l) as { level: string; problems?: string[] });
      expect(logs.map((l) => l.level)).toEqual(['WARN']);
      // What was wrong with the event, from the schema's issues.
      expect(logs[0]!.problems).not.toEqual(['Failed to parse schema']);
      expect(
        logs[0]!.problems!.some((p) => /^(version|source): Invalid input|^Unrecognized keys/.test(p)),
      ).toBe(true);
    },
    30_000,
  );

  /** The built sweep, in a fresh node, against a fresh dynalite table, with these credentials and settings. */
  async function sweepOnDynalite(env: Record<string, string>, event: unknown): Promise<FreshNodeRun> {
    const dynamo = await startLocalDynamo();
    try {
      await ensureTable(dynamo.client, FUNCTION_ENV.TOLLGATE_TABLE!);
      return await inFreshNode(bundles.find((b) => b.name === 'sweep')!.file, {
        env: {
          AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
          AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
          AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
          ...env,
        },
        event,
      });
    } finally {
      await dynamo.close();
    }
  }

  it('the sweep finds its credentials in the environment and runs against DynamoDB', async () => {
    const run = await sweepOnDynalite({ AWS_SESSION_TOKEN: 'session' }, SCHEDULED);
    expect(run.result).toEqual({ result: [] });
    // The sweep's EMF line: its figures came from the table.
    expect(run.stdout).toMatch(/"GatesWaiting":0/);
  }, 60_000);

  it('the sweep with discovery off (0 minutes) does not look for lost approvals, even on a manual invoke', async () => {
    const run = await sweepOnDynalite(
      {
        // Nothing listens here: a discovery would fail the invocation on its first CodePipeline call.
        AWS_ENDPOINT_URL_CODEPIPELINE: 'http://127.0.0.1:9',
        AWS_MAX_ATTEMPTS: '1',
        TOLLGATE_DISCOVERY_MINUTES: '0',
      },
      {},
    );
    expect(run.result).toEqual({ result: [] });
    expect(run.stderr).not.toMatch(/discovery/);
  }, 60_000);

  it('the sweep with discovery settings it cannot read fails loudly, naming each and what it expects', async () => {
    const failed = sweepOnDynalite({ TOLLGATE_PIPELINES: 'payments-*', TOLLGATE_DISCOVERY_MINUTES: ' ' }, {});
    await expect(failed).rejects.toThrow(
      /the sweep cannot look for lost approvals: TOLLGATE_PIPELINES: expected a JSON array of non-empty glob strings; got "payments-\*"; TOLLGATE_DISCOVERY_MINUTES: expected whole minutes from 0 \(off\) to 60; got " "/,
    );
  }, 60_000);

  it('approval-ended closes a gate in DynamoDB with no policy.json beside it (its events fail, logged)', async () => {
    const dynamo = await startLocalDynamo();
    try {
      await ensureTable(dynamo.client, FUNCTION_ENV.TOLLGATE_TABLE!);
      const sample = JSON.parse(
        readFileSync(
          'test/fixtures/aws/action-execution-state-change.approval-succeeded.synthesized.json',
          'utf8',
        ),
      ) as { region: string; detail: Record<string, unknown> };
      // The fresh node's context is a function in eu-west-1: an event from another region would be ignored.
      const event = { ...sample, region: 'eu-west-1', detail: { ...sample.detail, region: 'eu-west-1' } };
      const bundle = bundles.find((b) => b.name === 'approval-ended')!;
      expect(readdirSync(bundle.dir)).not.toContain(POLICY_BUNDLE_FILE);
      const run = await inFreshNode(bundle.file, {
        env: {
          AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
          // Nothing listens there: publishing Tollgate's events fails, which never blocks a closure.
          AWS_ENDPOINT_URL_EVENTBRIDGE: 'http://127.0.0.1:9',
          AWS_MAX_ATTEMPTS: '1',
          AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
          AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
          AWS_SESSION_TOKEN: 'session',
        },
        event,
      });
      const gate = 'myPipeline/12345678-1234-5678-abcd-12345678abcd/SecurityGate/ImageVulnerabilityApproval';
      expect(run.result).toEqual({
        result: { gate, state: 'CLOSED', note: 'closed before it was seen starting' },
      });
      expect(run.stderr).toMatch(/publishing Tollgate events failed/);
      const stored = await new DynamoStore(dynamo.client, FUNCTION_ENV.TOLLGATE_TABLE!).getGate({
        pipeline: 'myPipeline',
        executionId: '12345678-1234-5678-abcd-12345678abcd',
        stage: 'SecurityGate',
        action: 'ImageVulnerabilityApproval',
      });
      expect(stored).toMatchObject({ state: 'CLOSED', closure: { state: 'SUCCEEDED' } });
    } finally {
      await dynamo.close();
    }
  }, 60_000);

  it('the sweep finds its credentials at a container credentials endpoint too (the stubs pass it on)', async () => {
    const dynamo = await startLocalDynamo();
    const asked: string[] = [];
    const server = createServer((req, res) => {
      asked.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          AccessKeyId: 'AKIAIOSFODNN7EXAMPLE',
          SecretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
          Token: 'session',
          Expiration: new Date(Date.now() + 3_600_000).toISOString(),
        }),
      );
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      await ensureTable(dynamo.client, FUNCTION_ENV.TOLLGATE_TABLE!);
      const { port } = server.address() as AddressInfo;
      const run = await inFreshNode(bundles.find((b) => b.name === 'sweep')!.file, {
        env: {
          AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
          AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${port}/credentials`,
          AWS_CONTAINER_AUTHORIZATION_TOKEN: 'container-token',
        },
        event: SCHEDULED,
      });
      expect(run.result).toEqual({ result: [] });
      expect(asked).toEqual(['GET /credentials container-token']);
    } finally {
      server.close();
      await dynamo.close();
    }
  }, 60_000);

  it('without credentials, the sweep fails and says so (no instance metadata service is asked)', async () => {
    const failed = await inFreshNode(bundles.find((b) => b.name === 'sweep')!.file, {
      env: { AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:9' },
      event: SCHEDULED,
    }).then(
      () => '',
      (e: unknown) => String(e),
    );
    expect(failed).toMatch(/Could not load credentials from any providers/);
    expect(failed).not.toMatch(/169\.254\.169\.254|EC2 Instance Metadata/);
  }, 60_000);

  it('leave out yaml, zod’s other locales, Powertools’ schemas, and the SDK parts Lambda never uses', () => {
    for (const b of bundles) {
      const inputs = contents(b);
      const found = (pattern: RegExp) => inputs.filter((p) => pattern.test(p));
      expect(found(/node_modules\/yaml\//), b.name).toEqual([]);
      expect(found(/shared\/(yaml-input|policy\/load)\.ts$/), b.name).toEqual([]);
      expect(found(/node_modules\/zod\/v4\/locales\//), b.name).toEqual([
        'node_modules/zod/v4/locales/en.js',
      ]);
      expect(found(/@aws-lambda-powertools\/parser\/lib\/esm\/schemas\//), b.name).toEqual([]);
      expect(
        found(/@aws-sdk\/(credential-provider-(ini|sso|process|web-identity|login)|nested-clients)\//),
        b.name,
      ).toEqual([]);
      expect(found(/@smithy\/core\/.*\/event-streams\//), b.name).toEqual([]);
      expect(found(/@smithy\/credential-provider-imds\//), b.name).toEqual([]);
      // The SDK's ES builds, so esbuild could shake them.
      expect(found(/\/dist-cjs\//), b.name).toEqual([]);
      // The stand-ins are what replaced them.
      expect(found(/functions\/common\/sdk-stubs\//).sort(), b.name).toEqual([
        'functions/common/sdk-stubs/credential-files.ts',
        'functions/common/sdk-stubs/event-streams.ts',
        'functions/common/sdk-stubs/instance-metadata.ts',
      ]);
    }
  });

  it(`stay within ${MAX_BYTES} bytes each`, () => {
    const rows = bundles.map((b) => {
      const gzip = gzipSync(readFileSync(b.file), { level: 9 }).length;
      return `${b.name.padEnd(18)} ${String(b.bytes).padStart(8)} bytes  ${String(gzip).padStart(7)} gzip`;
    });
    console.log(`function bundles (limit ${MAX_BYTES} bytes):\n${rows.join('\n')}`);
    for (const b of bundles) expect(b.bytes, b.name).toBeLessThanOrEqual(MAX_BYTES);
  });

  it(`approval-ended, which only closes gates, stays within ${CLOSING_MAX_BYTES} bytes`, () => {
    expect(bundles.find((b) => b.name === 'approval-ended')!.bytes).toBeLessThanOrEqual(CLOSING_MAX_BYTES);
  });

  it('approval-ended carries no policy, findings, escalation or deciding code, and no client but its two', () => {
    const inputs = contents(bundles.find((b) => b.name === 'approval-ended')!);
    const found = (pattern: RegExp) => inputs.filter((p) => pattern.test(p));
    // `finding.ts` is the model (severities, for the events' schemas), not the readers.
    expect(found(/^shared\/(policy\/|findings\/(?!finding\.ts$)).*\.ts$/)).toEqual([]);
    expect(found(/^shared\/gate\/(gate|escalation|scan|token|image)\.ts$/)).toEqual([]);
    expect(found(/^functions\/common\/(policy-bundle|aws-runtime)\.ts$/)).toEqual([]);
    expect(new Set(found(/node_modules\/@aws-sdk\/client-/).map((p) => p.split('/')[2]))).toEqual(
      new Set(['client-dynamodb', 'client-eventbridge']),
    );
    // The deciding functions do carry them: the check above would see them.
    const deciding = contents(bundles.find((b) => b.name === 'approval-started')!);
    expect(deciding).toContain('shared/policy/evaluate.ts');
    expect(deciding).toContain('shared/gate/gate.ts');
  });
});

describe('the SDK floor (bench/sdk-floor.ts)', () => {
  let floors: Map<string, SdkFloor>;
  beforeAll(async () => {
    floors = new Map();
    for (const b of bundles)
      floors.set(b.name, await buildSdkFloor(sdkCalls(b.metafile), join(dir, 'sdk-floor'), b.name));
  }, 120_000);

  /** A metafile whose one output holds these inputs, with these bytes. */
  const metafileOf = (inputs: Record<string, number>) => ({
    inputs: {},
    outputs: {
      'out.mjs': {
        bytes: 0,
        inputs: Object.fromEntries(Object.entries(inputs).map(([p, n]) => [p, { bytesInOutput: n }])),
        imports: [],
        exports: [],
        entryPoint: 'in.ts',
      },
    },
  });

  it('reads the clients and commands that kept code in a bundle, and nothing shaken away', () => {
    const calls = sdkCalls(
      metafileOf({
        'node_modules/@aws-sdk/client-sns/dist-es/SNSClient.js': 900,
        'node_modules/@aws-sdk/client-sns/dist-es/commands/PublishCommand.js': 300,
        'node_modules/@aws-sdk/client-sns/dist-es/commands/SubscribeCommand.js': 0,
        'node_modules/@aws-sdk/client-sns/dist-es/models/errors.js': 4000,
        'node_modules/@aws-sdk/client-dynamodb/dist-es/DynamoDBClient.js': 900,
        'node_modules/@aws-sdk/lib-dynamodb/dist-es/DynamoDBDocumentClient.js': 500,
        'node_modules/@aws-sdk/lib-dynamodb/dist-es/commands/QueryCommand.js': 200,
        'node_modules/@aws-sdk/lib-dynamodb/dist-es/commands/GetCommand.js': 200,
        'shared/gate/gate.ts': 14000,
      }),
    );
    expect(calls).toEqual([
      { pkg: '@aws-sdk/client-dynamodb', client: 'DynamoDBClient', commands: [] },
      { pkg: '@aws-sdk/client-sns', client: 'SNSClient', commands: ['PublishCommand'] },
      {
        pkg: '@aws-sdk/lib-dynamodb',
        client: 'DynamoDBDocumentClient',
        commands: ['GetCommand', 'QueryCommand'],
      },
    ]);
    const source = sdkFloorSource(calls);
    expect(source).toContain('DynamoDBDocumentClient_2.from(new DynamoDBClient_0({}))');
    expect(source).toContain('await client_1.send(new PublishCommand_1(input))');
    expect(source).toContain('await client_2.send(new QueryCommand_2(input))');
    // A command whose client is not there, or a document client with no DynamoDB client, is not guessed at.
    expect(() =>
      sdkCalls(metafileOf({ 'node_modules/@aws-sdk/client-sns/dist-es/commands/PublishCommand.js': 300 })),
    ).toThrow(/client-sns has commands but no client module/);
    expect(() => sdkFloorSource([calls[2]!])).toThrow(/document client without a DynamoDB client/);
  });

  it('makes the same SDK calls as each function, and carries nothing of Tollgate, Powertools or zod', () => {
    for (const b of bundles) {
      const floor = floors.get(b.name)!;
      expect(floor.calls.length, b.name).toBeGreaterThan(0);
      expect(sdkCalls(floor.metafile), b.name).toEqual(sdkCalls(b.metafile));
      const inputs = contents(floor);
      const ours = inputs.filter(
        (p) =>
          /^(shared|adapters)\//.test(p) ||
          (/^functions\//.test(p) && !/^functions\/common\/sdk-stubs\//.test(p)) ||
          /node_modules\/(zod|@aws-lambda-powertools|@middy)\//.test(p),
      );
      expect(ours, b.name).toEqual([]);
      // Built alike: the SDK's stand-ins replace the same parts.
      expect(inputs.filter((p) => p.startsWith('functions/common/sdk-stubs/')).length, b.name).toBe(3);
      expect(floor.bytes, b.name).toBeLessThan(b.bytes);
    }
  });

  it(`Tollgate adds at most ${OWN_MAX_BYTES} bytes to the SDK calls each function makes`, () => {
    const rows = bundles.map((b) => {
      const sdk = floors.get(b.name)!.bytes;
      return `${b.name.padEnd(18)} ${String(b.bytes).padStart(8)} bytes = SDK ${String(sdk).padStart(8)} + ours ${String(b.bytes - sdk).padStart(7)}`;
    });
    console.log(`function bundles and their SDK calls alone:\n${rows.join('\n')}`);
    for (const b of bundles)
      expect(b.bytes - floors.get(b.name)!.bytes, b.name).toBeLessThanOrEqual(OWN_MAX_BYTES);
  });

  describe('its splits (SDK_SPLITS)', () => {
    const calls = [
      { pkg: '@aws-sdk/client-dynamodb', client: 'DynamoDBClient', commands: ['GetItemCommand'] },
      {
        pkg: '@aws-sdk/client-ecr',
        client: 'ECRClient',
        commands: ['DescribeImageScanFindingsCommand', 'DescribeImagesCommand'],
      },
      { pkg: '@aws-sdk/client-sns', client: 'SNSClient', commands: ['PublishCommand'] },
    ];

    it('keep the packages and commands a split names, and refuse what the function does not make', () => {
      expect(
        sdkSplitCalls(calls, {
          '@aws-sdk/client-ecr': ['DescribeImagesCommand'],
          '@aws-sdk/client-dynamodb': 'all',
        }),
      ).toEqual([calls[0], { ...calls[1], commands: ['DescribeImagesCommand'] }]);
      expect(() => sdkSplitCalls(calls, { '@aws-sdk/client-inspector2': 'all' })).toThrow(
        /makes no @aws-sdk\/client-inspector2 call/,
      );
      expect(() => sdkSplitCalls(calls, { '@aws-sdk/client-ecr': ['PutImageCommand'] })).toThrow(
        /does not send @aws-sdk\/client-ecr PutImageCommand/,
      );
    });

    it('build each split of a deciding function from its own calls, lighter than all of them', async () => {
      const deciding = bundles.find((b) => b.name === SPLIT_FROM)!;
      const all = floors.get(SPLIT_FROM)!;
      const splits = await buildSdkSplits(sdkCalls(deciding.metafile), join(dir, 'sdk-split'), deciding.name);
      expect(Object.keys(splits).sort()).toEqual(Object.keys(SDK_SPLITS).sort());
      for (const [name, floor] of Object.entries(splits)) {
        // What was built makes exactly the split's calls: none of the others came back in through a shared module.
        expect(sdkCalls(floor.metafile), name).toEqual(floor.calls);
        expect(floor.bytes, name).toBeLessThan(all.bytes);
      }
      expect(splits.store.calls.map((c) => c.pkg)).toEqual([
        '@aws-sdk/client-dynamodb',
        '@aws-sdk/lib-dynamodb',
      ]);
      expect(splits.store.bytes).toBeLessThan(splits.ecr.bytes);
      expect(splits.ecr.bytes).toBeLessThan(splits.inspector.bytes);
      expect(splits.inspector.calls.find((c) => c.pkg === '@aws-sdk/client-ecr')?.commands).toEqual([
        'DescribeImagesCommand',
      ]);
    }, 120_000);
  });
});

describe('the bench’s bundle figures (npm run bench)', () => {
  it('measure every deployed function: bytes, gzip, import times from fresh processes, and the SDK floor', async () => {
    const figures = await measureBundles({ runs: 2 });
    expect(figures.map((f) => f.name)).toEqual([...FUNCTION_NAMES, 'archive']);
    for (const f of figures) {
      expect(f.bytes, f.name).toBeGreaterThan(100_000);
      expect(f.gzipBytes, f.name).toBeLessThan(f.bytes);
      expect(f.importRuns, f.name).toHaveLength(2);
      expect(f.sdkBytes, f.name).toBeGreaterThan(0);
      expect(f.sdkBytes, f.name).toBeLessThan(f.bytes);
      // The splits are sized from one deciding function's calls, each lighter than all of them.
      if (f.name !== SPLIT_FROM) expect(f.sdkSplits, f.name).toBeUndefined();
      else for (const v of Object.values(f.sdkSplits ?? {})) expect(v, f.name).toBeLessThan(f.sdkBytes);
    }
    expect(Object.keys(figures.find((f) => f.name === SPLIT_FROM)?.sdkSplits ?? {})).toEqual(
      Object.keys(SDK_SPLITS),
    );
    // The same builds the tests above measure.
    for (const b of bundles) expect(figures.find((f) => f.name === b.name)?.bytes, b.name).toBe(b.bytes);
  }, 180_000);

  it('take the median of the runs', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
  });
});

describe('the two builders', () => {
  it('esbuildOptions translates every BUNDLING setting, and refuses one it does not know', () => {
    const options = esbuildOptions(BUNDLING, FUNCTION_ENTRIES.sweep, '/out/index.mjs');
    expect(options).toMatchObject({
      format: 'esm',
      target: 'node22',
      minify: true,
      sourcemap: true,
      sourcesContent: false,
      mainFields: ['module', 'main'],
      external: [],
      charset: 'utf8',
      legalComments: 'none',
      treeShaking: true,
    });
    expect(Object.keys(options.alias ?? {})).toContain('@aws-sdk/credential-provider-ini');
    // NodejsFunction ignores `charset`: a setting that one builder would apply and not the other is refused.
    expect(() => esbuildOptions({ ...BUNDLING, keepNames: true }, FUNCTION_ENTRIES.sweep, '/o')).toThrow(
      /cannot translate BundlingOptions.keepNames/,
    );
    expect(() =>
      esbuildOptions({ ...BUNDLING, esbuildArgs: { '--drop-labels': 'DEV' } }, FUNCTION_ENTRIES.sweep, '/o'),
    ).toThrow(/cannot translate the esbuild argument --drop-labels/);
  });

  it('NodejsFunction builds, byte for byte, what buildFunctionBundles measures, policy.json included', () => {
    const outdir = join(dir, 'cdk.out');
    const app = new App({ outdir });
    new NodejsFunction(new Stack(app, 'Bundles'), 'Sweep', {
      entry: FUNCTION_ENTRIES.sweep,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      handler: 'handler',
      bundling: { ...BUNDLING, commandHooks: policyBundleHook(BENCH_POLICY) },
    });
    app.synth();
    const assets = readdirSync(outdir).filter((d) => d.startsWith('asset.'));
    expect(assets).toHaveLength(1);
    const asset = join(outdir, assets[0]!);
    const ours = bundles.find((b) => b.name === 'sweep')!;
    expect(readdirSync(asset).sort()).toEqual(readdirSync(ours.dir).sort());
    for (const file of [BUNDLE_FILE, POLICY_BUNDLE_FILE]) {
      expect(readFileSync(join(asset, file)).equals(readFileSync(join(ours.dir, file))), file).toBe(true);
    }
    // The source map names the sources relative to where it was written: the same files, the same mappings.
    expect(sourceMap(asset)).toEqual(sourceMap(ours.dir));
  }, 180_000);
});

describe('policyBundleHook', () => {
  it('writes policy.json into the asset: the policy of the YAML, under its name and the hash of its bytes', () => {
    const out = mkdtempSync(join(dir, "out with 'quotes' and spaces-"));
    const hook = policyBundleHook(BENCH_POLICY);
    expect(hook.beforeBundling('/in', out)).toEqual([]);
    expect(hook.beforeInstall('/in', out)).toEqual([]);
    // As NodejsFunction runs a local hook: each command by bash.
    for (const command of hook.afterBundling('/in', out)) execFileSync('bash', ['-c', command]);
    const yaml = readFileSync(BENCH_POLICY);
    const read = readPolicyBundle(readFileSync(join(out, POLICY_BUNDLE_FILE)), join(out, POLICY_BUNDLE_FILE));
    expect(read).toEqual(parsePolicy(yaml, BENCH_POLICY));
    expect(read.sha256).toBe(createHash('sha256').update(yaml).digest('hex'));
  });

  it('takes a policy already loaded, and never ships the absolute path of the build machine', () => {
    const out = mkdtempSync(join(dir, 'out-'));
    const loaded = parsePolicy(readFileSync(BENCH_POLICY), '/home/someone/secret-project/policy.yaml');
    for (const command of policyBundleHook(loaded).afterBundling('/in', out))
      execFileSync('bash', ['-c', command]);
    const read = readPolicyBundle(readFileSync(join(out, POLICY_BUNDLE_FILE)), POLICY_BUNDLE_FILE);
    expect(read.file).toBe('policy.yaml');
    expect(read.policy).toEqual(loaded.policy);
  });

  it('refuses a bad policy at synth time, with the loader’s file:line:col message', () => {
    const bad = join(dir, 'bad-policy.yaml');
    execFileSync('bash', [
      '-c',
      `printf 'version: 1\\nname: p\\nrules:\\n  - { id: a, action: block }\\n' > '${bad}'`,
    ]);
    expect(() => policyBundleHook(bad)).toThrow(InputError);
    expect(() => policyBundleHook(bad)).toThrow(
      `${bad}:4:22: rules[0].action: expected one of reject, escalate, warn; got "block"`,
    );
  });
});
