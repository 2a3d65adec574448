/*
 * In the Lambda bundles only (an esbuild `alias`, infra/bundling.ts), this module stands in for
 * `@smithy/core/event-streams` (~15 KB of every bundle). The SDK loads it only for an operation with an event
 * stream in its input or output; none of the operations Tollgate calls (CodePipeline, ECR, Inspector, SNS,
 * EventBridge, DynamoDB, S3 PutObject) has one. Should one ever be called, it fails loudly here rather than subtly.
 */

const WHY = 'AWS SDK event streams are not in Tollgate’s Lambda bundles (infra/bundling.ts)';

export class EventStreamSerde {
  constructor() {
    throw new Error(WHY);
  }
}

export function eventStreamSerdeProvider(): never {
  throw new Error(WHY);
}

/**
 * S3's client resolves its event-stream configuration when it is built (S3 has SelectObjectContent): it gets
 * a marshaller that fails when used, and nothing else of S3 needs one.
 */
export function resolveEventStreamSerdeConfig<T extends object>(
  input: T,
): T & { eventStreamMarshaller: unknown } {
  const fail = (): never => {
    throw new Error(WHY);
  };
  return Object.assign(input, { eventStreamMarshaller: { serialize: fail, deserialize: fail } });
}
