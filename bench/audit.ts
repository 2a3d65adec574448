/**
 * The audit trail's queries, for `npm run bench` (issue 5, item 7): `tollgate audit list --pipeline P
 * --since 30d` and `list --vulnerability CVE-…` through `DynamoAuditStore.list`, against a full table Scan
 * answering the same question on the same table.
 *
 * The table: a fresh in-memory dynalite (adapters/dynamodb/local.ts, in a process of its own:
 * dynalite-server.ts) with the real table definition, filled
 * directly with the items the store writes (adapters/dynamodb/audit-items.ts) by concurrent BatchWriteItem:
 * `records` chained records (chainRecord: real seq, prevHash and hash) over `pipelines` pipelines, a year of
 * gates per pipeline (decision, action, and a person's resolution for most escalations), each decision with
 * 0–3 vulnerability ids from a pool of 5,000 and one id (TARGET_CVE) in about 1 % of them; their VULN# index
 * items; each chain's head and registry item. The REPO# and REVIEWER# index items are not written: no
 * measured query reads them, and they would only make the table, and so the Scan, bigger (the figures are
 * the more conservative without them).
 *
 * Figures per query:
 * - readRatio: items the Queries read (the sum of their ScannedCount) / records returned. 1.0 is reading
 *   only what is returned. The vulnerability query reads index items, then the records by key
 *   (BatchGetItem): `fetched` counts those, one per record returned, never a record that does not match.
 *   readRatio leaves them out, so for that query it measures the index read alone (1.0 unless the Query
 *   reads index items of records it does not return).
 * - itemsReadPerRecord: every item read (the Queries' ScannedCount, the records read by key, and the
 *   vulnerability filter's pending markers with their records: `markers`) / records returned: what a query
 *   really costs per record. The same as readRatio for a query that reads nothing else; 2.0 at best for
 *   the vulnerability query (an index item and its record).
 * - ms: the median of `runs` complete reads (every page, every record yielded); msVsScan = ms / the Scan's ms.
 * - the Scan: every page of a Scan with the same question as a FilterExpression (its ScannedCount is the
 *   whole table), once per query; its matches must equal the query's, or the measurement throws.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { BatchWriteCommand, type DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import {
  auditPk,
  auditRecordItem,
  auditSk,
  headItem,
  registryItem,
  vulnerabilityItems,
} from '../adapters/dynamodb/audit-items.js';
import { DynamoAuditStore } from '../adapters/dynamodb/audit-store.js';
import { createDocumentClient } from '../adapters/dynamodb/store.js';
import { ensureTable } from '../adapters/dynamodb/table.js';
import { chainRecord } from '../shared/audit/chain.js';
import type { AuditEntry, AuditFilter, AuditRecord } from '../shared/audit/record.js';
import type { Outcome } from '../shared/decision/record.js';
import { rng } from './generate.js';

type Item = Record<string, unknown>;

export const TARGET_CVE = 'CVE-2024-45490';
const TABLE = 'tollgate-bench';
const DAY_MS = 86_400_000;
const REVIEWERS = ['alice', 'bob', 'carol', 'dave', 'erin'].map(
  (name) => `arn:aws:sts::123456789012:assumed-role/SecurityEngineer/${name}`,
);
const POLICY = {
  name: 'baseline',
  sha256: 'a3f1c2d4e5b6a7980f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978',
};

export interface AuditBenchOptions {
  /** Records in the table (default 100,000). */
  readonly records?: number;
  /** Pipelines they are spread over (default 50). */
  readonly pipelines?: number;
  /** Timed runs of each query; the median is reported (default 5). */
  readonly runs?: number;
  /** Concurrent BatchWriteItem requests while filling (default 8). */
  readonly concurrency?: number;
  /** The bench's "now": `--since 30d` counts back from it. */
  readonly now?: Date;
  /** Progress lines (filling takes a while at 100,000). */
  readonly log?: (line: string) => void;
}

export interface QueryFigures {
  readonly filter: string;
  readonly returned: number;
  /** Sum of the Queries' ScannedCount. */
  readonly scanned: number;
  /** Records read by key after an index-item Query (vulnerability). */
  readonly fetched: number;
  /** Pending markers read, and the records read by key for them (vulnerability; 0 on a table without). */
  readonly markers: number;
  readonly requests: number;
  readonly index: string;
  /** scanned / returned: the Queries' reads alone (for the vulnerability query, the index items). */
  readonly readRatio: number;
  /** (scanned + fetched + markers) / returned: every item read, the records read by key included. */
  readonly itemsReadPerRecord: number;
  readonly ms: number;
  readonly runsMs: readonly number[];
  readonly scanScanned: number;
  readonly scanMatched: number;
  readonly scanMs: number;
  readonly msVsScan: number;
}

