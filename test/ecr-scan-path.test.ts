import { PutApprovalResultCommand } from '@aws-sdk/client-codepipeline';
import {
  DescribeImageScanFindingsCommand,
  type FindingSeverity,
  ImageNotFoundException,
  type ImageScanFinding,
  RepositoryNotFoundException,
} from '@aws-sdk/client-ecr';
import { describe, expect, it } from 'vitest';
import {
  createHarness,
  DIGEST,
  ecrBasicFindings,
  type Harness,
  REPOSITORY,
  useLocalDynamo,
} from './gate-harness.js';

/*
 * The `scanSource: ecr` path end to end: ECR Image Scan events and DescribeImageScanFindings, over the gate's
 * handlers and a local DynamoDB, as the deployed gate runs them.
 */

const dynamo = useLocalDynamo();

function setup(): Promise<Harness> {
  return createHarness(dynamo(), { scanSource: 'ecr' });
}

const MINUTE = 60_000;

/** The basic sample's finding, renamed and rated `severity` (none: ECR's UNDEFINED, left out). */
function ecrFinding(name: string, severity: FindingSeverity | undefined): ImageScanFinding {
  const { severity: _, ...rest } = ecrBasicFindings()[0]!;
  return { ...rest, name, ...(severity === undefined ? {} : { severity }) };
}

const putResults = (h: Harness) =>
  h.mocks.codepipeline.commandCalls(PutApprovalResultCommand).map((c) => c.args[0].input);

/** DescribeImageScanFindings calls for a later page: how many pages past the first the gate read. */
const laterPages = (h: Harness) =>
  h.mocks.ecr.commandCalls(DescribeImageScanFindingsCommand).filter((c) => c.args[0].input.nextToken).length;

describe('ECR basic scanning: the scan event counts', () => {
  it('UNDEFINED findings the event counts and the read lacks keep the gate waiting; once listed, unknownSeverity decides', async () => {
    const h = await setup();
    await h.approvalStarted(); // no scan yet: the gate waits
    h.scanner.ecr = { status: 'COMPLETE', findings: [ecrFinding('CVE-2019-5188', 'MEDIUM')] };
    h.clock.advance(MINUTE);
    // ECR counted two findings it rates UNDEFINED (UNTRIAGED to the policy); its listing does not hold them yet.
    await h.scanFinished(h.ecrScanEvent({ counts: { MEDIUM: 1, UNDEFINED: 2 } }));
    for (let i = 0; i < 3; i++) {
      expect(await h.decision()).toBeUndefined();
      expect((await h.gate())?.state).toBe('WAITING');
      h.clock.advance(MINUTE);
      await h.sweep();
    }
    expect(await h.decision()).toBeUndefined();
    expect(putResults(h)).toHaveLength(0);

    // The listing catches up: the findings the policy cannot rate are a person's to look at (baseline).
    h.scanner.ecr.findings.push(
      ecrFinding('CVE-2024-0001', 'UNDEFINED'),
      ecrFinding('CVE-2024-0002', undefined),
    );
    h.clock.advance(MINUTE);
    await h.sweep();
    const decided = await h.decision();
    expect(decided).toMatchObject({ trigger: 'sweep', record: { outcome: 'ESCALATE' } });
    expect(decided!.record.violations.map((v) => v.rule)).toContain('unknown-severity');
    expect(putResults(h).filter((r) => r.result?.status === 'Approved')).toHaveLength(0);
  });
});

