import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type BundlingOptions,
  type ICommandHooks,
  LogLevel,
  OutputFormat,
} from 'aws-cdk-lib/aws-lambda-nodejs';
import type { BuildOptions, Metafile } from 'esbuild';
import { policyBundle } from '../shared/policy/bundle.js';
import { type LoadedPolicy, parsePolicy } from '../shared/policy/load.js';
import { FUNCTION_NAMES, type FunctionName } from './patterns.js';

/*
 * How the Lambda functions are built, in one place for the two builders: the CDK construct
 * (`NodejsFunction`, with `BUNDLING` and `policyBundleHook`) and `buildFunctionBundles` (esbuild's JS API,
 * for the benchmark and the tests), so the figures measured are those of what the stack deploys.
 */

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const fromRoot = (path: string): string => join(ROOT, ...path.split('/'));

/** Each function's entry point (absolute): `functions/<name>/index.ts`, exporting `handler`. */
export const FUNCTION_ENTRIES: Readonly<Record<FunctionName, string>> = {
  'approval-started': fromRoot('functions/approval-started/index.ts'),
  'scan-finished': fromRoot('functions/scan-finished/index.ts'),
  'approval-ended': fromRoot('functions/approval-ended/index.ts'),
  sweep: fromRoot('functions/sweep/index.ts'),
};

/**
 * The functions that decide, and so read the policy: `policy.json` travels with their code only.
 * approval-ended closes gates without it (`functions/common/aws-closing.ts`), so a policy change does not
 * redeploy it. The one list of them: `infra/tollgate.ts` grants the permissions to decide and act from it.
 */
export const READS_POLICY: ReadonlySet<FunctionName> = new Set<FunctionName>([
  'approval-started',
  'scan-finished',
  'sweep',
]);

/**
 * The audit archive's function (`infra/archive.ts`), built with the same `BUNDLING`. Not one of the gate's four
 * (`FUNCTION_NAMES`): the table's stream invokes it, it reads no policy, and it has its own role and alarms.
 */
export const ARCHIVE_FUNCTION_ENTRY = fromRoot('functions/archive/index.ts');

/** The bundle's file name (what `NodejsFunction` writes for ESM): the handler is `index.handler`. */
export const BUNDLE_FILE = 'index.mjs';
/** The policy bundle beside it, which `functions/common/aws.ts` reads by default. */
export const POLICY_BUNDLE_FILE = 'policy.json';

/**
 * Parts of the AWS SDK replaced, in the bundles only, by modules that say why they are not there. Nothing a
 * function does in Lambda reaches them (see each module); they would be 107 KB of every bundle.
 */
export const SDK_STUBS: Readonly<Record<string, string>> = {
  '@aws-sdk/credential-provider-ini': fromRoot('functions/common/sdk-stubs/credential-files.ts'),
  '@aws-sdk/credential-provider-process': fromRoot('functions/common/sdk-stubs/credential-files.ts'),
  '@aws-sdk/credential-provider-sso': fromRoot('functions/common/sdk-stubs/credential-files.ts'),
  '@aws-sdk/credential-provider-web-identity': fromRoot('functions/common/sdk-stubs/credential-files.ts'),
  '@smithy/credential-provider-imds': fromRoot('functions/common/sdk-stubs/instance-metadata.ts'),
  '@smithy/core/event-streams': fromRoot('functions/common/sdk-stubs/event-streams.ts'),
};

/**
 * esbuild settings of every function, for `NodejsFunction`'s `bundling` (add `commandHooks:
 * policyBundleHook(…)`). One ES module, minified, with a source map (set `NODE_OPTIONS=--enable-source-maps`
 * on the function for stack traces in the source's terms), for Node 22, with the SDK inside: pinned by the lock
 * file, not the runtime's copy of the day, and tree-shaken from its ES builds.
 */
