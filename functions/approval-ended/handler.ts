import type { GateClosing } from '../../shared/gate/closing.js';
import { gateId, gateKeyOf } from '../../shared/gate/model.js';
import { gateHandler } from '../common/handler.js';
import type { Runtime } from '../common/runtime.js';
import { ApprovalEndedOrCallEvent, isApprovalEndOrCall } from '../common/schemas.js';

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
      const report = await gate.approvalResultCalled({
        token: d.requestParameters?.token,
        identity: who.arn ?? who.principalId ?? 'unknown identity',
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
      logger.info('approval result call recorded', { identity: who.arn, ...(report ?? {}) });
      return report;
    },
    isApprovalEndOrCall,
  );
}
