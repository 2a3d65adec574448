import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ScanStatus as EcrScanStatus } from '@aws-sdk/client-ecr';
import { describe, expect, it } from 'vitest';
import {
  evaluate,
  mergeFindings,
  parseFindingsText,
  parseTimestamp,
  readFindingsDocument,
  ShapeError,
} from '../shared/index.js';
import { SourceLocator } from '../shared/locate.js';
import { fixture, fixtureJson, IMAGE, inputErrorOf, NOW, policy, ROOT } from './helpers.js';

const DIGEST = 'sha256:84f507df33c6864d49c296fb734192696e4cb6f78166ac51ac8b9b118181085d';

const inputError = inputErrorOf;

/** The decision on these raw findings of a policy that rejects any CRITICAL. */
function noCritical(findings: unknown[]) {
  return evaluate(
    policy('rules:\n  - id: no-critical\n    action: reject\n    when: { severity: [CRITICAL] }\n'),
    { findings: readFindingsDocument(findings).findings, now: NOW, image: IMAGE, pipeline: 'payments-prod' },
  ).record;
}

describe('Inspector2 ListFindings response (API shape, epoch seconds)', () => {
  const doc = readFindingsDocument(
    fixtureJson('aws/list-findings-response.ecr.derived-from-aws-docs-event.json'),
  );

  it('normalises every field the policy language reads', () => {
    expect(doc.format).toBe('inspector2-findings');
    expect(doc.findings.length).toBe(1);
    const f = doc.findings.row(0)!;
    expect(f).toMatchObject({
      key: 'arn:aws:inspector2:eu-central-1:123456789012:finding/0123456789abcdef0123456789abcdef',
      vulnerabilityId: 'CVE-2024-6119',
      severity: 'MEDIUM',
      status: 'ACTIVE',
      score: undefined,
      epss: 0.00045,
      exploitAvailable: false,
      fixAvailable: 'YES',
      firstObservedAt: 1725468938411,
      image: { repository: 'inspector2', digest: DIGEST, tags: ['ubuntu_latest'] },
    });
    expect(f.packages).toEqual([
      { name: 'libssl3t64', version: '3.0.13-0ubuntu3.2', fixedInVersion: '0:3.0.13-0ubuntu3.4' },
      { name: 'openssl', version: '3.0.13-0ubuntu3.2', fixedInVersion: '0:3.0.13-0ubuntu3.4' },
    ]);
  });

  it('takes inspectorScore, and the highest CVSS base score when there is none', () => {
    const ec2 = readFindingsDocument(
      fixtureJson('aws/list-findings-response.ec2.elastic-integrations-mock.json'),
    );
    expect(ec2.findings.row(0)!.score).toBe(6.5);
    const raw = fixtureJson('aws/list-findings-response.ec2.elastic-integrations-mock.json') as {
      findings: Record<string, unknown>[];
    };
    const f = raw.findings[0]!;
    delete f.inspectorScore;
    (f.packageVulnerabilityDetails as { cvss: { baseScore: number }[] }).cvss = [
      { baseScore: 5.1 },
      { baseScore: 8.2 },
    ];
    expect(readFindingsDocument(raw).findings.row(0)!.score).toBe(8.2);
  });

  it('reads the AWS CLI print of the same response (ISO-8601 timestamps)', () => {
    const raw = fixtureJson('aws/list-findings-response.ecr.derived-from-aws-docs-event.json') as {
      findings: Record<string, unknown>[];
    };
    raw.findings[0]!.firstObservedAt = '2024-09-04T16:55:38.411000+00:00';
    raw.findings[0]!.updatedAt = '2024-09-04T16:55:38.411Z';
    const f = readFindingsDocument(raw).findings.row(0)!;
    expect(f.firstObservedAt).toBe(Date.parse('2024-09-04T16:55:38.411Z'));
    expect(f.updatedAt).toBe(Date.parse('2024-09-04T16:55:38.411Z'));
    expect(f.changedAt).toBe(Date.parse('2024-09-04T16:55:38.411Z'));
  });

  it("keeps a finding's own updatedAt apart from the lastObservedAt that stands in for it", () => {
    // A rescan stamps lastObservedAt on a finding suppressed long before: it orders copies of one finding,
    // but says nothing of when its status changed (readCounts reads changedAt for that).
    const raw = fixtureJson('aws/list-findings-response.ecr.derived-from-aws-docs-event.json') as {
      findings: Record<string, unknown>[];
    };
    const { updatedAt: _, ...noUpdate } = raw.findings[0]!;
    const f = readFindingsDocument({
      findings: [{ ...noUpdate, lastObservedAt: 1_764_061_262 }],
    }).findings.row(0)!;
    expect(f.updatedAt).toBe(1_764_061_262_000);
    expect(f.changedAt).toBeUndefined();
    const g = readFindingsDocument({ findings: [{ ...noUpdate, updatedAt: 1_764_061_200 }] }).findings.row(
      0,
    )!;
    expect(g.changedAt).toBe(1_764_061_200_000);
  });

  it('reads a bare array of findings and a findings report', () => {
    const raw = fixtureJson('aws/list-findings-response.ecr.derived-from-aws-docs-event.json') as {
      findings: unknown[];
    };
    expect(readFindingsDocument(raw.findings).findings.row(0)!.vulnerabilityId).toBe('CVE-2024-6119');
    expect(readFindingsDocument({ findings: raw.findings }).findings.length).toBe(1);
    expect(readFindingsDocument([]).findings.length).toBe(0);
  });
});

describe('Inspector2 Finding events', () => {
  it('reads the "Wed Sep 04 16:55:38.411 UTC 2024" timestamps', () => {
    const doc = readFindingsDocument(
      fixtureJson('aws/inspector2-finding-ecr-package-vulnerability.aws-docs.json'),
    );
    expect(doc.format).toBe('inspector2-finding-events');
    const f = doc.findings.row(0)!;
    expect(f.firstObservedAt).toBe(Date.UTC(2024, 8, 4, 16, 55, 38, 411));
    expect(f.image).toEqual({ repository: 'inspector2', digest: DIGEST, tags: ['ubuntu_latest'] });
    expect(f.packages.map((p) => p.name)).toEqual(['libssl3t64', 'openssl']);
  });

  it('reads the "Dec 3, 2021, 6:02:30 PM" timestamps as UTC', () => {
    const doc = readFindingsDocument(fixtureJson('aws/inspector2-finding-event.us-timestamps.derived.json'));
    expect(doc.findings.row(0)!.firstObservedAt).toBe(Date.UTC(2021, 11, 3, 18, 2, 30));
  });

  it('reads an array of events and the older documented event', () => {
    const a = fixtureJson('aws/inspector2-finding-ecr-package-vulnerability.aws-docs.json');
    const b = fixtureJson('aws/inspector2-finding-ecr-package-vulnerability.aws-docs-older.json');
    const doc = readFindingsDocument([a, b]);
    expect(doc.findings.length).toBe(2);
    expect(doc.findings.row(1)!.image?.repository).toBe('inspector2');
  });

  it('refuses an event of another kind, naming what it expected', () => {
    const scan = fixtureJson('aws/inspector2-scan-ecr-initial-scan.aws-docs.json');
    const e = inputError(() => parseFindingsText(JSON.stringify(scan, null, 2), 'scan.json'));
    expect(e.message).toMatch(
      /^scan\.json:\d+:\d+: detail-type: expected an event with source "aws\.inspector2" and detail-type "Inspector2 Finding"; got "Inspector2 Scan"$/,
    );
  });
});

