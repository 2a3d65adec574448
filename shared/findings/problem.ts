/** A field that is not what a reader expected; the reader adds the file and key path. */
export interface Problem {
  readonly problem: true;
  readonly expected: string;
  readonly value: unknown;
}

export function isProblem(v: unknown): v is Problem {
  return typeof v === 'object' && v !== null && (v as { problem?: unknown }).problem === true;
}
