import { describe, expect, it } from 'vitest';
import { FindingTable } from '../shared/findings/table.js';
import { boundedDecision } from '../shared/gate/bounds.js';
import { exampleEscalationInput } from '../shared/gate/escalation.example.js';
import {
  imageFromCustomData,
  imageFromVariables,
  registryOf,
  repositoryName,
  repositoryOf,
} from '../shared/gate/image.js';
import type { GateImage, GateKey, ScanStatus, StoredDecision } from '../shared/gate/model.js';
import type { ActionExecutionView, StageStateView } from '../shared/gate/ports.js';
import {
  coverageState,
  ecrScanState,
  eventCounts,
  inspectorScanState,
  isSettled,
  readCounts,
  scanIsOf,
} from '../shared/gate/scan.js';
import { tiedScan } from '../shared/gate/scan-tie.js';
import { checkToken } from '../shared/gate/token.js';
import { createHarness, useLocalDynamo } from './gate-harness.js';
import { finding } from './helpers.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const REGISTRY = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';

describe('identifying the image', () => {
  it('refuses CustomData naming two images: the first judged would let the other through unjudged', () => {
    const two = imageFromCustomData(`Deploy ${REGISTRY}/web@${DIGEST} and ${REGISTRY}/worker:1.2`);
    expect(two).toEqual({
      ok: false,
      problem: `CustomData names 2 images (${REGISTRY}/web@${DIGEST}, ${REGISTRY}/worker:1.2); Tollgate judges one image per approval action: give each image its own`,
    });
    // One image said twice (by tag and digest, then by digest) is one image.
    expect(imageFromCustomData(`${REGISTRY}/web:2.0@${DIGEST} (${REGISTRY}/web@${DIGEST})`)).toMatchObject({
      ok: true,
      reference: { repository: 'web', tag: '2.0', digest: DIGEST },
    });
    // A repository URI without a tag or digest names no image, so it is no second one.
    expect(imageFromCustomData(`${REGISTRY}/web@${DIGEST} from ${REGISTRY}/web`)).toMatchObject({ ok: true });
    // JSON too: under any key, or two URIs in one value (the JSON reader takes the first key it knows).
    const other = `${REGISTRY}/proxy@sha256:${'cd'.repeat(32)}`;
    for (const json of [
      { imageUri: `${REGISTRY}/web@${DIGEST}`, sidecarUri: other },
      { imageUri: `${REGISTRY}/web@${DIGEST}`, image: other },
      { imageUri: `${REGISTRY}/web@${DIGEST} ${other}` },
    ])
      expect(imageFromCustomData(JSON.stringify(json)), JSON.stringify(json)).toMatchObject({
        ok: false,
        problem: expect.stringContaining('CustomData names 2 images'),
      });
    expect(
      imageFromCustomData(JSON.stringify({ imageUri: `${REGISTRY}/web:latest`, imageDigest: DIGEST })),
    ).toMatchObject({ ok: true, reference: { digest: DIGEST } });
    // The names an ECR source action gives its variables (ImageURI, ImageDigest, …) read as keys too, so
    // `{"ImageURI": "#{SourceVariables.ImageURI}", …}` works as written; two of their values still conflict.
    expect(
      imageFromCustomData(JSON.stringify({ ImageURI: `${REGISTRY}/web:latest`, ImageDigest: DIGEST })),
    ).toMatchObject({ ok: true, reference: { repository: 'web', digest: DIGEST, tag: 'latest' } });
    expect(
      imageFromCustomData(
        JSON.stringify({ RepositoryName: 'web', ImageTag: '1.2', RegistryId: '123456789012' }),
      ),
    ).toMatchObject({ ok: true, reference: { repository: 'web', tag: '1.2', registryId: '123456789012' } });
    expect(
      imageFromCustomData(
        JSON.stringify({ ImageURI: `${REGISTRY}/web@${DIGEST}`, ImageDigest: `sha256:${'ef'.repeat(32)}` }),
      ),
    ).toMatchObject({ ok: false });
    // One account's repository of one name in two regions: two images.
    expect(
      imageFromCustomData(`${REGISTRY}/web:1 123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1`),
    ).toMatchObject({ ok: false });
  });

  it('counts every image CustomData names: an untagged URI of another repository, and images of other registries', () => {
    const twoImages = { ok: false, problem: expect.stringContaining('CustomData names 2 images') };
    // Docker reads a URI without tag or digest as :latest: another repository's is another image.
    expect(imageFromCustomData(`${REGISTRY}/payments/api@${DIGEST} ${REGISTRY}/payments/evil`)).toMatchObject(
      twoImages,
    );
    // Images Tollgate cannot judge, beside the one it can, would go through unjudged.
    for (const other of [
      'public.ecr.aws/evil/app:1.0',
      'ghcr.io/evil/sidecar:latest',
      `docker.io/library/nginx@sha256:${'cd'.repeat(32)}`,
      'registry.example.internal:5000/team/app:2',
      'localhost:5000/app:1',
    ]) {
      expect(imageFromCustomData(`${REGISTRY}/payments/api@${DIGEST}, ${other}`), other).toMatchObject(
        twoImages,
      );
      expect(
        imageFromCustomData(
          JSON.stringify({ imageUri: `${REGISTRY}/payments/api:1.4.2`, sidecarUri: other }),
        ),
        other,
      ).toMatchObject(twoImages);
    }
    // Not images: a time, a version beside a path, links (a build's log, a line of source, a report).
    for (const text of [
      `${REGISTRY}/payments/api@${DIGEST} (window 10:30/11:00)`,
      `${REGISTRY}/payments/api@${DIGEST} see https://wiki.example.com/releases/payments`,
      `${REGISTRY}/payments/api@${DIGEST} release v1.2/notes`,
      `${REGISTRY}/payments/api@${DIGEST} https://us-east-1.console.aws.amazon.com/codesuite/codebuild/projects/app/build/app:7c1f0e3a-1111/log`,
      `${REGISTRY}/payments/api@${DIGEST} https://github.com/org/app/blob/main/src/index.ts:12`,
      `${REGISTRY}/payments/api@${DIGEST} https://scanner.example.com/report/${REGISTRY}/payments/api@${DIGEST}`,
    ])
      expect(imageFromCustomData(text), text).toMatchObject({ ok: true, reference: { digest: DIGEST } });
  });

  it('never quotes CustomData or a variable that is not of the shape asked for: it may hold notes or signed links', () => {
    // A problem reaches the gate, the Gate State Change event and the escalation: people who may not read
    // the pipeline. It names the field, how long the value is and what was expected.
    const notes = 'Deploy notes: https://wiki/x?sig=abc123 – approve after QA';
    const problemOf = (found: ReturnType<typeof imageFromCustomData>) => (found.ok ? '' : found.problem);
    const cases: [string, string][] = [
      [
        problemOf(imageFromCustomData(notes)),
        `CustomData (${notes.length} characters, not quoted) names no ECR image by tag or digest: expected an image URI <account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:… or :<tag>, or JSON with imageUri, or repositoryName with imageDigest or imageTag`,
      ],
      [
        problemOf(imageFromCustomData(`#{Build.IMAGE_URI} ${notes}`)),
        `CustomData (${notes.length + 19} characters, not quoted) holds an unresolved variable #{Build.IMAGE_URI}: expected it resolved to an ECR image URI; check the namespace and name of the variable in the approval action's CustomData`,
      ],
      [
        problemOf(imageFromCustomData(JSON.stringify({ repositoryName: 'app', imageDigest: notes }))),
        `CustomData imageDigest (${notes.length} characters, not quoted) is not a sha256 digest: expected sha256: and 64 lowercase hex digits`,
      ],
      [
        problemOf(imageFromCustomData(JSON.stringify({ repositoryName: notes, imageTag: 'v1' }))),
        `CustomData repositoryName (${notes.length} characters, not quoted) is not an ECR repository name: expected lowercase letters, digits and . _ - / (as ECR takes them), or the repository's ARN`,
      ],
      [
        problemOf(imageFromCustomData(JSON.stringify({ repositoryName: 'app', imageTag: 'v1', tag: notes }))),
        `CustomData gives one field two values: imageTag (v1) and tag (${notes.length} characters, not quoted)`,
      ],
      [
        problemOf(
          imageFromCustomData(JSON.stringify({ imageUri: `${REGISTRY}/app:1 ${notes}`, image: 'web:2' })),
        ),
        `CustomData gives one field two values: imageUri (${`${REGISTRY}/app:1 ${notes}`.length} characters, not quoted) and image (5 characters, not quoted)`,
      ],
      [
        problemOf(imageFromVariables({ IMAGE_URI: notes })),
        `the pipeline variable IMAGE_URI (${notes.length} characters, not quoted) is not an ECR image URI: expected <account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:… or :<tag>`,
      ],
      [
        problemOf(imageFromVariables({ IMAGE_DIGEST: notes, IMAGE_REPOSITORY: 'app' })),
        `the pipeline variable IMAGE_DIGEST (${notes.length} characters, not quoted) is not a sha256 digest: expected sha256: and 64 lowercase hex digits`,
      ],
    ];
    for (const [problem, expected] of cases) {
      expect(problem).toBe(expected);
      expect(problem).not.toContain('sig=');
    }
    // What has the shape asked for is quoted, to show the owner what was read.
    expect(problemOf(imageFromCustomData(`${REGISTRY}/app`))).toContain(
      `CustomData (${REGISTRY}/app) names no`,
    );
    expect(problemOf(imageFromVariables({ IMAGE_DIGEST: 'sha256:abc', IMAGE_REPOSITORY: 'app' }))).toContain(
      'IMAGE_DIGEST (sha256:abc)',
    );
    expect(problemOf(imageFromVariables({ IMAGE_URI: `${REGISTRY}/app` }))).toContain(
      `IMAGE_URI (${REGISTRY}/app)`,
    );
  });

  it('records as the source what named the image in JSON CustomData, not the rest of it', () => {
    const json = { repositoryName: 'payments/api', imageDigest: DIGEST, notes: 'https://wiki/x?sig=abc123' };
    expect(imageFromCustomData(JSON.stringify(json))).toMatchObject({
      ok: true,
      reference: { text: `payments/api@${DIGEST}` },
    });
    const withUri = { imageUri: `${REGISTRY}/payments/api:1.2`, imageDigest: DIGEST, notes: json.notes };
    expect(imageFromCustomData(JSON.stringify(withUri))).toMatchObject({
      ok: true,
      reference: { text: `${REGISTRY}/payments/api:1.2@${DIGEST}`, digest: DIGEST, tag: '1.2' },
    });
  });

  it('an image of another registry alone is named as such, never looked up as an ECR repository of its name', () => {
    for (const text of ['ghcr.io/org/app:1.0', 'Deploy public.ecr.aws/docker/library/node:22 please']) {
      expect(imageFromCustomData(text), text).toMatchObject({
        ok: false,
        problem: expect.stringContaining("outside this account's ECR registry"),
      });
    }
  });

  it("reads an ECR URI only where it starts: not inside another host's path, nor a longer account number", () => {
    // Another host's image whose path spells an ECR URI is that host's image, never the ECR one resolved.
    const underOtherHost = imageFromCustomData(`evil.example.com/${REGISTRY}/payments/api:1.4.2`);
    expect(underOtherHost.ok && underOtherHost.reference.registryId === '123456789012').toBe(false);
    // A 13-digit "account" is not the gate's account with a digit before it.
    const longer = imageFromCustomData(`9${REGISTRY}/payments/api:1.4.2`);
    expect(longer.ok && longer.reference.registryId === '123456789012').toBe(false);
    expect(imageFromCustomData(`image=${REGISTRY}/payments/api@${DIGEST}`)).toMatchObject({
      ok: true,
      reference: { registryId: '123456789012', digest: DIGEST },
    });
  });

  it('JSON naming one field twice with different values is a contradiction, not a choice of the first', () => {
    const other = `sha256:${'cd'.repeat(32)}`;
    for (const json of [
      { imageUri: `${REGISTRY}/payments/api@${DIGEST}`, imageDigest: DIGEST, digest: other },
      { repositoryName: 'payments/api', repository: 'payments/evil', imageDigest: DIGEST },
      { repositoryName: 'payments/api', imageTag: '1.4.2', tag: '1.4.3' },
      {
        RepositoryName: 'payments/api',
        ImageDigest: DIGEST,
        registryId: '111111111111',
        RegistryId: '222222222222',
      },
    ])
      expect(imageFromCustomData(JSON.stringify(json)), JSON.stringify(json)).toMatchObject({
        ok: false,
        problem: expect.stringContaining('CustomData gives one field two values'),
      });
    expect(
      imageFromCustomData(
        JSON.stringify({ repositoryName: 'payments/api', imageDigest: DIGEST, digest: DIGEST }),
      ),
    ).toMatchObject({ ok: true, reference: { digest: DIGEST } });
    // One repository written as its ARN and by name is one repository.
    expect(
      imageFromCustomData(
        JSON.stringify({
          repositoryName: 'arn:aws:ecr:eu-west-1:123456789012:repository/payments/api',
          RepositoryName: 'payments/api',
          ImageDigest: DIGEST,
        }),
      ),
    ).toMatchObject({ ok: true, reference: { repository: 'payments/api', digest: DIGEST } });
    // Fields that decide nothing beside a URI, and one image written two ways, are no contradiction.
    const uri = `${REGISTRY}/payments/api:1.2.0`;
    for (const json of [
      { imageUri: uri, imageTag: '1.2.0', tag: 'v1.2.0' },
      { imageUri: uri, repositoryName: 'app', repository: 'org/app' },
      { image: 'app', imageUri: uri },
      { imageUri: `${REGISTRY}/payments/api:1.2@${DIGEST}`, image: `${REGISTRY}/payments/api@${DIGEST}` },
      { imageUri: uri, image: '123456789012.dkr-ecr.eu-west-1.on.aws/payments/api:1.2.0' },
    ])
      expect(imageFromCustomData(JSON.stringify(json)), JSON.stringify(json)).toMatchObject({ ok: true });
    // Two images under two names of the URI field are (two images, said so first).
    expect(
      imageFromCustomData(JSON.stringify({ imageUri: uri, image: `${REGISTRY}/payments/api:1.3.0` })),
    ).toMatchObject({ ok: false, problem: expect.stringContaining('CustomData names 2 images') });
    // A repository name ECR cannot have would be looked up and recorded as written: refused; an ARN is read.
    expect(
      imageFromCustomData(JSON.stringify({ repositoryName: 'Payments/API', imageTag: 'v1' })),
    ).toMatchObject({ ok: false, problem: expect.stringContaining('not an ECR repository name') });
    expect(
      imageFromCustomData(
        JSON.stringify({
          repositoryName: 'arn:aws:ecr:eu-west-1:123456789012:repository/payments/api',
          imageDigest: DIGEST,
        }),
      ),
    ).toMatchObject({ ok: true, reference: { repository: 'payments/api', digest: DIGEST } });
  });

  it('reads an ECR URI with a digest, a tag, or both, anywhere in CustomData', () => {
    const withDigest = imageFromCustomData(`${REGISTRY}/payments/api@${DIGEST}`);
    expect(withDigest).toMatchObject({
      ok: true,
      reference: { repository: 'payments/api', digest: DIGEST, tag: undefined, registryId: '123456789012' },
    });
    const withTag = imageFromCustomData(`Deploy ${REGISTRY}/payments/api:1.4.2 to prod`);
    expect(withTag).toMatchObject({
      ok: true,
      reference: { repository: 'payments/api', tag: '1.4.2', digest: undefined },
    });
    const both = imageFromCustomData(`${REGISTRY}/web:2.0@${DIGEST}`);
    expect(both).toMatchObject({ ok: true, reference: { repository: 'web', tag: '2.0', digest: DIGEST } });
  });

  it('reads the dual-stack registry host IPv6 clients pull from as the same registry and region', () => {
    const dual = imageFromCustomData(`123456789012.dkr-ecr.eu-west-1.on.aws/payments/api:1.4.2@${DIGEST}`);
    expect(dual).toMatchObject({
      ok: true,
      reference: {
        repository: 'payments/api',
        tag: '1.4.2',
        digest: DIGEST,
        registryId: '123456789012',
        region: 'eu-west-1',
      },
    });
    expect(imageFromCustomData(`123456789012.dkr-ecr-fips.us-east-1.on.aws/web@${DIGEST}`)).toMatchObject({
      ok: true,
      reference: { repository: 'web', region: 'us-east-1', registryId: '123456789012' },
    });
    // Another host is no ECR registry: at most a bare repository name, which ECR will not have (escalated).
    expect(imageFromCustomData(`123456789012.dkr-ecr.eu-west-1.example.com/web@${DIGEST}`)).toMatchObject({
      ok: true,
      reference: { registryId: undefined, region: undefined },
    });
  });

  it('reads JSON CustomData, as the sample pipeline writes it', () => {
    const json = JSON.stringify({ repositoryName: 'inspector2', imageDigest: DIGEST, executionId: 'x' });
    expect(imageFromCustomData(json)).toMatchObject({
      ok: true,
      reference: { repository: 'inspector2', digest: DIGEST },
    });
    expect(imageFromCustomData(JSON.stringify({ imageUri: `${REGISTRY}/a/b:7` }))).toMatchObject({
      ok: true,
      reference: { repository: 'a/b', tag: '7' },
    });
  });

  it('judges the digest beside a tag URI in JSON CustomData, not whatever the tag points at later', () => {
    // An ECR source action gives ImageURI with a tag and ImageDigest apart; both usually go in.
    const json = JSON.stringify({ imageUri: `${REGISTRY}/inspector2:ubuntu_latest`, imageDigest: DIGEST });
    expect(imageFromCustomData(json)).toMatchObject({
      ok: true,
      reference: { repository: 'inspector2', tag: 'ubuntu_latest', digest: DIGEST, region: 'eu-west-1' },
    });
    const same = JSON.stringify({ imageUri: `${REGISTRY}/web@${DIGEST}`, imageDigest: DIGEST });
    expect(imageFromCustomData(same)).toMatchObject({ ok: true, reference: { digest: DIGEST } });
    const other = `sha256:${'cd'.repeat(32)}`;
    const contradiction = JSON.stringify({ imageUri: `${REGISTRY}/web@${DIGEST}`, imageDigest: other });
    expect(imageFromCustomData(contradiction)).toEqual({
      ok: false,
      problem: expect.stringContaining('two digests'),
    });
    const bad = JSON.stringify({ imageUri: `${REGISTRY}/web:1`, imageDigest: 'sha256:short' });
    expect(imageFromCustomData(bad)).toEqual({ ok: false, problem: expect.stringContaining('not a sha256') });
  });

  it('takes every repository name ECR takes, and never cuts a name or tag short', () => {
    for (const repository of ['team/my__api', 'my--api', 'a/b__c', 'a.b/c-d_e', 'docker.io/library/nginx']) {
      expect(imageFromCustomData(`${REGISTRY}/${repository}@${DIGEST}`)).toMatchObject({
        ok: true,
        reference: { repository },
      });
    }
    for (const repository of ['a_-b', '-a', 'a/', 'a//b', 'A']) {
      expect(imageFromCustomData(`${REGISTRY}/${repository}@${DIGEST}`).ok).toBe(false);
    }
    const tag300 = `v${'x'.repeat(299)}`;
    expect(imageFromCustomData(`${REGISTRY}/app:${tag300}`)).toMatchObject({
      ok: true,
      reference: { tag: tag300 },
    });
    // One character more than ECR allows: no image named, rather than the first 300 (or 128) as a tag.
    expect(imageFromCustomData(`${REGISTRY}/app:${tag300}y`).ok).toBe(false);
    expect(imageFromCustomData(`${REGISTRY}/app:v1.${'x'.repeat(299)}`).ok).toBe(false); // not cut to v1
    expect(imageFromCustomData(`${REGISTRY}/app@${DIGEST}a`).ok).toBe(false);
    // A malformed digest after a tag is no reason to judge the tag instead.
    for (const bad of [
      `${DIGEST}a`,
      DIGEST.toUpperCase().replace('SHA256', 'sha256'),
      'sha512:abc',
      'sha256:deadbeef',
    ]) {
      expect(imageFromCustomData(`${REGISTRY}/app:v1@${bad}`).ok, bad).toBe(false);
    }
    expect(imageFromCustomData(`${REGISTRY}/app:v1:beta`).ok).toBe(false);
    // Punctuation after a whole reference ends it, as in a sentence.
    expect(imageFromCustomData(`Deploy ${REGISTRY}/app@${DIGEST}.`)).toMatchObject({
      ok: true,
      reference: { digest: DIGEST },
    });
    expect(imageFromCustomData(`${REGISTRY}/app@${DIGEST}: deploy`)).toMatchObject({ ok: true });
    expect(imageFromCustomData(`https://${REGISTRY}/app:v1/`)).toMatchObject({
      ok: true,
      reference: { tag: 'v1' },
    });
    // But a `.` after a tag is the tag's own (tags may end in one): the tag `v1.` is looked for, never `v1`.
    expect(imageFromCustomData(`Deploy ${REGISTRY}/app:v1.`)).toMatchObject({
      ok: true,
      reference: { tag: 'v1.' },
    });
  });

  it('explains what is missing instead of guessing', () => {
    expect(imageFromCustomData(undefined)).toEqual({
      ok: false,
      problem: expect.stringContaining('no CustomData'),
    });
    expect(imageFromCustomData('#{BuildVariables.IMAGE_URI}')).toEqual({
      ok: false,
      problem: expect.stringContaining('holds an unresolved variable #{BuildVariables.IMAGE_URI}:'),
    });
    // The variables are what the owner must fix: named (a few, each once), the text around them described.
    const problemOf = (text: string) => {
      const found = imageFromCustomData(text);
      return found.ok ? '' : found.problem;
    };
    expect(problemOf('deploy #{Build.IMAGE_URI} please')).toMatch(
      /^CustomData \(32 characters, not quoted\) holds an unresolved variable #\{Build\.IMAGE_URI\}: /,
    );
    const several = problemOf('#{A.x} ?sig=s3cr3t #{B.y} #{A.x} #{C.z} #{D.w}');
    expect(several).toContain('holds unresolved variables #{A.x}, #{B.y}, #{C.z}, and 1 more: ');
    expect(several).not.toContain('s3cr3t');
    expect(problemOf(`#{Build.${'N'.repeat(120)}}`)).toContain(`#{Build.${'N'.repeat(55)}…:`);
    // Not of a variable's shape: said, not quoted.
    const odd = problemOf('#{ token=s3cr3t }');
    expect(odd).toContain('holds an unresolved variable #{…}: ');
    expect(odd).not.toContain('s3cr3t');
    expect(imageFromCustomData('please approve')).toEqual({
      ok: false,
      problem: expect.stringContaining('CustomData (14 characters, not quoted) names no ECR image'),
    });
    expect(imageFromCustomData(JSON.stringify({ repositoryName: 'a', imageDigest: 'sha256:short' }))).toEqual(
      {
        ok: false,
        problem: expect.stringContaining('not a sha256 digest'),
      },
    );
  });

  it('falls back to the execution variables IMAGE_URI, or IMAGE_DIGEST with IMAGE_REPOSITORY', () => {
    expect(imageFromVariables({ IMAGE_URI: `${REGISTRY}/x/y@${DIGEST}` })).toMatchObject({
      ok: true,
      reference: { repository: 'x/y', digest: DIGEST, from: 'variable IMAGE_URI' },
    });
    expect(imageFromVariables({ IMAGE_DIGEST: DIGEST, IMAGE_REPOSITORY: 'x/y' })).toMatchObject({
      ok: true,
      reference: { repository: 'x/y', digest: DIGEST },
    });
    expect(imageFromVariables({ IMAGE_DIGEST: DIGEST })).toEqual({
      ok: false,
      problem: expect.stringContaining('IMAGE_REPOSITORY'),
    });
    expect(imageFromVariables({})).toEqual({ ok: false, problem: expect.stringContaining('no image') });
  });

  it('reduces the repository ARN of Inspector scan events to its name', () => {
    expect(repositoryName('arn:aws:ecr:us-east-1:111122223333:repository/team/inspector2')).toBe(
      'team/inspector2',
    );
    expect(repositoryName('my-repo')).toBe('my-repo');
  });
});

