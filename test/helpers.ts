import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Gate, GateKey } from '../shared/gate/model.js';
import {
  type Evaluation,
  type EvaluationInput,
  evaluate,
  type Finding,
  InputError,
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

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The `tollgate` command as users run it (from dist/, built by the tests' global setup), without colours. */
export function tollgateCli(args: readonly string[], input?: string | Buffer): CliResult {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/tollgate.js'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    input,
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The InputError `fn` throws (any other outcome fails the test). */
export function inputErrorOf(fn: () => unknown): InputError {
  try {
    fn();
  } catch (e) {
    if (e instanceof InputError) return e;
    throw e;
  }
  throw new Error('expected an InputError');
}

/** A gate as the core stores it; undefined fields exercise a store's round trip as much as set ones. */
export function sampleGate(key: GateKey, overrides: Partial<Gate> = {}): Gate {
  return {
    key,
    state: 'WAITING',
    version: 1,
    account: '123456789012',
    region: 'eu-west-1',
    actionExecutionId: undefined,
    startedAt: '2026-11-25T12:00:00.000Z',
    deadline: '2026-11-25T12:30:00.000Z',
    image: {
      repository: 'payments/api',
      digest: 'sha256:abc',
      tags: ['1.4.2'],
      registryId: undefined,
      source: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments/api:1.4.2',
    },
    imageProblem: undefined,
    tokenHash: undefined,
    lastRead: undefined,
    outcome: undefined,
    decidedAt: undefined,
    summary: undefined,
    approvalResult: undefined,
    notifications: 0,
    actingUntil: undefined,
    staleReason: undefined,
    closure: undefined,
    reviewer: undefined,
    timeline: [{ at: '2026-11-25T12:00:00.000Z', what: 'approval started' }],
    updatedAt: '2026-11-25T12:00:00.000Z',
    ...overrides,
  };
}
