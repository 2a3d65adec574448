import type {
  Finding,
  FixAvailability,
  ImageRef,
  ScanVerdict,
  Severity,
  VulnerablePackage,
} from './finding.js';
import { levelBit, levelOf, RATED_SEVERITIES, SEVERITIES } from './finding.js';
import { isProblem } from './problem.js';
import { type FindingTable, FindingTableBuilder, fixBit, STATUS_ACTIVE, statusBit } from './table.js';
import { MAX_EPOCH_SECONDS, parseTimestamp } from './timestamps.js';

export type FindingsFormat =
  | 'inspector2-findings'
  | 'inspector2-finding-events'
  | 'ecr-scan-findings-basic'
  | 'ecr-scan-findings-enhanced';

/** What one findings file holds, whatever its format. */
export interface FindingsDocument {
  readonly format: FindingsFormat;
  readonly findings: FindingTable;
  /** Only ECR responses say whether the scan finished; Inspector exports do not. */
  readonly scan: ScanVerdict | undefined;
  /** The image the document is about, where the document says so outside its findings. */
  readonly image: ImageRef | undefined;
  /** Where the findings list sits in the document, for the key paths of errors. */
  readonly findingsPath: KeyPath;
  /**
   * An API response's `nextToken` (or the AWS CLI's `NextToken`, which `--max-items` leaves where it cut
   * the list): a string when more findings follow on another page, `null` on a response's last page (or a
   * report, which has one page); `undefined` where the format has no pages.
   */
  readonly nextToken: string | null | undefined;
  /** The key `nextToken` was read from (`nextToken`, or the AWS CLI's `NextToken`), where it is a string. */
  readonly nextTokenKey?: string | undefined;
  /**
   * The response's own count of the scan's findings by severity (ECR's `findingSeverityCounts`, the whole
   * scan's on every page); undefined where the format has none. Its list must hold at least as many.
   */
  readonly counts?: Readonly<Partial<Record<Severity, number>>> | undefined;
  /**
   * When the scan an ECR response is of completed (`imageScanCompletedAt`, epoch ms); undefined where the
   * response or the format has none. Pages of one answer must be of one scan.
   */
  readonly scanCompletedAt?: number | undefined;
}

export type KeyPath = (string | number)[];

/** The document is not of a known shape, or a field of it is not what the format says. */
export class ShapeError extends Error {
  constructor(
    readonly path: KeyPath,
    readonly expected: string,
    readonly value: unknown,
    /** What was found, in words, where `value` alone would not say it (a finding of two images). */
    readonly got?: string,
  ) {
    super(`expected ${expected}`);
    this.name = 'ShapeError';
  }
}

const FORMATS_EXPECTED =
  'an Inspector2 ListFindings response or findings report ({"findings": [...]}), a list of Inspector2 findings, ' +
  'an Inspector2 Finding event or a list of them, or an ECR DescribeImageScanFindings response';

/** The key that marks each top-level format of a mapping (ListFindings and reports share `findings`). */
const FORMAT_KEYS = ['detail-type', 'imageScanFindings', 'findings'] as const;
type FormatKey = (typeof FORMAT_KEYS)[number];
const FORMAT_NAMES: Readonly<Record<FormatKey, string>> = {
  'detail-type': 'an Inspector2 Finding event',
  imageScanFindings: 'an ECR DescribeImageScanFindings response',
  findings: 'an Inspector2 ListFindings response',
};

// ECR statuses that come with a full set of findings; every other one is no verdict (yet). Which of those
// will never give one (FAILED, UNSUPPORTED_IMAGE, FINDINGS_UNAVAILABLE, …: `scan.onUnsupported`) and which
// have not finished (IN_PROGRESS, PENDING, no status at all: waited for, then `scan.onTimeout`) is
// `ecrScanState`'s to say, for the gate and the CLI alike (mergeFindings). Even these two give no verdict on
// an answer that shows nothing of a finished scan (`ECR_FINDINGS_NOT_READY`, not finished either).
const ECR_VERDICT_STATUSES = new Set(['COMPLETE', 'ACTIVE']);

/**
 * The status of an ECR answer that says COMPLETE (or ACTIVE) but whose findings part shows nothing of a
 * finished scan: no finding (basic or enhanced), no `imageScanCompletedAt`, no `findingSeverityCounts` (or
 * `{}`, which counts nothing). ECR answers so on an enhanced scan whose findings are not there yet:
 * aws/aws-sdk#289 shows `{"imageScanFindings": {"findings": []}, "imageScanStatus": {"status": "COMPLETE", …}}`
 * for an image whose findings the same call listed seconds later, still COMPLETE. A clean scan's answer
 * carries its completion time (or its counts), so this one is a scan not ready yet: wait for it, and fail
 * closed at the deadline.
 */
export const ECR_FINDINGS_NOT_READY = 'FINDINGS_NOT_READY';

