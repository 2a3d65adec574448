import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FORMAT_ATTRIBUTE,
  FORMAT_VERSION,
  fitMessage,
  snsMessageBody,
  snsSubject,
} from '../adapters/aws/sns.js';
import { type DecisionRecord, SUMMARY_MAX, type Violation } from '../shared/decision/record.js';
import { buildSummary } from '../shared/decision/summary.js';
import { boundedDecision } from '../shared/gate/bounds.js';
import { exampleEscalation, exampleEscalationInput } from '../shared/gate/escalation.example.js';
import {
  approvalSummary,
  type EscalationInput,
  type EscalationJson,
  renderEscalation,
  SUBJECT_MAX,
  TEXT_IDS_MAX_BYTES,
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
    attempt?: number;
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
    ...(options.attempt === undefined ? {} : { attempt: options.attempt }),
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

/** The example with one rule of `n` distinct ids, 20 findings shown, as the gate would store it. */
function oneRuleOf(n: number): EscalationInput {
  const ids = Array.from({ length: n }, (_, i) => `CVE-2026-${String(100_000 + i)}`);
  const shown = manyFindings('fixable-high', 20).map((f, i) => ({ ...f, vulnerabilityId: ids[i]! }));
  const input = withCase({
    violations: [{ ...violation('fixable-high', n), findings: ids }],
    details: [{ rule: 'fixable-high', shown, more: n - 20 }],
    record: { warnings: [] },
  });
  return { ...input, decision: boundedDecision(input.decision) };
}

/** The JSON machine subscribers receive once the SNS adapter fitted the message into `budget` bytes. */
function sentJson(input: EscalationInput, budget: number): { json: EscalationJson; email: string } {
  const body = JSON.parse(fitMessage(renderEscalation(input), budget)) as { sqs: string; default: string };
  return { json: JSON.parse(body.sqs) as EscalationJson, email: body.default };
}

describe('the subject', () => {
  it('says outcome, pipeline/stage and the rules', () => {
    expect(exampleEscalation().subject).toBe(
      'Tollgate: ESCALATE payments-api/SecurityGate #7c0e5a1d - 2 rules (fixable-high, unknown-severity)',
    );
  });

  it('stays within 99 printable ASCII characters for the longest names and many rules', () => {
    const rules = Array.from({ length: 30 }, (_, i) =>
      violation(`rule-${String(i).padStart(2, '0')}-${'x'.repeat(56)}`, 1),
    );
    const pipeline = `payments-api-${'p'.repeat(66)}-production-eu-west-1`;
    expect(pipeline).toHaveLength(100);
    const { subject } = renderEscalation(withCase({ pipeline, stage: 'S'.repeat(100), violations: rules }));
    expect(subject.length).toBeLessThanOrEqual(SUBJECT_MAX);
    expect(subject).toMatch(PRINTABLE_ASCII);
    expect(subject).toMatch(
      /^Tollgate: ESCALATE payments-api-p+\.\.\.[a-z-]*-eu-west-1\/S+\.\.\. #7c0e5a1d - 30 rules$/,
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
      'Tollgate: ESCALATE payments-api-production/SecurityGate #7c0e5a1d - 5 rules (no-critical, ...)',
    );
  });

  it('names one rule in the singular and says when there are none', () => {
    expect(renderEscalation(withCase({ violations: [violation('fixable-high', 1)] })).subject).toBe(
      'Tollgate: ESCALATE payments-api/SecurityGate #7c0e5a1d - 1 rule (fixable-high)',
    );
    expect(renderEscalation(withCase({ violations: [] })).subject).toBe(
      'Tollgate: ESCALATE payments-api/SecurityGate #7c0e5a1d - no violations',
    );
  });

  it('says what enforce mode would have done in advisory mode', () => {
    const input = withCase({ record: { outcome: 'APPROVE', mode: 'advisory', wouldBe: 'ESCALATE' } });
    const { subject, text } = renderEscalation(input);
    expect(subject).toMatch(/^Tollgate: APPROVE \(advisory, would be ESCALATE\) payments-api\/SecurityGate/);
    expect(text).toContain('APPROVE (advisory mode; enforce mode would ESCALATE)');
    expect(json(input).wouldBe).toBe('ESCALATE');
  });

  it('names first what set the outcome, so a scan nobody could read never hides behind "..."', () => {
    const rules = ['no-critical', 'known-exploited', 'fixable-high', 'medium-budget'].map((r) =>
      violation(r, 1),
    );
    const scan: Violation = { ...violation('scan-incomplete', 0), description: 'no scan' };
    // Advisory mode: the policy's rules only say what enforce mode would do; the implicit one escalated.
    const advisory = renderEscalation(
      withCase({
        pipeline: 'payments',
        stage: 'Gate',
        violations: [...rules, scan],
        record: { outcome: 'ESCALATE', mode: 'advisory', wouldBe: 'ESCALATE' },
      }),
    ).subject;
    expect(advisory).toBe(
      'Tollgate: ESCALATE (advisory) payments/Gate #7c0e5a1d - 5 rules (scan-incomplete, no-critical, ...)',
    );
    // Enforce mode: a rejecting rule listed after escalating ones is the one the subject names first.
    const enforce = renderEscalation(
      withCase({
        pipeline: 'payments-api-production',
        violations: [...rules, { ...violation('banned-package', 1), action: 'reject' }],
        record: { outcome: 'REJECT' },
      }),
    ).subject;
    expect(enforce).toBe(
      'Tollgate: REJECT payments-api-production/SecurityGate #7c0e5a1d - 5 rules (banned-package, ...)',
    );
  });

  it('fits under the SNS limit as rendered, so the adapter never cuts a carefully shortened subject', () => {
    const pipeline = `payments-platform-checkout-api-${'service'.repeat(4)}-eu-west-1`;
    expect(pipeline.length).toBeGreaterThanOrEqual(58);
    const rules = [violation('fixable-high-with-known-exploit', 1), violation('unknown-severity-rule', 1)];
    const { subject } = renderEscalation(withCase({ pipeline, violations: rules }));
    expect(subject.length).toBeLessThanOrEqual(SUBJECT_MAX);
    expect(SUBJECT_MAX).toBeLessThan(100);
    expect(subject).toMatch(/\/SecurityGate #7c0e5a1d - 2 rules$/);
    expect(snsSubject(subject)).toBe(subject);
  });

  it('tells two executions and two attempts of one pipeline apart, however long its name', () => {
    for (const pipeline of ['payments-api', `payments-api-${'p'.repeat(80)}-production-eu-west-1`]) {
      const rules = Array.from({ length: 12 }, (_, i) => violation(`rule-${i}-${'x'.repeat(40)}`, 1));
      const subjectOf = (executionId: string, attempt?: number) =>
        renderEscalation(
          withCase({ pipeline, executionId, violations: rules, ...(attempt ? { attempt } : {}) }),
        ).subject;
      const a = subjectOf('7c0e5a1d-3b9f-4f43-9a52-0d2f6b1e8c47');
      const b = subjectOf('9e41b7c2-3b9f-4f43-9a52-0d2f6b1e8c47');
      const retried = subjectOf('7c0e5a1d-3b9f-4f43-9a52-0d2f6b1e8c47', 2);
      expect(new Set([a, b, retried]).size).toBe(3);
      expect(a).toContain(' #7c0e5a1d - 12 rules');
      expect(b).toContain(' #9e41b7c2 - 12 rules');
      expect(retried).toContain(' #7c0e5a1d a2 - 12 rules');
      for (const s of [a, b, retried]) expect(s.length).toBeLessThanOrEqual(SUBJECT_MAX);
    }
  });

  it('never has a line break, a control or non-ASCII character, nor more than 99 characters', () => {
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
          expect(snsSubject(subject)).toBe(subject);
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

  it("says a redelivered or raced STARTED event's trigger in words too", () => {
    const example = exampleEscalationInput();
    for (const trigger of ['approval-started (again)', 'approval-started (raced)']) {
      const { text: again } = renderEscalation({ ...example, decision: { ...example.decision, trigger } });
      expect(again).toContain('when the approval started');
    }
    const { text: unknown } = renderEscalation({
      ...example,
      decision: { ...example.decision, trigger: 'something new (later)' },
    });
    expect(unknown).toContain('something new (later)');
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

  it('lists the ids of findings not shown, since email subscribers never receive the JSON', () => {
    const ids = Array.from({ length: 25 }, (_, i) => `CVE-2026-${String(1000 + i)}`);
    const shown = manyFindings('fixable-high', 20);
    const { text: t } = renderEscalation(
      withCase({
        violations: [{ ...violation('fixable-high', 25), findings: ids }],
        details: [{ rule: 'fixable-high', shown, more: 5 }],
      }),
    );
    expect(t.replace(/\n {6}/g, ' ')).toContain(`    … and 5 more finding(s): ${ids.slice(20).join(', ')}\n`);
    expect(t).not.toMatch(/JSON/);
  });

  it('lists the remaining ids up to a byte cap, then says how many more and where they are', () => {
    const input2 = oneRuleOf(30_000);
    const j = json(input2);
    const { text: t } = renderEscalation(input2);
    expect(t).not.toMatch(/JSON/);
    const start = t.indexOf('    … and 29980 more finding(s): ');
    expect(start).toBeGreaterThan(0);
    const block = t.slice(start).split('\n');
    const end = block.findIndex((l) => l.startsWith('      … and '));
    const listed = block
      .slice(0, end)
      .join(' ')
      .replace('    … and 29980 more finding(s): ', '')
      .split(', ')
      .map((id) => id.trim());
    expect(listed.join(', ').length).toBeLessThanOrEqual(TEXT_IDS_MAX_BYTES);
    expect(listed.length).toBeGreaterThan(20);
    expect(listed[0]).toBe('CVE-2026-100020');
    const more = Number(
      /^ {6}… and (\d+) more id\(s\): see the image's findings in ECR \(Links\)$/.exec(block[end]!)?.[1],
    );
    expect(20 + listed.length + more).toBe(30_000);
    expect(j.violations[0]!.moreVulnerabilityIds).toBeGreaterThan(0);
    expect(block.slice(0, end).every((l) => l.length <= 102)).toBe(true);
  });

  it('lists the ids of a violation stored without details', () => {
    const ids = Array.from({ length: 25 }, (_, i) => `CVE-2025-${String(100 + i)}`);
    const input2 = withCase({
      violations: [{ ...violation('no-critical', 25), findings: ids }],
      details: [],
    });
    const { text: t } = renderEscalation(input2);
    expect(t.replace(/\n {6}/g, ' ')).toContain(
      `    25 vulnerability id(s), details not stored: ${ids.join(', ')}\n`,
    );
    expect(json(input2).violations[0]).toMatchObject({
      findings: [],
      more: 25,
      vulnerabilityIds: ids,
      moreVulnerabilityIds: 0,
    });
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
    expect(json(cut).violations[0]).toMatchObject({
      vulnerabilityIds: ['CVE-2024-1'],
      more: 3000,
      moreVulnerabilityIds: 2999,
    });
  });

  it('counts the ids a decision cut to fit one item left out, so that every id is listed or counted', () => {
    const input2 = oneRuleOf(30_000);
    const v = json(input2).violations[0]!;
    expect(v.vulnerabilityIds.length).toBeLessThan(30_000);
    expect(v.vulnerabilityIds.length + v.moreVulnerabilityIds).toBe(30_000);
    expect(v.findings.length + v.more).toBe(30_000);
  });

  it('has the same fields for every violation, whatever was cut', () => {
    const keys = [
      'rule',
      'action',
      'count',
      'allow',
      'description',
      'findings',
      'more',
      'vulnerabilityIds',
      'moreVulnerabilityIds',
    ];
    for (const v of [...j.violations, ...j.warnings]) expect(Object.keys(v)).toEqual(keys);
    expect(j.violations[0]).toMatchObject({ more: 0, moreVulnerabilityIds: 0 });
    expect(Object.keys(json(oneRuleOf(30_000)).violations[0]!)).toEqual(keys);
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

describe('the escalation as SNS sends it', () => {
  it('keeps every id listed or counted when the adapter shortens the JSON', () => {
    const input = oneRuleOf(30_000);
    const { json: sent, email } = sentJson(input, 60_000);
    const v = sent.violations[0]!;
    expect(v.vulnerabilityIds.length).toBeGreaterThan(0);
    expect(v.vulnerabilityIds.length).toBeLessThan(json(input).violations[0]!.vulnerabilityIds.length);
    expect(v.vulnerabilityIds.length + v.moreVulnerabilityIds).toBe(30_000);
    expect(v.findings.length + v.more).toBe(30_000);
    expect(email).toContain(`in all it leaves out ${v.moreVulnerabilityIds} of 30000 vulnerability ids`);
    expect(email).toContain('the JSON sent to SQS, Lambda and HTTP(S) subscribers was shortened');
  });

  it('shortens thousands of expiring exceptions like any list, counted in `moreExpiringSoon`, the JSON whole', () => {
    const base = exampleEscalationInput();
    const ids = Array.from({ length: 5_000 }, (_, i) => `EXC-2026-${String(i).padStart(5, '0')}-renewal`);
    const record = {
      ...base.decision.record,
      exceptions: { ...base.decision.record.exceptions, expiringSoon: ids },
    };
    const input = { ...base, decision: { ...base.decision, record } };
    expect(json(input)).toMatchObject({ expiringSoon: ids, moreExpiringSoon: 0 });
    const { json: sent, email } = sentJson(input, 200_000);
    expect(sent).not.toHaveProperty('truncated');
    expect(sent.expiringSoon.length).toBeGreaterThan(0);
    expect(sent.expiringSoon).toEqual(ids.slice(0, sent.expiringSoon.length));
    expect(sent.expiringSoon.length + sent.moreExpiringSoon).toBe(ids.length);
    // The rest of the decision is all there: only the long list was cut.
    expect(sent.violations).toEqual(json(input).violations);
    expect(email).toContain(`in all it leaves out ${sent.moreExpiringSoon} of 5000 expiring exceptions`);
  });

  it('has the same shape shortened as whole, the cut findings counted in `more`', () => {
    const rules = Array.from({ length: 10 }, (_, i) => `rule-${String(i).padStart(2, '0')}`);
    const input = withCase({
      violations: rules.map((r) => ({ ...violation(r, 25), findings: [] })),
      details: rules.map((r) => ({ rule: r, shown: manyFindings(r, 20), more: 5 })),
    });
    const whole = json(input);
    expect(JSON.parse(JSON.parse(snsMessageBody('t', whole)).sqs)).toEqual(whole);
    const { json: sent } = sentJson(input, 120_000);
    const shape = (value: unknown): unknown =>
      Array.isArray(value)
        ? value.length === 0
          ? []
          : [shape(value[0])]
        : value !== null && typeof value === 'object'
          ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape(v)]))
          : typeof value;
    expect(shape(sent)).toEqual(shape(whole));
    expect(JSON.stringify(sent)).not.toMatch(/Omitted/);
    for (const [i, v] of sent.violations.entries()) {
      expect(v.findings.length).toBeLessThan(20);
      expect(v.findings.length + v.more).toBe(25);
      expect(v.findings).toEqual(whole.violations[i]!.findings.slice(0, v.findings.length));
    }
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
    // By the image's resource id, as Inspector names it (a finding's resources[].id), encoded.
    expect(links.inspectorFindings).toBe(
      `https://eu-west-1.console.aws.amazon.com/inspector/v2/home?region=eu-west-1#/findings/container-image/arn%3Aaws%3Aecr%3Aeu-west-1%3A123456789012%3Arepository%2Fpayments%2Fapi%2F${digest.replace(':', '%3A')}`,
    );
    expect(decodeURIComponent(links.inspectorFindings!.split('#/findings/container-image/')[1]!)).toBe(
      `arn:aws:ecr:eu-west-1:123456789012:repository/payments/api/${digest}`,
    );
    // In another partition, its ARN's.
    expect(
      decodeURIComponent(
        json({ ...exampleEscalationInput(), region: 'cn-north-1' }).links.inspectorFindings!,
      ),
    ).toContain(
      `#/findings/container-image/arn:aws-cn:ecr:cn-north-1:123456789012:repository/payments/api/${digest}`,
    );
    // An ECR basic scan's image was never in Inspector: no link there, the ECR page only.
    const basic = json({ ...exampleEscalationInput(), scanSource: 'ecr' }).links;
    expect(basic.inspectorFindings).toBeNull();
    expect(basic.ecrImage).not.toBeNull();
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

  it("need an account for the ECR page, and for Inspector's (the image's resource id names it)", () => {
    const base = exampleEscalationInput();
    const input: EscalationInput = {
      gate: { ...base.gate, account: '' },
      decision: { ...base.decision, image: { ...base.decision.image!, registryId: undefined } },
      region: 'eu-west-1',
    };
    const { links } = json(input);
    expect(links.ecrImage).toBeNull();
    expect(links.inspectorFindings).toBeNull();
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

  it('keeps, in a summary cut for length, what set the outcome: an advisory escalation says why', () => {
    const rule = (i: number) => ({
      rule: `rule-${String(i).padStart(2, '0')}-${'x'.repeat(40)}`,
      action: 'reject' as const,
      allow: 0,
      count: 1,
      findings: [`CVE-2026-${1000 + i}`],
      bySeverity: new Map([['HIGH' as const, 1]]),
    });
    const scan = {
      rule: 'scan-incomplete',
      action: 'escalate' as const,
      allow: 0,
      count: 0,
      findings: [],
      description: 'no scan of the image',
      bySeverity: new Map(),
    };
    const summary = buildSummary({
      outcome: 'ESCALATE',
      wouldBe: 'REJECT',
      policyName: 'p',
      violations: [...Array.from({ length: 20 }, (_, i) => rule(i)), scan],
      warnings: [],
    });
    expect(summary.length).toBeLessThanOrEqual(SUMMARY_MAX);
    expect(summary).toMatch(/^ESCALATE \(advisory; would be REJECT\) by policy p: scan-incomplete \(no scan/);
    // What would have rejected comes next, in the policy's order.
    expect(summary).toContain('scan of the image); rule-00-');
  });

  it('takes line breaks out', () => {
    expect(approvalSummary({ ...record, summary: 'REJECT\nby policy x' })).toBe('REJECT by policy x');
  });

  it('never sends half a character: a summary cut through one, or echoing a lone surrogate, is made whole', () => {
    const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
    // The record's own summary, cut at 512 units by the decision, where an emoji straddles the cut.
    for (let pad = 0; pad < 4; pad++) {
      const summary = buildSummary({
        outcome: 'ESCALATE',
        wouldBe: undefined,
        policyName: 'p',
        violations: [
          {
            rule: 'error',
            action: 'escalate',
            allow: 0,
            count: 0,
            findings: [],
            description: `${'x'.repeat(480 + pad)}${'😀'.repeat(40)}`,
            bySeverity: new Map(),
          },
        ],
        warnings: [],
      });
      expect(summary.length).toBeLessThanOrEqual(SUMMARY_MAX);
      expect(lone.test(summary), `pad ${pad}`).toBe(false);
      expect(lone.test(approvalSummary({ ...record, summary })), `pad ${pad}`).toBe(false);
    }
    // Half a character echoed from CustomData or an error.
    expect(approvalSummary({ ...record, summary: 'ESCALATE: no image: \ud83d from CustomData' })).toBe(
      'ESCALATE: no image: \ufffd from CustomData',
    );
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

  it('promises delivery at least once, and documents the message attribute filter policies can use', () => {
    const doc = readFileSync(new URL('../docs/escalation.md', import.meta.url), 'utf8');
    expect(doc).toMatch(/at least once/);
    expect(doc).not.toMatch(/publishes \*\*one\*\*/);
    expect(doc).toContain(`"${FORMAT_ATTRIBUTE}": ["${FORMAT_VERSION}"]`);
  });
});
