import { createHash } from 'node:crypto';
import {
  type Alias,
  type Document,
  isAlias,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseAllDocuments,
  parseDocument,
  type YAMLError,
} from 'yaml';
import { safeParse } from 'zod/mini';
import type * as z from 'zod/v4/core';
import { describeValue, formatPath, InputError, type InputProblem } from './errors.js';
import { keyText, SourceLocator } from './locate.js';
import { expectedOf } from './zod-issues.js';

/**
 * How many values aliases may copy into a document: each `*name` counts every value its `&name` marks
 * (a list of 2 strings is 3 values), nested aliases included. Hundreds of uses of a rule's anchors stay far
 * below it; an alias bomb (lists of aliases of lists of aliases) passes it within a few lines and is refused
 * before anything is expanded. 100,000 values are fewer than a plain file of MAX_POLICY_BYTES can hold, so
 * aliases never make a document costlier to validate than one without them.
 */
export const MAX_ALIAS_EXPANSIONS = 100_000;

export interface YamlInputOptions {
  /** What the document is, for messages: "a policy (a mapping with version, name, rules, …)". */
  readonly what: string;
  readonly maxBytes: number;
}

/**
 * Reads a YAML 1.2 (or JSON) document a person wrote, validated by a zod schema. Every problem names the
 * file, line, column and key path, what was expected and what came; unknown keys get "did you mean".
 * Policies and scenarios share this, so both read the same way to their authors.
 */
export function parseYamlInput<S extends z.$ZodType>(
  bytes: Uint8Array | string,
  file: string,
  schema: S,
  options: YamlInputOptions,
): { readonly value: z.output<S>; readonly sha256: string } {
  const buffer = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes);
  const sha256 = createHash('sha256').update(buffer).digest('hex');
  if (buffer.length > options.maxBytes) {
    throw new InputError([
      {
        file,
        path: '',
        expected: `a file of at most ${options.maxBytes} bytes`,
        got: `${buffer.length} bytes`,
      },
    ]);
  }
  const text = decodeUtf8(buffer, file);

  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    prettyErrors: false,
    // The library's check compares each key with every earlier one (a 1 MiB mapping of 40,000 keys took
    // seconds), and by scalar value, so `1:` and `"1":` passed as two keys though they load as one. Keys are
    // checked below, once each, by the name they load as.
    uniqueKeys: false,
    version: '1.2',
    // YAML 1.1's !!omap, !!set, !!pairs, !!timestamp and !!binary would be read as a Map, Set, Date or bytes,
    // whose keys no schema sees: `revokeIf: !!omap [...]` loaded as `{}`. Unresolved, they are refused below.
    resolveKnownTags: false,
    // The library would print a warning of its own on stderr (a mapping used as a key); the schema names
    // such a key as unknown, with its place in the file.
    logLevel: 'error',
  });
  // A warning is a document read some way the author may not have meant (`!custom advisory` read as
  // "advisory" with its tag dropped): refused like an error, never guessed.
  const problems = [
    ...[...doc.errors, ...doc.warnings].map((e) => ({
      at: e.pos[0],
      problem: () => yamlProblem(e, file, lines, text),
    })),
    ...duplicateKeys(doc).map((d) => ({
      at: d.offset ?? 0,
      problem: () => duplicateProblem(d, file, lines),
    })),
  ].sort((a, b) => a.at - b.at);
  if (problems.length > 0) {
    throw new InputError(problems.slice(0, 10).map((p) => p.problem()));
  }
  // A `%YAML 1.1` directive would switch the rules silently (`1:30` read as 90, `yes` as true, `010` as 8).
  if (doc.directives?.yaml.explicit === true && doc.directives.yaml.version !== '1.2') {
    const line = text.split('\n').findIndex((l) => l.startsWith('%YAML')) + 1;
    throw new InputError([
      {
        file,
        ...(line > 0 ? { line, column: 1 } : {}),
        path: '',
        expected: 'YAML 1.2 (no %YAML directive, or %YAML 1.2)',
        got: `%YAML ${doc.directives.yaml.version}`,
      },
    ]);
  }
  // A key refused where it stands, its mapping's path named.
  const keyRefused = (found: KeyFound, expected: string, got: string): InputError => {
    const pos = lines.linePos(found.offset ?? 0);
    return new InputError([
      { file, line: pos.line, column: pos.col, path: formatPath(found.path.slice(0, -1)), expected, got },
    ]);
  };
  // The parser compares keys by their scalar values only, so an alias used as a key (`&k action: reject` …
  // `*k : warn`) is never seen as the key given twice, and the later value would win unseen: a policy that
  // reads as reject would load as warn. No document of ours needs an alias for a key.
  const aliasKey = findKey(doc, (key) => isAlias(key));
  if (aliasKey !== undefined) {
    throw keyRefused(
      aliasKey,
      'keys written out (an alias may be a value, never a key)',
      `the alias ${aliasKey.key} as a key`,
    );
  }
  // No document of ours has a key that is not text, and a mapping or list as a key costs the library (and any
  // message naming it) its text at every level: a nest 100 deep in 1 KiB took seconds, then a RangeError.
  const collectionKey = findKey(doc, (key) => isMap(key) || isSeq(key));
  if (collectionKey !== undefined) {
    throw keyRefused(
      collectionKey,
      'keys written as text (a mapping or a list is never a key)',
      `${collectionKey.key === '{…}' ? 'a mapping' : 'a list'} as a key`,
    );
  }
  // `<<: *defaults` merges a mapping in YAML 1.1, and editors (the YAML extension of VS Code) expand it
  // before they validate: a file the editor passes. YAML 1.2 has no merge key, and a schema would call it
  // unknown and suggest another key; said for what it is instead. (Quoted, "<<" is a key like any other.)
  const mergeKey = findKey(doc, (key) => isScalar(key) && key.type === 'PLAIN' && key.value === '<<');
  if (mergeKey !== undefined) {
    throw keyRefused(
      mergeKey,
      'keys written out (a merge key is YAML 1.1; Tollgate reads YAML 1.2, which has none)',
      'the merge key <<',
    );
  }
  expandAliases(doc, file, lines);
  if (!isMap(doc.contents)) {
    throw new InputError([
      { file, line: 1, column: 1, path: '', expected: options.what, got: describeValue(doc.toJS()) },
    ]);
  }
  const value: unknown = doc.toJS();

  // zod's functional form: the policy's schema is zod/mini, the scenarios' classic zod.
  const parsed = safeParse(schema, value);
  if (!parsed.success) {
    const locator = new SourceLocator(text);
    const problems = parsed.error.issues.flatMap((issue) =>
      issueProblems(issue, value, file, locator, schema),
    );
    problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
    throw new InputError(problems);
  }
  return { value: parsed.data, sha256 };
}

