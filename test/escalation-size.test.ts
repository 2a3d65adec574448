import { describe, expect, it } from 'vitest';
import { fitMessage, SNS_MESSAGE_MAX_BYTES } from '../adapters/aws/sns.js';
import type { DecisionRecord, Violation } from '../shared/decision/record.js';
import { exampleEscalationInput } from '../shared/gate/escalation.example.js';
import { type EscalationJson, renderEscalation } from '../shared/gate/escalation.js';
import type { ViolationFindings } from '../shared/gate/model.js';

/** The least text email subscribers keep when the JSON's lists are emptied: a quarter of SNS's limit. */
const TEXT_MIN = SNS_MESSAGE_MAX_BYTES / 4;

/**
 * The review's shape: `rules` violated rules of `ids` ids and 20 finding lines each, every description
 * `descLen` characters. Past a few rules the text alone is over SNS's limit, and the size of the JSON with
 * its lists emptied grows with the descriptions.
 */
function escalation(rules: number, descLen: number, ids: number) {
  const input = exampleEscalationInput();
  const shown = input.decision.details[0]!.shown[0]!;
  const violations: Violation[] = Array.from({ length: rules }, (_, k) => ({
    rule: `rule-${k}`,
    action: 'escalate',
    allow: 0,
    count: ids,
    description: 'd'.repeat(descLen),
    findings: Array.from({ length: ids }, (_, j) => `CVE-2024-${k}-${j}`),
  }));
  const details: ViolationFindings[] = violations.map((v) => ({
    rule: v.rule,
    shown: Array.from({ length: 20 }, () => shown),
    more: ids,
  }));
  const record: DecisionRecord = { ...input.decision.record, violations };
  return renderEscalation({ ...input, decision: { ...input.decision, details, record } });
}

function sent(rules: number, descLen: number, ids = 50) {
  const message = escalation(rules, descLen, ids);
  const body = fitMessage(message, SNS_MESSAGE_MAX_BYTES);
  const parsed = JSON.parse(body) as Record<string, string>;
  return { message, body, email: parsed.default!, json: JSON.parse(parsed.sqs!) as Partial<EscalationJson> };
}

describe('an escalation whose text alone is over the SNS limit', () => {
  // 140: before the fix the emptied JSON (~60 KB, sent four times) left the email 3 KB and no violation;
  // 100: 35 KB; 150: the JSON fell through to its essentials and the email kept 254 KB.
  it.each([100, 120, 140, 150])(
    'keeps at least a quarter of the budget for email (descriptions of %i)',
    (d) => {
      const { message, body, email } = sent(200, d);
      expect(Buffer.byteLength(message.text, 'utf8')).toBeGreaterThan(SNS_MESSAGE_MAX_BYTES);
      expect(Buffer.byteLength(body, 'utf8')).toBeLessThanOrEqual(SNS_MESSAGE_MAX_BYTES);
      expect(Buffer.byteLength(email, 'utf8')).toBeGreaterThanOrEqual(TEXT_MIN);
      // The violations are there to read, and the links and where to answer at the end.
      expect(email).toContain('rule-0');
      expect(email).toMatch(/Cut to keep this message within the SNS size limit of 256 KB/);
      expect(email).toContain('\nLinks\n');
    },
    30_000,
  );

  it('keeps the JSON with its lists emptied when that leaves the text its share', () => {
    const { message, body, email, json } = sent(200, 10);
    expect(Buffer.byteLength(message.text, 'utf8')).toBeGreaterThan(SNS_MESSAGE_MAX_BYTES);
    expect(Buffer.byteLength(body, 'utf8')).toBeLessThanOrEqual(SNS_MESSAGE_MAX_BYTES);
    expect(Buffer.byteLength(email, 'utf8')).toBeGreaterThanOrEqual(TEXT_MIN);
    expect(json).not.toHaveProperty('truncated');
    expect(json.violations).toHaveLength(200);
    for (const v of json.violations!) {
      expect(v.vulnerabilityIds).toEqual([]);
      expect(v.moreVulnerabilityIds).toBe(50);
    }
  }, 30_000);
});
