import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CliResult, ROOT, tollgateCli } from './helpers.js';

type Result = CliResult;
const tollgate = tollgateCli;

const BASELINE = 'examples/policies/baseline.yaml';
const PAYMENTS = 'examples/findings/payments-api.list-findings.json';
const NOW = ['--now', '2026-11-25T12:00:00Z'];
type Json = Record<string, unknown>;
const tmp = mkdtempSync(join(tmpdir(), 'tollgate-cli-'));

function write(name: string, text: string): string {
  const path = join(tmp, name);
  writeFileSync(path, text);
  return path;
}

/** The payments findings with no repository named: `--repository` then names it (findings of another are refused). */
function unnamedPayments(): string {
  const raw = JSON.parse(readFileSync(join(ROOT, PAYMENTS), 'utf8')) as {
    findings: { resources?: { details?: { awsEcrContainerImage?: { repositoryName?: string } } }[] }[];
  };
  for (const f of raw.findings)
    for (const r of f.resources ?? []) delete r.details?.awsEcrContainerImage?.repositoryName;
  return write('unnamed.json', JSON.stringify(raw));
}

describe('tollgate evaluate: outcomes and exit status', () => {
  it('REJECT exits 2; the text report starts with the outcome and shows the findings table', () => {
    const r = tollgate([
      'evaluate',
      '--policy',
      BASELINE,
      '--findings',
      PAYMENTS,
      '--pipeline',
      'payments-prod',
      ...NOW,
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('REJECT');
    expect(lines[1]).toMatch(/^ {2}REJECT by policy baseline: no-critical \(1 CRITICAL: CVE-2024-45490\)/);
    expect(r.stdout).toContain(
      'VULNERABILITY   PACKAGE    INSTALLED → FIXED          SEVERITY  SCORE  EPSS    EXPLOIT',
    );
    expect(r.stdout).toContain(
      'CVE-2024-45490  libexpat1  2.5.0-1 → 2.5.0-1+deb12u1  CRITICAL  9.8    0.0028  no',
    );
    expect(r.stdout).toMatch(/expiring soon +EXC-2026-001 \(expires 2026-12-05, in 10 day\(s\)\)/);
    expect(r.stdout).toMatch(/expired +EXC-2025-017/);
    expect(r.stdout).toMatch(/revoked +EXC-2026-002/);
    expect(r.stdout).toMatch(/unused +EXC-2026-003/);
    expect(r.stdout).toContain('Counts  CRITICAL 1  HIGH 3  MEDIUM 3  LOW 2  INFORMATIONAL 0  UNTRIAGED 1');
    expect(r.stdout).not.toContain('\u001b[');
  });

  it('APPROVE exits 0', () => {
    const r = tollgate([
      'evaluate',
      '-p',
      BASELINE,
      '-f',
      'examples/findings/web-frontend.awscli.json',
      ...NOW,
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('APPROVE');
  });

  it('ESCALATE exits 3 (a scan that cannot give a verdict)', () => {
    const r = tollgate([
      'evaluate',
      '-p',
      BASELINE,
      '-f',
      'examples/findings/batch-reports.ecr-basic-unsupported.json',
      ...NOW,
    ]);
    expect(r.status).toBe(3);
    expect(r.stdout).toContain('scan-incomplete');
    expect(r.stdout).toContain('ECR scan status UNSUPPORTED_IMAGE');
  });

  it('a scan not finished (IN_PROGRESS, PENDING, no status) is judged as the gate would at the end of its wait: scan-timeout under onTimeout', () => {
    const policy = write(
      'timeout-reject.yaml',
      'version: 1\nname: waits\nsettings:\n  scan: { waitMinutes: 45, onTimeout: reject, onUnsupported: escalate }\nrules: []\n',
    );
    const response = JSON.parse(
      readFileSync(join(ROOT, 'examples/findings/batch-reports.ecr-basic-unsupported.json'), 'utf8'),
    ) as Json;
    const run = (imageScanStatus: Json | undefined) =>
      tollgate(
        ['evaluate', '-p', policy, '-f', '-', '--format', 'json', ...NOW],
        JSON.stringify({ ...response, imageScanStatus }),
      );
    for (const status of ['IN_PROGRESS', 'PENDING', undefined]) {
      const r = run(status === undefined ? undefined : { status });
      expect(r.status, `${status}: ${r.stderr}`).toBe(2);
      const record = JSON.parse(r.stdout) as {
        violations: { rule: string; action: string; description: string }[];
      };
      expect(record.violations.map((v) => [v.rule, v.action])).toEqual([['scan-timeout', 'reject']]);
      expect(record.violations[0]!.description).toMatch(
        /^the scan has not finished \(<stdin>: .+\): the deployed gate would wait up to 45 minutes \(scan\.waitMinutes\) for it, then decide this if it still had not$/,
      );
      if (status) expect(record.violations[0]!.description).toContain(`ECR scan status ${status}`);
    }
    // The findings such an answer lists are not judged, as the gate judges none at the end of its wait: a
    // CRITICAL that the baseline rejects, under onTimeout: escalate, is an escalation, not a rejection.
    const listed = write(
      'in-progress-critical.json',
      JSON.stringify({
        ...response,
        imageScanStatus: { status: 'IN_PROGRESS' },
        imageScanFindings: {
          findings: [{ name: 'CVE-2024-0001', severity: 'CRITICAL', attributes: [] }],
        },
      }),
    );
    const waited = tollgate(['evaluate', '-p', BASELINE, '-f', listed, '--format', 'json', ...NOW]);
    expect(waited.status, waited.stderr).toBe(3);
    const judged = JSON.parse(waited.stdout) as {
      violations: { rule: string }[];
      counts: { CRITICAL: number };
    };
    expect(judged.violations.map((v) => v.rule)).toEqual(['scan-timeout']);
    expect(judged.counts.CRITICAL).toBe(0);
    expect(waited.stderr).toContain('1 finding(s) listed were not judged: the scan has not finished');
    // One that will never give a verdict is decided at once, as the gate decides it: on no findings.
    const expired = write(
      'expired-critical.json',
      JSON.stringify({
        ...response,
        imageScanStatus: { status: 'SCAN_ELIGIBILITY_EXPIRED', description: 'The scan eligibility expired' },
        imageScanFindings: {
          findings: [{ name: 'CVE-2024-0001', severity: 'CRITICAL', attributes: [] }],
          findingSeverityCounts: { CRITICAL: 1 },
        },
      }),
    );
    const unsupported = tollgate(['evaluate', '-p', BASELINE, '-f', expired, '--format', 'json', ...NOW]);
    expect(unsupported.status, unsupported.stderr).toBe(3);
    const asGate = JSON.parse(unsupported.stdout) as {
      violations: { rule: string }[];
      counts: { CRITICAL: number };
    };
    expect(asGate.violations.map((v) => v.rule)).toEqual(['scan-incomplete']);
    expect(asGate.counts.CRITICAL).toBe(0);
    expect(unsupported.stderr).toContain(
      '1 finding(s) listed were not judged: the scan cannot give a verdict',
    );
    // One that will never give a verdict is still scan-incomplete, under onUnsupported.
    const failed = run({ status: 'FAILED', description: 'boom' });
    expect(failed.status).toBe(3);
    expect(JSON.parse(failed.stdout).violations).toMatchObject([
      { rule: 'scan-incomplete', action: 'escalate', description: '<stdin>: ECR scan status FAILED: boom' },
    ]);
  });

  it("--repository on findings of one digest in several repositories judges that repository's only, and says how many were left out", () => {
    const doc = JSON.parse(readFileSync(join(ROOT, PAYMENTS), 'utf8')) as {
      findings: { resources?: { details?: { awsEcrContainerImage?: { repositoryName?: string } } }[] }[];
    };
    // The first finding's copy in another repository (the digest promoted from staging).
    const copy = structuredClone(doc.findings[0]!) as Json & (typeof doc.findings)[0];
    copy.findingArn = 'arn:aws:inspector2:eu-west-1:123456789012:finding/staging-copy';
    copy.severity = 'CRITICAL';
    copy.resources![0]!.details!.awsEcrContainerImage!.repositoryName = 'staging/payments-api';
    (copy.resources![0] as Json).id = (copy.resources![0] as { id: string }).id.replace(
      'repository/payments/api/',
      'repository/staging/payments-api/',
    );
    const mixed = write('mixed.json', JSON.stringify({ findings: [...doc.findings, copy] }));
    const repository = doc.findings[0]!.resources![0]!.details!.awsEcrContainerImage!.repositoryName!;
    const alone = tollgate(['evaluate', '-p', BASELINE, '-f', PAYMENTS, '--format', 'json', ...NOW]);
    const r = tollgate([
      'evaluate',
      '-p',
      BASELINE,
      '-f',
      mixed,
      '--repository',
      repository,
      '--format',
      'json',
      ...NOW,
    ]);
    expect(r.status, r.stderr).toBe(alone.status);
    expect(JSON.parse(r.stdout).counts).toEqual(JSON.parse(alone.stdout).counts);
    expect(r.stderr).toBe(
      `tollgate: warning: 1 finding(s) of other repositories were left out: only those of ${repository} (--repository) were judged, as the gate reads only its image's repository\n`,
    );
    // Without --repository, refused at the finding that brings the second repository.
    const refused = tollgate(['evaluate', '-p', BASELINE, '-f', mixed, ...NOW]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(
      new RegExp(
        `mixed\\.json:1:\\d+: findings\\[${doc.findings.length}\\]\\.resources\\[0\\]\\.details\\.awsEcrContainerImage\\.repositoryName: expected the findings of one repository`,
      ),
    );
  });

  it('advisory mode says what enforce would do, and still escalates what the gate cannot see (an UNTRIAGED finding): exit 3', () => {
    const r = tollgate([
      'evaluate',
      '-p',
      'examples/policies/advisory.yaml',
      '-f',
      PAYMENTS,
      ...NOW,
      '--format',
      'json',
    ]);
    expect(r.status).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ outcome: 'ESCALATE', mode: 'advisory', wouldBe: 'REJECT' });
    // Without the finding of unknown severity, advisory mode approves what its rules would reject.
    const known = join(mkdtempSync(join(tmpdir(), 'tollgate-advisory-')), 'known.json');
    const doc = JSON.parse(readFileSync(join(ROOT, PAYMENTS), 'utf8')) as {
      findings: { severity: string }[];
    };
    writeFileSync(
      known,
      JSON.stringify({ ...doc, findings: doc.findings.filter((f) => f.severity !== 'UNTRIAGED') }),
    );
    const approved = tollgate([
      'evaluate',
      '-p',
      'examples/policies/advisory.yaml',
      '-f',
      known,
      ...NOW,
      '--format',
      'json',
    ]);
    expect(approved.status).toBe(0);
    expect(JSON.parse(approved.stdout)).toMatchObject({
      outcome: 'APPROVE',
      mode: 'advisory',
      wouldBe: 'REJECT',
    });
  });

  it('--format json prints exactly one decision record', () => {
    const r = tollgate([
      'evaluate',
      '-p',
      BASELINE,
      '-f',
      PAYMENTS,
      '--pipeline',
      'payments-prod',
      '--format',
      'json',
      ...NOW,
    ]);
    expect(r.status).toBe(2);
    const record = JSON.parse(r.stdout);
    expect(record).toMatchObject({
      outcome: 'REJECT',
      mode: 'enforce',
      policy: { name: 'baseline' },
      subject: {
        repository: 'payments/api',
        digest: 'sha256:3f9a1c0d8e2b47a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2',
        tags: ['1.4.2'],
        pipeline: 'payments-prod',
      },
      counts: { CRITICAL: 1, HIGH: 3, MEDIUM: 3, LOW: 2, INFORMATIONAL: 0, UNTRIAGED: 1 },
      ignored: 1,
      evaluatedAt: '2026-11-25T12:00:00.000Z',
      exceptions: {
        applied: ['EXC-2026-001'],
        expired: ['EXC-2025-017'],
        revoked: ['EXC-2026-002'],
        unused: ['EXC-2026-003'],
        expiringSoon: ['EXC-2026-001'],
      },
    });
    expect(record.policy.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(record.violations.map((v: { rule: string }) => v.rule)).toEqual([
      'no-critical',
      'known-exploited',
      'likely-exploited',
      'fixable-high',
      'high-past-sla',
      'unknown-severity',
    ]);
  });

  it('several --findings files are merged and de-duplicated; "-" reads standard input', () => {
    const once = tollgate(['evaluate', '-p', BASELINE, '-f', PAYMENTS, '--format', 'json', ...NOW]);
    const twice = tollgate(
      ['evaluate', '-p', BASELINE, '-f', PAYMENTS, '-f', '-', '--format', 'json', ...NOW],
      readPayments(),
    );
    expect(twice.status).toBe(2);
    expect(JSON.parse(twice.stdout).counts).toEqual(JSON.parse(once.stdout).counts);
  });

  it('--repository and --pipeline scope rules and exceptions', () => {
    const r = tollgate([
      'evaluate',
      '-p',
      BASELINE,
      '-f',
      unnamedPayments(),
      '--repository',
      'orders/api',
      '--format',
      'json',
      ...NOW,
    ]);
    const record = JSON.parse(r.stdout);
    expect(record.subject.repository).toBe('orders/api');
    expect(record.exceptions.unused).toContain('EXC-2026-001');
  });

  it('--repository reads an ARN or image URI down to the bare name its globs match, and refuses anything else; --pipeline refuses an empty name', () => {
    const policy = write(
      'scoped.yaml',
      'version: 1\nname: scoped\nrules:\n  - id: prod\n    action: reject\n    when: { severity: [CRITICAL, HIGH, MEDIUM, LOW], repositories: ["orders/*"] }\n',
    );
    const unnamed = unnamedPayments();
    const run = (repository: string) =>
      tollgate([
        'evaluate',
        '-p',
        policy,
        '-f',
        unnamed,
        '--repository',
        repository,
        '--format',
        'json',
        ...NOW,
      ]);
    // An ARN taken as the name matched no glob, and the reject rule silently approved.
    for (const given of [
      'orders/api',
      'arn:aws:ecr:eu-west-1:123456789012:repository/orders/api',
      '123456789012.dkr.ecr.eu-west-1.amazonaws.com/orders/api:1.4.2',
    ]) {
      const r = run(given);
      expect([given, r.status], r.stderr).toEqual([given, 2]);
      expect(JSON.parse(r.stdout).subject.repository).toBe('orders/api');
    }
    const bad = run('Orders API');
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain(
      "option '--repository <name>' argument 'Orders API' is invalid. expected an ECR repository name (payments/api), its ARN, or an image URI naming it",
    );
    // No pipeline has an empty name: judged, it would match `pipelines: ["*"]` scopes as none the gate sees.
    const empty = tollgate(['evaluate', '-p', BASELINE, '-f', PAYMENTS, ...NOW, '--pipeline', ' ']);
    expect([empty.status, empty.stdout]).toEqual([1, '']);
    expect(empty.stderr).toContain(
      `argument ' ' is invalid. expected a pipeline name (letters, digits and . @ _ -, at most 100); got " "`,
    );
    // Nor a space in or after one (a paste): `payments-prod ` matches no `pipelines: [payments-prod]` scope,
    // and the dry run would approve what the gate for payments-prod rejects.
    for (const name of ['payments-prod ', 'payments prod', 'a'.repeat(101)]) {
      const r = tollgate(['evaluate', '-p', BASELINE, '-f', PAYMENTS, ...NOW, '--pipeline', name]);
      expect([r.status, r.stdout], name).toEqual([1, '']);
      expect(r.stderr, name).toContain(`is invalid. expected a pipeline name`);
    }
    const good = tollgate(['evaluate', '-p', BASELINE, '-f', PAYMENTS, ...NOW, '--pipeline', 'a.b@c_d-1']);
    expect(good.status, good.stderr).toBe(2);
  });
});

describe('tollgate evaluate: what the decision did not consider is said on stderr', () => {
  const SCOPED = `version: 1
name: scoped
rules:
  - id: prod-no-critical
    action: reject
    when: { severity: [CRITICAL], pipelines: ["*-prod"] }
  - id: high-budget
    action: warn
    allow: 10
    when: { severity: [HIGH] }
exceptions:
  - id: EXC-PROD-1
    vulnerabilityId: CVE-2024-45490
    pipelines: [payments-prod]
    expires: 2027-01-31
    reason: a fix ships next sprint
    approvedBy: alice
`;

  it('rules and exceptions scoped with "pipelines", without --pipeline: named, with the flag to pass', () => {
    const policy = write('scoped.yaml', SCOPED);
    const r = tollgate(['evaluate', '-p', policy, '-f', PAYMENTS, ...NOW, '--format', 'json']);
    // The decision and stdout are what they were: the rule that would reject is not applied.
    expect(r.status).toBe(3);
    expect(JSON.parse(r.stdout).outcome).toBe('ESCALATE');
    expect(r.stderr).toBe(
      'tollgate: warning: rule(s) prod-no-critical and exception(s) EXC-PROD-1 of the policy are scoped with "pipelines" and were not applied, as no pipeline was given: pass --pipeline NAME to apply them\n',
    );
    const clean = tollgate([
      'evaluate',
      '-p',
      policy,
      '-f',
      'examples/findings/web-frontend.awscli.json',
      ...NOW,
    ]);
    expect(clean.status).toBe(0);
    expect(clean.stdout.split('\n')[0]).toBe('APPROVE');
    expect(clean.stderr).toMatch(
      /^tollgate: warning: rule\(s\) prod-no-critical and exception\(s\) EXC-PROD-1 /,
    );

    const given = tollgate(['evaluate', '-p', policy, '-f', PAYMENTS, ...NOW, '--pipeline', 'payments-prod']);
    expect(given.stderr).toBe('');
    // A policy without scoped rules has nothing to warn about.
    expect(tollgate(['evaluate', '-p', BASELINE, '-f', PAYMENTS, ...NOW]).stderr).toBe('');
  });

  it('only the kind that is scoped is named', () => {
    const rulesOnly = write(
      'scoped-rules.yaml',
      'version: 1\nname: r\nrules:\n  - { id: prod-only, action: reject, when: { pipelines: ["*-prod"] } }\n',
    );
    expect(tollgate(['evaluate', '-p', rulesOnly, '-f', PAYMENTS, ...NOW]).stderr).toMatch(
      /^tollgate: warning: rule\(s\) prod-only of the policy are scoped/,
    );
  });

  it('rules scoped with "repositories", on findings that name no repository: named, with --repository to pass', () => {
    const policy = write(
      'scoped-repositories.yaml',
      'version: 1\nname: r\nrules:\n  - { id: payments-high, action: reject, when: { repositories: ["payments/*"], severity: [HIGH] } }\n',
    );
    const unnamed = JSON.stringify({
      findings: [
        {
          findingArn: 'arn:aws:inspector2:eu-west-1:123456789012:finding/1',
          severity: 'HIGH',
          status: 'ACTIVE',
          packageVulnerabilityDetails: { vulnerabilityId: 'CVE-2024-1000', vulnerablePackages: [] },
        },
      ],
    });
    const r = tollgate(['evaluate', '-p', policy, '-f', '-', ...NOW], unnamed);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe(
      'tollgate: warning: rule(s) payments-high of the policy are scoped with "repositories" and were not applied, as the findings name no repository: pass --repository NAME to apply them\n',
    );
    const named = tollgate(
      ['evaluate', '-p', policy, '-f', '-', ...NOW, '--repository', 'payments/api'],
      unnamed,
    );
    expect(named.status).toBe(2);
    expect(named.stderr).toBe('');
  });

  it('an export with no findings and no image (a filter that matched nothing): approved, and said', () => {
    for (const empty of ['{"findings": []}', '[]']) {
      const r = tollgate(['evaluate', '-p', BASELINE, '-f', '-', ...NOW, '--format', 'json'], empty);
      expect(r.status, empty).toBe(0);
      expect(JSON.parse(r.stdout).outcome).toBe('APPROVE');
      expect(r.stderr, empty).toBe(
        'tollgate: warning: <stdin>: no findings were read and no image was identified: check that the export is of the image meant (a list-findings filter that matches nothing gives an empty export too)\n',
      );
    }
    const file = write('empty.json', '{"findings": []}');
    const two = tollgate(['evaluate', '-p', BASELINE, '-f', file, '-f', '-', ...NOW], '[]');
    expect(two.status).toBe(0);
    expect(two.stderr).toContain(`tollgate: warning: ${file}, <stdin>: no findings were read`);
  });

  it("a clean image's own scan (no findings, the image named) is not warned about", () => {
    const clean = write(
      'ecr-clean.json',
      JSON.stringify({
        registryId: '123456789012',
        repositoryName: 'payments/api',
        imageId: { imageDigest: `sha256:${'a'.repeat(64)}`, imageTag: '1.4.3' },
        imageScanStatus: { status: 'COMPLETE', description: 'The scan was completed successfully.' },
        // A finished scan says when it finished: the empty counts alone would show nothing of it.
        imageScanFindings: {
          findings: [],
          imageScanCompletedAt: '2026-11-25T11:58:00Z',
          findingSeverityCounts: {},
        },
      }),
    );
    const r = tollgate(['evaluate', '-p', BASELINE, '-f', clean, ...NOW]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });
});

function readPayments(): string {
  return spawnSync('cat', [join(ROOT, PAYMENTS)], { encoding: 'utf8' }).stdout;
}

describe('tollgate evaluate: its output', () => {
  it('keeps the outcome’s exit status when the reader closes the pipe early (| head), with nothing on stderr', async () => {
    const template = (
      JSON.parse(readFileSync(join(ROOT, PAYMENTS), 'utf8')) as { findings: Json[] }
    ).findings.find((f) => f.severity === 'CRITICAL' && f.status === 'ACTIVE')!;
    const vulnerability = template.packageVulnerabilityDetails as Json;
    // 20,000 distinct critical ids: a JSON report of several hundred KB, far past what a pipe holds.
    const findings = Array.from({ length: 20_000 }, (_, i) => ({
      ...template,
      findingArn: `${String(template.findingArn)}-${i}`,
      packageVulnerabilityDetails: { ...vulnerability, vulnerabilityId: `CVE-2026-${10_000 + i}` },
    }));
    const big = write('big.json', JSON.stringify({ findings }));
    const child = spawn(
      process.execPath,
      [join(ROOT, 'bin/tollgate.js'), 'evaluate', '-p', BASELINE, '-f', big, ...NOW, '--format', 'json'],
      { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' } },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    // The reader takes the first chunk and goes away.
    child.stdout.once('data', () => child.stdout.destroy());
    const status = await new Promise<number | null>((done) => child.on('close', (code) => done(code)));
    expect(stderr).toBe('');
    expect(status).toBe(2);
  });

  const hasScript = spawnSync('script', ['--version']).status === 0;
  it.skipIf(!hasScript)(
    'colours a terminal only when it shows colours (not TERM=dumb, not FORCE_COLOR=0)',
    () => {
      const run = (env: Record<string, string>) => {
        const command = `node bin/tollgate.js evaluate -p ${BASELINE} -f ${PAYMENTS} ${NOW.join(' ')}`;
        // Only PATH and HOME pass through: Node's colour depth also reads CI, TMUX, COLORTERM,
        // NODE_DISABLE_COLORS and more, and a CI runner sets some of them (CI=true alone means 2 colours).
        return spawnSync('script', ['-qec', command, '/dev/null'], {
          cwd: ROOT,
          encoding: 'utf8',
          env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
        });
      };
      const ESC = '\u001b[';
      const colour = run({ TERM: 'xterm-256color' });
      expect(colour.status).toBe(2);
      expect(colour.stdout).toContain(ESC);
      for (const env of [{ TERM: 'dumb' }, { TERM: 'xterm-256color', FORCE_COLOR: '0' }]) {
        const plain = run(env);
        expect(plain.status, JSON.stringify(env)).toBe(2);
        expect(plain.stdout, JSON.stringify(env)).toContain('REJECT');
        expect(plain.stdout, JSON.stringify(env)).not.toContain(ESC);
      }
    },
  );
});

describe('tollgate evaluate: errors exit 1 with a message on stderr and nothing on stdout', () => {
  const expectError = (r: Result, message: RegExp | string) => {
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    if (typeof message === 'string') expect(r.stderr).toContain(message);
    else expect(r.stderr).toMatch(message);
  };

  it('a bad policy names file, line, column, path, expected and found', () => {
    const bad = write('bad.yaml', 'version: 1\nname: x\nrules:\n  - id: a\n    action: block\n');
    expectError(
      tollgate(['evaluate', '-p', bad, '-f', PAYMENTS]),
      `tollgate: ${bad}:5:13: rules[0].action: expected one of reject, escalate, warn; got "block"\n`,
    );
  });

  it('a bad findings file', () => {
    const bad = write('bad.json', '{"findings": [{"title": "CVE-1", "severity": 3}]}');
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', bad]),
      `tollgate: ${bad}:1:46: findings[0].severity: expected a severity (a string); got 3\n`,
    );
    const notJson = write('not.json', 'severity,id\nHIGH,CVE-1\n');
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', notJson]),
      /not\.json:1:1: expected a JSON findings export; got invalid JSON/,
    );
  });

  it('missing files', () => {
    expectError(
      tollgate(['evaluate', '-p', 'nope.yaml', '-f', PAYMENTS]),
      'tollgate: nope.yaml: expected a readable policy file; got no such file',
    );
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', 'nope.json']),
      'nope.json: expected a readable findings file; got no such file',
    );
    expectError(
      tollgate(['evaluate', '-p', 'examples', '-f', PAYMENTS]),
      'expected a readable policy file; got a directory',
    );
  });

  it('an oversized input is refused before it is read', () => {
    const big = write('big.yaml', `# ${'x'.repeat(3 * 1024 * 1024)}\nversion: 1\nname: x\n`);
    expectError(
      tollgate(['evaluate', '-p', big, '-f', PAYMENTS]),
      /expected a policy file of at most 1048576 bytes; got \d+ bytes/,
    );
  });

  it('usage errors are one line, as every other error, the suggestion on it: exit 1', () => {
    const cases: [string[], string][] = [
      [
        ['evaluate', '-p', BASELINE, '-f', PAYMENTS, '--polcy', 'x'],
        "tollgate: unknown option '--polcy' (Did you mean --policy?)\n",
      ],
      [['evaluate', '-f', PAYMENTS], "tollgate: required option '-p, --policy <file>' not specified\n"],
      [['evaluate', '-p', BASELINE], "tollgate: required option '-f, --findings <file>' not specified\n"],
      [['evaulate'], "tollgate: unknown command 'evaulate' (Did you mean evaluate?)\n"],
      [['simulate'], "tollgate: missing required argument 'scenario'\n"],
      [['demo', '--formt', 'json'], "tollgate: unknown option '--formt' (Did you mean --format?)\n"],
    ];
    for (const [args, message] of cases) {
      const r = tollgate(args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr, args.join(' ')).toBe(message);
    }
  });

  it('usage errors', () => {
    expectError(
      tollgate(['evaluate', '-f', PAYMENTS]),
      "required option '-p, --policy <file>' not specified",
    );
    expectError(
      tollgate(['evaluate', '-p', BASELINE]),
      "required option '-f, --findings <file>' not specified",
    );
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', PAYMENTS, '--format', 'xml']),
      "argument 'xml' is invalid",
    );
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', PAYMENTS, '--now', 'tomorrow']),
      'expected an ISO-8601 date or timestamp with a zone',
    );
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', PAYMENTS, '--now', '2026-02-30T00:00:00Z']),
      "argument '2026-02-30T00:00:00Z' is invalid. expected an ISO-8601 date or timestamp with a zone",
    );
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', PAYMENTS, '--bogus']),
      "unknown option '--bogus'",
    );
    expectError(tollgate(['evaulate']), /unknown command 'evaulate'[\s\S]*evaluate/);
  });

  it('findings of two images', () => {
    expectError(
      tollgate([
        'evaluate',
        '-p',
        BASELINE,
        '-f',
        PAYMENTS,
        '-f',
        'examples/findings/web-frontend.awscli.json',
      ]),
      'expected the findings of one image (one digest)',
    );
  });
});

