import * as z from 'zod';
import { FINDING_STATUSES, FIX_AVAILABILITIES, SEVERITIES } from '../findings/finding.js';

/** Violations the evaluator makes itself; no rule may take these ids. */
export const IMPLICIT_RULE_IDS = ['unknown-severity', 'scan-incomplete', 'scan-timeout', 'error'] as const;
export type ImplicitRuleId = (typeof IMPLICIT_RULE_IDS)[number];

const severity = z.enum(SEVERITIES);
const globList = (what: string) =>
  z
    .array(z.string().min(1, { error: 'a non-empty glob' }), { error: `a list of ${what} globs` })
    .min(1, { error: `at least one ${what} glob` });

const severityList = z
  .array(severity, { error: 'a list of severities' })
  .min(1, { error: 'at least one severity' });
const fixList = z
  .array(z.enum(FIX_AVAILABILITIES), { error: 'a list of YES, NO, PARTIAL' })
  .min(1, { error: 'at least one of YES, NO, PARTIAL' });
const score = z.number({ error: 'a score from 0 to 10' }).min(0).max(10);
const probability = z.number({ error: 'an EPSS probability from 0 to 1' }).min(0).max(1);

export const RuleConditionsSchema = z
  .strictObject({
    severity: severityList.optional().meta({ description: 'The finding severity is one of these.' }),
    minScore: score.optional().meta({
      description: 'Inspector score (else highest CVSS base score) >= this; no score never matches.',
    }),
    fixAvailable: fixList
      .optional()
      .meta({ description: 'Fix availability is one of these; unknown never matches.' }),
    exploitAvailable: z
      .boolean({ error: 'true or false' })
      .optional()
      .meta({ description: 'Exploit availability equals this; unknown never matches.' }),
    minEpss: probability.optional().meta({ description: 'EPSS score >= this; no EPSS never matches.' }),
    olderThanDays: z.int({ error: 'a whole number of days' }).min(0).optional().meta({
      description: 'First observed more than this many days before the evaluation (a grace period).',
    }),
    vulnerabilityIds: globList('vulnerability id').optional().meta({
      description: 'Vulnerability id (CVE-…, GHSA-…, ALAS-…) matches one of these; * is a wildcard.',
    }),
    packages: globList('package name')
      .optional()
      .meta({ description: 'One of the vulnerable packages matches one of these globs.' }),
    repositories: globList('repository')
      .optional()
      .meta({ description: "The image's repository (bare name) matches one of these globs." }),
    pipelines: globList('pipeline').optional().meta({
      description: "The pipeline's name matches one of these globs; no known pipeline never matches.",
    }),
  })
  .meta({ description: 'All conditions must hold (AND); within a list any value may match (OR).' });

export const RevokeConditionsSchema = z
  .strictObject({
    exploitAvailable: z.boolean({ error: 'true or false' }).optional(),
    minEpss: probability.optional(),
    minScore: score.optional(),
    fixAvailable: fixList.optional(),
    severity: severityList.optional(),
  })
  .meta({ description: 'The exception stops covering a finding as soon as ANY of these holds for it.' });

const ruleId = z
  .string({ error: 'a rule id' })
  .regex(/^[a-z0-9-]{1,64}$/, { error: 'a rule id of 1-64 characters a-z, 0-9 and -' })
  .refine((id) => !(IMPLICIT_RULE_IDS as readonly string[]).includes(id), {
    error: `a rule id other than the implicit ones (${IMPLICIT_RULE_IDS.join(', ')})`,
  });

export const RuleSchema = z.strictObject({
  id: ruleId,
  description: z.string({ error: 'a text' }).max(500).optional(),
  action: z.enum(['reject', 'escalate', 'warn']),
  allow: z
    .int({ error: 'a whole number of tolerated findings' })
    .min(0)
    .default(0)
    .meta({ description: 'The rule is violated when more than this many findings match.' }),
  when: RuleConditionsSchema.default({}),
});

// `2027-01-31` (the end of that day, UTC) or a timestamp with a zone: an expiry is never a guess.
const EXPIRY = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

