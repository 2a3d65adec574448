import { describe, expect, it } from 'vitest';
import { chainRunIndex, measureCriticalPath } from '../bench/critical-path.js';

/*
 * The critical path of `npm run bench` (scan-finished event → PutApprovalResult), small: 300 findings, whose
 * longest per-severity chain is 2 pages (123 MEDIUM), so the floor is 4 calls in sequence: 2 pages, the
 * decision write, PutApprovalResult. A change that puts one more call in sequence fails here.
 *
 * Why 50 ms a call and not less: the depth of a call is measured on the wall clock, and the store's calls
 * also take dynalite's own time (in this process, one request at a time, beside the parsing of the
 * findings pages): 10–20 ms for the scan write and the gate query together. With a latency of that order a
 * call that waits only for the query can start after a second findings page has ended, and counts one
 * deeper than it is. At 50 ms the simulated latency dominates, and the count is the gate's.
 */
const OPTIONS = { findings: 300, latencyMs: 50, runs: 3, warmups: 1 } as const;

// Measured once (medians of 3 runs, about 3 s).
let measured: ReturnType<typeof measureCriticalPath> | undefined;
const measure = () => {
  measured ??= measureCriticalPath(OPTIONS);
  return measured;
};

describe('critical path: scan-finished → PutApprovalResult', () => {
  it('sends PutApprovalResult after the findings pages + 2 calls in sequence (the floor)', async () => {
    const path = await measure();
    expect(path.longestFindingsChain).toBe(2);
    expect(path.floor).toBe(4);
    // On a machine loaded past its cores (a CI runner beside other jobs) a stalled event loop can make two
    // calls that overlap look sequential, once. A call really added to the sequence is there every time: a
    // second measurement tells the two apart.
    const calls =
      path.calls === path.floor
        ? path.calls
        : Math.min(path.calls, (await measureCriticalPath(OPTIONS)).calls);
    expect(calls).toBe(path.floor);
    // Beside the findings pages: the gate query, then the token (the scan status just written is not read back).
    expect(path.chain.map((c) => c.call).slice(-2)).toEqual([
      'DynamoDB TransactWriteItems DECISION+GATE',
      'PutApprovalResult',
    ]);
    expect(path.perRun.every((r) => r.outcome === 'REJECT')).toBe(true);
    // The chain shown is that of the run chainRun names, of the median depth.
    const shown = path.perRun[path.chainRun.index]!;
    expect(path.chain).toBe(shown.chain);
    expect(path.chainRun).toEqual({ index: path.chainRun.index, calls: shown.calls, ms: shown.ms });
    expect(shown.calls).toBe(path.calls);
  });

  it('shows the chain of the run of median depth closest to the median ms, not the first of that depth', () => {
    // The last bench's case: the first run of the median depth ended at 264.5 ms under a median of 217.
    const runs = [
      { calls: 12, ms: 264.5 },
      { calls: 13, ms: 217 },
      { calls: 12, ms: 210 },
      { calls: 12, ms: 219 },
      { calls: 12, ms: 180 },
    ];
    expect(chainRunIndex(runs, 12, 217)).toBe(3);
    // Equally close: the first.
    expect(
      chainRunIndex(
        [
          { calls: 4, ms: 90 },
          { calls: 4, ms: 110 },
        ],
        4,
        100,
      ),
    ).toBe(0);
    // No run of the median depth (4 and 5 calls twice each: median 4.5): the closest in ms of all.
    const split = [
      { calls: 4, ms: 300 },
      { calls: 5, ms: 140 },
      { calls: 4, ms: 100 },
      { calls: 5, ms: 121 },
    ];
    expect(chainRunIndex(split, 4.5, 130)).toBe(3);
    expect(chainRunIndex([], 4, 100)).toBe(-1);
  });
});
