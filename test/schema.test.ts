import { readdirSync, readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { InputError, parsePolicy } from '../shared/index.js';
import { policyJsonSchemaText } from '../shared/policy/json-schema.js';

const committed = readFileSync(new URL('../schema/policy.schema.json', import.meta.url), 'utf8');

describe('schema/policy.schema.json', () => {
  it('is what the zod schema generates (run `npm run schema` after changing the policy language)', () => {
    expect(committed).toBe(policyJsonSchemaText());
  });

  const validate = new Ajv2020({ allErrors: true, strict: false }).compile(JSON.parse(committed));

  it("uses no regex lookaround or backreference, outside JSON Schema's portable subset (RE2-based validators would refuse the whole schema)", () => {
    const patterns = [...committed.matchAll(/"pattern": (".*")/g)].map((m) => JSON.parse(m[1]!) as string);
    expect(patterns.length).toBeGreaterThan(3);
    for (const p of patterns) expect(p, p).not.toMatch(/\(\?[=!<]|\\[1-9]/);
    // Nor a `\uXXXX` escape, which RE2 lacks: the characters themselves (JSON escapes in the file's text).
    for (const p of patterns) expect(p, p).not.toMatch(/\\u/);
  });

  const examples = readdirSync(new URL('../examples/policies', import.meta.url));

  // An empty it.each runs no test at all: an empty or moved folder must fail, not pass unseen.
  it('has example policies to check', () => {
    expect(examples.length).toBeGreaterThan(0);
  });

  it.each(examples)('accepts the example %s', (name) => {
    const doc = parse(readFileSync(new URL(`../examples/policies/${name}`, import.meta.url), 'utf8'));
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
  });

  it('rejects unknown keys and wrong values, as the loader does', () => {
    expect(validate({ version: 1, name: 'x', rules: [{ id: 'a', action: 'warn', whenn: {} }] })).toBe(false);
    expect(validate({ version: 1, name: 'x', rules: [{ id: 'a', action: 'block' }] })).toBe(false);
    expect(validate({ version: 1, name: 'x', settings: { onError: 'approve' } })).toBe(false);
    expect(validate({ version: 1, name: 'x' })).toBe(true);
  });

  const exception = (fields: Record<string, string>) => ({
    version: 1,
    name: 'x',
    exceptions: [
      { id: 'E', vulnerabilityId: 'CVE-1', expires: '2027-01-31', reason: 'r', approvedBy: 'a', ...fields },
    ],
  });
  const rule = (id: string) => ({ version: 1, name: 'x', rules: [{ id, action: 'warn' }] });

  it('takes the expiries the loader takes: an offset with or without a colon, never no zone', () => {
    const expiring = (expires: string) => validate(exception({ expires }));
    expect(expiring('2027-01-31T12:00:00+0100')).toBe(true);
    expect(expiring('2027-01-31T12:00:00+01:00')).toBe(true);
    expect(expiring('2027-01-31T12:00-23:59')).toBe(true);
    expect(expiring('2027-01-31T12:00:00')).toBe(false);
    expect(expiring('2027-01-31T12:00:00+99:99')).toBe(false);
    expect(expiring('2027-01-31T12:00:00+2400')).toBe(false);
  });

  it('refuses the reserved rule ids, as the loader does', () => {
    for (const id of ['unknown-severity', 'scan-incomplete', 'scan-timeout', 'error']) {
      expect(validate(rule(id)), id).toBe(false);
      expect(() => parsePolicy(JSON.stringify(rule(id)), 'p.json'), id).toThrow(/which are reserved/);
    }
    for (const id of ['errors', 'my-error', 'scan-timeout-2']) expect(validate(rule(id)), id).toBe(true);
  });

  it('refuses a blank reason or approver, as the loader does', () => {
    for (const blank of ['', '   ', '\t\n', '\u3164', '\u2800\u200B', '\uD800']) {
      expect(validate(exception({ reason: blank })), JSON.stringify(blank)).toBe(false);
      expect(validate(exception({ approvedBy: blank })), JSON.stringify(blank)).toBe(false);
    }
    expect(validate(exception({ reason: '  r  ', approvedBy: ' a' }))).toBe(true);
  });

  // Checks JSON Schema has no words for: documented as the loader's alone in shared/policy/json-schema.ts.
  // Should one of these start failing, the schema has learnt the check: move it to the test above.
  it.each([
    [
      'a rule id used twice',
      {
        version: 1,
        name: 'x',
        rules: [
          { id: 'a', action: 'warn' },
          { id: 'a', action: 'reject' },
        ],
      },
    ],
    [
      'an exception id used twice',
      {
        version: 1,
        name: 'x',
        exceptions: [exception({}).exceptions[0], exception({}).exceptions[0]],
      },
    ],
    ['a day that does not exist', exception({ expires: '2027-02-30' })],
    ['a time of day that does not exist', exception({ expires: '2027-01-31T24:00:00Z' })],
  ])('leaves to the loader: %s', (_what, policy) => {
    expect(validate(policy)).toBe(true);
    expect(() => parsePolicy(JSON.stringify(policy), 'p.json')).toThrow(InputError);
  });
});
