import { writeFileSync } from 'node:fs';
import { serviceOf } from './faults.js';
import { RSS_LIMIT_MB } from './oversized.js';
import { failed, PARTS, type Part, runSuite, type SuiteReport } from './suite.js';

/*
 * npm run reliability [-- --quick] [--seed N] [--parts faults,orderings,events,policies,findings,oversized]
 *                     [--report FILE]
 *
 * Prints a table (markdown) and, as its last line, one JSON object:
 * {"faultsInjected","scenarios","fuzzCases","invariantViolations","approvalsFromIncompleteData","lostGates",
 *  "duplicateActions"}. Exit status 1 when any of the last four is not 0 (any violation at all), 2 on a usage
 * error. Progress goes to stderr.
 */

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';

interface Args {
  quick: boolean;
  seed: number;
  parts: Part[];
  report: string | undefined;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { quick: false, seed: 20261125, parts: [...PARTS], report: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') args.quick = true;
    else if (a === '--seed') args.seed = Number(value());
    else if (a === '--parts') args.parts = value().split(',') as Part[];
    else if (a === '--report') args.report = value();
    else throw new Error(`unknown option ${a}`);
  }
  if (!Number.isInteger(args.seed)) throw new Error('--seed takes an integer');
  const unknown = args.parts.filter((p) => !PARTS.includes(p));
  if (unknown.length > 0) throw new Error(`unknown part(s) ${unknown.join(', ')}: ${PARTS.join(', ')}`);
  return args;
}

const n = (x: number) => x.toLocaleString('en-US');
const s = (x: number | undefined) => (x === undefined ? '–' : `${x.toFixed(1)} s`);

