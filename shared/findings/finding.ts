/** The severities of Inspector and ECR, in decreasing order; `UNTRIAGED` is Inspector's "not yet rated". */
export const SEVERITIES = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'INFORMATIONAL', 'UNTRIAGED'] as const;
export type Severity = (typeof SEVERITIES)[number];

export const FINDING_STATUSES = ['ACTIVE', 'SUPPRESSED', 'CLOSED'] as const;
export type FindingStatus = (typeof FINDING_STATUSES)[number];

export const FIX_AVAILABILITIES = ['YES', 'NO', 'PARTIAL'] as const;
export type FixAvailability = (typeof FIX_AVAILABILITIES)[number];

/** The severities a policy can rely on; anything else (`UNDEFINED`, a typo, nothing) is unknown. */
export const RATED_SEVERITIES: ReadonlySet<string> = new Set([
  'CRITICAL',
  'HIGH',
  'MEDIUM',
  'LOW',
  'INFORMATIONAL',
]);

export interface VulnerablePackage {
  readonly name: string;
  /** Installed version, with the distribution release where the scanner gives one (`3.0.13-0ubuntu3.2`). */
  readonly version: string | undefined;
  readonly fixedInVersion: string | undefined;
}

export interface ImageRef {
  readonly repository: string | undefined;
  readonly digest: string | undefined;
  readonly tags: readonly string[];
}

/**
 * One vulnerability finding, normalised from any of the scanners' formats. Every field is always present
 * (`undefined` when the scanner does not say), so that all findings share one object shape: the evaluator
 * reads 100,000 of them per decision.
 */
export interface Finding {
  /** De-duplication key: the finding ARN, else vulnerability id + packages + resource. */
  readonly key: string;
  readonly vulnerabilityId: string;
  /** As the scanner wrote it, upper-cased (`UNDEFINED` when it wrote none). */
  readonly severity: string;
  /** The severity the policy reads: `severity` when it is a rated one, else `UNTRIAGED` (unknown). */
  readonly level: Severity;
  /** `ACTIVE` when the scanner gives no status. */
  readonly status: string;
  /** Inspector's score, else the highest CVSS base score the finding carries. */
  readonly score: number | undefined;
  readonly epss: number | undefined;
  readonly exploitAvailable: boolean | undefined;
  readonly fixAvailable: FixAvailability | undefined;
  /** Epoch milliseconds. */
  readonly firstObservedAt: number | undefined;
  /**
   * Epoch milliseconds; picks the newer of two copies of one finding. The scanner's `updatedAt`, else its
   * `lastObservedAt`: either tells which copy is newer.
   */
  readonly updatedAt: number | undefined;
  /**
   * Epoch milliseconds: the scanner's own `updatedAt` only, never `lastObservedAt` in its place. A rescan
   * stamps `lastObservedAt` on a finding suppressed long before, so only this says its status may have changed
   * since a given time (see `readCounts`). The readers always set it; optional so that findings made
   * elsewhere (tests, generators) need not.
   */
  readonly changedAt?: number | undefined;
  readonly packages: readonly VulnerablePackage[];
  readonly image: ImageRef | undefined;
  readonly title: string | undefined;
}

export type ScanVerdict =
  | { readonly complete: true; readonly status: string | undefined }
  | { readonly complete: false; readonly status: string; readonly reason: string };

/** The severity a policy reads for a scanner's severity: unrated and unrecognised ones are UNTRIAGED. */
export function levelOf(severity: string): Severity {
  switch (severity) {
    case 'CRITICAL':
    case 'HIGH':
    case 'MEDIUM':
    case 'LOW':
    case 'INFORMATIONAL':
      return severity;
    default:
      return 'UNTRIAGED';
  }
}

/**
 * One bit per severity, in SEVERITIES order: severity conditions are tested with a mask, not a set lookup.
 * 0 for anything that is not a severity name (a reader's cue to look closer).
 */
export function levelBit(level: unknown): number {
  switch (level) {
    case 'CRITICAL':
      return 1;
    case 'HIGH':
      return 2;
    case 'MEDIUM':
      return 4;
    case 'LOW':
      return 8;
    case 'INFORMATIONAL':
      return 16;
    case 'UNTRIAGED':
      return 32;
    default:
      return 0;
  }
}

export function levelMask(levels: readonly Severity[]): number {
  let mask = 0;
  for (const l of levels) mask |= levelBit(l);
  return mask;
}
