import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureTable } from '../adapters/dynamodb/table.js';
import { exampleScenarios } from '../reliability/scenarios.js';
import { type GateView, runScenario, type SimulationResult } from '../simulator/run.js';
import { loadScenario } from '../simulator/scenario.js';
import { useLocalDynamo } from './gate-harness.js';
import { ROOT } from './helpers.js';

/*
 * Every example scenario replayed through the handlers (simulator/run.ts) on a dynalite table of its own:
 * its `expect` block holds, no delivery was dead-lettered, and the facts that make the scenario what it is.
 */

const dynamo = useLocalDynamo();
const DIR = join(ROOT, 'examples', 'scenarios');
// The whole folder, not one extension: the test below holds it to the reliability suite's listing, so a
// scenario in a format a filter here would miss (the loader reads YAML too) is replayed or fails that test.
const FILES = readdirSync(DIR).sort();
const MINUTE = 60_000;
let tables = 0;

async function replay(file: string): Promise<SimulationResult> {
  const { client } = dynamo();
  tables++;
  const tableName = `tollgate-scenario-${process.pid}-${tables}`;
  await ensureTable(client, tableName);
  return runScenario(loadScenario(join(DIR, file)), { doc: client, tableName });
}

function only(r: SimulationResult): GateView {
  expect(r.gates).toHaveLength(1);
  return r.gates[0]!;
}

function rules(gate: GateView): string[] {
  return (gate.decision?.violations ?? []).map((v) => v.rule);
}

