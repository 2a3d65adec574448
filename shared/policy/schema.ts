// zod/mini: the same validation as zod's classic API, in a fraction of the functions' bundles (the
// policy is validated again at every cold start, fail closed).
import * as z from 'zod/mini';
import { parseIsoTime } from '../dates.js';
import { FINDING_STATUSES, FIX_AVAILABILITIES, SEVERITIES } from '../findings/finding.js';

/** Violations the evaluator makes itself; no rule may take these ids. */
export const IMPLICIT_RULE_IDS = ['unknown-severity', 'scan-incomplete', 'scan-timeout', 'error'] as const;
export type ImplicitRuleId = (typeof IMPLICIT_RULE_IDS)[number];

const severity = z.enum(SEVERITIES);
/** Schema metadata (JSON Schema's description and title), as zod/mini attaches it. */
const described = (description: string) => z.meta({ description });

const globList = (what: string) =>
  z
    .array(z.string().check(z.minLength(1, { error: 'a non-empty glob' })), {
      error: `a list of ${what} globs`,
    })
    .check(z.minLength(1, { error: `at least one ${what} glob` }));

const severityList = z
  .array(severity, { error: 'a list of severities' })
  .check(z.minLength(1, { error: 'at least one severity' }));
const fixList = z
  .array(z.enum(FIX_AVAILABILITIES), { error: 'a list of YES, NO, PARTIAL' })
  .check(z.minLength(1, { error: 'at least one of YES, NO, PARTIAL' }));
const score = z.number({ error: 'a score from 0 to 10' }).check(z.minimum(0), z.maximum(10));
const probability = z.number({ error: 'an EPSS probability from 0 to 1' }).check(z.minimum(0), z.maximum(1));

export const RuleConditionsSchema = z
  .strictObject({
    severity: z.optional(severityList).check(described('The finding severity is one of these.')),
    minScore: z
      .optional(score)
      .check(described('Inspector score (else highest CVSS base score) >= this; no score never matches.')),
    fixAvailable: z
      .optional(fixList)
      .check(described('Fix availability is one of these; unknown never matches.')),
    exploitAvailable: z
      .optional(z.boolean({ error: 'true or false' }))
      .check(described('Exploit availability equals this; unknown never matches.')),
    minEpss: z.optional(probability).check(described('EPSS score >= this; no EPSS never matches.')),
    olderThanDays: z
      .optional(
        z
          .int({ error: 'a whole number of days' })
          .check(z.minimum(0, { error: 'a whole number of days, 0 or more' })),
      )
      .check(described('First observed more than this many days before the evaluation (a grace period).')),
    vulnerabilityIds: z
      .optional(globList('vulnerability id'))
      .check(described('Vulnerability id (CVE-…, GHSA-…, ALAS-…) matches one of these; * is a wildcard.')),
    packages: z
      .optional(globList('package name'))
      .check(described('One of the vulnerable packages matches one of these globs.')),
    repositories: z
      .optional(globList('repository'))
      .check(described("The image's repository (bare name) matches one of these globs.")),
    pipelines: z
      .optional(globList('pipeline'))
      .check(described("The pipeline's name matches one of these globs; no known pipeline never matches.")),
  })
  .check(described('All conditions must hold (AND); within a list any value may match (OR).'));

export const RevokeConditionsSchema = z
  .strictObject({
    exploitAvailable: z.optional(z.boolean({ error: 'true or false' })),
    minEpss: z.optional(probability),
    minScore: z.optional(score),
    fixAvailable: z.optional(fixList),
    severity: z.optional(severityList),
  })
  .check(described('The exception stops covering a finding as soon as ANY of these holds for it.'));

// One pattern, the reserved ids refused by its lookahead, so that the JSON Schema refuses them too (a refine
// would not reach it); the message still tells a reserved id from a malformed one.
export const RULE_ID_FORMAT = '^[a-z0-9-]{1,64}$';
export const RULE_ID = new RegExp(`^(?!(?:${IMPLICIT_RULE_IDS.join('|')})$)${RULE_ID_FORMAT.slice(1)}`);
const isImplicitRuleId = (id: unknown): boolean => (IMPLICIT_RULE_IDS as readonly unknown[]).includes(id);