/** `scan`, or not ready when it says complete and its findings part shows nothing of it (see above). */
function readyVerdict(scan: ScanVerdict, listed: number, shown: boolean): ScanVerdict {
  if (!scan.complete || listed > 0 || shown) return scan;
  return {
    complete: false,
    status: ECR_FINDINGS_NOT_READY,
    reason:
      `ECR says the scan is ${scan.status ?? 'complete'} but its imageScanFindings has no findings, no ` +
      'enhancedFindings, no imageScanCompletedAt and no findingSeverityCounts: the findings may not be ready yet',
  };
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Reads a parsed findings file (any format of the CLI contract), detected from its content. The findings
 * table keeps the document's list of Inspector findings, and reads keys and full findings back from it: the
 * document must not change while the table is in use.
 */
export function readFindingsDocument(value: unknown): FindingsDocument {
  const images = new ImageCache();
  const inspector = (
    findings: FindingTable,
    findingsPath: KeyPath,
    nextToken: string | null | undefined,
  ): FindingsDocument => ({
    format: 'inspector2-findings',
    findings,
    scan: undefined,
    image: undefined,
    findingsPath,
    nextToken,
  });
  const events = (findings: FindingTable): FindingsDocument => ({
    format: 'inspector2-finding-events',
    findings,
    scan: undefined,
    image: undefined,
    findingsPath: [],
    nextToken: undefined,
  });
  if (Array.isArray(value)) {
    const first: unknown = value[0];
    if (isObj(first) && 'detail-type' in first) return events(readEvents(value, images));
    return inspector(readInspectorList(value, [], images), [], undefined);
  }
  if (!isObj(value)) throw new ShapeError([], FORMATS_EXPECTED, value);
  // A mapping that is two formats at once is not judged by one of them: the other's findings would go unread.
  const marks = FORMAT_KEYS.filter((k) => k in value);
  if (marks.length > 1) {
    const [first, second] = marks as [FormatKey, FormatKey];
    throw new ShapeError(
      [second],
      `one findings format per file (this mapping has "${first}" too: ${FORMAT_NAMES[first]}), not ${FORMAT_NAMES[second]} beside it`,
      value[second],
    );
  }
  if ('detail-type' in value) return events(readEvents([value], images, true));
  if ('imageScanFindings' in value) return readEcrResponse(value, images);
  if ('findings' in value) {
    const list = value.findings;
    if (!Array.isArray(list)) throw new ShapeError(['findings'], 'a list of findings', list);
    return {
      ...inspector(readInspectorList(list, ['findings'], images), ['findings'], pageToken(value)),
      nextTokenKey: pageTokenKey(value),
    };
  }
  throw new ShapeError([], FORMATS_EXPECTED, value);
}

/**
 * Inspector findings into a table. The fast path reads only what the decision uses, each field once, and
 * keeps the record to rebuild the full Finding on demand; anything it does not expect (a missing ARN, a
 * textual timestamp, a severity it does not know, a wrong type) goes through the detailed reader, which
 * either normalises it or names exactly what is wrong.
 */
function readInspectorList(list: unknown[], at: KeyPath, images: ImageCache): FindingTable {
  // One row per element, in order: the list itself is the table's sources, and a fast row's key its
  // record's findingArn (read again only to compare keys of equal hashes, or to list the keys).
  const b = new FindingTableBuilder(list.length, list, arnOf);
  const materializer = (raw: unknown) => inspectorFinding(raw, images);
  const maker = b.maker(materializer);
  for (let i = 0; i < list.length; i++) {
    const raw = list[i];
    if (fastInspectorRow(b, raw, maker)) continue;
    try {
      b.pushFinding(inspectorFinding(raw, images), raw, materializer);
    } catch (e) {
      throw within(e, [...at, i]);
    }
  }
  return b.build();
}

/** The key of a row read on the fast path, which checked that it is a string. */
function arnOf(raw: unknown): string {
  return (raw as { findingArn: string }).findingArn;
}

const MAX_EPOCH_MS = MAX_EPOCH_SECONDS * 1000;

/** Writes one well-formed Inspector finding into the table; false (and nothing written) when it is not one. */
function fastInspectorRow(b: FindingTableBuilder, raw: unknown, maker: number): boolean {
  if (!isObj(raw)) return false;
  const key = raw.findingArn;
  const pvd = raw.packageVulnerabilityDetails;
  // An empty ARN is no key: as a key, it would make every finding without one a copy of the others.
  if (typeof key !== 'string' || key === '' || !isObj(pvd)) return false;
  const id = pvd.vulnerabilityId;
  if (typeof id !== 'string') return false;

  // Anything but the expected values (including null) goes the detailed way, which names the problem.
  const level = levelBit(raw.severity);
  const statusText = raw.status;
  const status = statusText === undefined ? STATUS_ACTIVE : statusBit(statusText);
  const fixText = raw.fixAvailable;
  const fix = fixBit(fixText);
  const exploitText = raw.exploitAvailable;
  const exploit = exploitText === 'YES' ? 1 : exploitText === 'NO' ? 0 : -1;
  if (level === 0 || status === 0 || (fix === 0 && fixText !== undefined)) return false;
  if (exploit === -1 && exploitText !== undefined) return false;
  let score: unknown = raw.inspectorScore;
  if (score === undefined) score = raw.score;
  if (score === undefined) {
    // No score of Inspector's own: the highest CVSS base score, or none.
    score = Number.NaN;
    const cvss = pvd.cvss;
    if (cvss !== undefined) {
      if (!Array.isArray(cvss)) return false;
      for (let k = 0; k < cvss.length; k++) {
        const c: unknown = cvss[k];
        const base = isObj(c) ? c.baseScore : undefined;
        if (typeof base !== 'number' || !inScore(base)) return false;
        if (Number.isNaN(score) || base > (score as number)) score = base;
      }
    }
  } else if (typeof score !== 'number' || !inScore(score)) return false;
  let epss = Number.NaN;
  const epssObj = raw.epss;
  if (epssObj !== undefined) {
    if (!isObj(epssObj)) return false;
    const e = epssObj.score;
    if (typeof e !== 'number' || !inProbability(e)) return false;
    epss = e;
  }
  // Epoch seconds as the API's JSON has them, or the Date the SDK makes of them (what the gate reads in
  // Lambda), within the bounds parseTimestamp takes numbers in: the two readers agree on every row this takes.
  const first = raw.firstObservedAt;
  let firstMs = Number.NaN;
  if (typeof first === 'number') {
    if (!(first >= 0 && first <= MAX_EPOCH_SECONDS)) return false;
    firstMs = Math.round(first * 1000);
  } else if (first instanceof Date) {
    firstMs = first.getTime();
    if (!(firstMs >= 0 && firstMs <= MAX_EPOCH_MS)) return false;
  } else if (first !== undefined) return false;
  const packages = pvd.vulnerablePackages;
  if (packages !== undefined) {
    if (!Array.isArray(packages)) return false;
    for (let k = 0; k < packages.length; k++) {
      const p: unknown = packages[k];
      if (!isObj(p) || typeof p.name !== 'string') return false;
    }
  }

  // Everything is valid: write the row. The id and package names are numbered now, while they are in
  // cache; the key is only hashed, and numbered with all the others when the table is built.
  const i = b.next();
  b.setSourceKey(i, key);
  b.idOrdinals[i] = b.ids.intern(id);
  if (packages !== undefined) {
    for (let k = 0; k < packages.length; k++) b.pushPackage((packages[k] as { name: string }).name);
  }
  b.levels[i] = level;
  b.statuses[i] = status;
  b.scores[i] = score as number;
  b.epss[i] = epss;
  b.exploits[i] = exploit;
  b.fixes[i] = fix;
  b.firstObserved[i] = firstMs;
  b.makers[i] = maker;
  b.commit(i);
  return true;
}

function readEvents(list: unknown[], images: ImageCache, single = false): FindingTable {
  const out = new FindingTableBuilder(list.length);
  for (let i = 0; i < list.length; i++) {
    const ev = list[i];
    const at: KeyPath = single ? [] : [i];
    if (!isObj(ev)) throw new ShapeError(at, 'an Inspector2 Finding event', ev);
    if (ev['detail-type'] !== 'Inspector2 Finding' || ev.source !== 'aws.inspector2') {
      throw new ShapeError(
        [...at, 'detail-type'],
        'an event with source "aws.inspector2" and detail-type "Inspector2 Finding"',
        ev['detail-type'],
      );
    }
    try {
      out.pushFinding(inspectorFinding(ev.detail, images));
    } catch (e) {
      throw within(e, [...at, 'detail']);
    }
    checkImageResource(ev.detail, [...at, 'detail']);
  }
  return out.build();
}

/** Re-roots a ShapeError thrown for a part of the document at that part's path. */
function within(e: unknown, prefix: KeyPath): unknown {
  return e instanceof ShapeError ? new ShapeError([...prefix, ...e.path], e.expected, e.value, e.got) : e;
}

/**
 * A response's `nextToken` (see FindingsDocument): absent, null or empty all say this is the last page. The
 * AWS CLI writes `NextToken` instead when `--max-items` cut the list short: more findings follow just the same.
 */
function pageToken(value: Obj): string | null {
  for (const key of ['nextToken', 'NextToken'] as const) {
    const token = value[key];
    if (token === undefined || token === null || token === '') continue;
    if (typeof token !== 'string') throw new ShapeError([key], 'a pagination token (a string)', token);
    return token;
  }
  return null;
}

/** The key pageToken read a token from; undefined when it found none. */
function pageTokenKey(value: Obj): string | undefined {
  return ['nextToken', 'NextToken'].find((key) => typeof value[key] === 'string' && value[key] !== '');
}

/**
 * ECR's `findingSeverityCounts`, by the severity a policy reads (`UNDEFINED` counts as UNTRIAGED, as its
 * findings do). Absent: undefined.
 */
function severityCounts(raw: unknown): Partial<Record<Severity, number>> | undefined {
  if (raw === undefined || raw === null) return undefined;
  const at = ['imageScanFindings', 'findingSeverityCounts'];
  if (!isObj(raw)) throw new ShapeError(at, 'a mapping of severity to count', raw);
  const counts: Partial<Record<Severity, number>> = {};
  for (const [key, n] of Object.entries(raw)) {
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw new ShapeError([...at, key], 'a count (a whole number, 0 or more)', n);
    }
    const level = levelOf(severityOf(key, `imageScanFindings.findingSeverityCounts.${key}`));
    counts[level] = (counts[level] ?? 0) + n;
  }
  return counts;
}

