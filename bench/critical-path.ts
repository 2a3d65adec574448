/**
 * The gate's critical path, for `npm run bench`: from the scan-finished event to PutApprovalResult, for an
 * image with 1,000 findings, with every AWS call (DynamoDB included) answered after a simulated latency.
 *
 * The setup is the real thing, in process: the real handlers, the real AWS adapters (their SDK clients
 * answered by the simulator's World) and the real DynamoStore on an in-memory dynalite table. One gate is
 * already WAITING for the image (its approval STARTED event was handled while the scan was still pending);
 * the measurement then delivers one `Inspector2 Scan` event to the scan-finished handler.
 *
 * Figures:
 * - calls: the AWS calls made in sequence before PutApprovalResult could be sent, i.e. the depth of the
 *   PutApprovalResult call in the chains of calls that started after the event (a call's depth is 1 + the
 *   depth of the deepest call that had ended when it started).
 * - floor: the longest chain of findings pages + 2 (the decision write and PutApprovalResult). The findings
 *   are read in one concurrent chain per severity (adapters/aws/inspector.ts, 100 a page), so the longest
 *   chain is the page count of the most frequent severity; every other call can run beside that read.
 * - ms: from the event's delivery to the end of the PutApprovalResult call; handlerMs: until the handler
 *   returned (it still records the result and publishes Tollgate's events after PutApprovalResult).
 */
import { fileURLToPath } from 'node:url';
import type { Context } from 'aws-lambda';
import { indexKind } from '../adapters/dynamodb/audit-items.js';
import { startLocalDynamo } from '../adapters/dynamodb/local.js';
import { DynamoStore } from '../adapters/dynamodb/store.js';
import { ensureTable } from '../adapters/dynamodb/table.js';
import { approvalStartedHandler } from '../functions/approval-started/handler.js';
import { scanFinishedHandler } from '../functions/scan-finished/handler.js';
import { SEVERITIES, type Severity } from '../shared/findings/finding.js';
import { lambdaContext, type MiddlewareClient, SimClock, simulationRuntime } from '../simulator/run.js';
import { type LoadedScenario, ScenarioSchema } from '../simulator/scenario.js';
import { actionEvent, type CallRecord, scanEvent, World } from '../simulator/world.js';
import { DIGEST, makeFindings, rng } from './generate.js';

type Json = Record<string, unknown>;
type Invoke = (event: unknown, context: Context) => Promise<unknown>;

const POLICY_FILE = fileURLToPath(new URL('./critical-path.policy.yaml', import.meta.url));
const REPOSITORY = 'payments/api';
const TAGS = ['1.4.2'];
const START = '2026-11-25T09:00:00Z';
const KEY = {
  pipeline: 'payments-api',
  stage: 'Deploy',
  action: 'TollgateApproval',
  executionId: '0000000b-5c4d-4e6f-8a9b-0c1d2e3f4a5b',
};
/** `ListFindingsMaxResults`, the page size the Inspector adapter asks for. */
const FINDINGS_PAGE = 100;

/**
 * The severities of a container image as Inspector typically rates one (a Debian-based service image):
 * mostly MEDIUM and LOW, a sixth HIGH, a few CRITICAL, some not yet rated. Fractions of the findings.
 */
export const SEVERITY_MIX: Readonly<Record<Severity, number>> = {
  CRITICAL: 0.02,
  HIGH: 0.16,
  MEDIUM: 0.41,
  LOW: 0.29,
  INFORMATIONAL: 0.05,
  UNTRIAGED: 0.07,
};

/** Inspector's score bands per severity (CVSS 3.1); INFORMATIONAL and UNTRIAGED findings carry no score. */
const SCORE_BANDS: Partial<Record<Severity, readonly [number, number]>> = {
  CRITICAL: [9, 10],
  HIGH: [7, 8.9],
  MEDIUM: [4, 6.9],
  LOW: [0.1, 3.9],
};
const VECTOR = 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H';

export interface CriticalPathOptions {
  /** Findings of the image (1,000). */
  readonly findings?: number;
  /** Added to every AWS call (20 ms). */
  readonly latencyMs?: number;
  /** Measured runs, each on a fresh table and gate; the figures are their medians (5). */
  readonly runs?: number;
  /** Unmeasured runs first, to let the JIT settle (1). */
  readonly warmups?: number;
  readonly seed?: number;
}

