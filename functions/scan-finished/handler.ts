import { registryOf, repositoryName } from '../../shared/gate/image.js';
import { eventCounts } from '../../shared/gate/scan.js';
import { gateHandler } from '../common/handler.js';
import type { Runtime } from '../common/runtime.js';
import { isImageScan, ScanEvent } from '../common/schemas.js';

/** An image scan finished (Inspector enhanced or ECR basic): decide every gate waiting for that digest. */
export function scanFinishedHandler(runtime: Runtime) {
  return gateHandler(
    'scan-finished',
    ScanEvent,
    runtime,
    async (event, { gate, logger }) => {
      const d = event.detail;
      logger.appendKeys({ digest: d['image-digest'] });
      const reports = await gate.scanFinished({
        source: event.source === 'aws.inspector2' ? 'inspector' : 'ecr',
        repository: repositoryName(d['repository-name']),
        registryId: registryOf(d['repository-name']) ?? event.account,
        digest: d['image-digest'],
        tags: d['image-tags'] ?? [],
        status: d['scan-status'],
        counts: eventCounts(d['finding-severity-counts']),
        time: event.time,
      });
      logger.info('scan finished', { status: d['scan-status'], gates: reports.map((r) => ({ ...r })) });
      return reports;
    },
    isImageScan,
  );
}