export const ExceptionSchema = z.strictObject({
  id: z.string({ error: 'an exception id' }).min(1, { error: 'a non-empty exception id' }).max(128),
  vulnerabilityId: z
    .string({ error: 'a vulnerability id or glob' })
    .min(1, { error: 'a non-empty vulnerability id or glob' }),
  packages: globList('package name')
    .optional()
    .meta({ description: 'Covers a finding only if every vulnerable package of it matches one of these.' }),
  repositories: globList('repository').optional(),
  pipelines: globList('pipeline').optional(),
  expires: z
    .string({ error: 'a date (2027-01-31) or an ISO-8601 timestamp with a zone' })
    .regex(EXPIRY, { error: 'a date (2027-01-31) or an ISO-8601 timestamp with a zone' })
    .refine(isCalendarDate, { error: 'a real calendar date' })
    .meta({
      description:
        'A date (the end of that day, UTC) or an ISO-8601 timestamp; there are no permanent exceptions.',
    }),
  reason: z.string({ error: 'a reason' }).trim().min(1, { error: 'a non-empty reason' }),
  approvedBy: z
    .string({ error: 'the name or address of who approved the exception' })
    .trim()
    .min(1, { error: 'a non-empty approvedBy' }),
  revokeIf: RevokeConditionsSchema.optional(),
});

const outcomeChoice = z.enum(['escalate', 'reject']);

export const SettingsSchema = z.strictObject({
  statuses: z
    .array(z.enum(FINDING_STATUSES), { error: 'a list of ACTIVE, SUPPRESSED, CLOSED' })
    .min(1, { error: 'at least one finding status' })
    .default(['ACTIVE'])
    .meta({ description: 'Finding statuses that count; the others are listed as ignored.' }),
  unknownSeverity: z
    .enum(['escalate', 'reject', 'ignore'])
    .default('escalate')
    .meta({ description: 'What a counted finding with severity UNTRIAGED or an unrecognised value does.' }),
  expiringSoonDays: z.int({ error: 'a whole number of days' }).min(0).max(3650).default(14),
  scan: z
    .strictObject({
      waitMinutes: z.int({ error: 'a whole number of minutes' }).min(1).max(10080).default(30),
      onTimeout: outcomeChoice.default('escalate'),
      onUnsupported: outcomeChoice.default('escalate'),
    })
    .default({ waitMinutes: 30, onTimeout: 'escalate', onUnsupported: 'escalate' }),
  onError: outcomeChoice.default('escalate').meta({ description: 'approve is not a choice: fail closed.' }),
});

export const PolicySchema = z
  .strictObject({
    version: z.literal(1, { error: 'the policy language version 1' }),
    name: z
      .string({ error: 'a policy name' })
      .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'a policy name of 1-64 characters A-Za-z, 0-9, ., _ and -' }),
    mode: z.enum(['enforce', 'advisory']).default('enforce'),
    settings: SettingsSchema.default(SettingsSchema.parse({})),
    rules: z.array(RuleSchema, { error: 'a list of rules' }).default([]),
    exceptions: z.array(ExceptionSchema, { error: 'a list of exceptions' }).default([]),
  })
  .superRefine((policy, ctx) => {
    const seen = new Set<string>();
    policy.rules.forEach((rule, i) => {
      if (seen.has(rule.id)) {
        ctx.addIssue({
          code: 'custom',
          path: ['rules', i, 'id'],
          message: 'a rule id not used by an earlier rule',
        });
      }
      seen.add(rule.id);
    });
    const seenExc = new Set<string>();
    policy.exceptions.forEach((exc, i) => {
      if (seenExc.has(exc.id)) {
        ctx.addIssue({
          code: 'custom',
          path: ['exceptions', i, 'id'],
          message: 'an exception id not used by an earlier exception',
        });
      }
      seenExc.add(exc.id);
    });
  })
  .meta({
    title: 'Tollgate policy',
    description:
      'Which vulnerability findings of a container image reject, escalate or warn (policy language v1).',
  });

export type Policy = z.output<typeof PolicySchema>;
export type Rule = Policy['rules'][number];
export type RuleConditions = Rule['when'];
export type PolicyException = Policy['exceptions'][number];
export type RevokeConditions = NonNullable<PolicyException['revokeIf']>;
export type RuleAction = Rule['action'];

/** Date.parse rolls 2027-02-30 over to March; an expiry must be a date that exists. */
function isCalendarDate(value: string): boolean {
  const [y, m, d] = value.slice(0, 10).split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(y, m - 1, d));
  return (
    date.getUTCFullYear() === y &&
    date.getUTCMonth() === m - 1 &&
    date.getUTCDate() === d &&
    !Number.isNaN(Date.parse(value.length === 10 ? `${value}T00:00:00Z` : value))
  );
}
