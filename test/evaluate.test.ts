import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { evaluate, type Finding, SUMMARY_MAX } from '../shared/index.js';
import { DAY, finding, IMAGE, NOW, policy, run } from './helpers.js';

/** Which findings (by vulnerability id) a single-rule policy with these conditions matches. */
function matching(when: string, findings: Finding[], extra: Parameters<typeof run>[2] = {}): string[] {
  const p = policy(`rules:\n  - id: r\n    action: reject\n    when: ${when}\n`);
  const v = run(p, findings, extra).record.violations.find((x) => x.rule === 'r');
  return v ? [...v.findings] : [];
}

describe('conditions', () => {
  it('severity', () => {
    const fs = [
      finding({ vulnerabilityId: 'C', severity: 'CRITICAL' }),
      finding({ vulnerabilityId: 'H', severity: 'HIGH' }),
    ];
    expect(matching('{ severity: [CRITICAL] }', fs)).toEqual(['C']);
    expect(matching('{ severity: [CRITICAL, HIGH] }', fs)).toEqual(['C', 'H']);
  });

  it('severity UNTRIAGED also matches severities nobody rated (ECR UNDEFINED, typos)', () => {
    const fs = [
      finding({ vulnerabilityId: 'U', severity: 'UNTRIAGED' }),
      finding({ vulnerabilityId: 'X', severity: 'UNDEFINED' }),
    ];
    expect(matching('{ severity: [UNTRIAGED] }', fs)).toEqual(['U', 'X']);
  });

  it('minScore: at or above; no score never matches', () => {
    const fs = [
      finding({ vulnerabilityId: 'A', score: 7 }),
      finding({ vulnerabilityId: 'B', score: 6.9 }),
      finding({ vulnerabilityId: 'C', score: undefined }),
    ];
    expect(matching('{ minScore: 7.0 }', fs)).toEqual(['A']);
    expect(matching('{ minScore: 0 }', fs)).toEqual(['A', 'B']);
  });

  it('fixAvailable: unknown never matches', () => {
    const fs = [
      finding({ vulnerabilityId: 'Y', fixAvailable: 'YES' }),
      finding({ vulnerabilityId: 'P', fixAvailable: 'PARTIAL' }),
      finding({ vulnerabilityId: 'N', fixAvailable: 'NO' }),
      finding({ vulnerabilityId: 'U' }),
    ];
    expect(matching('{ fixAvailable: [YES, PARTIAL] }', fs)).toEqual(['P', 'Y']);
    expect(matching('{ fixAvailable: [NO] }', fs)).toEqual(['N']);
  });

  it('exploitAvailable: true or false; unknown never matches', () => {
    const fs = [
      finding({ vulnerabilityId: 'T', exploitAvailable: true }),
      finding({ vulnerabilityId: 'F', exploitAvailable: false }),
      finding({ vulnerabilityId: 'U' }),
    ];
    expect(matching('{ exploitAvailable: true }', fs)).toEqual(['T']);
    expect(matching('{ exploitAvailable: false }', fs)).toEqual(['F']);
  });

  it('minEpss: at or above; no EPSS never matches', () => {
    const fs = [
      finding({ vulnerabilityId: 'A', epss: 0.2 }),
      finding({ vulnerabilityId: 'B', epss: 0.19 }),
      finding({ vulnerabilityId: 'C' }),
    ];
    expect(matching('{ minEpss: 0.2 }', fs)).toEqual(['A']);
  });

  it('olderThanDays: strictly more than d days before now; younger and undated findings do not count yet', () => {
    const fs = [
      finding({ vulnerabilityId: 'OLD', firstObservedAt: NOW.getTime() - 31 * DAY }),
      finding({ vulnerabilityId: 'EDGE', firstObservedAt: NOW.getTime() - 30 * DAY }),
      finding({ vulnerabilityId: 'NEW', firstObservedAt: NOW.getTime() - DAY }),
      finding({ vulnerabilityId: 'UNDATED' }),
    ];
    expect(matching('{ olderThanDays: 30 }', fs)).toEqual(['OLD']);
    expect(matching('{ olderThanDays: 0 }', fs)).toEqual(['EDGE', 'NEW', 'OLD']);
  });

  it('vulnerabilityIds with * wildcards, case-sensitive', () => {
    const fs = [
      finding({ vulnerabilityId: 'CVE-2021-44228' }),
      finding({ vulnerabilityId: 'GHSA-jfh8-c2jp-5v3q' }),
      finding({ vulnerabilityId: 'ALAS-2024-1234' }),
      finding({ vulnerabilityId: 'cve-2021-44228' }),
    ];
    expect(matching('{ vulnerabilityIds: [CVE-2021-44228, "GHSA-*"] }', fs)).toEqual([
      'CVE-2021-44228',
      'GHSA-jfh8-c2jp-5v3q',
    ]);
    expect(matching('{ vulnerabilityIds: ["*-2024-*"] }', fs)).toEqual(['ALAS-2024-1234']);
  });

  it('packages: any vulnerable package matches a glob', () => {
    const fs = [
      finding({
        vulnerabilityId: 'A',
        packages: [{ name: 'libssl3', version: '1', fixedInVersion: undefined }],
      }),
      finding({
        vulnerabilityId: 'B',
        packages: [
          { name: 'curl', version: '1', fixedInVersion: undefined },
          { name: 'libcurl4', version: '1', fixedInVersion: undefined },
        ],
      }),
      finding({ vulnerabilityId: 'C', packages: [] }),
    ];
    expect(matching('{ packages: ["libssl*", "libcurl*"] }', fs)).toEqual(['A', 'B']);
  });

  it('repositories: the image repository, * crosses /; unknown repository never matches', () => {
    const fs = [finding({ vulnerabilityId: 'A' })];
    expect(matching('{ repositories: ["payments/*"] }', fs)).toEqual(['A']);
    expect(matching('{ repositories: ["*"] }', fs)).toEqual(['A']);
    expect(matching('{ repositories: ["pay*api"] }', fs)).toEqual(['A']);
    expect(matching('{ repositories: ["orders/*"] }', fs)).toEqual([]);
    expect(matching('{ repositories: ["*"] }', fs, { image: undefined })).toEqual([]);
  });

  it('pipelines: no pipeline known never matches', () => {
    const fs = [finding({ vulnerabilityId: 'A' })];
    expect(matching('{ pipelines: ["payments-*"] }', fs)).toEqual(['A']);
    expect(matching('{ pipelines: ["orders-*"] }', fs)).toEqual([]);
    expect(matching('{ pipelines: ["*"] }', fs, { pipeline: undefined })).toEqual([]);
  });

  it('all conditions must hold; {} matches every counted finding', () => {
    const fs = [
      finding({ vulnerabilityId: 'A', severity: 'HIGH', fixAvailable: 'YES' }),
      finding({ vulnerabilityId: 'B', severity: 'HIGH', fixAvailable: 'NO' }),
      finding({ vulnerabilityId: 'C', severity: 'LOW', fixAvailable: 'YES' }),
    ];
    expect(matching('{ severity: [HIGH], fixAvailable: [YES] }', fs)).toEqual(['A']);
    expect(matching('{}', fs)).toEqual(['A', 'B', 'C']);
  });

  it('allow: violated only when more findings than allowed match', () => {
    const p = policy(
      'rules:\n  - { id: budget, action: escalate, allow: 2, when: { severity: [MEDIUM] } }\n',
    );
    const two = [finding(), finding()];
    expect(run(p, two).record.outcome).toBe('APPROVE');
    const three = run(p, [...two, finding()]).record;
    expect(three.outcome).toBe('ESCALATE');
    expect(three.violations[0]).toMatchObject({ rule: 'budget', action: 'escalate', allow: 2, count: 3 });
  });

  it('findings lists distinct vulnerability ids, sorted; count counts findings', () => {
    const p = policy('rules:\n  - { id: r, action: reject }\n');
    const fs = [
      finding({ vulnerabilityId: 'CVE-2' }),
      finding({ vulnerabilityId: 'CVE-1' }),
      finding({ vulnerabilityId: 'CVE-2' }),
    ];
    expect(run(p, fs).record.violations[0]).toMatchObject({ count: 3, findings: ['CVE-1', 'CVE-2'] });
  });
});

