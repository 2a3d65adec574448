import { readFile, stat } from 'node:fs/promises';
import { unreadable } from '../shared/errors.js';
import {
  compilePolicy,
  evaluate,
  InputError,
  mergeFindings,
  type NamedDocument,
  parseFindingsText,
  parsePolicy,
} from '../shared/index.js';
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

/** Findings exports can be large (100,000 findings is about 300 MB); past this, a clear error, not an OOM. */
export const MAX_FINDINGS_BYTES = 512 * 1024 * 1024;

export async function runEvaluate(options: EvaluateOptions): Promise<{ stdout: string; exitCode: number }> {
  const loaded = parsePolicy(await readInput(options.policy, 'policy', 2 * 1024 * 1024), options.policy);
  const policy = compilePolicy(loaded);

  const documents: NamedDocument[] = [];
  for (const file of options.findings) {
    const bytes = await readInput(file, 'findings', MAX_FINDINGS_BYTES);
    const name = file === '-' ? '<stdin>' : file;
    documents.push({ file: name, document: parseFindingsText(bytes.toString('utf8'), name) });
  }
  const set = mergeFindings(documents, options.repository);

  const evaluation = evaluate(policy, {
    findings: set.findings,
    now: options.now ?? new Date(),
    pipeline: options.pipeline,
    image: set.image,
    scan: set.scan,
  });
  const stdout =
    options.format === 'json'
      ? `${JSON.stringify(evaluation.record, null, 2)}\n`
      : renderReport(evaluation, policy, { color: options.color });
  return { stdout, exitCode: EXIT[evaluation.record.outcome] };
}

/** Reads an input, refusing one over `limit` bytes before it is held in memory. */
async function readInput(file: string, what: string, limit: number): Promise<Buffer> {
  const tooLarge = (size: string) =>
    new InputError([{ file, path: '', expected: `a ${what} file of at most ${limit} bytes`, got: size }]);
  try {
    if (file === '-') return await readStdin(limit, tooLarge);
    const { size } = await stat(file);
    if (size > limit) throw tooLarge(`${size} bytes`);
    return await readFile(file);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError([{ file, path: '', expected: `a readable ${what} file`, got: unreadable(e) }]);
  }
}

async function readStdin(limit: number, tooLarge: (size: string) => InputError): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit) throw tooLarge(`more than ${limit} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}
