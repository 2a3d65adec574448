import { constants } from 'node:buffer';
import { type FileHandle, open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { unreadable } from '../shared/errors.js';
import {
  type CompiledPolicy,
  compilePolicy,
  evaluate,
  FindingTable,
  InputError,
  LOCATE_LIMIT_BYTES,
  MAX_POLICY_BYTES,
  mergeFindings,
  type NamedDocument,
  parseFindingsText,
  parsePolicy,
} from '../shared/index.js';
import { decodeUtf8 } from '../shared/yaml-input.js';
import { EXIT } from './exit.js';
import { renderReport } from './report.js';

export interface EvaluateOptions {
  readonly policy: string;
  readonly findings: readonly string[];
  readonly pipeline?: string;
  readonly repository?: string;
  readonly now?: Date;
  readonly format: 'text' | 'json';
  readonly color: boolean;
}

/**
 * Findings exports can be large (100,000 findings is about 300 MB); past this, a clear error, not an OOM.
 * A file is decoded into one string, and V8's strings stop at 536,870,888 characters (0x1fffffe8) on 64-bit
 * Node, fewer on 32-bit: a limit at 512 MiB let a file that passed it fail as an internal error. UTF-8 never
 * decodes to more characters than it has bytes, so a limit no longer than the longest string keeps every
 * file it lets through decodable: 500 MiB, a round number under it, or that length where Node's is shorter.
 */
export const MAX_FINDINGS_BYTES = Math.min(500 * 1024 * 1024, constants.MAX_STRING_LENGTH);

export interface EvaluateResult {
  readonly stdout: string;
  readonly exitCode: number;
  /** What the decision may not say as meant, for standard error: stdout stays the report (or pure JSON). */
  readonly warnings: readonly string[];
}

export async function runEvaluate(options: EvaluateOptions): Promise<EvaluateResult> {
  checkStdinOnce(options);
  // The loader's own limit: a policy the CLI read whole would only be refused by it afterwards.
  const loaded = parsePolicy(
    await readInput(options.policy, 'policy', MAX_POLICY_BYTES),
    displayName(options.policy),
  );
  const policy = compilePolicy(loaded);

  const documents: NamedDocument[] = [];
  for (const file of options.findings) {
    const bytes = await readInput(file, 'findings', MAX_FINDINGS_BYTES);
    const name = displayName(file);
    const text = decodeUtf8(bytes, name);
    const document = parseFindingsText(text, name);
    // Kept only to locate a problem of the export as a whole, and only where it would be re-read for that.
    documents.push({ file: name, document, ...(text.length <= LOCATE_LIMIT_BYTES ? { text } : {}) });
  }
  const set = mergeFindings(documents, options.repository, policy.policy.settings.scan.waitMinutes);
  documents.forEach((d, k) => {
    documents[k] = { file: d.file, document: d.document };
  });
  // A scan not finished is decided as the gate decides it at the end of its wait, and one that will never give
  // a verdict as the gate decides it at once: on no findings (it judges none of a scan that did not finish),
  // whatever the files list.
  const unfinished = set.conditions.some((c) => c.kind === 'scan-timeout');
  const unjudged = unfinished || set.scan?.complete === false;

  const evaluation = evaluate(policy, {
    findings: unjudged ? FindingTable.fromFindings([]) : set.findings,
    now: options.now ?? new Date(),
    pipeline: options.pipeline,
    image: set.image,
    scan: set.scan,
    conditions: set.conditions,
  });
  const stdout =
    options.format === 'json'
      ? `${JSON.stringify(evaluation.record, null, 2)}\n`
      : renderReport(evaluation, policy, { color: options.color });
  // With no findings no rule or exception could have applied: only the empty input is worth a word.
  const warnings = [
    ...(set.findings.length === 0 ? [] : unscopedWarnings(policy, options.pipeline, set.image?.repository)),
    ...emptyInputWarning(documents, set.findings.length),
    ...(unjudged && set.findings.length > 0
      ? [
          `${set.findings.length} finding(s) listed were not judged: the scan ${unfinished ? 'has not finished' : 'cannot give a verdict'}, and the deployed gate judges none of such a scan`,
        ]
      : []),
    ...(set.leftOut === 0
      ? []
      : [
          `${set.leftOut} finding(s) of other repositories were left out: only those of ${set.image?.repository} (--repository) were judged, as the gate reads only its image's repository`,
        ]),
  ];
  return { stdout, exitCode: EXIT[evaluation.record.outcome], warnings };
}

function unscopedWarnings(
  policy: CompiledPolicy,
  pipeline: string | undefined,
  repository: string | undefined,
): string[] {
  return [
    ...unscopedWarning(
      policy,
      'pipelines',
      pipeline,
      'no pipeline was given: pass --pipeline NAME to apply them',
    ),
    ...unscopedWarning(
      policy,
      'repositories',
      repository,
      'the findings name no repository: pass --repository NAME to apply them',
    ),
  ];
}

/**
 * Rules and exceptions scoped with `pipelines` (or `repositories`) match nothing when no pipeline was given
 * (or no repository is known): the decision is the one of a pipeline they do not cover, which is rarely what
 * a dry run of `payments-prod`'s policy means.
 */
function unscopedWarning(
  policy: CompiledPolicy,
  scope: 'pipelines' | 'repositories',
  known: string | undefined,
  remedy: string,
): string[] {
  if (known !== undefined) return [];
  const rules = policy.rules.filter((r) => r[scope] !== undefined).map((r) => r.rule.id);
  const exceptions = policy.exceptions.filter((e) => e[scope] !== undefined).map((e) => e.exception.id);
  if (rules.length === 0 && exceptions.length === 0) return [];
  const named = [
    ...(rules.length > 0 ? [`rule(s) ${rules.join(', ')}`] : []),
    ...(exceptions.length > 0 ? [`exception(s) ${exceptions.join(', ')}`] : []),
  ].join(' and ');
  return [`${named} of the policy are scoped with "${scope}" and were not applied, as ${remedy}`];
}

/**
 * An export with no findings and nothing naming an image is what a filter that matched nothing gives (a
 * mistyped repository or digest in `aws inspector2 list-findings`): approved like a clean image, so said.
 * A clean image's own export (ECR's scan findings) names the image, and is not warned about.
 */
function emptyInputWarning(documents: readonly NamedDocument[], findings: number): string[] {
  if (findings > 0) return [];
  const named = documents.some(({ document: { image } }) =>
    image === undefined
      ? false
      : image.repository !== undefined || image.digest !== undefined || image.tags.length > 0,
  );
  if (named) return [];
  return [
    `${documents.map((d) => d.file).join(', ')}: no findings were read and no image was identified: check that the export is of the image meant (a list-findings filter that matches nothing gives an empty export too)`,
  ];
}

// A second read of standard input finds it drained: that file would be judged empty, not the one meant.
function checkStdinOnce(options: EvaluateOptions): void {
  const uses = [
    ...(options.policy === '-' ? ['--policy'] : []),
    ...options.findings.filter((f) => f === '-').map(() => '--findings'),
  ];
  if (uses.length < 2) return;
  throw new InputError([
    {
      file: '<stdin>',
      path: '',
      expected: '"-" once at most: standard input (-) can be read only once',
      got: `"-" ${uses.length} times (${uses.join(', ')})`,
    },
  ]);
}

/** How messages name an input: standard input as `<stdin>`, every other file by the name it was given. */
const displayName = (file: string): string => (file === '-' ? '<stdin>' : file);

/**
 * Reads an input, refusing one over `limit` bytes. A regular file's size is known before it is read; a
 * device or a pipe (`/dev/zero`, `<(…)`) says 0, so every read is also counted as it comes.
 */
async function readInput(input: string, what: string, limit: number): Promise<Buffer> {
  const file = displayName(input);
  const tooLarge = (size: string) =>
    new InputError([{ file, path: '', expected: `a ${what} file of at most ${limit} bytes`, got: size }]);
  if (input === '') {
    throw new InputError([
      { file: "''", path: '', expected: `a readable ${what} file`, got: 'an empty file name' },
    ]);
  }
  try {
    // Inside the try: a standard input that cannot be read (closed, a directory) is an input error too.
    if (input === '-') return await readBounded(process.stdin, limit, tooLarge);
    const handle = await open(input, 'r');
    try {
      const info = await handle.stat();
      if (info.isDirectory()) throw Object.assign(new Error('EISDIR'), { code: 'EISDIR' });
      if (info.isFile() && info.size > limit) throw tooLarge(`${info.size} bytes`);
      return await readFileBounded(handle, info.size, limit, tooLarge);
    } finally {
      await handle.close();
    }
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError([{ file, path: '', expected: `a readable ${what} file`, got: unreadable(e) }]);
  }
}

/**
 * Reads into buffers of its own rather than through a stream (which took twice readFile's time on a
 * 50 MB export): a regular file in one read into a buffer of its size, and one byte more to see it end.
 */
async function readFileBounded(
  handle: FileHandle,
  sizeHint: number,
  limit: number,
  tooLarge: (size: string) => InputError,
): Promise<Buffer> {
  const CHUNK = 1024 * 1024;
  const chunks: Buffer[] = [];
  let total = 0;
  let chunk = Buffer.allocUnsafe(Math.min(limit + 1, Math.max(sizeHint + 1, CHUNK)));
  let filled = 0;
  for (;;) {
    const { bytesRead } = await handle.read(chunk, filled, chunk.length - filled, null);
    if (bytesRead === 0) break;
    filled += bytesRead;
    total += bytesRead;
    if (total > limit) throw tooLarge(`more than ${limit} bytes`);
    if (filled === chunk.length) {
      chunks.push(chunk);
      chunk = Buffer.allocUnsafe(Math.min(limit + 1 - total, CHUNK));
      filled = 0;
    }
  }
  chunks.push(chunk.subarray(0, filled));
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

async function readBounded(
  stream: Readable,
  limit: number,
  tooLarge: (size: string) => InputError,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit) throw tooLarge(`more than ${limit} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}
