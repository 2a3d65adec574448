import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type DecisionRecord, SUMMARY_MAX, type Violation } from '../shared/decision/record.js';
import { exampleEscalation, exampleEscalationInput } from '../shared/gate/escalation.example.js';
import {
  approvalSummary,
  type EscalationInput,
  type EscalationJson,
  renderEscalation,
  SUBJECT_MAX,
} from '../shared/gate/escalation.js';
import type { FindingSummary, ViolationFindings } from '../shared/gate/model.js';

const PRINTABLE_ASCII = /^[\x20-\x7E]*$/;

/** The example, with the pipeline key, the violations and their details replaced. */
function withCase(
  options: {
    pipeline?: string;
    stage?: string;
    action?: string;
    executionId?: string;
    violations?: readonly Violation[];
    details?: readonly ViolationFindings[];
    record?: Partial<DecisionRecord>;
  } = {},
): EscalationInput {
  const base = exampleEscalationInput();
  const key = {
    pipeline: options.pipeline ?? base.gate.key.pipeline,
    stage: options.stage ?? base.gate.key.stage,
    action: options.action ?? base.gate.key.action,
    executionId: options.executionId ?? base.gate.key.executionId,
  };
  const record: DecisionRecord = {
    ...base.decision.record,
    ...(options.violations ? { violations: options.violations } : {}),
    ...options.record,
  };
  return {
    ...base,
    gate: { ...base.gate, key },
    decision: { ...base.decision, key, record, details: options.details ?? base.decision.details },
  };
}

function manyFindings(rule: string, n: number): FindingSummary[] {
  return Array.from({ length: n }, (_, i) => ({
    vulnerabilityId: `CVE-2026-${String(1000 + i)}`,
    package: `pkg-${rule}-${i}`,
    installedVersion: `1.${i}.0`,
    fixedInVersion: `1.${i}.1`,
    severity: 'HIGH',
    score: 7 + (i % 3) / 10,
    epss: 0.001 * (i + 1),
    exploitAvailable: i % 2 === 0,
  }));
}

function violation(rule: string, count: number): Violation {
  return { rule, action: 'escalate', allow: 0, count, findings: [] };
}

function json(input: EscalationInput): EscalationJson {
  return renderEscalation(input).json as EscalationJson;
}