export interface AuditBenchResult {
  readonly records: number;
  readonly pipelines: number;
  /** Every item written: records, VULN# items, heads, registry. */
  readonly items: number;
  readonly vulnerabilityItems: number;
  readonly fillMs: number;
  readonly pipelineSince: QueryFigures;
  readonly vulnerability: QueryFigures;
  readonly totalMs: number;
}

function pick<T>(random: () => number, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)]!;
}

function hex(random: () => number, length: number): string {
  let out = '';
  while (out.length < length)
    out += Math.floor(random() * 0x100000000)
      .toString(16)
      .padStart(8, '0');
  return out.slice(0, length);
}

/** One pipeline's chain: a year of gates up to `now`, oldest first. */
export function makeChain(pipeline: string, count: number, index: number, now: Date): AuditRecord[] {
  const random = rng(1000 + index);
  const repository = `team-${index % 17}/service-${index}`;
  // About 2.3 records a gate (decision, action, a resolution for 80 % of escalations): gates spaced evenly.
  const gates = Math.ceil(count / 2.3);
  const spacing = (365 * DAY_MS) / gates;
  const start = now.getTime() - 365 * DAY_MS;
  const records: AuditRecord[] = [];
  let previous: AuditRecord | undefined;
  const push = (entry: AuditEntry) => {
    if (records.length >= count) return;
    previous = chainRecord(entry, pipeline, previous);
    records.push(previous);
  };
  for (let g = 0; records.length < count; g++) {
    const at = start + g * spacing + random() * spacing * 0.5;
    const executionId = `${hex(random, 8)}-${hex(random, 4)}-4${hex(random, 3)}-8${hex(random, 3)}-${hex(random, 12)}`;
    const gate = { pipeline, executionId, stage: 'Deploy', action: 'TollgateApproval' };
    const image = { repository, digest: `sha256:${hex(random, 64)}`, tags: [`1.${g % 50}.${g}`] };
    const r = random();
    const outcome: Outcome = r < 0.7 ? 'APPROVE' : r < 0.82 ? 'REJECT' : 'ESCALATE';
    const vulnerabilities = new Set<string>();
    const k = Math.floor(random() * 4);
    for (let i = 0; i < k; i++)
      vulnerabilities.add(`CVE-2025-${String(10000 + Math.floor(random() * 5000))}`);
    if (random() < 0.01) vulnerabilities.add(TARGET_CVE);
    const ids = [...vulnerabilities].sort();
    const violations =
      outcome === 'APPROVE'
        ? []
        : [
            {
              rule: outcome === 'REJECT' ? 'no-critical' : 'fixable-high',
              action: outcome === 'REJECT' ? ('reject' as const) : ('escalate' as const),
              allow: 0,
              count: Math.max(1, ids.length),
              findings: ids.slice(0, 3),
              description: 'Critical vulnerabilities block a release.',
            },
          ];
    const summary =
      outcome === 'APPROVE'
        ? 'APPROVE by policy baseline: no violations'
        : `${outcome} by policy baseline: ${violations[0]!.rule} (${violations[0]!.count} finding(s): ${ids.slice(0, 3).join(', ')})`;
    const base = {
      gate,
      image,
      outcome,
      policy: POLICY,
      violations: [],
      warnings: [],
      exceptions: null,
      counts: null,
      vulnerabilities: [],
      vulnerabilitiesTruncated: false,
      action: null,
      resolution: null,
    } satisfies Omit<AuditEntry, 'type' | 'time' | 'actor' | 'summary'>;
    push({
      ...base,
      type: 'decision',
      time: new Date(at).toISOString(),
      actor: 'tollgate',
      summary,
      violations,
      exceptions: { applied: [], expired: [], revoked: [], unused: ['EXC-2026-003'], expiringSoon: [] },
      counts: {
        CRITICAL: outcome === 'REJECT' ? 1 : 0,
        HIGH: ids.length,
        MEDIUM: 3,
        LOW: 2,
        INFORMATIONAL: 0,
        UNTRIAGED: 0,
      },
      vulnerabilities: ids,
    });
    push({
      ...base,
      type: 'action',
      time: new Date(at + 1000).toISOString(),
      actor: 'tollgate',
      summary,
      action:
        outcome === 'ESCALATE'
          ? {
              kind: 'escalation',
              status: null,
              answer: null,
              subject: `Tollgate: ESCALATE ${pipeline}/Deploy - 1 rule`,
            }
          : {
              kind: 'approval-result',
              status: outcome === 'APPROVE' ? 'Approved' : 'Rejected',
              answer: 'accepted',
              subject: null,
            },
    });
    if (outcome === 'ESCALATE' && random() < 0.8) {
      const reviewer = pick(random, REVIEWERS);
      const approved = random() < 0.75;
      push({
        ...base,
        type: 'resolution',
        time: new Date(at + 20 * 60_000).toISOString(),
        actor: reviewer,
        summary: approved ? 'Accepted risk: fix scheduled for next sprint' : 'Not without the fix',
        resolution: {
          state: approved ? 'SUCCEEDED' : 'FAILED',
          reviewer,
          byTollgate: false,
          status: approved ? 'Approved' : 'Rejected',
          summary: approved ? 'Accepted risk: fix scheduled for next sprint' : 'Not without the fix',
        },
      });
    }
  }
  return records;
}

