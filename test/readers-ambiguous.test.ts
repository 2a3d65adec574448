import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mergeFindings, parseFindingsText, readFindingsDocument } from '../shared/index.js';
import { fixtureJson, inputErrorOf, ROOT } from './helpers.js';

/*
 * Findings files that are partial or ambiguous in ways a reader could miss: a page given twice, a finding
 * listed twice, a mapping that is two formats at once. Each was approved before (a reviewer reproduced them
 * with `tollgate evaluate`); each must be refused, naming the file and field.
 */

const ecr = fixtureJson('aws/describe-image-scan-findings.basic.awscli-example.json') as {
  imageScanFindings: { findings: Record<string, unknown>[]; findingSeverityCounts: Record<string, number> };
} & Record<string, unknown>;
const one = ecr.imageScanFindings.findings[0]!;
const severity = String(one.severity);

const problemOf = (fn: () => unknown): string => inputErrorOf(fn).message;

describe('counts against a list: each finding once', () => {
  const short = { ...ecr, imageScanFindings: { findings: [one], findingSeverityCounts: { [severity]: 2 } } };

  it('the same page given twice does not make up for the page that is missing', () => {
    const page = { file: 'p1.json', document: readFindingsDocument(short) };
    expect(problemOf(() => mergeFindings([page]))).toContain(`got ${severity} 1 listed of 2 counted`);
    expect(problemOf(() => mergeFindings([page, { ...page }]))).toContain(
      `got ${severity} 1 listed of 2 counted`,
    );
  });

  it('a finding listed twice in one page is one finding', () => {
    const doubled = {
      ...ecr,
      imageScanFindings: { findings: [one, one], findingSeverityCounts: { [severity]: 2 } },
    };
    const doc = { file: 'ecr.json', document: readFindingsDocument(doubled) };
    expect(problemOf(() => mergeFindings([doc]))).toContain(`got ${severity} 1 listed of 2 counted`);
    // Two distinct findings of that severity are what the counts say: accepted.
    const two = { ...one, name: 'CVE-2099-0001' };
    const whole = {
      ...ecr,
      imageScanFindings: { findings: [one, two], findingSeverityCounts: { [severity]: 2 } },
    };
    expect(mergeFindings([{ file: 'ecr.json', document: readFindingsDocument(whole) }]).findings.length).toBe(
      2,
    );
  });
});

describe('one format per file', () => {
  const critical = fixtureJson('aws/inspector2-finding-ecr-package-vulnerability.aws-docs.json') as Record<
    string,
    unknown
  >;

  it('refuses a mapping that is an ECR response and a ListFindings response at once, naming the second key', () => {
    const text = JSON.stringify(
      { findings: [critical], imageScanFindings: { findings: [] }, imageScanStatus: { status: 'COMPLETE' } },
      null,
      2,
    );
    expect(problemOf(() => parseFindingsText(text, 'mixed.json'))).toMatch(
      /^mixed\.json:\d+:\d+: findings: expected one findings format per file \(this mapping has "imageScanFindings" too: an ECR DescribeImageScanFindings response\), not an Inspector2 ListFindings response beside it; got /,
    );
  });

  it('refuses an event with a findings list beside it', () => {
    const event = fixtureJson('aws/inspector2-finding-event.us-timestamps.derived.json') as Record<
      string,
      unknown
    >;
    expect(
      problemOf(() => parseFindingsText(JSON.stringify({ ...event, findings: [] }), 'e.json')),
    ).toContain('findings: expected one findings format per file (this mapping has "detail-type" too');
  });

  it('refuses basic findings beside enhanced ones in one ECR response; an empty basic list beside them is nothing', () => {
    const enhanced = fixtureJson('aws/describe-image-scan-findings.enhanced.moto-fixture.json') as {
      imageScanFindings: Record<string, unknown>;
    } & Record<string, unknown>;
    const both = { ...enhanced, imageScanFindings: { ...enhanced.imageScanFindings, findings: [one] } };
    expect(problemOf(() => parseFindingsText(JSON.stringify(both), 'ecr.json'))).toContain(
      'imageScanFindings.findings: expected no basic findings beside enhancedFindings',
    );
    const empty = { ...enhanced, imageScanFindings: { ...enhanced.imageScanFindings, findings: [] } };
    expect(parseFindingsText(JSON.stringify(empty), 'ecr.json').format).toBe('ecr-scan-findings-enhanced');
  });
});

describe('one image per finding', () => {
  const payments = JSON.parse(
    readFileSync(join(ROOT, 'examples/findings/payments-api.list-findings.json'), 'utf8'),
  ) as { findings: Record<string, unknown>[] };
  type Resource = { id: string; details: { awsEcrContainerImage: Record<string, unknown> } };
  /** The export with its first finding naming a second resource, changed by `change`. */
  const twoResources = (change: (image: Record<string, unknown>) => void, fast = true) => {
    const raw = structuredClone(payments);
    const first = raw.findings[0] as { resources: Resource[]; severity?: unknown };
    const second = structuredClone(first.resources[0]!);
    second.id += '/second';
    change(second.details.awsEcrContainerImage);
    first.resources.push(second);
    // Without a severity, the finding is read the detailed way rather than the fast one.
    if (!fast) delete first.severity;
    return JSON.stringify(raw, null, 2);
  };

  it('a finding whose resources name two images is refused as findings of 2 images, on either reader', () => {
    const other = `sha256:${'1'.repeat(64)}`;
    for (const fast of [true, false]) {
      const text = twoResources((image) => {
        image.imageHash = other;
      }, fast);
      const message = problemOf(() => parseFindingsText(text, 'two.json'));
      expect(message).toMatch(
        /^two\.json:\d+:\d+: findings\[0\]\.resources\[1\]\.details\.awsEcrContainerImage: expected the findings of one image \(one digest, in one repository\): export or filter the findings of the image to judge; got findings of 2 images: payments\/api@sha256:[0-9a-f]{64}, payments\/api@sha256:1{64}$/,
      );
      // The same digest in another repository is another image too.
      const moved = twoResources((image) => {
        image.repositoryName = 'staging/api';
      }, fast);
      expect(problemOf(() => parseFindingsText(moved, 'two.json'))).toContain(
        'got findings of 2 images: payments/api@sha256:',
      );
    }
    // Two resources of one image (its tags told twice) are one image.
    const same = twoResources((image) => {
      image.imageTags = ['other-tag'];
    });
    const doc = parseFindingsText(same, 'same.json');
    expect(mergeFindings([{ file: 'same.json', document: doc }]).findings.length).toBe(
      payments.findings.length,
    );
  });
});