describe('ECR DescribeImageScanFindings', () => {
  it('reads basic scanning findings with their attributes and the image of the response', () => {
    const doc = readFindingsDocument(
      fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json'),
    );
    expect(doc.format).toBe('ecr-scan-findings-basic');
    expect(doc.scan).toEqual({ complete: true, status: 'COMPLETE' });
    expect(doc.image).toEqual({
      repository: 'sample-repo',
      digest: 'sha256:74b2c688c700ec95a93e478cdb959737c148df3fbf5ea706abe0318726e885e6',
      tags: [],
    });
    expect(doc.findings.row(0)).toMatchObject({
      vulnerabilityId: 'CVE-2019-5188',
      severity: 'MEDIUM',
      status: 'ACTIVE',
      score: 4.6,
      packages: [{ name: 'e2fsprogs', version: '1.44.1-1ubuntu1.1', fixedInVersion: undefined }],
    });
  });

  it('reads enhanced findings (score, UNTRIAGED, NotAvailable fixes)', () => {
    const doc = readFindingsDocument(
      fixtureJson('aws/describe-image-scan-findings.enhanced.moto-fixture.json'),
    );
    expect(doc.format).toBe('ecr-scan-findings-enhanced');
    expect(doc.findings.rows().map((f) => [f.vulnerabilityId, f.severity, f.score])).toEqual([
      ['CVE-2024-9681', 'MEDIUM', 6.5],
      ['CVE-2025-24528', 'UNTRIAGED', 0],
    ]);
    expect(doc.findings.row(0)!.packages[0]!.fixedInVersion).toBeUndefined();
    expect(doc.findings.row(0)!.fixAvailable).toBe('NO');
  });

  it.each(['FAILED', 'UNSUPPORTED_IMAGE', 'FINDINGS_UNAVAILABLE', 'IN_PROGRESS', 'SCAN_ELIGIBILITY_EXPIRED'])(
    'a scan status %s cannot give a verdict',
    (status) => {
      const raw = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as Record<
        string,
        unknown
      >;
      raw.imageScanStatus = { status, description: 'why' };
      const doc = readFindingsDocument(raw);
      expect(doc.scan).toEqual({ complete: false, status, reason: `ECR scan status ${status}: why` });
    },
  );

  it('COMPLETE or ACTIVE with a findings part that shows nothing of the scan is not ready (aws/aws-sdk#289)', () => {
    const raw = fixtureJson(
      'aws/describe-image-scan-findings.complete-not-ready.aws-sdk-issue-289.json',
    ) as Record<string, unknown>;
    const notReady = {
      complete: false,
      status: 'FINDINGS_NOT_READY',
      reason:
        'ECR says the scan is COMPLETE but its imageScanFindings has no findings, no enhancedFindings, no ' +
        'imageScanCompletedAt and no findingSeverityCounts: the findings may not be ready yet',
    };
    const doc = readFindingsDocument(raw);
    expect(doc.format).toBe('ecr-scan-findings-basic');
    expect(doc.scan).toEqual(notReady);
    expect(doc.findings.length).toBe(0);
    // An empty enhanced list, or none at all, shows no more; nor does ACTIVE (continuous scanning); nor do
    // counts that count nothing (`{}`: read as shown, an image whose findings were not there yet approved).
    for (const imageScanFindings of [
      { findings: [], enhancedFindings: [] },
      { enhancedFindings: [] },
      {},
      { findings: [], findingSeverityCounts: {} },
      { enhancedFindings: [], findingSeverityCounts: {} },
    ]) {
      expect(readFindingsDocument({ ...raw, imageScanFindings }).scan).toEqual(notReady);
      expect(
        readFindingsDocument({ ...raw, imageScanFindings, imageScanStatus: { status: 'ACTIVE' } }).scan,
      ).toMatchObject({ complete: false, status: 'FINDINGS_NOT_READY' });
    }
    // The CLI judges no set holding it: a scan not finished, which the gate waits for (scan.onTimeout).
    expect(mergeFindings([{ file: 'scan.json', document: doc }])).toMatchObject({
      scan: undefined,
      pending: `scan.json: ${notReady.reason}`,
    });
  });

  it('an empty last page after pages that showed the finished scan is the end of the list, as the gate reads it', () => {
    const basic = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as {
      imageScanFindings: Record<string, unknown>;
    } & Record<string, unknown>;
    const first = readFindingsDocument({ ...basic, nextToken: 'page-2' });
    const { repositoryName, imageId, imageScanStatus } = basic;
    const last = readFindingsDocument({
      repositoryName,
      imageId,
      imageScanStatus,
      imageScanFindings: { findings: [] },
    });
    expect(last.scan).toMatchObject({ complete: false, status: 'FINDINGS_NOT_READY' });
    const set = mergeFindings([
      { file: 'p1.json', document: first },
      { file: 'p2.json', document: last },
    ]);
    expect(set).toMatchObject({ scan: { complete: true }, pending: undefined, conditions: [] });
    expect(set.findings.length).toBe(first.findings.length);
    // Alone, or first, it shows nothing of a finished scan: not ready, waited for.
    expect(mergeFindings([{ file: 'p2.json', document: last }]).pending).toMatch(/^p2\.json: /);
    // After a whole answer (no nextToken), it is another answer, and not ready: in either order.
    const whole = readFindingsDocument(basic);
    for (const order of [
      [whole, last],
      [last, whole],
    ]) {
      const set = mergeFindings(order.map((document, i) => ({ file: `f${i}.json`, document })));
      expect(set.scan).toBeUndefined();
      expect(set.pending).toMatch(/the findings may not be ready yet$/);
    }
  });

  it("a clean scan's answer (its completion time, or its counts) is complete, and so are listed findings alone", () => {
    const basic = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as {
      imageScanFindings: Record<string, unknown>;
    } & Record<string, unknown>;
    const part = basic.imageScanFindings;
    const complete = { complete: true, status: 'COMPLETE' };
    // The sample with its finding gone (epoch seconds, as the API and the AWS CLI's JSON give them), an ISO time
    // (the CLI's default output, JSON.stringify of SDK output), a Date (the SDK's), or counts alone.
    for (const imageScanFindings of [
      { ...part, findings: [], findingSeverityCounts: {} },
      { findings: [], imageScanCompletedAt: part.imageScanCompletedAt },
      { findings: [], imageScanCompletedAt: '2020-01-24T04:11:45+00:00' },
      { findings: [], imageScanCompletedAt: new Date(1579839105000) },
      { findings: [], findingSeverityCounts: { MEDIUM: 0 } },
    ]) {
      const doc = readFindingsDocument({ ...basic, imageScanFindings });
      expect(doc.scan).toEqual(complete);
      expect(doc.findings.length).toBe(0);
    }
    // A finding listed is shown, with neither: the moto fixture has counts and no imageScanCompletedAt.
    const enhanced = fixtureJson('aws/describe-image-scan-findings.enhanced.moto-fixture.json') as {
      imageScanFindings: Record<string, unknown>;
    } & Record<string, unknown>;
    expect(enhanced.imageScanFindings.imageScanCompletedAt).toBeUndefined();
    const { findingSeverityCounts: _, ...uncounted } = enhanced.imageScanFindings;
    for (const imageScanFindings of [enhanced.imageScanFindings, uncounted]) {
      expect(readFindingsDocument({ ...enhanced, imageScanFindings }).scan).toEqual(complete);
    }
    expect(readFindingsDocument({ ...basic, imageScanFindings: { findings: part.findings } }).scan).toEqual(
      complete,
    );
    // A completion time that is none is a bad field, named, not a sign of a finished scan.
    expect(() =>
      readFindingsDocument({ ...basic, imageScanFindings: { findings: [], imageScanCompletedAt: 'soon' } }),
    ).toThrow(ShapeError);
  });

  it('every ECR scan status is read as the gate reads it: finished, never a verdict (scan.onUnsupported), or not finished yet (scan.onTimeout)', () => {
    const raw = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as Record<
      string,
      unknown
    >;
    const finished = ['ACTIVE', 'COMPLETE'];
    const never = [
      'FAILED',
      'FINDINGS_UNAVAILABLE',
      'IMAGE_ARCHIVED',
      'LIMIT_EXCEEDED',
      'SCAN_ELIGIBILITY_EXPIRED',
      'UNSUPPORTED_IMAGE',
    ];
    const notYet = ['IN_PROGRESS', 'PENDING'];
    // Every status the SDK knows is one of the three: a new one fails here until it is placed.
    expect([...finished, ...never, ...notYet].sort()).toEqual(Object.values(EcrScanStatus).sort());
    const merged = (status: string | undefined, description = 'why') => {
      const value =
        status === undefined
          ? { ...raw, imageScanStatus: undefined }
          : { ...raw, imageScanStatus: { status, description } };
      return mergeFindings([{ file: 'ecr.json', document: readFindingsDocument(value) }]);
    };
    for (const status of finished) {
      expect(merged(status), status).toMatchObject({ scan: { complete: true }, pending: undefined });
    }
    for (const status of never) {
      expect(merged(status), status).toMatchObject({
        scan: { complete: false, status: 'INCOMPLETE', reason: `ecr.json: ECR scan status ${status}: why` },
        pending: undefined,
      });
    }
    // Not finished: no response status (the gate waits on it too), and one ECR may add later (fail closed).
    for (const status of [...notYet, undefined, 'QUEUED']) {
      const set = merged(status);
      expect(set.scan, status).toBeUndefined();
      expect(set.pending, status).toMatch(
        status ? `ecr.json: ECR scan status ${status}: why` : /imageScanStatus/,
      );
      // What the evaluator is given beside the scan: a caller passing `scan` alone cannot lose it.
      expect(set.conditions, status).toEqual([
        {
          kind: 'scan-timeout',
          reason: expect.stringContaining(`the scan has not finished (${set.pending})`),
        },
      ]);
    }
    expect(merged('COMPLETE').conditions).toEqual([]);
    expect(merged('FAILED').conditions).toEqual([]);
    // Pages of one answer whose statuses differ (the scan moved on while they were read): the first that is
    // not complete decides, as the gate reads the pages (adapters/aws/ecr.ts), in the order the files come.
    const failed = readFindingsDocument({ ...raw, imageScanStatus: { status: 'FAILED' } });
    const running = readFindingsDocument({ ...raw, imageScanStatus: { status: 'IN_PROGRESS' } });
    expect(
      mergeFindings([
        { file: 'a.json', document: running },
        { file: 'b.json', document: failed },
      ]),
    ).toMatchObject({ scan: undefined, pending: 'a.json: ECR scan status IN_PROGRESS' });
    expect(
      mergeFindings([
        { file: 'b.json', document: failed },
        { file: 'a.json', document: running },
      ]),
    ).toMatchObject({
      scan: { complete: false, reason: 'b.json: ECR scan status FAILED' },
      pending: undefined,
    });
  });

  it('a response without imageScanStatus cannot show the scan completed', () => {
    const raw = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as Record<
      string,
      unknown
    >;
    delete raw.imageScanStatus;
    expect(readFindingsDocument(raw).scan?.complete).toBe(false);
  });
});