describe('outcome', () => {
  const p = policy(`rules:
  - { id: crit, action: reject, when: { severity: [CRITICAL] } }
  - { id: high, action: escalate, when: { severity: [HIGH] } }
  - { id: med, action: warn, when: { severity: [MEDIUM] } }
`);

  it('REJECT beats ESCALATE beats APPROVE; warn never changes it', () => {
    expect(run(p, []).record.outcome).toBe('APPROVE');
    expect(run(p, [finding({ severity: 'MEDIUM' })]).record.outcome).toBe('APPROVE');
    expect(run(p, [finding({ severity: 'HIGH' })]).record.outcome).toBe('ESCALATE');
    expect(run(p, [finding({ severity: 'HIGH' }), finding({ severity: 'CRITICAL' })]).record.outcome).toBe(
      'REJECT',
    );
  });

  it('every rule is evaluated; violations in rule order, warnings apart', () => {
    const r = run(p, [
      finding({ severity: 'CRITICAL' }),
      finding({ severity: 'HIGH' }),
      finding({ severity: 'MEDIUM' }),
    ]).record;
    expect(r.violations.map((v) => v.rule)).toEqual(['crit', 'high']);
    expect(r.warnings.map((v) => v.rule)).toEqual(['med']);
  });

  it('statuses: other statuses are ignored and counted apart; no status counts as ACTIVE', () => {
    const r = run(p, [
      finding({ severity: 'CRITICAL', status: 'SUPPRESSED' }),
      finding({ severity: 'CRITICAL', status: 'CLOSED' }),
    ]).record;
    expect(r.outcome).toBe('APPROVE');
    expect(r.ignored).toBe(2);
    expect(r.counts.CRITICAL).toBe(0);
    const withSuppressed = policy(
      'settings: { statuses: [ACTIVE, SUPPRESSED] }\nrules: [{ id: crit, action: reject }]\n',
    );
    expect(run(withSuppressed, [finding({ status: 'SUPPRESSED' })]).record.outcome).toBe('REJECT');
  });

  it('counts the counted findings by severity, before exceptions', () => {
    const q = policy(
      'exceptions:\n  - { id: E, vulnerabilityId: CVE-1, expires: 2027-01-01, reason: r, approvedBy: a }\n',
    );
    const r = run(q, [
      finding({ vulnerabilityId: 'CVE-1', severity: 'CRITICAL' }),
      finding({ severity: 'LOW' }),
      finding({ severity: 'UNDEFINED' }),
      finding({ severity: 'HIGH', status: 'CLOSED' }),
    ]).record;
    expect(r.counts).toEqual({ CRITICAL: 1, HIGH: 0, MEDIUM: 0, LOW: 1, INFORMATIONAL: 0, UNTRIAGED: 1 });
  });
});