/** One call of the chain that ends in PutApprovalResult; times in ms since the event was delivered. */
export interface ChainLink {
  readonly call: string;
  readonly depth: number;
  readonly startMs: number;
  readonly endMs: number;
}

export interface CriticalPathRun {
  /** Depth of PutApprovalResult among the calls made after the event. */
  readonly calls: number;
  /** Event delivered → PutApprovalResult answered. */
  readonly ms: number;
  /** Event delivered → the handler returned. */
  readonly handlerMs: number;
  /** Every AWS call the handler made, in sequence or not. */
  readonly callsMade: number;
  /** The deepest call of the whole invocation (what comes after PutApprovalResult included). */
  readonly handlerDepth: number;
  readonly outcome: string;
  /** The calls in sequence that end in PutApprovalResult, first to last. */
  readonly chain: readonly ChainLink[];
  /** The chain that ends in GetPipelineState (the token's read), which runs beside the findings read. */
  readonly tokenChain: readonly ChainLink[];
}

export interface CriticalPathResult {
  readonly findings: number;
  readonly latencyMs: number;
  readonly runs: number;
  /** ACTIVE and suppressed findings of the image, by severity. */
  readonly severities: Readonly<Record<Severity, number>>;
  /** What the scan event reports (ACTIVE findings, as Inspector counts them). */
  readonly eventCounts: Readonly<Record<string, number>>;
  /** ListFindings pages in all, and in the longest (per-severity) chain. */
  readonly findingsPages: number;
  readonly longestFindingsChain: number;
  readonly floor: number;
  /** Medians over the runs. */
  readonly calls: number;
  readonly ms: number;
  readonly handlerMs: number;
  readonly met: boolean;
  readonly perRun: readonly CriticalPathRun[];
  /** The run whose chains are shown: see chainRunIndex. */
  readonly chainRun: { readonly index: number; readonly calls: number; readonly ms: number };
  /** That run's chains. */
  readonly chain: readonly ChainLink[];
  readonly tokenChain: readonly ChainLink[];
}

/**
 * The run to show under the medians: of the runs of the median depth, the one whose ms is closest to the
 * median ms (the first of equals), so the chain shown ends near the headline figure. The first run of the
 * median depth could end far from it (264.5 ms under a median of 217). With no run of the median depth (an
 * even count of runs between two depths), the closest in ms of all. -1 when there is no run.
 */
export function chainRunIndex(
  perRun: readonly Pick<CriticalPathRun, 'calls' | 'ms'>[],
  calls: number,
  ms: number,
): number {
  const ofDepth = perRun.some((r) => r.calls === calls);
  let best = -1;
  perRun.forEach((r, i) => {
    if (ofDepth && r.calls !== calls) return;
    if (best < 0 || Math.abs(r.ms - ms) < Math.abs(perRun[best]!.ms - ms)) best = i;
  });
  return best;
}

/** Measures the scan-finished → PutApprovalResult path; see the file's comment. */
export async function measureCriticalPath(options: CriticalPathOptions = {}): Promise<CriticalPathResult> {
  const count = options.findings ?? 1000;
  const latencyMs = options.latencyMs ?? 20;
  const runs = options.runs ?? 5;
  const warmups = options.warmups ?? 1;
  const { findings, severities } = benchFindings(count, options.seed ?? 11);
  const counts = scanEventCounts(findings);
  const chains = SEVERITIES.map((s) => Math.max(1, Math.ceil(severities[s] / FINDINGS_PAGE)));
  const longestFindingsChain = Math.max(...chains);
  const floor = longestFindingsChain + 2;

  const perRun: CriticalPathRun[] = [];
  for (let i = 0; i < warmups + runs; i++) {
    const run = await once(findings, counts, latencyMs);
    if (i >= warmups) perRun.push(run);
  }
  const calls = median(perRun.map((r) => r.calls));
  const ms = median(perRun.map((r) => r.ms));
  const shown = chainRunIndex(perRun, calls, ms);
  const typical = perRun[shown];
  return {
    findings: count,
    latencyMs,
    runs,
    severities,
    eventCounts: counts,
    findingsPages: chains.reduce((a, b) => a + b, 0),
    longestFindingsChain,
    floor,
    calls,
    ms,
    handlerMs: median(perRun.map((r) => r.handlerMs)),
    met: calls <= floor,
    perRun,
    chainRun: { index: shown, calls: typical?.calls ?? Number.NaN, ms: typical?.ms ?? Number.NaN },
    chain: typical?.chain ?? [],
    tokenChain: typical?.tokenChain ?? [],
  };
}

