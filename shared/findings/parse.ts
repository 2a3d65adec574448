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
  const body = stripBom(text);
  // JSON.parse keeps the last of two equal keys: `"severity": "CRITICAL", "severity": "LOW"` would be judged
  // LOW, and a second `"findings": []` would empty the export. Which copy was meant cannot be told. Looked
  // for before the parse, while the heap is small (its sets cost less to collect), and reported after it,
  // so that a syntax error, which would make any finding here a guess, is reported first.
  const duplicate = firstDuplicateKey(body);
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (e) {
    throw new InputError([jsonProblem(body, file, e)]);
  }
  if (duplicate) {
    const pos = positionOfOffset(body, duplicate.offset);
    throw new InputError([
      {
        file,
        line: pos.line,
        column: pos.column,
        path: formatPath(duplicate.path),
        expected: 'each key once in a mapping',
        got: `duplicate key ${describeValue(duplicate.key)}`,
      },
    ]);
  }
  try {
    const doc = readFindingsDocument(value);
    validateDocument(doc);
    checkImageFindings(doc);
    return doc;
  } catch (e) {
    if (!(e instanceof ShapeError)) throw e;
    const pos = body.length <= LOCATE_LIMIT_BYTES ? new SourceLocator(body).locate(e.path) : undefined;
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

function jsonProblem(body: string, file: string, e: unknown) {
  if (body.trim() === '') {
    return { file, path: '', expected: 'a JSON findings export', got: 'an empty file' };
  }
  // V8's message names no position for some errors (an unexpected token, on Node 20) and quotes a snippet
  // of the text, line breaks and control characters included: the place and the words come from a scan of
  // our own, and V8's message only when that scan finds nothing wrong.
  const found = jsonSyntaxError(body);
  const pos = found ? positionOfOffset(body, found.offset) : undefined;
  const detail = found?.detail ?? v8Detail(e);
  return {
    file,
    ...(pos ? { line: pos.line, column: pos.column } : {}),
    path: '',
    expected: 'a JSON findings export',
    got: `invalid JSON (${detail})`,
  };
}

/** V8's message without its position and snippet, on one line. */
function v8Detail(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const bare = message
    .replace(/, (?:\.\.\.)?".*$/s, '')
    .replace(/ (?:in JSON )?at position \d+.*$/s, '')
    .replace(/\s+/g, ' ');
  return JSON.stringify(bare).slice(1, -1);
}

export interface DuplicateKey {
  readonly key: string;
  readonly path: readonly (string | number)[];
  /** Of the second copy: the one JSON.parse kept. */
  readonly offset: number;
}

interface Frame {
  /** Undefined for an array. */
  keys: Set<string> | undefined;
  key: string;
  index: number;
}

/**
 * The first key given twice in one object of a JSON text (what it finds in text that is not JSON is not
 * used). One pass over the text, strings skipped with indexOf: a findings file can be hundreds of MB, and
 * this runs on every one of them.
 */
export function firstDuplicateKey(text: string): DuplicateKey | undefined {
  const stack: Frame[] = [];
  let top: Frame | undefined;
  let expectKey = false;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      for (;;) {
        j = text.indexOf('"', j);
        if (j < 0) return undefined;
        let slashes = 0;
        while (text.charCodeAt(j - 1 - slashes) === 0x5c) slashes++;
        if (slashes % 2 === 0) break;
        j++;
      }
      if (expectKey && top?.keys) {
        const raw = text.slice(i + 1, j);
        // `"a"` and `"\u0061"` are one key to JSON.parse. A bad escape is not JSON: the parse reports it.
        let key = raw;
        if (raw.includes('\\')) {
          try {
            key = JSON.parse(`"${raw}"`) as string;
          } catch {
            return undefined;
          }
        }
        if (top.keys.has(key)) {
          top.key = key;
          return { key, path: stack.map((f) => (f.keys ? f.key : f.index)), offset: i };
        }
        top.keys.add(key);
        top.key = key;
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === 0x7b) {
      top = { keys: new Set(), key: '', index: 0 };
      stack.push(top);
      expectKey = true;
    } else if (c === 0x5b) {
      top = { keys: undefined, key: '', index: 0 };
      stack.push(top);
      expectKey = false;
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
      top = stack[stack.length - 1];
      expectKey = false;
    } else if (c === 0x2c && top) {
      if (top.keys) expectKey = true;
      else top.index++;
    }
    i++;
  }
  return undefined;
}

/**
 * Where a text JSON.parse refused first goes wrong, and how (RFC 8259's grammar, as V8 applies it). Only
 * the error path runs it; it keeps its own stack, so nesting as deep as JSON.parse takes does not overflow.
 */
export function jsonSyntaxError(text: string): { offset: number; detail: string } | undefined {
  const n = text.length;
  const stack: number[] = [];
  let i = 0;
  const found = (offset: number, what: string) => ({
    offset,
    detail:
      offset >= n
        ? `unexpected end of file; expected ${what}`
        : `unexpected ${charAt(text, offset)}; expected ${what}`,
  });
  // A string from its opening quote; the offset past it, or the problem inside it.
  const string = (): number | { offset: number; detail: string } => {
    let j = i + 1;
    for (;;) {
      if (j >= n) return { offset: i, detail: 'a string that never ends' };
      const c = text.charCodeAt(j);
      if (c === 0x22) return j + 1;
      if (c < 0x20) return { offset: j, detail: `${charAt(text, j)} inside a string; expected it escaped` };
      if (c === 0x5c) {
        const e = text[j + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(j + 2, j + 6)))
            return { offset: j, detail: 'a \\u escape without 4 hex digits' };
          j += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) j += 2;
        else
          return {
            offset: j,
            detail:
              'an escape JSON does not have (expected one of \\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX)',
          };
      } else j++;
    }
  };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  type State = 'value' | 'firstValue' | 'key' | 'firstKey' | 'after';
  let state: State = 'value';
  for (;;) {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
    const c = text[i];
    if (state === 'after') {
      const open = stack[stack.length - 1];
      if (open === undefined) return i < n ? found(i, 'nothing after the JSON value') : undefined;
      const close = open === 0x7b ? '}' : ']';
      if (c === ',') state = open === 0x7b ? 'key' : 'value';
      else if (c === close) stack.pop();
      else return found(i, `',' or '${close}'`);
      i++;
    } else if (state === 'key' || state === 'firstKey') {
      if (c === '}' && state === 'firstKey') {
        stack.pop();
        i++;
        state = 'after';
        continue;
      }
      if (c !== '"')
        return found(i, state === 'firstKey' ? "a key in double quotes or '}'" : 'a key in double quotes');
      const end = string();
      if (typeof end !== 'number') return end;
      i = end;
      while (i < n && /[ \t\n\r]/.test(text[i]!)) i++;
      if (text[i] !== ':') return found(i, "':' after the key");
      i++;
      state = 'value';
    } else {
      if (c === ']' && state === 'firstValue') {
        stack.pop();
        i++;
        state = 'after';
      } else if (c === '{' || c === '[') {
        stack.push(text.charCodeAt(i));
        i++;
        state = c === '{' ? 'firstKey' : 'firstValue';
      } else if (c === '"') {
        const end = string();
        if (typeof end !== 'number') return end;
        i = end;
        state = 'after';
      } else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
        NUMBER.lastIndex = i;
        if (!NUMBER.test(text)) return found(c === '-' ? i + 1 : i, 'a digit');
        i = NUMBER.lastIndex;
        state = 'after';
      } else {
        const word = ['true', 'false', 'null'].find((w) => text.startsWith(w, i));
        if (word === undefined)
          return found(
            i,
            state === 'firstValue'
              ? "a value or ']'"
              : 'a value (an object, a list, a string, a number, true, false or null)',
          );
        i += word.length;
        state = 'after';
      }
    }
  }
}

/** A character of the text, quoted and escaped, for a message printed on a terminal. */
function charAt(text: string, offset: number): string {
  const cp = text.codePointAt(offset) ?? 0;
  const ch = String.fromCodePoint(cp);
  // Control characters, invisible ones (zero-width, a byte-order mark) and the marks that reorder a line are
  // named rather than sent to a terminal.
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || /[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/.test(ch)
    ? `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`
    : `'${ch}'`;
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
