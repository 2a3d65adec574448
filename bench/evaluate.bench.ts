/**
 * `npm run bench`: the cost of deciding, against the cost of reading the input it decides on.
 *
 * evaluateMs: from the parsed JSON value to the decision record (normalisation, de-duplication,
 * exceptions, rules, summary), 100,000 findings, 20 rules, 1,000 exceptions. parseMs: JSON.parse of the
 * same findings text. Both are medians of interleaved runs in one process, so the machine's noise falls on
 * both alike; the figures that matter are the ratios.
 *
 * Then the gate's critical path (critical-path.ts): from the scan-finished event to PutApprovalResult for an
 * image with 1,000 findings, every AWS call given 20 ms: criticalPathCalls (the calls made in sequence),
 * criticalPathFloor (the longest chain of findings pages + 2), criticalPathMs (to PutApprovalResult) and
 * criticalPathHandlerMs (the whole handler), medians of BENCH_CRITICAL_PATH_RUNS runs. It is loaded and run
 * after the evaluation figures are taken, so it cannot change them.
 *
 * Then the functions' bundles (bundles.ts: the gate's four and the audit archive's), built with the stack's
 * esbuild settings (infra/bundling.ts):
 * `bundles.<function>.bytes` (index.mjs; the table adds it gzipped), `.importMs`, the median of
 * BENCH_IMPORT_RUNS (5) fresh `node` processes each importing the bundle, which builds the function's AWS
 * runtime as Lambda's Init does, and `.sdkBytes`, a bundle making the same AWS SDK calls and nothing else
 * (sdk-floor.ts); `sdkSplits`, the same for parts of approval-started's calls that a design splitting the
 * work would still make in one function (the table alone; deciding from ECR or from Inspector without
 * publishing).
 *
 * Then the audit trail (audit.ts): BENCH_AUDIT_RECORDS (100,000) records over 50 pipelines in dynalite;
 * `list --pipeline P --since 30d` and `list --vulnerability CVE-…` through DynamoAuditStore.list against a
 * full Scan of the same table: `auditReadRatio` (items the Queries read, from ScannedCount / records
 * returned; target ≤ 1.1; for --vulnerability the VULN# index items only), `auditItemsReadPerRecord` (every
 * item read, the records read by key included, per record returned) and `auditMsVsScan` (median query time / Scan time; target ≤ 0.05), the details
 * under `audit`. The last line is one JSON object.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { evaluate, parsePolicy, readFindingsDocument } from '../shared/index.js';
import { DIGEST, makeFindings, makePolicy } from './generate.js';

// The gate knows the image it judges (the approval names it) and asks the API for that digest's findings.
const IMAGE = { repository: 'payments/api', digest: DIGEST, tags: ['1.4.2'] };

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const N = 100_000;
const now = new Date('2026-11-25T12:00:00Z');
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

const policy = parsePolicy(makePolicy(), 'bench-policy.json');
if (policy.policy.rules.length !== 20 || policy.policy.exceptions.length !== 1000)
  throw new Error('bench policy size');

// Two halves of 100,000, each through JSON text, so both sizes judge objects as JSON.parse builds them.
const textA = JSON.stringify({ findings: makeFindings(N, 1, 0) });
const textB = JSON.stringify({ findings: makeFindings(N, 2, N) });
const valueA = JSON.parse(textA) as { findings: unknown[] };
const valueB = JSON.parse(textB) as { findings: unknown[] };
const value200 = { findings: [...valueA.findings, ...valueB.findings] };

function decide(value: unknown) {
  const doc = readFindingsDocument(value);
  return evaluate(policy, {
    findings: doc.findings,
    now,
    pipeline: 'payments-prod',
    image: IMAGE,
  });
}

/**
 * Each timed section starts on a settled heap: a full GC, then a pause in which V8's concurrent sweeper
 * finishes freeing what the GC found dead. Without the pause the sweeping is charged to whatever runs next:
 * here, the evaluation right after a JSON.parse whose 300 MB result was thrown away (which a real run never
 * does: its parsed value is the evaluation's input). Measured in one run: evaluateMs 349 → 162 ms with the
 * pause, parseMs 2345 → 2196 ms. The same for both, so neither is charged the other's garbage.
 */
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 500);