/** The chain as lines for a terminal. */
export function formatChain(chain: readonly ChainLink[]): string[] {
  return chain.map(
    (c) =>
      `  ${String(c.depth).padStart(2)}. ${c.call.padEnd(44)} ${c.startMs.toFixed(1).padStart(7)} → ${c.endMs.toFixed(1).padStart(7)} ms`,
  );
}

// ── one run ─────────────────────────────────────────────────────────────────────────────────────────

async function once(findings: readonly Json[], counts: Record<string, number>, latencyMs: number) {
  const dynamo = await startLocalDynamo();
  try {
    const tableName = 'tollgate-critical-path';
    await ensureTable(dynamo.client, tableName);
    const loaded = scenario(findings, counts);
    const clock = new SimClock(Date.parse(START));
    // The world's call times count from its construction: this is that instant, to microseconds.
    const epoch = performance.now();
    const world = new TracedWorld(loaded, clock, { latencyMs });
    const runtime = simulationRuntime(loaded, world, clock, { doc: dynamo.client, tableName });
    labelStoreCalls(dynamo.client, world);
    const started = approvalStartedHandler(runtime) as unknown as Invoke;
    const scanFinished = scanFinishedHandler(runtime) as unknown as Invoke;
    const store = new DynamoStore(dynamo.client, tableName);

    // The approval starts while the scan is still running: the gate is created and waits.
    const slot = world.startApproval(KEY);
    await started(
      actionEvent(world, slot, 'STARTED'),
      lambdaContext('approval-started', loaded.scenario.region, loaded.scenario.account),
    );
    const waiting = await store.getGate(KEY);
    if (waiting?.state !== 'WAITING') throw new Error(`bench: the gate is ${waiting?.state}, not WAITING`);

    // 90 seconds later the scan completes, and its event is delivered.
    clock.set(Date.parse(START) + 90_000);
    world.setScan(DIGEST, REPOSITORY, 'INITIAL_SCAN_COMPLETE');
    const event = scanEvent(
      world,
      'inspector',
      { digest: DIGEST, repository: REPOSITORY, status: 'INITIAL_SCAN_COMPLETE', counts },
      TAGS,
    );
    const before = world.calls.length;
    const t0 = performance.now();
    await scanFinished(
      event,
      lambdaContext('scan-finished', loaded.scenario.region, loaded.scenario.account),
    );
    const handlerMs = performance.now() - t0;

    const calls = world.calls.slice(before);
    const labels = world.labels.slice(before);
    const at = t0 - epoch;
    const depths = relativeDepths(calls);
    const put = calls.findIndex((c) => c.operation === 'PutApprovalResult');
    if (put < 0 || calls.filter((c) => c.operation === 'PutApprovalResult').length !== 1) {
      throw new Error('bench: the scan-finished handler did not send exactly one PutApprovalResult');
    }
    if (calls[put]!.failed) throw new Error('bench: PutApprovalResult failed');
    const state = calls.findIndex((c) => c.operation === 'GetPipelineState');
    const link = (i: number): ChainLink => ({
      call: labels[i] ?? calls[i]!.operation,
      depth: depths[i]!,
      startMs: calls[i]!.start - at,
      endMs: calls[i]!.end - at,
    });
    const acted = await store.getGate(KEY);
    if (acted?.state !== 'ACTED' || acted.outcome === undefined || acted.outcome === 'ESCALATE') {
      throw new Error(`bench: the gate ended ${acted?.state} ${acted?.outcome}, not ACTED with a result`);
    }
    return {
      calls: depths[put]!,
      ms: calls[put]!.end - at,
      handlerMs,
      callsMade: calls.length,
      handlerDepth: Math.max(...depths),
      outcome: acted.outcome,
      chain: chainTo(put, calls, depths).map(link),
      tokenChain: state < 0 ? [] : chainTo(state, calls, depths).map(link),
    } satisfies CriticalPathRun;
  } finally {
    await dynamo.close();
  }
}

/** Depth of each call among these calls only: 1 + the deepest of them that had ended when it started. */
export function relativeDepths(calls: readonly CallRecord[]): number[] {
  const depths: number[] = [];
  calls.forEach((call, i) => {
    let deepest = 0;
    for (let j = 0; j < i; j++) {
      const other = calls[j]!;
      if (other.end > 0 && other.end <= call.start) deepest = Math.max(deepest, depths[j]!);
    }
    depths.push(deepest + 1);
  });
  return depths;
}

