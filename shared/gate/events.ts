import * as z from 'zod/mini';
import { causeRank, causesFirst, isImplicitRule } from '../decision/causes.js';
import { SEVERITIES } from '../findings/finding.js';
import { largestFitting } from './bounds.js';
import { DETAIL_LIMIT, type Gate, type GateState, type StoredDecision } from './model.js';
import { EVENT_ENTRY_MAX_BYTES, type TollgateEvent, type TollgateEventType } from './ports.js';

/*
 * The events Tollgate publishes on the default bus (`source: tollgate`, set by the adapter). Their details
 * are a contract for other teams' rules and consumers: fields may be added, never renamed. Details carry
 * ids, counts and the summary, never the approval token or its hash (a token lets anyone holding
 * `PutApprovalResult` decide the approval), and never whole findings (an event is at most 256 KB).
 *
 * The schemas check keys and types, not value ranges: the builders run on the gate's decision path, where
 * an odd but harmless value (a negative latency from clock skew) must not cost the event.
 */

const OUTCOMES = ['APPROVE', 'REJECT', 'ESCALATE'] as const;
const GATE_STATES = [
  'WAITING',
  'DECIDED',
  'ACTED',
  'CLOSED',
  'STALE',
] as const satisfies readonly GateState[];

const text = z.string();
const count = z.int();
const nullableText = z.nullable(text);
/** Schema metadata (the JSON Schema's description), as zod/mini attaches it. */
const described = (description: string) => z.meta({ description });

/** The gate's key, flat at the top of every detail so that a rule can match `detail.pipeline` directly. */
const gateKeyFields = {
  pipeline: text.check(described('The pipeline name.')),
  executionId: text.check(described('The pipeline execution id.')),
  stage: text.check(described('The stage of the Manual approval action.')),
  action: text.check(described('The Manual approval action.')),
  attempt: z
    .int()
    .check(
      z.minimum(1),
      described(
        "The execution's attempt: 1, or more for the approval of a retried stage (a gate of its own); for a gate the sweep found (its STARTED event lost), the approval's run in the execution, which can be lower.",
      ),
    ),
};

const EventImage = z
  .strictObject({
    repository: text,
    digest: text,
    tags: z.array(text),
    registryId: nullableText,
  })
  .check(described('The image the gate judges.'));

const EventViolation = z.strictObject({
  rule: text.check(described('A rule id of the policy, or an implicit id (scan-timeout, error, …).')),
  action: z.enum(['reject', 'escalate', 'warn']),
  count: count.check(described('Matching findings.')),
  allow: count,
  vulnerabilityIds: z
    .array(text)
    .check(
      described(`Distinct vulnerability ids of the matching findings, sorted; at most ${DETAIL_LIMIT}.`),
    ),
  moreVulnerabilityIds: count.check(described('Distinct vulnerability ids left out of the list.')),
});

export const DecisionEventDetail = z
  .strictObject({
    version: z.literal('1'),
    ...gateKeyFields,
    outcome: z.enum(OUTCOMES),
    mode: z.enum(['enforce', 'advisory']),
    wouldBe: z.nullable(z.enum(OUTCOMES)).check(described('Advisory mode: what enforce mode would decide.')),
    summary: text.check(described('The approval summary (at most 512 characters).')),
    policy: z.strictObject({ name: text, sha256: text }),
    image: z.nullable(EventImage),
    counts: z.strictObject(
      Object.fromEntries(SEVERITIES.map((s) => [s, count])) as Record<
        (typeof SEVERITIES)[number],
        typeof count
      >,
    ),
    violations: z.array(EventViolation),
    warnings: z.array(EventViolation),
    exceptions: z.strictObject({
      applied: z.array(text),
      expiringSoon: z.array(text),
      expired: z.array(text),
      revoked: z.array(text),
    }),
    omitted: z
      .nullable(
        z.strictObject({
          violations: count,
          warnings: count,
          exceptions: count.check(described('Exception ids left out of the four lists together.')),
        }),
      )
      .check(
        described(
          "Null when the detail is whole. Otherwise what was left out to keep the event within EventBridge's 256 KB (the decision record keeps it all): first the vulnerability ids (counted in moreVulnerabilityIds), then warnings, exception ids, and last violations: those that did not set the outcome first, then, if those alone do not fit, the outcome's own from the last in rule order (an implicit one, such as scan-incomplete, is kept before any rule).",
        ),
      ),
    trigger: text.check(
      described(
        'What made the gate decide: scan-finished, approval-started, sweep, or sweep (approval found) when its STARTED event never came; a redelivered or raced STARTED event adds a note in parentheses (approval-started (again)).',
      ),
    ),
    decidedAt: text,
    latencyMs: z.number().check(described("From the approval's start to the decision.")),
  })
  .check(z.meta({ title: 'Tollgate Decision', description: 'Tollgate decided a gate (once per gate).' }));
