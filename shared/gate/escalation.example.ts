import { IMPLICIT_DESCRIPTIONS } from '../decision/record.js';
import { buildSummary, type SummaryViolation } from '../decision/summary.js';
import type { Severity } from '../findings/finding.js';
import { type EscalationInput, renderEscalation } from './escalation.js';
import type { FindingSummary, Gate, GateImage, StoredDecision } from './model.js';
import type { EscalationMessage } from './ports.js';

/*
 * One realistic escalation, for docs/escalation.md and the tests: a test fails when the rendering changes
 * and the page does not, so the documented example is always what engineers receive.
 */

const KEY = {
  pipeline: 'payments-api',
  executionId: '7c0e5a1d-3b9f-4f43-9a52-0d2f6b1e8c47',
  stage: 'SecurityGate',
  action: 'TollgateApproval',
};

const IMAGE: GateImage = {
  repository: 'payments/api',
  digest: 'sha256:3f9a1c0d5e7b2a4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d1e3f5a7b9c',
  tags: ['1.4.2', 'release-2026-11-25'],
  registryId: '123456789012',
  source: 'CustomData: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments/api:1.4.2',
};

function finding(
  vulnerabilityId: string,
  pkg: string,
  installedVersion: string,
  fixedInVersion: string | undefined,
  severity: Severity,
  score: number | undefined,
  epss: number | undefined,
  exploitAvailable: boolean | undefined,
): FindingSummary {
  return {
    vulnerabilityId,
    package: pkg,
    installedVersion,
    fixedInVersion,
    severity,
    score,
    epss,
    exploitAvailable,
  };
}

const FIXABLE_HIGH = [
  finding('CVE-2023-44487', 'libnghttp2-14', '1.52.0-1', '1.52.0-1+deb12u1', 'HIGH', 7.5, 0.9443, true),
  finding('CVE-2024-6119', 'openssl', '3.0.11-1~deb12u2', '3.0.14-1~deb12u1', 'HIGH', 7.5, 0.0009, false),
];
const UNTRIAGED = [
  finding(
    'GHSA-9wx4-h78v-vm56',
    'requests',
    '2.31.0',
    '2.32.0',
    'UNTRIAGED',
    undefined,
    undefined,
    undefined,
  ),
];
const MEDIUM = [
  finding('CVE-2024-2511', 'openssl', '3.0.11-1~deb12u2', '3.0.13-1~deb12u1', 'MEDIUM', 5.9, 0.0014, false),
  finding('CVE-2023-52425', 'libexpat1', '2.5.0-1', undefined, 'MEDIUM', 5.5, 0.0031, false),
  finding('CVE-2024-28182', 'libnghttp2-14', '1.52.0-1', '1.52.0-1+deb12u2', 'MEDIUM', 5.3, 0.0006, false),
];

const VIOLATIONS: SummaryViolation[] = [
  {
    rule: 'fixable-high',
    action: 'escalate',
    allow: 0,
    count: 2,
    findings: FIXABLE_HIGH.map((f) => f.vulnerabilityId).sort(),
    description: 'High findings with a fix ship only with a security engineer’s approval',
    bySeverity: new Map([['HIGH', 2]]),
  },
  {
    rule: 'unknown-severity',
    action: 'escalate',
    allow: 0,
    count: 1,
    findings: UNTRIAGED.map((f) => f.vulnerabilityId),
    description: IMPLICIT_DESCRIPTIONS['unknown-severity'],
    bySeverity: new Map([['UNTRIAGED', 1]]),
  },
];
const WARNINGS: SummaryViolation[] = [
  {
    rule: 'medium-budget',
    action: 'warn',
    allow: 2,
    count: 3,
    findings: MEDIUM.map((f) => f.vulnerabilityId).sort(),
    bySeverity: new Map([['MEDIUM', 3]]),
  },
];

/** The stored record keeps the violations without the summary's severity breakdown. */
function plain({ bySeverity: _, ...v }: SummaryViolation) {
  return v;
}

export function exampleEscalationInput(): EscalationInput {
  const decidedAt = '2026-11-25T12:03:12.000Z';
  const decision: StoredDecision = {
    key: KEY,
    record: {
      outcome: 'ESCALATE',
      mode: 'enforce',
      summary: buildSummary({
        outcome: 'ESCALATE',
        wouldBe: undefined,
        policyName: 'production',
        violations: VIOLATIONS,
        warnings: WARNINGS,
      }),
      policy: {
        name: 'production',
        sha256: 'f8c485cbc07a6edb17d9d12dc0c223a243f239bcc83d80f5088c7ce1551f29d0',
      },
      subject: {
        repository: IMAGE.repository,
        digest: IMAGE.digest,
        tags: IMAGE.tags,
        pipeline: KEY.pipeline,
      },
      counts: { CRITICAL: 0, HIGH: 2, MEDIUM: 3, LOW: 7, INFORMATIONAL: 1, UNTRIAGED: 1 },
      violations: VIOLATIONS.map(plain),
      warnings: WARNINGS.map(plain),
      exceptions: {
        applied: ['EXC-2026-001'],
        expired: [],
        revoked: [],
        unused: [],
        expiringSoon: ['EXC-2026-001'],
      },
      ignored: 0,
      evaluatedAt: decidedAt,
    },
    details: [
      { rule: 'fixable-high', shown: FIXABLE_HIGH, more: 0 },
      { rule: 'unknown-severity', shown: UNTRIAGED, more: 0 },
      { rule: 'medium-budget', shown: MEDIUM, more: 0 },
    ],
    image: IMAGE,
    trigger: 'scan-finished',
    decidedAt,
    latencyMs: 192_000,
  };
  const gate: Gate = {
    key: KEY,
    state: 'DECIDED',
    version: 3,
    account: '123456789012',
    region: 'eu-west-1',
    actionExecutionId: 'b2f7c1e9-52d4-4a8e-9c3b-6e0a1d7f4b28',
    startedAt: '2026-11-25T12:00:00.000Z',
    deadline: '2026-11-25T12:30:00.000Z',
    image: IMAGE,
    imageProblem: undefined,
    tokenHash: 'c0ffee254729296a45a3885639ac7e10f9d54979b1ea1e7b2d1e0e2b5e6f7a8b',
    lastRead: {
      at: decidedAt,
      counts: { HIGH: 2, MEDIUM: 3, LOW: 7, INFORMATIONAL: 1, UNTRIAGED: 1 },
      total: 14,
    },
    outcome: 'ESCALATE',
    decidedAt,
    summary: decision.record.summary,
    approvalResult: undefined,
    notifications: 0,
    actingUntil: '2026-11-25T12:04:12.000Z',
    staleReason: undefined,
    closure: undefined,
    reviewer: undefined,
    timeline: [],
    updatedAt: decidedAt,
  };
  return { gate, decision, region: 'eu-west-1', account: '123456789012' };
}

export function exampleEscalation(): EscalationMessage {
  return renderEscalation(exampleEscalationInput());
}
