import type * as z from 'zod/v4/core';

// zod's own messages start like this; any other message is one of ours, written as the "expected" half.
const ZOD_DEFAULT = /^(Invalid|Too small|Too big|Unrecognized)/;

/**
 * The "expected" half of a problem message for a zod issue: our own message where the schema gives one,
 * else zod's issue in the words a policy's author reads ("a whole number", "at least 1 item(s)"). The YAML
 * reader and the policy bundle reader share it (this module keeps `yaml` out of the functions' bundles).
 */
export function expectedOf(issue: z.$ZodIssue): string {
  if (!ZOD_DEFAULT.test(issue.message)) return issue.message;
  switch (issue.code) {
    case 'invalid_value':
      return `one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'invalid_type':
      return TYPE_NAMES[issue.expected] ?? issue.expected;
    case 'too_small':
      if (issue.origin === 'array') return `at least ${issue.minimum} item(s)`;
      if (issue.origin === 'string') return `at least ${issue.minimum} character(s)`;
      return `a number ${issue.inclusive ? '>=' : '>'} ${issue.minimum}`;
    case 'too_big':
      if (issue.origin === 'array') return `at most ${issue.maximum} item(s)`;
      if (issue.origin === 'string') return `at most ${issue.maximum} character(s)`;
      return `a number ${issue.inclusive ? '<=' : '<'} ${issue.maximum}`;
    default:
      return issue.message;
  }
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a text',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
};