describe('implicit violations', () => {
  it('unknown-severity: escalate by default, with the action of settings.unknownSeverity, or not at all', () => {
    const fs = [
      finding({ vulnerabilityId: 'U', severity: 'UNTRIAGED' }),
      finding({ vulnerabilityId: 'X', severity: 'weird' }),
    ];
    const r = run(policy(''), fs).record;
    expect(r.outcome).toBe('ESCALATE');
    expect(r.violations).toEqual([
      {
        rule: 'unknown-severity',
        action: 'escalate',
        allow: 0,
        count: 2,
        findings: ['U', 'X'],
        description: 'findings whose severity is UNTRIAGED or not recognised',
      },
    ]);
    expect(run(policy('settings: { unknownSeverity: reject }\n'), fs).record.outcome).toBe('REJECT');
    expect(run(policy('settings: { unknownSeverity: ignore }\n'), fs).record.violations).toEqual([]);
  });

  it('an exception takes a finding out of unknown-severity too', () => {
    const p = policy(
      'exceptions:\n  - { id: E, vulnerabilityId: U, expires: 2027-01-01, reason: r, approvedBy: a }\n',
    );
    expect(run(p, [finding({ vulnerabilityId: 'U', severity: 'UNTRIAGED' })]).record.outcome).toBe('APPROVE');
  });

  it('scan-incomplete: settings.scan.onUnsupported, after the rules, with the reason', () => {
    const p = policy('rules: [{ id: crit, action: warn, when: { severity: [CRITICAL] } }]\n');
    const scan = { complete: false, status: 'FAILED', reason: 'ECR scan status FAILED: boom' } as const;
    const r = run(p, [finding({ severity: 'CRITICAL' })], { scan }).record;
    expect(r.outcome).toBe('ESCALATE');
    expect(r.violations).toEqual([
      {
        rule: 'scan-incomplete',
        action: 'escalate',
        allow: 0,
        count: 0,
        findings: [],
        description: 'ECR scan status FAILED: boom',
      },
    ]);
    expect(run(policy('settings: { scan: { onUnsupported: reject } }\n'), [], { scan }).record.outcome).toBe(
      'REJECT',
    );
    expect(run(p, [], { scan: { complete: true, status: 'COMPLETE' } }).record.outcome).toBe('APPROVE');
  });

  it('scan-timeout and error from the gate, with their settings', () => {
    const p = policy('settings: { scan: { onTimeout: reject }, onError: escalate }\n');
    const r = run(p, [], {
      conditions: [
        { kind: 'scan-timeout', reason: 'no finished scan after 30 minutes' },
        { kind: 'error', reason: 'ListFindings failed on page 3' },
      ],
    }).record;
    expect(r.outcome).toBe('REJECT');
    expect(r.violations.map((v) => [v.rule, v.action, v.description])).toEqual([
      ['scan-timeout', 'reject', 'no finished scan after 30 minutes'],
      ['error', 'escalate', 'ListFindings failed on page 3'],
    ]);
    expect(r.summary).toBe(
      'REJECT by policy test: scan-timeout (no finished scan after 30 minutes); error (ListFindings failed on page 3)',
    );
  });

  it('implicit violations come after the rules, in a fixed order', () => {
    const p = policy('rules: [{ id: any, action: warn, allow: 5 }, { id: all, action: escalate }]\n');
    const r = run(p, [finding({ severity: 'UNTRIAGED' })], {
      scan: { complete: false, status: 'X', reason: 'x' },
      conditions: [{ kind: 'error', reason: 'e' }],
    }).record;
    expect(r.violations.map((v) => v.rule)).toEqual(['all', 'unknown-severity', 'scan-incomplete', 'error']);
  });
});