export type DecisionEventDetail = z.infer<typeof DecisionEventDetail>;

export const GateStateEventDetail = z
  .strictObject({
    version: z.literal('1'),
    ...gateKeyFields,
    state: z.enum(GATE_STATES),
    previousState: z.nullable(z.enum(GATE_STATES)).check(described('Null when the gate was just created.')),
    gateVersion: count.check(described("The gate's version: orders the changes of one gate.")),
    outcome: z.nullable(z.enum(OUTCOMES)),
    image: z.nullable(EventImage),
    imageProblem: nullableText.check(described('Why no image could be identified.')),
    staleReason: nullableText,
    approvalStatus: z
      .nullable(z.enum(['Approved', 'Rejected']))
      .check(described('The result Tollgate sent to CodePipeline, if any.')),
    notifications: count.check(
      described(
        'Escalation Publish calls SNS accepted (an attempt whose answer was lost may have been delivered too).',
      ),
    ),
    startedAt: text,
    deadline: text.check(described('When the wait for a completed scan runs out.')),
    at: text.check(described('When the gate changed.')),
  })
  .check(z.meta({ title: 'Tollgate Gate State Change', description: 'A gate changed state.' }));
export type GateStateEventDetail = z.infer<typeof GateStateEventDetail>;

export const GateClosedEventDetail = z
  .strictObject({
    version: z.literal('1'),
    ...gateKeyFields,
    state: z.enum(GATE_STATES).check(described('CLOSED, or STALE when the gate had given up on it.')),
    gateVersion: count.check(
      described(
        "The gate's version: a later Gate Closed of one gate (the reviewer recorded after the end) has a higher one.",
      ),
    ),
    closure: z
      .nullable(
        z.strictObject({
          state: z.enum(['SUCCEEDED', 'FAILED', 'ABANDONED', 'CANCELED']),
          at: text,
        }),
      )
      .check(described('How the approval action ended.')),
    reviewer: z
      .nullable(
        z.strictObject({
          identity: text.check(
            described(
              'The CloudTrail userIdentity ARN (or principal id); for an IAM Identity Center user identitycenter:<identity store ARN>/<user id>, for an AWS service service:<invokedBy>.',
            ),
          ),
          type: nullableText,
          sourceIdentity: nullableText.check(
            described(
              "The role session's source identity (CloudTrail sessionContext.sourceIdentity), the person behind a shared role, when it has one.",
            ),
          ),
          source: z
            .enum(['cloudtrail', 'listing'])
            .check(
              described(
                "cloudtrail: CloudTrail's record of the PutApprovalResult call; listing: the action's updatedBy in ListActionExecutions, read by the sweep because CloudTrail's record never came (no type nor source identity then; a later Gate Closed carries CloudTrail's record if it comes).",
              ),
            ),
          status: nullableText.check(described('Approved or Rejected, as the reviewer sent it.')),
          summary: nullableText,
          at: text,
          tollgate: z.boolean().check(described("True when the result was Tollgate's own.")),
        }),
      )
      .check(described('Who resolved the approval, when CloudTrail told.')),
    outcome: z.nullable(z.enum(OUTCOMES)).check(described("Tollgate's decision, if it made one.")),
    approvalResult: z
      .nullable(z.strictObject({ status: z.enum(['Approved', 'Rejected']), summary: text }))
      .check(described('The result Tollgate sent, if any.')),
    image: z.nullable(EventImage),
    startedAt: text,
    durationMs: z.nullable(z.number()).check(described("From the approval's start to its end.")),
  })
  .check(z.meta({ title: 'Tollgate Gate Closed', description: 'An approval gated by Tollgate ended.' }));