describe('missing and unusual values', () => {
  it('a finding without severity or status is an unknown severity and ACTIVE, never dropped', () => {
    const doc = readFindingsDocument([{ findingArn: 'arn:x', title: 'CVE-1 - x' }]);
    expect(doc.findings.row(0)).toMatchObject({
      vulnerabilityId: 'CVE-1 - x',
      severity: 'UNDEFINED',
      status: 'ACTIVE',
    });
  });

  it('a severity is read regardless of ASCII letter case only: the dotless ı makes no rating', () => {
    const ecr = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as {
      imageScanFindings: Record<string, unknown>;
    };
    for (const [severity, level] of [
      ['Medium', 'MEDIUM'],
      ['med\u0131um', 'UNTRIAGED'],
      ['cr\u0131t\u0131cal', 'UNTRIAGED'],
    ] as const) {
      const inspector = readFindingsDocument([{ findingArn: 'arn:x', title: 'CVE-1', severity }]);
      const basic = readFindingsDocument({
        ...ecr,
        imageScanFindings: {
          findingSeverityCounts: { [severity]: 1 },
          findings: [{ name: 'CVE-1', severity }],
        },
      });
      for (const f of [inspector.findings.row(0)!, basic.findings.row(0)!]) expect(f.level).toBe(level);
      expect(basic.counts).toEqual({ [level]: 1 });
    }
  });

  it('without a findingArn the key is the vulnerability id, the packages (with versions and files) and the resource', () => {
    const raw = {
      packageVulnerabilityDetails: {
        vulnerabilityId: 'CVE-1',
        vulnerablePackages: [{ name: 'b' }, { name: 'a' }],
      },
      resources: [{ id: 'arn:aws:ecr:r/x/sha256:1' }],
      severity: 'HIGH',
    };
    expect(readFindingsDocument([raw]).findings.row(0)!.key).toBe(
      'CVE-1|["CVE-1",[["a",null,null],["b",null,null]],"arn:aws:ecr:r/x/sha256:1"]',
    );
  });

  it('without a findingArn, one CVE in a package at two versions, or in two files, is two findings', () => {
    // A CRITICAL in log4j-core 2.14.1 and a newer LOW in 2.17.1 of the same image: taken for two copies of one
    // finding, the newer (LOW) was kept, and nothing rejected.
    const raw = (severity: string, updatedAt: number, version: string, filePath: string) => ({
      packageVulnerabilityDetails: {
        vulnerabilityId: 'CVE-2024-0001',
        vulnerablePackages: [{ name: 'log4j-core', version, filePath }],
      },
      resources: [{ id: 'arn:aws:ecr:r/x/sha256:1' }],
      severity,
      updatedAt,
    });
    const decide = noCritical;
    const versions = decide([
      raw('CRITICAL', 1_764_000_000, '2.14.1', '/app/a.jar'),
      raw('LOW', 1_764_000_001, '2.17.1', '/app/b.jar'),
    ]);
    expect(versions.outcome).toBe('REJECT');
    expect(versions.counts).toMatchObject({ CRITICAL: 1, LOW: 1 });
    // The same version in two jars is two findings too.
    const files = decide([
      raw('CRITICAL', 1_764_000_000, '2.14.1', '/app/a.jar'),
      raw('LOW', 1_764_000_001, '2.14.1', '/app/b.jar'),
    ]);
    expect(files.outcome).toBe('REJECT');
    // One finding delivered twice (same package, version and file) is still one, the newer copy kept.
    const copies = decide([
      raw('CRITICAL', 1_764_000_000, '2.14.1', '/app/a.jar'),
      raw('LOW', 1_764_000_001, '2.14.1', '/app/a.jar'),
    ]);
    expect(copies.counts).toMatchObject({ CRITICAL: 0, LOW: 1 });
  });

  it('without a findingArn, findings that differ only where a joined key would blur them stay apart', () => {
    const raw = (id: string, names: string[], resource: string, severity: string, updatedAt: number) => ({
      packageVulnerabilityDetails: {
        vulnerabilityId: id,
        vulnerablePackages: names.map((name) => ({ name })),
      },
      resources: [{ id: resource }],
      severity,
      updatedAt,
    });
    // The reviewer's case: a CRITICAL finding in package "a,b", and a newer LOW one in packages a and b.
    // Taken for two copies of one finding, the newer (LOW) would be kept, and nothing would reject.
    const list = [
      raw('CVE-1', ['a,b'], 'arn:aws:ecr:r/x/sha256:1', 'CRITICAL', 1_700_000_000),
      raw('CVE-1', ['a', 'b'], 'arn:aws:ecr:r/x/sha256:1', 'LOW', 1_700_000_100),
    ];
    const decide = (findings: unknown[]) => noCritical(findings).outcome;
    expect(decide(list)).toBe('REJECT');
    // `|` in the id, the names or the resource, which the old key joined with.
    const pairs: [Parameters<typeof raw>, Parameters<typeof raw>][] = [
      [
        ['CVE-1|a', ['b'], 'r', 'CRITICAL', 1_700_000_000],
        ['CVE-1', ['a|b'], 'r', 'LOW', 1_700_000_100],
      ],
      [
        ['CVE-1', ['a|r'], '', 'CRITICAL', 1_700_000_000],
        ['CVE-1', ['a'], 'r|', 'LOW', 1_700_000_100],
      ],
    ];
    for (const [critical, low] of pairs) {
      const t = readFindingsDocument([raw(...critical), raw(...low)]).findings;
      expect(t.keyCount).toBe(2);
      expect(decide([raw(...critical), raw(...low)])).toBe('REJECT');
    }
    // The same finding read twice is still one: the key is the same whatever the order of its packages.
    const again = readFindingsDocument([
      raw('CVE-1', ['b', 'a'], 'r', 'LOW', 1),
      raw('CVE-1', ['a', 'b'], 'r', 'LOW', 1),
    ]).findings;
    expect(again.keyCount).toBe(1);
  });

  it('an empty findingArn is no key: two such findings stay two, not one taken for a copy of the other', () => {
    const finding = (id: string, severity: string) => ({
      findingArn: '',
      packageVulnerabilityDetails: { vulnerabilityId: id, vulnerablePackages: [{ name: 'p' }] },
      severity,
      status: 'ACTIVE',
    });
    const rows = readFindingsDocument([
      finding('CVE-2021-44228', 'CRITICAL'),
      finding('CVE-2024-0001', 'LOW'),
    ])
      .findings.rows()
      .map((f) => [f.key, f.severity]);
    expect(rows).toEqual([
      ['CVE-2021-44228|["CVE-2021-44228",[["p",null,null]],""]', 'CRITICAL'],
      ['CVE-2024-0001|["CVE-2024-0001",[["p",null,null]],""]', 'LOW'],
    ]);
  });
});

