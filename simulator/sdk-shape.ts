/*
 * Samples and scenario files hold what the APIs send (timestamps as epoch seconds), but the SDK v3 hands
 * the adapters its deserialised output, where those members are Date objects. A world or a test that answers
 * at the middleware (skipping the deserialiser) must answer with Dates too, or it exercises a path Lambda
 * never takes (the findings reader's fast path, for one, is only taken when it reads a Date as it reads a
 * number).
 */

/**
 * The timestamp members (Smithy type `timestamp`) of the outputs of every call Tollgate makes, by name: from
 * the SDK's own schemas (@aws-sdk/client-codepipeline GetPipelineState, ListActionExecutions, ListPipelines,
 * ListPipelineExecutions, GetPipelineExecution; client-ecr DescribeImages, DescribeImageScanFindings;
 * client-inspector2 ListCoverage, ListFindings). None of these names is anything but a timestamp in them.
 */
export const SDK_TIMESTAMP_MEMBERS: ReadonlySet<string> = new Set([
  // CodePipeline
  'created',
  'updated',
  'lastStatusChange',
  'lastChangedAt',
  'startTime',
  'lastUpdateTime',
  'approvedAt',
  // ECR
  'imagePushedAt',
  'lastRecordedPullTime',
  'lastActivatedAt',
  'lastArchivedAt',
  'imageScanCompletedAt',
  'vulnerabilitySourceUpdatedAt',
  // Inspector (ListFindings' findings and ECR's enhanced findings share these)
  'firstObservedAt',
  'lastObservedAt',
  'updatedAt',
  'vendorCreatedAt',
  'vendorUpdatedAt',
  'lastKnownExploitAt',
  'pushedAt',
  'lastInUseAt',
  'imagePulledAt',
  'launchedAt',
  'lastModifiedAt',
  'lastScannedAt',
  'lastScanAt',
]);

/**
 * `value` as the SDK would return it: every timestamp member that holds epoch seconds becomes a Date. A copy
 * (the value is not written). Other forms are left as they are: an ISO string in a sample is the sample's
 * word, which the reader must take or refuse as it stands.
 */
export function asSdk(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(asSdk);
  if (typeof value !== 'object' || value === null || value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SDK_TIMESTAMP_MEMBERS.has(k) && typeof v === 'number' ? new Date(v * 1000) : asSdk(v);
  }
  return out;
}