export function renderTable(r: SuiteReport): string {
  const lines: string[] = [];
  const count = (kinds: readonly string[]) => r.violations.filter((v) => kinds.includes(v.kind)).length;
  const row = (cells: readonly string[]) => lines.push(`| ${cells.join(' | ')} |`);
  const total = Object.values(r.seconds).reduce((a, b) => a + b, 0);
  lines.push(`Tollgate reliability suite · ${r.mode} · seed ${r.seed} · ${s(total)}`, '');
  row(['part', 'what ran', 'violations', 'time']);
  row(['---', '---', '---:', '---:']);

  if (r.faults) {
    const f = r.faults;
    const hit = f.runs.filter((x) => x.injected > 0).length;
    // What the final redrives delivered again (redrive()'s count), not every dead-lettered delivery.
    const redriven = f.runs.reduce((a, x) => a + x.redriven, 0);
    const repeats = f.runs.reduce((a, x) => a + x.unrecordedRepeats, 0);
    const lost = f.runs.reduce((a, x) => a + x.answerLostRepeats, 0);
    const maxSweeps = Math.max(0, ...f.runs.map((x) => x.sweeps));
    row([
      'fault injection',
      `${n(f.runs.length)} replays of ${f.scenarios} scenarios, one fault each (${n(hit)} hit); ${n(redriven)} dead-lettered events redriven; quiet within ${maxSweeps} sweeps; ${repeats} escalation(s) repeated because the first went unrecorded (${repeats - lost} a store write failed, ${lost} SNS Publish's answer was lost so it was sent again)`,
      String(f.cleanViolations.length + f.runs.reduce((a, x) => a + x.violations.length, 0)),
      s(r.seconds.faults),
    ]);
  }
  if (r.orderings) {
    const o = r.orderings;
    const sum = (k: 'dropped' | 'duplicated' | 'concurrent' | 'delayed' | 'late') =>
      o.runs.reduce((a, x) => a + x[k], 0);
    row([
      'duplicates and order',
      `${n(o.runs.length)} fast-check plans over ${o.scenarios} scenarios: ${n(sum('dropped'))} events dropped, ${n(sum('duplicated'))} duplicated (${n(sum('concurrent'))} concurrently), ${n(sum('delayed'))} overtaken (delivered after an event caused later), ${n(sum('late'))} late copies (an event again after later ones or after the run's end)`,
      String(o.cleanViolations.length + o.runs.reduce((a, x) => a + x.violations.length, 0)),
      s(r.seconds.orderings),
    ]);
    const lags = [...new Set(o.lagged.map((x) => x.lagMs / 1000))].sort((a, b) => a - b);
    row([
      'read lag',
      `${n(o.lagged.length)} replays of ${new Set(o.lagged.map((x) => x.scenario)).size} scenarios in order with CodePipeline's read lag after each approval starts (${lags.map((x) => `${x} s`).join(', ') || 'none'}): ${n(o.lagged.reduce((a, x) => a + x.laggedReads, 0))} reads without the new run (state of the previous execution or no token, run not listed); the clean run's ending`,
      String(o.lagged.reduce((a, x) => a + x.violations.length, 0)),
      '(in the above)',
    ]);
  }
  const h = r.hostile ?? {};
  if (h.events) {
    row([
      'hostile events',
      `${n(h.events.cases)} events × 4 handlers, each in a world of its own: ${n(h.events.ignored)} ignored, ${n(h.events.handled)} handled, ${n(h.events.deadLettered)} dead-lettered (malformed events of the function's own kind); ${n(h.events.mustIgnore)} forged (source, account, region, detail-type); ${n(h.events.decided)} cases reached a decision, ${n(h.events.acted)} an action`,
      String(r.byPart.events ?? 0),
      s(r.seconds.events),
    ]);
  }
  if (h.policies) {
    row([
      'hostile policies',
      `${n(h.policies.cases)} mutated policies: ${n(h.policies.accepted)} valid (compiled and evaluated), ${n(h.policies.inputErrors)} InputError`,
      String(r.byPart.policies ?? 0),
      s(r.seconds.policies),
    ]);
  }
  if (h.findings) {
    row([
      'hostile findings files',
      `${n(h.findings.cases)} mutated files through tollgate evaluate: ${n(h.findings.accepted)} decided, ${n(h.findings.inputErrors)} InputError; ${n(h.findings.offencesKept ?? 0)} kept an offending finding untouched`,
      String(r.byPart.findings ?? 0),
      s(r.seconds.findings),
    ]);
  }
  if (r.oversized) {
    row([
      'oversized inputs',
      `${r.oversized.cases.map((c) => `${c.name} ${c.outcome === 'input-error' ? 'refused' : c.outcome} in ${c.ms} ms, ${c.maxRssMb} MB`).join('; ')} (limit ${RSS_LIMIT_MB} MB RSS)`,
      String(r.oversized.violations.length),
      s(r.seconds.oversized),
    ]);
  }
  const logLines = (r.faults?.logs.lines ?? 0) + (r.orderings?.logs.lines ?? 0) + (h.logs?.lines ?? 0);
  row([
    'logs',
    `${n(logLines)} lines at DEBUG: JSON, no approval token, credential or finding payload, the right gate key on lines about a gate; no approval token in an SNS message or an EventBridge event`,
    String(count(['log', 'secret'])),
    '',
  ]);

  lines.push('');
  const kinds: [string, string][] = [
    ['approval-from-incomplete-data', 'APPROVE from incomplete data'],
    ['lost-gate', 'lost gates'],
    ['duplicate-action', 'duplicate actions'],
    ['action-without-decision', 'actions without their decision'],
    ['decided-not-acted', 'decisions said acted on that the world never took'],
    ['different-decision', 'decisions unlike the clean run (duplicates and order)'],
    ['unreconciled', 'lost endings not repaired'],
    ['lost-decision', 'decisions lost to a fault'],
    ['unsettled', 'gates given up or decided unsent while the approval waits'],
    ['dead-letter', 'events lost to the dead-letter queue'],
    ['audit-chain', 'audit chains that do not verify'],
    ['unquiet', 'not quiet after the sweeps'],
    ['expectation', "clean replays unlike the scenario's expectation"],
    ['secret', 'approval tokens in SNS messages or EventBridge events'],
    ['dead-fuzz', 'fuzz runs that reached too few decisions'],
    ['dead-fault', 'planned faults that never fired'],
    ['dead-lag', 'lagged replays that hid no read'],
    ['crash-loop', 'crash loops'],
    ['not-ignored', 'forged events handled'],
    ['approval-from-hostile-input', 'approvals from hostile input'],
    ['unexpected-exception', 'other exceptions'],
    ['unlocated-error', 'policy errors without line:column'],
    ['memory', 'over the memory limit'],
    ['oversized-result', 'oversized inputs decided or counted wrongly'],
    ['log', 'log lines'],
  ];
  lines.push(
    `invariants: ${kinds.map(([k, label]) => `${label} ${r.byKind[k as keyof typeof r.byKind] ?? 0}`).join(' · ')}`,
  );

  if (r.faults) {
    const byKind = new Map<string, Map<string, number>>();
    for (const x of r.faults.runs) {
      const k = x.planned.kind;
      const m = byKind.get(k) ?? new Map<string, number>();
      m.set(x.planned.persistence, (m.get(x.planned.persistence) ?? 0) + 1);
      byKind.set(k, m);
    }
    const services = new Map<string, number>();
    for (const x of r.faults.runs) {
      const svc = serviceOf(x.planned.operation);
      services.set(svc, (services.get(svc) ?? 0) + 1);
    }
    lines.push(
      `fault replays by kind (once / last / first index write / outage): ${[...byKind.entries()]
        .map(
          ([k, m]) =>
            `${k} ${m.get('once') ?? 0}/${m.get('last') ?? 0}/${m.get('first-index') ?? 0}/${m.get('outage') ?? 0}`,
        )
        .join(' · ')}`,
      `fault replays by service: ${[...services.entries()].map(([k, v]) => `${k} ${n(v)}`).join(' · ')}`,
    );
  }
  if (r.violations.length > 0) {
    lines.push('', `first violations (of ${r.violations.length}):`);
    for (const v of r.violations.slice(0, 20))
      lines.push(`  ${v.kind}${v.gate ? ` ${v.gate}` : ''}: ${v.detail}`);
  }
  return lines.join('\n');
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`reliability: ${(e as Error).message}\n`);
    return 2;
  }
  const report = await runSuite({
    quick: args.quick,
    seed: args.seed,
    parts: args.parts,
    onProgress: (text) => process.stderr.write(`… ${text}\n`),
  });
  if (args.report) writeFileSync(args.report, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${renderTable(report)}\n${JSON.stringify(report.summary)}\n`);
  return failed(report) ? 1 : 0;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  process.exitCode = await main();
}
