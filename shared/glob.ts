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

export function compileGlob(pattern: string): Glob {
  const star = pattern.indexOf('*');
  if (star < 0) {
    return { source: pattern, prefix: pattern, suffix: '', isLiteral: true, test: (v) => v === pattern };
  }
  const prefix = pattern.slice(0, star);
  const suffix = pattern.slice(pattern.lastIndexOf('*') + 1);
  if (star === pattern.length - 1) {
    // A trailing `*` only (the common `CVE-2024-*`, `payments/*`): a prefix test, no regex.
    return { source: pattern, prefix, suffix, isLiteral: false, test: (v) => v.startsWith(prefix) };
  }
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[\\^$.|?+()[\]{}]/g, '\\$&'))
    .join('.*');
  const re = new RegExp(`^${body}$`, 's');
  return { source: pattern, prefix, suffix, isLiteral: false, test: (v) => re.test(v) };
}

/** Any of several globs; literals are answered by a set lookup. */
export interface GlobSet {
  readonly patterns: readonly string[];
  test(value: string): boolean;
}

export function compileGlobSet(patterns: readonly string[]): GlobSet {
  const literals = new Set<string>();
  const wild: Glob[] = [];
  for (const p of patterns) {
    const g = compileGlob(p);
    if (g.isLiteral) literals.add(p);
    else wild.push(g);
  }
  return {
    patterns,
    test(value) {
      if (literals.has(value)) return true;
      for (const g of wild) if (g.test(value)) return true;
      return false;
    },
  };
}