describe('timestamps', () => {
  it.each([
    [1725468938.411, Date.UTC(2024, 8, 4, 16, 55, 38, 411)],
    ['2024-09-04T16:55:38Z', Date.UTC(2024, 8, 4, 16, 55, 38)],
    ['2024-09-04T18:55:38+02:00', Date.UTC(2024, 8, 4, 16, 55, 38)],
    ['Wed Sep 04 16:55:38.411 UTC 2024', Date.UTC(2024, 8, 4, 16, 55, 38, 411)],
    ['Sep 4 16:55:38 UTC 2024', Date.UTC(2024, 8, 4, 16, 55, 38)],
    ['Dec 3, 2021, 6:02:30 PM', Date.UTC(2021, 11, 3, 18, 2, 30)],
    // Java 20+ (CLDR 42): a narrow no-break space before PM.
    ['Dec 3, 2021, 6:02:30\u202fPM', Date.UTC(2021, 11, 3, 18, 2, 30)],
    ['Dec 3, 2021, 12:02:30 AM', Date.UTC(2021, 11, 3, 0, 2, 30)],
    ['Dec 3, 2021, 12:02:30 PM', Date.UTC(2021, 11, 3, 12, 2, 30)],
    ['2024-02-29T23:59:59Z', Date.UTC(2024, 1, 29, 23, 59, 59)],
    [253402300799, Date.UTC(9999, 11, 31, 23, 59, 59)],
  ])('%s', (input, expected) => {
    expect(parseTimestamp(input)).toBe(expected);
  });

  it.each([
    '2024-09-04T16:55:38',
    'yesterday',
    'Foo 3, 2021, 6:02:30 PM',
    true,
    -5,
    // Epoch milliseconds, which as seconds would date a finding in the year 56,000: olderThanDays never met.
    1717200000000,
    // Dates and times that do not exist, which Date.parse and Date.UTC would roll over into others.
    '2024-02-31T00:00:00Z',
    '2023-02-29T10:00:00Z',
    '2024-09-04T24:00:00Z',
    'Wed Feb 31 16:55:38.411 UTC 2024',
    'Sep 4 16:75:38 UTC 2024',
    'Feb 30, 2024, 6:02:30 PM',
  ])('refuses %s', (input) => {
    expect(parseTimestamp(input)).toMatchObject({ problem: true });
  });
});

describe('errors name the file, position, path, expectation and what came', () => {
  it('invalid JSON, with line and column', () => {
    const e = inputError(() => parseFindingsText('{\n  "findings": [\n    {,}\n  ]\n}', 'page1.json'));
    expect(e.message).toMatch(/^page1\.json:3:6: expected a JSON findings export; got invalid JSON \(.+\)$/);
  });

  it('an empty file', () => {
    expect(inputError(() => parseFindingsText('', 'empty.json')).message).toBe(
      'empty.json: expected a JSON findings export; got an empty file',
    );
  });

  it('an unknown shape says which formats are accepted', () => {
    const e = inputError(() => parseFindingsText('{"items": []}', 'x.json'));
    expect(e.message).toContain(
      'x.json:1:1: expected an Inspector2 ListFindings response or findings report',
    );
    expect(e.message).toContain('an ECR DescribeImageScanFindings response; got a mapping with keys items');
  });

  it('a field of the wrong type, located in the file', () => {
    const raw = fixtureJson('aws/list-findings-response.ecr.derived-from-aws-docs-event.json') as {
      findings: Record<string, unknown>[];
    };
    raw.findings[0]!.epss = { score: 'high' };
    const e = inputError(() => parseFindingsText(JSON.stringify(raw, null, 2), 'f.json'));
    expect(e.message).toMatch(/^f\.json:\d+:\d+: findings\[0\]\.epss\.score: expected a number; got "high"$/);
    expect(e.problems[0]!.line).toBe(
      JSON.stringify(raw, null, 2)
        .split('\n')
        .findIndex((l) => l.includes('"high"')) + 1,
    );
  });

  it('a bad package deep in a finding', () => {
    const raw = fixtureJson('aws/list-findings-response.ecr.derived-from-aws-docs-event.json') as {
      findings: { packageVulnerabilityDetails: { vulnerablePackages: Record<string, unknown>[] } }[];
    };
    raw.findings[0]!.packageVulnerabilityDetails.vulnerablePackages[1]!.name = 42;
    const e = inputError(() => parseFindingsText(JSON.stringify(raw), 'f.json'));
    expect(e.problems[0]!.path).toBe('findings[0].packageVulnerabilityDetails.vulnerablePackages[1].name');
    expect(e.problems[0]!.got).toBe('42');
  });

  it('a status outside ACTIVE, SUPPRESSED and CLOSED is refused, not ignored', () => {
    const e = inputError(() =>
      parseFindingsText('{"findings": [{"title": "CVE-1", "status": "OPEN"}]}', 'f.json'),
    );
    expect(e.message).toBe(
      'f.json:1:44: findings[0].status: expected a finding status: ACTIVE, SUPPRESSED or CLOSED; got "OPEN"',
    );
  });

  it('an unreadable timestamp', () => {
    const e = inputError(() =>
      parseFindingsText('[{"title":"CVE-1","firstObservedAt":"last week"}]', 'f.json'),
    );
    expect(e.message).toMatch(
      /^f\.json:1:\d+: \[0\]\.firstObservedAt: expected a timestamp: .+; got "last week"$/,
    );
  });
});