const ruleId = z.string({ error: 'a rule id' }).check(
  z.regex(RULE_ID, {
    error: (issue) =>
      isImplicitRuleId(issue.input)
        ? `a rule id other than the implicit ones (${IMPLICIT_RULE_IDS.join(', ')}), which are reserved`
        : 'a rule id of 1-64 characters a-z, 0-9 and -',
  }),
);

export const RuleSchema = z.strictObject({
  id: ruleId,
  description: z.optional(
    z.string({ error: 'a text' }).check(z.maxLength(500, { error: 'a text of at most 500 characters' })),
  ),
  action: z.enum(['reject', 'escalate', 'warn']),
  allow: z
    ._default(
      z
        .int({ error: 'a whole number of tolerated findings' })
        .check(z.minimum(0, { error: 'a whole number of tolerated findings, 0 or more' })),
      0,
    )
    .check(described('The rule is violated when more than this many findings match.')),
  when: z._default(RuleConditionsSchema, {}),
});

// `2027-01-31` (the end of that day, UTC) or a timestamp with a zone: an expiry is never a guess. The forms
// parseIsoTime reads (`+01:00` or `+0100`), so that an expiry is written as `--now` and findings are.
const EXPIRY = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2}))?$/;
const EXPIRY_EXPECTED = 'a date (2027-01-31) or an ISO-8601 timestamp with a zone';
// A pattern rather than a refine so that the JSON Schema carries it, and its own message: an offset of
// +99:99 is no calendar question.
const EXPIRY_OFFSET = /(?:^\d{4}-\d{2}-\d{2}|Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)$/;
// The pattern JSON Schema carries for "not blank": zod's trim only shapes the loader's output. At least one
// character that shows: zero-width spaces, joiners, soft hyphens (format), combining marks alone,
// private-use characters, lone surrogates (half a character, from a `"\uD800"` escape) and the Hangul and
// braille fillers (none of them `\s`) would let an exception name no reason and no approver that anyone can
// read. A negated class, not a lookahead: JSON Schema's portable regex subset has none.
const NOT_BLANK = /[^\s\p{Cc}\p{Cf}\p{M}\p{Co}\p{Cs}\u115F\u1160\u3164\uFFA0\u2800]/u;

export const ExceptionSchema = z.strictObject({
  id: z
    .string({ error: 'an exception id' })
    .check(
      z.minLength(1, { error: 'a non-empty exception id' }),
      z.maxLength(128, { error: 'an exception id of at most 128 characters' }),
    ),
  vulnerabilityId: z
    .string({ error: 'a vulnerability id or glob' })
    .check(z.minLength(1, { error: 'a non-empty vulnerability id or glob' })),
  packages: z
    .optional(globList('package name'))
    .check(
      described('Covers a finding only if it lists vulnerable packages and every one matches one of these.'),
    ),
  repositories: z.optional(globList('repository')),
  pipelines: z.optional(globList('pipeline')),
  expires: z.string({ error: EXPIRY_EXPECTED }).check(
    // Abort: a value that is not a date at all would also fail the calendar check, a second false message.
    z.regex(EXPIRY, { error: EXPIRY_EXPECTED, abort: true }),
    z.regex(EXPIRY_OFFSET, { error: 'a zone offset of at most 23:59 (from -23:59 to +23:59)', abort: true }),
    z.refine(isCalendarDate, { error: 'a real calendar date' }),
    described(
      'A date (the end of that day, UTC) or an ISO-8601 timestamp with a zone; there are no permanent exceptions.',
    ),
  ),
  reason: z
    .string({ error: 'a reason' })
    .check(z.trim(), z.regex(NOT_BLANK, { error: 'a non-empty reason' })),
  approvedBy: z
    .string({ error: 'the name or address of who approved the exception' })
    .check(z.trim(), z.regex(NOT_BLANK, { error: 'a non-empty approvedBy' })),
  revokeIf: z.optional(RevokeConditionsSchema),
});

