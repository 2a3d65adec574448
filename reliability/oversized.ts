import { spawn } from 'node:child_process';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAX_FINDINGS_BYTES, runEvaluate } from '../cli/evaluate.js';
import { InputError } from '../shared/errors.js';
import { describeError } from '../shared/gate/gate.js';
import type { Violation } from './invariants.js';
import { ROOT } from './scenarios.js';

/*
 * Oversized inputs, bounded. Each case runs `tollgate evaluate` (runEvaluate, from files, JSON output) in a
 * child process with the V8 heap capped at HEAP_LIMIT_MB, and must end in a decision or an InputError,
 * within RSS_LIMIT_MB of peak resident memory (a crash, out of memory included, is a violation). A decision
 * on the two files of many findings must be REJECT (they hold CRITICAL ones) and count every finding written:
 * any decision passing would let a read that stopped early, or approved, through; a decision on the long
 * strings (an InputError is fine too) must not be APPROVE (its finding is HIGH) and must count its finding:
 *
 *   findings-100mb   an Inspector export of 100 MB (real-shaped findings of 1.9 KB, about 53,000 of them)
 *   findings-100k    100,000 findings (compact ones, about 110 MB)
 *   long-strings     one finding whose description and title are 50 MB each, and a 1 MB package name
 *   over-limit       a findings file one byte over the CLI's limit (a sparse file): refused before reading
 *   policy-over-limit a 2 MB policy (over the 1 MB limit): refused
 *
 * The quick run divides the sizes by ten and runs the cases in one child. Inputs are written by this (parent)
 * process, streamed, so that the child's memory is the evaluation's alone.
 */

export const HEAP_LIMIT_MB = 1024;
export const RSS_LIMIT_MB = 1024;
const CASE_TIMEOUT_MS = 180_000;

export interface OversizedCase {
  readonly name: string;
  readonly bytes: number;
  readonly outcome: 'result' | 'input-error' | 'exception' | 'crashed';
  /** The decision's outcome, when there was one. */
  readonly decision?: string;
  /** What the decision counted: every severity summed, and CRITICAL. */
  readonly counted?: { readonly total: number; readonly critical: number };
  readonly message: string;
  readonly ms: number;
  readonly maxRssMb: number;
}

export interface OversizedSection {
  readonly cases: readonly OversizedCase[];
  readonly violations: readonly Violation[];
}

type Json = Record<string, unknown>;

const SEVERITIES = ['CRITICAL', 'HIGH', 'MEDIUM', 'MEDIUM', 'LOW', 'LOW', 'INFORMATIONAL', 'UNTRIAGED'];

function template(): Json {
  const doc = JSON.parse(
    readFileSync(join(ROOT, 'examples', 'findings', 'payments-api.list-findings.json'), 'utf8'),
  ) as {
    findings: Json[];
  };
  return doc.findings[0]!;
}

function finding(base: Json, i: number, compact: boolean): Json {
  const f = structuredClone(base);
  const id = `CVE-2025-${String(10_000 + (i % 5_000))}`;
  f.findingArn = `arn:aws:inspector2:eu-west-1:123456789012:finding/${i.toString(16).padStart(32, '0')}`;
  f.severity = SEVERITIES[i % SEVERITIES.length];
  f.title = `${id} - package-${i % 700}`;
  const details = f.packageVulnerabilityDetails as Json;
  details.vulnerabilityId = id;
  if (compact) {
    delete f.description;
    delete f.remediation;
    details.referenceUrls = [];
    details.sourceUrl = undefined;
    details.cvss = [];
  }
  return f;
}

/** What a findings file holds, as its writer counted it: what the evaluation must count in turn. */
export interface Written {
  readonly bytes: number;
  /** Findings written (all ACTIVE, each with an ARN of its own). */
  readonly findings: number;
  /** Of them, CRITICAL: the baseline policy rejects an image with one. */
  readonly critical: number;
}

/** Streams `{"findings":[…]}` to `path` until `count` findings or `bytes` bytes, whichever comes first. */
export function writeFindings(path: string, count: number, bytes: number, compact: boolean): Written {
  const base = template();
  const fd = openSync(path, 'w');
  let written = 0;
  let findings = 0;
  let critical = 0;
  const put = (text: string) => {
    written += writeSync(fd, text);
  };
  try {
    put('{"findings":[');
    let chunk = '';
    for (let i = 0; i < count && written + chunk.length < bytes; i++) {
      const f = finding(base, i, compact);
      chunk += `${i === 0 ? '' : ','}${JSON.stringify(f)}`;
      findings++;
      if (f.severity === 'CRITICAL') critical++;
      if (chunk.length > 1 << 20) {
        put(chunk);
        chunk = '';
      }
    }
    put(`${chunk}]}`);
  } finally {
    closeSync(fd);
  }
  return { bytes: written, findings, critical };
}

