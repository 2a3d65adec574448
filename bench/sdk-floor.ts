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
 */
export async function buildSdkFloor(bundle: BuiltBundle, dir: string): Promise<SdkFloor> {
  const { build } = await import('esbuild');
  const calls = sdkCalls(bundle.metafile);
  const outfile = join(dir, bundle.name, BUNDLE_FILE);
  const { entryPoints: _function, ...options } = esbuildOptions(BUNDLING, bundle.file, outfile);
  const result = await build({
    ...options,
    stdin: { contents: sdkFloorSource(calls), resolveDir: ROOT, sourcefile: 'sdk-floor.js', loader: 'js' },
  });
  const output = Object.values(result.metafile?.outputs ?? {}).find((o) => o.entryPoint !== undefined);
  if (!result.metafile || !output) throw new Error(`esbuild wrote no ${outfile}`);
  return { calls, bytes: output.bytes, metafile: result.metafile };
}