/**
 * Counts what the document's aliases copy (refused past MAX_ALIAS_EXPANSIONS, and an alias that names no
 * anchor before it, or one inside the value its anchor marks), then puts each alias's node in its place.
 * The library's own guard (toJS's maxAliasCount) refused a policy reusing one anchor 100 times, and let
 * through documents that took it minutes: it scans every earlier anchor for each alias, and counts the
 * uses of an anchor but not its size. This walk is linear, and toJS then meets no alias at all: it converts
 * a node met twice twice, which costs at most the count bounded here.
 */
function expandAliases(doc: Document.Parsed, file: string, lines: LineCounter): void {
  const anchors = new Map<string, Node>();
  // Each anchored node's size once expanded (saturated past the limit), and the anchored nodes being walked.
  const sizes = new Map<Node, number>();
  const open = new Set<Node>();
  const swaps: (() => void)[] = [];
  // The key path of the node being walked, copied only for a message.
  const path: (string | number)[] = [];
  let copied = 0;
  const refuse = (alias: Alias, expected: string, got: string): never => {
    const pos = lines.linePos(alias.range?.[0] ?? 0);
    throw new InputError([{ file, line: pos.line, column: pos.col, path: formatPath(path), expected, got }]);
  };
  const size = (node: unknown, put: (target: Node) => void): number => {
    if (isAlias(node)) {
      // As YAML resolves it: the last node before the alias that carries the anchor.
      const target = anchors.get(node.source);
      if (target === undefined) {
        return refuse(
          node,
          `an alias of an anchor set before it (&${node.source})`,
          `the alias *${node.source}`,
        );
      }
      if (open.has(target)) {
        return refuse(
          node,
          'an alias outside the value its anchor marks (a value cannot hold itself)',
          `the alias *${node.source} inside &${node.source}`,
        );
      }
      const n = sizes.get(target) ?? 0;
      copied += n;
      if (copied > MAX_ALIAS_EXPANSIONS) {
        return refuse(
          node,
          `at most ${MAX_ALIAS_EXPANSIONS} alias expansions (a limit against alias bombs: each *alias counts every value its &anchor marks, a list of 2 counting 3; write repeated values out, or use fewer or smaller anchors)`,
          `more: the alias *${node.source} here takes the count past ${MAX_ALIAS_EXPANSIONS}`,
        );
      }
      swaps.push(() => put(target));
      return n;
    }
    if (!isNode(node)) return 0;
    const anchor = node.anchor;
    if (anchor !== undefined) {
      anchors.set(anchor, node);
      open.add(node);
    }
    let n = 1;
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        n += size(pair.key, (t) => {
          pair.key = t;
        });
        path.push(keyName(pair.key));
        n += size(pair.value, (t) => {
          pair.value = t;
        });
        path.pop();
      }
    } else if (isSeq(node)) {
      const items = node.items;
      for (let i = 0; i < items.length; i++) {
        path.push(i);
        n += size(items[i], (t) => {
          items[i] = t;
        });
        path.pop();
      }
    }
    // Saturated: past the limit the exact size no longer matters, and an alias bomb's would overflow.
    n = Math.min(n, MAX_ALIAS_EXPANSIONS + 1);
    if (anchor !== undefined) {
      open.delete(node);
      sizes.set(node, n);
    }
    return n;
  };
  size(doc.contents, (t) => {
    doc.contents = t as typeof doc.contents;
  });
  for (const swap of swaps) swap();
}

