import { describe, expect, it } from 'vitest';
import { measureAudit } from '../bench/audit.js';

/*
 * The audit benchmark of `npm run bench` (bench/audit.ts), small: 2,000 records over 50 pipelines. The
 * queries must read only what they return (read ratio ≤ 1.1, the target) and agree with a full
 * Scan asking the same question (measureAudit throws otherwise). Times are not asserted here: at this size
 * a Scan is too short to compare with.
 */
describe('audit benchmark at 2,000 records', () => {
  it('list --pipeline P --since 30d and list --vulnerability read only what they return', async () => {
    const result = await measureAudit({ records: 2000, pipelines: 50, runs: 1 });
    expect(result.records).toBe(2000);
    for (const query of [result.pipelineSince, result.vulnerability]) {
      expect(query.returned, query.filter).toBeGreaterThan(0);
      expect(query.returned).toBe(query.scanMatched);
      expect(query.readRatio, query.filter).toBeLessThanOrEqual(1.1);
      // The Scan reads the whole table; the query, a sliver of it.
      expect(query.scanScanned).toBe(result.items);
      expect(query.scanned).toBeLessThan(result.items / 10);
    }
    expect(result.pipelineSince.index).toBe('decisions-by-pipeline');
    expect(result.vulnerability.index).toBe('VULN# items');
    // The records behind the vulnerability's index items, read by key: one per record returned.
    expect(result.vulnerability.fetched).toBe(result.vulnerability.returned);
    // readRatio counts the index read alone; itemsReadPerRecord every item read, the records by key
    // included: 2 at best for the vulnerability query (an index item and its record), readRatio's figure
    // for the pipeline query (it reads nothing by key).
    for (const query of [result.pipelineSince, result.vulnerability]) {
      expect(query.itemsReadPerRecord, query.filter).toBe(
        (query.scanned + query.fetched + query.markers) / query.returned,
      );
    }
    expect(result.pipelineSince.itemsReadPerRecord).toBe(result.pipelineSince.readRatio);
    expect(result.vulnerability.itemsReadPerRecord).toBeGreaterThanOrEqual(2);
    expect(result.vulnerability.itemsReadPerRecord).toBeLessThanOrEqual(2.1);
  }, 120_000);
});
