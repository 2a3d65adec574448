import { levelOf, SEVERITIES, type Severity } from '../findings/finding.js';
import { type FindingTable, STATUS_ACTIVE, STATUS_CLOSED } from '../findings/table.js';
import type { FindingsRead, GateImage, ScanState, ScanStatus, SeverityCounts } from './model.js';
import type { CoverageView } from './ports.js';

/*
 * What the scanners' status texts mean to the gate. Anything not known to be a finished scan is never
 * read as one (fail closed): an unknown status leaves the gate waiting until `scan.onTimeout` decides.
 */

// Inspector coverage reasons and ECR scan statuses that mean "this image will not get a verdict".
const UNSUPPORTED = new Set([
  'ACCESS_DENIED',
  'ACCESS_DENIED_TO_ENCRYPTION_KEY',
  'UNSUPPORTED_OS',
  'UNSUPPORTED_MEDIA_TYPE',
  'UNSUPPORTED_CONFIG_FILE',
  'UNSUPPORTED_RUNTIME',
  'UNSUPPORTED_LANGUAGE',
  'UNSUPPORTED_CODE_ARTIFACTS',
  'SCAN_ELIGIBILITY_EXPIRED',
  'IMAGE_SIZE_EXCEEDED',
  'IMAGE_ARCHIVED',
  'NO_RESOURCES_FOUND',
  'NO_INVENTORY',
  'EXCLUDED_BY_TAG',
  'RESOURCE_TERMINATED',
  'NO_SCAN_CONFIGURATION_ASSOCIATED',
  'PENDING_DISABLE',
  // ECR basic scanning
  'FAILED',
  'UNSUPPORTED_IMAGE',
  'FINDINGS_UNAVAILABLE',
  'LIMIT_EXCEEDED',
  // DescribeImageScanFindings' answer that the image or its repository is gone (a lifecycle policy, a
  // deletion): no scan will ever come, so waiting out the deadline would only delay the same escalation.
  'IMAGE_NOT_FOUND',
  'REPOSITORY_NOT_FOUND',
]);

// Coverage reasons under which an image's findings are a scan's, if Inspector has scanned it (lastScannedAt):
// the reason alone does not say so. `SCAN_FREQUENCY_SCAN_ON_PUSH` is scanned once, on push.
// `SCAN_FREQUENCY_MANUAL` is not among them: in the API model it is "This image will not be covered by Amazon
// Inspector due to the repository scan frequency configuration" (see coverageState).
const COVERED = new Set(['SUCCESSFUL', 'SCAN_FREQUENCY_SCAN_ON_PUSH']);

/**
 * Whether a scan status speaks of this image: its digest in its repository of its registry. A digest is
 * often pushed to several repositories (promoted from staging to prod, say), and to same-named repositories
 * of other accounts (a delegated administrator's events name its members'); each copy is scanned apart, and
 * Inspector lists its findings and coverage by repository. Taking one copy's finished scan for another's
 * would decide on an empty read of a repository never scanned. A status or image of no known registry
 * speaks only of one of no known registry: never taken for any account's.
 */
export function scanIsOf(scan: ScanStatus, image: GateImage): boolean {
  return (
    scan.digest === image.digest &&
    scan.repository === image.repository &&
    scan.registryId === image.registryId
  );
}

/** An `Inspector2 Scan` event's `scan-status` (`INITIAL_SCAN_COMPLETE`, …). */
export function inspectorScanState(status: string): ScanState {
  if (UNSUPPORTED.has(status)) return 'unsupported';
  return /(^|_)COMPLETE$/.test(status) ? 'complete' : 'pending';
}

/** An `ECR Image Scan` event's or `imageScanStatus.status` (`COMPLETE`, `FAILED`, …; `ACTIVE` for enhanced). */
export function ecrScanState(status: string): ScanState {
  if (status === 'COMPLETE' || status === 'ACTIVE') return 'complete';
  return UNSUPPORTED.has(status) ? 'unsupported' : 'pending';
}

/**
 * Inspector `ListCoverage`: the scan status when no scan event was seen (lost, or before the gate existed).
 * An image is scanned only when coverage says when (`lastScannedAt`, "the date and time the resource was last
 * checked for vulnerabilities"): the empty findings list of an image never scanned is no clean scan, and two
 * such reads a sweep apart would settle and approve it.
 */
