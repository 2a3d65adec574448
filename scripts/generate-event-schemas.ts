// Regenerates schema/events/*.schema.json from the zod schemas the event builders parse through; a test
// fails when a committed file differs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { EVENT_DETAIL_SCHEMAS, eventJsonSchemaText, eventSchemaFile } from '../shared/gate/events.js';
import type { TollgateEventType } from '../shared/gate/ports.js';

mkdirSync(new URL('../schema/events/', import.meta.url), { recursive: true });
for (const detailType of Object.keys(EVENT_DETAIL_SCHEMAS) as TollgateEventType[]) {
  const file = eventSchemaFile(detailType);
  writeFileSync(new URL(`../${file}`, import.meta.url), eventJsonSchemaText(detailType));
  console.log(`wrote ${file}`);
}
