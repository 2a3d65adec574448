import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ScanStatus as EcrScanStatus } from '@aws-sdk/client-ecr';
import { ScanStatusReason } from '@aws-sdk/client-inspector2';
import * as z from 'zod';
import { InputError, type InputProblem, unreadable } from '../shared/errors.js';
import { REPOSITORY_NAME } from '../shared/gate/image.js';
import {
  type GateKey,
  gateId,
  gateKeyFromFields,
  PIPELINE_NAME,
  PIPELINE_NAME_EXPECTED,
} from '../shared/gate/model.js';
import { parseYamlInput } from '../shared/yaml-input.js';

/*
 * A scenario: a recorded (or imagined) run of gated pipelines, replayed through the real handlers. It holds
 * the world as the AWS APIs would describe it (approvals in progress, images, scans, findings) and, in
 * order, the steps: events as EventBridge would deliver them, sweeps, changes of the world, API failures,
 * and people resolving escalations. JSON or YAML; README "Scenarios" documents every field.
 */

const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, { error: 'an image digest sha256:<64 hex digits>' });
// As CodePipeline names pipelines, stages and actions, and ECR repositories: a scenario names what a real
// run could (and its records can be read with `tollgate audit --pipeline`, which refuses other names).
const name = z.string().regex(PIPELINE_NAME, { error: PIPELINE_NAME_EXPECTED });
const repository = z.string().regex(REPOSITORY_NAME, {
  error: 'an ECR repository name (payments/api: lowercase, 2 to 256 characters)',
});
// A UUID in real runs; any printable ASCII here, as the handlers' schema takes (a key's bytes are its length).
const executionId = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x21-\x7e]+$/, { error: 'an execution id (printable ASCII, no spaces)' });
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
  executionId,
  /** The approval token GetPipelineState shows while the action waits (a lowercase UUID). */
  token: z
    .string()
    // The API model's ApprovalToken: a token the service itself would refuse is no world to replay.
    .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, {
      error: 'a lowercase UUID (8-4-4-4-12 hex digits)',
    })
    .optional(),
  customData: z.string().max(2000).optional(),
  variables: z.record(z.string(), z.string()).optional(),
  executionMode: z.enum(['SUPERSEDED', 'QUEUED', 'PARALLEL']).default('SUPERSEDED'),
});
export type ScenarioApproval = z.output<typeof Approval>;

const Image = z.strictObject({
  repository,
  digest,
  tags: z.array(z.string()).default([]),
  /** The manifest's media type, as DescribeImages gives it: an OCI image manifest unless said. */
  mediaType: z.string().min(1).default('application/vnd.oci.image.manifest.v1+json'),
});

const FindingsSource = z.union([
  z.strictObject({ file: z.string().min(1) }),
  z.strictObject({ findings: z.array(z.unknown()) }),
]);

/**
 * The statuses a scanner can report: the Inspector event's, ECR's scan statuses and Inspector's coverage
 * reasons, as the SDKs' API models list them (test/scan-statuses.test.ts pins how the gate reads each). A
 * status outside them is a typo the gate would read as "still scanning", silently.
 */
export const SCAN_STATUSES = [
  ...new Set(['INITIAL_SCAN_COMPLETE', ...Object.values(EcrScanStatus), ...Object.values(ScanStatusReason)]),
].sort();

const Scan = z.strictObject({
  digest,
  repository,
  /** `INITIAL_SCAN_COMPLETE` (Inspector), `COMPLETE` / `FAILED` / `UNSUPPORTED_IMAGE` (ECR basic), … */
  status: z.enum(SCAN_STATUSES as [string, ...string[]]),
  /** The severity counts the scan event reports; leave out severities as real events do. */
  counts: z.record(z.string(), z.number().int().min(0)).optional(),
  /** false: the scan finishes, but its event is lost (only coverage and the sweep can tell). */
  event: z.boolean().default(true),
});

const Key = z.strictObject({ pipeline: name, stage: name, action: name, executionId });

/**
 * The operations a `fail` step can fail: those the world answers (World.dispatch) and the store's DynamoDB
 * calls (adapters/dynamodb/store.ts). Any other name would match no call and fail nothing.
 */
export const FAILABLE_OPERATIONS = [
  'DescribeImageScanFindings',
  'DescribeImages',
  'GetItem',
  'GetPipelineExecution',
  'GetPipelineState',
  'ListActionExecutions',
  'ListCoverage',
  'ListFindings',
  'ListPipelineExecutions',
  'ListPipelines',
  'Publish',
  'PutApprovalResult',
  'PutEvents',
  'PutItem',
  'Query',
  'TransactWriteItems',
] as const;

