/**
 * How much of a function's bundle the AWS SDK alone takes: a bundle that makes the same SDK calls as the
 * function and nothing else (no Tollgate code, no Powertools, no zod), built with the same esbuild settings
 * (`BUNDLING`, its SDK stand-ins included). Its size is the least any function making those calls can weigh
 * with the SDK bundled, so `bytes - sdkBytes` is what Tollgate itself adds.
 *
 * The calls are read from the function's own metafile: every `@aws-sdk/*` client and command module that
 * kept code in its bundle. The stand-in constructs each client at the top level (as the functions do) and
 * sends each command from its handler, so esbuild can shake nothing the function keeps.
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Metafile } from 'esbuild';
import { BUNDLE_FILE, BUNDLING, type BuiltBundle, esbuildOptions } from '../infra/bundling.js';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');

/** One SDK package a bundle carries: its client class and the commands it can send. */
export interface SdkPackageCalls {
  /** `@aws-sdk/client-sns`, `@aws-sdk/lib-dynamodb`, … */
  readonly pkg: string;
  /** `SNSClient`, `DynamoDBDocumentClient`, … */
  readonly client: string;
  /** `PublishCommand`, … (sorted) */
  readonly commands: readonly string[];
}

const SDK_MODULE =
  /(?:^|\/)node_modules\/(@aws-sdk\/(?:client-[a-z0-9-]+|lib-dynamodb))\/dist-es\/(?:commands\/(\w+Command)|(\w+Client))\.js$/;

/** The SDK clients and commands that kept code in an esbuild output (sorted by package). */
export function sdkCalls(metafile: Metafile): SdkPackageCalls[] {
  const output = Object.values(metafile.outputs).find((o) => o.entryPoint !== undefined);
  if (!output) throw new Error('sdkCalls: the metafile has no entry point output');
  const found = new Map<string, { client?: string; commands: string[] }>();
  for (const [path, input] of Object.entries(output.inputs)) {
    const m = SDK_MODULE.exec(path);
    if (!m || input.bytesInOutput === 0) continue;
    const entry = found.get(m[1]!) ?? { commands: [] };
    found.set(m[1]!, entry);
    if (m[2] !== undefined) entry.commands.push(m[2]);
    else entry.client = m[3]!;
  }
  return [...found]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([pkg, e]) => {
      // A command without its client cannot be sent: the module list is not what this reader expects.
      if (e.client === undefined) throw new Error(`sdkCalls: ${pkg} has commands but no client module`);
      return { pkg, client: e.client, commands: e.commands.sort() };
    });
}

/**
 * The stand-in's source: each client built once, each command sent. The document client wraps a DynamoDB
 * client, as `adapters/dynamodb` builds it.
 */
export function sdkFloorSource(calls: readonly SdkPackageCalls[]): string {
  const lines: string[] = [];
  const sends: string[] = [];
  const dynamo = calls.findIndex((c) => c.client === 'DynamoDBClient');
  calls.forEach((c, i) => {
    const names = [c.client, ...c.commands].map((n) => `${n} as ${n}_${i}`);
    lines.push(`import { ${names.join(', ')} } from '${c.pkg}';`);
    if (c.client === 'DynamoDBDocumentClient') {
      if (dynamo < 0) throw new Error('sdkFloorSource: a document client without a DynamoDB client');
      lines.push(`const client_${i} = ${c.client}_${i}.from(new DynamoDBClient_${dynamo}({}));`);
    } else {
      lines.push(`const client_${i} = new ${c.client}_${i}({});`);
    }
    for (const command of c.commands)
      sends.push(`  out.push(await client_${i}.send(new ${command}_${i}(input)));`);
  });
  return [
    ...lines,
    'export const handler = async (input) => {',
    '  const out = [];',
    ...sends,
    '  return out;',
    '};',
    '',
  ].join('\n');
}

export interface SdkFloor {
  readonly calls: readonly SdkPackageCalls[];
  /** The stand-in's `index.mjs`, in bytes. */
  readonly bytes: number;
  readonly metafile: Metafile;
}

/**
 * Builds the stand-in of `bundle` as `<dir>/<name>/index.mjs` (not in the bundle's own folder, which is what
 * a function ships; under the same file name, which its source-map comment repeats) and returns its size.
 * `calls` defaults to the bundle's own; a split (`sdkSplitCalls`) passes a part of them, under its own name.
 */