export function coverageState(coverage: CoverageView | undefined): { state: ScanState; status: string } {
  if (!coverage) return { state: 'pending', status: 'NOT_COVERED' };
  // A manual scan frequency: Inspector does not scan the image (any more), so no scan will come, and waiting out
  // the deadline only delays the same escalation (`scan.onUnsupported`, as for the other reasons of an image
  // that gets no verdict). A scan time does not make it a scanned image: that scan (on push, before the
  // frequency changed) is no longer kept up, its findings may have been closed and deleted since, and two empty
  // reads a sweep apart would approve an image Inspector stopped looking at.
  if (coverage.statusCode === 'ACTIVE' && coverage.reason === 'SCAN_FREQUENCY_MANUAL') {
    return {
      state: 'unsupported',
      status: coverage.lastScannedAt === undefined ? `${coverage.reason}, never scanned` : coverage.reason,
    };
  }
  if (coverage.statusCode === 'ACTIVE' && COVERED.has(coverage.reason)) {
    if (coverage.lastScannedAt !== undefined) return { state: 'complete', status: coverage.reason };
    // A scan on push (or one Inspector calls successful) with no scan time may still be coming: wait.
    return { state: 'pending', status: `${coverage.reason}, not scanned yet (no lastScannedAt)` };
  }
  if (UNSUPPORTED.has(coverage.reason) || coverage.statusCode === 'INACTIVE') {
    return { state: 'unsupported', status: coverage.reason };
  }
  return { state: 'pending', status: coverage.reason };
}

/**
 * Reads the severity counts a scan event reports, by the severity the findings reader gives a finding of that
 * name (`levelOf`): ECR's `UNDEFINED` is UNTRIAGED, as its findings are, summed with any other key that lands
 * there. A severity left out means 0 (real events do that).
 *
 * A key that is no severity at all is counted as UNTRIAGED too, not dropped: the reader would read a finding
 * with that severity as UNTRIAGED, and dropping its count would let a read that lacks exactly those findings
 * (the ones `unknownSeverity` escalates) settle and approve. At worst an unknown key keeps the gate waiting
 * until `scan.onTimeout` decides, which never approves.
 */
export function eventCounts(raw: Readonly<Record<string, unknown>> | undefined): SeverityCounts | undefined {
  if (raw === undefined) return undefined;
  const counts: Partial<Record<Severity | 'TOTAL', number>> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) continue;
    // Letter case only, as the reader takes a severity: `medıum` (dotless ı) is no rating, whatever it
    // upper-cases to.
    const key = /^[A-Za-z_]+$/.test(k) ? k.toUpperCase() : k;
    const level = key === 'TOTAL' ? key : levelOf(key);
    counts[level] = (counts[level] ?? 0) + v;
  }
  return counts;
}

/**
 * Counts the ACTIVE findings of a read by severity (what a scanner's own counts are compared with), and the
 * findings that can explain a shortfall (`listed`): the ACTIVE ones, and those suppressed or closed since the
 * scan event counted them (`changedSince`). Without `countedAt` only ACTIVE ones are listed (fail closed: the
 * gate waits, and the deadline decides).
 * Each finding once, by its key and severity, as `shortOfCounts` counts: two copies of one finding (an ACTIVE
 * one and a CLOSED one, a page read twice) must not stand in for a finding the read lacks.
 */
export function readCounts(table: FindingTable, at: string, countedAt?: string): FindingsRead {
  const counts: Partial<Record<Severity | 'TOTAL', number>> = {};
  const listed: Partial<Record<Severity | 'TOTAL', number>> = {};
  const seenListed = new Set<number>();
  const seenActive = new Set<number>();
  const countedMs = countedAt === undefined ? Number.NaN : Date.parse(countedAt);
  let total = 0;
  for (let i = 0; i < table.length; i++) {
    const bit = table.levels[i] ?? 0;
    // Levels are stored as one bit per severity, in SEVERITIES order.
    const level = SEVERITIES[31 - Math.clz32(bit)];
    if (level === undefined) continue;
    // A finding by its key and severity: level bits are below 64.
    const copy = (table.keyOrdinals[i] ?? -1) * 64 + bit;
    const active = table.statuses[i] === STATUS_ACTIVE;
    if (!seenListed.has(copy) && (active || changedSince(table, i, countedMs))) {
      seenListed.add(copy);
      listed[level] = (listed[level] ?? 0) + 1;
      listed.TOTAL = (listed.TOTAL ?? 0) + 1;
    }
    if (!active || seenActive.has(copy)) continue;
    seenActive.add(copy);
    counts[level] = (counts[level] ?? 0) + 1;
    total++;
  }
  return { at, counts, total, listed };
}