const Failure = z.strictObject({
  /** An SDK operation: `ListFindings`, `GetPipelineState`, `PutApprovalResult`, `Publish`, … */
  operation: z.enum(FAILABLE_OPERATIONS),
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
    // `sweep: false` passed as a step's one thing and did nothing: a step that reads as meant and is not.
    sweep: z.literal(true).optional(),
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

const EXPECTED_FIELDS = ['state', 'outcome', 'notifications', 'approvalResult', 'reviewer'] as const;

const Expectation = z
  .strictObject({
    executionId: z.string(),
    stage: name.optional(),
    action: name.optional(),
    /** `null`: no gate is in the store for it (the approval was never seen); any other: the gate is there. */
    state: z.enum(['WAITING', 'DECIDED', 'ACTED', 'CLOSED', 'STALE']).nullable().optional(),
    outcome: z.enum(['APPROVE', 'REJECT', 'ESCALATE']).nullable().optional(),
    notifications: z.int().min(0).optional(),
    approvalResult: z.enum(['Approved', 'Rejected']).nullable().optional(),
    /** Part of the reviewer's identity; the empty text is part of every identity, so it would test nothing. */
    reviewer: z.string().min(1).optional(),
  })
  .refine((x) => EXPECTED_FIELDS.some((k) => x[k] !== undefined), {
    // With the key alone, the expectation held for any gate, or for none.
    error: `at least one of ${EXPECTED_FIELDS.join(', ')} beside the gate's key`,
  });
export type ScenarioExpectation = z.output<typeof Expectation>;

export const ScenarioSchema = z
  .strictObject({
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
        findings: z
          .record(digest, FindingsSource, {
            error: (issue) =>
              issue.code === 'invalid_key' ? 'an image digest sha256:<64 hex digits> as the key' : undefined,
          })
          .default({}),
        scans: z.array(Scan.omit({ event: true })).default([]),
      })
      .default({ approvals: [], images: [], findings: {}, scans: [] }),
    steps: z.array(Step).min(1),
    /** What the replay must end with; `tollgate simulate` exits 4 when it does not. */
    expect: z.array(Expectation).default([]),
  })
  .superRefine(checkSteps);
export type Scenario = z.output<typeof ScenarioSchema>;

type ApprovalRef = Pick<ScenarioApproval, 'pipeline' | 'stage' | 'action'>;

function actionName(a: ApprovalRef): string {
  return `${a.pipeline}/${a.stage}/${a.action}`;
}

/**
 * What the schema alone cannot say: the steps' times run forwards, each approval action is in
 * `world.approvals` once, and a step names an approval (and an execution of it) the world has by then. The
 * world would otherwise throw mid-replay, and the user read an "internal error" for a typo.
 */
function checkSteps(
  s: { world: { approvals: readonly ScenarioApproval[] }; steps: readonly ScenarioStep[] },
  ctx: z.RefinementCtx,
): void {
  const issue = (path: (string | number)[], message: string): void => {
    ctx.addIssue({ code: 'custom', path, message, input: undefined });
  };
  const known: { ref: ApprovalRef; where: string; executions: string[] }[] = [];
  const find = (ref: ApprovalRef) => known.find((k) => actionName(k.ref) === actionName(ref));
  s.world.approvals.forEach((a, i) => {
    const had = find(a);
    if (had) {
      issue(
        ['world', 'approvals', i, 'action'],
        `an approval action no other approval is (${had.where} is ${actionName(a)} too; a newer execution of it is a supersede step)`,
      );
    } else known.push({ ref: a, where: `world.approvals[${i}]`, executions: [a.executionId] });
  });
  let previous: { index: number; ms: number; at: string | number } | undefined;
  s.steps.forEach((step, i) => {
    const ms = offsetMs(step.at);
    if (ms !== undefined && step.at !== undefined) {
      if (previous && ms < previous.ms) {
        issue(
          ['steps', i, 'at'],
          `an offset no earlier than the previous step's (steps[${previous.index}].at is ${JSON.stringify(previous.at)}): steps run in order`,
        );
      }
      previous = { index: i, ms, at: step.at };
    }
    if (step.supersede) {
      const had = find(step.supersede);
      if (had) had.executions.push(step.supersede.executionId);
      else
        known.push({
          ref: step.supersede,
          where: `steps[${i}].supersede`,
          executions: [step.supersede.executionId],
        });
      return;
    }
    const [kind, ref] = step.approvalStarted
      ? (['approvalStarted', step.approvalStarted] as const)
      : step.approvalEnded
        ? (['approvalEnded', step.approvalEnded] as const)
        : step.review
          ? (['review', step.review] as const)
          : [undefined, undefined];
    if (!kind) return;
    const had = find(ref);
    if (!had) {
      const field = !known.some((k) => k.ref.pipeline === ref.pipeline)
        ? 'pipeline'
        : !known.some((k) => k.ref.pipeline === ref.pipeline && k.ref.stage === ref.stage)
          ? 'stage'
          : 'action';
      const names = known.map((k) => actionName(k.ref));
      issue(
        ['steps', i, kind, field],
        `an approval action the world has by this step (world.approvals, or an earlier supersede): ${names.length ? names.slice(0, 5).join(', ') + (names.length > 5 ? ', …' : '') : 'none'}`,
      );
      return;
    }
    if (kind === 'approvalStarted' && ref.executionId !== had.executions.at(-1)) {
      issue(
        ['steps', i, kind, 'executionId'],
        `the execution ${actionName(ref)} runs at this step (${had.executions.at(-1)}; a newer one is a supersede step before it)`,
      );
    }
    if (kind === 'approvalEnded' && !had.executions.includes(ref.executionId)) {
      issue(
        ['steps', i, kind, 'executionId'],
        `an execution of ${actionName(ref)} the world has (${had.executions.join(', ')})`,
      );
    }
  });
}