/** Every item the store would hold for these chains (less REPO#/REVIEWER#, see above). */
function itemsOf(chains: readonly AuditRecord[][]): { items: Item[]; vulnerabilityItems: number } {
  const items: Item[] = [];
  let vulns = 0;
  for (const chain of chains) {
    for (const record of chain) {
      items.push(auditRecordItem(record));
      if (record.type === 'decision') {
        const v = vulnerabilityItems(record);
        vulns += v.length;
        items.push(...v);
      }
    }
    const first = chain[0];
    const last = chain.at(-1);
    if (first && last) items.push(headItem(last), registryItem(last.pipeline, first.time));
  }
  return { items, vulnerabilityItems: vulns };
}

/** Concurrent BatchWriteItem of 25 items each, unprocessed items sent again. */
export async function batchWrite(
  doc: DynamoDBDocumentClient,
  table: string,
  items: readonly Item[],
  concurrency: number,
  progress?: (written: number) => void,
): Promise<void> {
  let next = 0;
  let written = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const batch = items.slice(next, next + 25);
      next += batch.length;
      let pending = batch.map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 10) throw new Error('BatchWriteItem left items unprocessed after 10 attempts');
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 10 * 2 ** attempt));
        const output = await doc.send(new BatchWriteCommand({ RequestItems: { [table]: pending } }));
        pending = (output.UnprocessedItems?.[table] ?? []) as typeof pending;
      }
      written += batch.length;
      progress?.(written);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface ScanQuestion {
  readonly FilterExpression: string;
  readonly ExpressionAttributeNames: Record<string, string>;
  readonly ExpressionAttributeValues: Item;
}

async function fullScan(
  doc: DynamoDBDocumentClient,
  question: ScanQuestion,
): Promise<{ scanned: number; matched: Set<string>; ms: number }> {
  let scanned = 0;
  const matched = new Set<string>();
  let start: Item | undefined;
  const t0 = performance.now();
  do {
    const output = await doc.send(
      new ScanCommand({ TableName: TABLE, ...question, ...(start ? { ExclusiveStartKey: start } : {}) }),
    );
    scanned += output.ScannedCount ?? 0;
    for (const item of output.Items ?? []) matched.add(`${String(item.pk)}|${String(item.sk)}`);
    start = output.LastEvaluatedKey;
  } while (start);
  return { scanned, matched, ms: performance.now() - t0 };
}

/** The Scan's runs: one to warm up, then SCAN_RUNS timed (a Scan reads the whole table: fewer than the query's). */
const SCAN_RUNS = 3;

async function measureQuery(
  doc: DynamoDBDocumentClient,
  filter: AuditFilter,
  label: string,
  question: ScanQuestion,
  runs: number,
): Promise<QueryFigures> {
  const store = new DynamoAuditStore(doc, TABLE);
  const runsMs: number[] = [];
  let returned = 0;
  let keys = new Set<string>();
  // One warm-up read, then the timed runs (each reads every page and yields every record).
  for (let run = -1; run < runs; run++) {
    const t0 = performance.now();
    const read = new Set<string>();
    for await (const record of store.list(filter, { pageSize: 500, order: 'newest' })) {
      read.add(`${auditPk(record.pipeline)}|${auditSk(record.seq)}`);
    }
    if (run >= 0) runsMs.push(performance.now() - t0);
    returned = read.size;
    keys = read;
  }
  const { scanned, fetched, requests, index } = store.stats;
  const markers = store.stats.markers + store.stats.markerRecords;
  const scans: Awaited<ReturnType<typeof fullScan>>[] = [];
  for (let run = -1; run < SCAN_RUNS; run++) {
    const result = await fullScan(doc, question);
    if (run >= 0) scans.push(result);
  }
  const scan = { ...scans[0]!, ms: median(scans.map((x) => x.ms)) };
  // The same records, not only as many: a query that read the wrong ones would pass a count.
  const missing = [...scan.matched].filter((k) => !keys.has(k));
  const extra = [...keys].filter((k) => !scan.matched.has(k));
  if (missing.length > 0 || extra.length > 0) {
    throw new Error(
      `${label}: the query returned ${returned} records, the Scan matched ${scan.matched.size}: ${missing.length} missed (${missing.slice(0, 3).join(', ')}), ${extra.length} not the Scan's (${extra.slice(0, 3).join(', ')})`,
    );
  }
  const ms = median(runsMs);
  return {
    filter: label,
    returned,
    scanned,
    fetched,
    markers,
    requests,
    index,
    readRatio: returned === 0 ? Number.NaN : scanned / returned,
    itemsReadPerRecord: returned === 0 ? Number.NaN : (scanned + fetched + markers) / returned,
    ms,
    runsMs,
    scanScanned: scan.scanned,
    scanMatched: scan.matched.size,
    scanMs: scan.ms,
    msVsScan: ms / scan.ms,
  };
}

