/**
 * Deterministic, realistic inputs for the benchmark: findings shaped like the Inspector2 ListFindings API
 * (epoch seconds, CVSS lists, descriptions, reference URLs, several packages, the ECR image resource) and a
 * policy of the size a large organisation reaches (20 rules, 1,000 exceptions by exact id and by glob).
 */

/** mulberry32: a small seeded PRNG, so every run judges the same inputs. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEVERITIES = [
  'CRITICAL',
  'HIGH',
  'HIGH',
  'MEDIUM',
  'MEDIUM',
  'MEDIUM',
  'LOW',
  'LOW',
  'INFORMATIONAL',
  'UNTRIAGED',
];
const PACKAGES = [
  'openssl',
  'libssl3',
  'curl',
  'libcurl4',
  'zlib1g',
  'libc6',
  'libc-bin',
  'glibc',
  'libexpat1',
  'ncurses-base',
  'libkrb5-3',
  'libxml2',
  'python3.11',
  'perl-base',
  'tar',
  'gzip',
  'lodash',
  'express',
  'cross-spawn',
  'semver',
  'golang.org/x/net',
  'golang.org/x/crypto',
  'jackson-databind',
  'log4j-core',
  'spring-web',
  'netty-codec',
  'urllib3',
  'requests',
  'jinja2',
  'setuptools',
];
const WORDS =
  'a remote attacker could cause denial of service via crafted input buffer overflow in the parser when handling malformed certificates leading to memory corruption and possible code execution'.split(
    ' ',
  );

export const VULN_POOL = 20_000;

export function vulnerabilityId(n: number): string {
  if (n % 20 === 0)
    return `GHSA-${(n * 7919).toString(36).padStart(4, 'x').slice(0, 4)}-${n.toString(36).padStart(4, 'q')}-abcd`;
  return `CVE-${2015 + (n % 11)}-${String(10000 + n).padStart(5, '0')}`;
}

export const DIGEST = 'sha256:3f9a1c0d8e2b47a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2';

export function makeFindings(count: number, seed: number, offset = 0): Record<string, unknown>[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const out: Record<string, unknown>[] = [];
  const now = Date.UTC(2026, 10, 25) / 1000;
  for (let i = 0; i < count; i++) {
    const n = Math.floor(r() * VULN_POOL);
    const id = vulnerabilityId(n);
    const severity = pick(SEVERITIES);
    const score = severity === 'UNTRIAGED' ? undefined : Math.round((2 + r() * 8) * 10) / 10;
    const pkgCount = 1 + Math.floor(r() * r() * 3);
    const packages = Array.from({ length: pkgCount }, () => {
      const name = pick(PACKAGES);
      const language = name.includes('/') || name === 'lodash' || name === 'express' || name === 'semver';
      return {
        arch: 'AMD64',
        epoch: 0,
        fixedInVersion: r() < 0.6 ? `1.${Math.floor(r() * 20)}.${Math.floor(r() * 9)}` : 'NotAvailable',
        name,
        packageManager: name.includes('/') ? 'GOBINARY' : language ? 'NPM' : 'OS',
        ...(language ? { filePath: `app/node_modules/${name}/package.json` } : {}),
        release: `${Math.floor(r() * 9)}+deb12u${Math.floor(r() * 9)}`,
        remediation: 'apt-get update && apt-get upgrade',
        sourceLayerHash: 'sha256:416e17e4fbb3912125a75f472458c684de6c08405c5c0d2221649b7feac4f78c',
        version: `1.${Math.floor(r() * 20)}.${Math.floor(r() * 9)}`,
      };
    });
    const first = now - Math.floor(r() * 200 * 86400) - Math.round(r() * 1000) / 1000;
    // NVD and distribution descriptions run from one line to several paragraphs (the API sample: 450).
    const description = Array.from({ length: 8 + Math.floor(r() * r() * 150) }, () => pick(WORDS)).join(' ');
    const urls = 1 + Math.floor(r() * 12);
    const vector = 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H';
    const cvss =
      score === undefined
        ? []
        : Array.from({ length: 1 + Math.floor(r() * 2) }, (_, k) => ({
            baseScore: k === 0 ? score : Math.round((2 + r() * 8) * 10) / 10,
            scoringVector: vector,
            source: k === 0 ? 'NVD' : 'DEBIAN_CVE',
            version: '3.1',
          }));
    const finding: Record<string, unknown> = {
      awsAccountId: '123456789012',
      description,
      epss: { score: Math.round(r() * r() * r() * 100000) / 100000 },
      exploitAvailable: r() < 0.05 ? 'YES' : 'NO',
      findingArn: `arn:aws:inspector2:eu-west-1:123456789012:finding/${(offset + i).toString(16).padStart(32, '0')}`,
      firstObservedAt: first,
      fixAvailable: r() < 0.6 ? 'YES' : r() < 0.5 ? 'PARTIAL' : 'NO',
      lastObservedAt: now,
      packageVulnerabilityDetails: {
        cvss,
        referenceUrls: Array.from({ length: urls }, (_, k) =>
          k === 0
            ? `https://nvd.nist.gov/vuln/detail/${id}`
            : `https://security-tracker.debian.org/tracker/${id}#ref-${k}`,
        ),
        relatedVulnerabilities: [],
        source: 'DEBIAN_CVE',
        sourceUrl: `https://security-tracker.debian.org/tracker/${id}`,
        vendorCreatedAt: first - 86400,
        vendorUpdatedAt: first - 3600,
        vendorSeverity: severity.toLowerCase(),
        vulnerabilityId: id,
        vulnerablePackages: packages,
      },
      remediation: { recommendation: { text: 'None Provided' } },
      resources: [
        {
          details: {
            awsEcrContainerImage: {
              architecture: 'amd64',
              imageHash: DIGEST,
              imageTags: ['1.4.2'],
              platform: 'DEBIAN_12',
              pushedAt: now - 3600,
              registry: '123456789012',
              repositoryName: 'payments/api',
            },
          },
          id: `arn:aws:ecr:eu-west-1:123456789012:repository/payments/api/${DIGEST}`,
          partition: 'aws',
          region: 'eu-west-1',
          type: 'AWS_ECR_CONTAINER_IMAGE',
        },
      ],
      severity,
      status: r() < 0.95 ? 'ACTIVE' : 'SUPPRESSED',
      title: `${id} - ${packages.map((p) => p.name).join(', ')}`,
      type: 'PACKAGE_VULNERABILITY',
      updatedAt: now,
    };
    if (score !== undefined) {
      finding.inspectorScore = score;
      finding.inspectorScoreDetails = {
        adjustedCvss: {
          adjustments: [],
          cvssSource: 'NVD',
          score,
          scoreSource: 'NVD',
          scoringVector: vector,
          version: '3.1',
        },
      };
    }
    out.push(finding);
  }
  return out;
}

/** 20 rules over every condition, and 1,000 exceptions: 700 exact ids, 300 globs (prefix, inner, leading `*`). */
export function makePolicy(): string {
  const rules = [
    { id: 'no-critical', action: 'reject', when: { severity: ['CRITICAL'] } },
    { id: 'known-exploited', action: 'reject', when: { exploitAvailable: true, minScore: 7 } },
    {
      id: 'fixable-high',
      action: 'escalate',
      when: { severity: ['HIGH'], fixAvailable: ['YES', 'PARTIAL'] },
    },
    { id: 'high-past-sla', action: 'reject', when: { severity: ['HIGH'], olderThanDays: 30 } },
    { id: 'likely-exploited', action: 'escalate', when: { minEpss: 0.2 } },
    { id: 'medium-budget', action: 'warn', allow: 10, when: { severity: ['MEDIUM'] } },
    {
      id: 'banned',
      action: 'reject',
      when: { vulnerabilityIds: ['CVE-2021-44228', 'CVE-2021-45046', 'CVE-2024-3094'] },
    },
    { id: 'log4j-family', action: 'reject', when: { packages: ['log4j-*'], minScore: 5 } },
    {
      id: 'crypto-libs',
      action: 'escalate',
      when: { packages: ['openssl', 'libssl*', 'golang.org/x/crypto'], severity: ['HIGH', 'CRITICAL'] },
    },
    { id: 'old-medium', action: 'warn', when: { severity: ['MEDIUM'], olderThanDays: 90 } },
    { id: 'payments-strict', action: 'escalate', when: { repositories: ['payments/*'], minScore: 8.5 } },
    {
      id: 'prod-only',
      action: 'escalate',
      when: { pipelines: ['*-prod'], fixAvailable: ['YES'], minEpss: 0.05 },
    },
    { id: 'ghsa-high', action: 'escalate', when: { vulnerabilityIds: ['GHSA-*'], severity: ['HIGH'] } },
    { id: 'old-cves', action: 'warn', allow: 100, when: { vulnerabilityIds: ['CVE-2015-*', 'CVE-2016-*'] } },
    { id: 'untriaged-high-score', action: 'escalate', when: { severity: ['UNTRIAGED'], minScore: 7 } },
    { id: 'go-binaries', action: 'warn', when: { packages: ['golang.org/*'] } },
    { id: 'no-fix-critical', action: 'escalate', when: { severity: ['CRITICAL'], fixAvailable: ['NO'] } },
    { id: 'exploit-low', action: 'warn', when: { exploitAvailable: true, severity: ['LOW'] } },
    { id: 'epss-extreme', action: 'reject', when: { minEpss: 0.9 } },
    { id: 'everything-budget', action: 'warn', allow: 50000 },
  ];
  const r = rng(7);
  const exceptions = [];
  for (let i = 0; i < 1000; i++) {
    let vulnerabilityId: string;
    if (i < 700)
      vulnerabilityId =
        (globalThis as { __vid?: (n: number) => string }).__vid?.(i) ?? exactId(Math.floor(r() * VULN_POOL));
    else if (i < 950)
      vulnerabilityId = `CVE-${2015 + (i % 11)}-${String(10000 + Math.floor(r() * 2000)).slice(0, 4)}*`;
    else if (i < 990)
      vulnerabilityId = `CVE-*-${String(Math.floor(r() * 100)).padStart(2, '0')}${String(Math.floor(r() * 10))}`;
    else vulnerabilityId = `*-${String(10000 + Math.floor(r() * VULN_POOL)).padStart(5, '0')}`;
    const exception: Record<string, unknown> = {
      id: `EXC-${String(i).padStart(4, '0')}`,
      vulnerabilityId,
      expires: i % 10 === 0 ? '2026-01-31' : i % 7 === 0 ? '2026-12-01' : '2027-06-30',
      reason: 'Not reachable from the service; tracked in the backlog',
      approvedBy: 'security@example.com',
    };
    if (i % 3 === 0) exception.packages = [PACKAGES[i % PACKAGES.length]!, 'lib*'];
    if (i % 4 === 0) exception.repositories = ['payments/*'];
    if (i % 5 === 0) exception.revokeIf = { exploitAvailable: true, minEpss: 0.5 };
    exceptions.push(exception);
  }
  return JSON.stringify({ version: 1, name: 'bench', rules, exceptions });
}

function exactId(n: number): string {
  return vulnerabilityId(n);
}
