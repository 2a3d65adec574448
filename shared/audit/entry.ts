import type { FindingTable } from '../findings/table.js';
import type { Gate, GateImage, GateKey, StoredDecision } from '../gate/model.js';
import { canonical } from './chain.js';
import {
  type AuditAction,
  type AuditEntry,
  type AuditImage,
  type AuditResolution,
  VULNERABILITY_LIMIT,
} from './record.js';

/*
 * The audit entries the gate writes: a decision, an action taken on it, a resolution of the approval.
 * Every entry carries the decision's content (outcome, summary, violations, exceptions, counts, policy) when
 * there is one, so that each record answers on its own; only the decision record lists the vulnerabilities.
 */

/** Tollgate's own actor name. */
export const TOLLGATE_ACTOR = 'tollgate';
/** The actor of an approval's end when nobody is known to have resolved it (CodePipeline's event). */
export const CODEPIPELINE_ACTOR = 'codepipeline';

/**
 * A record's canonical form is kept under this many bytes (DynamoDB's item limit is 400 KB, the item adds
 * its keys and index attributes): past it, the vulnerability list is shortened and marked truncated.
 */
export const AUDIT_ENTRY_BUDGET = 300_000;

function imageOf(image: GateImage | undefined, decision: StoredDecision | undefined): AuditImage | null {
  if (image) return { repository: image.repository, digest: image.digest, tags: [...image.tags] };
  const subject = decision?.record.subject;
  if (subject && (subject.repository || subject.digest)) {
    return { repository: subject.repository, digest: subject.digest, tags: [...subject.tags] };
  }
  return null;
}

function base(
  type: AuditEntry['type'],
  key: GateKey,
  image: GateImage | undefined,
  decision: StoredDecision | undefined,
  time: string,
  actor: string,
): AuditEntry {
  const record = decision?.record;
  return {
    type,
    time,
    actor,
    gate: {
      pipeline: key.pipeline,
      executionId: key.executionId,
      stage: key.stage,
      action: key.action,
      // Only a retried stage's gate has one: a first attempt's records hash as they always have.
      ...(key.attempt !== undefined && key.attempt > 1 ? { attempt: key.attempt } : {}),
    },
    image: imageOf(image ?? decision?.image, decision),
    outcome: record?.outcome ?? null,
    summary: record?.summary ?? null,
    violations: record?.violations ?? [],
    warnings: record?.warnings ?? [],
    exceptions: record?.exceptions ?? null,
    counts: record?.counts ?? null,
    policy: record ? { name: record.policy.name, sha256: record.policy.sha256 } : null,
    // Kept as fields, not only in the summary's words: `--outcome REJECT` cannot find what advisory mode let
    // through, but an auditor asking what it would have rejected can (`wouldBe`).
    ...(record?.mode === 'advisory'
      ? { mode: 'advisory' as const, ...(record.wouldBe !== undefined ? { wouldBe: record.wouldBe } : {}) }
      : {}),
    vulnerabilities: [],
    vulnerabilitiesTruncated: false,
    action: null,
    resolution: null,
  };
}

/** The distinct vulnerability ids of the findings a decision was made on, sorted, at most `limit`. */
export function vulnerabilityIds(
  table: FindingTable,
  limit = VULNERABILITY_LIMIT,
): { ids: string[]; truncated: boolean } {
  const seen = new Set<string>();
  for (let i = 0; i < table.length; i++) {
    const id = table.vulnerabilityId(i);
    if (id) seen.add(id);
  }
  const ids = [...seen].sort();
  return { ids: ids.slice(0, limit), truncated: ids.length > limit };
}

/** The decision record's entry: the decision as stored, and the vulnerabilities it saw. */
export function decisionEntry(decision: StoredDecision, findings: FindingTable): AuditEntry {
  const { ids, truncated } = vulnerabilityIds(findings);
  return bounded({
    ...base('decision', decision.key, decision.image, decision, decision.decidedAt, TOLLGATE_ACTOR),
    ...(decision.record.ignored > 0 ? { ignored: decision.record.ignored } : {}),
    vulnerabilities: ids,
    vulnerabilitiesTruncated: truncated,
  });
}

/** What Tollgate did with a decision: the result sent and CodePipeline's answer, or the escalation sent. */
export function actionEntry(
  gate: Gate,
  decision: StoredDecision,
  action: AuditAction,
  time: string,
): AuditEntry {
  return bounded({ ...base('action', gate.key, gate.image, decision, time, TOLLGATE_ACTOR), action });
}

/** How the approval was resolved: its end, its reviewer, or both when both are known. */
export function resolutionEntry(
  gate: Gate,
  decision: StoredDecision | undefined,
  resolution: AuditResolution,
  time: string,
): AuditEntry {
  const actor = resolution.byTollgate ? TOLLGATE_ACTOR : (resolution.reviewer ?? CODEPIPELINE_ACTOR);
  return bounded({ ...base('resolution', gate.key, gate.image, decision, time, actor), resolution });
}

/** The resolution as the gate knows it now: the closure and the reviewer, each when seen. */
export function resolutionOf(gate: Pick<Gate, 'closure' | 'reviewer'>): AuditResolution {
  return {
    state: gate.closure?.state ?? null,
    reviewer: gate.reviewer?.identity ?? null,
    ...(gate.reviewer?.sourceIdentity ? { sourceIdentity: gate.reviewer.sourceIdentity } : {}),
    // Only when the listing named them: records of CloudTrail's reviewers keep the shape (and hash) they had.
    ...(gate.reviewer?.source ? { source: gate.reviewer.source } : {}),
    byTollgate: gate.reviewer?.tollgate ?? false,
    status: gate.reviewer?.status ?? null,
    summary: gate.reviewer?.summary ?? null,
  };
}

/** Keeps the entry's canonical form within AUDIT_ENTRY_BUDGET by shortening its vulnerability list. */
export function bounded(entry: AuditEntry, budget = AUDIT_ENTRY_BUDGET): AuditEntry {
  if (Buffer.byteLength(canonical(entry), 'utf8') <= budget) return entry;
  const without = Buffer.byteLength(canonical({ ...entry, vulnerabilities: [] }), 'utf8');
  let room = budget - without;
  const kept: string[] = [];
  for (const id of entry.vulnerabilities) {
    // The id as JSON, and its comma.
    room -= Buffer.byteLength(JSON.stringify(id), 'utf8') + 1;
    if (room < 0) break;
    kept.push(id);
  }
  return { ...entry, vulnerabilities: kept, vulnerabilitiesTruncated: true };
}
