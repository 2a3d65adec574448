/**
 * How much of a function's bundle the AWS SDK alone takes: a bundle that builds the same SDK clients and
 * sends every command whose module the function's bundle keeps, and nothing else (no Tollgate code, no
 * Powertools, no zod), built with the same esbuild settings (`BUNDLING`, its SDK stand-ins included). Its
 * size is the least any function making those calls can weigh with the SDK bundled, so `bytes - sdkBytes`
 * is what Tollgate itself adds. (The SDK keeps a few command modules no function sends, DynamoDB's
 * DescribeEndpoints and Scan among them: under 1 KB.)
 *
 * The calls are read from the function's own metafile: every `@aws-sdk/*` client and command module that
 * kept code in its bundle. The stand-in constructs each client at the top level (as the functions do) and
 * sends each command from its handler, so esbuild can shake nothing the function keeps.
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Metafile } from 'esbuild';
import { BUNDLE_FILE, BUNDLING, entryOutput, esbuildOptions } from '../infra/bundling.js';

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
  const output = entryOutput(metafile);
  const found = new Map<string, { client?: string; commands: string[] }>();
  for (const [path, input] of Object.entries(output.inputs)) {
    const m = SDK_MODULE.exec(path);
    if (!m || input.bytesInOutput === 0) continue;
    const entry = found.get(m[1]!) ?? { commands: [] };
    found.set(m[1]!, entry);
    if (m[2] !== undefined) entry.commands.push(m[2]);
    else if (entry.client === undefined) entry.client = m[3]!;
    // Which of two clients would the stand-in build? Not a guess: the module list is not what this expects.
    else throw new Error(`sdkCalls: ${m[1]} has two client modules, ${entry.client} and ${m[3]}`);
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
 * Builds the stand-in making `calls` (`sdkCalls` of a function's metafile, or a split's part of them) as
 * `<dir>/<name>/index.mjs` (not in a function's own folder, which is what a function ships; under the same
 * file name, which its source-map comment repeats) and returns its size.
 */
export async function buildSdkFloor(
  calls: readonly SdkPackageCalls[],
  dir: string,
  name: string,
): Promise<SdkFloor> {
  const { build } = await import('esbuild');
  const outfile = join(dir, name, BUNDLE_FILE);
  const sourcefile = 'sdk-floor.js';
  const { entryPoints: _none, ...options } = esbuildOptions(BUNDLING, sourcefile, outfile);
  const result = await build({
    ...options,
    stdin: { contents: sdkFloorSource(calls), resolveDir: ROOT, sourcefile, loader: 'js' },
  });
  if (!result.metafile) throw new Error(`esbuild wrote no metafile for ${outfile}`);
  return { calls, bytes: entryOutput(result.metafile).bytes, metafile: result.metafile };
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

/** Each split of a function's calls (`sdkCalls`) built alike, as `<dir>/<name>-<split>/index.mjs`. */
export async function buildSdkSplits(
  calls: readonly SdkPackageCalls[],
  dir: string,
  name: string,
): Promise<Readonly<Record<SdkSplitName, SdkFloor>>> {
  const built: [SdkSplitName, SdkFloor][] = [];
  for (const split of Object.keys(SDK_SPLITS) as SdkSplitName[])
    built.push([
      split,
      await buildSdkFloor(sdkSplitCalls(calls, SDK_SPLITS[split]), dir, `${name}-${split}`),
    ]);
  return Object.fromEntries(built) as Record<SdkSplitName, SdkFloor>;
}