export type GateClosedEventDetail = z.infer<typeof GateClosedEventDetail>;

export const EVENT_DETAIL_SCHEMAS = {
  'Tollgate Decision': DecisionEventDetail,
  'Tollgate Gate State Change': GateStateEventDetail,
  'Tollgate Gate Closed': GateClosedEventDetail,
} as const satisfies Record<TollgateEventType, z.ZodMiniType>;

/**
 * Room for a detail in one PutEvents entry (`EVENT_ENTRY_MAX_BYTES` counts the source, the detail type and
 * the resources with it): 1 KiB is more than those take (one pipeline ARN).
 */
export const EVENT_DETAIL_BUDGET = EVENT_ENTRY_MAX_BYTES - 1024;

const jsonBytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value), 'utf8');

export function decisionEvent(
  gate: Gate,
  decision: StoredDecision,
  region: string,
  account: string | undefined,
  budget = EVENT_DETAIL_BUDGET,
): TollgateEvent {
  const { record } = decision;
  const violation = (v: (typeof record.violations)[number]): EventViolation => ({
    rule: v.rule,
    action: v.action,
    count: v.count,
    allow: v.allow,
    vulnerabilityIds: v.findings.slice(0, DETAIL_LIMIT),
    moreVulnerabilityIds: Math.max(0, v.findings.length - DETAIL_LIMIT) + (v.findingsOmitted ?? 0),
  });
  const { applied, expiringSoon, expired, revoked } = record.exceptions;
  const whole = DecisionEventDetail.parse({
    version: '1',
    ...keyFields(decision.key),
    outcome: record.outcome,
    mode: record.mode,
    wouldBe: record.wouldBe ?? null,
    summary: record.summary,
    policy: { name: record.policy.name, sha256: record.policy.sha256 },
    image: eventImage(decision.image ?? gate.image),
    counts: { ...record.counts },
    violations: record.violations.map(violation),
    warnings: record.warnings.map(violation),
    exceptions: {
      applied: [...applied],
      expiringSoon: [...expiringSoon],
      expired: [...expired],
      revoked: [...revoked],
    },
    omitted: null,
    trigger: decision.trigger,
    decidedAt: decision.decidedAt,
    latencyMs: decision.latencyMs,
  } satisfies DecisionEventDetail);
  return event('Tollgate Decision', gate, region, account, boundedDecisionDetail(whole, budget));
}

type EventViolation = DecisionEventDetail['violations'][number];

/**
 * The detail within `budget` bytes of JSON. A decision's event must not be lost to its size: the decision
 * itself can be stored up to DynamoDB's 400 KB (a policy of thousands of rules, all violated), and a refused
 * entry is refused on every try. What explains the decision gives way, least telling first; the outcome,
 * counts, summary and the violations that set the outcome (ordered as the summary orders them) stay.
 * A detail that cannot be brought under (a huge image tag list) is returned as cut as it gets: the adapter
 * refuses it by name (EntryTooLarge).
 */
