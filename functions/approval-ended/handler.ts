import type { GateClosing } from '../../shared/gate/closing.js';
import { gateId, gateKeyOf } from '../../shared/gate/model.js';
import { gateHandler } from '../common/handler.js';
import type { Runtime } from '../common/runtime.js';
import {
  ApprovalEndedOrCallEvent,
  type ApprovalResultCallEvent,
  isApprovalEndOrCall,
} from '../common/schemas.js';

/**
 * An approval ended (the action's state change closes the gate), or CloudTrail recorded a PutApprovalResult
 * call (who resolved it: only `userIdentity` is trusted).
 */
export function approvalEndedHandler(runtime: Runtime<GateClosing>) {
  return gateHandler(
    'approval-ended',
    ApprovalEndedOrCallEvent,
    runtime,
    async (event, { gate, logger }) => {
      if (event['detail-type'] === 'CodePipeline Action Execution State Change') {
        const d = event.detail;
        const key = gateKeyOf(d);
        logger.appendKeys({ gate: gateId(key) });
        const report = await gate.approvalEnded({
          key,
          actionExecutionId: d['action-execution-id'],
          state: d.state,
          time: event.time,
          account: event.account,
          region: event.region,
        });
        logger.info('approval ended', { ...report });
        return report;
      }
      const d = event.detail;
      if (d.errorCode !== undefined) {
        logger.info('a failed PutApprovalResult call: nothing was resolved', { errorCode: d.errorCode });
        return undefined;
      }
      const who = d.userIdentity;
      const identity = reviewerIdentity(who);
      const report = await gate.approvalResultCalled({
        token: d.requestParameters?.token,
        identity,
        identityType: who.type,
        sourceIdentity: who.sessionContext?.sourceIdentity,
        status: d.requestParameters?.result?.status,
        summary: d.requestParameters?.result?.summary,
        time: d.eventTime ?? event.time,
        named: {
          pipeline: d.requestParameters?.pipelineName,
          stage: d.requestParameters?.stageName,
          action: d.requestParameters?.actionName,
        },
      });
      logger.info('approval result call recorded', { identity, ...(report ?? {}) });
      return report;
    },
    isApprovalEndOrCall,
  );
}

type UserIdentity = ApprovalResultCallEvent['detail']['userIdentity'];

/** A string CloudTrail filled in: an empty one, or a value of another type, names nobody. */
const given = (value: unknown): string | undefined =>
  typeof value === 'string' && value !== '' ? value : undefined;

/** A field of an object CloudTrail gave, whatever its type (`onBehalfOf` is read leniently). */
const field = (value: unknown, key: string): unknown =>
  typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;

/**
 * The name the audit trail, `--reviewer` and Gate Closed give the caller: distinct for distinct callers, since
 * one shared name would merge them. Identities without an ARN or principal id (an Identity Center user, an AWS
 * service) are named from the fields CloudTrail gives them instead; only when nothing names the caller is it
 * `unknown <type> identity`, which says so rather than passing for one.
 */
export function reviewerIdentity(who: UserIdentity): string {
  const principal = given(who.arn) ?? given(who.principalId);
  if (principal !== undefined) return principal;
  const userId = given(field(who.onBehalfOf, 'userId'));
  if (userId !== undefined) {
    // The store says which directory the user id is of (an organization can have more than one instance).
    const store = given(field(who.onBehalfOf, 'identityStoreArn'));
    return store === undefined ? `identitycenter:${userId}` : `identitycenter:${store}/${userId}`;
  }
  const service = given(who.invokedBy);
  if (service !== undefined) return `service:${service}`;
  return `unknown ${given(who.type) ?? 'untyped'} identity`;
}