/**
 * The gates a scenario can make (every approval it has, at any step, and the action events it sends as they
 * are), by gate id, each with where the scenario names it.
 */
export function scenarioGateKeys(scenario: Scenario): Map<string, string> {
  const keys = new Map<string, string>();
  const add = (key: GateKey | undefined, where: string): void => {
    if (key && !keys.has(gateId(key))) keys.set(gateId(key), where);
  };
  // The simulated pipeline runs each execution's stage once: attempt 1, as its events say.
  const keyOf = (a: ScenarioApproval): GateKey => ({
    pipeline: a.pipeline,
    executionId: a.executionId,
    stage: a.stage,
    action: a.action,
  });
  scenario.world.approvals.forEach((a, i) => {
    add(keyOf(a), `world.approvals[${i}]`);
  });
  scenario.steps.forEach((step, i) => {
    if (step.supersede) add(keyOf(step.supersede), `steps[${i}].supersede`);
    const detail = step.event?.detail;
    if (step.event?.['detail-type'] === 'CodePipeline Action Execution State Change' && isRecord(detail)) {
      add(
        gateKeyFromFields(
          detail.pipeline,
          detail['execution-id'],
          detail.stage,
          detail.action,
          detail['pipeline-execution-attempt'],
        ),
        `steps[${i}].event`,
      );
    }
  });
  return keys;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The image digests a findings document names: each Inspector finding's image, an ECR answer's image. */
function digestsNamed(doc: unknown): string[] {
  const named: string[] = [];
  const ecr = isRecord(doc) && isRecord(doc.imageScanFindings) ? doc.imageScanFindings : undefined;
  const list: unknown[] = Array.isArray(doc)
    ? doc
    : isRecord(doc) && Array.isArray(doc.findings)
      ? doc.findings
      : ecr && Array.isArray(ecr.enhancedFindings)
        ? ecr.enhancedFindings
        : [];
  for (const f of list) {
    const resources = isRecord(f) ? f.resources : undefined;
    const first: unknown = Array.isArray(resources) ? resources[0] : undefined;
    const details = isRecord(first) ? first.details : undefined;
    const image = isRecord(details) ? details.awsEcrContainerImage : undefined;
    if (isRecord(image) && typeof image.imageHash === 'string') named.push(image.imageHash);
  }
  const imageId = isRecord(doc) ? doc.imageId : undefined;
  if (isRecord(imageId) && typeof imageId.imageDigest === 'string') named.push(imageId.imageDigest);
  return named;
}

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
  // The scanner lists findings by each one's own image: a document about another image, stored under this
  // digest, would read as no findings at all, and the gate approve on an empty read.
  const foreign: InputProblem[] = [];
  const ofImage = (d: string, doc: unknown, where: string, source: string): void => {
    const other = digestsNamed(doc).find((n) => n !== d);
    if (other === undefined) return;
    foreign.push({
      file,
      path: where,
      expected: `findings of the image ${d} (the digest they are stored under)`,
      got: `${source} naming the image ${other}`,
    });
  };
  for (const [d, source] of Object.entries(value.world.findings)) {
    if ('file' in source) {
      ofImage(d, readFindings(source.file, `world.findings.${d}.file`), `world.findings.${d}`, source.file);
    } else ofImage(d, source.findings, `world.findings.${d}`, 'findings');
  }
  value.steps.forEach((s, i) => {
    if (!s.findings) return;
    const doc =
      'file' in s.findings ? readFindings(s.findings.file, `steps[${i}].findings.file`) : s.findings.findings;
    ofImage(
      s.findings.digest,
      doc,
      `steps[${i}].findings`,
      'file' in s.findings ? s.findings.file : 'findings',
    );
  });
  if (foreign.length > 0) throw new InputError(foreign);
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