describe('ECR basic scanning: the image or repository gone', () => {
  it('ImageNotFoundException at the scan event is decided at once as scan-incomplete, never approved', async () => {
    const h = await setup();
    await h.approvalStarted();
    expect((await h.gate())?.state).toBe('WAITING');
    // A lifecycle policy deleted the image between its scan and the read.
    h.fail(
      'DescribeImageScanFindings',
      () =>
        new ImageNotFoundException({
          message: `The image with imageId {imageDigest:'${DIGEST}'} does not exist within the repository with name '${REPOSITORY}'`,
          $metadata: { httpStatusCode: 400 },
        }),
    );
    h.clock.advance(MINUTE);
    await h.scanFinished(h.ecrScanEvent({ counts: { MEDIUM: 1 } }));

    // Decided by the event, a minute into a 30-minute wait: not left to the deadline.
    const decided = await h.decision();
    expect(decided).toMatchObject({ trigger: 'scan-finished', record: { outcome: 'ESCALATE' } });
    expect(decided!.record.violations.map((v) => v.rule)).toEqual(['scan-incomplete']);
    expect(decided!.record.violations[0]!.description).toMatch(
      /the image is not found \(ImageNotFoundException/,
    );
    expect(putResults(h).filter((r) => r.result?.status === 'Approved')).toHaveLength(0);
  });

  it('RepositoryNotFoundException when the approval starts is decided at once, never approved', async () => {
    const h = await setup();
    h.fail(
      'DescribeImageScanFindings',
      () =>
        new RepositoryNotFoundException({
          message: `The repository with name '${REPOSITORY}' does not exist in the registry`,
          $metadata: { httpStatusCode: 400 },
        }),
    );
    await h.approvalStarted();
    const decided = await h.decision();
    expect(decided?.record.outcome).toBe('ESCALATE');
    expect(decided!.record.violations.map((v) => v.rule)).toEqual(['scan-incomplete']);
    expect(decided!.record.violations[0]!.description).toMatch(
      /the repository is not found \(RepositoryNotFoundException/,
    );
    expect(putResults(h).filter((r) => r.result?.status === 'Approved')).toHaveLength(0);
  });
});

describe('ECR basic scanning: reading every page', () => {
  it('a clean image (no findings, no counts) is approved', async () => {
    const h = await setup();
    await h.approvalStarted();
    h.scanner.ecr = { status: 'COMPLETE', findings: [] };
    h.clock.advance(MINUTE);
    await h.scanFinished(h.ecrScanEvent({ counts: {} }));
    expect(await h.decision()).toMatchObject({ trigger: 'scan-finished', record: { outcome: 'APPROVE' } });
    expect(putResults(h).map((r) => r.result?.status)).toEqual(['Approved']);
  });

  it('an answer that says COMPLETE with an empty findingSeverityCounts and nothing else is not ready: never approved', async () => {
    const h = await setup();
    await h.approvalStarted();
    h.scanner.ecr = { status: 'COMPLETE', findings: [] };
    // No finding, no imageScanCompletedAt, counts of nothing (`{}`): nothing shows the scan finished
    // (aws/aws-sdk#289). Read as a clean scan, it approved at once.
    h.mocks.ecr.on(DescribeImageScanFindingsCommand).resolves({
      repositoryName: REPOSITORY,
      imageId: { imageDigest: DIGEST },
      imageScanStatus: { status: 'COMPLETE' },
      imageScanFindings: { findings: [], findingSeverityCounts: {} },
    });
    h.clock.advance(MINUTE);
    await h.scanFinished(h.ecrScanEvent({ counts: {} }));
    expect(await h.decision()).toBeUndefined();
    expect((await h.gate())?.state).toBe('WAITING');
    expect(putResults(h)).toHaveLength(0);
  });

  it('an image whose findings take three pages, none the policy stops, is approved on all of them', async () => {
    const h = await setup();
    await h.approvalStarted();
    const findings = ['LOW', 'MEDIUM', 'LOW', 'MEDIUM', 'INFORMATIONAL'].map((s, i) =>
      ecrFinding(`CVE-2024-100${i}`, s as FindingSeverity),
    );
    h.scanner.ecr = { status: 'COMPLETE', findings, pageSize: 2 };
    h.clock.advance(MINUTE);
    await h.scanFinished(h.ecrScanEvent({ counts: { LOW: 2, MEDIUM: 2, INFORMATIONAL: 1 } }));

    const decided = await h.decision();
    expect(decided).toMatchObject({ trigger: 'scan-finished', record: { outcome: 'APPROVE' } });
    expect(decided!.record.counts).toMatchObject({ LOW: 2, MEDIUM: 2, INFORMATIONAL: 1 });
    expect(laterPages(h)).toBe(2);
    expect(putResults(h).map((r) => r.result?.status)).toEqual(['Approved']);
  });

  it('a CRITICAL on the second page is rejected', async () => {
    const h = await setup();
    await h.approvalStarted();
    const findings = [
      ecrFinding('CVE-2024-2001', 'MEDIUM'),
      ecrFinding('CVE-2024-2002', 'LOW'),
      ecrFinding('CVE-2024-2003', 'CRITICAL'),
    ];
    h.scanner.ecr = { status: 'COMPLETE', findings, pageSize: 2 };
    h.clock.advance(MINUTE);
    await h.scanFinished(h.ecrScanEvent({ counts: { MEDIUM: 1, LOW: 1, CRITICAL: 1 } }));

    const decided = await h.decision();
    expect(decided).toMatchObject({ trigger: 'scan-finished', record: { outcome: 'REJECT' } });
    expect(decided!.record.violations.map((v) => v.rule)).toContain('no-critical');
    expect(laterPages(h)).toBe(1);
    expect(putResults(h).map((r) => r.result?.status)).toEqual(['Rejected']);
  });
});
