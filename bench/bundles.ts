/**
 * The functions' bundles, for `npm run bench` and test/bundles.test.ts: built as the stack deploys them
 * (`buildFunctionBundles`, infra/bundling.ts: the same esbuild settings as the construct's NodejsFunction),
 * each with its `policy.json` beside it, then
 *
 * - bytes: the size of `index.mjs` (the source map and the policy are beside it, not in it); gzipBytes the
 *   same compressed (gzip -9), about what the deployment zip holds;
 * - importMs: the median, over fresh `node` processes, of the time `await import()` of the bundle takes. That
 *   is the function's cold start minus the runtime's own: parsing and running the bundle's top level, which
 *   builds the AWS runtime (SDK clients, Powertools, the policy read and validated), as Lambda's Init does;
 * - sdkBytes: the size of a bundle that makes the same AWS SDK calls and nothing else (sdk-floor.ts: every
 *   command module the function's bundle keeps), the least any function making them can weigh with the SDK
 *   bundled;
 * - sdkSplits (approval-started's only): the same for parts of its calls (`SDK_SPLITS`), the least a
 *   function of a design that splits the work could weigh.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { type BuiltBundle, buildArchiveBundle, buildFunctionBundles } from '../infra/bundling.js';
import type { FunctionName } from '../infra/patterns.js';
import { buildSdkFloor, buildSdkSplits, type SdkSplitName, sdkCalls } from './sdk-floor.js';

const run = promisify(execFile);

/** The policy the bundles are measured with: the stack's default example (cdk.json). */
export const BENCH_POLICY = 'examples/policies/baseline.yaml';

/** What the stack sets, and what Lambda sets that the code reads. No credentials: importing needs none. */
export const FUNCTION_ENV: Readonly<Record<string, string>> = {
  TOLLGATE_TABLE: 'tollgate-bench',
  TOLLGATE_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:tollgate-escalations',
  TOLLGATE_SCAN_SOURCE: 'inspector',
  TOLLGATE_ARCHIVE_BUCKET: 'tollgate-bench-archive',
  TOLLGATE_OWN_ROLES: 'tollgate-approval-started,tollgate-scan-finished,tollgate-sweep',
  TOLLGATE_PIPELINES: '["*"]',
  TOLLGATE_APPROVAL_ACTIONS: '["Tollgate*"]',
  TOLLGATE_DISCOVERY_MINUTES: '5',
  AWS_REGION: 'eu-west-1',
  AWS_DEFAULT_REGION: 'eu-west-1',
  AWS_LAMBDA_FUNCTION_NAME: 'tollgate-bench',
  AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
  // This machine's Node may be older than the SDK's next floor; the notice is noise here, not a figure.
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

export interface FreshNodeRun {
  /** `await import(bundle)`, in ms. */
  readonly importMs: number;
  /** `typeof` the bundle's `handler` export. */
  readonly handler: string;
  /** What the handler returned for `event`, if one was given. */
  readonly result?: unknown;
  readonly stdout: string;
  readonly stderr: string;
}

const MARK = 'TOLLGATE_FRESH_NODE ';

/**
 * Imports `file` in a new `node` process (nothing cached, nothing loaded before), with only `env` (and
 * PATH) in its environment; then, if an event is given, calls the handler with it and a Lambda context.
 */
export async function inFreshNode(
  file: string,
  options: { readonly env?: Readonly<Record<string, string>>; readonly event?: unknown } = {},
): Promise<FreshNodeRun> {
  const script = `
const t = performance.now();
const m = await import(${JSON.stringify(pathToFileURL(file).href)});
const importMs = performance.now() - t;
const out = { importMs, handler: typeof m.handler };
const event = process.env.TOLLGATE_FRESH_NODE_EVENT;
if (event !== undefined) {
  const context = {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'tollgate-bench',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:tollgate-bench',
    memoryLimitInMB: '256',
    awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
    logGroupName: '/aws/lambda/tollgate-bench',
    logStreamName: 'bench',
    getRemainingTimeInMillis: () => 30000,
    done() {}, fail() {}, succeed() {},
  };
  out.result = await m.handler(JSON.parse(event), context);
}
console.log(${JSON.stringify(MARK)} + JSON.stringify(out));
`;
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', ...FUNCTION_ENV, ...options.env };
  if (options.event !== undefined) env.TOLLGATE_FRESH_NODE_EVENT = JSON.stringify(options.event);
  const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', script], {
    env,
    maxBuffer: 16 * 1024 * 1024,
  });
  const line = stdout.split('\n').find((l) => l.startsWith(MARK));
  if (!line) throw new Error(`${file}: the fresh node printed no result\n${stdout}\n${stderr}`);
  const out = JSON.parse(line.slice(MARK.length)) as Omit<FreshNodeRun, 'stdout' | 'stderr'>;
  return { ...out, stdout, stderr };
}