describe('a repository named by a person (tollgate evaluate --repository)', () => {
  it('is a bare name, an ECR ARN or an image URI read down to the name; anything else is none', () => {
    expect(repositoryOf('payments/api')).toBe('payments/api');
    // The registry of a repository ARN (Inspector's scan events): its account, not the event's.
    expect(registryOf('arn:aws:ecr:eu-west-1:210987654321:repository/payments/api')).toBe('210987654321');
    expect(registryOf('payments/api')).toBeUndefined();
    expect(repositoryOf('arn:aws:ecr:eu-west-1:123456789012:repository/payments/api')).toBe('payments/api');
    expect(repositoryOf('arn:aws-cn:ecr:cn-north-1:123456789012:repository/api')).toBe('api');
    expect(repositoryOf(`${REGISTRY}/payments/api`)).toBe('payments/api');
    expect(repositoryOf(`${REGISTRY}/payments/api:1.4.2@${DIGEST}`)).toBe('payments/api');
    for (const bad of [
      'Payments/API',
      'payments api',
      '',
      'arn:aws:ecr:eu-west-1:123456789012:repository/Bad Name',
    ])
      expect(repositoryOf(bad), bad).toBeUndefined();
  });
});

describe('scan states', () => {
  it('only a finished scan is complete; statuses that cannot give a verdict are unsupported; anything else waits', () => {
    expect(inspectorScanState('INITIAL_SCAN_COMPLETE')).toBe('complete');
    expect(inspectorScanState('UNSUPPORTED_OS')).toBe('unsupported');
    expect(inspectorScanState('SOMETHING_NEW')).toBe('pending');
    expect(ecrScanState('COMPLETE')).toBe('complete');
    for (const s of ['FAILED', 'UNSUPPORTED_IMAGE', 'FINDINGS_UNAVAILABLE'])
      expect(ecrScanState(s)).toBe('unsupported');
    expect(ecrScanState('IN_PROGRESS')).toBe('pending');
    // The adapter's own verdicts: the image or its repository gone will never be scanned (decide now); pages
    // of two scans are read again.
    for (const s of ['IMAGE_NOT_FOUND', 'REPOSITORY_NOT_FOUND']) expect(ecrScanState(s)).toBe('unsupported');
    expect(ecrScanState('SCAN_CHANGED_WHILE_PAGING')).toBe('pending');
    expect(
      coverageState({ statusCode: 'ACTIVE', reason: 'SUCCESSFUL', lastScannedAt: '2024-09-04T16:55:38.411Z' })
        .state,
    ).toBe('complete');
    // Listed, never scanned: no clean scan.
    expect(
      coverageState({ statusCode: 'ACTIVE', reason: 'SUCCESSFUL', lastScannedAt: undefined }).state,
    ).toBe('pending');
    expect(
      coverageState({ statusCode: 'ACTIVE', reason: 'PENDING_INITIAL_SCAN', lastScannedAt: undefined }).state,
    ).toBe('pending');
    expect(
      coverageState({ statusCode: 'INACTIVE', reason: 'SCAN_ELIGIBILITY_EXPIRED', lastScannedAt: undefined })
        .state,
    ).toBe('unsupported');
    expect(coverageState(undefined)).toEqual({ state: 'pending', status: 'NOT_COVERED' });
    // A manual scan frequency: Inspector does not scan the image, whatever the scan time of a scan before
    // (taken for a finished scan, two empty reads of its deleted findings approved it).
    expect(
      coverageState({
        statusCode: 'ACTIVE',
        reason: 'SCAN_FREQUENCY_MANUAL',
        lastScannedAt: '2026-08-01T00:00:00.000Z',
      }),
    ).toEqual({ state: 'unsupported', status: 'SCAN_FREQUENCY_MANUAL' });
    expect(
      coverageState({ statusCode: 'ACTIVE', reason: 'SCAN_FREQUENCY_MANUAL', lastScannedAt: undefined }),
    ).toEqual({ state: 'unsupported', status: 'SCAN_FREQUENCY_MANUAL, never scanned' });
  });

  it('a scan status speaks of its digest in its repository of its registry', () => {
    const image: GateImage = {
      repository: 'prod/api',
      digest: DIGEST,
      tags: [],
      registryId: '123456789012',
      source: 'x',
    };
    const scan: ScanStatus = {
      digest: DIGEST,
      repository: 'prod/api',
      registryId: '123456789012',
      source: 'inspector',
      status: 'INITIAL_SCAN_COMPLETE',
      verdict: 'complete',
      counts: undefined,
      at: '2026-11-25T12:00:00Z',
    };
    expect(scanIsOf(scan, image)).toBe(true);
    expect(scanIsOf({ ...scan, repository: 'staging/api' }, image)).toBe(false);
    expect(scanIsOf({ ...scan, digest: `sha256:${'cd'.repeat(32)}` }, image)).toBe(false);
    // The URI named another account's registry: this account's repository of that name is not it.
    expect(scanIsOf(scan, { ...image, registryId: '210987654321' })).toBe(false);
    // A status or an image of no known registry could be any account's: never taken for one of a registry.
    expect(scanIsOf(scan, { ...image, registryId: undefined })).toBe(false);
    expect(scanIsOf({ ...scan, registryId: undefined }, image)).toBe(false);
    expect(scanIsOf({ ...scan, registryId: undefined }, { ...image, registryId: undefined })).toBe(true);
    // Ties of one second are merged only within one image: another account's counts are not this one's.
    expect(() => tiedScan(scan, { ...scan, registryId: '210987654321', counts: { TOTAL: 0 } })).toThrow(
      /expected two statuses of one image/,
    );
    expect(tiedScan({ ...scan, counts: { CRITICAL: 1 } }, { ...scan, counts: { HIGH: 2 } }).counts).toEqual({
      CRITICAL: 1,
      HIGH: 2,
    });
  });

  it('reads event counts by the severity the reader gives their findings, dropping what is not a count', () => {
    // A key that is no severity is what the reader makes of a finding with that severity: UNTRIAGED. Dropped,
    // it would let a read lacking exactly those findings settle.
    expect(eventCounts({ CRITICAL: 1, high: 2, TOTAL: 3, BOGUS: 4, MEDIUM: -1, LOW: 'x' })).toEqual({
      CRITICAL: 1,
      HIGH: 2,
      TOTAL: 3,
      UNTRIAGED: 4,
    });
    // ECR's UNDEFINED is UNTRIAGED, as its findings are (levelOf), summed with anything else read so.
    expect(eventCounts({ MEDIUM: 1, UNDEFINED: 2, untriaged: 1 })).toEqual({ MEDIUM: 1, UNTRIAGED: 3 });
    // Letter case only: a name that upper-cases into a rating (dotless ı) is not one, as for findings.
    expect(eventCounts({ medıum: 1 })).toEqual({ UNTRIAGED: 1 });
    expect(eventCounts(undefined)).toBeUndefined();
  });
});

