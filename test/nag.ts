import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, NagPack } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/** One cdk-nag acknowledgement: the construct that carries it, the rule (`AwsSolutions-IAM5[…]`), why. */
export interface Acknowledgement {
  readonly path: string;
  readonly id: string;
  readonly reason: string;
}

/** Every acknowledgement under `scope` (Validations metadata), in construct order. */
export function acknowledgements(scope: IConstruct): Acknowledgement[] {
  const acks: Acknowledgement[] = [];
  for (const c of scope.node.findAll()) {
    for (const m of c.node.metadata) {
      if (m.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(m.data as Record<string, string>)) {
        acks.push({ path: c.node.path, id: id.replace(/^annotation::/i, ''), reason });
      }
    }
  }
  return acks;
}

/**
 * The acknowledgements that match no finding: the AwsSolutions pack is run again on `scope` as if nothing
 * were acknowledged, and each acknowledgement must match a finding of its rule at or under the construct that
 * carries it. What is returned is stale or speculative, and hides nothing real.
 */
export function staleAcknowledgements(
  scope: IConstruct,
  acks: readonly Acknowledgement[] = acknowledgements(scope),
): Acknowledgement[] {
  type Internals = { isAcknowledged: (resource: IConstruct, ruleId: string) => boolean };
  const proto = NagPack.prototype as unknown as Internals;
  const original = proto.isAcknowledged;
  let raw: ReturnType<AwsSolutionsChecks['validateScope']>;
  try {
    proto.isAcknowledged = () => false;
    raw = new AwsSolutionsChecks().validateScope(scope);
  } finally {
    proto.isAcknowledged = original;
  }
  const findings = raw.violations.flatMap((v) =>
    v.violatingResources.map((r) => ({ id: v.ruleName, path: r.constructPath })),
  );
  return acks.filter(
    (a) => !findings.some((f) => f.id === a.id && (f.path === a.path || f.path?.startsWith(`${a.path}/`))),
  );
}
