import { describeValue, formatPath, InputError } from '../errors.js';
import { ecrScanState } from '../gate/scan.js';
import { positionOfOffset, SourceLocator } from '../locate.js';
import type { GateCondition } from '../policy/evaluate.js';
import type { ImageRef, ScanVerdict } from './finding.js';
import {
  checkImageFindings,
  documentImages,
  ECR_FINDINGS_NOT_READY,
  type FindingsDocument,
  type KeyPath,
  largestCounts,
  readFindingsDocument,
  rowImageReader,
  ShapeError,
  shortOfCounts,
  validateDocument,
} from './readers.js';
import { FindingTable, FindingTableBuilder } from './table.js';

/** Locating a bad field re-reads the text with positions; past this size the message gives the path only. */
/** Texts past this size are not re-read to locate a problem: a caller need not keep them for that. */
export const LOCATE_LIMIT_BYTES = 32 * 1024 * 1024;

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
        got: e.got ?? describeValue(e.value),
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

/** Where a key path sits in a file's text, when the text was given and is small enough to re-read. */
function located(named: NamedDocument | undefined, path: KeyPath): { line?: number; column?: number } {
  const text = named?.text;
  if (text === undefined || text.length > LOCATE_LIMIT_BYTES) return {};
  const pos = new SourceLocator(stripBom(text)).locate(path);
  return pos ? { line: pos.line, column: pos.column } : {};
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
    const path = [pages[0]!.document.nextTokenKey ?? 'nextToken'];
    throw new InputError([
      {
        file: pages.map((p) => p.file).join(', '),
        // A place in a file only when one file is named.
        ...(pages.length === 1 ? located(pages[0], path) : {}),
        path: formatPath(path),
        expected:
          'every page of the export: this response says more findings follow, and no file given is its last page (one without nextToken); fetch them all (the AWS CLI pages by itself unless told --no-paginate or --max-items, whose cut leaves a NextToken) or pass every page',
        got: `nextToken ${describeValue(token.length > 24 ? `${token.slice(0, 23)}…` : token)}`,
      },
    ]);
  }
}

/**
 * Pages of one answer must be of one scan, as the gate reads them (adapters/aws/ecr.ts): a rescan between two
 * pages gives pages of one scan and of another, which together can meet every count while missing findings of
 * both. Files may come in any order (a shell glob sorts page-10 before page-2), so the pages of an image are
 * compared whatever their order: where any of them says more follow (`nextToken`), every one that has a
 * completion time must have the same (the empty last page has none). Two whole answers of different scans
 * beside pages are refused too: which pages go with which answer cannot be told (fail closed).
 */
