import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import * as z from 'zod';
import { InputError, unreadable } from '../shared/errors.js';
import { parseYamlInput } from '../shared/yaml-input.js';

/*
 * A scenario: a recorded (or imagined) run of gated pipelines, replayed through the real handlers. It holds
 * the world as the AWS APIs would describe it (approvals in progress, images, scans, findings) and, in
 * order, the steps: events as EventBridge would deliver them, sweeps, changes of the world, API failures,
 * and people resolving escalations. JSON or YAML; README "Scenarios" documents every field.
 */

const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, { error: 'an image digest sha256:<64 hex digits>' });
const name = z.string().min(1).max(100);
const offset = z
  .union([
    z.string().regex(/^\d+(\.\d+)?(ms|s|m|h)$/, { error: 'an offset like 90s, 5m or 1h' }),
    z.number().min(0),
  ])
  .meta({ description: 'Time since the scenario start: 30s, 5m, 1h, or seconds as a number.' });

const Approval = z.strictObject({
  pipeline: name,
  stage: name,
  action: name,
  executionId: z.string().min(1).max(200),
  /** The approval token GetPipelineState shows while the action waits (a lowercase UUID). */
  token: z
    .string()
    .regex(/^[0-9a-f-]{36}$/, { error: 'a lowercase UUID' })
    .optional(),
  customData: z.string().max(2000).optional(),
  variables: z.record(z.string(), z.string()).optional(),
  executionMode: z.enum(['SUPERSEDED', 'QUEUED', 'PARALLEL']).default('SUPERSEDED'),
});
export type ScenarioApproval = z.output<typeof Approval>;

const Image = z.strictObject({
  repository: name,
  digest,
  tags: z.array(z.string()).default([]),
});

const FindingsSource = z.union([
  z.strictObject({ file: z.string().min(1) }),
  z.strictObject({ findings: z.array(z.unknown()) }),
]);

const Scan = z.strictObject({
  digest,
  repository: name,
  /** `INITIAL_SCAN_COMPLETE` (Inspector), `COMPLETE` / `FAILED` / `UNSUPPORTED_IMAGE` (ECR basic), … */
  status: z.string().min(1),
  /** The severity counts the scan event reports; leave out severities as real events do. */
  counts: z.record(z.string(), z.number().int().min(0)).optional(),
  /** false: the scan finishes, but its event is lost (only coverage and the sweep can tell). */
  event: z.boolean().default(true),
});

const Key = z.strictObject({ pipeline: name, stage: name, action: name, executionId: z.string().min(1) });

const Failure = z.strictObject({
  /** An SDK operation: `ListFindings`, `GetPipelineState`, `PutApprovalResult`, `Publish`, … */
  operation: z.string().min(1),
  error: z
    .enum([
      'ThrottlingException',
      'InternalServerException',
      'ServiceUnavailable',
      'AccessDeniedException',
      'TimeoutError',
    ])
    .default('ThrottlingException'),
  /** How many calls fail, from now on. */
  times: z.int().min(1).default(1),
  /** Only calls for this page (1 = the first page; ListFindings, DescribeImageScanFindings, ListActionExecutions). */
  page: z.int().min(1).optional(),
});

const Step = z
  .strictObject({
    at: offset.optional(),
    note: z.string().optional(),
    /**
     * The approval action starts: the world shows it in progress and EventBridge delivers STARTED, unless
     * `event: false` (the event is lost: only the sweep's discovery can find the approval).
     */
    approvalStarted: Key.extend({ event: z.boolean().default(true) }).optional(),
    /** A newer execution reaches the stage: the waiting one is superseded (its action is abandoned). */
    supersede: Approval.optional(),
    /** The scan of an image finishes (or fails): coverage changes and, unless `event: false`, an event is sent. */
    scan: Scan.optional(),
    /** Findings the scanner holds for a digest from now on; `append` adds to what it had (findings arriving late). */
    findings: z
      .strictObject({ digest, append: z.boolean().default(false) })
      .and(FindingsSource)
      .optional(),
    sweep: z.boolean().optional(),
    fail: Failure.optional(),
    /** A person approves or rejects in the console (after an escalation). */
    review: z
      .strictObject({
        pipeline: name,
        stage: name,
        action: name,
        status: z.enum(['Approved', 'Rejected']),
        identity: z.string().min(1),
        summary: z.string().max(512).default(''),
      })
      .optional(),
    /** The action ends without a result from anyone (timed out, cancelled). */
    approvalEnded: Key.extend({ state: z.enum(['FAILED', 'ABANDONED', 'CANCELED']) }).optional(),
    /** Any EventBridge event, delivered as it is to the function whose rule matches it. */
    event: z.record(z.string(), z.unknown()).optional(),
  })
  .refine(
    (s) =>
      [
        'approvalStarted',
        'supersede',
        'scan',
        'findings',
        'sweep',
        'fail',
        'review',
        'approvalEnded',
        'event',
      ].filter((k) => s[k as keyof typeof s] !== undefined).length === 1,
    {
      error:
        'exactly one of approvalStarted, supersede, scan, findings, sweep, fail, review, approvalEnded, event in a step',
    },
  );
export type ScenarioStep = z.output<typeof Step>;

