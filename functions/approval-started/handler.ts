import { gateHandler } from '../common/handler.js';
import type { Runtime } from '../common/runtime.js';
import { ApprovalStartedEvent } from '../common/schemas.js';

/** A Manual approval of a gated pipeline started: create the gate and try to decide at once. */
export function approvalStartedHandler(runtime: Runtime) {
  return gateHandler('approval-started', ApprovalStartedEvent, runtime, async (event, { gate, logger }) => {
    const d = event.detail;
    const key = { pipeline: d.pipeline, executionId: d['execution-id'], stage: d.stage, action: d.action };
    logger.appendKeys({ gate: `${key.pipeline}/${key.executionId}/${key.stage}/${key.action}` });
    const report = await gate.approvalStarted({
      key,
      actionExecutionId: d['action-execution-id'],
      time: event.time,
      account: event.account,
      region: event.region,
    });
    logger.info('approval started', { ...report });
    return report;
  });
}