/** One finding (HIGH: the baseline does not let it through) with strings of `mb` MB; what was written. */
export function writeLongStrings(path: string, mb: number): Written {
  const f = finding(template(), 1, false);
  f.description = 'd'.repeat(mb * 1024 * 1024);
  f.title = 't'.repeat(mb * 1024 * 1024);
  const details = f.packageVulnerabilityDetails as Json;
  const packages = details.vulnerablePackages as Json[];
  packages[0]!.name = 'p'.repeat(1024 * 1024);
  const text = JSON.stringify({ findings: [f] });
  writeFileSync(path, text);
  return { bytes: Buffer.byteLength(text), findings: 1, critical: f.severity === 'CRITICAL' ? 1 : 0 };
}

interface Plan {
  readonly name: string;
  readonly findings: string;
  readonly policy: string;
  readonly bytes: number;
  /** What must happen: a decision, an InputError, or either. */
  readonly expect: 'result' | 'input-error' | 'either';
  /**
   * For a file of findings: what was written, which a decision must count in full and not approve (reject,
   * CRITICAL among them). A decision of any kind would otherwise pass, an APPROVE on a truncated read included.
   */
  readonly written?: Written;
}

function plans(dir: string, quick: boolean): Plan[] {
  const scale = quick ? 10 : 1;
  const policy = join(ROOT, 'examples', 'policies', 'baseline.yaml');
  const out: Plan[] = [];
  const big = join(dir, 'findings-100mb.json');
  const bigWritten = writeFindings(big, Number.MAX_SAFE_INTEGER, (100 * 1024 * 1024) / scale, false);
  out.push({
    name: `findings-${100 / scale}mb`,
    findings: big,
    policy,
    bytes: bigWritten.bytes,
    expect: 'result',
    written: bigWritten,
  });
  const many = join(dir, 'findings-100k.json');
  const manyWritten = writeFindings(many, 100_000 / scale, Number.MAX_SAFE_INTEGER, true);
  out.push({
    name: `findings-${100 / scale}k`,
    findings: many,
    policy,
    bytes: manyWritten.bytes,
    expect: 'result',
    written: manyWritten,
  });
  const long = join(dir, 'long-strings.json');
  const longWritten = writeLongStrings(long, 50 / scale);
  out.push({
    name: 'long-strings',
    findings: long,
    policy,
    bytes: longWritten.bytes,
    expect: 'either',
    written: longWritten,
  });
  const over = join(dir, 'over-limit.json');
  writeFileSync(over, '');
  truncateSync(over, MAX_FINDINGS_BYTES + 1);
  out.push({
    name: 'over-limit',
    findings: over,
    policy,
    bytes: MAX_FINDINGS_BYTES + 1,
    expect: 'input-error',
  });
  const bigPolicy = join(dir, 'policy-over-limit.yaml');
  writeFileSync(bigPolicy, `version: 1\nname: big\n# ${'x'.repeat(2 * 1024 * 1024)}\n`);
  out.push({
    name: 'policy-over-limit',
    findings: many,
    policy: bigPolicy,
    bytes: 2 * 1024 * 1024 + 25,
    expect: 'input-error',
  });
  return out;
}

/**
 * Runs every case in a child process with the heap capped: each in its own (full run), so that its peak
 * memory is its own; or all in one (quick run), where the peak is the largest case's or more.
 */
