import * as z from 'zod/mini';
import { PolicySchema } from './schema.js';

/** A name, not an address: the project publishes no schema URL; editors use the file's path. */
export const POLICY_SCHEMA_ID = 'urn:tollgate:schema:policy:1';

/**
 * The policy language as JSON Schema, generated from the zod schema the loader uses, so editors validate
 * exactly what Tollgate accepts. `io: 'input'` because users write the input side: defaulted keys stay
 * optional.
 */
export function policyJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(PolicySchema, { target: 'draft-2020-12', io: 'input' }) as Record<
    string,
    unknown
  >;
  return { ...schema, $id: POLICY_SCHEMA_ID };
}

export function policyJsonSchemaText(): string {
  return `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
}