function yamlProblem(e: YAMLError, file: string, lines: LineCounter, text: string): InputProblem {
  const pos = lines.linePos(e.pos[0]);
  if (e.code === 'TAG_RESOLVE_FAILED') {
    // YAML 1.1's own tags are named as written (`!!omap`), not by their URI.
    const tag = (/Unresolved tag: (\S+)/.exec(e.message)?.[1] ?? 'unknown').replace(
      /^tag:yaml\.org,2002:/,
      '!!',
    );
    return {
      file,
      line: pos.line,
      column: pos.col,
      path: '',
      expected: 'a value without a YAML tag (YAML 1.2 mappings, lists and scalars)',
      got: `the tag ${tag}`,
    };
  }
  if (e.code === 'MULTIPLE_DOCS') {
    // The library's own message names its API (parseAllDocuments), which means nothing to a policy's author.
    // Counted only: without uniqueKeys, whose check is quadratic in a mapping's keys (a 1 MiB mapping: minutes).
    const count = parseAllDocuments(text, { version: '1.2', resolveKnownTags: false, uniqueKeys: false });
    const n = Array.isArray(count) ? count.length : 0;
    return {
      file,
      line: pos.line,
      column: pos.col,
      path: '',
      expected: 'one YAML document',
      got: n > 1 ? `${n}` : 'several',
    };
  }
  const first = e.message.split('\n')[0] ?? e.message;
  const detail = first.replace(/ at line \d+, column \d+:?$/, '');
  return {
    file,
    line: pos.line,
    column: pos.col,
    path: '',
    expected: 'valid YAML',
    got: `${detail} (${e.code})`,
  };
}

/**
 * The keys given a second time in their mapping (the first ten, in document order), each by the name it
 * loads as: the copy a loaded value would keep is the later one, so a policy could read as one thing and load
 * as another. One pass over the document, each key looked up once.
 */
function duplicateKeys(doc: Document.Parsed): KeyFound[] {
  const found: KeyFound[] = [];
  const walk = (node: unknown, path: readonly (string | number)[]): void => {
    if (found.length >= 10) return;
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key = keyName(pair.key);
        // A key that is not text is refused on its own (alias and collection keys, below).
        if (keyText(pair.key) !== undefined) {
          if (seen.has(key)) found.push({ key, path: [...path, key], offset: rangeStart(pair.key) });
          seen.add(key);
        }
        walk(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      for (let i = 0; i < node.items.length; i++) walk(node.items[i], [...path, i]);
    }
  };
  walk(doc.contents, []);
  return found.slice(0, 10);
}