describe('exceptions', () => {
  const exc = (extra: string, expires = '2027-01-31') =>
    policy(`rules:
  - { id: crit, action: reject, when: { severity: [CRITICAL] } }
settings: { expiringSoonDays: 14 }
exceptions:
  - id: E
    vulnerabilityId: CVE-2024-6119
    expires: ${expires}
    reason: not reachable
    approvedBy: jane@example.com
${extra}`);
  const crit = (over: Partial<Finding> = {}) =>
    finding({ vulnerabilityId: 'CVE-2024-6119', severity: 'CRITICAL', ...over });

  it('applied: the finding leaves every rule', () => {
    const r = run(exc(''), [crit()]).record;
    expect(r.outcome).toBe('APPROVE');
    expect(r.exceptions).toEqual({ applied: ['E'], expired: [], revoked: [], unused: [], expiringSoon: [] });
    expect(r.counts.CRITICAL).toBe(1);
  });

  it('expired: a date lasts to the end of that day (UTC); after it the finding counts again', () => {
    const lastDay = exc('', '2026-11-25');
    expect(run(lastDay, [crit()]).record.exceptions.applied).toEqual(['E']);
    const r = run(exc('', '2026-11-24'), [crit()]).record;
    expect(r.outcome).toBe('REJECT');
    expect(r.exceptions).toMatchObject({ applied: [], expired: ['E'] });
    const ts = run(exc('', '2026-11-25T11:59:59Z'), [crit()]).record;
    expect(ts.exceptions.expired).toEqual(['E']);
  });

  it('expiring soon: applied and expiring within expiringSoonDays', () => {
    expect(run(exc('', '2026-12-09'), [crit()]).record.exceptions).toMatchObject({
      applied: ['E'],
      expiringSoon: ['E'],
    });
    expect(run(exc('', '2026-12-10'), [crit()]).record.exceptions.expiringSoon).toEqual([]);
  });

  it('revoked: ANY revokeIf condition that holds for the finding', () => {
    const p = exc('    revokeIf: { exploitAvailable: true, minEpss: 0.5 }\n');
    expect(run(p, [crit({ exploitAvailable: false, epss: 0.1 })]).record.exceptions.applied).toEqual(['E']);
    for (const over of [{ exploitAvailable: true }, { epss: 0.5 }]) {
      const r = run(p, [crit(over)]).record;
      expect(r.outcome).toBe('REJECT');
      expect(r.exceptions).toMatchObject({ applied: [], revoked: ['E'] });
    }
  });

  it('revokeIf on score, fix and severity; unknown values never revoke', () => {
    const p = exc('    revokeIf: { minScore: 9, fixAvailable: [YES], severity: [CRITICAL] }\n');
    expect(run(p, [crit({ score: 9.1 })]).record.exceptions.revoked).toEqual(['E']);
    const q = exc('    revokeIf: { minScore: 9, fixAvailable: [YES] }\n');
    expect(run(q, [crit({ fixAvailable: 'YES' })]).record.exceptions.revoked).toEqual(['E']);
    expect(run(q, [crit()]).record.exceptions.applied).toEqual(['E']);
  });

  it('an expired exception is expired even when revokeIf would hold', () => {
    const p = exc('    revokeIf: { exploitAvailable: true }\n', '2026-01-01');
    expect(run(p, [crit({ exploitAvailable: true })]).record.exceptions).toMatchObject({
      expired: ['E'],
      revoked: [],
    });
  });

  it('unused: matches no counted finding (an ignored status does not count)', () => {
    expect(run(exc(''), [finding({ severity: 'CRITICAL' })]).record.exceptions.unused).toEqual(['E']);
    expect(run(exc(''), [crit({ status: 'SUPPRESSED' })]).record.exceptions.unused).toEqual(['E']);
  });

  it('packages: every vulnerable package of the finding must be listed', () => {
    const p = exc('    packages: [openssl, "libssl*"]\n');
    const both = [
      { name: 'openssl', version: '1', fixedInVersion: undefined },
      { name: 'libssl3', version: '1', fixedInVersion: undefined },
    ];
    expect(run(p, [crit({ packages: both })]).record.outcome).toBe('APPROVE');
    const extra = [...both, { name: 'curl', version: '1', fixedInVersion: undefined }];
    const r = run(p, [crit({ packages: extra })]).record;
    expect(r.outcome).toBe('REJECT');
    expect(r.exceptions.unused).toEqual(['E']);
    expect(run(p, [crit({ packages: [] })]).record.outcome).toBe('REJECT');
  });

  it('repositories and pipelines scope an exception', () => {
    expect(run(exc('    repositories: ["payments/*"]\n'), [crit()]).record.outcome).toBe('APPROVE');
    expect(run(exc('    repositories: ["orders/*"]\n'), [crit()]).record.exceptions.unused).toEqual(['E']);
    expect(run(exc('    repositories: ["*"]\n'), [crit()], { image: undefined }).record.outcome).toBe(
      'REJECT',
    );
    expect(run(exc('    pipelines: ["payments-*"]\n'), [crit()]).record.outcome).toBe('APPROVE');
    expect(
      run(exc('    pipelines: ["payments-*"]\n'), [crit()], { pipeline: undefined }).record.outcome,
    ).toBe('REJECT');
  });

  it('glob exception ids: prefixes, inner and leading wildcards', () => {
    for (const glob of ['"CVE-2024-*"', '"CVE-*-6119"', '"*6119"', '"*"', 'CVE-2024-6119']) {
      const p = policy(`rules: [{ id: crit, action: reject }]
exceptions:
  - { id: G, vulnerabilityId: ${glob}, expires: 2027-01-01, reason: r, approvedBy: a }
`);
      expect(run(p, [crit()]).record.outcome, glob).toBe('APPROVE');
      expect(run(p, [crit({ vulnerabilityId: 'GHSA-1' })]).record.outcome, glob).toBe(
        glob === '"*"' ? 'APPROVE' : 'REJECT',
      );
    }
  });

  it('one applied exception is enough, whatever the others say; states are listed in policy order', () => {
    const p = policy(`rules: [{ id: crit, action: reject }]
exceptions:
  - { id: OLD, vulnerabilityId: CVE-1, expires: 2026-01-01, reason: r, approvedBy: a }
  - { id: NEW, vulnerabilityId: "CVE-*", expires: 2027-01-01, reason: r, approvedBy: a }
  - { id: NONE, vulnerabilityId: GHSA-1, expires: 2027-01-01, reason: r, approvedBy: a }
`);
    const r = run(p, [finding({ vulnerabilityId: 'CVE-1' })]).record;
    expect(r.outcome).toBe('APPROVE');
    expect(r.exceptions).toEqual({
      applied: ['NEW'],
      expired: ['OLD'],
      revoked: [],
      unused: ['NONE'],
      expiringSoon: [],
    });
  });
});