describe('the settle rule', () => {
  // The scan event's time: CVE-3 existed then and was suppressed after it (so the event may have counted it).
  const counted = '2026-11-25T11:50:00Z';
  const table = FindingTable.fromFindings([
    finding({ vulnerabilityId: 'CVE-1', severity: 'CRITICAL' }),
    finding({ vulnerabilityId: 'CVE-2', severity: 'MEDIUM' }),
    finding({
      vulnerabilityId: 'CVE-3',
      severity: 'MEDIUM',
      status: 'SUPPRESSED',
      firstObservedAt: Date.parse('2026-11-20T08:00:00Z'),
      updatedAt: Date.parse('2026-11-25T11:55:00Z'),
      changedAt: Date.parse('2026-11-25T11:55:00Z'),
    }),
  ]);
  const read = readCounts(table, '2026-11-25T12:00:00.000Z', counted);

  it('counts ACTIVE findings by severity, as the scanners count them', () => {
    expect(read.counts).toEqual({ CRITICAL: 1, MEDIUM: 1 });
    expect(read.total).toBe(2);
  });

  it('settles when the read holds what the event counted; a severity left out counts 0', () => {
    expect(isSettled(read, { CRITICAL: 1, MEDIUM: 1, TOTAL: 2 }, undefined, 50_000).settled).toBe(true);
    expect(isSettled(read, { CRITICAL: 1 }, undefined, 50_000).settled).toBe(true);
    const short = isSettled(read, { CRITICAL: 2 }, undefined, 50_000);
    expect(short).toEqual({
      settled: false,
      why: 'findings still arriving: CRITICAL 1/2 (counted by the scan event, not listed in any status)',
    });
  });

  it('counts each finding once: a CLOSED copy of a listed finding does not stand in for one the read lacks', () => {
    // The event counted 2 HIGH (A and B). The read holds A twice (ACTIVE, and a CLOSED copy) and not B: counted
    // by rows, the copy made up for B and two reads a sweep apart "settled" on a table without it.
    const a = finding({ vulnerabilityId: 'CVE-A', severity: 'HIGH', key: 'arn:finding/a' });
    const copies = readCounts(
      FindingTable.fromFindings([
        a,
        { ...a, status: 'CLOSED', updatedAt: Date.parse('2026-11-25T11:55:00Z') },
        a,
      ]),
      '2026-11-25T12:00:00.000Z',
      counted,
    );
    expect(copies).toMatchObject({ counts: { HIGH: 1 }, total: 1, listed: { HIGH: 1, TOTAL: 1 } });
    const sweepAgo = { ...copies, at: '2026-11-25T11:59:00.000Z' };
    expect(isSettled(copies, { HIGH: 2, TOTAL: 2 }, sweepAgo, 50_000).settled).toBe(false);
  });

  it('short of the event counts, settles on two reads a sweep apart only when findings suppressed or closed since explain it', () => {
    expect(read.listed).toEqual({ CRITICAL: 1, MEDIUM: 2, TOTAL: 3 });
    const sweepAgo = { ...read, at: '2026-11-25T11:59:00.000Z' };
    // 2 MEDIUM counted, 1 ACTIVE read, 1 suppressed since: explained, and two reads agree.
    expect(isSettled(read, { MEDIUM: 2 }, sweepAgo, 50_000)).toEqual({
      settled: true,
      why: 'two reads a sweep apart agree (short of the event counts: MEDIUM 1/2, suppressed or closed since)',
    });
    // A CRITICAL counted that no read lists in any status: two agreeing reads are two partial reads. Settled
    // on them, the gate approved an image its scanner had counted a CRITICAL finding in.
    for (const counted of [{ CRITICAL: 2 }, { TOTAL: 4 }]) {
      const s = isSettled(read, counted, sweepAgo, 50_000);
      expect(s.settled, JSON.stringify(counted)).toBe(false);
      expect(s.why).toContain('not listed in any status');
    }
    // A read stored before `listed` was kept: its ACTIVE counts stand in.
    const { listed: _, ...old } = read;
    expect(isSettled(old, { MEDIUM: 2 }, { ...old, at: sweepAgo.at }, 50_000).settled).toBe(false);
  });

  it('a finding suppressed or closed before the scan event, made after it, or at no known time, explains no shortfall', () => {
    // An organisation's suppression rule: a SUPPRESSED CRITICAL of another CVE that the event never counted
    // filled the gap of the counted CRITICAL not listed yet, and two equal reads a sweep apart approved.
    const at = '2026-11-25T09:02:00.000Z';
    const event = '2026-11-25T09:01:00Z';
    const ms = Date.parse(event);
    const before = Date.parse('2026-11-24T10:00:00Z');
    const rows = (extra: Partial<Parameters<typeof finding>[0]>) =>
      FindingTable.fromFindings([
        finding({ vulnerabilityId: 'CVE-M', severity: 'MEDIUM' }),
        finding({ vulnerabilityId: 'CVE-L', severity: 'LOW' }),
        finding({ vulnerabilityId: 'CVE-S', severity: 'CRITICAL', status: 'SUPPRESSED', ...extra }),
      ]);
    const reported = { CRITICAL: 1, MEDIUM: 1, TOTAL: 3 };
    const changed = (t: number) => ({ updatedAt: t, changedAt: t });
    for (const [why, extra, countedAt] of [
      ['suppressed before the event', { firstObservedAt: before - 1000, ...changed(before) }, event],
      [
        'suppressed in the very second of the event',
        { firstObservedAt: before, ...changed(ms + 999) },
        event,
      ],
      [
        'closed before the event',
        { status: 'CLOSED', firstObservedAt: before - 1000, ...changed(before) },
        event,
      ],
      // A fresh image: its findings are made by its first scan, maybe after the event, one suppressed as made.
      [
        'made suppressed in the second of the event',
        { firstObservedAt: ms + 411, ...changed(ms + 411) },
        event,
      ],
      ['made suppressed 5 s after the event', { firstObservedAt: ms + 5000, ...changed(ms + 5000) }, event],
      ['made after the event, changed since', { firstObservedAt: ms + 5000, ...changed(ms + 60_000) }, event],
      ['made at no known time', { firstObservedAt: undefined, ...changed(ms + 30_000) }, event],
      ['no update time', { firstObservedAt: before, updatedAt: undefined, changedAt: undefined }, event],
      // Suppressed a day ago; the reader's `updatedAt` is the `lastObservedAt` this scan stamped on it.
      [
        'no update time of its own',
        { firstObservedAt: before, updatedAt: ms + 2000, changedAt: undefined },
        event,
      ],
      ['no event time to compare with', { firstObservedAt: before, ...changed(ms + 30_000) }, undefined],
    ] as const) {
      const r = readCounts(rows(extra), at, countedAt);
      expect(r.listed, why).toEqual({ MEDIUM: 1, LOW: 1, TOTAL: 2 });
      const s = isSettled(r, reported, { ...r, at: '2026-11-25T09:01:00.000Z' }, 50_000);
      expect(s.settled, why).toBe(false);
      expect(s.why, why).toContain('not listed in any status');
    }
    // Made before the event (or in its very millisecond) and suppressed after it: the event may have counted
    // it ACTIVE, so it explains the shortfall.
    for (const first of [before, ms]) {
      const since = readCounts(rows({ firstObservedAt: first, ...changed(ms + 30_000) }), at, event);
      expect(since.listed).toEqual({ CRITICAL: 1, MEDIUM: 1, LOW: 1, TOTAL: 3 });
      expect(isSettled(since, reported, { ...since, at: '2026-11-25T09:01:00.000Z' }, 50_000).settled).toBe(
        true,
      );
    }
  });

  it('without counts, settles on two equal reads a sweep apart, never on one', () => {
    expect(isSettled(read, undefined, undefined, 50_000).settled).toBe(false);
    const earlier = { ...read, at: '2026-11-25T11:59:30.000Z' };
    expect(isSettled(read, undefined, earlier, 50_000).settled).toBe(false);
    const sweepAgo = { ...read, at: '2026-11-25T11:59:00.000Z' };
    expect(isSettled(read, undefined, sweepAgo, 50_000).settled).toBe(true);
    expect(
      isSettled(read, undefined, { ...sweepAgo, total: 1, counts: { CRITICAL: 1 } }, 50_000).settled,
    ).toBe(false);
  });
});

