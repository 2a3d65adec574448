import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  type Evaluation,
  type EvaluationInput,
  evaluate,
  type Finding,
  type LoadedPolicy,
  levelOf,
  parsePolicy,
} from '../shared/index.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const NOW = new Date('2026-11-25T12:00:00.000Z');
export const DAY = 86_400_000;

export function fixture(path: string): string {
  return readFileSync(new URL(`fixtures/${path}`, import.meta.url), 'utf8');
}

export function fixtureJson(path: string): unknown {
  return JSON.parse(fixture(path));
}

/** A policy from YAML text; `version: 1` and a name are added unless given. */
export function policy(yaml: string, file = 'policy.yaml'): LoadedPolicy {
  const text = /^version:/m.test(yaml) ? yaml : `version: 1\nname: test\n${yaml}`;
  return parsePolicy(text, file);
}

let serial = 0;

/** A normalised finding; everything unknown unless given. */
export function finding(overrides: Partial<Finding> = {}): Finding {
  serial++;
  const id = overrides.vulnerabilityId ?? `CVE-2026-${String(10000 + serial)}`;
  return {
    key: overrides.key ?? `arn:aws:inspector2:eu-west-1:123456789012:finding/${id}-${serial}`,
    vulnerabilityId: id,
    severity: 'MEDIUM',
    status: 'ACTIVE',
    score: undefined,
    epss: undefined,
    exploitAvailable: undefined,
    fixAvailable: undefined,
    firstObservedAt: undefined,
    updatedAt: undefined,
    packages: [{ name: 'openssl', version: '3.0.13', fixedInVersion: '3.0.14' }],
    image: undefined,
    title: undefined,
    ...overrides,
    level: levelOf(overrides.severity ?? 'MEDIUM'),
  };
}

export const IMAGE = { repository: 'payments/api', digest: 'sha256:abc', tags: ['1.4.2'] } as const;

export function run(
  p: LoadedPolicy,
  findings: readonly Finding[],
  extra: Partial<EvaluationInput> = {},
): Evaluation {
  return evaluate(p, { findings, now: NOW, image: IMAGE, pipeline: 'payments-prod', ...extra });
}