describe('the subject', () => {
  it('says outcome, pipeline/stage and the rules', () => {
    expect(exampleEscalation().subject).toBe(
      'Tollgate: ESCALATE payments-api/SecurityGate - 2 rules (fixable-high, unknown-severity)',
    );
  });

  it('stays within 100 printable ASCII characters for the longest names and many rules', () => {
    const rules = Array.from({ length: 30 }, (_, i) =>
      violation(`rule-${String(i).padStart(2, '0')}-${'x'.repeat(56)}`, 1),
    );
    const pipeline = `payments-api-${'p'.repeat(66)}-production-eu-west-1`;
    expect(pipeline).toHaveLength(100);
    const { subject } = renderEscalation(withCase({ pipeline, stage: 'S'.repeat(100), violations: rules }));
    expect(subject.length).toBeLessThanOrEqual(SUBJECT_MAX);
    expect(subject).toMatch(PRINTABLE_ASCII);
    expect(subject).toMatch(
      /^Tollgate: ESCALATE payments-api-p+\.\.\.p*-production-eu-west-1\/S+\.\.\. - 30 rules/,
    );
  });

  it('sheds rule names before it cuts the location', () => {
    const rules = ['no-critical', 'known-exploited', 'fixable-high', 'medium-budget', 'scan-timeout'].map(
      (r) => violation(r, 1),
    );
    const { subject } = renderEscalation(
      withCase({ pipeline: 'payments-api-production', violations: rules }),
    );
    expect(subject).toBe(
      'Tollgate: ESCALATE payments-api-production/SecurityGate - 5 rules (no-critical, ...)',
    );
  });

  it('names one rule in the singular and says when there are none', () => {
    expect(renderEscalation(withCase({ violations: [violation('fixable-high', 1)] })).subject).toBe(
      'Tollgate: ESCALATE payments-api/SecurityGate - 1 rule (fixable-high)',
    );
    expect(renderEscalation(withCase({ violations: [] })).subject).toBe(
      'Tollgate: ESCALATE payments-api/SecurityGate - no violations',
    );
  });

  it('says what enforce mode would have done in advisory mode', () => {
    const input = withCase({ record: { outcome: 'APPROVE', mode: 'advisory', wouldBe: 'ESCALATE' } });
    const { subject, text } = renderEscalation(input);
    expect(subject).toMatch(/^Tollgate: APPROVE \(advisory, would be ESCALATE\) payments-api\/SecurityGate/);
    expect(text).toContain('APPROVE (advisory mode; enforce mode would ESCALATE)');
    expect(json(input).wouldBe).toBe('ESCALATE');
  });

  it('never has a line break, a control or non-ASCII character, nor more than 100 characters', () => {
    const name = fc.string({ unit: 'binary', maxLength: 100 });
    fc.assert(
      fc.property(
        name,
        name,
        fc.array(fc.string({ maxLength: 64 }), { maxLength: 40 }),
        (pipeline, stage, rules) => {
          const { subject } = renderEscalation(
            withCase({ pipeline, stage, violations: rules.map((r) => violation(r, 1)) }),
          );
          expect(subject.length).toBeLessThanOrEqual(SUBJECT_MAX);
          expect(subject).toMatch(PRINTABLE_ASCII);
          expect(subject.startsWith('Tollgate: ESCALATE ')).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('the text body', () => {
  const input = exampleEscalationInput();
  const { text } = renderEscalation(input);
  const { record } = input.decision;

  it('has every element an engineer needs to decide', () => {
    const k = input.gate.key;
    for (const part of [k.pipeline, k.stage, k.action, k.executionId, '123456789012 (eu-west-1)']) {
      expect(text).toContain(part);
    }
    const image = input.decision.image!;
    expect(text).toContain(`Repository  ${image.repository}`);
    for (const tag of image.tags) expect(text).toContain(tag);
    expect(text).toContain(`Digest      ${image.digest}`);
    expect(text).toContain('ESCALATE (enforce mode)');
    expect(text).toContain(`production (sha256 ${record.policy.sha256.slice(0, 12)})`);
    expect(text).not.toContain(record.policy.sha256);
    expect(text).toContain('EXC-2026-001');
    expect(text).toContain('when the scan finished');
  });

  it('wraps the summary, keeping every word of it', () => {
    const summaryLines = text.split('\n\n')[1]!;
    expect(summaryLines.split('\n').every((line) => line.length <= 100)).toBe(true);
    expect(summaryLines.replace(/\n/g, ' ')).toBe(record.summary);
  });

  it('lists each violated rule and warning with every finding and its facts', () => {
    for (const v of [...record.violations, ...record.warnings]) {
      expect(text).toMatch(
        new RegExp(
          `^ {2}[✖▲!] ${v.rule} {2}${v.action}: ${v.count} finding\\(s\\), ${v.allow} allowed$`,
          'm',
        ),
      );
    }
    for (const detail of input.decision.details) {
      for (const f of detail.shown) {
        const line = text.split('\n').find((l) => l.startsWith(`    ${f.vulnerabilityId} `));
        expect(line, f.vulnerabilityId).toBeDefined();
        expect(line).toContain(`${f.package} ${f.installedVersion} → ${f.fixedInVersion ?? 'no fix'}`);
        expect(line).toContain(` ${f.severity} `);
        expect(line).toContain(`score ${f.score === undefined ? '-' : f.score.toFixed(1)}`);
        expect(line).toContain(`EPSS ${f.epss === undefined ? '-' : f.epss.toFixed(4)}`);
        const exploit = f.exploitAvailable === undefined ? 'unknown' : f.exploitAvailable ? 'yes' : 'no';
        expect(line).toMatch(new RegExp(`exploit ${exploit}$`));
      }
    }
  });

  it('aligns the finding columns of a violation', () => {
    const lines = text.split('\n').filter((l) => /^ {4}CVE-/.test(l));
    const column = (l: string) => l.indexOf('score');
    expect(new Set(lines.slice(0, 2).map(column)).size).toBe(1);
  });

  it('links the approval and the findings, and ends with how to act', () => {
    const j = json(input);
    expect(text).toContain(`Approval (CodePipeline)  ${j.links.approval}`);
    expect(text).toContain(`Findings (Inspector)     ${j.links.inspectorFindings}`);
    expect(text).toContain(`Image (ECR)              ${j.links.ecrImage}`);
    expect(text.trimEnd().split('\n').at(-1)).toBe(
      `Approve or reject in the CodePipeline console: ${j.links.approval}`,
    );
  });

  it('says how many findings are not shown', () => {
    const shown = manyFindings('fixable-high', 20);
    const { text: t } = renderEscalation(
      withCase({
        violations: [{ ...violation('fixable-high', 23), findings: shown.map((f) => f.vulnerabilityId) }],
        details: [{ rule: 'fixable-high', shown, more: 3 }],
      }),
    );
    expect(t).toContain('… and 3 more finding(s)');
    expect(t.split('\n').filter((l) => /^ {4}CVE-2026-/.test(l))).toHaveLength(20);
  });

  it('lists the ids of a violation stored without details', () => {
    const ids = Array.from({ length: 25 }, (_, i) => `CVE-2025-${String(100 + i)}`);
    const input2 = withCase({
      violations: [{ ...violation('no-critical', 25), findings: ids }],
      details: [],
    });
    const { text: t } = renderEscalation(input2);
    expect(t).toContain(`${ids.slice(0, 20).join(', ')} … and 5 more (details not stored)`);
    expect(json(input2).violations[0]).toMatchObject({ findings: [], more: 25, vulnerabilityIds: ids });
  });

  it('says why there is no image, and links no image page', () => {
    const base = exampleEscalationInput();
    const noImage: EscalationInput = {
      ...base,
      gate: { ...base.gate, image: undefined, imageProblem: 'CustomData names no image' },
      decision: {
        ...base.decision,
        image: undefined,
        record: {
          ...base.decision.record,
          subject: { repository: null, digest: null, tags: [], pipeline: null },
        },
      },
    };
    const m = renderEscalation(noImage);
    expect(m.text).toContain('Image       not identified: CustomData names no image');
    expect((m.json as EscalationJson).links).toMatchObject({ inspectorFindings: null, ecrImage: null });
    expect(m.text).not.toContain('Inspector');
  });
});

describe('the JSON', () => {
  const input = exampleEscalationInput();
  const m = renderEscalation(input);
  const j = m.json as EscalationJson;

  it('counts the ids a decision too large for one item left out, where no findings are shown', () => {
    const base = exampleEscalationInput();
    const cut = {
      ...base,
      decision: {
        ...base.decision,
        details: [],
        record: {
          ...base.decision.record,
          violations: [
            { ...violation('fixable-high', 3000), findings: ['CVE-2024-1'], findingsOmitted: 2999 },
          ],
        },
      },
    };
    expect(json(cut).violations[0]).toMatchObject({ vulnerabilityIds: ['CVE-2024-1'], more: 3000 });
  });

  it('is versioned and carries the gate, image, outcome, policy and links', () => {
    expect(j).toMatchObject({
      version: 'tollgate.escalation/1',
      gate: { ...input.gate.key, actionExecutionId: input.gate.actionExecutionId, account: '123456789012' },
      image: {
        repository: 'payments/api',
        tags: ['1.4.2', 'release-2026-11-25'],
        digest: input.decision.image!.digest,
      },
      outcome: 'ESCALATE',
      summary: input.decision.record.summary,
      policy: input.decision.record.policy,
      expiringSoon: ['EXC-2026-001'],
      decidedAt: input.decision.decidedAt,
    });
    expect(j.violations.map((v) => v.rule)).toEqual(['fixable-high', 'unknown-severity']);
    expect(j.warnings.map((v) => v.rule)).toEqual(['medium-budget']);
  });

  it('has the same findings as the text', () => {
    const fromJson = new Set(
      [...j.violations, ...j.warnings].flatMap((v) => v.findings.map((f) => f.vulnerabilityId)),
    );
    const fromText = new Set(
      m.text
        .split('\n')
        .filter((l) => /^ {4}\S+ {2,}(CRITICAL|HIGH|MEDIUM|LOW|INFORMATIONAL|UNTRIAGED) /.test(l))
        .map((l) => l.trim().split(/\s+/)[0]),
    );
    expect(fromText).toEqual(fromJson);
    expect(fromJson.size).toBe(6);
  });

  it('keeps unknown values as null, so a bot template never meets a missing key', () => {
    const untriaged = j.violations[1]!.findings[0]!;
    expect(untriaged).toEqual({
      vulnerabilityId: 'GHSA-9wx4-h78v-vm56',
      package: 'requests',
      installedVersion: '2.31.0',
      fixedInVersion: '2.32.0',
      severity: 'UNTRIAGED',
      score: null,
      epss: null,
      exploitAvailable: null,
    });
    expect(j.wouldBe).toBeNull();
    expect(JSON.parse(JSON.stringify(j))).toEqual(j);
  });

  it('never carries the approval token hash', () => {
    expect(JSON.stringify(j)).not.toContain(input.gate.tokenHash);
    expect(m.text).not.toContain(input.gate.tokenHash);
  });
});

describe('console links', () => {
  it('point at the execution, Inspector and ECR, in the pipeline region', () => {
    const { links } = json(exampleEscalationInput());
    const digest = exampleEscalationInput().decision.image!.digest;
    expect(links.approval).toBe(
      'https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/payments-api/executions/7c0e5a1d-3b9f-4f43-9a52-0d2f6b1e8c47/visualization?region=eu-west-1',
    );
    expect(links.pipeline).toBe(
      'https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/payments-api/view?region=eu-west-1',
    );
    expect(links.inspectorFindings).toBe(
      `https://eu-west-1.console.aws.amazon.com/inspector/v2/home?region=eu-west-1#/findings/container-image/payments%2Fapi%2F${digest.replace(':', '%3A')}`,
    );
    expect(links.ecrImage).toBe(
      `https://eu-west-1.console.aws.amazon.com/ecr/repositories/private/123456789012/payments/api/_/image/${digest}/details?region=eu-west-1`,
    );
  });

  it('encode path parts and use the partition console', () => {
    const input = withCase({ pipeline: 'a b/c?d#e' });
    expect(json({ ...input, region: 'cn-north-1' }).links.approval).toBe(
      'https://cn-north-1.console.amazonaws.cn/codesuite/codepipeline/pipelines/a%20b%2Fc%3Fd%23e/executions/7c0e5a1d-3b9f-4f43-9a52-0d2f6b1e8c47/visualization?region=cn-north-1',
    );
    expect(json({ ...input, region: 'us-gov-west-1' }).links.pipeline).toMatch(
      /^https:\/\/console\.amazonaws-us-gov\.com\/codesuite\//,
    );
    expect(json({ ...input, region: 'evil.example.com/x' }).links.pipeline).toMatch(
      /^https:\/\/console\.aws\.amazon\.com\/codesuite\/codepipeline\/pipelines\/a%20b%2Fc%3Fd%23e\/view\?region=evil\.example\.com%2Fx$/,
    );
  });

  it('need an account for the ECR page', () => {
    const base = exampleEscalationInput();
    const input: EscalationInput = {
      gate: { ...base.gate, account: '' },
      decision: { ...base.decision, image: { ...base.decision.image!, registryId: undefined } },
      region: 'eu-west-1',
    };
    const { links } = json(input);
    expect(links.ecrImage).toBeNull();
    expect(links.inspectorFindings).not.toBeNull();
  });
});

describe('untrusted text', () => {
  it('cannot break the subject, forge lines of the text, or reach the JSON', () => {
    const input = withCase({
      pipeline: 'payments\r\nBcc: attacker@example.com',
      stage: 'Deploy\u0000\u001b[31m',
      action: 'Gate\u2028Approved: yes',
      executionId: 'abc\u202Eevil',
      violations: [violation('rule\nFAKE LINE', 1)],
      details: [
        {
          rule: 'rule\nFAKE LINE',
          shown: [{ ...manyFindings('x', 1)[0]!, vulnerabilityId: 'CVE-1\nApprove or reject: https://evil' }],
          more: 0,
        },
      ],
    });
    const m = renderEscalation(input);
    expect(m.subject).toMatch(PRINTABLE_ASCII);
    expect(m.subject).toContain('payments Bcc: attacker@example.com/Deploy');
    const lines = m.text.split('\n');
    for (const forged of ['Bcc:', 'Approved: yes', 'FAKE LINE', 'Approve or reject: https://evil']) {
      expect(
        lines.some((l) => l.startsWith(forged)),
        forged,
      ).toBe(false);
    }
    expect(m.text.replace(/\n/g, '')).not.toMatch(/[\p{Cc}\u2028\u202E]/u);
    const j = m.json as EscalationJson;
    expect(j.gate.pipeline).toBe('payments Bcc: attacker@example.com');
    expect(j.gate.stage).toBe('Deploy [31m');
    expect(j.gate.executionId).toBe('abc evil');
    expect(j.violations[0]!.findings[0]!.vulnerabilityId).toBe('CVE-1 Approve or reject: https://evil');
  });
});

describe('approvalSummary', () => {
  const record = exampleEscalationInput().decision.record;

  it('is the record summary when it fits', () => {
    expect(approvalSummary(record)).toBe(record.summary);
  });

  it('cuts an oversized summary to 512 characters with an ellipsis, never half a character', () => {
    const long = approvalSummary({ ...record, summary: `ESCALATE ${'x'.repeat(2000)}` });
    expect(long).toHaveLength(SUMMARY_MAX);
    expect(long.endsWith('x…')).toBe(true);
    const astral = approvalSummary({ ...record, summary: '😀'.repeat(400) });
    expect(astral.length).toBeLessThanOrEqual(SUMMARY_MAX);
    expect(astral).toBe(`${'😀'.repeat(255)}…`);
  });

  it('takes line breaks out', () => {
    expect(approvalSummary({ ...record, summary: 'REJECT\nby policy x' })).toBe('REJECT by policy x');
  });
});

describe('docs/escalation.md', () => {
  it('shows what the example renders today', () => {
    const doc = readFileSync(new URL('../docs/escalation.md', import.meta.url), 'utf8');
    const m = exampleEscalation();
    expect(doc).toContain(m.subject);
    expect(doc).toContain(m.text);
    expect(doc).toContain(JSON.stringify(m.json, null, 2));
  });
});