describe('the token check', () => {
  const key: GateKey = { pipeline: 'p', executionId: 'e1', stage: 'Gate', action: 'Tollgate' };
  const stage = (
    executionId: string | undefined,
    status: string | undefined,
    token?: string,
  ): StageStateView[] => [
    { name: 'Gate', executionId, actions: [{ name: 'Tollgate', status, token, actionExecutionId: 'a1' }] },
  ];
  const execution = (status: string, externalExecutionId?: string): ActionExecutionView[] => [
    {
      stage: 'Gate',
      action: 'Tollgate',
      actionExecutionId: 'a1',
      status,
      customData: undefined,
      externalExecutionId,
    },
  ];

  it('takes the token when the stage runs this execution and the action is in progress', () => {
    expect(
      checkToken(key, stage('e1', 'InProgress', '00000000-0000-4000-8000-000000000001'), undefined),
    ).toEqual({
      ok: true,
      token: '00000000-0000-4000-8000-000000000001',
      mode: 'stage',
      actionExecutionId: 'a1',
    });
  });

  it('is final when another execution holds the stage or the action is over', () => {
    expect(
      checkToken(key, stage('e2', 'InProgress', '00000000-0000-4000-8000-000000000002'), undefined),
    ).toMatchObject({
      ok: false,
      final: true,
    });
    expect(checkToken(key, stage('e1', 'Succeeded'), undefined)).toMatchObject({ ok: false, final: true });
    expect(checkToken(key, [], undefined)).toMatchObject({ ok: false, final: true });
  });

  it('in PARALLEL mode takes the externalExecutionId of this execution', () => {
    expect(
      checkToken(
        key,
        stage(undefined, undefined),
        execution('InProgress', '00000000-0000-4000-8000-000000000003'),
      ),
    ).toMatchObject({
      ok: true,
      token: '00000000-0000-4000-8000-000000000003',
      mode: 'parallel',
    });
    expect(
      checkToken(
        key,
        stage('e2', 'InProgress', '00000000-0000-4000-8000-000000000002'),
        execution('Abandoned'),
      ),
    ).toMatchObject({
      ok: false,
      final: true,
    });
    // Ours in progress, no token shown yet: wait for it; the state naming no execution is not supersession.
    expect(checkToken(key, stage(undefined, undefined), execution('InProgress'))).toMatchObject({
      ok: false,
      final: false,
    });
  });

  it('does not give a gate up on a state that still shows the execution before ours, while our run is in progress', () => {
    // Our run is listed in progress: in SUPERSEDED and QUEUED modes it holds the stage, so a state naming
    // e0 is behind, not a supersession. STALE here left the approval to no one, with no escalation.
    const behind = stage('e0', 'Succeeded');
    expect(checkToken(key, behind, execution('InProgress'), 'a1')).toEqual({
      ok: false,
      reason: "the stage state still shows execution e0 while this gate's run is in progress",
      final: false,
    });
    expect(checkToken(key, behind, execution('InProgress'))).toMatchObject({ ok: false, final: false });
    // Once our run is over, it is final.
    expect(checkToken(key, behind, execution('Succeeded'), 'a1')).toMatchObject({ ok: false, final: true });
    // Without the runs read, the state alone still says the execution moved on (the sweep then reads them).
    expect(checkToken(key, behind, undefined, 'a1')).toMatchObject({ ok: false, final: true });
    // The runs read, ours not listed yet (both lag just after STARTED): not final either. STALE here opened the
    // gate dead, and neither a redelivery nor discovery could revive it.
    expect(checkToken(key, behind, [], 'a1', true)).toEqual({
      ok: false,
      reason: "the stage state shows execution e0 and this gate's run is not listed yet",
      final: false,
    });
    expect(
      checkToken(key, stage('e2', 'InProgress', '00000000-0000-4000-8000-000000000002'), [], undefined, true),
    ).toMatchObject({
      ok: false,
      final: false,
    });
    // Past the listing's grace, a run never listed is gone: final, as before (else the gate would decide and
    // act, forever failing, for an approval that no longer exists).
    expect(
      checkToken(key, stage('e2', 'InProgress', '00000000-0000-4000-8000-000000000002'), [], 'a1'),
    ).toMatchObject({
      ok: false,
      final: true,
    });
  });

  it("does not give a gate up on a state that still shows the action's previous run", () => {
    // GetPipelineState lags: our execution holds the stage, the action shows the last run's Succeeded,
    // while ListActionExecutions already has ours in progress.
    const lagging = stage('e1', 'Succeeded');
    expect(checkToken(key, lagging, execution('InProgress'))).toMatchObject({ ok: false, final: false });
    expect(
      checkToken(key, lagging, execution('InProgress', '00000000-0000-4000-8000-000000000003')),
    ).toMatchObject({
      ok: true,
      token: '00000000-0000-4000-8000-000000000003',
    });
    // Without the executions, or with them agreeing, it is over.
    expect(checkToken(key, lagging, undefined)).toMatchObject({ ok: false, final: true });
    expect(checkToken(key, lagging, execution('Succeeded'))).toMatchObject({ ok: false, final: true });
  });

  it("never takes another attempt's token: a retried stage shows the new run in the state", () => {
    const state = (actionExecutionId: string, status: string, token?: string): StageStateView[] => [
      { name: 'Gate', executionId: 'e1', actions: [{ name: 'Tollgate', status, token, actionExecutionId }] },
    ];
    const run = (actionExecutionId: string, status: string): ActionExecutionView => ({
      ...execution(status)[0]!,
      actionExecutionId,
    });
    // The first attempt's gate (a1), still open, while the retry (a2) waits with its own token.
    const retried = state('a2', 'InProgress', '00000000-0000-4000-8000-000000000002');
    expect(checkToken(key, retried, undefined, 'a1')).toMatchObject({ ok: false, final: false });
    expect(checkToken(key, retried, [run('a2', 'InProgress'), run('a1', 'Failed')], 'a1')).toMatchObject({
      ok: false,
      final: true,
    });
    // The retry's gate (a2) while the state still shows the first run, and the list does not have a2 yet.
    const lagging = state('a1', 'Failed');
    expect(checkToken(key, lagging, [run('a1', 'Failed')], 'a2')).toMatchObject({ ok: false, final: false });
    expect(
      checkToken(key, state('a2', 'InProgress', '00000000-0000-4000-8000-000000000002'), undefined, 'a2'),
    ).toMatchObject({
      ok: true,
      token: '00000000-0000-4000-8000-000000000002',
    });
  });

  it("a state that names no run (older API answers) is read through the gate's own run", () => {
    const unnamed = (status: string | undefined, token?: string): StageStateView[] => [
      {
        name: 'Gate',
        executionId: 'e1',
        actions: [{ name: 'Tollgate', status, token, actionExecutionId: undefined }],
      },
    ];
    const run = (id: string, status: string): ActionExecutionView => ({
      ...execution(status)[0]!,
      actionExecutionId: id,
    });
    // Our run X is over and a retry Y waits: its token is not ours, read or not.
    expect(
      checkToken(
        key,
        unnamed('InProgress', '00000000-0000-4000-8000-00000000000b'),
        [run('X', 'Failed'), run('Y', 'InProgress')],
        'X',
      ),
    ).toMatchObject({ ok: false, final: true });
    expect(
      checkToken(key, unnamed('InProgress', '00000000-0000-4000-8000-00000000000b'), undefined, 'X'),
    ).toMatchObject({
      ok: false,
      final: false,
    });
    // Our run in progress: the one run in progress in the execution is ours.
    expect(
      checkToken(
        key,
        unnamed('InProgress', '00000000-0000-4000-8000-00000000000a'),
        [run('X', 'InProgress')],
        'X',
      ),
    ).toMatchObject({
      ok: true,
      token: '00000000-0000-4000-8000-00000000000a',
    });
    // Our run started but not listed yet, the state showing nothing of it: wait.
    expect(checkToken(key, unnamed(undefined), [], 'X')).toMatchObject({ ok: false, final: false });
  });

  it('reads the attempt the event named when a retried stage lists two', () => {
    const attempts: ActionExecutionView[] = [
      { ...execution('Failed')[0]!, actionExecutionId: 'a0' },
      { ...execution('InProgress', '00000000-0000-4000-8000-000000000003')[0]!, actionExecutionId: 'a1' },
    ];
    const none = stage(undefined, undefined);
    expect(checkToken(key, none, attempts, 'a1')).toMatchObject({
      ok: true,
      token: '00000000-0000-4000-8000-000000000003',
    });
    expect(checkToken(key, none, attempts, 'a0')).toMatchObject({ ok: false, final: true });
  });

  it('waits (not final) when the action is in progress but has no token yet', () => {
    expect(checkToken(key, stage('e1', 'InProgress'), undefined)).toMatchObject({ ok: false, final: false });
  });
});