export async function buildSdkFloor(
  bundle: BuiltBundle,
  dir: string,
  calls: readonly SdkPackageCalls[] = sdkCalls(bundle.metafile),
  name: string = bundle.name,
): Promise<SdkFloor> {
  const { build } = await import('esbuild');
  const outfile = join(dir, name, BUNDLE_FILE);
  const { entryPoints: _function, ...options } = esbuildOptions(BUNDLING, bundle.file, outfile);
  const result = await build({
    ...options,
    stdin: { contents: sdkFloorSource(calls), resolveDir: ROOT, sourcefile: 'sdk-floor.js', loader: 'js' },
  });
  const output = Object.values(result.metafile?.outputs ?? {}).find((o) => o.entryPoint !== undefined);
  if (!result.metafile || !output) throw new Error(`esbuild wrote no ${outfile}`);
  return { calls, bytes: output.bytes, metafile: result.metafile };
}

/**
 * The parts of a deciding function's SDK calls that a function of another design would still have to make,
 * for the bench to size designs that split the work: what a function can weigh at least, before any of
 * Tollgate's code, if it did only that part.
 *
 * - `store`: the table alone (every function that records a decision or closes a gate reads and writes it);
 * - `ecr`: deciding from ECR basic scans (the pipeline's state and token, `PutApprovalResult`, the findings,
 *   the table), with the escalation (SNS) and Tollgate's events (EventBridge) left to another function;
 * - `inspector`: the same from Inspector (ECR only for the tag's digest).
 *
 * A package's `'all'` keeps the commands the function sends; a list keeps those.
 */
export const SDK_SPLITS = {
  store: { '@aws-sdk/client-dynamodb': 'all', '@aws-sdk/lib-dynamodb': 'all' },
  ecr: {
    '@aws-sdk/client-dynamodb': 'all',
    '@aws-sdk/lib-dynamodb': 'all',
    '@aws-sdk/client-codepipeline': 'all',
    '@aws-sdk/client-ecr': 'all',
  },
  inspector: {
    '@aws-sdk/client-dynamodb': 'all',
    '@aws-sdk/lib-dynamodb': 'all',
    '@aws-sdk/client-codepipeline': 'all',
    '@aws-sdk/client-ecr': ['DescribeImagesCommand'],
    '@aws-sdk/client-inspector2': 'all',
  },
} as const satisfies Readonly<Record<string, Readonly<Record<string, 'all' | readonly string[]>>>>;

export type SdkSplitName = keyof typeof SDK_SPLITS;

/**
 * The part of `calls` a split keeps. A package or command the split names that the function does not make is
 * an error: the split would then size a design that makes calls the function does not, or none at all.
 */
export function sdkSplitCalls(
  calls: readonly SdkPackageCalls[],
  keep: Readonly<Record<string, 'all' | readonly string[]>>,
): SdkPackageCalls[] {
  return Object.entries(keep)
    .map(([pkg, commands]) => {
      const made = calls.find((c) => c.pkg === pkg);
      if (!made) throw new Error(`sdkSplitCalls: the function makes no ${pkg} call`);
      if (commands === 'all') return made;
      const missing = commands.filter((c) => !made.commands.includes(c));
      if (missing.length > 0)
        throw new Error(`sdkSplitCalls: the function does not send ${pkg} ${missing.join(', ')}`);
      return { ...made, commands: [...commands].sort() };
    })
    .sort((a, b) => (a.pkg < b.pkg ? -1 : 1));
}

/** Each split of `bundle`'s calls built alike, as `<dir>/<bundle>-<split>/index.mjs`. */
export async function buildSdkSplits(
  bundle: BuiltBundle,
  dir: string,
): Promise<Readonly<Record<SdkSplitName, SdkFloor>>> {
  const all = sdkCalls(bundle.metafile);
  const out: Partial<Record<SdkSplitName, SdkFloor>> = {};
  for (const [name, keep] of Object.entries(SDK_SPLITS) as [
    SdkSplitName,
    (typeof SDK_SPLITS)[SdkSplitName],
  ][])
    out[name] = await buildSdkFloor(bundle, dir, sdkSplitCalls(all, keep), `${bundle.name}-${name}`);
  return out as Record<SdkSplitName, SdkFloor>;
}
