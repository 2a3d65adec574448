import { describeValue, formatPath, InputError } from '../errors.js';
import { positionOfOffset, SourceLocator } from '../locate.js';
import type { ImageRef, ScanVerdict } from './finding.js';
import {
  checkImageFindings,
  documentImages,
  type FindingsDocument,
  largestCounts,
  readFindingsDocument,
  ShapeError,
  shortOfCounts,
  validateDocument,
} from './readers.js';
import { FindingTable } from './table.js';

/** Locating a bad field re-reads the text with positions; past this size the message gives the path only. */
const LOCATE_LIMIT_BYTES = 32 * 1024 * 1024;

/** Parses one findings file's text; every failure is an InputError naming the file, position and path. */
export function parseFindingsText(text: string, file: string): FindingsDocument {
  let value: unknown;
  try {
    value = JSON.parse(stripBom(text));
  } catch (e) {
    throw new InputError([jsonProblem(text, file, e)]);
  }
  try {
    const doc = readFindingsDocument(value);
    validateDocument(doc);
    checkImageFindings(doc);
    return doc;
  } catch (e) {
    if (!(e instanceof ShapeError)) throw e;
    const pos = text.length <= LOCATE_LIMIT_BYTES ? new SourceLocator(text).locate(e.path) : undefined;
    throw new InputError([
      {
        file,
        ...(pos ? { line: pos.line, column: pos.column } : {}),
        path: formatPath(e.path),
        expected: e.expected,
        got: describeValue(e.value),
      },
    ]);
  }
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function jsonProblem(text: string, file: string, e: unknown) {
  const message = e instanceof Error ? e.message : String(e);
  const body = stripBom(text);
  const m = /at position (\d+)/.exec(message);
  // V8 names no position when the very first token is wrong (a CSV, an HTML error page): that token's.
  const offset = m ? Number(m[1]) : /^Unexpected token/.test(message) ? body.search(/\S/) : -1;
  const pos = offset >= 0 ? positionOfOffset(body, offset) : undefined;
  const detail = message.replace(/ in JSON at position \d+.*$/s, '').replace(/, ".*$/s, '');
  return {
    file,
    ...(pos ? { line: pos.line, column: pos.column } : {}),
    path: '',
    expected: 'a JSON findings export',
    got: text.trim() === '' ? 'an empty file' : `invalid JSON (${detail})`,
  };
}

/**
 * A partial read is never judged: a response that says more findings follow (`nextToken`) must come with
 * the rest of its export, of which the last page has no token. (Which middle page is missing cannot be told
 * from the pages: each token only says that one follows.)
 */
function checkPages(documents: readonly NamedDocument[]): void {
  const formats = new Set(documents.map((d) => d.document.format));
  for (const format of formats) {
    const pages = documents.filter((d) => d.document.format === format && d.document.nextToken != null);
    const last = documents.some((d) => d.document.format === format && d.document.nextToken === null);
    if (pages.length === 0 || last) continue;
    const token = pages[0]!.document.nextToken!;
    throw new InputError([
      {
        file: pages.map((p) => p.file).join(', '),
        path: 'nextToken',
        expected:
          'every page of the export: this response says more findings follow, and no file given is its last page (one without nextToken); fetch them all (the AWS CLI pages by itself unless told --no-paginate or --max-items, whose cut leaves a NextToken) or pass every page',
        got: `nextToken ${describeValue(token.length > 24 ? `${token.slice(0, 23)}…` : token)}`,
      },
    ]);
  }
}

/**
 * A partial list is never judged either: an ECR response counts the whole scan's findings by severity
 * (`findingSeverityCounts`, on every page), and the pages given must list at least that many.
 */
function checkCounts(documents: readonly NamedDocument[]): void {
  const formats = new Set(documents.map((d) => d.document.format));
  for (const format of formats) {
    const pages = documents.filter((d) => d.document.format === format);
    const counts = largestCounts(pages.map((d) => d.document.counts));
    if (counts === undefined) continue;
    const short = shortOfCounts(FindingTable.concat(pages.map((d) => d.document.findings)), counts);
    if (short === undefined) continue;
    throw new InputError([
      {
        file: pages.map((p) => p.file).join(', '),
        path: 'imageScanFindings.findingSeverityCounts',
        expected:
          'a findings list holding every finding the response counts: this one was trimmed, or a page of it is missing',
        got: short,
      },
    ]);
  }
}

export interface NamedDocument {
  readonly file: string;
  readonly document: FindingsDocument;
}

/** The findings of one image, gathered from one or several files (pages of one export). */
export interface FindingsSet {
  readonly findings: FindingTable;
  readonly image: ImageRef | undefined;
  readonly scan: ScanVerdict | undefined;
}

/**
 * Merges several findings files into the findings of one image. A decision is about one image, so files
 * that name several image digests or repositories are an error rather than a decision about a mixture.
 */
export function mergeFindings(documents: readonly NamedDocument[], repositoryOverride?: string): FindingsSet {
  const digests = new Map<string, string>();
  const repositories = new Map<string, string>();
  const tags = new Set<string>();
  const incomplete: string[] = [];
  let anyScan = false;

  const note = (image: ImageRef | undefined, file: string) => {
    if (!image) return;
    if (image.digest !== undefined && !digests.has(image.digest)) digests.set(image.digest, file);
    if (image.repository !== undefined && !repositories.has(image.repository))
      repositories.set(image.repository, file);
    for (const t of image.tags) tags.add(t);
  };

  checkPages(documents);
  checkCounts(documents);
  for (const { file, document } of documents) {
    for (const image of documentImages(document)) note(image, file);
    if (document.scan) {
      anyScan = true;
      if (!document.scan.complete) incomplete.push(`${file}: ${document.scan.reason}`);
    }
  }

  if (digests.size > 1) {
    const list = [...digests.entries()].map(([d, f]) => `${d} (${f})`);
    throw new InputError([
      {
        file: [...new Set(digests.values())].join(', '),
        path: '',
        expected:
          'the findings of one image (one digest): export or filter the findings of the image to judge',
        got: `findings of ${digests.size} images: ${list.slice(0, 4).join(', ')}${list.length > 4 ? ', …' : ''}`,
      },
    ]);
  }
  if (repositories.size > 1 && repositoryOverride === undefined) {
    throw new InputError([
      {
        file: [...new Set(repositories.values())].join(', '),
        path: '',
        expected: 'the findings of one repository (or --repository to name it)',
        got: `findings of ${repositories.size} repositories: ${[...repositories.keys()].slice(0, 4).join(', ')}`,
      },
    ]);
  }

  const repository = repositoryOverride ?? [...repositories.keys()][0];
  const digest = [...digests.keys()][0];
  const image: ImageRef | undefined =
    repository === undefined && digest === undefined && tags.size === 0
      ? undefined
      : { repository, digest, tags: [...tags].sort() };
  const scan: ScanVerdict | undefined = !anyScan
    ? undefined
    : incomplete.length > 0
      ? { complete: false, status: 'INCOMPLETE', reason: incomplete.join('; ') }
      : { complete: true, status: 'COMPLETE' };
  return { findings: FindingTable.concat(documents.map((d) => d.document.findings)), image, scan };
}