export const BUNDLING: BundlingOptions = {
  format: OutputFormat.ESM,
  target: 'node22',
  minify: true,
  sourceMap: true,
  // Line numbers are what a stack trace needs; the sources themselves would only make the asset bigger.
  sourcesContent: false,
  // ES builds first: esbuild can only drop what a function never calls from ES modules.
  mainFields: ['module', 'main'],
  // Nothing external: without this, NodejsFunction leaves `@aws-sdk/*` to the runtime's copy.
  externalModules: [],
  // Some CommonJS dependencies call require() for Node built-ins; an ES module has no require of its own.
  banner: "import{createRequire}from'module';const require=createRequire(import.meta.url);",
  tsconfig: fromRoot('tsconfig.json'),
  logLevel: LogLevel.WARNING,
  // Not shipped: the benchmark and the tests build their own metafile (`buildFunctionBundles`).
  metafile: false,
  esbuildArgs: {
    // esbuild's default when bundling; said here so nobody switches it off by accident.
    '--tree-shaking': 'true',
    // The only "legal comments" in the bundles are coverage pragmas (`v8 ignore … @preserve`).
    '--legal-comments': 'none',
    // UTF-8 rather than \u escapes for the few non-ASCII characters. An argument, because NodejsFunction
    // ignores `charset` (aws-cdk-lib 2.276 passes no --charset).
    '--charset': 'utf8',
    '--alias': Object.entries(SDK_STUBS).map(([from, to]) => `${from}=${to}`),
  },
};

/**
 * `BUNDLING` as esbuild JS API options, flag for flag as NodejsFunction passes them on the command line
 * (`--bundle --platform=node --outfile=…/index.mjs` included). An option it does not know how to translate
 * is an error, so the two builders cannot drift apart.
 */
export function esbuildOptions(bundling: BundlingOptions, entry: string, outfile: string): BuildOptions {
  const options: BuildOptions = {
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    absWorkingDir: ROOT,
    metafile: true,
  };
  for (const [key, value] of Object.entries(bundling)) {
    if (value === undefined) continue;
    switch (key) {
      case 'format':
        options.format = value === OutputFormat.ESM ? 'esm' : 'cjs';
        break;
      case 'target':
        options.target = value as string;
        break;
      case 'minify':
        options.minify = value as boolean;
        break;
      case 'sourceMap':
        options.sourcemap = value as boolean;
        break;
      case 'sourcesContent':
        options.sourcesContent = value as boolean;
        break;
      case 'mainFields':
        options.mainFields = value as string[];
        break;
      case 'externalModules':
        options.external = value as string[];
        break;
      case 'banner':
        options.banner = { js: value as string };
        break;
      case 'tsconfig':
        options.tsconfig = value as string;
        break;
      case 'logLevel':
        options.logLevel = value as NonNullable<BuildOptions['logLevel']>;
        break;
      case 'metafile':
        // Always on here (in memory): the tests and the benchmark read it.
        break;
      case 'esbuildArgs':
        Object.assign(options, esbuildArgOptions(value as NonNullable<BundlingOptions['esbuildArgs']>));
        break;
      default:
        // Among them `charset`, which NodejsFunction silently ignores: say it with `esbuildArgs`.
        throw new Error(`infra/bundling.ts: esbuildOptions cannot translate BundlingOptions.${key}`);
    }
  }
  return options;
}

function esbuildArgOptions(args: NonNullable<BundlingOptions['esbuildArgs']>): BuildOptions {
  const options: BuildOptions = {};
  for (const [flag, value] of Object.entries(args)) {
    switch (flag) {
      case '--tree-shaking':
        options.treeShaking = value === true || value === 'true';
        break;
      case '--charset':
        options.charset = value as NonNullable<BuildOptions['charset']>;
        break;
      case '--legal-comments':
        options.legalComments = value as NonNullable<BuildOptions['legalComments']>;
        break;
      case '--alias':
        options.alias = Object.fromEntries(
          (value as string[]).map((pair) => {
            const at = pair.indexOf('=');
            return [pair.slice(0, at), pair.slice(at + 1)];
          }),
        );
        break;
      default:
        throw new Error(`infra/bundling.ts: esbuildOptions cannot translate the esbuild argument ${flag}`);
    }
  }
  return options;
}

/** A function built as the stack deploys it. */
export interface BuiltBundle {
  readonly name: string;
  /** The folder NodejsFunction would zip: `index.mjs`, `index.mjs.map`, `policy.json` if asked for and read. */
  readonly dir: string;
  /** `<dir>/index.mjs` */
  readonly file: string;
  readonly bytes: number;
  readonly metafile: Metafile;
}

/** One of the gate's four functions, built. */
export interface FunctionBundle extends BuiltBundle {
  readonly name: FunctionName;
}

export interface BuildFunctionBundlesOptions {
  /** Also write `policy.json` beside each bundle of `READS_POLICY`, as the construct's `policyBundleHook` does. */
  readonly policy?: string | LoadedPolicy;
  /** Only these functions (all four). */
  readonly functions?: readonly FunctionName[];
}

/**
 * Builds each function as the stack deploys it (`BUNDLING`, through esbuild's JS API) into
 * `<outDir>/<name>/index.mjs`, with esbuild's metafile in memory.
 */
