import { readdirSync, readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { policyJsonSchemaText } from '../shared/policy/json-schema.js';

const committed = readFileSync(new URL('../schema/policy.schema.json', import.meta.url), 'utf8');

describe('schema/policy.schema.json', () => {
  it('is what the zod schema generates (run `npm run schema` after changing the policy language)', () => {
    expect(committed).toBe(policyJsonSchemaText());
  });

  const validate = new Ajv2020({ allErrors: true, strict: false }).compile(JSON.parse(committed));

  it.each(readdirSync(new URL('../examples/policies', import.meta.url)))('accepts the example %s', (name) => {
    const doc = parse(readFileSync(new URL(`../examples/policies/${name}`, import.meta.url), 'utf8'));
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
  });

  it('rejects unknown keys and wrong values, as the loader does', () => {
    expect(validate({ version: 1, name: 'x', rules: [{ id: 'a', action: 'warn', whenn: {} }] })).toBe(false);
    expect(validate({ version: 1, name: 'x', rules: [{ id: 'a', action: 'block' }] })).toBe(false);
    expect(validate({ version: 1, name: 'x', settings: { onError: 'approve' } })).toBe(false);
    expect(validate({ version: 1, name: 'x' })).toBe(true);
  });

  it('takes the expiries the loader takes: an offset with or without a colon, never no zone', () => {
    const expiring = (expires: string) =>
      validate({
        version: 1,
        name: 'x',
        exceptions: [{ id: 'E', vulnerabilityId: 'CVE-1', expires, reason: 'r', approvedBy: 'a' }],
      });
    expect(expiring('2027-01-31T12:00:00+0100')).toBe(true);
    expect(expiring('2027-01-31T12:00:00+01:00')).toBe(true);
    expect(expiring('2027-01-31T12:00:00')).toBe(false);
  });
});
