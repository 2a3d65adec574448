import { CodePipelineClient } from '@aws-sdk/client-codepipeline';
import { ECRClient } from '@aws-sdk/client-ecr';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { Inspector2Client } from '@aws-sdk/client-inspector2';
import { SNSClient } from '@aws-sdk/client-sns';
import type {
  ApprovalsPort,
  CoverageView,
  EcrScanReadResult,
  EscalationMessage,
  EventsPort,
  FindingsPort,
  FindingsReadResult,
  ImageLocator,
  ImagesPort,
  NotifierPort,
} from '../../shared/gate/ports.js';
import { CodePipelineApprovals } from './codepipeline.js';
import { EcrImages, EcrScanFindings } from './ecr.js';
import { EventBridgeEvents } from './eventbridge.js';
import { InspectorFindings } from './inspector.js';
import { DEFAULT_RETRY, type RetryOptions, sdkClientConfig } from './retry.js';
import { SnsNotifier } from './sns.js';

export {
  APPROVAL_SUMMARY_MAX,
  CodePipelineApprovals,
  CodePipelineDirectory,
  EXECUTION_PAGES_MAX,
  truncateSummary,
} from './codepipeline.js';
export { EcrImages, EcrScanFindings, NO_SCAN_YET } from './ecr.js';
export {
  EVENT_SOURCE,
  EventBridgeEvents,
  entrySize,
  type FailedEvent,
  PUT_EVENTS_MAX_BYTES,
  PUT_EVENTS_MAX_ENTRIES,
  PutEventsError,
} from './eventbridge.js';
export { InspectorFindings, SEVERITY_CHAINS } from './inspector.js';
export {
  backoffMs,
  DEFAULT_RETRY,
  isRetryableAwsError,
  type RetryOptions,
  sdkClientConfig,
  withRetries,
} from './retry.js';
export {
  FORMAT_ATTRIBUTE,
  FORMAT_VERSION,
  fitMessage,
  SNS_MESSAGE_MAX_BYTES,
  SNS_SUBJECT_MAX,
  SnsNotifier,
  snsMessageBody,
  snsSubject,
} from './sns.js';

/** The FindingsPort: Inspector for enhanced scanning, ECR for basic scanning. */
export class AwsFindings implements FindingsPort {
  constructor(
    private readonly inspector: InspectorFindings,
    private readonly ecr: EcrScanFindings,
  ) {}

  coverage(image: ImageLocator): Promise<CoverageView | undefined> {
    return this.inspector.coverage(image);
  }

  inspectorFindings(
    image: ImageLocator,
    options?: { readonly signal?: AbortSignal },
  ): Promise<FindingsReadResult> {
    return this.inspector.inspectorFindings(image, options);
  }

  ecrScanFindings(
    image: ImageLocator,
    options?: { readonly signal?: AbortSignal },
  ): Promise<EcrScanReadResult> {
    return this.ecr.ecrScanFindings(image, options);
  }
}

export interface AwsClients {
  readonly codepipeline: CodePipelineClient;
  readonly inspector: Inspector2Client;
  readonly ecr: ECRClient;
  readonly sns: SNSClient;
  readonly eventbridge: EventBridgeClient;
}

export interface AwsAdaptersOptions {
  /** Defaults to the SDK's (AWS_REGION in Lambda). */
  readonly region?: string | undefined;
  /**
   * Clients to use instead of building them (tests). An injected client keeps its own retry settings: give
   * it `maxAttempts: 1` (see `sdkClientConfig`) or its retries multiply with ours.
   */
  readonly clients?: Partial<AwsClients> | undefined;
  /** The escalation topic. Without one, `notifier.publish` throws (functions that never escalate need none). */
  readonly topicArn?: string | undefined;
  readonly retry?: RetryOptions | undefined;
}

export interface AwsAdapters {
  readonly approvals: ApprovalsPort;
  readonly findings: FindingsPort;
  readonly images: ImagesPort;
  readonly notifier: NotifierPort;
  readonly events: EventsPort;
}

class UnconfiguredNotifier implements NotifierPort {
  async publish(_message: EscalationMessage): Promise<never> {
    throw new Error('no SNS topic configured for escalations (createAwsAdapters: topicArn)');
  }
}

export function createAwsClients(region?: string): AwsClients {
  const config = sdkClientConfig(region);
  return {
    codepipeline: new CodePipelineClient(config),
    inspector: new Inspector2Client(config),
    ecr: new ECRClient(config),
    sns: new SNSClient(config),
    eventbridge: new EventBridgeClient(config),
  };
}

export function createAwsAdapters(options: AwsAdaptersOptions = {}): AwsAdapters {
  const config = sdkClientConfig(options.region);
  const given = options.clients ?? {};
  const retry = options.retry ?? DEFAULT_RETRY;
  const ecr = given.ecr ?? new ECRClient(config);
  return {
    approvals: new CodePipelineApprovals(given.codepipeline ?? new CodePipelineClient(config), retry),
    findings: new AwsFindings(
      new InspectorFindings(given.inspector ?? new Inspector2Client(config), retry),
      new EcrScanFindings(ecr, retry),
    ),
    images: new EcrImages(ecr, retry),
    notifier:
      options.topicArn === undefined || options.topicArn === ''
        ? new UnconfiguredNotifier()
        : new SnsNotifier(given.sns ?? new SNSClient(config), options.topicArn, retry),
    events: new EventBridgeEvents(given.eventbridge ?? new EventBridgeClient(config), retry),
  };
}
