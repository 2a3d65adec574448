import { keepShapes } from './strings.js';

/**
 * Policy globs: `*` matches any run of characters (`/` included), everything else is literal and
 * case-sensitive. Compiled once per policy, never per finding.
 */
export interface Glob {
  readonly source: string;
  /** The literal text before the first `*`; the whole pattern when it has no `*`. */
  readonly prefix: string;
  /** The literal text after the last `*`; empty when the pattern ends with `*` or has none. */
  readonly suffix: string;
  readonly isLiteral: boolean;
  test(value: string): boolean;
}

const LITERAL = 0;
/** A trailing `*` only (the common `CVE-2024-*`, `payments/*`): a prefix test, no regex. */
const PREFIX = 1;
const PATTERN = 2;

/**
 * One class (one shape, one `test`) for every kind of glob rather than a closure per glob: the evaluator
 * tests tens of thousands of ids against many globs, and a call site that sees one function is inlined
 * where one that sees a closure per glob is a slow generic call.
 */
class CompiledGlob implements Glob {
  readonly isLiteral: boolean;

  constructor(
    readonly source: string,
    readonly prefix: string,
    readonly suffix: string,
    private readonly kind: number,
    private readonly re: RegExp | undefined,
  ) {
    this.isLiteral = kind === LITERAL;
  }

  test(value: string): boolean {
    if (this.kind === LITERAL) return value === this.source;
    if (this.kind === PREFIX) return value.startsWith(this.prefix);
    return (this.re as RegExp).test(value);
  }
}

export function compileGlob(pattern: string): Glob {
  const star = pattern.indexOf('*');
  if (star < 0) return new CompiledGlob(pattern, pattern, '', LITERAL, undefined);
  const prefix = pattern.slice(0, star);
  const suffix = pattern.slice(pattern.lastIndexOf('*') + 1);
  if (star === pattern.length - 1) return new CompiledGlob(pattern, prefix, suffix, PREFIX, undefined);
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[\\^$.|?+()[\]{}]/g, '\\$&'))
    .join('.*');
  return new CompiledGlob(pattern, prefix, suffix, PATTERN, new RegExp(`^${body}$`, 's'));
}

/** Any of several globs; literals are answered by a set lookup. */
export interface GlobSet {
  readonly patterns: readonly string[];
  test(value: string): boolean;
}

class CompiledGlobSet implements GlobSet {
  private readonly literals = new Set<string>();
  private readonly wild: Glob[] = [];

  constructor(readonly patterns: readonly string[]) {
    for (const p of patterns) {
      const g = compileGlob(p);
      if (g.isLiteral) this.literals.add(p);
      else this.wild.push(g);
    }
  }

  test(value: string): boolean {
    // Without literals, no set lookup (which would hash the value first).
    if (this.literals.size > 0 && this.literals.has(value)) return true;
    const wild = this.wild;
    for (let k = 0; k < wild.length; k++) if (wild[k]!.test(value)) return true;
    return false;
  }
}

export function compileGlobSet(patterns: readonly string[]): GlobSet {
  return new CompiledGlobSet(patterns);
}

// See keepShapes: a policy's globs live as long as the policy, which may be one decision.
keepShapes(compileGlob('a'), compileGlob('a*'), compileGlob('*a'), compileGlobSet(['a', 'a*']));