describe('bounding a stored decision', () => {
  const { decision } = exampleEscalationInput();

  it('returns a decision that fits as it is', () => {
    expect(boundedDecision(decision)).toBe(decision);
  });

  it('cuts every id list to one length, the first ids kept, and says how many each left out', () => {
    const ids = (n: number) => Array.from({ length: n }, (_, i) => `CVE-2026-${String(i).padStart(5, '0')}`);
    const big: StoredDecision = {
      ...decision,
      record: {
        ...decision.record,
        violations: decision.record.violations.map((v, i) => ({ ...v, findings: ids(i === 0 ? 9000 : 3) })),
        warnings: decision.record.warnings.map((v) => ({ ...v, findings: ids(6000) })),
      },
    };
    const bounded = boundedDecision(big, 100_000);
    expect(Buffer.byteLength(JSON.stringify(bounded))).toBeLessThanOrEqual(100_000);
    const kept = bounded.record.violations[0]!.findings.length;
    expect(kept).toBeGreaterThan(1000);
    expect(bounded.record.violations[0]).toMatchObject({ findings: ids(kept), findingsOmitted: 9000 - kept });
    // A list shorter than the cut is whole, and says nothing.
    expect(bounded.record.violations[1]!.findings).toEqual(ids(3));
    expect(bounded.record.violations[1]!.findingsOmitted).toBeUndefined();
    for (const w of bounded.record.warnings) expect(w.findings.length + w.findingsOmitted!).toBe(6000);
    // The verdict and what it says stay the evaluation's.
    expect(bounded.record).toMatchObject({ outcome: 'ESCALATE', summary: decision.record.summary });
    expect(bounded.details).toEqual(decision.details);
  });

  it('cuts the findings shown per violation when even empty id lists do not fit', () => {
    const bare = {
      ...decision,
      record: {
        ...decision.record,
        violations: decision.record.violations.map((v) => ({ ...v, findings: [], findingsOmitted: 1 })),
        warnings: decision.record.warnings.map((v) => ({ ...v, findings: [], findingsOmitted: 1 })),
      },
      details: decision.details.map((d) => ({ ...d, shown: [] })),
    };
    const budget = Buffer.byteLength(JSON.stringify(bare)) + 400;
    const small = boundedDecision(decision, budget);
    expect(small.record.violations.every((v) => v.findings.length === 0)).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(small))).toBeLessThanOrEqual(budget);
    expect(small.details.some((d, i) => d.shown.length < decision.details[i]!.shown.length)).toBe(true);
    for (const [i, d] of small.details.entries()) {
      const before = decision.details[i]!;
      expect(d.shown.length + d.more).toBe(before.shown.length + before.more);
    }
  });
});

describe('CustomData that names no image, at the gate', () => {
  const dynamo = useLocalDynamo();

  it('is described in the gate, its Gate State Change event and its escalation, never quoted', async () => {
    const h = await createHarness(dynamo());
    const notes = 'Deploy notes: https://wiki/x?sig=abc123 – approve after QA';
    h.pipeline.action.customData = notes;
    await h.approvalStarted();
    h.clock.advance(60_000);
    await h.sweep();
    const gate = await h.gate();
    expect(gate?.image).toBeUndefined();
    expect(gate?.imageProblem).toContain(
      `CustomData (${notes.length} characters, not quoted) names no ECR image`,
    );
    expect(gate?.imageProblem).not.toContain('sig=abc123');
    expect(h.events.length + h.messages.length).toBeGreaterThan(0);
    expect(JSON.stringify([gate, h.events, h.messages])).not.toContain('sig=abc123');
  });
});