const outcomeChoice = z.enum(['escalate', 'reject']);

export const SettingsSchema = z.strictObject({
  statuses: z
    ._default(
      z
        .array(z.enum(FINDING_STATUSES), { error: 'a list of ACTIVE, SUPPRESSED, CLOSED' })
        .check(z.minLength(1, { error: 'at least one finding status' })),
      ['ACTIVE'],
    )
    .check(described('Finding statuses that count; the others are listed as ignored.')),
  unknownSeverity: z
    ._default(z.enum(['escalate', 'reject', 'ignore']), 'escalate')
    .check(described('What a counted finding with severity UNTRIAGED or an unrecognised value does.')),
  expiringSoonDays: z._default(
    z
      .int({ error: 'a whole number of days' })
      .check(
        z.minimum(0, { error: 'a whole number of days from 0 to 3650' }),
        z.maximum(3650, { error: 'a whole number of days from 0 to 3650' }),
      ),
    14,
  ),
  scan: z._default(
    z.strictObject({
      waitMinutes: z._default(
        z
          .int({ error: 'a whole number of minutes' })
          .check(
            z.minimum(1, { error: 'a whole number of minutes from 1 to 10080 (a week)' }),
            z.maximum(10080, { error: 'a whole number of minutes from 1 to 10080 (a week)' }),
          ),
        30,
      ),
      onTimeout: z._default(outcomeChoice, 'escalate'),
      onUnsupported: z._default(outcomeChoice, 'escalate'),
    }),
    { waitMinutes: 30, onTimeout: 'escalate', onUnsupported: 'escalate' },
  ),
  onError: z._default(outcomeChoice, 'escalate').check(described('approve is not a choice: fail closed.')),
});

export const PolicySchema = z
  .strictObject({
    version: z.literal(1, { error: 'the policy language version 1' }),
    name: z.string({ error: 'a policy name' }).check(
      z.regex(/^[A-Za-z0-9._-]{1,64}$/, {
        error: 'a policy name of 1-64 characters A-Za-z, 0-9, ., _ and -',
      }),
    ),
    mode: z._default(z.enum(['enforce', 'advisory']), 'enforce'),
    settings: z._default(SettingsSchema, SettingsSchema.parse({})),
    rules: z._default(z.array(RuleSchema, { error: 'a list of rules' }), []),
    exceptions: z._default(z.array(ExceptionSchema, { error: 'a list of exceptions' }), []),
  })
  .check(
    z.superRefine((policy, ctx) => {
      // Ids name rules and exceptions in decision records and audit queries: each must say one thing.
      const repeated = (list: 'rules' | 'exceptions', ids: readonly string[], message: string) => {
        const seen = new Set<string>();
        ids.forEach((id, i) => {
          if (seen.has(id)) ctx.addIssue({ code: 'custom', path: [list, i, 'id'], message });
          seen.add(id);
        });
      };
      repeated(
        'rules',
        policy.rules.map((r) => r.id),
        'a rule id not used by an earlier rule',
      );
      repeated(
        'exceptions',
        policy.exceptions.map((e) => e.id),
        'an exception id not used by an earlier exception',
      );
    }),
    z.meta({
      title: 'Tollgate policy',
      description:
        'Which vulnerability findings of a container image reject, escalate or warn (policy language v1).',
    }),
  );

export type Policy = z.output<typeof PolicySchema>;
export type Rule = Policy['rules'][number];
export type RuleConditions = Rule['when'];
export type PolicyException = Policy['exceptions'][number];
export type RevokeConditions = NonNullable<PolicyException['revokeIf']>;
export type RuleAction = Rule['action'];

/** Date.parse rolls 2027-02-30 over to March; an expiry must be a date that exists. */
function isCalendarDate(value: string): boolean {
  return !Number.isNaN(parseIsoTime(value));
}
