import * as z from 'zod/mini';
import { IMPLICIT_RULE_IDS, PolicySchema, RULE_ID, RULE_ID_FORMAT } from './schema.js';

/** A name, not an address: the project publishes no schema URL; editors use the file's path. */
export const POLICY_SCHEMA_ID = 'urn:tollgate:schema:policy:1';

/**
 * The policy language as JSON Schema, generated from the zod schema the loader uses, so that editors refuse
 * what Tollgate refuses: the schema's checks are written as patterns and bounds wherever JSON Schema can
 * carry them (a reserved rule id, a blank reason or approvedBy, a zone offset past 23:59). Two checks remain
 * the loader's alone, refines JSON Schema has no words for, so a file the schema accepts can still be refused:
 * - ids used twice (two rules, or two exceptions, with one id);
 * - the calendar validity of an expiry: a day that does not exist (`2027-02-30`) or a time of day that does
 *   not (`T24:00`, `T12:60`).
 * The YAML reader refuses some files before any schema applies: a key given twice in one mapping, a
 * `%YAML` directive other than 1.2, a YAML 1.1 merge key (`<<: *anchor`, which editors expand before they
 * validate), a tag it cannot resolve, a file over the size limit.
 *
 * `io: 'input'` because users write the input side: defaulted keys stay optional.
 */
export function policyJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(PolicySchema, {
    target: 'draft-2020-12',
    io: 'input',
    // The loader refuses a reserved rule id with a lookahead, which JSON Schema's recommended regex subset
    // lacks (validators on RE2 or Rust's regex would reject the whole schema): said as `not` an enum here.
    override: ({ jsonSchema }) => {
      if (jsonSchema.pattern === RULE_ID.source) {
        jsonSchema.pattern = RULE_ID_FORMAT;
        jsonSchema.not = { enum: [...IMPLICIT_RULE_IDS] };
      } else if (typeof jsonSchema.pattern === 'string') {
        // RE2 (Go's validators) has no `\uXXXX` escape, and refuses the whole schema for one: the character
        // itself goes in the pattern (the file's text escapes it again, as JSON, so it stays readable).
        jsonSchema.pattern = jsonSchema.pattern.replace(/\\u([0-9A-Fa-f]{4})/g, (_, hex: string) =>
          String.fromCharCode(Number.parseInt(hex, 16)),
        );
      }
    },
  }) as Record<string, unknown>;
  return { ...schema, $id: POLICY_SCHEMA_ID };
}

export function policyJsonSchemaText(): string {
  // A pattern's characters past ASCII as JSON escapes: the fillers it names are invisible.
  const text = JSON.stringify(policyJsonSchema(), null, 2).replace(/^ *"pattern": .*$/gm, (line) =>
    line.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`),
  );
  return `${text}\n`;
}
