/**
 * One thing wrong with an input file, located as precisely as the input allows. Every reader and loader
 * reports problems in this shape so that users get the same message from `tollgate evaluate`, from
 * `cdk synth` and from the functions' logs: `FILE:LINE:COL: PATH: expected X; got Y`.
 */
export interface InputProblem {
  readonly file: string;
  readonly line?: number;
  readonly column?: number;
  /** Key path inside the document (`rules[2].action`); empty for the document itself. */
  readonly path: string;
  readonly expected: string;
  readonly got: string;
}

export class InputError extends Error {
  readonly problems: readonly InputProblem[];

  constructor(problems: readonly InputProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'InputError';
    this.problems = problems;
  }
}

export function formatProblem(p: InputProblem): string {
  let where = p.file;
  if (p.line !== undefined) where += `:${p.line}`;
  if (p.line !== undefined && p.column !== undefined) where += `:${p.column}`;
  const path = p.path === '' ? '' : `${p.path}: `;
  return `${where}: ${path}expected ${p.expected}; got ${p.got}`;
}

/** `rules[2].action` from `['rules', 2, 'action']`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** A short, quoted rendering of a value found in an input, for the `got` half of a message. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : `a list of ${value.length}`;
  // JSON has no words for these: NaN and Infinity (YAML's .nan, .inf) would print as null.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (value instanceof Date)
    return `a timestamp (${Number.isNaN(value.getTime()) ? 'invalid' : value.toISOString()})`;
  if (value instanceof Set) return `a set of ${value.size}`;
  if (value instanceof Map) return `a mapping of ${value.size}`;
  if (typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0) return 'an empty mapping';
    const shown = keys.slice(0, 6).join(', ');
    return `a mapping with keys ${shown}${keys.length > 6 ? `, … (${keys.length} keys)` : ''}`;
  }
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}…"` : text;
}

/** Why a file could not be read, in the words of an input problem's "got". */
export function unreadable(e: unknown): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'no such file';
    case 'EISDIR':
      return 'a directory';
    case 'EACCES':
      return 'no permission to read it';
    default:
      return String(e);
  }
}
