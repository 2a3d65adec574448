import { createHash } from 'node:crypto';
import { isMap, LineCounter, parseDocument, visit, type YAMLError } from 'yaml';
import { safeParse } from 'zod/mini';
import type * as z from 'zod/v4/core';
import { describeValue, formatPath, InputError, type InputProblem } from './errors.js';
import { SourceLocator } from './locate.js';
import { expectedOf } from './zod-issues.js';

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
  const text = new TextDecoder('utf-8', { fatal: false, ignoreBOM: false }).decode(buffer);

  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    prettyErrors: false,
    uniqueKeys: true,
    version: '1.2',
    // The library would print a warning of its own on stderr (a mapping used as a key); the schema names
    // such a key as unknown, with its place in the file.
    logLevel: 'error',
  });
  if (doc.errors.length > 0) {
    throw new InputError(doc.errors.slice(0, 10).map((e) => yamlProblem(e, file, lines)));
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
  if (!isMap(doc.contents)) {
    throw new InputError([
      { file, line: 1, column: 1, path: '', expected: options.what, got: describeValue(doc.toJS()) },
    ]);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    // Named at the first alias: every problem says where in the file it is.
    let at: number | undefined;
    visit(doc, {
      Alias(_key, node) {
        at = node.range?.[0];
        return visit.BREAK;
      },
    });
    const pos = lines.linePos(at ?? 0);
    throw new InputError([
      {
        file,
        line: pos.line,
        column: pos.col,
        path: '',
        expected: 'a YAML document without excessive aliases',
        got: String(e),
      },
    ]);
  }

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

function yamlProblem(e: YAMLError, file: string, lines: LineCounter): InputProblem {
  const pos = lines.linePos(e.pos[0]);
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