describe('advisory mode', () => {
  it('records the computed outcome as wouldBe and approves', () => {
    const p = policy(
      'mode: advisory\nrules: [{ id: crit, action: reject, when: { severity: [CRITICAL] } }]\n',
    );
    const r = run(p, [finding({ severity: 'CRITICAL' })]).record;
    expect(r).toMatchObject({ outcome: 'APPROVE', mode: 'advisory', wouldBe: 'REJECT' });
    expect(r.violations).toHaveLength(1);
    expect(r.summary.startsWith('APPROVE (advisory; would be REJECT) by policy test: crit')).toBe(true);
    expect(run(p, []).record.wouldBe).toBe('APPROVE');
  });

  it('never records half a character: reasons echoing outside text are made whole', () => {
    const p = policy('rules: [{ id: crit, action: reject, when: { severity: [CRITICAL] } }]\n');
    const r = run(p, [], {
      conditions: [{ kind: 'error', reason: 'CustomData image: repo:\ud83d tag' }],
      scan: { complete: false, status: 'FAILED', reason: 'ECR: \udc00 failed' },
    }).record;
    const descriptions = r.violations.map((v) => v.description);
    expect(descriptions).toContain('CustomData image: repo:\ufffd tag');
    expect(descriptions).toContain('ECR: \ufffd failed');
  });

  it("does not soften the gate's own blind spots: an error, an incomplete or timed-out scan, unknown severities", () => {
    const p = policy(
      'mode: advisory\nrules: [{ id: crit, action: reject, when: { severity: [CRITICAL] } }]\nsettings: { onError: escalate, scan: { onTimeout: reject } }\n',
    );
    const error = run(p, [finding({ severity: 'CRITICAL', vulnerabilityId: 'CVE-2026-4242' })], {
      conditions: [{ kind: 'error', reason: 'ListFindings failed on page 3' }],
    }).record;
    // The error's action, not the rule's: the rule is what advisory mode is rolling out.
    expect(error).toMatchObject({ outcome: 'ESCALATE', mode: 'advisory', wouldBe: 'REJECT' });
    expect(error.summary).toBe(
      'ESCALATE (advisory; would be REJECT) by policy test: error (ListFindings failed on page 3); crit (1 CRITICAL: CVE-2026-4242)',
    );
    expect(
      run(p, [], { conditions: [{ kind: 'scan-timeout', reason: 'no finished scan after 30 minutes' }] })
        .record,
    ).toMatchObject({ outcome: 'REJECT', wouldBe: 'REJECT' });
    expect(
      run(p, [], { scan: { complete: false, status: 'FAILED', reason: 'ECR scan status FAILED' } }).record,
    ).toMatchObject({ outcome: 'ESCALATE', wouldBe: 'ESCALATE' });
    expect(run(p, [finding({ severity: 'UNTRIAGED' })]).record).toMatchObject({
      outcome: 'ESCALATE',
      wouldBe: 'ESCALATE',
    });
    // What the policy chose to ignore stays ignored.
    const ignoring = policy('mode: advisory\nsettings: { unknownSeverity: ignore }\n');
    expect(run(ignoring, [finding({ severity: 'UNTRIAGED' })]).record.outcome).toBe('APPROVE');
  });

  it('wouldBe is absent in enforce mode', () => {
    expect('wouldBe' in run(policy(''), []).record).toBe(false);
  });
});