describe('help', () => {
  it('tollgate --help lists the commands', () => {
    const r = tollgate(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('evaluate [options]');
  });

  it('tollgate evaluate --help documents every flag and the exit status', () => {
    const r = tollgate(['evaluate', '--help']);
    expect(r.status).toBe(0);
    for (const flag of [
      '--policy',
      '--findings',
      '--pipeline',
      '--repository',
      '--now',
      '--format',
      '--no-color',
      '--help',
    ]) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toMatch(/0 +APPROVE/);
    expect(r.stdout).toMatch(/2 +REJECT/);
    expect(r.stdout).toMatch(/3 +ESCALATE/);
    expect(r.stdout).toMatch(/1 +usage or input error/);
  });

  it('--version', () => {
    expect(tollgate(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

/**
 * The packages a built module loads before any of its code runs: its static imports, followed through the
 * build's own chunks (dynamic `import()` is not followed: that is what loads when a command runs).
 */
function loadedWith(file: string, seen = new Set<string>()): Set<string> {
  const packages = new Set<string>();
  if (seen.has(file)) return packages;
  seen.add(file);
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(/^import\s(?:[^;]*?\sfrom\s)?"([^"]+)";/gms)) {
    const spec = m[1]!;
    if (spec.startsWith('.')) {
      for (const p of loadedWith(resolve(dirname(file), spec), seen)) packages.add(p);
    } else packages.add(spec);
  }
  return packages;
}

describe('start-up: each command loads what it runs', () => {
  const main = join(ROOT, 'dist/tollgate.js');
  const chunk = (name: string): string => {
    const match = /import\("(\.\/chunks\/[^"]+)"\)/g;
    const found = [...readFileSync(main, 'utf8').matchAll(match)].map((m) => m[1]!);
    const file = found.find((f) => f.startsWith(`./chunks/${name}-`));
    if (file === undefined)
      throw new Error(`no chunk ${name} imported by dist/tollgate.js: ${found.join(', ')}`);
    return join(ROOT, 'dist', file);
  };

  it('the command line itself (help, usage errors) loads commander and Node only', () => {
    const loaded = [...loadedWith(main)];
    expect(loaded.length).toBeGreaterThan(0);
    expect(loaded.filter((p) => p !== 'commander' && !p.startsWith('node:'))).toEqual([]);
  });

  it('evaluate loads the policy engine, not the AWS SDK or the local store', () => {
    const loaded = [...loadedWith(chunk('evaluate'))];
    expect(loaded).toContain('zod/mini');
    expect(loaded).toContain('yaml');
    expect(loaded.filter((p) => p.startsWith('@aws-sdk/') || p === 'dynalite')).toEqual([]);
  });

  it('the audit commands load the SDK when they read, not to parse their options', () => {
    expect([...loadedWith(chunk('audit-source'))]).toContain('@aws-sdk/client-dynamodb');
  });
});