export function boundedDecisionDetail(
  detail: DecisionEventDetail,
  budget = EVENT_DETAIL_BUDGET,
): DecisionEventDetail {
  if (jsonBytes(detail) <= budget) return detail;
  const fits = (d: DecisionEventDetail): boolean => jsonBytes(d) <= budget;
  const idsOut = (list: readonly EventViolation[]): EventViolation[] =>
    list.map((v) => ({
      ...v,
      vulnerabilityIds: [],
      moreVulnerabilityIds: v.moreVulnerabilityIds + v.vulnerabilityIds.length,
    }));
  // Counted on top of what an earlier cut left out, so that a detail cut twice still says all it lost.
  const before = detail.omitted ?? { violations: 0, warnings: 0, exceptions: 0 };
  const omitting = (
    d: DecisionEventDetail,
    more: Partial<NonNullable<DecisionEventDetail['omitted']>>,
  ): DecisionEventDetail => ({
    ...d,
    omitted: {
      violations: before.violations + (more.violations ?? 0),
      warnings: before.warnings + (more.warnings ?? 0),
      exceptions: before.exceptions + (more.exceptions ?? 0),
    },
  });

  let cut = omitting({ ...detail, warnings: idsOut(detail.warnings) }, {});
  if (fits(cut)) return cut;
  cut = omitting({ ...cut, violations: idsOut(cut.violations) }, {});
  if (fits(cut)) return cut;

  const { warnings } = cut;
  const withWarnings = (n: number): DecisionEventDetail =>
    omitting({ ...cut, warnings: warnings.slice(0, n) }, { warnings: warnings.length - n });
  const keptWarnings = largestFitting(warnings.length, (n) => fits(withWarnings(n)));
  if (keptWarnings !== undefined) return withWarnings(keptWarnings);
  cut = withWarnings(0);

  const lists = cut.exceptions;
  const cutWarnings = warnings.length;
  const withExceptions = (n: number): DecisionEventDetail =>
    omitting(
      {
        ...cut,
        exceptions: {
          applied: lists.applied.slice(0, n),
          expiringSoon: lists.expiringSoon.slice(0, n),
          expired: lists.expired.slice(0, n),
          revoked: lists.revoked.slice(0, n),
        },
      },
      {
        warnings: cutWarnings,
        exceptions: Object.values(lists).reduce((sum, l) => sum + Math.max(0, l.length - n), 0),
      },
    );
  const longest = Math.max(...Object.values(lists).map((l) => l.length));
  const keptExceptions = largestFitting(longest, (n) => fits(withExceptions(n)));
  if (keptExceptions !== undefined) return withExceptions(keptExceptions);
  cut = withExceptions(0);

  // Kept by rank (the causes of the outcome first, and of those an implicit one first: a scan that could not
  // be read or an error is the cause a subscriber must see), sent in the record's order.
  const cutExceptions = Object.values(lists).reduce((sum, l) => sum + l.length, 0);
  const implicitCause = (v: EventViolation) =>
    isImplicitRule(v.rule) && causeRank(v, cut.outcome, cut.wouldBe) === 0 ? 0 : 1;
  const ranked = causesFirst(cut.violations, cut.outcome, cut.wouldBe).sort(
    (a, b) => implicitCause(a) - implicitCause(b),
  );
  const withViolations = (n: number): DecisionEventDetail => {
    const kept = new Set(ranked.slice(0, n));
    return omitting(
      { ...cut, violations: cut.violations.filter((v) => kept.has(v)) },
      { warnings: cutWarnings, exceptions: cutExceptions, violations: cut.violations.length - kept.size },
    );
  };
  return withViolations(largestFitting(cut.violations.length, (n) => fits(withViolations(n))) ?? 0);
}

export function gateStateEvent(
  gate: Gate,
  previousState: GateState | undefined,
  region: string,
  account: string | undefined,
): TollgateEvent {
  const detail = GateStateEventDetail.parse({
    version: '1',
    ...keyFields(gate.key),
    state: gate.state,
    previousState: previousState ?? null,
    gateVersion: gate.version,
    outcome: gate.outcome ?? null,
    image: eventImage(gate.image),
    imageProblem: gate.imageProblem ?? null,
    staleReason: gate.staleReason ?? null,
    approvalStatus: gate.approvalResult?.status ?? null,
    notifications: gate.notifications,
    startedAt: gate.startedAt,
    deadline: gate.deadline,
    at: gate.updatedAt,
  } satisfies GateStateEventDetail);
  return event('Tollgate Gate State Change', gate, region, account, detail);
}