const Expectation = z.strictObject({
  executionId: z.string(),
  stage: name.optional(),
  action: name.optional(),
  state: z.enum(['WAITING', 'DECIDED', 'ACTED', 'CLOSED', 'STALE']).optional(),
  outcome: z.enum(['APPROVE', 'REJECT', 'ESCALATE']).nullable().optional(),
  notifications: z.int().min(0).optional(),
  approvalResult: z.enum(['Approved', 'Rejected']).nullable().optional(),
  reviewer: z.string().optional(),
});
export type ScenarioExpectation = z.output<typeof Expectation>;

export const ScenarioSchema = z.strictObject({
  $comment: z.string().optional(),
  name: z.string().min(1).max(200),
  description: z.string().optional(),
  /** The policy file, relative to the scenario file. */
  policy: z.string().min(1),
  account: z
    .string()
    .regex(/^\d{12}$/, { error: 'a 12-digit account id' })
    .default('123456789012'),
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, { error: 'an AWS region like eu-west-1' })
    .default('eu-west-1'),
  /** `inspector` (enhanced scanning) or `ecr` (basic scanning). */
  scanSource: z.enum(['inspector', 'ecr']).default('inspector'),
  start: z.iso.datetime({ offset: true }).default('2026-11-25T09:00:00Z'),
  world: z
    .strictObject({
      approvals: z.array(Approval).default([]),
      images: z.array(Image).default([]),
      /** Findings per digest, as Inspector (ListFindings shape) or ECR (DescribeImageScanFindings shape) has them. */
      findings: z.record(z.string(), FindingsSource).default({}),
      scans: z.array(Scan.omit({ event: true })).default([]),
    })
    .default({ approvals: [], images: [], findings: {}, scans: [] }),
  steps: z.array(Step).min(1),
  /** What the replay must end with; `tollgate simulate` exits 4 when it does not. */
  expect: z.array(Expectation).default([]),
});
export type Scenario = z.output<typeof ScenarioSchema>;

export interface LoadedScenario {
  readonly scenario: Scenario;
  readonly file: string;
  readonly policyFile: string;
  /** Findings documents by digest, read from the files the scenario names. */
  readonly findingsFiles: ReadonlyMap<string, unknown>;
}

export const MAX_SCENARIO_BYTES = 4 * 1024 * 1024;

export function loadScenario(file: string): LoadedScenario {
  let bytes: Buffer;
  try {
    if (statSync(file).size > MAX_SCENARIO_BYTES) {
      throw new InputError([
        {
          file,
          path: '',
          expected: `a scenario of at most ${MAX_SCENARIO_BYTES} bytes`,
          got: 'a bigger file',
        },
      ]);
    }
    bytes = readFileSync(file);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError([
      // In the words `evaluate` uses (`no such file`), not Node's (`ENOENT: no such file or directory, stat …`).
      { file, path: '', expected: 'a readable scenario file', got: unreadable(e) },
    ]);
  }
  const { value } = parseYamlInput(bytes, file, ScenarioSchema, {
    what: 'a scenario (a mapping with name, policy, world, steps)',
    maxBytes: MAX_SCENARIO_BYTES,
  });
  const base = dirname(resolve(file));
  const findingsFiles = new Map<string, unknown>();
  const readFindings = (path: string, where: string): unknown => {
    const full = resolve(base, path);
    if (findingsFiles.has(full)) return findingsFiles.get(full);
    try {
      const doc: unknown = JSON.parse(readFileSync(full, 'utf8'));
      findingsFiles.set(full, doc);
      return doc;
    } catch (e) {
      throw new InputError([
        {
          file,
          path: where,
          expected: 'a readable JSON findings file',
          got: `${path}: ${(e as NodeJS.ErrnoException).code ? unreadable(e) : (e as Error).message}`,
        },
      ]);
    }
  };
  for (const [d, source] of Object.entries(value.world.findings)) {
    if ('file' in source) readFindings(source.file, `world.findings.${d}.file`);
  }
  value.steps.forEach((s, i) => {
    if (s.findings && 'file' in s.findings) readFindings(s.findings.file, `steps[${i}].findings.file`);
  });
  // A policy that does not parse is a scenario of its own (every gate escalates, as in Lambda); a policy
  // file that is not there is a typo in the scenario, said as one.
  const policyFile = resolve(base, value.policy);
  if (!existsSync(policyFile) || !statSync(policyFile).isFile()) {
    throw new InputError([
      {
        file,
        path: 'policy',
        expected: 'a policy file (relative to the scenario)',
        got: `${value.policy}: ${existsSync(policyFile) ? 'not a file' : 'no such file'}`,
      },
    ]);
  }
  return { scenario: value, file, policyFile, findingsFiles };
}

/** Seconds since the start, from a step's `at`. */
export function offsetMs(at: string | number | undefined): number | undefined {
  if (at === undefined) return undefined;
  if (typeof at === 'number') return at * 1000;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(at);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 3_600_000;
  return n * unit;
}

/** Resolves a findings file named by the scenario, relative to it. */
export function findingsDocument(loaded: LoadedScenario, path: string): unknown {
  return loaded.findingsFiles.get(resolve(dirname(resolve(loaded.file)), path));
}