describe('the decision record', () => {
  it('has the fields of spec §3 in order, and is the same byte for byte for the same inputs', () => {
    const p = policy('rules: [{ id: no-critical, action: reject, when: { severity: [CRITICAL] } }]\n');
    const fs = [finding({ vulnerabilityId: 'CVE-2024-1111', severity: 'CRITICAL' })];
    const a = run(p, fs).record;
    expect(Object.keys(a)).toEqual([
      'outcome',
      'mode',
      'summary',
      'policy',
      'subject',
      'counts',
      'violations',
      'warnings',
      'exceptions',
      'ignored',
      'evaluatedAt',
    ]);
    expect(a.policy).toEqual({ name: 'test', sha256: p.sha256 });
    expect(a.subject).toEqual({
      repository: 'payments/api',
      digest: 'sha256:abc',
      tags: ['1.4.2'],
      pipeline: 'payments-prod',
    });
    expect(a.evaluatedAt).toBe('2026-11-25T12:00:00.000Z');
    expect(a.summary).toBe('REJECT by policy test: no-critical (1 CRITICAL: CVE-2024-1111)');
    expect(JSON.stringify(run(p, fs).record)).toBe(JSON.stringify(a));
  });

  it('an unknown subject is null, not missing', () => {
    const r = evaluate(policy(''), { findings: [], now: NOW }).record;
    expect(r.subject).toEqual({ repository: null, digest: null, tags: [], pipeline: null });
    expect(r.summary).toBe('APPROVE by policy test: no violations');
  });

  it('the summary names warnings and sheds detail to stay within 512 characters', () => {
    const rules = Array.from({ length: 40 }, (_, i) => `  - { id: rule-number-${i}, action: reject }`).join(
      '\n',
    );
    const fs = Array.from({ length: 30 }, (_, i) => finding({ vulnerabilityId: `CVE-2026-${10000 + i}` }));
    const r = run(policy(`rules:\n${rules}\n`), fs).record;
    expect(r.summary.length).toBeLessThanOrEqual(SUMMARY_MAX);
    expect(r.summary.startsWith('REJECT by policy test: rule-number-0 (30 MEDIUM)')).toBe(true);
    const few = run(
      policy('rules: [{ id: a, action: reject }, { id: w, action: warn }]\n'),
      fs.slice(0, 7),
    ).record;
    expect(few.summary).toBe(
      'REJECT by policy test: a (7 MEDIUM: CVE-2026-10000, CVE-2026-10001, CVE-2026-10002, CVE-2026-10003, ' +
        'CVE-2026-10004 +2 more); warnings: w (7 MEDIUM: CVE-2026-10000, CVE-2026-10001 +5 more)',
    );
  });

  it('rejects an invalid evaluation time instead of deciding on it', () => {
    expect(() => evaluate(policy(''), { findings: [], now: new Date('nope') })).toThrow(RangeError);
  });

  it('deduplicates by key; between two copies the newer wins, whatever the order', () => {
    const p = policy('rules: [{ id: crit, action: reject, when: { severity: [CRITICAL] } }]\n');
    const old = finding({ key: 'K', severity: 'CRITICAL', updatedAt: 1 });
    const fresh = finding({ key: 'K', severity: 'LOW', updatedAt: 2 });
    expect(run(p, [old, fresh]).record.outcome).toBe('APPROVE');
    expect(run(p, [fresh, old]).record.outcome).toBe('APPROVE');
    expect(run(p, [old, old]).record.counts.CRITICAL).toBe(1);
  });

  it('between equally new copies, the more severe one (fail closed)', () => {
    const p = policy('rules: [{ id: crit, action: reject, when: { severity: [CRITICAL] } }]\n');
    const a = finding({ key: 'K', severity: 'CRITICAL', updatedAt: 5 });
    const b = finding({ key: 'K', severity: 'LOW', updatedAt: 5 });
    expect(run(p, [a, b]).record.outcome).toBe('REJECT');
    expect(run(p, [b, a]).record.outcome).toBe('REJECT');
  });

  it('between equally new copies, an ACTIVE one before a more severe CLOSED one: it is the one that counts', () => {
    const p = policy('rules: [{ id: bad, action: reject, when: { severity: [CRITICAL, HIGH] } }]\n');
    const closed = finding({ key: 'K', severity: 'CRITICAL', status: 'CLOSED', updatedAt: 100 });
    const active = finding({ key: 'K', severity: 'HIGH', status: 'ACTIVE', updatedAt: 100 });
    // Severity first kept the CLOSED copy, which counts nothing, and approved.
    for (const order of [
      [closed, active],
      [active, closed],
    ]) {
      const { record } = run(p, order);
      expect(record.outcome).toBe('REJECT');
      expect(record.counts.HIGH).toBe(1);
    }
  });

  it('between equally new copies, one of a status the policy counts, whichever status that is', () => {
    // Counting SUPPRESSED too: the SUPPRESSED CRITICAL counts, so it is the stricter copy, not the ACTIVE LOW.
    const p = policy(
      'settings: { statuses: [ACTIVE, SUPPRESSED] }\nrules: [{ id: crit, action: reject, when: { severity: [CRITICAL] } }]\n',
    );
    const suppressed = finding({ key: 'K', severity: 'CRITICAL', status: 'SUPPRESSED', updatedAt: 100 });
    const active = finding({ key: 'K', severity: 'LOW', status: 'ACTIVE', updatedAt: 100 });
    for (const order of [
      [suppressed, active],
      [active, suppressed],
    ])
      expect(run(p, order).record.outcome).toBe('REJECT');
  });

  it('uses the image given for scope', () => {
    const p = policy('rules: [{ id: r, action: reject, when: { repositories: ["orders/*"] } }]\n');
    expect(run(p, [finding()], { image: { ...IMAGE, repository: 'orders/api' } }).record.outcome).toBe(
      'REJECT',
    );
  });
});