export function gateClosedEvent(gate: Gate, region: string, account: string | undefined): TollgateEvent {
  const { closure, reviewer } = gate;
  // Never seen to start, the gate's start is its end's time: the wait is unknown, not zero.
  const durationMs =
    closure === undefined || gate.startUnseen ? NaN : Date.parse(closure.at) - Date.parse(gate.startedAt);
  const detail = GateClosedEventDetail.parse({
    version: '1',
    ...keyFields(gate.key),
    state: gate.state,
    gateVersion: gate.version,
    closure: closure === undefined ? null : { state: closure.state, at: closure.at },
    reviewer:
      reviewer === undefined
        ? null
        : {
            identity: reviewer.identity,
            type: reviewer.type ?? null,
            sourceIdentity: reviewer.sourceIdentity ?? null,
            source: reviewer.source ?? 'cloudtrail',
            status: reviewer.status ?? null,
            summary: reviewer.summary ?? null,
            at: reviewer.at,
            tollgate: reviewer.tollgate,
          },
    outcome: gate.outcome ?? null,
    approvalResult:
      gate.approvalResult === undefined
        ? null
        : { status: gate.approvalResult.status, summary: gate.approvalResult.summary },
    image: eventImage(gate.image),
    startedAt: gate.startedAt,
    durationMs: Number.isFinite(durationMs) ? durationMs : null,
  } satisfies GateClosedEventDetail);
  return event('Tollgate Gate Closed', gate, region, account, detail);
}

/** The pipeline's ARN, in the region's partition. */
export function pipelineArn(pipeline: string, region: string, account: string): string {
  return `arn:${partitionOf(region)}:codepipeline:${region}:${account}:${pipeline}`;
}

/** The ARN partition of a region (the one place that knows them: events here, resource ids in the adapters). */
export function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  if (region.startsWith('us-isob-')) return 'aws-iso-b';
  if (region.startsWith('us-iso-')) return 'aws-iso';
  if (region.startsWith('eusc-')) return 'aws-eusc';
  return 'aws';
}

function event(
  detailType: TollgateEventType,
  gate: Gate,
  region: string,
  account: string | undefined,
  detail: Readonly<Record<string, unknown>>,
): TollgateEvent {
  const owner = account === undefined || account === '' ? undefined : account;
  return {
    detailType,
    resources: owner === undefined ? [] : [pipelineArn(gate.key.pipeline, region, owner)],
    detail,
  };
}

function keyFields(
  key: Gate['key'],
): Pick<DecisionEventDetail, 'pipeline' | 'executionId' | 'stage' | 'action' | 'attempt'> {
  return {
    pipeline: key.pipeline,
    executionId: key.executionId,
    stage: key.stage,
    action: key.action,
    attempt: key.attempt ?? 1,
  };
}

function eventImage(image: Gate['image']): DecisionEventDetail['image'] {
  if (image === undefined) return null;
  return {
    repository: image.repository,
    digest: image.digest,
    tags: [...image.tags],
    registryId: image.registryId ?? null,
  };
}

/** Where the JSON Schema of each detail is committed (`npm run schema:events` regenerates them). */
export function eventSchemaFile(detailType: TollgateEventType): string {
  return `schema/events/${detailType.toLowerCase().replace(/\s+/g, '-')}.schema.json`;
}

/**
 * The detail's JSON Schema, generated from the zod schema the builders parse through, open to fields it does
 * not list: a version may gain fields (docs/events.md), and a subscriber validating against the schema of
 * today must not refuse tomorrow's events of the same version. The builders themselves stay strict (they
 * parse through the closed zod schemas), so what Tollgate sends is exactly what is listed.
 */
export function eventJsonSchemaText(detailType: TollgateEventType): string {
  const schema = z.toJSONSchema(EVENT_DETAIL_SCHEMAS[detailType], {
    target: 'draft-2020-12',
    io: 'output',
  }) as Record<string, unknown>;
  const id = `urn:tollgate:schema:event:${detailType.toLowerCase().replace(/\s+/g, '-')}:1`;
  return `${JSON.stringify({ ...(open(schema) as Record<string, unknown>), $id: id }, null, 2)}\n`;
}

/** The schema without `additionalProperties: false` anywhere in it. */
function open(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(open);
  if (typeof node !== 'object' || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !(key === 'additionalProperties' && value === false))
      .map(([key, value]) => [key, open(value)]),
  );
}