/** Worded as the findings reader words a key given twice in JSON: the message names the key path. */
function duplicateProblem(duplicate: KeyFound, file: string, lines: LineCounter): InputProblem {
  const pos = lines.linePos(duplicate.offset ?? 0);
  return {
    file,
    line: pos.line,
    column: pos.col,
    path: formatPath(duplicate.path),
    expected: 'each key once in a mapping',
    got: `duplicate key ${describeValue(duplicate.key)}`,
  };
}

interface KeyFound {
  readonly key: string;
  readonly path: readonly (string | number)[];
  /** Where the key starts in the text. */
  readonly offset: number | undefined;
}

/** The first mapping key (in document order) that `matches`, with its key path. */
function findKey(doc: Document.Parsed, matches: (key: unknown) => boolean): KeyFound | undefined {
  const walk = (node: unknown, path: readonly (string | number)[]): KeyFound | undefined => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key = keyName(pair.key);
        if (matches(pair.key)) return { key, path: [...path, key], offset: rangeStart(pair.key) };
        const found = walk(pair.value, [...path, key]);
        if (found) return found;
      }
    } else if (isSeq(node)) {
      for (let i = 0; i < node.items.length; i++) {
        const found = walk(node.items[i], [...path, i]);
        if (found) return found;
      }
    }
    return undefined;
  };
  return walk(doc.contents, []);
}

/**
 * A key as the locator and the schema's paths name it: a scalar by the name it loads as. A collection is only
 * named: its text, at every level of a nest of them, is exponential in the depth.
 */
function keyName(key: unknown): string {
  return (
    keyText(key) ?? (isAlias(key) ? `*${key.source}` : isMap(key) ? '{…}' : isSeq(key) ? '[…]' : String(key))
  );
}

function rangeStart(node: unknown): number | undefined {
  return isNode(node) ? node.range?.[0] : undefined;
}

function issueProblems(
  issue: z.$ZodIssue,
  root: unknown,
  file: string,
  locator: SourceLocator,
  schema: z.$ZodType,
): InputProblem[] {
  const path = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    const allowed = allowedKeysAt(schema, path);
    return issue.keys.map((key) => {
      const pos = locator.locate([...path, key], 'key');
      const hint = allowed ? closest(key, allowed) : undefined;
      return {
        file,
        ...(pos ? { line: pos.line, column: pos.column } : {}),
        path: formatPath([...path, key]),
        expected: allowed
          ? `one of the keys ${allowed.join(', ')}${hint ? ` (did you mean "${hint}"?)` : ''}`
          : 'a known key',
        got: `unknown key "${key}"`,
      };
    });
  }
  const pos = locator.locate(path);
  const found = valueAt(root, path);
  return [
    {
      file,
      ...(pos ? { line: pos.line, column: pos.column } : {}),
      path: formatPath(path),
      expected: expectedOf(issue),
      got: found === undefined ? 'nothing (the key is missing)' : describeValue(found),
    },
  ];
}

function valueAt(root: unknown, path: readonly (string | number)[]): unknown {
  let v: unknown = root;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[key];
  }
  return v;
}

/** The keys the schema allows at a path, found by walking the zod schema itself (so it never drifts). */
function allowedKeysAt(root: z.$ZodType, path: readonly (string | number)[]): string[] | undefined {
  let schema: unknown = root;
  const unwrap = (s: unknown): unknown => {
    let cur = s as { _zod?: { def: Record<string, unknown> } } | undefined;
    for (let i = 0; i < 10 && cur?._zod; i++) {
      const def = cur._zod.def;
      if (def.type === 'optional' || def.type === 'default' || def.type === 'nullable')
        cur = def.innerType as typeof cur;
      else if (def.type === 'pipe') cur = def.in as typeof cur;
      else break;
    }
    return cur;
  };
  for (const key of path) {
    const s = unwrap(schema) as { _zod: { def: Record<string, unknown> } } | undefined;
    const def = s?._zod.def;
    if (!def) return undefined;
    if (def.type === 'object') schema = (def.shape as Record<string, unknown>)[String(key)];
    else if (def.type === 'array') schema = def.element;
    else return undefined;
  }
  const s = unwrap(schema) as { _zod: { def: Record<string, unknown> } } | undefined;
  const def = s?._zod.def;
  return def?.type === 'object' ? Object.keys(def.shape as Record<string, unknown>) : undefined;
}