/**
 * The counts of several pages of one response (each should carry the whole scan's): the largest per severity,
 * so that no page, whatever its place, can hide another's. Undefined when no page has counts.
 */
export function largestCounts(
  pages: readonly (Readonly<Partial<Record<Severity, number>>> | undefined)[],
): Partial<Record<Severity, number>> | undefined {
  const given = pages.filter((c) => c !== undefined);
  if (given.length === 0) return undefined;
  const counts: Partial<Record<Severity, number>> = {};
  for (const c of given)
    for (const [k, n] of Object.entries(c) as [Severity, number][]) counts[k] = Math.max(counts[k] ?? 0, n);
  return counts;
}

/**
 * Where a list holds fewer findings of a severity than its response counted (`FindingsDocument.counts`): the
 * list was trimmed, or a page is missing, and judging it would judge part of the scan. Every listed finding
 * counts, whatever its status (a count may leave suppressed ones out; more listed than counted only makes the
 * decision stricter), but once: a page given twice, or a finding listed twice, is one finding to the decision,
 * so it must not make up for one the list lacks. Undefined when the list holds at least what is counted.
 */
export function shortOfCounts(
  table: FindingTable,
  counts: Readonly<Partial<Record<Severity, number>>>,
): string | undefined {
  const listed = new Map<number, number>();
  // A finding by its key (what the decision de-duplicates by) and severity: level bits are below 64.
  const seen = new Set<number>();
  for (let i = 0; i < table.length; i++) {
    const bit = table.levels[i] ?? 0;
    const copy = (table.keyOrdinals[i] ?? -1) * 64 + bit;
    if (seen.has(copy)) continue;
    seen.add(copy);
    listed.set(bit, (listed.get(bit) ?? 0) + 1);
  }
  const short = SEVERITIES.filter((s) => (listed.get(levelBit(s)) ?? 0) < (counts[s] ?? 0)).map(
    (s) => `${s} ${listed.get(levelBit(s)) ?? 0} listed of ${counts[s]} counted`,
  );
  return short.length === 0 ? undefined : short.join(', ');
}