describe('merging several files', () => {
  const page = (n: number) => {
    const raw = fixtureJson('aws/list-findings-response.ecr.derived-from-aws-docs-event.json') as {
      findings: Record<string, unknown>[];
    };
    raw.findings[0]!.findingArn = `arn:finding/${n}`;
    // The sample is a first page (it has a nextToken); page 2 is the export's last.
    if (n !== 1) delete (raw as { nextToken?: string }).nextToken;
    return { file: `page${n}.json`, document: readFindingsDocument(raw) };
  };

  it('concatenates pages of one export and keeps the image', () => {
    const set = mergeFindings([page(1), page(2)]);
    expect(set.findings.rows().map((f) => f.key)).toEqual(['arn:finding/1', 'arn:finding/2']);
    expect(set.image).toEqual({ repository: 'inspector2', digest: DIGEST, tags: ['ubuntu_latest'] });
    expect(set.scan).toBeUndefined();
  });

  it('refuses a page that says more findings follow when no file given is the last page', () => {
    const withToken = (n: number, token: string | null) => {
      const raw = fixtureJson('aws/list-findings-response.ecr.derived-from-aws-docs-event.json') as {
        findings: Record<string, unknown>[];
        nextToken?: string | null;
      };
      raw.findings[0]!.findingArn = `arn:finding/${n}`;
      raw.nextToken = token;
      return { file: `page${n}.json`, document: readFindingsDocument(raw) };
    };
    const e = inputError(() => mergeFindings([withToken(1, 'eyJuZXh0IjoyfQ==')]));
    expect(e.message).toBe(
      'page1.json: nextToken: expected every page of the export: this response says more findings follow, ' +
        'and no file given is its last page (one without nextToken); fetch them all (the AWS CLI pages by ' +
        'itself unless told --no-paginate or --max-items, whose cut leaves a NextToken) or pass every page; ' +
        'got nextToken "eyJuZXh0IjoyfQ=="',
    );
    expect(() => mergeFindings([withToken(1, 'a'), withToken(2, 'b')])).toThrow(/page1\.json, page2\.json/);
    // With its last page (no token, or null as the API may send it), the export is whole.
    expect(mergeFindings([withToken(1, 'a'), withToken(2, null)]).findings.length).toBe(2);
    expect(mergeFindings([withToken(1, 'a'), page(2)]).findings.length).toBe(2);
    expect(() => mergeFindings([page(1)])).toThrow(/EXAMPLE-OPAQUE/);

    const ecr = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as Record<
      string,
      unknown
    >;
    const ecrPage = { file: 'ecr.json', document: readFindingsDocument({ ...ecr, nextToken: 'more' }) };
    expect(() => mergeFindings([ecrPage])).toThrow(/ecr\.json: nextToken: expected every page/);
  });

  it('refuses pages of two scans (a rescan while they were fetched), in any order, as the gate does', () => {
    const ecr = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as {
      repositoryName: string;
      imageScanFindings: Record<string, unknown> & { findings: { name: string }[] };
    };
    const ecrPage = (
      file: string,
      at: number | undefined,
      name: string,
      token?: string,
      repositoryName = ecr.repositoryName,
    ) => {
      const { imageScanCompletedAt: _, ...rest } = ecr.imageScanFindings;
      const findings = [{ ...ecr.imageScanFindings.findings[0]!, name }];
      const raw = {
        ...ecr,
        repositoryName,
        imageScanFindings: { ...rest, findings, ...(at === undefined ? {} : { imageScanCompletedAt: at }) },
        ...(token === undefined ? {} : { nextToken: token }),
      };
      return { file, document: readFindingsDocument(raw) };
    };
    const A = 1795478400;
    const B = 1795564800;
    const a1 = ecrPage('scan-a.json', A, 'CVE-2020-0001', 'next');
    const b2 = ecrPage('scan-b.json', B, 'CVE-2020-0002');
    expect(inputError(() => mergeFindings([a1, b2])).message).toBe(
      'scan-b.json: imageScanFindings.imageScanCompletedAt: expected the pages of one scan, as scan-a.json is ' +
        '(completed at 2026-11-24T00:00:00.000Z): the image was scanned again while its findings were fetched; ' +
        'fetch them again; got a page of a scan completed at 2026-11-25T00:00:00.000Z',
    );
    // The order the files come in changes nothing: the last page first, or a shell glob's page-1, page-10, page-2.
    expect(() => mergeFindings([b2, a1])).toThrow(/scan-a\.json: imageScanFindings\.imageScanCompletedAt/);
    const glob = [
      ecrPage('page-1.json', A, 'CVE-2024-0001', 't1'),
      ecrPage('page-10.json', undefined, 'CVE-2024-0009'),
      ecrPage('page-2.json', B, 'CVE-2024-0003', 't2'),
    ];
    expect(() => mergeFindings(glob)).toThrow(/page-2\.json: .*completed at 2026-11-25/);
    // Pages of one scan, and the answer's last page without a completion time, are one answer.
    expect(mergeFindings([a1, ecrPage('b.json', A, 'CVE-2020-0002')]).findings.length).toBe(2);
    expect(mergeFindings([ecrPage('b.json', undefined, 'CVE-2020-0002'), a1]).findings.length).toBe(2);
    // Two whole answers are two reads, not pages of one: each was complete.
    const whole = (file: string, at: number) => ecrPage(file, at, `CVE-${at}`);
    expect(mergeFindings([whole('x.json', A), whole('y.json', B)]).findings.length).toBe(2);
    // Another repository's pages are its own (left out by --repository), not a rescan of this image's.
    const other = [
      ecrPage('other-1.json', B, 'CVE-2020-0003', 'o1', 'other/repo'),
      ecrPage('other-2.json', B, 'CVE-2020-0004', undefined, 'other/repo'),
    ];
    const set = mergeFindings([...other, whole('mine.json', A)], ecr.repositoryName);
    expect(set.leftOut).toBe(2);
  });

  it('refuses a list the AWS CLI cut with --max-items (its NextToken), from Inspector or ECR, until its rest is given', () => {
    // `aws inspector2 list-findings --max-items 1` prints the findings it kept and a top-level NextToken for
    // --starting-token: judged alone, one LOW finding would have approved an image with CRITICAL ones.
    const cut = fixtureJson('aws/list-findings-response.ecr.derived-from-aws-docs-event.json') as Record<
      string,
      unknown
    >;
    delete cut.nextToken;
    cut.NextToken = 'eyJuZXh0VG9rZW4iOiBudWxsLCAiYm90b19'; // the CLI's own token
    const first = { file: 'cut.json', document: readFindingsDocument(cut) };
    expect(first.document.nextToken).toBe('eyJuZXh0VG9rZW4iOiBudWxsLCAiYm90b19');
    expect(() => mergeFindings([first])).toThrow(/cut\.json: NextToken: expected every page/);
    // The rest (printed by --starting-token, without a NextToken) makes it whole.
    const rest = fixtureJson('aws/list-findings-response.ecr.derived-from-aws-docs-event.json') as {
      findings: Record<string, unknown>[];
      nextToken?: string;
    };
    delete rest.nextToken;
    rest.findings[0]!.findingArn = 'arn:finding/rest';
    expect(
      mergeFindings([first, { file: 'rest.json', document: readFindingsDocument(rest) }]).findings.length,
    ).toBe(2);

    const ecr = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as Record<
      string,
      unknown
    >;
    const ecrCut = { file: 'ecr.json', document: readFindingsDocument({ ...ecr, NextToken: 'more' }) };
    expect(() => mergeFindings([ecrCut])).toThrow(/ecr\.json: NextToken: expected every page/);
    let bad: unknown;
    try {
      readFindingsDocument({ ...ecr, NextToken: 7 });
    } catch (e) {
      bad = e;
    }
    expect(bad).toMatchObject({ path: ['NextToken'], message: 'expected a pagination token (a string)' });
  });

  it('refuses an ECR response whose list holds fewer findings than its own counts (trimmed, or a page missing)', () => {
    const ecr = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as {
      imageScanFindings: Record<string, unknown>;
    };
    const doc = (file: string, isf: Record<string, unknown>) => ({
      file,
      document: readFindingsDocument({ ...ecr, imageScanFindings: isf }),
    });
    // No list at all (or null) while 3 CRITICAL are counted: judged, it approved with 0 CRITICAL.
    for (const findings of [undefined, null]) {
      const e = inputError(() =>
        mergeFindings([doc('ecr.json', { findings, findingSeverityCounts: { CRITICAL: 3 } })]),
      );
      expect(e.message).toBe(
        'ecr.json: imageScanFindings.findingSeverityCounts: expected a findings list holding every finding the ' +
          'response counts: this one was trimmed, or a page of it is missing; got CRITICAL 0 listed of 3 counted',
      );
    }
    // Whatever the order of the files: a page with empty counts first does not hide the other's.
    const empty = doc('a.json', { findingSeverityCounts: {}, findings: [] });
    const counted = doc('b.json', { findingSeverityCounts: { CRITICAL: 3 }, findings: [] });
    for (const order of [
      [empty, counted],
      [counted, empty],
    ])
      expect(() => mergeFindings(order)).toThrow('got CRITICAL 0 listed of 3 counted');
    // The sample lists what it counts (1 MEDIUM); counting UNDEFINED as UNTRIAGED, as its findings are.
    expect(mergeFindings([doc('ecr.json', ecr.imageScanFindings)]).findings.length).toBe(1);
    const untriaged = { findingSeverityCounts: { UNDEFINED: 1 }, findings: [{ name: 'CVE-1' }] };
    expect(mergeFindings([doc('u.json', untriaged)]).findings.length).toBe(1);
    // A count that is not a whole number is a bad field, named.
    expect(() =>
      readFindingsDocument({ ...ecr, imageScanFindings: { findingSeverityCounts: { HIGH: -1 } } }),
    ).toThrow('expected a count (a whole number, 0 or more)');
  });

  it('counts an ECR basic finding per package version, tells findings without a package apart, and a repeat not at all', () => {
    const ecr = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as {
      imageScanFindings: Record<string, unknown>;
    } & Record<string, unknown>;
    const kernel = (version: string) => ({
      name: 'CVE-2024-0001',
      severity: 'HIGH',
      attributes: [
        { key: 'package_version', value: version },
        { key: 'package_name', value: 'kernel' },
      ],
    });
    const loose = (uri: string) => ({
      name: 'CVE-2024-0002',
      uri,
      description: 'no package named',
      severity: 'HIGH',
      attributes: [
        { key: 'CVSS2_VECTOR', value: 'AV:N/AC:L/Au:N/C:P/I:P/A:P' },
        { key: 'CVSS2_SCORE', value: '7.5' },
      ],
    });
    const set = (findings: unknown[], counted: number) =>
      mergeFindings([
        {
          file: 'ecr.json',
          document: readFindingsDocument({
            ...ecr,
            imageScanFindings: {
              ...ecr.imageScanFindings,
              findings,
              findingSeverityCounts: { HIGH: counted },
            },
          }),
        },
      ]);
    const a = loose('https://example.com/a');
    // One CVE in two installed versions of the kernel, and two findings of one CVE naming no package: four.
    const four = [kernel('5.10.1-1.amzn2'), kernel('5.10.2-1.amzn2'), a, loose('https://example.com/b')];
    const whole = set(four, 4);
    expect(whole.findings.length).toBe(4);
    expect(new Set(whole.findings.rows().map((f) => f.key)).size).toBe(4);
    // Each repeated (attributes in another order too): the same four findings, which do not make five.
    const repeated = [...four, kernel('5.10.1-1.amzn2'), { ...a, attributes: [...a.attributes].reverse() }];
    expect(() => set(repeated, 5)).toThrow('got HIGH 4 listed of 5 counted');
    expect(set(repeated, 4).findings.length).toBe(6);

    // Package names and versions come from inside the image: `a|b` at `` and `a` at `b|` are two findings,
    // not one key read as a finding listed twice (ECR's own count of two then looked unmet).
    const packaged = (pkg: string, version: string) => ({
      name: 'CVE-2024-0003',
      severity: 'HIGH',
      attributes: [
        { key: 'package_name', value: pkg },
        { key: 'package_version', value: version },
      ],
    });
    const two = set([packaged('a|b', ''), packaged('a', 'b|')], 2);
    expect(new Set(two.findings.rows().map((f) => f.key)).size).toBe(2);
  });

  it('refuses findings of two images', () => {
    const ecr = {
      file: 'ecr.json',
      document: readFindingsDocument(
        fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json'),
      ),
    };
    const e = inputError(() => mergeFindings([page(2), ecr]));
    expect(e.message).toContain('expected the findings of one image (one digest)');
    expect(e.message).toContain('got findings of 2 images');
  });

  /** An export of findings of one digest, each in the repository given (undefined: a finding naming none). */
  const across = (repositories: (string | undefined)[], digests: string[] = []) => {
    const raw = fixtureJson('aws/list-findings-response.ecr.derived-from-aws-docs-event.json') as {
      findings: Record<string, unknown>[];
      nextToken?: string;
    };
    delete raw.nextToken;
    const sample = raw.findings[0]!;
    raw.findings = repositories.map((repository, n) => {
      const f = structuredClone(sample) as {
        findingArn: string;
        resources: { id: string; details: { awsEcrContainerImage: Record<string, unknown> } }[];
      };
      f.findingArn = `arn:finding/${n}`;
      const image = f.resources[0]!.details.awsEcrContainerImage;
      f.resources[0]!.id = `arn:resource/${n}`;
      image.imageTags = [`tag-of-${repository ?? 'none'}`];
      image.imageHash = digests[n] ?? DIGEST;
      if (repository === undefined) delete image.repositoryName;
      else image.repositoryName = repository;
      return f;
    });
    return JSON.stringify(raw, null, 2);
  };

  it("two findings under one resource id but of two images are two images: the id is the file's word, not the image", () => {
    const raw = JSON.parse(across(['app', 'other'], [DIGEST, `sha256:${'2'.repeat(64)}`])) as {
      findings: { resources: { id: string }[] }[];
    };
    raw.findings[1]!.resources[0]!.id = raw.findings[0]!.resources[0]!.id;
    const text = JSON.stringify(raw);
    const named = { file: 'x.json', document: parseFindingsText(text, 'x.json'), text };
    expect(inputError(() => mergeFindings([named])).message).toContain('got findings of 2 images');
    // One digest in two repositories under one id: --repository keeps its own repository's finding.
    const repos = JSON.parse(across(['other', 'app', 'app'])) as typeof raw;
    repos.findings[1]!.resources[0]!.id = repos.findings[0]!.resources[0]!.id;
    const picked = mergeFindings(
      [{ file: 'y.json', document: parseFindingsText(JSON.stringify(repos), 'y.json') }],
      'app',
    );
    expect(picked.findings.rows().map((f) => f.key)).toEqual(['arn:finding/1', 'arn:finding/2']);
    expect(picked.leftOut).toBe(1);
  });

  it('tags the reading let pass are not read again when naming images: an InputError, never a ShapeError', () => {
    // The reliability suite's mutated file: a finding read the detailed way (no severity) after one read the
    // fast way, of the same resource: the first one's image is the second's (the same resource id), and its
    // tags, which are no list, are never read. Naming the images of several must not read them either.
    const raw = JSON.parse(
      readFileSync(join(ROOT, 'examples/findings/orders-worker.list-findings.json'), 'utf8'),
    ) as {
      findings: {
        severity?: string;
        resources: { id: string; details: { awsEcrContainerImage: Record<string, unknown> } }[];
      }[];
    };
    raw.findings[0]!.resources[0]!.details.awsEcrContainerImage.imageTags = 1017620437;
    delete raw.findings[2]!.severity;
    const text = JSON.stringify(raw);
    const named = { file: 'a.json', document: parseFindingsText(text, 'a.json'), text };
    const billing = readFileSync(join(ROOT, 'examples/findings/billing-api.list-findings.json'), 'utf8');
    const other = { file: 'b.json', document: parseFindingsText(billing, 'b.json') };
    expect(inputError(() => mergeFindings([named, other])).message).toContain('got findings of 2 images');
    // And --repository picking one repository's findings of the digest.
    const moved = structuredClone(raw);
    moved.findings[1]!.resources[0]!.id = 'arn:resource/moved';
    moved.findings[1]!.resources[0]!.details.awsEcrContainerImage.repositoryName = 'orders/worker-staging';
    const both = JSON.stringify(moved);
    const picked = mergeFindings(
      [{ file: 'c.json', document: parseFindingsText(both, 'c.json') }],
      'orders/worker',
    );
    expect(picked.leftOut).toBe(1);
  });

  it('with --repository, findings of one digest in several repositories: only that repository is judged, as the gate reads it', () => {
    const text = across(['staging/api', 'prod/api', undefined, 'prod/api']);
    const named = { file: 'x.json', document: parseFindingsText(text, 'x.json') };
    // Without it: refused, naming the finding that brings the second repository, at its line and column.
    const e = inputError(() => mergeFindings([{ ...named, text }]));
    expect(e.problems[0]).toMatchObject({
      file: 'x.json',
      path: 'findings[1].resources[0].details.awsEcrContainerImage.repositoryName',
      line: new SourceLocator(text).locate([
        'findings',
        1,
        'resources',
        0,
        'details',
        'awsEcrContainerImage',
        'repositoryName',
      ])!.line,
      expected: 'the findings of one repository (or --repository to name the one to judge)',
      got: 'findings of 2 repositories: staging/api, prod/api',
    });
    // With it, the other repository's findings are left out (and counted), the ones naming none kept.
    const set = mergeFindings([named], 'prod/api');
    expect(set.findings.rows().map((f) => f.key)).toEqual([
      'arn:finding/1',
      'arn:finding/2',
      'arn:finding/3',
    ]);
    expect(set.leftOut).toBe(1);
    expect(set.image).toEqual({
      repository: 'prod/api',
      digest: DIGEST,
      tags: ['tag-of-none', 'tag-of-prod/api'],
    });
    const staging = mergeFindings([named], 'staging/api');
    expect(staging.findings.rows().map((f) => f.key)).toEqual(['arn:finding/0', 'arn:finding/2']);
    expect(staging.leftOut).toBe(2);
    // A repository the findings do not name would leave every one out (and approve): refused.
    expect(inputError(() => mergeFindings([named], 'prod/apj')).message).toContain(
      'the findings do not name "prod/apj"',
    );
    // Findings of one repository: --repository naming it changes nothing, and nothing is left out.
    const oneText = across(['prod/api', undefined]);
    const one = { file: 'one.json', document: parseFindingsText(oneText, 'one.json'), text: oneText };
    expect(mergeFindings([one], 'prod/api')).toMatchObject({ leftOut: 0, image: { repository: 'prod/api' } });
    expect(mergeFindings([one], 'prod/api').findings.length).toBe(2);
    // Findings naming none: --repository names their image.
    const none = { file: 'none.json', document: parseFindingsText(across([undefined]), 'none.json') };
    expect(mergeFindings([none], 'team/other')).toMatchObject({ image: { repository: 'team/other' } });
  });

  it('--repository on findings of one other repository is refused, not judged (and excepted) as its own', () => {
    // Every finding names prod/api (or none): judged as team/other, team/other's exceptions and rules applied.
    const text = across(['prod/api', undefined, 'prod/api']);
    const one = { file: 'one.json', document: parseFindingsText(text, 'one.json'), text };
    const e = inputError(() => mergeFindings([one], 'team/other'));
    expect(e.problems[0]).toMatchObject({
      file: 'one.json',
      ...new SourceLocator(text).locate([
        'findings',
        0,
        'resources',
        0,
        'details',
        'awsEcrContainerImage',
        'repositoryName',
      ]),
      path: 'findings[0].resources[0].details.awsEcrContainerImage.repositoryName',
      expected:
        'the findings of "team/other" (--repository), which names the repository of findings that name none, or picks one of several',
      got: 'findings of prod/api',
    });
    // An ECR response names its repository at its top: there.
    const ecr = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as {
      repositoryName: string;
    };
    const answer = { file: 'ecr.json', document: readFindingsDocument(ecr) };
    expect(inputError(() => mergeFindings([answer], 'team/other')).message).toBe(
      `ecr.json: repositoryName: expected the findings of "team/other" (--repository), which names the repository of findings that name none, or picks one of several; got findings of ${ecr.repositoryName}`,
    );
  });

  it('--repository picking one repository of several: a partial read of it is refused, whatever the others hold', () => {
    // ECR: page 1 of team/a (more follow, 1 CRITICAL counted and not listed) beside team/b's whole answer of the
    // same digest. Judged on all files, b's answer passed as a's last page and b's CRITICAL met a's count.
    const ecr = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as {
      imageScanFindings: { findings: Record<string, unknown>[] } & Record<string, unknown>;
    } & Record<string, unknown>;
    const medium = ecr.imageScanFindings.findings[0]!;
    const critical = { ...medium, name: 'CVE-2024-9999', severity: 'CRITICAL' };
    const counts = { MEDIUM: 1, CRITICAL: 1 };
    const answer = (file: string, repositoryName: string, findings: unknown[], more?: string) => ({
      file,
      document: readFindingsDocument({
        ...ecr,
        repositoryName,
        imageScanFindings: { ...ecr.imageScanFindings, findings, findingSeverityCounts: counts },
        ...(more === undefined ? {} : { nextToken: more }),
      }),
    });
    const b = answer('b-full.json', 'team/b', [medium, critical]);
    const a1 = answer('a-page1.json', 'team/a', [medium], 'page2-token');
    expect(() => mergeFindings([a1, b], 'team/a')).toThrow(/^a-page1\.json: nextToken: expected every page/);
    expect(() => mergeFindings([b, a1], 'team/a')).toThrow(/^a-page1\.json: nextToken: expected every page/);
    // Its token gone (cut), a's list is short of a's own counts: b's findings do not make up for it.
    const cut = answer('a-cut.json', 'team/a', [medium]);
    expect(() => mergeFindings([cut, b], 'team/a')).toThrow(
      /^a-cut\.json: imageScanFindings\.findingSeverityCounts: .*; got CRITICAL 0 listed of 1 counted$/,
    );
    // With its own last page, a's answer is whole; b's is left out.
    const a2 = answer('a-page2.json', 'team/a', [critical]);
    expect(mergeFindings([a1, b, a2], 'team/a')).toMatchObject({
      leftOut: 2,
      image: { repository: 'team/a' },
    });
    expect(mergeFindings([a1, b, a2], 'team/a').findings.length).toBe(2);
    // b's answer, picked, is whole on its own: a's pages are left out, unchecked.
    expect(mergeFindings([a1, b], 'team/b').findings.length).toBe(2);
    // Without --repository: refused as before, as findings of two repositories.
    expect(() => mergeFindings([a1, b])).toThrow(
      /^b-full\.json: repositoryName: expected the findings of one/,
    );

    // Inspector: a first page of checkout/web beside another repository's whole export of the digest.
    const page = (file: string, repositories: (string | undefined)[], more?: string) => {
      const raw = JSON.parse(across(repositories)) as { findings: { findingArn: string }[] };
      for (const f of raw.findings) f.findingArn = `${f.findingArn}/${file}`;
      return { file, document: readFindingsDocument(more === undefined ? raw : { ...raw, nextToken: more }) };
    };
    const web1 = page('ia-page1.json', ['checkout/web'], 'more');
    const other = page('ib-full.json', ['other/repo']);
    expect(() => mergeFindings([web1, other], 'checkout/web')).toThrow(
      /^ia-page1\.json: nextToken: expected every page/,
    );
    // A file whose findings are partly this repository's is a page of it; its last page may name none.
    const mixed = page('mixed.json', ['other/repo', 'checkout/web']);
    expect(mergeFindings([web1, other, mixed], 'checkout/web')).toMatchObject({ leftOut: 2 });
    const last = { file: 'last.json', document: readFindingsDocument({ findings: [] }) };
    expect(mergeFindings([web1, other, last], 'checkout/web')).toMatchObject({ leftOut: 1 });
    expect(mergeFindings([web1, other], 'other/repo')).toMatchObject({ leftOut: 1 });
  });

  it('--repository picking one repository of several: pages of one Inspector export are checked whatever rows they keep', () => {
    const page = (file: string, repositories: (string | undefined)[], more?: string) => {
      const raw = JSON.parse(across(repositories)) as { findings: { findingArn: string }[] };
      for (const f of raw.findings) f.findingArn = `${f.findingArn}/${file}`;
      return { file, document: readFindingsDocument(more === undefined ? raw : { ...raw, nextToken: more }) };
    };
    // ListFindings pages one export across every repository: its last page may hold only app/b's findings. Left
    // out of the page check, it made page 1's token look as if its last page was missing.
    const p1 = page('p1.json', ['app/a', 'app/b'], 'TOKEN1');
    const p2 = page('p2.json', ['app/b']);
    for (const files of [
      [p1, p2],
      [p2, p1],
    ]) {
      const set = mergeFindings(files, 'app/a');
      expect(set).toMatchObject({ leftOut: 2, image: { repository: 'app/a' } });
      expect(set.findings.length).toBe(1);
    }
    expect(mergeFindings([p1, p2], 'app/b')).toMatchObject({ leftOut: 1 });
    // Without its last page, still refused.
    expect(() => mergeFindings([p1], 'app/a')).toThrow(/^p1\.json: nextToken: expected every page/);
    // A first page of checkout/web's findings alone, beside a last page of another repository's alone: nothing
    // shows they are of one export (the first may be of an export filtered by repository): refused, saying why.
    const web1 = page('ia-page1.json', ['checkout/web'], 'more');
    const other = page('ib-full.json', ['other/repo']);
    for (const files of [
      [web1, other],
      [other, web1],
    ])
      expect(() => mergeFindings(files, 'checkout/web')).toThrow(
        /^ia-page1\.json: nextToken: expected every page of the export: this response says more findings follow, and every last page given \(ib-full\.json\) holds only findings of other repositories, .*export them with a repository filter; got nextToken "more"$/,
      );
  });

  it('--repository picking one repository of several: an ECR answer is left out whole only when its own repository is another', () => {
    // moto's answer names reponame at its top and prod/cp/motoserver in its rows; it counts MEDIUM 1, UNTRIAGED 1.
    const raw = fixtureJson('aws/describe-image-scan-findings.enhanced.moto-fixture.json') as {
      repositoryName: string;
    };
    expect(raw.repositoryName).toBe('reponame');
    const answer = { file: 'moto.json', document: readFindingsDocument(raw) };
    // The answer of reponame keeps none of its rows: still held to its counts (it approved with nothing judged).
    expect(() => mergeFindings([answer], 'reponame')).toThrow(
      /^moto\.json: imageScanFindings\.findingSeverityCounts: expected a findings list holding every finding the response counts.*; got MEDIUM 0 listed of 1 counted, UNTRIAGED 0 listed of 1 counted$/,
    );
    // prod/cp/motoserver is named only inside another repository's answer, left out whole: nothing of it is
    // judged (it approved on no findings at all).
    expect(inputError(() => mergeFindings([answer], 'prod/cp/motoserver')).problems[0]).toMatchObject({
      file: 'moto.json',
      path: 'repositoryName',
      expected:
        'the findings of "prod/cp/motoserver" (--repository): it is named only by findings inside ECR answers of other repositories, which are left out whole; pass the answer of prod/cp/motoserver\'s image',
      got: 'ECR answers of reponame',
    });
  });

  it('problems of the export as a whole name the file, line, column and key path they are known at', () => {
    const other = `sha256:${'ab'.repeat(32)}`;
    const text = across(['prod/api', 'prod/api', 'prod/api'], [DIGEST, DIGEST, other]);
    const at = (path: (string | number)[]) => new SourceLocator(text).locate(path)!;
    const hash = ['findings', 2, 'resources', 0, 'details', 'awsEcrContainerImage', 'imageHash'];
    const e = inputError(() =>
      mergeFindings([{ file: 'x.json', document: parseFindingsText(text, 'x.json'), text }]),
    );
    expect(e.problems[0]).toMatchObject({
      file: 'x.json',
      ...at(hash),
      path: 'findings[2].resources[0].details.awsEcrContainerImage.imageHash',
    });
    expect(e.message).toMatch(
      /^x\.json:\d+:\d+: findings\[2\]\.resources\[0\]\.details\.awsEcrContainerImage\.imageHash: expected the findings of one image/,
    );
    // In another file: that file, where it brings the second digest.
    const first = across(['prod/api'], [DIGEST]);
    const second = across(['prod/api', 'prod/api'], [DIGEST, other]);
    const two = inputError(() =>
      mergeFindings([
        { file: 'a.json', document: parseFindingsText(first, 'a.json'), text: first },
        { file: 'b.json', document: parseFindingsText(second, 'b.json'), text: second },
      ]),
    );
    expect(two.problems[0]).toMatchObject({
      file: 'b.json',
      ...new SourceLocator(second).locate([
        'findings',
        1,
        'resources',
        0,
        'details',
        'awsEcrContainerImage',
        'imageHash',
      ]),
      path: 'findings[1].resources[0].details.awsEcrContainerImage.imageHash',
    });
    expect(two.message).toContain(`got findings of 2 images: ${DIGEST} (a.json), ${other} (b.json)`);

    // A token left in, and counts the list falls short of: at the key.
    const paged = JSON.stringify({ ...JSON.parse(first), NextToken: 'more' }, null, 2);
    const token = inputError(() =>
      mergeFindings([{ file: 'p.json', document: parseFindingsText(paged, 'p.json'), text: paged }]),
    );
    expect(token.problems[0]).toMatchObject({
      file: 'p.json',
      ...new SourceLocator(paged).locate(['NextToken']),
      path: 'NextToken',
    });
    const ecr = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as {
      imageScanFindings: { findingSeverityCounts: Record<string, number> };
    };
    ecr.imageScanFindings.findingSeverityCounts = { HIGH: 5 };
    const counted = JSON.stringify(ecr, null, 2);
    const short = inputError(() =>
      mergeFindings([{ file: 'c.json', document: parseFindingsText(counted, 'c.json'), text: counted }]),
    );
    expect(short.problems[0]).toMatchObject({
      file: 'c.json',
      ...new SourceLocator(counted).locate(['imageScanFindings', 'findingSeverityCounts']),
      path: 'imageScanFindings.findingSeverityCounts',
    });
  });

  it('an incomplete scan in any file makes the set incomplete, and --repository names an unnamed image', () => {
    const raw = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as Record<
      string,
      unknown
    >;
    raw.imageScanStatus = { status: 'FAILED', description: 'boom' };
    delete raw.repositoryName;
    const set = mergeFindings([{ file: 'ecr.json', document: readFindingsDocument(raw) }], 'team/other');
    expect(set.scan).toEqual({
      complete: false,
      status: 'INCOMPLETE',
      reason: 'ecr.json: ECR scan status FAILED: boom',
    });
    expect(set.image?.repository).toBe('team/other');
  });

  it('refuses findings about something other than a container image (an export not filtered to one)', () => {
    const text = fixture('aws/list-findings-response.ec2.elastic-integrations-mock.json');
    const e = inputError(() => parseFindingsText(text, 'x.json'));
    expect(e.message).toMatch(
      /^x\.json:\d+:\d+: findings\[0\]\.resources\[0\]\.type: expected AWS_ECR_CONTAINER_IMAGE: .*; got "AWS_EC2_INSTANCE"$/,
    );
    // Read as an image's finding, or without a type, it is taken as it comes.
    const raw = JSON.parse(text) as { findings: { resources: Record<string, unknown>[] }[] };
    raw.findings[0]!.resources[0]!.type = 'AWS_ECR_CONTAINER_IMAGE';
    expect(parseFindingsText(JSON.stringify(raw), 'x.json').findings.length).toBe(1);
    delete raw.findings[0]!.resources[0]!.type;
    expect(parseFindingsText(JSON.stringify(raw), 'x.json').findings.length).toBe(1);

    // The same for Inspector2 Finding events, one or a list.
    const event = fixtureJson('aws/inspector2-finding-ecr-package-vulnerability.aws-docs.json') as {
      detail: { resources: Record<string, unknown>[] };
    };
    event.detail.resources[0]!.type = 'AWS_EC2_INSTANCE';
    expect(() => parseFindingsText(JSON.stringify(event), 'e.json')).toThrow(
      /e\.json:\d+:\d+: detail\.resources\[0\]\.type: expected AWS_ECR_CONTAINER_IMAGE/,
    );
    expect(() => parseFindingsText(JSON.stringify([event]), 'e.json')).toThrow(
      /\[0\]\.detail\.resources\[0\]\.type: expected AWS_ECR_CONTAINER_IMAGE/,
    );
  });
});