/**
 * Whether row i's (non-ACTIVE) finding may have been counted ACTIVE by a scan event at `countedMs` (NaN: no
 * time to compare, so no): it existed then (`firstObservedAt` at or before it) and its status changed in a
 * later second (the scanner's own `updatedAt`, `changedAt`).
 * - A finding first observed after the event, or at no known time, is none it counted: on a fresh image every
 *   finding is made by its first scan, possibly after the event, and one a suppression rule made SUPPRESSED
 *   stood in for a counted CRITICAL not listed yet; two equal reads a sweep apart then approved.
 * - A change at no known time is none: `lastObservedAt` does not stand in, as a rescan stamps it on a finding
 *   suppressed long before.
 * - A change in the event's own second is none: event times are whole seconds, so it may precede the count.
 * Anything else counts as not listed, which keeps the gate waiting until `scan.onTimeout` decides. The table
 * keeps neither time of a row, so the row is rebuilt: only non-ACTIVE rows, and only while a scan's counts
 * are compared. A row that cannot be rebuilt is taken as unchanged.
 */
function changedSince(table: FindingTable, i: number, countedMs: number): boolean {
  if (!Number.isFinite(countedMs)) return false;
  let first: number | undefined;
  let changed: number | undefined;
  try {
    ({ firstObservedAt: first, changedAt: changed } = table.row(i));
  } catch {
    return false;
  }
  if (first === undefined || !Number.isFinite(first) || first > countedMs) return false;
  return (
    changed !== undefined &&
    Number.isFinite(changed) &&
    Math.floor(changed / 1000) > Math.floor(countedMs / 1000)
  );
}

/** Whether a read holds a CLOSED finding (Inspector closes those of an image it no longer scans). */
export function hasClosedFindings(table: FindingTable): boolean {
  for (let i = 0; i < table.length; i++) if (table.statuses[i] === STATUS_CLOSED) return true;
  return false;
}

/**
 * The settle rule: findings keep arriving after a scan reports complete. The read is settled when it holds
 * at least what the scan event counted for every severity the event lists, or when it equals a previous
 * read taken at least `settleMs` earlier (a sweep apart).
 */
export function isSettled(
  read: FindingsRead,
  reported: SeverityCounts | undefined,
  previous: FindingsRead | undefined,
  settleMs: number,
): { settled: boolean; why: string } {
  if (reported !== undefined) {
    const short: string[] = [];
    for (const [k, v] of Object.entries(reported) as [string, number][]) {
      const have = k === 'TOTAL' ? read.total : (read.counts[k as Severity] ?? 0);
      if (have < v) short.push(`${k} ${have}/${v}`);
    }
    if (short.length === 0) return { settled: true, why: 'findings read match the scan event counts' };
    // Findings the scanner counted that the read does not hold, ACTIVE or suppressed or closed since the event
    // (`readCounts`), have not arrived, or a read lost them: two reads agreeing on that are two partial reads,
    // and never settle it. The deadline then decides (scan.onTimeout), never an approval from them. A read
    // stored without `listed` has only its ACTIVE counts to go by.
    const missing = Object.entries(reported).filter(([k, v]) => {
      const listed =
        read.listed?.[k as Severity | 'TOTAL'] ?? (k === 'TOTAL' ? read.total : read.counts[k as Severity]);
      return (listed ?? 0) < v;
    });
    if (missing.length > 0) {
      return {
        settled: false,
        why: `findings still arriving: ${short.join(', ')} (counted by the scan event, not listed in any status)`,
      };
    }
    if (previous && sameRead(previous, read) && Date.parse(read.at) - Date.parse(previous.at) >= settleMs) {
      return {
        settled: true,
        why: `two reads a sweep apart agree (short of the event counts: ${short.join(', ')}, suppressed or closed since)`,
      };
    }
    return { settled: false, why: `findings still arriving: ${short.join(', ')}` };
  }
  if (previous && sameRead(previous, read) && Date.parse(read.at) - Date.parse(previous.at) >= settleMs) {
    return { settled: true, why: 'two reads a sweep apart agree' };
  }
  return { settled: false, why: 'no scan event counts: waiting for a second read a sweep later' };
}

/** Two reads with the same counts, severity by severity. */
export function sameRead(a: FindingsRead, b: FindingsRead): boolean {
  if (a.total !== b.total) return false;
  return SEVERITIES.every((s) => (a.counts[s] ?? 0) === (b.counts[s] ?? 0));
}