function readEcrResponse(value: Obj, images: ImageCache): FindingsDocument {
  const isf = value.imageScanFindings;
  if (!isObj(isf)) throw new ShapeError(['imageScanFindings'], 'a mapping', isf);
  const counts = severityCounts(isf.findingSeverityCounts);
  const scanCompletedAt = timestamp(isf.imageScanCompletedAt, 'imageScanFindings.imageScanCompletedAt');
  // What, besides a finding, shows that the scan finished (see ECR_FINDINGS_NOT_READY); counts of nothing
  // (`{}`) do not.
  const shown = (counts !== undefined && Object.keys(counts).length > 0) || scanCompletedAt !== undefined;
  const repository = optString(value.repositoryName, 'repositoryName');
  const imageId = value.imageId;
  let digest: string | undefined;
  let tags: string[] = [];
  if (imageId !== undefined) {
    if (!isObj(imageId)) throw new ShapeError(['imageId'], 'a mapping', imageId);
    digest = optString(imageId.imageDigest, 'imageId.imageDigest');
    const tag = optString(imageId.imageTag, 'imageId.imageTag');
    if (tag !== undefined) tags = [tag];
  }
  const image: ImageRef = { repository, digest, tags };

  const statusObj = value.imageScanStatus;
  let scan: ScanVerdict;
  if (statusObj === undefined) {
    scan = {
      complete: false,
      status: 'MISSING',
      reason: 'the ECR response has no imageScanStatus, so it cannot show that the scan completed',
    };
  } else {
    if (!isObj(statusObj)) throw new ShapeError(['imageScanStatus'], 'a mapping', statusObj);
    const status = optString(statusObj.status, 'imageScanStatus.status') ?? 'MISSING';
    const description = optString(statusObj.description, 'imageScanStatus.description');
    scan = ECR_VERDICT_STATUSES.has(status)
      ? { complete: true, status }
      : {
          complete: false,
          status,
          reason: `ECR scan status ${status}${description ? `: ${description}` : ''}`,
        };
  }

  if (isf.enhancedFindings !== undefined) {
    const list = isf.enhancedFindings;
    if (!Array.isArray(list)) throw new ShapeError(['imageScanFindings', 'enhancedFindings'], 'a list', list);
    // ECR answers with one list or the other; basic findings beside enhanced ones would go unread.
    if (Array.isArray(isf.findings) && isf.findings.length > 0) {
      throw new ShapeError(
        ['imageScanFindings', 'findings'],
        "no basic findings beside enhancedFindings (one scan type per response: which one is the image's?)",
        isf.findings,
      );
    }
    const at = ['imageScanFindings', 'enhancedFindings'];
    const findings = readInspectorList(list, at, images);
    return {
      format: 'ecr-scan-findings-enhanced',
      findings,
      scan: readyVerdict(scan, list.length, shown),
      image,
      findingsPath: at,
      nextToken: pageToken(value),
      nextTokenKey: pageTokenKey(value),
      counts,
      scanCompletedAt,
    };
  }
  const list = isf.findings ?? [];
  if (!Array.isArray(list)) throw new ShapeError(['imageScanFindings', 'findings'], 'a list', list);
  const findings = new FindingTableBuilder(list.length);
  const resource = `${repository ?? ''}@${digest ?? tags[0] ?? ''}`;
  for (let i = 0; i < list.length; i++) {
    try {
      findings.pushFinding(ecrBasicFinding(list[i], image, resource));
    } catch (e) {
      throw within(e, ['imageScanFindings', 'findings', i]);
    }
  }
  return {
    format: 'ecr-scan-findings-basic',
    findings: findings.build(),
    scan: readyVerdict(scan, list.length, shown),
    image,
    findingsPath: ['imageScanFindings', 'findings'],
    nextToken: pageToken(value),
    nextTokenKey: pageTokenKey(value),
    counts,
    scanCompletedAt,
  };
}