/** dynalite-server.ts in a child process, and a document client for it. */
async function startServer(): Promise<{ client: DynamoDBDocumentClient; close(): Promise<void> }> {
  const script = fileURLToPath(new URL('./dynalite-server.ts', import.meta.url));
  const child = spawn(process.execPath, ['--max-old-space-size=4096', '--import', 'tsx', script], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const endpoint = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.once('error', reject);
    child.once('exit', (code) =>
      reject(new Error(`the dynalite process ended (${code}) before it listened`)),
    );
    child.stdout?.on('data', (chunk) => {
      out += String(chunk);
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve(line.trim());
    });
  });
  const client = createDocumentClient({ endpoint });
  return {
    client,
    close: async () => {
      client.destroy();
      child.stdin?.end();
      const timer = setTimeout(() => child.kill(), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export async function measureAudit(options: AuditBenchOptions = {}): Promise<AuditBenchResult> {
  const t0 = performance.now();
  const total = options.records ?? 100_000;
  const pipelineCount = options.pipelines ?? 50;
  const runs = options.runs ?? 5;
  const now = options.now ?? new Date('2026-11-25T12:00:00Z');
  const log = options.log ?? (() => {});

  const chains = Array.from({ length: pipelineCount }, (_, i) => {
    const count = Math.floor(total / pipelineCount) + (i < total % pipelineCount ? 1 : 0);
    return makeChain(`pipeline-${String(i).padStart(2, '0')}`, count, i, now);
  });
  const { items, vulnerabilityItems: vulns } = itemsOf(chains);

  const db = await startServer();
  try {
    await ensureTable(db.client, TABLE);
    const fill0 = performance.now();
    let reported = 0;
    await batchWrite(db.client, TABLE, items, options.concurrency ?? 8, (written) => {
      if (written - reported >= 50_000) {
        reported = written;
        log(
          `  … ${written} of ${items.length} items written (${Math.round((performance.now() - fill0) / 1000)} s)`,
        );
      }
    });
    const fillMs = performance.now() - fill0;

    const pipeline = chains[Math.floor(pipelineCount / 2)]![0]!.pipeline;
    const since = new Date(now.getTime() - 30 * DAY_MS);
    const pipelineSince = await measureQuery(
      db.client,
      { pipeline, since },
      `--pipeline ${pipeline} --since 30d`,
      {
        FilterExpression: '#type = :audit AND #pipeline = :pipeline AND #time >= :since',
        ExpressionAttributeNames: { '#type': 'type', '#pipeline': 'pipeline', '#time': 'time' },
        ExpressionAttributeValues: {
          ':audit': 'audit',
          ':pipeline': pipeline,
          ':since': since.toISOString(),
        },
      },
      runs,
    );
    const vulnerability = await measureQuery(
      db.client,
      { vulnerability: TARGET_CVE },
      `--vulnerability ${TARGET_CVE}`,
      {
        FilterExpression: '#type = :audit AND contains(#record.#vulns, :id)',
        ExpressionAttributeNames: { '#type': 'type', '#record': 'record', '#vulns': 'vulnerabilities' },
        ExpressionAttributeValues: { ':audit': 'audit', ':id': TARGET_CVE },
      },
      runs,
    );
    return {
      records: total,
      pipelines: pipelineCount,
      items: items.length,
      vulnerabilityItems: vulns,
      fillMs,
      pipelineSince,
      vulnerability,
      totalMs: performance.now() - t0,
    };
  } finally {
    await db.close();
  }
}