export async function buildFunctionBundles(
  outDir: string,
  options: BuildFunctionBundlesOptions = {},
): Promise<FunctionBundle[]> {
  const policyText =
    options.policy === undefined ? undefined : policyBundleText(loadForBundle(options.policy));
  return Promise.all(
    (options.functions ?? FUNCTION_NAMES).map(async (name) => {
      const built = await buildBundle(name, FUNCTION_ENTRIES[name], outDir);
      if (policyText !== undefined && READS_POLICY.has(name))
        await writeFile(join(built.dir, POLICY_BUNDLE_FILE), policyText);
      return built;
    }),
  );
}

/** The audit archive's function (`ARCHIVE_FUNCTION_ENTRY`), built alike into `<outDir>/archive/index.mjs`. */
export function buildArchiveBundle(outDir: string): Promise<BuiltBundle & { readonly name: 'archive' }> {
  return buildBundle('archive', ARCHIVE_FUNCTION_ENTRY, outDir);
}

/** The output of an esbuild metafile that has an entry point (a function's bundle has exactly one). */
export function entryOutput(metafile: Metafile): Metafile['outputs'][string] {
  const outputs = Object.values(metafile.outputs).filter((o) => o.entryPoint !== undefined);
  if (outputs.length !== 1)
    throw new Error(`expected one entry point output in the metafile, found ${outputs.length}`);
  return outputs[0]!;
}

async function buildBundle<N extends string>(
  name: N,
  entry: string,
  outDir: string,
): Promise<BuiltBundle & { readonly name: N }> {
  const { build } = await import('esbuild');
  const dir = join(outDir, name);
  const file = join(dir, BUNDLE_FILE);
  await mkdir(dir, { recursive: true });
  const result = await build(esbuildOptions(BUNDLING, entry, file));
  const output = result.metafile?.outputs[relative(ROOT, file).split(sep).join('/')];
  if (!result.metafile || !output) throw new Error(`esbuild wrote no ${file}`);
  return { name, dir, file, bytes: output.bytes, metafile: result.metafile };
}

/**
 * The `commandHooks` that put the policy beside each function's bundle as `policy.json` (see
 * `shared/policy/bundle.ts`): the YAML is parsed and validated here, at synth time, with the loader and the
 * messages of `tollgate evaluate` (a bad policy throws its InputError, `file:line:col: path: expected …`),
 * and the functions only read JSON. The bundle keeps the policy file's name and the SHA-256 of its bytes,
 * which decisions record.
 *
 * `policy` is a file path or a policy already loaded with `parsePolicy`. The bundle is written to a file
 * named by its own hash under the OS temp folder and copied into the asset by the hook's shell command, so
 * the command is short and stable whatever the policy's size (the asset hash is the output's, so a policy
 * change still redeploys). Local bundling only, as `BUNDLING` is: a Docker build could not see that file.
 */
export function policyBundleHook(policy: string | LoadedPolicy): ICommandHooks {
  const text = policyBundleText(loadForBundle(policy));
  const staged = join(
    tmpdir(),
    'tollgate-policy-bundles',
    `${createHash('sha256').update(text).digest('hex')}.json`,
  );
  return {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (_inputDir: string, outputDir: string) => {
      // Written when the bundling runs (not when the hook is made), so a cleaned temp folder does not matter.
      stage(staged, text);
      return [`cp ${shellQuote(staged)} ${shellQuote(join(outputDir, POLICY_BUNDLE_FILE))}`];
    },
  };
}

/** The `policy.json` text of a loaded policy. */
export function policyBundleText(loaded: LoadedPolicy): string {
  return `${JSON.stringify(policyBundle(loaded), null, 2)}\n`;
}

/**
 * A path or a loaded policy, validated, with the name it is shipped under: as given, but a path outside the
 * project is cut to its base name, so the bundle names no folder of the machine that built it.
 */
function loadForBundle(policy: string | LoadedPolicy): LoadedPolicy {
  const loaded = typeof policy === 'string' ? parsePolicy(readFileSync(policy), policy) : policy;
  return { ...loaded, file: shippedName(loaded.file) };
}

function shippedName(file: string): string {
  if (!isAbsolute(file)) return file.split(sep).join('/');
  const inProject = relative(ROOT, file);
  return inProject.startsWith('..') || isAbsolute(inProject)
    ? basename(file)
    : inProject.split(sep).join('/');
}

function stage(path: string, text: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  // Write then rename: a concurrent synth never copies half a file.
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}

/** One POSIX shell word. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", "'\\''")}'`;
}