function ecrBasicFinding(raw: unknown, image: ImageRef, resource: string): Finding {
  if (!isObj(raw)) throw new ShapeError([], 'an ECR image scan finding (a mapping)', raw);
  const name = optString(raw.name, 'name');
  if (name === undefined) throw new ShapeError(['name'], 'the vulnerability id (a string)', raw.name);
  let pkgName: string | undefined;
  let pkgVersion: string | undefined;
  let score: number | undefined;
  const attrs = raw.attributes ?? [];
  if (!Array.isArray(attrs)) throw new ShapeError(['attributes'], 'a list of {key, value}', attrs);
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs[i];
    if (!isObj(a) || typeof a.key !== 'string') {
      throw new ShapeError(['attributes', i], 'a {key, value} mapping', a);
    }
    const v = a.value;
    if (a.key === 'package_name' && typeof v === 'string') pkgName = v;
    else if (a.key === 'package_version' && typeof v === 'string') pkgVersion = v;
    else if ((a.key === 'CVSS3_SCORE' || a.key === 'CVSS2_SCORE') && typeof v === 'string') {
      const n = Number(v);
      if (v === '' || !Number.isFinite(n)) {
        throw new ShapeError(['attributes', i, 'value'], 'a CVSS score (a number as text)', v);
      }
      if (!inScore(n)) throw new ShapeError(['attributes', i, 'value'], `${SCORE_EXPECTED} (as text)`, v);
      if (score === undefined || n > score) score = n;
    }
  }
  const packages: VulnerablePackage[] =
    pkgName === undefined ? [] : [{ name: pkgName, version: pkgVersion, fixedInVersion: undefined }];
  const severity = severityOf(raw.severity, 'severity');
  const title = optString(raw.description, 'description');
  return {
    key: ecrBasicKey(name, pkgName, pkgVersion, resource, raw, attrs, title),
    vulnerabilityId: name,
    severity,
    level: levelOf(severity),
    status: 'ACTIVE',
    score,
    epss: undefined,
    exploitAvailable: undefined,
    fixAvailable: undefined,
    firstObservedAt: undefined,
    updatedAt: undefined,
    changedAt: undefined,
    packages,
    image,
    title,
  };
}

/**
 * A basic finding's identity, which the decision de-duplicates by and `shortOfCounts` counts by. ECR lists a
 * vulnerability once per installed package version: one CVE in several kernel RPMs is several findings, so
 * the version is part of it. A finding without a package is told from another of the same CVE by all it says
 * (link, description, attributes). A finding repeated (a page read twice) has the same key: it counts once.
 */
function ecrBasicKey(
  name: string,
  pkgName: string | undefined,
  pkgVersion: string | undefined,
  resource: string,
  raw: Obj,
  attrs: unknown[],
  title: string | undefined,
): string {
  // JSON, not a `|` join: package names and versions come from inside the image, and `a|b` with `` against
  // `a` with `b|` would be one key, one finding dropped as the other's copy.
  if (pkgName !== undefined) return `${name}|${JSON.stringify([pkgName, pkgVersion ?? null, resource])}`;
  const uri = typeof raw.uri === 'string' ? raw.uri : null;
  const said = attrs
    .map((a) => {
      const { key, value } = a as { key: string; value?: unknown };
      return JSON.stringify([key, typeof value === 'string' ? value : null]);
    })
    .sort();
  // JSON, unlike the `|` above, cannot be split two ways: descriptions hold any character.
  return `${name}||${JSON.stringify([uri, title ?? null, said])}|${resource}`;
}

/**
 * One Inspector2 finding: the ListFindings API's shape, the AWS CLI's print of it, a findings report
 * entry, an event's `detail` or an ECR enhanced finding (which says `score` where Inspector says
 * `inspectorScore`). Straight-line property reads, and key paths built only on failure: this runs
 * 100,000 times a decision. Paths in its errors are relative to the finding.
 */
function inspectorFinding(raw: unknown, images: ImageCache): Finding {
  if (!isObj(raw)) throw new ShapeError([], 'an Inspector2 finding (a mapping)', raw);

  // Empty is as good as absent (see fastInspectorRow): the fallback key tells such findings apart.
  const findingArn = optString(raw.findingArn, 'findingArn') || undefined;
  let vulnerabilityId: string | undefined;
  let packages: VulnerablePackage[] = [];
  let cvss: unknown;
  const pvd = raw.packageVulnerabilityDetails;
  if (pvd !== undefined && pvd !== null) {
    if (!isObj(pvd)) throw new ShapeError(['packageVulnerabilityDetails'], 'a mapping', pvd);
    vulnerabilityId = optString(pvd.vulnerabilityId, 'packageVulnerabilityDetails.vulnerabilityId');
    cvss = pvd.cvss;
    try {
      if (pvd.vulnerablePackages !== undefined) packages = readPackages(pvd.vulnerablePackages);
    } catch (e) {
      throw within(e, ['packageVulnerabilityDetails']);
    }
  }
  const title = optString(raw.title, 'title');
  vulnerabilityId ??= title ?? findingArn;
  if (vulnerabilityId === undefined) {
    throw new ShapeError(
      ['packageVulnerabilityDetails', 'vulnerabilityId'],
      'a vulnerability id (or at least a title or findingArn)',
      undefined,
    );
  }

  let score = optScore(raw.inspectorScore, 'inspectorScore');
  if (score === undefined) score = optScore(raw.score, 'score');
  // The CVSS list is only a fallback: read it only when Inspector gives no score of its own.
  if (score === undefined && cvss !== undefined && cvss !== null) {
    try {
      score = maxCvss(cvss);
    } catch (e) {
      throw within(e, ['packageVulnerabilityDetails']);
    }
  }

  let epss: number | undefined;
  const epssObj = raw.epss;
  if (epssObj !== undefined && epssObj !== null) {
    if (!isObj(epssObj)) throw new ShapeError(['epss'], 'a mapping with a score', epssObj);
    epss = optProbability(epssObj.score, 'epss.score');
  }

  const image = readResourceImage(raw.resources, images);
  // A status outside the three is outside the contract: ignoring it as "not counted" could approve.
  const status = raw.status === undefined || raw.status === null ? 'ACTIVE' : raw.status;
  if (status !== 'ACTIVE' && status !== 'SUPPRESSED' && status !== 'CLOSED') {
    throw new ShapeError(['status'], 'a finding status: ACTIVE, SUPPRESSED or CLOSED', status);
  }
  const severity = severityOf(raw.severity, 'severity');
  // Read in this order, as before: a finding wrong in two of them is refused for the same one.
  const exploitAvailable = yesNo(raw.exploitAvailable, 'exploitAvailable');
  const fixAvailable = fixAvailability(raw.fixAvailable, 'fixAvailable');
  const firstObservedAt = timestamp(raw.firstObservedAt, 'firstObservedAt');
  const changedAt = timestamp(raw.updatedAt, 'updatedAt');

  return {
    key:
      findingArn ??
      fallbackKey(
        vulnerabilityId,
        packages,
        packagePaths(isObj(pvd) ? pvd.vulnerablePackages : undefined),
        firstResourceId(raw.resources),
      ),
    vulnerabilityId,
    severity,
    level: levelOf(severity),
    status,
    score,
    epss,
    exploitAvailable,
    fixAvailable,
    firstObservedAt,
    updatedAt: changedAt ?? timestamp(raw.lastObservedAt, 'lastObservedAt'),
    changedAt,
    packages,
    image,
    title,
  };
}