function closest(word: string, options: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const o of options) {
    const d = editDistance(word.toLowerCase(), o.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = o;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/**
 * Text of a file that must be UTF-8 (with or without a BOM). A byte that is not UTF-8 is refused at its
 * line and column rather than replaced: a replaced character could change what a policy or finding says.
 * A leading BOM is kept: each parser strips one, and a second one is then text it refuses (stripped here
 * too, a file with two would have passed).
 */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  const wide = utf16Or32(bytes);
  if (wide !== undefined) {
    throw new InputError([{ file, path: '', expected: 'UTF-8 text', got: `${wide} text; save it as UTF-8` }]);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (e) {
    // The fatal decoder says "not UTF-8" with a TypeError alone. Anything else (ERR_STRING_TOO_LONG past V8's
    // longest string, memory) is no fault of the bytes: read as one, it would be blamed on a byte that is
    // fine, or fail again locating it and surface as an internal error.
    if (!(e instanceof TypeError)) {
      throw new InputError([
        {
          file,
          path: '',
          expected: 'a file small enough to be read as one string',
          got: `${bytes.length} bytes, which could not be decoded (${e instanceof Error ? e.message : String(e)})`,
        },
      ]);
    }
    const { at, end } = invalidUtf8At(bytes);
    let lineStart = 0;
    let line = 1;
    for (let i = 0; i < at; i++) {
      if (bytes[i] === 10) {
        line++;
        lineStart = i + 1;
      }
    }
    // Columns count characters, as the other messages' do; the bytes before `at` on its line are valid.
    const column =
      new TextDecoder('utf-8', { ignoreBOM: line > 1 }).decode(bytes.subarray(lineStart, at)).length + 1;
    throw new InputError([
      {
        file,
        line,
        column,
        path: '',
        expected: 'UTF-8 text',
        got: `bytes that are not UTF-8 (${[...bytes.subarray(at, end)].map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ')})`,
      },
    ]);
  }
}

/** "UTF-16" or "UTF-32" for text saved so (by its byte order mark, or ASCII with a NUL beside each byte). */
function utf16Or32(bytes: Uint8Array): string | undefined {
  const [b0, b1, b2, b3] = bytes;
  if (
    (b0 === 0xff && b1 === 0xfe && b2 === 0 && b3 === 0) ||
    (b0 === 0 && b1 === 0 && b2 === 0xfe && b3 === 0xff)
  )
    return 'UTF-32';
  if ((b0 === 0xff && b1 === 0xfe) || (b0 === 0xfe && b1 === 0xff)) return 'UTF-16';
  // Without a mark: NUL is no character of JSON or YAML, so NULs on one side of most byte pairs (and none
  // on the other) are the high halves of ASCII characters in UTF-16.
  const n = Math.min(bytes.length, 512) & ~1;
  if (n < 2) return undefined;
  let even = 0;
  let odd = 0;
  for (let i = 0; i < n; i++) if (bytes[i] === 0) i % 2 === 0 ? even++ : odd++;
  const pairs = n / 2;
  if ((even === 0 && odd * 2 >= pairs) || (odd === 0 && even * 2 >= pairs)) return 'UTF-16';
  return undefined;
}

/** Offset of the first byte that is not part of a well-formed UTF-8 sequence (RFC 3629). */
function invalidUtf8At(bytes: Uint8Array): { at: number; end: number } {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    let max = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) [need, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      min = b === 0xe0 ? 0xa0 : 0x80;
      if (b === 0xed) max = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      min = b === 0xf0 ? 0x90 : 0x80;
      if (b === 0xf4) max = 0x8f;
    } else return { at: i, end: i + 1 };
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined) return { at: i, end: bytes.length };
      if (k === 1 ? c < min || c > max : c < 0x80 || c > 0xbf) return { at: i, end: i + k + 1 };
    }
    i += need + 1;
  }
  return { at: bytes.length, end: bytes.length };
}
