import { ScanStatus as EcrScanStatus } from '@aws-sdk/client-ecr';
import { ScanStatusReason } from '@aws-sdk/client-inspector2';
import { describe, expect, it } from 'vitest';
import { coverageState, ecrScanState } from '../shared/gate/scan.js';

/**
 * Every status the SDKs' API models know is classified on purpose. A status the gate does not know stays
 * pending (fail closed), so a new one that means "this image will never get a verdict" would keep gates
 * waiting for the whole `scan.waitMinutes`: when the SDK (pinned, updated on purpose) brings one, this fails
 * and someone decides.
 */
const SCANNED_AT = '2024-09-04T16:55:38.411Z';

describe('scan statuses of the API models', () => {
  it('ECR: every ScanStatus is complete, pending or unsupported, as decided', () => {
    const decided: Record<EcrScanStatus, ReturnType<typeof ecrScanState>> = {
      ACTIVE: 'complete',
      COMPLETE: 'complete',
      IN_PROGRESS: 'pending',
      PENDING: 'pending',
      FAILED: 'unsupported',
      FINDINGS_UNAVAILABLE: 'unsupported',
      IMAGE_ARCHIVED: 'unsupported',
      LIMIT_EXCEEDED: 'unsupported',
      SCAN_ELIGIBILITY_EXPIRED: 'unsupported',
      UNSUPPORTED_IMAGE: 'unsupported',
    };
    expect(Object.keys(decided).sort()).toEqual(Object.values(EcrScanStatus).sort());
    for (const [status, state] of Object.entries(decided)) expect(ecrScanState(status), status).toBe(state);
    // Not in the model: never a finished scan.
    expect(ecrScanState('SOMETHING_NEW')).toBe('pending');
  });

  it('Inspector: every coverage ScanStatusReason of an ACTIVE image is complete, pending or unsupported, as decided', () => {
    // Complete only when Inspector says when it scanned the image (lastScannedAt): see the test below.
    const complete = ['SUCCESSFUL', 'SCAN_FREQUENCY_SCAN_ON_PUSH'];
    const pending = [
      // Waiting on Inspector: it scans, or retries.
      'PENDING_INITIAL_SCAN',
      'PENDING_REVIVAL_SCAN',
      'SCAN_IN_PROGRESS',
      'INTERNAL_ERROR',
      'STALE_INVENTORY',
      // Reasons of other resource kinds (EC2 instances, code repositories): never an image's; the deadline
      // decides if one ever came.
      'AGENTLESS_INSTANCE_COLLECTION_TIME_LIMIT_EXCEEDED',
      'AGENTLESS_INSTANCE_STORAGE_LIMIT_EXCEEDED',
      'DEEP_INSPECTION_COLLECTION_TIME_LIMIT_EXCEEDED',
      'DEEP_INSPECTION_DAILY_SSM_INVENTORY_LIMIT_EXCEEDED',
      'DEEP_INSPECTION_NO_INVENTORY',
      'DEEP_INSPECTION_PACKAGE_COLLECTION_LIMIT_EXCEEDED',
      'EC2_INSTANCE_STOPPED',
      'UNMANAGED_EC2_INSTANCE',
      'INTEGRATION_CONNECTION_LOST',
      'RESOURCE_STOPPED',
      'RESOURCE_UNMANAGED',
    ];
    // The image will get no verdict: decided at once by `scan.onUnsupported`.
    const unsupported = [
      'ACCESS_DENIED',
      'ACCESS_DENIED_TO_ENCRYPTION_KEY',
      'EXCLUDED_BY_TAG',
      'IMAGE_ARCHIVED',
      'IMAGE_SIZE_EXCEEDED',
      'NO_INVENTORY',
      'NO_RESOURCES_FOUND',
      'NO_SCAN_CONFIGURATION_ASSOCIATED',
      'PENDING_DISABLE',
      'RESOURCE_TERMINATED',
      'SCAN_ELIGIBILITY_EXPIRED',
      // "This image will not be covered by Amazon Inspector due to the repository scan frequency
      // configuration": whatever the time of a scan before (on push), Inspector no longer scans it.
      'SCAN_FREQUENCY_MANUAL',
      'UNSUPPORTED_CODE_ARTIFACTS',
      'UNSUPPORTED_CONFIG_FILE',
      'UNSUPPORTED_LANGUAGE',
      'UNSUPPORTED_MEDIA_TYPE',
      'UNSUPPORTED_OS',
      'UNSUPPORTED_RUNTIME',
    ];
    expect([...complete, ...pending, ...unsupported].sort()).toEqual(Object.values(ScanStatusReason).sort());
    const state = (reason: string, lastScannedAt: string | undefined) =>
      coverageState({ statusCode: 'ACTIVE', reason, lastScannedAt }).state;
    // Scanned or not, a reason that is no finished scan stays what it is.
    for (const at of [SCANNED_AT, undefined]) {
      for (const r of complete) expect(state(r, SCANNED_AT), r).toBe('complete');
      for (const r of pending) expect(state(r, at), r).toBe('pending');
      for (const r of unsupported) expect(state(r, at), r).toBe('unsupported');
    }
  });

  it('Inspector: a covered image never scanned (no lastScannedAt) is no finished scan', () => {
    const never = (reason: string) =>
      coverageState({ statusCode: 'ACTIVE', reason, lastScannedAt: undefined });
    // "This image will not be covered by Amazon Inspector due to the repository scan frequency configuration":
    // no scan will come, so the gate decides at once (scan.onUnsupported), never on two empty reads.
    expect(never('SCAN_FREQUENCY_MANUAL')).toEqual({
      state: 'unsupported',
      status: 'SCAN_FREQUENCY_MANUAL, never scanned',
    });
    // A scan on push, or one called successful, with no time yet may still come: the gate waits.
    for (const r of ['SUCCESSFUL', 'SCAN_FREQUENCY_SCAN_ON_PUSH']) {
      expect(never(r), r).toEqual({ state: 'pending', status: `${r}, not scanned yet (no lastScannedAt)` });
    }
    // Scanned once (on push, before the repository's frequency became manual): no longer scanned, and that
    // scan's findings may be closed and deleted since. Taken for a finished scan, two empty reads approved it.
    expect(
      coverageState({ statusCode: 'ACTIVE', reason: 'SCAN_FREQUENCY_MANUAL', lastScannedAt: SCANNED_AT }),
    ).toEqual({ state: 'unsupported', status: 'SCAN_FREQUENCY_MANUAL' });
    // No longer scanned, whenever it last was: no verdict, as before.
    expect(
      coverageState({ statusCode: 'INACTIVE', reason: 'SCAN_FREQUENCY_MANUAL', lastScannedAt: SCANNED_AT })
        .state,
    ).toBe('unsupported');
  });
});
