import { gateHandler } from '../common/handler.js';
import type { Runtime } from '../common/runtime.js';
import { SweepEvent } from '../common/schemas.js';

/** Every minute: decide waiting gates (repairing lost events, applying the timeout) and act again where an act failed. */
export function sweepHandler(runtime: Runtime) {
  return gateHandler('sweep', SweepEvent, runtime, async (_event, { gate, logger }) => {
    const reports = await gate.sweep();
    logger.info('sweep', {
      gates: reports.length,
      changed: reports.filter((r) => r.state !== 'WAITING').length,
    });
    return reports;
  });
}