/** Each package's `filePath` as the finding gives it (null where none): a jar's place tells two copies apart. */
function packagePaths(value: unknown): (string | null)[] {
  return Array.isArray(value)
    ? value.map((p) => (isObj(p) && typeof p.filePath === 'string' ? p.filePath : null))
    : [];
}

/**
 * A finding's identity when it has no ARN: its vulnerability, each package with its installed version and
 * file (one CVE in a library at two versions, or in two jars, is two findings: keyed as one, the newer would be
 * kept and a CRITICAL dropped for a LOW), and its resource.
 */
function fallbackKey(
  vulnerabilityId: string,
  packages: readonly VulnerablePackage[],
  paths: readonly (string | null)[],
  resource: string,
): string {
  const names = packages
    .map((p, i) => JSON.stringify([p.name, p.version ?? null, paths[i] ?? null]))
    .sort()
    .map((entry) => JSON.parse(entry) as unknown);
  // Joined with `|` and `,`, packages ["a,b"] and ["a", "b"] (or ids and names holding `|`) made one key,
  // and de-duplication kept only the newer of two findings, however severe the other. JSON cannot be read
  // two ways, and the id in front (which keeps keys readable) cannot blur where it starts: `["` occurs in it
  // only where an array begins (a quote inside a string is escaped), and only the whole array goes on from
  // its first string to a list.
  return `${vulnerabilityId}|${JSON.stringify([vulnerabilityId, names, resource])}`;
}

function readPackages(value: unknown): VulnerablePackage[] {
  if (!Array.isArray(value)) throw new ShapeError(['vulnerablePackages'], 'a list of packages', value);
  const out = new Array<VulnerablePackage>(value.length);
  for (let i = 0; i < value.length; i++) {
    try {
      out[i] = readPackage(value[i]);
    } catch (e) {
      throw within(e, ['vulnerablePackages', i]);
    }
  }
  return out;
}

function readPackage(p: unknown): VulnerablePackage {
  if (!isObj(p)) throw new ShapeError([], 'a package (a mapping)', p);
  const name = p.name;
  if (typeof name !== 'string') throw new ShapeError(['name'], 'a package name (a string)', name);
  let installed = optString(p.version, 'version');
  const release = optString(p.release, 'release');
  const epoch = p.epoch;
  if (installed !== undefined) {
    if (release) installed = `${installed}-${release}`;
    if (typeof epoch === 'number' && epoch > 0) installed = `${epoch}:${installed}`;
  }
  const fixed = optString(p.fixedInVersion, 'fixedInVersion');
  return {
    name,
    version: installed,
    fixedInVersion: fixed === 'NotAvailable' || fixed === '' ? undefined : fixed,
  };
}

function maxCvss(value: unknown): number | undefined {
  if (!Array.isArray(value)) throw new ShapeError(['cvss'], 'a list', value);
  let max: number | undefined;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (!isObj(c)) throw new ShapeError(['cvss', i], 'a mapping', c);
    const s = c.baseScore;
    if (s === undefined || s === null) continue;
    if (typeof s !== 'number' || !Number.isFinite(s))
      throw new ShapeError(['cvss', i, 'baseScore'], 'a number', s);
    if (!inScore(s)) throw new ShapeError(['cvss', i, 'baseScore'], SCORE_EXPECTED, s);
    if (max === undefined || s > max) max = s;
  }
  return max;
}

function firstResourceId(resources: unknown): string {
  const first: unknown = Array.isArray(resources) ? resources[0] : undefined;
  return isObj(first) && typeof first.id === 'string' ? first.id : '';
}

