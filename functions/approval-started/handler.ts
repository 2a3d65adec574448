import { gateId, gateKeyOf } from '../../shared/gate/model.js';
import { gateHandler } from '../common/handler.js';
import type { Runtime } from '../common/runtime.js';
import { ApprovalStartedEvent, isApprovalStarted } from '../common/schemas.js';

/** A Manual approval of a gated pipeline started: create the gate and try to decide at once. */
export function approvalStartedHandler(runtime: Runtime) {
  return gateHandler(
    'approval-started',
    ApprovalStartedEvent,
    runtime,
    async (event, { gate, logger }) => {
      const d = event.detail;
      const key = gateKeyOf(d);
      logger.appendKeys({ gate: gateId(key) });
      const report = await gate.approvalStarted({
        key,
        actionExecutionId: d['action-execution-id'],
        time: event.time,
        account: event.account,
        region: event.region,
      });
      logger.info('approval started', { ...report });
      return report;
    },
    isApprovalStarted,
  );
}