async function time<T>(fn: () => T, check?: (result: T) => void): Promise<number> {
  gc();
  await sleep(SETTLE_MS);
  const t0 = performance.now();
  const result = fn();
  const ms = performance.now() - t0;
  check?.(result);
  return ms;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

// Warm-up: let the JIT settle on both paths before measuring.
decide(valueA);
decide(valueB);
JSON.parse(textA);

const parse: number[] = [];
const eval100: number[] = [];
const eval200: number[] = [];
// The two halves of 100,000 do not cost quite the same (where the heap placed them), so "100,000" is timed
// on both, alternately, and its median taken over both.
// Each timed decision is kept and compared with the first of its input: a change that made evaluate bail out
// early (and decide otherwise) would otherwise show as a faster evaluation.
const decided = new Map<unknown, string>();
const same = (value: unknown) => (result: ReturnType<typeof decide>) => {
  const text = JSON.stringify(result.record);
  const first = decided.get(value) ?? text;
  decided.set(value, first);
  if (text !== first) throw new Error('bench: one input was decided two ways across the timed runs');
};
for (let i = 0; i < RUNS; i++) {
  parse.push(await time(() => JSON.parse(i % 2 === 0 ? textA : textB)));
  const half = i % 2 === 0 ? valueA : valueB;
  eval100.push(await time(() => decide(half), same(half)));
  eval200.push(await time(() => decide(value200), same(value200)));
}

const record = decide(valueA).record;
// The decision the generated findings and policy give (bench/generate.ts): pinned, so that a timing of
// another decision is never printed as this one's.
const pinned = {
  outcome: record.outcome,
  violations: record.violations.length,
  applied: record.exceptions.applied.length,
  counted: Object.values(record.counts).reduce((a, b) => a + b, 0),
};
const EXPECTED = { outcome: 'REJECT', violations: 13, applied: 723, counted: 95_018 };
if (JSON.stringify(pinned) !== JSON.stringify(EXPECTED)) {
  throw new Error(
    `bench: decided ${JSON.stringify(pinned)}, not ${JSON.stringify(EXPECTED)}: the timings are not of this decision`,
  );
}
const parseMs = median(parse);
const evaluateMs = median(eval100);
const evaluate200Ms = median(eval200);
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

console.log(
  `findings text          ${(textA.length / 1e6).toFixed(0)} MB for ${N} findings (${Math.round(textA.length / N)} bytes each)`,
);
console.log(`JSON.parse             ${round(parseMs)} ms (median of ${RUNS})`);
console.log(`evaluate 100,000       ${round(evaluateMs)} ms`);
console.log(`evaluate 200,000       ${round(evaluate200Ms)} ms`);
console.log(
  `decision               ${record.outcome}: ${record.violations.length} violations, ${record.exceptions.applied.length} exceptions applied`,
);

// Loaded only now: the SDK clients, dynalite and the simulator are not in the process while evaluate is timed.
// The simulated calls never reach AWS: the SDK's notice about future Node versions is only noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { formatChain, measureCriticalPath } = await import('./critical-path.js');
const path = await measureCriticalPath({
  findings: 1000,
  latencyMs: 20,
  runs: Number(process.env.BENCH_CRITICAL_PATH_RUNS ?? 5),
});
const sev = path.severities;
console.log(
  `critical path          ${path.findings} findings (CRITICAL ${sev.CRITICAL}, HIGH ${sev.HIGH}, MEDIUM ${sev.MEDIUM}, LOW ${sev.LOW}, INFORMATIONAL ${sev.INFORMATIONAL}, UNTRIAGED ${sev.UNTRIAGED}), ${path.latencyMs} ms a call`,
);
console.log(
  `                       ${path.findingsPages} findings pages, longest chain ${path.longestFindingsChain}: floor ${path.floor} calls`,
);
console.log(
  `                       ${path.calls} calls in sequence to PutApprovalResult (${path.perRun.map((r) => r.calls).join(', ')}): floor ${path.met ? 'met' : 'NOT met'}`,
);
console.log(
  `                       ${round(path.ms)} ms to PutApprovalResult, ${round(path.handlerMs)} ms the handler (medians of ${path.runs})`,
);
console.log(
  `chain to PutApprovalResult (run ${path.chainRun.index + 1} of ${path.runs}: of the runs of median depth, the one closest to the median ms, ${round(path.chainRun.ms)} ms; ms since the event):`,
);
for (const line of formatChain(path.chain)) console.log(line);
console.log('beside the findings read, the chain to the token (GetPipelineState):');
for (const line of formatChain(path.tokenChain)) console.log(line);

// The bundles last: building them loads esbuild and the CDK; the imports run in fresh processes.
const { measureBundles } = await import('./bundles.js');
const bundles = await measureBundles({ runs: Number(process.env.BENCH_IMPORT_RUNS ?? 5) });
console.log('function bundles       bytes (gzip -9)   SDK calls alone   import ms (median; runs)');
for (const b of bundles) {
  console.log(
    `  ${b.name.padEnd(20)} ${String(b.bytes).padStart(7)} (${String(b.gzipBytes).padStart(6)})   ${String(b.sdkBytes).padStart(15)}   ${round(b.importMs).toFixed(1).padStart(7)} (${b.importRuns.map((ms) => round(ms, 0)).join(', ')})`,
  );
}
const splits = bundles.find((b) => b.sdkSplits !== undefined);
if (!splits?.sdkSplits) throw new Error('bench: no bundle measured the SDK splits');
console.log(
  `SDK calls alone, split  ${Object.entries(splits.sdkSplits)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}  (parts of ${splits.name}'s calls: bench/sdk-floor.ts SDK_SPLITS)`,
);

// The audit trail last (audit.ts): its dynalite runs in a process of its own, after the bundles' imports
// are timed, so it cannot slow them. Filling 100,000 records is most of the bench's time.
const { measureAudit } = await import('./audit.js');
const auditRecords = Number(process.env.BENCH_AUDIT_RECORDS ?? 100_000);
console.log(`audit trail            filling ${auditRecords} records over 50 pipelines in dynalite …`);
const audit = await measureAudit({
  records: auditRecords,
  pipelines: 50,
  runs: Number(process.env.BENCH_AUDIT_RUNS ?? 5),
  log: (line) => console.log(line),
});
console.log(
  `                       ${audit.items} items (${audit.vulnerabilityItems} VULN# index items) written in ${round(audit.fillMs / 1000)} s`,
);
console.log(
  'audit query                              returned  read (Query)  by key  ms (median)   Scan read  Scan ms  ms/Scan',
);
for (const q of [audit.pipelineSince, audit.vulnerability]) {
  console.log(
    `  ${q.filter.padEnd(38)} ${String(q.returned).padStart(8)}  ${String(q.scanned).padStart(12)}  ${String(q.fetched).padStart(6)}  ${round(q.ms).toFixed(1).padStart(11)}  ${String(q.scanScanned).padStart(10)}  ${round(q.scanMs).toFixed(0).padStart(7)}  ${round(q.msVsScan, 4).toFixed(4).padStart(7)}`,
  );
}
console.log(
  `                       read ratio (Query items read / records returned; for --vulnerability its VULN# index items only) ${round(audit.pipelineSince.readRatio, 3)} and ${round(audit.vulnerability.readRatio, 3)} (target ≤ 1.1)`,
);
console.log(
  `                       items read per record returned (Query items + records read by key + pending markers and their records) ${round(audit.pipelineSince.itemsReadPerRecord, 3)} and ${round(audit.vulnerability.itemsReadPerRecord, 3)}; audit bench ${round(audit.totalMs / 1000)} s in all`,
);

const result = {
  findings: N,
  rules: policy.policy.rules.length,
  exceptions: policy.policy.exceptions.length,
  evaluateMs: round(evaluateMs),
  parseMs: round(parseMs),
  ratio: round(evaluateMs / parseMs, 3),
  scaling: round(evaluate200Ms / evaluateMs, 2),
  criticalPathCalls: path.calls,
  criticalPathMs: round(path.ms),
  criticalPathFloor: path.floor,
  criticalPathMet: path.met,
  criticalPathHandlerMs: round(path.handlerMs),
  criticalPathFindingsChain: path.longestFindingsChain,
  bundles: Object.fromEntries(
    bundles.map((b) => [b.name, { bytes: b.bytes, importMs: round(b.importMs), sdkBytes: b.sdkBytes }]),
  ),
  sdkSplits: splits.sdkSplits,
  auditReadRatio: {
    pipelineSince: round(audit.pipelineSince.readRatio, 3),
    vulnerability: round(audit.vulnerability.readRatio, 3),
  },
  auditItemsReadPerRecord: {
    pipelineSince: round(audit.pipelineSince.itemsReadPerRecord, 3),
    vulnerability: round(audit.vulnerability.itemsReadPerRecord, 3),
  },
  auditMsVsScan: {
    pipelineSince: round(audit.pipelineSince.msVsScan, 4),
    vulnerability: round(audit.vulnerability.msVsScan, 4),
  },
  audit: {
    records: audit.records,
    pipelines: audit.pipelines,
    items: audit.items,
    fillMs: round(audit.fillMs, 0),
    totalMs: round(audit.totalMs, 0),
    pipelineSince: {
      returned: audit.pipelineSince.returned,
      scanned: audit.pipelineSince.scanned,
      ms: round(audit.pipelineSince.ms),
      scanScanned: audit.pipelineSince.scanScanned,
      scanMs: round(audit.pipelineSince.scanMs),
    },
    vulnerability: {
      returned: audit.vulnerability.returned,
      scanned: audit.vulnerability.scanned,
      fetched: audit.vulnerability.fetched,
      ms: round(audit.vulnerability.ms),
      scanScanned: audit.vulnerability.scanScanned,
      scanMs: round(audit.vulnerability.scanMs),
    },
  },
};
console.log(JSON.stringify(result));