/** Walks back from a call through the call that held it back (one depth less, ended last before it). */
function chainTo(last: number, calls: readonly CallRecord[], depths: readonly number[]): number[] {
  const chain = [last];
  let current = last;
  while (depths[current]! > 1) {
    const start = calls[current]!.start;
    let blocker = -1;
    for (let j = 0; j < current; j++) {
      const c = calls[j]!;
      if (depths[j] !== depths[current]! - 1 || c.end <= 0 || c.end > start) continue;
      if (blocker < 0 || c.end > calls[blocker]!.end) blocker = j;
    }
    if (blocker < 0) break;
    chain.unshift(blocker);
    current = blocker;
  }
  return chain;
}

// ── the world, with a label per call ───────────────────────────────────────────────────────────────

/** The simulator's world, noting what each call asked for (which severity and page, which item). */
class TracedWorld extends World {
  /** By index in `calls`. */
  readonly labels: string[] = [];
  /** Set by the store's labelling middleware just before the call reaches `around`. */
  pendingStoreLabel: string | undefined;

  override answer(command: string, input: Json): Promise<Json> {
    const index = this.calls.length;
    const answered = super.answer(command, input);
    this.labels[index] = describeCall(command.replace(/Command$/, ''), input);
    return answered;
  }

  override around<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const index = this.calls.length;
    const label = this.pendingStoreLabel;
    this.pendingStoreLabel = undefined;
    const done = super.around(operation, work);
    this.labels[index] = `DynamoDB ${label ?? operation}`;
    return done;
  }
}

/** Names each store call by what it reads or writes, ahead of the simulator's counting middleware. */
function labelStoreCalls(client: unknown, world: TracedWorld): void {
  (client as unknown as MiddlewareClient).middlewareStack.add(
    (next, context) => (args) => {
      world.pendingStoreLabel = describeStoreCall(
        (context.commandName ?? 'DynamoDB').replace(/Command$/, ''),
        (args.input ?? {}) as Json,
      );
      return next(args);
    },
    { step: 'initialize', name: 'tollgateBenchLabels', priority: 'high' },
  );
}

function describeCall(operation: string, input: Json): string {
  if (operation !== 'ListFindings') return operation;
  const severity = criterion(input, 'severity') ?? 'all';
  const page =
    typeof input.nextToken === 'string' ? Math.floor(Number(input.nextToken) / FINDINGS_PAGE) + 1 : 1;
  return `ListFindings ${severity} p${page}`;
}

function describeStoreCall(operation: string, input: Json): string {
  // The counting middleware sees the low-level command, its input marshalled (`{ pk: { S: 'GATE#…' } }`).
  const text = (v: unknown): string =>
    typeof v === 'string'
      ? v
      : typeof v === 'object' && v !== null && typeof (v as Json).S === 'string'
        ? String((v as Json).S)
        : '';
  // An index item's kind, so that a hashed key (VULN-SHA256#…) is counted with its kind, not apart.
  const item = (v: unknown): string => {
    if (typeof v !== 'object' || v === null) return '';
    const pk = text((v as Json).pk);
    return indexKind(pk) ?? pk.split('#')[0] ?? '';
  };
  switch (operation) {
    case 'PutItem':
    case 'Put':
      return `PutItem ${item(input.Item)}`;
    case 'GetItem':
    case 'Get':
      return `GetItem ${item(input.Key)}`;
    case 'Query':
      return `Query ${text(input.IndexName) || 'table'}`;
    case 'TransactWriteItems':
    case 'TransactWrite': {
      // The decision with its gate, or (after PutApprovalResult) a chunk of the audit index's VULN# items.
      const kinds = new Set(
        ((input.TransactItems as Json[] | undefined) ?? []).map((t) => {
          const action = (t.Put ?? t.Update ?? t.ConditionCheck ?? t.Delete) as Json | undefined;
          return item(action?.Item ?? action?.Key);
        }),
      );
      return kinds.size === 1 && kinds.has('VULN')
        ? `TransactWriteItems VULN x${(input.TransactItems as Json[]).length}`
        : 'TransactWriteItems DECISION+GATE';
    }
    default:
      return operation;
  }
}

function criterion(input: Json, field: string): string | undefined {
  const criteria = input.filterCriteria;
  if (typeof criteria !== 'object' || criteria === null) return undefined;
  const list = (criteria as Json)[field];
  const first: unknown = Array.isArray(list) ? list[0] : undefined;
  return typeof first === 'object' && first !== null ? String((first as Json).value) : undefined;
}