export interface BundleFigures {
  readonly name: FunctionName | 'archive';
  readonly bytes: number;
  readonly gzipBytes: number;
  /** Median of `importRuns`. */
  readonly importMs: number;
  readonly importRuns: readonly number[];
  /** The same SDK calls alone, bundled alike (sdk-floor.ts). */
  readonly sdkBytes: number;
  /** For `SPLIT_FROM` only: the floor of each part of its calls another design could make alone (`SDK_SPLITS`). */
  readonly sdkSplits?: Readonly<Record<SdkSplitName, number>>;
}

/** The function whose calls the splits are taken from: the three deciding functions make the same ones. */
export const SPLIT_FROM: FunctionName = 'approval-started';

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/**
 * Builds the gate's four bundles and the audit archive's (when the stack has an archive, the default) into a
 * temporary folder (removed after) and measures each.
 */
export async function measureBundles(options: { readonly runs?: number } = {}): Promise<BundleFigures[]> {
  const runs = options.runs ?? 5;
  const dir = await mkdtemp(join(tmpdir(), 'tollgate-bundles-'));
  try {
    const bundles: (BuiltBundle & { readonly name: BundleFigures['name'] })[] = [
      ...(await buildFunctionBundles(dir, { policy: BENCH_POLICY })),
      await buildArchiveBundle(dir),
    ];
    const figures: BundleFigures[] = [];
    for (const bundle of bundles) figures.push(await measure(bundle, runs, join(dir, 'sdk-floor')));
    return figures;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function measure(
  bundle: BuiltBundle & { readonly name: BundleFigures['name'] },
  runs: number,
  floorDir: string,
): Promise<BundleFigures> {
  const gzipBytes = gzipSync(await readFile(bundle.file), { level: 9 }).length;
  const importRuns: number[] = [];
  // One after another: concurrent processes would measure each other.
  for (let i = 0; i < runs; i++) {
    const r = await inFreshNode(bundle.file);
    if (r.handler !== 'function') throw new Error(`${bundle.name}: the bundle exports no handler function`);
    if (/policy is invalid/.test(r.stdout))
      throw new Error(`${bundle.name}: the policy did not load\n${r.stdout}`);
    importRuns.push(r.importMs);
  }
  // Built after the imports are timed, beside the bundles (removed with them).
  const calls = sdkCalls(bundle.metafile);
  const sdkBytes = (await buildSdkFloor(calls, floorDir, bundle.name)).bytes;
  const splits = bundle.name === SPLIT_FROM ? await buildSdkSplits(calls, floorDir, bundle.name) : undefined;
  return {
    name: bundle.name,
    bytes: bundle.bytes,
    gzipBytes,
    importMs: median(importRuns),
    importRuns,
    sdkBytes,
    ...(splits && {
      sdkSplits: Object.fromEntries(Object.entries(splits).map(([k, f]) => [k, f.bytes])) as Record<
        SdkSplitName,
        number
      >,
    }),
  };
}