export async function runOversized(quick: boolean): Promise<OversizedSection> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-oversized-'));
  const cases: OversizedCase[] = [];
  const violations: Violation[] = [];
  try {
    const all = plans(dir, quick);
    const batches = quick ? [all] : all.map((p) => [p]);
    for (const batch of batches) {
      const results = await inChild(batch);
      batch.forEach((plan, i) => {
        const c = results[i]!;
        cases.push(c);
        const wrong =
          c.outcome === 'exception' ||
          c.outcome === 'crashed' ||
          (plan.expect === 'result' && c.outcome !== 'result') ||
          (plan.expect === 'input-error' && c.outcome !== 'input-error');
        if (wrong) {
          violations.push({
            kind: c.outcome === 'crashed' ? 'memory' : 'unexpected-exception',
            detail: `${plan.name}: ${c.outcome} (${c.message}); expected ${plan.expect}`,
          });
        }
        const miscounted = c.outcome === 'result' ? wrongResult(plan, c) : undefined;
        if (miscounted) violations.push({ kind: 'oversized-result', detail: `${plan.name}: ${miscounted}` });
        if (c.maxRssMb > RSS_LIMIT_MB) {
          violations.push({
            kind: 'memory',
            detail: `${plan.name}: peak RSS ${c.maxRssMb} MB > ${RSS_LIMIT_MB} MB`,
          });
        }
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { cases, violations };
}

/**
 * Why a decision on a file of many findings is wrong: not REJECT (the file holds CRITICAL findings, which
 * the baseline rejects), or a count that is not what was written (a read that stopped early, or read some
 * twice). Undefined when it is right, or when the plan wrote no such file.
 */
export function wrongResult(
  plan: Pick<Plan, 'written'>,
  c: Pick<OversizedCase, 'decision' | 'counted'>,
): string | undefined {
  const w = plan.written;
  if (!w) return undefined;
  const problems: string[] = [];
  if (w.critical > 0 && c.decision !== 'REJECT') {
    problems.push(`decided ${c.decision ?? 'nothing'} on ${w.critical} CRITICAL finding(s): expected REJECT`);
  } else if (c.decision === 'APPROVE') {
    // Every file written here holds a finding the baseline does not let through (the long strings' is HIGH).
    problems.push(`decided APPROVE on ${w.findings} finding(s) the baseline blocks`);
  }
  if (c.counted?.total !== w.findings) {
    problems.push(`counted ${c.counted?.total ?? 'no'} finding(s) of the ${w.findings} written`);
  }
  if (c.counted?.critical !== w.critical) {
    problems.push(`counted ${c.counted?.critical ?? 'no'} CRITICAL of the ${w.critical} written`);
  }
  return problems.length > 0 ? problems.join('; ') : undefined;
}

function inChild(batch: readonly Plan[]): Promise<OversizedCase[]> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        `--max-old-space-size=${HEAP_LIMIT_MB}`,
        '--import',
        'tsx',
        fileURLToPath(import.meta.url),
        'worker',
        ...batch.flatMap((p) => [p.findings, p.policy]),
      ],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), CASE_TIMEOUT_MS * batch.length);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const lines = out.trim().split('\n');
      resolve(
        batch.map((plan, i) => {
          try {
            const r = JSON.parse(lines[i] ?? '') as Omit<OversizedCase, 'name' | 'bytes'>;
            return { name: plan.name, bytes: plan.bytes, ...r };
          } catch {
            return {
              name: plan.name,
              bytes: plan.bytes,
              outcome: 'crashed' as const,
              message: `exit ${code ?? signal}: ${err.trim().split('\n').slice(-3).join(' ').slice(0, 300)}`,
              ms: Date.now() - started,
              maxRssMb: 0,
            };
          }
        }),
      );
    });
  });
}

/**
 * The peak resident memory of this process: VmHWM (Linux), which starts afresh at exec; `maxRSS` elsewhere
 * (on Linux it carries over the parent's peak through fork and exec, so it would count the suite's own).
 */
function peakRssMb(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Math.round(Number(m[1]) / 1024);
  } catch {
    // Not Linux.
  }
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

/** The child: evaluations in turn, one JSON line each with what happened and the peak resident memory so far. */
async function worker(inputs: readonly string[]): Promise<void> {
  for (let i = 0; i + 1 < inputs.length; i += 2) {
    const started = performance.now();
    let outcome: OversizedCase['outcome'] = 'result';
    let message = '';
    let decided: Pick<OversizedCase, 'decision' | 'counted'> = {};
    try {
      const { stdout } = await runEvaluate({
        policy: inputs[i + 1]!,
        findings: [inputs[i]!],
        format: 'json',
        color: false,
        now: new Date('2026-11-25T12:00:00Z'),
      });
      const record = JSON.parse(stdout) as { outcome: string; counts: Record<string, number> };
      const total = Object.values(record.counts).reduce((a, b) => a + b, 0);
      decided = { decision: record.outcome, counted: { total, critical: record.counts.CRITICAL ?? 0 } };
      message = `${record.outcome} (${total} findings counted)`;
    } catch (e) {
      outcome = e instanceof InputError ? 'input-error' : 'exception';
      message = describeError(e).slice(0, 200);
    }
    const maxRssMb = peakRssMb();
    process.stdout.write(
      `${JSON.stringify({ outcome, ...decided, message, ms: Math.round(performance.now() - started), maxRssMb })}\n`,
    );
  }
}

if (process.argv[2] === 'worker' && process.argv[1] === fileURLToPath(import.meta.url)) {
  await worker(process.argv.slice(3));
}