/** Whether a resource names the repository and digest of `image` (both absent counting as the same). */
function sameImageAs(resource: Obj, image: ImageRef | undefined): boolean {
  const details = resource.details;
  const ecr = isObj(details) ? details.awsEcrContainerImage : undefined;
  if (!isObj(ecr)) return image === undefined;
  return image !== undefined && ecr.repositoryName === image.repository && ecr.imageHash === image.digest;
}

function readResourceImage(value: unknown, images: ImageCache): ImageRef | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw new ShapeError(['resources'], 'a list of resources', value);
  // Findings of one export are nearly always of one image: when the resource id is the one just read and
  // its repository and digest are too, so is the image, and its tags need not be read again. (The id alone
  // is the file's word: two images under one id would be judged as one, and pass the one-image check.)
  const first: unknown = value[0];
  if (
    value.length === 1 &&
    isObj(first) &&
    typeof first.id === 'string' &&
    first.id === images.lastResourceId &&
    sameImageAs(first, images.lastResourceImage)
  ) {
    return images.lastResourceImage;
  }
  let found: ImageRef | undefined;
  for (let i = 0; i < value.length; i++) {
    const r = value[i];
    if (!isObj(r)) throw new ShapeError(['resources', i], 'a resource (a mapping)', r);
    const details = r.details;
    if (!isObj(details)) continue;
    const ecr = details.awsEcrContainerImage;
    if (!isObj(ecr)) continue;
    try {
      const repository = optString(ecr.repositoryName, 'repositoryName');
      const digest = optString(ecr.imageHash, 'imageHash');
      const tags = ecr.imageTags ?? [];
      if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) {
        throw new ShapeError(['imageTags'], 'a list of tags', tags);
      }
      // A finding of two images, read as its first one's, would pass the one-image check.
      if (found && (found.digest !== digest || found.repository !== repository)) {
        throw new ShapeError(
          [],
          'the findings of one image (one digest, in one repository): export or filter the findings of the image to judge',
          ecr,
          `findings of 2 images: ${found.repository ?? '?'}@${found.digest ?? '?'}, ${repository ?? '?'}@${digest ?? '?'}`,
        );
      }
      found ??= images.get(repository, digest, tags as string[]);
    } catch (e) {
      throw within(e, ['resources', i, 'details', 'awsEcrContainerImage']);
    }
  }
  if (value.length === 1 && isObj(first) && typeof first.id === 'string') {
    images.lastResourceId = first.id;
    images.lastResourceImage = found;
  }
  return found;
}

/**
 * Reads every field of every finding, the ones the decision does not use too (versions, titles), so that a
 * file a user hands over is refused with the exact place of any bad field, rather than when a report shows
 * it. The gate skips this: a bad display field there surfaces when a message is rendered, and fails closed.
 */
export function validateDocument(doc: FindingsDocument): void {
  const table = doc.findings;
  for (let i = 0; i < table.length; i++) {
    try {
      table.row(i);
    } catch (e) {
      throw within(e, [...doc.findingsPath, i]);
    }
  }
}

const ECR_IMAGE_TYPE = 'AWS_ECR_CONTAINER_IMAGE';

/**
 * Refuses a finding about something other than a container image (an EC2 instance, a Lambda function: an
 * export not filtered to one image). Counted into an image's decision, its findings would pass or fail a
 * release they are not about. A finding that says nothing of its resource's type is taken as it comes.
 */
export function checkImageFindings(doc: FindingsDocument): void {
  const table = doc.findings;
  for (let i = 0; i < table.length; i++) {
    const { source } = table.sourceOf(i);
    // Rows without a source are events', checked as they are read (readEvents).
    if (source !== undefined) checkImageResource(source, [...doc.findingsPath, i]);
  }
}

/** See checkImageFindings: one finding, at `at`. */
function checkImageResource(raw: unknown, at: KeyPath): void {
  if (!isObj(raw) || !Array.isArray(raw.resources)) return;
  const resources: unknown[] = raw.resources;
  if (resources.length === 0) return;
  const types = resources.map((r) => (isObj(r) ? r.type : undefined));
  if (types.some((t) => t === undefined || t === ECR_IMAGE_TYPE)) return;
  throw new ShapeError(
    [...at, 'resources', 0, 'type'],
    `${ECR_IMAGE_TYPE}: Tollgate judges container images, and this finding is about another resource (filter the export to the image, e.g. --filter-criteria ecrImageHash)`,
    types[0],
  );
}

/**
 * The distinct images a document's findings are of (and the document's own, for ECR responses). Reading
 * every finding's resource is input validation for exports a user hands over, not part of deciding: the
 * gate asks the API for the findings of one digest.
 */
export function documentImages(doc: FindingsDocument): ImageRef[] {
  const images = new ImageCache();
  const seen = new Set<ImageRef>();
  if (doc.image) seen.add(doc.image);
  const table = doc.findings;
  for (let i = 0; i < table.length; i++) {
    const { source, cached } = table.sourceOf(i);
    let image: ImageRef | undefined;
    if (cached !== undefined) image = cached.image;
    else if (isObj(source)) image = readResourceImage(source.resources, images);
    if (image !== undefined) seen.add(image);
  }
  return [...seen];
}

/** The image a finding of a document is of, and the key path of the resource that names it. */
export interface RowImage {
  readonly image: ImageRef | undefined;
  /**
   * The finding's `awsEcrContainerImage` (append `imageHash` or `repositoryName`), or the finding itself
   * when its image is the document's (an ECR response's basic findings) or its record is not kept (events).
   */
  readonly path: KeyPath;
}