// ── inputs ──────────────────────────────────────────────────────────────────────────────────────────

/** makeFindings' findings, rated by SEVERITY_MIX: `severity` (which the world filters on), vendor severity, scores. */
export function benchFindings(
  count: number,
  seed: number,
): { findings: Json[]; severities: Record<Severity, number> } {
  const severities = quotas(count);
  const r = rng(seed);
  const ratings = SEVERITIES.flatMap((s) => Array.from({ length: severities[s] }, () => s));
  for (let i = ratings.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [ratings[i], ratings[j]] = [ratings[j]!, ratings[i]!];
  }
  const findings = makeFindings(count, seed).map((f, i) => rate(f, ratings[i]!, r));
  return { findings, severities };
}

/** Whole findings per severity, summing to `count` (largest remainders). */
function quotas(count: number): Record<Severity, number> {
  const exact = SEVERITIES.map((s) => count * SEVERITY_MIX[s]);
  const whole = exact.map(Math.floor);
  let left = count - whole.reduce((a, b) => a + b, 0);
  const byRemainder = exact.map((x, i) => ({ i, rest: x - Math.floor(x) })).sort((a, b) => b.rest - a.rest);
  for (const { i } of byRemainder) {
    if (left-- <= 0) break;
    whole[i]!++;
  }
  return Object.fromEntries(SEVERITIES.map((s, i) => [s, whole[i]!])) as Record<Severity, number>;
}

function rate(finding: Json, severity: Severity, r: () => number): Json {
  const { inspectorScore: _score, inspectorScoreDetails: _details, ...rest } = finding;
  const vulnerability = rest.packageVulnerabilityDetails as Json;
  const band = SCORE_BANDS[severity];
  const score = band ? Math.round((band[0] + r() * (band[1] - band[0])) * 10) / 10 : undefined;
  return {
    ...rest,
    severity,
    packageVulnerabilityDetails: {
      ...vulnerability,
      vendorSeverity: severity.toLowerCase(),
      cvss:
        score === undefined
          ? []
          : [{ baseScore: score, scoringVector: VECTOR, source: 'NVD', version: '3.1' }],
    },
    ...(score === undefined
      ? {}
      : {
          inspectorScore: score,
          inspectorScoreDetails: {
            adjustedCvss: {
              adjustments: [],
              cvssSource: 'NVD',
              score,
              scoreSource: 'NVD',
              scoringVector: VECTOR,
              version: '3.1',
            },
          },
        }),
  };
}

/** The `finding-severity-counts` of a real Inspector2 Scan event: ACTIVE findings, CRITICAL/HIGH/MEDIUM and TOTAL. */
function scanEventCounts(findings: readonly Json[]): Record<string, number> {
  const counts: Record<string, number> = { CRITICAL: 0, HIGH: 0, MEDIUM: 0, TOTAL: 0 };
  for (const f of findings) {
    if (f.status !== 'ACTIVE') continue;
    const severity = String(f.severity);
    if (severity in counts) counts[severity]!++;
    counts.TOTAL!++;
  }
  return counts;
}

function scenario(findings: readonly Json[], counts: Record<string, number>): LoadedScenario {
  const parsed = ScenarioSchema.parse({
    name: 'critical path (npm run bench)',
    policy: 'critical-path.policy.yaml',
    world: {
      approvals: [
        {
          ...KEY,
          customData: `123456789012.dkr.ecr.eu-west-1.amazonaws.com/${REPOSITORY}@${DIGEST}`,
        },
      ],
      images: [{ repository: REPOSITORY, digest: DIGEST, tags: TAGS }],
      findings: { [DIGEST]: { findings } },
      // Inspector covers the image and is still scanning it when the approval starts.
      scans: [{ digest: DIGEST, repository: REPOSITORY, status: 'PENDING_INITIAL_SCAN' }],
    },
    // What the bench does, by hand (it times the second step).
    steps: [
      { at: '0s', approvalStarted: KEY },
      {
        at: '90s',
        scan: { digest: DIGEST, repository: REPOSITORY, status: 'INITIAL_SCAN_COMPLETE', counts },
      },
    ],
  });
  return {
    scenario: parsed,
    file: fileURLToPath(new URL('./critical-path.scenario.json', import.meta.url)),
    policyFile: POLICY_FILE,
    findingsFiles: new Map(),
  };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
