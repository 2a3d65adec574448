// Regenerates schema/policy.schema.json from the zod schema; a test fails when the committed file differs.
import { writeFileSync } from 'node:fs';
import { policyJsonSchemaText } from '../shared/policy/json-schema.js';

writeFileSync(new URL('../schema/policy.schema.json', import.meta.url), policyJsonSchemaText());
console.log('wrote schema/policy.schema.json');
