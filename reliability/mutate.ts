import fc from 'fast-check';

/*
 * Mutations of JSON values (events, findings documents) and of text (policies, findings files), as
 * fast-check arbitraries: what a broken producer, a truncated upload or a hostile sender hands over.
 */

export type Path = readonly (string | number)[];
type Json = Record<string, unknown>;

function isJson(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every path below the root (objects and arrays), breadth first, at most `limit` of them. */
export function pathsOf(value: unknown, limit = 400): Path[] {
  const out: Path[] = [];
  const queue: { v: unknown; p: Path }[] = [{ v: value, p: [] }];
  while (queue.length > 0 && out.length < limit) {
    const { v, p } = queue.shift()!;
    const entries: [string | number, unknown][] = Array.isArray(v)
      ? v.slice(0, 20).map((x, i) => [i, x])
      : isJson(v)
        ? Object.entries(v)
        : [];
    for (const [k, child] of entries) {
      out.push([...p, k]);
      queue.push({ v: child, p: [...p, k] });
    }
  }
  return out;
}

function parentOf(root: unknown, path: Path): unknown {
  let v = root;
  for (const k of path.slice(0, -1)) {
    if (Array.isArray(v) && typeof k === 'number') v = v[k];
    else if (isJson(v)) v = v[String(k)];
    else return undefined;
  }
  return v;
}

export function setAt(root: unknown, path: Path, value: unknown): void {
  const parent = parentOf(root, path);
  const key = path[path.length - 1];
  if (key === undefined) return;
  if (Array.isArray(parent) && typeof key === 'number') parent[key] = value;
  else if (isJson(parent)) parent[String(key)] = value;
}

export function dropAt(root: unknown, path: Path): void {
  const parent = parentOf(root, path);
  const key = path[path.length - 1];
  if (key === undefined) return;
  if (Array.isArray(parent) && typeof key === 'number') parent.splice(key, 1);
  else if (isJson(parent)) delete parent[String(key)];
}

/** Strings a producer should never send: huge, control characters, lone surrogates, markup, format strings. */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '\ud800',
    '\u202e',
    '../../etc/passwd',
    '%s%s%n',
    // A log4shell lookup, as text (not a template).
    ['$', '{jndi:ldap://x}'].join(''),
    '<script>',
    '__proto__',
    'sha256:',
    'NaN',
    '1e309',
  ),
  fc.integer({ min: 1_000, max: 200_000 }).map((n) => 'x'.repeat(n)),
);

/** A value of the wrong kind, for any field. */
export const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  nastyString,
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
  // An own `__proto__` key, as JSON.parse makes it (an object literal would set the prototype instead). A
  // fresh one each time: one constant object, inserted by one mutation and then changed within by the next,
  // was changed for every later case, and could come to contain itself (a cycle no JSON can write).
  fc.constant(null).map(() => JSON.parse('{"__proto__": {"polluted": true}}') as unknown),
  fc.integer({ min: 50, max: 2_000 }).map((depth) => {
    let v: unknown = 'deep';
    for (let i = 0; i < depth; i++) v = [v];
    return v;
  }),
);

export type JsonMutation =
  | { readonly kind: 'drop'; readonly at: number }
  | { readonly kind: 'set'; readonly at: number; readonly value: unknown }
  | { readonly kind: 'add'; readonly at: number; readonly key: string; readonly value: unknown };

export const jsonMutation: fc.Arbitrary<JsonMutation> = fc.oneof(
  fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: wrongValue }),
  fc.record({
    kind: fc.constant('add' as const),
    at: fc.nat(),
    key: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'prototype')),
    value: wrongValue,
  }),
);

/** Applies mutations to a copy of `value`; each picks its path among the copy's current paths. */
export function applyJson(value: unknown, mutations: readonly JsonMutation[]): unknown {
  const copy: unknown = structuredClone(value);
  for (const m of mutations) {
    const paths = pathsOf(copy);
    if (paths.length === 0) continue;
    const path = paths[m.at % paths.length]!;
    if (m.kind === 'drop') dropAt(copy, path);
    else if (m.kind === 'set') setAt(copy, path, m.value);
    else {
      const parent = parentOf(copy, [...path, '']);
      if (isJson(parent))
        Object.defineProperty(parent, m.key, {
          value: m.value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
    }
  }
  return copy;
}

export type TextMutation =
  | { readonly kind: 'delete'; readonly at: number; readonly length: number }
  | { readonly kind: 'insert'; readonly at: number; readonly text: string }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'duplicate-line'; readonly at: number }
  | { readonly kind: 'swap-lines'; readonly at: number; readonly with: number }
  | { readonly kind: 'indent'; readonly at: number; readonly by: number }
  | { readonly kind: 'replace-value'; readonly at: number; readonly text: string };

const yamlish = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom(
    ':',
    ': ',
    '- ',
    '{',
    '}',
    '[',
    ']',
    '&a ',
    '*a',
    '!!binary ',
    '!!js/function ',
    '|',
    '>',
    '"',
    "'",
    '#',
    '%YAML 1.1\n---\n',
    '\t',
    '\u0000',
    '\ufeff',
    '<<: *a',
    '~',
    'null',
    '.nan',
    '-.inf',
    '0x1F',
    '1e400',
    '2026-13-45',
    '\n---\n',
  ),
);

export const textMutation: fc.Arbitrary<TextMutation> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: yamlish }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate-line' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap-lines' as const), at: fc.nat(), with: fc.nat() }),
  fc.record({ kind: fc.constant('indent' as const), at: fc.nat(), by: fc.integer({ min: -4, max: 4 }) }),
  fc.record({ kind: fc.constant('replace-value' as const), at: fc.nat(), text: yamlish }),
);

export function applyText(text: string, mutations: readonly TextMutation[]): string {
  let t = text;
  for (const m of mutations) {
    const lines = t.split('\n');
    const line = lines.length === 0 ? 0 : m.at % lines.length;
    switch (m.kind) {
      case 'delete': {
        const at = t.length === 0 ? 0 : m.at % t.length;
        t = t.slice(0, at) + t.slice(at + m.length);
        break;
      }
      case 'insert': {
        const at = t.length === 0 ? 0 : m.at % (t.length + 1);
        t = t.slice(0, at) + m.text + t.slice(at);
        break;
      }
      case 'truncate':
        t = t.slice(0, t.length === 0 ? 0 : m.at % t.length);
        break;
      case 'duplicate-line':
        lines.splice(line, 0, lines[line] ?? '');
        t = lines.join('\n');
        break;
      case 'swap-lines': {
        const other = lines.length === 0 ? 0 : m.with % lines.length;
        [lines[line], lines[other]] = [lines[other] ?? '', lines[line] ?? ''];
        t = lines.join('\n');
        break;
      }
      case 'indent': {
        const l = lines[line] ?? '';
        lines[line] =
          m.by >= 0 ? ' '.repeat(m.by) + l : l.slice(Math.min(-m.by, l.length - l.trimStart().length));
        t = lines.join('\n');
        break;
      }
      case 'replace-value': {
        const l = lines[line] ?? '';
        const colon = l.indexOf(': ');
        lines[line] = colon >= 0 ? `${l.slice(0, colon + 2)}${m.text}` : `${l}${m.text}`;
        t = lines.join('\n');
        break;
      }
    }
  }
  return t;
}