describe('the example policies', () => {
  const example = (name: string) =>
    policy(readFileSync(new URL(`../examples/policies/${name}`, import.meta.url), 'utf8'), name);

  it('strict.yaml lets no HIGH through on its own: fixable rejects, no fix or fix unknown (ECR basic) escalates', () => {
    const strict = example('strict.yaml');
    const outcome = (fixAvailable: Finding['fixAvailable']) =>
      run(strict, [finding({ severity: 'HIGH', fixAvailable })]).record.outcome;
    expect(outcome('YES')).toBe('REJECT');
    expect(outcome('PARTIAL')).toBe('REJECT');
    expect(outcome('NO')).toBe('ESCALATE');
    expect(outcome(undefined)).toBe('ESCALATE');
  });

  it("baseline.yaml's GHSA-* exception does not cover an exploited or CRITICAL advisory", () => {
    const baseline = example('baseline.yaml');
    const ghsa = (extra: Partial<Finding>) =>
      run(baseline, [
        finding({
          vulnerabilityId: 'GHSA-aaaa-bbbb-cccc',
          severity: 'HIGH',
          fixAvailable: 'YES',
          packages: [{ name: 'left-pad', version: '1.0.0', fixedInVersion: '1.0.1' }],
          ...extra,
        }),
      ]).record.exceptions;
    expect(ghsa({})).toMatchObject({ applied: ['EXC-2026-003'], revoked: [] });
    expect(ghsa({ exploitAvailable: true })).toMatchObject({ applied: [], revoked: ['EXC-2026-003'] });
    expect(ghsa({ severity: 'CRITICAL' })).toMatchObject({ applied: [], revoked: ['EXC-2026-003'] });
  });
});
