import { gateHandler, ownOrigin } from '../common/handler.js';
import type { Runtime } from '../common/runtime.js';
import { SweepEvent } from '../common/schemas.js';

/**
 * Every minute: decide waiting gates (repairing lost events, applying the timeout) and act again where an
 * act failed; every few minutes, and on a manual invoke, also open gates for approvals in progress whose
 * STARTED event never came (`ApprovalDiscovery`), unless discovery is off. The gates are swept first, so a failed discovery does not
 * hold them up; it then throws: the sweep is not retried (the next discovery is minutes away), the event
 * goes to its failed-events queue, and that queue's alarm and the function's error alarm page someone.
 */
export function sweepHandler(runtime: Runtime) {
  return gateHandler('sweep', SweepEvent, runtime, async (event, { gate, logger, discovery }, context) => {
    // Work is not started with little of the invocation's time left (`SWEEP_STOP_MS`): Lambda's timeout
    // would cut it in half and lose the function's logs and metrics.
    const time =
      typeof context?.getRemainingTimeInMillis === 'function'
        ? { timeLeftMs: () => context.getRemainingTimeInMillis() }
        : {};
    const reports = await gate.sweep(time);
    logger.info('sweep', {
      gates: reports.length,
      changed: reports.filter((r) => r.state !== 'WAITING').length,
    });
    const scheduled = 'time' in event ? new Date(event.time) : undefined;
    if (discovery === undefined || (scheduled !== undefined && !discovery.due(scheduled))) return reports;
    // A manual invoke's event names no account or region: the function's own, from its ARN.
    const own = ownOrigin(context);
    const found = await discovery.discover(
      {
        account: ('account' in event ? event.account : undefined) ?? own.account ?? '',
        region: ('region' in event ? event.region : undefined) ?? own.region ?? '',
      },
      time,
    );
    logger.info('discovery', {
      pipelines: found.pipelines,
      inProgress: found.inProgress,
      found: found.found.length,
    });
    return [...reports, ...found.found];
  });
}
