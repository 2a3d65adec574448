import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { SuiteScenario } from './scenarios.js';

/*
 * An independent count of what an APPROVE may be decided on. The replays compare a run with the clean run,
 * and both are made by the same findings reader: a reader that lost a page on every run would agree with
 * itself. This reads the scenario's findings files with nothing but JSON.parse and counts, per image, the
 * ACTIVE findings by severity, to hold every APPROVE's counts against.
 *
 * The files are the world's whole history of findings (every `findings` step applied, appended or replacing):
 * an APPROVE decided before a later step added findings would differ from it, which no example scenario does
 * (the one whose findings arrive late rejects).
 */

export const ORACLE_SEVERITIES = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'INFORMATIONAL', 'UNTRIAGED'] as const;
export type OracleCounts = Record<(typeof ORACLE_SEVERITIES)[number], number>;

type Json = Record<string, unknown>;

function isJson(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function zero(): OracleCounts {
  return { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0, INFORMATIONAL: 0, UNTRIAGED: 0 };
}

/**
 * The findings of one document, with whether each carries a status of its own: Inspector's ListFindings
 * shape (`findings`), or ECR's DescribeImageScanFindings (`imageScanFindings.findings`, basic scanning,
 * which has no status: all of them are open; `enhancedFindings`, which has Inspector's).
 */
function findingsOf(doc: unknown, where: string): { finding: Json; statusless: boolean }[] {
  const list = (v: unknown, statusless: boolean) =>
    (Array.isArray(v) ? v : []).filter(isJson).map((finding) => ({ finding, statusless }));
  if (Array.isArray(doc)) return list(doc, false);
  if (isJson(doc) && Array.isArray(doc.findings)) return list(doc.findings, false);
  if (isJson(doc) && isJson(doc.imageScanFindings)) {
    return [
      ...list(doc.imageScanFindings.findings, true),
      ...list(doc.imageScanFindings.enhancedFindings, false),
    ];
  }
  throw new Error(
    `${where}: expected a findings document ({findings: […]} or {imageScanFindings: …}); got ${JSON.stringify(doc).slice(0, 80)}`,
  );
}

/** The image digests a finding names (Inspector's resources); none for ECR's basic findings. */
function digestsOf(finding: Json): string[] {
  const resources = Array.isArray(finding.resources) ? finding.resources : [];
  return resources.flatMap((r) => {
    const details = isJson(r) && isJson(r.details) ? r.details : {};
    const image = isJson(details.awsEcrContainerImage) ? details.awsEcrContainerImage : {};
    return typeof image.imageHash === 'string' ? [image.imageHash] : [];
  });
}

function severityOf(raw: unknown): keyof OracleCounts {
  const name = typeof raw === 'string' ? raw.toUpperCase() : '';
  // Anything the scanner did not rate (ECR's UNDEFINED, a name no scanner uses) is untriaged, never dropped.
  return (ORACLE_SEVERITIES as readonly string[]).includes(name) ? (name as keyof OracleCounts) : 'UNTRIAGED';
}

const cache = new WeakMap<SuiteScenario, ReadonlyMap<string, OracleCounts>>();

/**
 * The ACTIVE findings of each image of the scenario by severity, after every `findings` step, each finding
 * once (by its ARN, or its name and package when it has none). An image the scenario gives no findings has
 * none: the world answers it with an empty list.
 */
export function oracleCounts(s: SuiteScenario): ReadonlyMap<string, OracleCounts> {
  const known = cache.get(s);
  if (known) return known;
  const base = dirname(resolve(s.file));
  const read = (source: Json, where: string): { finding: Json; statusless: boolean }[] => {
    if (typeof source.file === 'string') {
      const path = resolve(base, source.file);
      return findingsOf(JSON.parse(readFileSync(path, 'utf8')), path);
    }
    return findingsOf({ findings: source.findings }, where);
  };
  const { scenario } = s.loaded;
  const held = new Map<string, { finding: Json; statusless: boolean }[]>();
  for (const [digest, source] of Object.entries(scenario.world.findings)) {
    held.set(digest, read(source as Json, `${s.name}: world.findings ${digest}`));
  }
  scenario.steps.forEach((step, i) => {
    if (!step.findings) return;
    const f = step.findings as Json & { digest: string; append?: boolean };
    const more = read(f, `${s.name}: steps[${i}].findings`);
    held.set(f.digest, f.append ? [...(held.get(f.digest) ?? []), ...more] : more);
  });
  const out = new Map<string, OracleCounts>();
  for (const [digest, findings] of held) {
    const counts = zero();
    const seen = new Set<string>();
    for (const { finding, statusless } of findings) {
      const names = digestsOf(finding);
      if (names.length > 0 && !names.includes(digest)) continue;
      if (!statusless && finding.status !== 'ACTIVE') continue;
      const key =
        typeof finding.findingArn === 'string'
          ? finding.findingArn
          : JSON.stringify([finding.name ?? finding.title, finding.uri, finding.attributes]);
      const severity = severityOf(finding.severity);
      if (seen.has(`${key} ${severity}`)) continue;
      seen.add(`${key} ${severity}`);
      counts[severity]++;
    }
    out.set(digest, counts);
  }
  cache.set(s, out);
  return out;
}

/** The oracle's counts of one image (none when the scenario gives it no findings). */
export function oracleOf(s: SuiteScenario, digest: string): OracleCounts {
  return oracleCounts(s).get(digest) ?? zero();
}

/** What differs between a decision's counts and the oracle's, severity by severity; empty when they agree. */
export function countsDiffer(
  got: Readonly<Partial<Record<string, number>>> | null | undefined,
  want: OracleCounts,
): string[] {
  return ORACLE_SEVERITIES.filter((k) => (got?.[k] ?? 0) !== want[k]).map(
    (k) => `${k} ${got?.[k] ?? 0} (the files hold ${want[k]})`,
  );
}
