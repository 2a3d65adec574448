import type { AuditRecord } from '../../shared/audit/record.js';
import { shown } from '../../shared/text.js';

/*
 * How a record read back from the table can be damaged, for the commands that read records (`list`, `export`,
 * `show`, `verify`). Apart from audit-items.ts, which every function bundles: none of them reads records back,
 * and this table of checks would otherwise ride along in each bundle.
 */

/** What is wrong with a record read back from the table: the first field found damaged, as it came. */
export interface RecordDamage {
  /** The field's path in the record (`time`, `gate.executionId`, `violations`). */
  readonly field: string;
  readonly expected: string;
  /** What the field holds, as JSON (cut), or `nothing` when it is absent. */
  readonly got: string;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isString = (v: unknown): boolean => typeof v === 'string';
const orNull =
  (check: (v: unknown) => boolean) =>
  (v: unknown): boolean =>
    v === undefined || v === null || check(v);
const listOf =
  (check: (v: unknown) => boolean) =>
  (v: unknown): boolean =>
    Array.isArray(v) && v.every(check);
const isTime = (v: unknown): boolean => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const isViolation = (v: unknown): boolean =>
  isMap(v) && isString(v.rule) && isString(v.action) && listOf(isString)(v.findings);

/**
 * What the commands that print and filter records read of each (`list`, `export`, `show`), in the order it is
 * checked: a map before its fields, which are checked only when it is there (`image: null` has no tags).
 */
const RECORD_FIELDS: readonly (readonly [string, string, (v: unknown) => boolean])[] = [
  ['pipeline', 'a pipeline name', (v) => typeof v === 'string' && v !== ''],
  ['seq', 'a whole number from 1', (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1],
  ['time', 'an ISO-8601 time', isTime],
  ['type', 'a record type (decision, action, resolution)', isString],
  ['actor', 'an identity (text)', isString],
  ['gate', 'a map (the gate)', isMap],
  ['gate.pipeline', 'text', isString],
  ['gate.executionId', 'text', isString],
  ['gate.stage', 'text', isString],
  ['gate.action', 'text', isString],
  ['gate.attempt', 'a number, or nothing', (v) => v === undefined || typeof v === 'number'],
  ['image', 'a map (the image), or null', orNull(isMap)],
  ['image.repository', 'text, or null', orNull(isString)],
  ['image.digest', 'text, or null', orNull(isString)],
  ['image.tags', 'a list of tags (text)', listOf(isString)],
  ['outcome', 'an outcome (text), or null', orNull(isString)],
  ['summary', 'text, or null', orNull(isString)],
  ['mode', 'text, or nothing', orNull(isString)],
  ['wouldBe', 'text, or nothing', orNull(isString)],
  ['violations', 'a list of rule results (rule, action, findings)', listOf(isViolation)],
  ['warnings', 'a list of rule results (rule, action, findings)', listOf(isViolation)],
  ['exceptions', 'a map (exceptions by state), or null', orNull(isMap)],
  ['exceptions.applied', 'a list of ids', listOf(isString)],
  ['exceptions.expiringSoon', 'a list of ids', listOf(isString)],
  ['exceptions.expired', 'a list of ids', listOf(isString)],
  ['exceptions.revoked', 'a list of ids', listOf(isString)],
  ['exceptions.unused', 'a list of ids', listOf(isString)],
  ['counts', 'a map (counts by severity), or null', orNull(isMap)],
  ['policy', 'a map (name, sha256), or null', orNull(isMap)],
  ['policy.name', 'text', isString],
  ['policy.sha256', 'text', isString],
  ['vulnerabilities', 'a list of ids', listOf(isString)],
  ['action', 'a map (the action), or null', orNull(isMap)],
  ['action.kind', 'text', isString],
  ['action.status', 'text, or null', orNull(isString)],
  ['action.answer', 'text, or null', orNull(isString)],
  ['action.subject', 'text, or null', orNull(isString)],
  ['resolution', 'a map (the resolution), or null', orNull(isMap)],
  ['resolution.state', 'text, or null', orNull(isString)],
  ['resolution.reviewer', 'text, or null', orNull(isString)],
  ['resolution.status', 'text, or null', orNull(isString)],
  ['resolution.summary', 'text, or null', orNull(isString)],
  ['prevHash', 'a SHA-256 (text)', isString],
  ['hash', 'a SHA-256 (text)', isString],
];

/**
 * The first field of a record read back from the table that is not what Tollgate writes there, or undefined.
 * The hash covers the record only as it is: a record edited by hand (a field removed, a time that is no time)
 * may still be stored, and re-hashed; every command that reads it must name it rather than fail on it, or
 * leave it out of an answer unsaid (a time that is no time is in no range).
 */
export function recordDamage(record: unknown): RecordDamage | undefined {
  if (!isMap(record)) return { field: '(the record)', expected: 'a map', got: shown(record) };
  for (const [field, expected, check] of RECORD_FIELDS) {
    const dot = field.indexOf('.');
    // A field of a map that is absent or null (as it may be: checked before) is not read.
    const parent = dot < 0 ? record : record[field.slice(0, dot)];
    if (!isMap(parent)) continue;
    const value = parent[dot < 0 ? field : field.slice(dot + 1)];
    if (!check(value)) return { field, expected, got: shown(value) };
  }
  return undefined;
}

/** The damage of a record's time alone (no time, or not one): it places the record in every index. */
export function timeDamage(record: Pick<AuditRecord, 'time'>): RecordDamage | undefined {
  const time: unknown = record.time;
  return isTime(time) ? undefined : { field: 'time', expected: 'an ISO-8601 time', got: shown(time) };
}