/**
 * Reads the image of each finding of a document (row by row, sharing one cache): what documentImages
 * gathers, finding by finding, for picking out one repository's findings and for naming the finding an
 * error is about. A finding that names no image is the document's own (an ECR response's), if any.
 */
export function rowImageReader(doc: FindingsDocument): (i: number) => RowImage {
  const images = new ImageCache();
  const table = doc.findings;
  return (i) => {
    const { source, cached } = table.sourceOf(i);
    const at: KeyPath = [...doc.findingsPath, i];
    if (isObj(source) && Array.isArray(source.resources)) {
      const resources: unknown[] = source.resources;
      const r = resources.findIndex(
        (x) => isObj(x) && isObj(x.details) && isObj(x.details.awsEcrContainerImage),
      );
      let image: ImageRef | undefined;
      try {
        image = readResourceImage(resources, images);
      } catch (e) {
        // The document was read: a finding whose resource the reading took as the one before it (the same
        // resource id) was not read again there, and is the image the reading gave it here too.
        if (!(e instanceof ShapeError)) throw e;
        image = undefined;
      }
      if (r >= 0 && image !== undefined) {
        return { image, path: [...at, 'resources', r, 'details', 'awsEcrContainerImage'] };
      }
    }
    return { image: cached?.image ?? doc.image, path: at };
  };
}

/**
 * One shared ImageRef per image: findings of one image do not each carry a copy. Consecutive findings are
 * almost always of the same image, so the last one is compared first, without building a key.
 */
class ImageCache {
  private readonly refs = new Map<string, ImageRef>();
  private last: ImageRef | undefined;
  lastResourceId: string | undefined;
  lastResourceImage: ImageRef | undefined;

  get(repository: string | undefined, digest: string | undefined, tags: readonly string[]): ImageRef {
    const last = this.last;
    if (
      last !== undefined &&
      last.repository === repository &&
      last.digest === digest &&
      sameTags(last.tags, tags)
    ) {
      return last;
    }
    const key = `${repository ?? ''}@${digest ?? ''}#${tags.join(',')}`;
    let ref = this.refs.get(key);
    if (ref === undefined) {
      ref = { repository, digest, tags: [...tags] };
      this.refs.set(key, ref);
    }
    this.last = ref;
    return ref;
  }
}

function sameTags(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `'a.b'` as a key path; keys here never contain dots. */
function pathOf(dotted: string): KeyPath {
  return dotted === '' ? [] : dotted.split('.');
}

function severityOf(value: unknown, path: string): string {
  // A missing severity is not an error: it is an unknown severity, which the policy decides on (fail closed).
  if (value === undefined || value === null) return 'UNDEFINED';
  if (typeof value !== 'string') throw new ShapeError(pathOf(path), 'a severity (a string)', value);
  // Letter case only: `critical` from a tool that writes lower case is CRITICAL, never less. Anything else
  // (`CRITICAL `, `Sev1`) stays what it is, a severity nobody rated (`unknownSeverity`). ASCII only, since
  // toUpperCase maps the dotless ı to I: `medıum` is not a rating.
  return RATED_SEVERITIES.has(value) || !/^[A-Za-z_]+$/.test(value) ? value : value.toUpperCase();
}

function yesNo(value: unknown, path: string): boolean | undefined {
  if (value === 'YES') return true;
  if (value === 'NO') return false;
  if (value === undefined || value === null) return undefined;
  throw new ShapeError(pathOf(path), 'YES or NO', value);
}

function fixAvailability(value: unknown, path: string): FixAvailability | undefined {
  if (value === 'YES' || value === 'NO' || value === 'PARTIAL') return value;
  if (value === undefined || value === null) return undefined;
  throw new ShapeError(pathOf(path), 'YES, NO or PARTIAL', value);
}

function timestamp(value: unknown, path: string): number | undefined {
  const t = parseTimestamp(value);
  if (isProblem(t)) throw new ShapeError(pathOf(path), t.expected, t.value);
  return t;
}

function optString(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value;
  if (value === undefined || value === null) return undefined;
  throw new ShapeError(pathOf(path), 'a string', value);
}

function optNumber(value: unknown, path: string): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (value === undefined || value === null) return undefined;
  throw new ShapeError(pathOf(path), 'a number', value);
}

// Scores outside their scale are a malformed answer, not a low score: `inspectorScore: -1` would match no
// `minScore` rule (not even `minScore: 0`) and could approve. Refused on both paths alike, so the fast
// path hands such a row to the detailed reader, which names it.
const SCORE_EXPECTED = 'a score from 0 to 10';
const PROBABILITY_EXPECTED = 'a probability from 0 to 1';

/** A CVSS or Inspector score: 0 to 10 (false for NaN). */
function inScore(n: number): boolean {
  return n >= 0 && n <= 10;
}

/** An EPSS score: 0 to 1 (false for NaN). */
function inProbability(n: number): boolean {
  return n >= 0 && n <= 1;
}

function optScore(value: unknown, path: string): number | undefined {
  const n = optNumber(value, path);
  if (n !== undefined && !inScore(n)) throw new ShapeError(pathOf(path), SCORE_EXPECTED, value);
  return n;
}

function optProbability(value: unknown, path: string): number | undefined {
  const n = optNumber(value, path);
  if (n !== undefined && !inProbability(n)) throw new ShapeError(pathOf(path), PROBABILITY_EXPECTED, value);
  return n;
}