/** What each scenario is about, beyond its `expect` block. */
const FACTS: Record<string, (r: SimulationResult) => void> = {
  '01-clean-image-approved.json': (r) => {
    const gate = only(r);
    expect(gate.decidedBy?.trigger).toBe('scan-finished');
    expect(gate.approvalResult?.summary.length).toBeLessThanOrEqual(512);
    expect(r.calls.PutApprovalResult).toBe(1);
    expect(r.messages).toHaveLength(0);
    expect(gate.closure?.state).toBe('SUCCEEDED');
    // CloudTrail's record of the call is Tollgate's own role.
    expect(gate.reviewer).toMatchObject({ tollgate: true, status: 'Approved' });
    expect(r.events.map((e) => e.DetailType)).toContain('Tollgate Decision');
  },
  '02-critical-rejected.json': (r) => {
    const gate = only(r);
    // The tag in CustomData is resolved once; the digest is what was judged.
    expect(r.calls.DescribeImages).toBe(1);
    expect(gate.image).toMatchObject({
      repository: 'payments/api',
      digest: 'sha256:3f9a1c0d8e2b47a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2',
      tags: ['1.4.2'],
    });
    expect(rules(gate)).toContain('no-critical');
    expect(gate.decision?.counts.CRITICAL).toBe(1);
    expect(r.calls.PutApprovalResult).toBe(1);
    expect(r.messages).toHaveLength(0);
    expect(gate.closure?.state).toBe('FAILED');
  },
  '03-fixable-high-escalated-then-approved.json': (r) => {
    const gate = only(r);
    expect(rules(gate)).toContain('fixable-high');
    // Exactly one SNS message, even with a sweep after it; Tollgate itself never answered the approval.
    expect(r.messages).toHaveLength(1);
    expect(r.messages[0]!.subject.length).toBeLessThanOrEqual(100);
    expect(r.calls.Publish).toBe(1);
    expect(r.calls.PutApprovalResult).toBeUndefined();
    expect(gate.reviewer).toMatchObject({
      identity: 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice',
      status: 'Approved',
      tollgate: false,
    });
    expect(gate.closure?.state).toBe('SUCCEEDED');
  },
  '04-scan-finished-before-approval.json': (r) => {
    const gate = only(r);
    // Decided the moment the approval started, on the stored scan status: coverage was never asked.
    expect(gate.decidedBy?.trigger).toBe('approval-started');
    expect(gate.decidedBy?.latencyMs).toBe(0);
    expect(r.calls.ListCoverage).toBeUndefined();
    expect(gate.image?.source).toMatch(/^variable IMAGE_URI/);
    expect(r.calls.PutApprovalResult).toBe(1);
  },
  '05-findings-after-scan-event.json': (r) => {
    const gate = only(r);
    // The scan event counted a CRITICAL the first read did not have: no decision until a read held it.
    expect(gate.timeline.some((t) => t.what.includes('findings still arriving'))).toBe(true);
    expect(gate.decidedBy?.trigger).toBe('sweep');
    expect(gate.decision?.counts.CRITICAL).toBe(1);
    expect(rules(gate)).toContain('no-critical');
    expect(r.calls.PutApprovalResult).toBe(1);
  },
  '06-scan-never-finishes.json': (r) => {
    const gate = only(r);
    expect(rules(gate)).toEqual(['scan-timeout']);
    expect(gate.decidedBy?.trigger).toBe('sweep');
    expect(Date.parse(gate.decidedBy!.decidedAt) - Date.parse('2026-11-25T09:00:05Z')).toBeGreaterThanOrEqual(
      30 * MINUTE,
    );
    // The sweep after the escalation does not send a second one.
    expect(r.messages).toHaveLength(1);
    expect(r.calls.PutApprovalResult).toBeUndefined();
  },
  '07-unsupported-image.json': (r) => {
    const gate = only(r);
    expect(rules(gate)).toEqual(['scan-incomplete']);
    expect(r.calls.DescribeImages).toBe(1);
    expect(r.calls.ListFindings).toBeUndefined();
    expect(r.messages).toHaveLength(1);
    expect(r.calls.PutApprovalResult).toBeUndefined();
  },
  '08-execution-superseded-while-waiting.json': (r) => {
    expect(r.gates).toHaveLength(2);
    const [first, second] = [...r.gates].sort((a, b) => a.executionId.localeCompare(b.executionId));
    // The sweep found the stage running execution 2 and execution 1's approval abandoned.
    expect(first!.state).toBe('STALE');
    expect(first!.staleReason).toMatch(/no longer in progress \(Abandoned\)/);
    expect(first!.decision).toBeNull();
    expect(second!.decision?.outcome).toBe('APPROVE');
    expect(second!.image?.digest).toBe(
      'sha256:8bfd6dbb639236290e302e2c15d66bc041f2ba75b12c07eb969fcc330ae46da8',
    );
    expect(r.calls.PutApprovalResult).toBe(1);
    expect(r.messages).toHaveLength(0);
  },
  '09-approval-started-event-lost.json': (r) => {
    const gate = only(r);
    // No STARTED event was delivered: the sweep found the approval, after the grace period, not at 5m.
    expect(r.deliveries.some((d) => d.function === 'approval-started')).toBe(false);
    expect(gate.timeline[0]?.what).toMatch(
      /^approval found in progress by the sweep \(no STARTED event came\)/,
    );
    expect(gate.decidedBy?.trigger).toBe('sweep (approval found)');
    expect(Date.parse(gate.decidedBy!.decidedAt) - Date.parse('2026-11-25T09:00:00Z')).toBe(10 * MINUTE);
    // The wait counts from the approval's start as the pipeline's state shows it.
    expect(gate.decidedBy?.latencyMs).toBe(9 * MINUTE);
    expect(r.calls.PutApprovalResult).toBe(1);
    // Literal pipeline globs too: ListPipelines, once per look, says each pipeline's execution mode.
    expect(r.calls.ListPipelines).toBe(2);
  },
  '10-parallel-mode-approval-started-event-lost.json': (r) => {
    const gate = only(r);
    expect(r.deliveries.some((d) => d.function === 'approval-started')).toBe(false);
    expect(gate.timeline[0]?.what).toMatch(
      /^approval found in progress by the sweep \(no STARTED event came\)/,
    );
    // Left alone at 5m (3 minutes old), found and approved at 10m: the wait counts from the run's start.
    expect(Date.parse(gate.decidedBy!.decidedAt) - Date.parse('2026-11-25T09:00:00Z')).toBe(10 * MINUTE);
    expect(gate.decidedBy?.latencyMs).toBe(8 * MINUTE);
    // The state names no execution: the executions in progress and their runs were listed, by discovery
    // at 5m and 10m (and by the gate, whose token is the run's externalExecutionId).
    expect(r.calls.ListPipelineExecutions).toBe(2);
    expect(r.calls.ListActionExecutions).toBeGreaterThanOrEqual(2);
    // Approved with the run's externalExecutionId: the simulated CodePipeline refuses any other token.
    expect(gate.approvalResult?.status).toBe('Approved');
    expect(r.calls.PutApprovalResult).toBe(1);
    expect(r.messages).toHaveLength(0);
  },
};

describe('the example scenarios', () => {
  it('replays the example scenarios the reliability suite replays, and there are some', () => {
    expect(FILES.length).toBeGreaterThan(0);
    expect(FILES.map((f) => join(DIR, f))).toEqual(exampleScenarios().map((s) => s.file));
  });

  it('are the ten the facts below describe', () => {
    expect(FILES).toEqual(Object.keys(FACTS).sort());
  });

  it.each(FILES)('%s: its expectations hold, nothing is dead-lettered', async (file) => {
    const r = await replay(file);
    expect(r.mismatches).toEqual([]);
    expect(r.deliveries.filter((d) => d.outcome === 'dead-lettered')).toEqual([]);
    expect(r.deliveries.filter((d) => d.outcome === 'ok').length).toBeGreaterThan(0);
    FACTS[file]!(r);
  });
});
