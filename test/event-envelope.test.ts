import { readdirSync, readFileSync } from 'node:fs';
import { EventBridgeSchema as PowertoolsEventBridgeSchema } from '@aws-lambda-powertools/parser/schemas/eventbridge';
import { describe, expect, it } from 'vitest';
import { EventBridgeSchema } from '../functions/common/schemas.js';

/*
 * The functions parse events with our own EventBridge envelope, not Powertools' (whose module imports all of
 * zod into every bundle). It must accept and refuse exactly what Powertools' does, and give the same data.
 */

const FIXTURES = new URL('./fixtures/aws/', import.meta.url);
const events = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.json'))
  .map((f) => ({ name: f, value: JSON.parse(readFileSync(new URL(f, FIXTURES), 'utf8')) as unknown }))
  .filter(
    (e): e is { name: string; value: Record<string, unknown> } =>
      typeof e.value === 'object' && e.value !== null && 'detail-type' in e.value,
  );

function both(value: unknown) {
  return {
    ours: EventBridgeSchema.safeParse(value),
    powertools: PowertoolsEventBridgeSchema.safeParse(value),
  };
}

describe("the functions' EventBridge envelope", () => {
  it("has Powertools' EventBridgeSchema's fields", () => {
    expect(Object.keys(EventBridgeSchema.shape).sort()).toEqual(
      Object.keys(PowertoolsEventBridgeSchema.shape).sort(),
    );
  });

  it('reads every sample event as Powertools does', () => {
    expect(events.length).toBeGreaterThanOrEqual(8);
    for (const { name, value } of events) {
      const { ours, powertools } = both(value);
      expect(ours.success, name).toBe(true);
      expect(ours.data, name).toEqual(powertools.data);
    }
  });

  it('refuses what Powertools refuses, and keeps what it keeps', () => {
    const base = events[0]!.value;
    const variants: Record<string, unknown>[] = [
      { ...base, time: '2026-11-25 12:00:00' },
      { ...base, time: '2026-11-25T12:00:00+01:00' },
      { ...base, time: '2026-11-25T12:00:00.123Z' },
      { ...base, id: undefined },
      { ...base, version: 0 },
      { ...base, resources: 'arn:aws:codepipeline:eu-west-1:123456789012:p' },
      { ...base, resources: [1] },
      { ...base, 'replay-name': 'archive-replay' },
      { ...base, 'replay-name': 7 },
      { ...base, detail: undefined },
      { ...base, extra: 'stripped' },
      { ...base, account: null },
    ];
    for (const variant of variants) {
      const { ours, powertools } = both(variant);
      expect(ours.success, JSON.stringify(variant)).toBe(powertools.success);
      expect(ours.data).toEqual(powertools.data);
    }
  });
});