function checkScans(documents: readonly NamedDocument[]): void {
  const images = new Map<string, NamedDocument[]>();
  for (const named of documents) {
    const { document } = named;
    if (!document.format.startsWith('ecr-')) continue;
    const key = JSON.stringify([document.image?.repository ?? null, document.image?.digest ?? null]);
    images.set(key, [...(images.get(key) ?? []), named]);
  }
  for (const pages of images.values()) {
    if (!pages.some((p) => p.document.nextToken != null)) continue;
    const timed = pages.filter((p) => p.document.scanCompletedAt !== undefined);
    const first = timed[0];
    const other = timed.find((p) => p.document.scanCompletedAt !== first?.document.scanCompletedAt);
    if (first === undefined || other === undefined) continue;
    const path = ['imageScanFindings', 'imageScanCompletedAt'];
    const at = (p: NamedDocument) => new Date(p.document.scanCompletedAt!).toISOString();
    throw new InputError([
      {
        file: other.file,
        ...located(other, path),
        path: formatPath(path),
        expected: `the pages of one scan, as ${first.file} is (completed at ${at(first)}): the image was scanned again while its findings were fetched; fetch them again`,
        got: `a page of a scan completed at ${at(other)}`,
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
    const path = ['imageScanFindings', 'findingSeverityCounts'];
    throw new InputError([
      {
        file: pages.map((p) => p.file).join(', '),
        ...(pages.length === 1 ? located(pages[0], path) : {}),
        path: formatPath(path),
        expected:
          'a findings list holding every finding the response counts: this one was trimmed, or a page of it is missing',
        got: short,
      },
    ]);
  }
}

/** The partial-read checks, on the files (or the parts of them) judged. */
function checkReads(documents: readonly NamedDocument[]): void {
  checkPages(documents);
  checkScans(documents);
  checkCounts(documents);
}

export interface NamedDocument {
  readonly file: string;
  readonly document: FindingsDocument;
  /**
   * The file's text, to give the line and column of a problem of the export as a whole (a second image, a
   * page missing): optional, and not read past the size other problems are located at.
   */
  readonly text?: string | undefined;
}

/** The findings of one image, gathered from one or several files (pages of one export). */
export interface FindingsSet {
  readonly findings: FindingTable;
  readonly image: ImageRef | undefined;
  /**
   * The scan's verdict: complete, or one that will never come (ECR `FAILED`, `UNSUPPORTED_IMAGE`,
   * `FINDINGS_UNAVAILABLE`, …: `scan-incomplete`, under `scan.onUnsupported`). A scan that has not finished
   * is `pending` instead.
   */
  readonly scan: ScanVerdict | undefined;
  /**
   * Why the scan has not finished (ECR `IN_PROGRESS`, `PENDING`, no `imageScanStatus`, `FINDINGS_NOT_READY`:
   * `ecrScanState` says pending), which the deployed gate waits for and, at the end of the wait, decides as
   * `scan-timeout` under `scan.onTimeout`. Undefined when no scan is pending, or when one cannot give a
   * verdict at all (the gate decides on that at once).
   */
  readonly pending: string | undefined;
  /**
   * What the evaluator must be given beside `scan` (`EvaluationInput.conditions`): the `scan-timeout` of a
   * pending scan. A caller that passed `scan` alone would judge a scan not finished as no scan status at all.
   */
  readonly conditions: readonly GateCondition[];
  /** The findings left out as another repository's (`--repository`, on findings of several); 0 when none. */
  readonly leftOut: number;
}

/** An image a document names, with the file and key path that name it (see firstOther). */
interface NamedImage {
  readonly image: ImageRef;
  readonly named: NamedDocument;
  /** The `awsEcrContainerImage` (or ECR response) the image is read from, or the finding that has it. */
  readonly path: KeyPath;
  /** Whether `path` is the mapping that holds `imageHash` and `repositoryName`. */
  readonly resource: boolean;
  /** Whether this is an ECR response's own image (`imageId`, `repositoryName` at its top). */
  readonly response: boolean;
}

/** Every image of the documents, in document order, each with the place that names it (error path only). */
function* namedImages(documents: readonly NamedDocument[]): Generator<NamedImage> {
  for (const named of documents) {
    const { document } = named;
    if (document.image) yield { image: document.image, named, path: [], resource: false, response: true };
    const read = rowImageReader(document);
    for (let i = 0; i < document.findings.length; i++) {
      const { image, path } = read(i);
      if (image === undefined) continue;
      yield {
        image,
        named,
        path,
        resource: path[path.length - 1] === 'awsEcrContainerImage',
        response: false,
      };
    }
  }
}

/**
 * The first image (in document order) whose digest (or repository) is not the first one's (or not `first`,
 * when given): the finding that brings a second image into the files, to name in the error with its place.
 */
function firstOther(
  documents: readonly NamedDocument[],
  what: 'digest' | 'repository',
  first?: string,
): { file: string; line?: number; column?: number; path: string } | undefined {
  for (const n of namedImages(documents)) {
    const value = n.image[what];
    if (value === undefined) continue;
    if (first === undefined) first = value;
    if (value === first) continue;
    const path: KeyPath = n.response
      ? what === 'digest'
        ? ['imageId', 'imageDigest']
        : ['repositoryName']
      : n.resource
        ? [...n.path, what === 'digest' ? 'imageHash' : 'repositoryName']
        : n.path;
    return { file: n.named.file, ...located(n.named, path), path: formatPath(path) };
  }
  return undefined;
}

/**
 * Merges several findings files into the findings of one image. A decision is about one image, so files
 * that name several image digests are an error rather than a decision about a mixture; so are several
 * repositories, unless `repositoryOverride` names one of them: then only its findings are kept (and the ones
 * naming no repository), as the gate reads only the findings of the image's repository (`leftOut` counts the
 * others). Findings of none are judged as `repositoryOverride`'s when it is given; findings of one other
 * repository are refused. A partial read is refused in what is judged: the kept files and rows.
 */
export function mergeFindings(
  documents: readonly NamedDocument[],
  repositoryOverride?: string,
  /** The policy's `scan.waitMinutes`, named in a pending scan's reason when given. */
  waitMinutes?: number,
): FindingsSet {
  const digests = new Map<string, string>();
  const repositories = new Map<string, string>();
  const imagesOf = documents.map((d) => documentImages(d.document));
  documents.forEach(({ file }, k) => {
    for (const image of imagesOf[k]!) {
      if (image.digest !== undefined && !digests.has(image.digest)) digests.set(image.digest, file);
      if (image.repository !== undefined && !repositories.has(image.repository))
        repositories.set(image.repository, file);
    }
  });
  const several = repositories.size > 1;
  // Where --repository picks one repository of several, a partial read is looked for in what is kept (below):
  // another repository's last page or findings would make a partial read of this one look whole.
  const picks = several && repositoryOverride !== undefined && repositories.has(repositoryOverride);
  if (!picks) checkReads(documents);

  if (digests.size > 1) {
    const list = [...digests.entries()].map(([d, f]) => `${d} (${f})`);
    const where = firstOther(documents, 'digest');
    throw new InputError([
      {
        file: [...new Set(digests.values())].join(', '),
        path: '',
        ...where,
        expected:
          'the findings of one image (one digest): export or filter the findings of the image to judge',
        got: `findings of ${digests.size} images: ${list.slice(0, 4).join(', ')}${list.length > 4 ? ', …' : ''}`,
      },
    ]);
  }
  const [named] = repositories.keys();
  // --repository names the image of findings that name none, or picks one of several: findings of another
  // one alone would be judged, and excepted, as its.
  if (repositories.size === 1 && repositoryOverride !== undefined && repositoryOverride !== named) {
    throw new InputError([
      {
        file: repositories.get(named!)!,
        path: '',
        ...firstOther(documents, 'repository', repositoryOverride),
        expected: `the findings of ${describeValue(repositoryOverride)} (--repository), which names the repository of findings that name none, or picks one of several`,
        got: `findings of ${named}`,
      },
    ]);
  }
  if (several && !picks) {
    const where = firstOther(documents, 'repository');
    const names = `${[...repositories.keys()].slice(0, 4).join(', ')}${repositories.size > 4 ? ', …' : ''}`;
    throw new InputError([
      {
        file: [...new Set(repositories.values())].join(', '),
        path: '',
        ...where,
        expected:
          repositoryOverride === undefined
            ? 'the findings of one repository (or --repository to name the one to judge)'
            : `the findings of one repository, or --repository naming one of theirs (its findings are judged, the others left out): the findings do not name ${describeValue(repositoryOverride)}`,
        got: `findings of ${repositories.size} repositories: ${names}`,
      },
    ]);
  }

  // With several repositories, only the named one's findings are the image's (and those naming none).
  const ofRepository = (image: ImageRef | undefined) =>
    !several || image?.repository === undefined || image.repository === repositoryOverride;
  const tags = new Set<string>();
  // The scan's verdict as the gate reads an answer's pages (adapters/aws/ecr.ts), the files in the order
  // given: the first page that is not complete decides, and one showing nothing after a complete one is the
  // end of the list, not a scan not ready.
  let first: { readonly reason: string; readonly pending: boolean } | undefined;
  // The document before said the scan finished and that more pages follow (its nextToken): a page showing
  // nothing after it is the end of that answer. Any other not-ready document is a scan not ready.
  let continues = false;
  let anyScan = false;
  let leftOut = 0;
  // An ECR response is of one repository: another one's is left out whole, its scan status with it.
  const kept = documents.map(({ document }) =>
    !ofRepository(document.image)
      ? undefined
      : several
        ? keepRows(document, ofRepository)
        : document.findings,
  );
  if (picks) checkPicked(documents, kept, repositoryOverride);
  const tables: FindingTable[] = [];
  documents.forEach(({ file, document }, k) => {
    for (const image of imagesOf[k]!) if (ofRepository(image)) for (const t of image.tags) tags.add(t);
    const table = kept[k];
    leftOut += document.findings.length - (table?.length ?? 0);
    if (table === undefined) return;
    tables.push(table);
    const verdict = document.scan;
    if (verdict) {
      anyScan = true;
      const endOfAnswer = continues && verdict.status === ECR_FINDINGS_NOT_READY;
      if (!verdict.complete && first === undefined && !endOfAnswer) {
        // As the gate reads a scan status: one that has not finished is waited for, not judged unsupported.
        first = { reason: `${file}: ${verdict.reason}`, pending: ecrScanState(verdict.status) === 'pending' };
      }
    }
    continues = verdict?.complete === true && document.nextToken != null;
  });

  const repository = repositoryOverride ?? [...repositories.keys()][0];
  const digest = [...digests.keys()][0];
  const image: ImageRef | undefined =
    repository === undefined && digest === undefined && tags.size === 0
      ? undefined
      : { repository, digest, tags: [...tags].sort() };
  // A scan that will never give a verdict is decided at once, as the gate does, not waited for.
  const scan: ScanVerdict | undefined =
    first !== undefined && !first.pending
      ? { complete: false, status: 'INCOMPLETE', reason: first.reason }
      : anyScan && first === undefined
        ? { complete: true, status: 'COMPLETE' }
        : undefined;
  const waiting = first?.pending ? first.reason : undefined;
  const wait = waitMinutes === undefined ? 'scan.waitMinutes' : `${waitMinutes} minutes (scan.waitMinutes)`;
  return {
    findings: FindingTable.concat(tables),
    image,
    scan,
    pending: waiting,
    // A dry run has no wait: it gives the decision of a scan that never finishes, as the gate's at the end.
    conditions:
      waiting === undefined
        ? []
        : [
            {
              kind: 'scan-timeout',
              reason: `the scan has not finished (${waiting}): the deployed gate would wait up to ${wait} for it, then decide this if it still had not`,
            },
          ],
    leftOut,
  };
}

/**
 * The partial-read checks where --repository picks one repository of several, on every document not left out
 * whole (`kept[k]` undefined: an ECR answer of another repository) with the rows kept. A list page is checked
 * whatever rows it keeps: Inspector pages are pages of one export across every repository, whose last page
 * may hold only another repository's findings; and an ECR answer of the picked repository whose rows all name
 * another one is still held to its counts.
 */
function checkPicked(
  documents: readonly NamedDocument[],
  kept: readonly (FindingTable | undefined)[],
  picked: string,
): void {
  const judged = documents.flatMap((named, k) => {
    const t = kept[k];
    return t === undefined ? [] : [{ named, rows: t, total: named.document.findings.length, kept: t.length }];
  });
  if (judged.length === 0) {
    const answers = [...new Set(documents.map((d) => d.document.image?.repository))].join(', ');
    throw new InputError([
      {
        file: documents.map((d) => d.file).join(', '),
        ...(documents.length === 1 ? located(documents[0], ['repositoryName']) : {}),
        path: 'repositoryName',
        expected: `the findings of ${describeValue(picked)} (--repository): it is named only by findings inside ECR answers of other repositories, which are left out whole; pass the answer of ${picked}'s image`,
        got: `ECR answers of ${answers}`,
      },
    ]);
  }
  checkReads(
    judged.map(({ named, rows }) => ({ ...named, document: { ...named.document, findings: rows } })),
  );
  // A last page holding only other repositories' findings is this export's only if the picked repository's
  // findings come from an export of several repositories: a page of them shows it. Pages of its findings alone
  // may be an export filtered by repository, whose own last page was not given.
  for (const format of new Set(judged.map((j) => j.named.document.format))) {
    const pages = judged.filter((j) => j.named.document.format === format);
    const lasts = pages.filter((j) => j.named.document.nextToken === null);
    const more = pages.filter((j) => j.named.document.nextToken != null);
    if (more.length === 0 || lasts.length === 0 || lasts.some((j) => j.kept > 0 || j.total === 0)) continue;
    if (pages.some((j) => j.kept > 0 && j.kept < j.total)) continue;
    const first = more[0]!;
    const path = [first.named.document.nextTokenKey ?? 'nextToken'];
    const token = first.named.document.nextToken!;
    throw new InputError([
      {
        file: more.map((p) => p.named.file).join(', '),
        ...(more.length === 1 ? located(first.named, path) : {}),
        path: formatPath(path),
        expected: `every page of the export: this response says more findings follow, and every last page given (${lasts.map((j) => j.named.file).join(', ')}) holds only findings of other repositories, while no page shows this export is of several: it may be another export's; pass the last page of ${picked}'s findings, or export them with a repository filter`,
        got: `nextToken ${describeValue(token.length > 24 ? `${token.slice(0, 23)}…` : token)}`,
      },
    ]);
  }
}

/** The rows of a document whose image `keep` accepts (the table itself when it accepts them all). */
function keepRows(document: FindingsDocument, keep: (image: ImageRef | undefined) => boolean): FindingTable {
  const table = document.findings;
  const read = rowImageReader(document);
  const kept: number[] = [];
  for (let i = 0; i < table.length; i++) if (keep(read(i).image)) kept.push(i);
  if (kept.length === table.length) return table;
  const b = new FindingTableBuilder(kept.length);
  for (const i of kept) {
    const { source, materializer } = table.sourceOf(i);
    b.pushFinding(table.row(i), source, materializer);
  }
  return b.build();
}
