import { Agent, createServer } from 'node:http';
import { type AddressInfo, createConnection, type NetConnectOpts, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApprovalAlreadyCompletedException,
  CodePipelineClient,
  CodePipelineServiceException,
  GetPipelineExecutionCommand,
  type GetPipelineExecutionCommandOutput,
  GetPipelineStateCommand,
  type GetPipelineStateCommandOutput,
  InvalidApprovalTokenException,
  ListActionExecutionsCommand,
  type ListActionExecutionsCommandOutput,
  ListPipelineExecutionsCommand,
  ListPipelinesCommand,
  PipelineExecutionNotFoundException,
  PipelineNotFoundException,
  PutApprovalResultCommand,
  type PutApprovalResultCommandOutput,
} from '@aws-sdk/client-codepipeline';
import {
  DescribeImageScanFindingsCommand,
  type DescribeImageScanFindingsCommandOutput,
  DescribeImagesCommand,
  type DescribeImagesCommandOutput,
  ECRClient,
  ECRServiceException,
  ImageNotFoundException,
  RepositoryNotFoundException,
  ScanNotFoundException,
} from '@aws-sdk/client-ecr';
import {
  EventBridgeClient,
  EventBridgeServiceException,
  ThrottlingException as EventBridgeThrottlingException,
  PutEventsCommand,
} from '@aws-sdk/client-eventbridge';
import {
  AccessDeniedException,
  type CoveredResource,
  Inspector2Client,
  type Severity as InspectorSeverity,
  InternalServerException,
  ListCoverageCommand,
  type ListCoverageCommandInput,
  ListFindingsCommand,
  type ListFindingsCommandInput,
  type ListFindingsCommandOutput,
  Severity,
  ThrottlingException,
} from '@aws-sdk/client-inspector2';
import { PublishCommand, SNSClient, SNSServiceException, ThrottledException } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  backoffMs,
  CodePipelineApprovals,
  CodePipelineDirectory,
  createAwsAdapters,
  createAwsClients,
  EcrImages,
  EcrScanFindings,
  EventBridgeEvents,
  EXECUTION_PAGES_MAX,
  InspectorFindings,
  isRetryableAwsError,
  NO_SCAN_YET,
  PUT_EVENTS_MAX_ENTRIES,
  PutEventsError,
  type RetryOptions,
  SEVERITY_CHAINS,
  SNS_MESSAGE_MAX_BYTES,
  SNS_SUBJECT_MAX,
  SnsNotifier,
  snsSubject,
  truncateSummary,
  withRetries,
} from '../adapters/aws/index.js';
import { COVERAGE_PAGES_MAX } from '../adapters/aws/inspector.js';
import {
  HTTP_TIMEOUTS,
  type HttpTimeouts,
  httpHandlerConfig,
  mayHaveLanded,
  sdkClientConfig,
} from '../adapters/aws/retry.js';
import { createDocumentClient } from '../adapters/dynamodb/store.js';
import { ECR_FINDINGS_NOT_READY } from '../shared/findings/readers.js';
import { partitionOf } from '../shared/gate/events.js';
import type { ImageLocator, TollgateEvent } from '../shared/gate/ports.js';
import { coverageState, ecrScanState } from '../shared/gate/scan.js';
import { asSdk } from '../simulator/sdk-shape.js';
import { fixtureJson } from './helpers.js';

// ---------------------------------------------------------------------------------------------------------
// Helpers

const DIGEST = 'sha256:84f507df33c6864d49c296fb734192696e4cb6f78166ac51ac8b9b118181085d';
const EXECUTION = '12345678-1234-5678-abcd-12345678abcd';
const TOKEN = '1a2b3c4d-573f-4ea7-a67e-0123456789ab';
const REGION = 'eu-central-1';
const IMAGE: ImageLocator = { repository: 'inspector2', digest: DIGEST, registryId: '123456789012' };

/** Retries without waiting; the waits asked for are recorded. */
function fastRetry(attempts = 5): RetryOptions & { readonly sleeps: number[] } {
  const sleeps: number[] = [];
  return {
    attempts,
    baseMs: 100,
    maxDelayMs: 1_000,
    random: () => 0.5,
    sleeps,
    sleep: async (ms, signal) => {
      signal?.throwIfAborted();
      sleeps.push(ms);
    },
  };
}

/** A failure before the request went out, as Node reports it through the SDK (`code`, `syscall`). */
function networkError(code: string, syscall = code.endsWith('UNREACH') ? 'connect' : 'getaddrinfo') {
  const what =
    syscall === 'getaddrinfo'
      ? `getaddrinfo ${code} codepipeline.eu-central-1.amazonaws.com`
      : `connect ${code} 10.0.0.1:443`;
  return Object.assign(new Error(what), { code, syscall, $metadata: { attempts: 1, totalRetryDelay: 0 } });
}

/** The HTTP handler's connection timeout, worded as @smithy/node-http-handler words it. */
function connectTimeout() {
  return Object.assign(
    new Error(
      '@smithy/node-http-handler - the request socket did not establish a connection with the server within the configured timeout of 3000 ms.',
    ),
    { name: 'TimeoutError', $metadata: { attempts: 1, totalRetryDelay: 0 } },
  );
}

/** A sample as the SDK would return it. */
function sample<T>(path: string): T {
  return asSdk(fixtureJson(`aws/${path}`)) as T;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

type ErrorClass = new (options: {
  name: string;
  $fault: 'client' | 'server';
  $metadata: { httpStatusCode?: number };
  message: string;
}) => Error;

/** Errors as the SDK throws them, for a service without a modelled class of that name. */
function serviceErrors(Base: ErrorClass, throttleName = 'ThrottlingException') {
  return {
    throttle: () =>
      new Base({
        name: throttleName,
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
        message: 'Rate exceeded',
      }),
    // No known name: only the status says it is a server fault.
    server: () =>
      new Base({
        name: 'UnexpectedServerError',
        $fault: 'server',
        $metadata: { httpStatusCode: 503 },
        message: 'Service Unavailable',
      }),
    denied: () =>
      new Base({
        name: 'AccessDeniedException',
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
        message: 'User is not authorized to perform this action',
      }),
  };
}

const inspectorErrors = {
  throttle: () => new ThrottlingException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 429 } }),
  server: () =>
    new InternalServerException({ message: 'Internal failure', $metadata: { httpStatusCode: 500 } }),
  denied: () => new AccessDeniedException({ message: 'Not authorized', $metadata: { httpStatusCode: 403 } }),
};

/** The options `send` was called with (the stub is typed with the command only). */
function sendOptionsOf(call: { args: unknown }): { abortSignal?: AbortSignal } | undefined {
  return (call.args as unknown[])[1] as { abortSignal?: AbortSignal } | undefined;
}

function codepipeline() {
  const client = new CodePipelineClient({ region: REGION });
  return { client, mock: mockClient(client) };
}

function inspector() {
  const client = new Inspector2Client({ region: REGION });
  return { client, mock: mockClient(client) };
}

/** The client as if its region were unknown: the adapter cannot write an image's resource id then. */
function noRegion(client: Inspector2Client): Inspector2Client {
  client.config.region = async () => '';
  return client;
}

function ecr() {
  const client = new ECRClient({ region: REGION });
  return { client, mock: mockClient(client) };
}

// ---------------------------------------------------------------------------------------------------------
// CodePipeline

describe('CodePipeline: GetPipelineState', () => {
  it('normalises the stages, their execution id and each action latest execution', async () => {
    const { client, mock } = codepipeline();
    mock
      .on(GetPipelineStateCommand)
      .resolves(
        sample<GetPipelineStateCommandOutput>('get-pipeline-state.approval-in-progress.model-derived.json'),
      );
    const state = await new CodePipelineApprovals(client, fastRetry()).pipelineState('myPipeline');
    expect(mock.commandCalls(GetPipelineStateCommand)[0]!.args[0].input).toEqual({ name: 'myPipeline' });
    expect(state).toEqual([
      {
        name: 'Source',
        executionId: EXECUTION,
        actions: [
          {
            name: 'Source',
            status: 'Succeeded',
            token: undefined,
            actionExecutionId: '0c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f',
            since: '2024-09-04T16:55:30.101Z',
          },
        ],
      },
      {
        name: 'SecurityGate',
        executionId: EXECUTION,
        actions: [
          {
            name: 'ImageVulnerabilityApproval',
            status: 'InProgress',
            token: TOKEN,
            actionExecutionId: '47f821c5-a902-44b2-ae61-b878d31ecd21',
            // lastStatusChange, an epoch number on the wire: when the approval started waiting.
            since: '2024-09-04T16:55:40.455Z',
          },
        ],
      },
    ]);
  });

  it('leaves out what a stage or action that never ran does not have', async () => {
    const { client, mock } = codepipeline();
    mock.on(GetPipelineStateCommand).resolves(sample('get-pipeline-state.awscli-example.json'));
    const state = await new CodePipelineApprovals(client, fastRetry()).pipelineState('MyFirstPipeline');
    expect(state[1]).toEqual({
      name: 'Beta',
      executionId: undefined,
      actions: [
        {
          name: 'CodePipelineDemoFleet',
          status: 'Succeeded',
          token: undefined,
          actionExecutionId: undefined,
          since: '2015-10-29T16:51:33.131Z',
        },
      ],
    });
  });
});

describe('CodePipeline: ListPipelines (the sweep looking for approvals no event announced)', () => {
  // The API's shape: a summary per pipeline (name, version, type, execution mode, times as epoch numbers).
  const summary = (name: string) => ({
    name,
    version: 3,
    pipelineType: 'V2' as const,
    executionMode: 'SUPERSEDED' as const,
    created: new Date('2026-01-05T10:00:00Z'),
    updated: new Date('2026-11-20T10:00:00Z'),
  });

  it('reads every page, 1,000 names at a time, after a throttled call', async () => {
    const { client, mock } = codepipeline();
    mock
      .on(ListPipelinesCommand)
      .rejectsOnce(serviceErrors(CodePipelineServiceException).throttle())
      .resolvesOnce({ pipelines: [summary('billing-api'), summary('payments-api')], nextToken: 'page-2' })
      .resolvesOnce({ pipelines: [summary('web-frontend'), {}] });
    const names = (await new CodePipelineDirectory(client, fastRetry()).pipelineSummaries()).map(
      (p) => p.name,
    );
    expect(names).toEqual(['billing-api', 'payments-api', 'web-frontend']);
    expect(mock.commandCalls(ListPipelinesCommand).map((c) => c.args[0].input)).toEqual([
      { maxResults: 1000 },
      { maxResults: 1000 },
      { maxResults: 1000, nextToken: 'page-2' },
    ]);
  });

  it('refuses a nextToken the service had already returned, rather than loop', async () => {
    const { client, mock } = codepipeline();
    mock.on(ListPipelinesCommand).resolves({ pipelines: [summary('billing-api')], nextToken: 'again' });
    await expect(new CodePipelineDirectory(client, fastRetry()).pipelineSummaries()).rejects.toThrow(
      /ListPipelines returned a nextToken it had already returned/,
    );
  });
});

describe('CodePipeline: ListPipelineExecutions (discovery in PARALLEL execution mode)', () => {
  const SINCE = new Date('2026-11-17T09:00:00Z');
  // The API's shape: newest first, a summary per execution.
  const summary = (id: string, status: 'InProgress' | 'Succeeded', startTime: Date | undefined) => ({
    pipelineExecutionId: id,
    status,
    ...(startTime === undefined ? {} : { startTime }),
    lastUpdateTime: new Date('2026-11-25T09:00:00Z'),
    trigger: {
      triggerType: 'StartPipelineExecution' as const,
      triggerDetail: 'arn:aws:iam::123456789012:user/dev',
    },
    executionMode: 'PARALLEL' as const,
    executionType: 'STANDARD' as const,
  });
  const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

  it('reads pages until one holds nothing started since the lookback (keeping all it read), after a throttled call', async () => {
    const { client, mock } = codepipeline();
    mock
      .on(ListPipelineExecutionsCommand)
      .rejectsOnce(serviceErrors(CodePipelineServiceException).throttle())
      .resolvesOnce({
        pipelineExecutionSummaries: [
          summary(id(1), 'InProgress', new Date('2026-11-25T08:00:00Z')),
          // No start time: kept, it may be recent.
          summary(id(2), 'InProgress', undefined),
        ],
        nextToken: 'page-2',
      })
      .resolvesOnce({
        pipelineExecutionSummaries: [
          summary(id(3), 'Succeeded', new Date('2026-11-18T08:00:00Z')),
          summary(id(4), 'InProgress', new Date('2026-11-10T08:00:00Z')),
        ],
        nextToken: 'page-3',
      })
      .resolvesOnce({
        pipelineExecutionSummaries: [summary(id(5), 'InProgress', new Date('2026-11-09T08:00:00Z'))],
        nextToken: 'page-4',
      });
    const views = await new CodePipelineDirectory(client, fastRetry()).recentExecutions('ledger-api', SINCE);
    expect(views).toEqual({
      complete: true,
      executions: [
        { executionId: id(1), status: 'InProgress', startedAt: '2026-11-25T08:00:00.000Z' },
        { executionId: id(2), status: 'InProgress', startedAt: undefined },
        { executionId: id(3), status: 'Succeeded', startedAt: '2026-11-18T08:00:00.000Z' },
        // Older than the lookback, but on pages read: still in progress, still worth a look.
        { executionId: id(4), status: 'InProgress', startedAt: '2026-11-10T08:00:00.000Z' },
        { executionId: id(5), status: 'InProgress', startedAt: '2026-11-09T08:00:00.000Z' },
        // Each with its own mode, as the summary gives it.
      ].map((v) => ({ ...v, executionMode: 'PARALLEL' })),
    });
    expect(mock.commandCalls(ListPipelineExecutionsCommand).map((c) => c.args[0].input)).toEqual([
      { pipelineName: 'ledger-api', maxResults: 100 },
      { pipelineName: 'ledger-api', maxResults: 100 },
      { pipelineName: 'ledger-api', maxResults: 100, nextToken: 'page-2' },
      { pipelineName: 'ledger-api', maxResults: 100, nextToken: 'page-3' },
    ]);
  });

  it(`stops at ${EXECUTION_PAGES_MAX} pages of recent executions and says the list is not complete`, async () => {
    const { client, mock } = codepipeline();
    let page = 0;
    mock.on(ListPipelineExecutionsCommand).callsFake(async () => {
      page++;
      // An execution that started meanwhile pushes the last one of a page onto the next: read twice.
      return {
        pipelineExecutionSummaries: [
          summary(id(page - 1), 'InProgress', new Date('2026-11-25T08:00:00Z')),
          summary(id(page), 'InProgress', new Date('2026-11-25T08:00:00Z')),
        ],
        nextToken: `page-${page + 1}`,
      };
    });
    const listed = await new CodePipelineDirectory(client, fastRetry()).recentExecutions('ledger-api', SINCE);
    expect(listed.complete).toBe(false);
    expect(listed.executions.map((x) => x.executionId)).toEqual(
      Array.from({ length: EXECUTION_PAGES_MAX + 1 }, (_, i) => id(i)),
    );
    expect(page).toBe(EXECUTION_PAGES_MAX);
  });

  it('an empty nextToken is the end, like none', async () => {
    const { client, mock } = codepipeline();
    mock.on(ListPipelineExecutionsCommand).resolves({
      pipelineExecutionSummaries: [summary(id(1), 'InProgress', new Date('2026-11-25T08:00:00Z'))],
      nextToken: '',
    });
    const listed = await new CodePipelineDirectory(client, fastRetry()).recentExecutions('ledger-api', SINCE);
    expect(listed).toMatchObject({ complete: true, executions: [{ executionId: id(1) }] });
    expect(mock.commandCalls(ListPipelineExecutionsCommand)).toHaveLength(1);
  });

  it('a pipeline that is gone has no executions; any other failure rejects', async () => {
    const { client, mock } = codepipeline();
    mock
      .on(ListPipelineExecutionsCommand)
      .rejectsOnce(
        new PipelineNotFoundException({ message: 'Pipeline not found', $metadata: { httpStatusCode: 400 } }),
      );
    const directory = new CodePipelineDirectory(client, fastRetry());
    expect(await directory.recentExecutions('gone', SINCE)).toEqual({ executions: [], complete: true });
    mock.on(ListPipelineExecutionsCommand).rejects(serviceErrors(CodePipelineServiceException).denied());
    await expect(directory.recentExecutions('ledger-api', SINCE)).rejects.toMatchObject({
      name: 'AccessDeniedException',
    });
  });
});

describe('CodePipeline: ListActionExecutions', () => {
  const details = sample<ListActionExecutionsCommandOutput>(
    'list-action-executions.approval-in-progress.model-derived.json',
  ).actionExecutionDetails!;
  // A PARALLEL-mode approval of an older execution: no resolved configuration, the token in the output.
  const parallel = clone(details[0]!);
  parallel.actionExecutionId = '5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9';
  delete parallel.input!.resolvedConfiguration;
  parallel.output = { executionResult: { externalExecutionId: '9f8e7d6c-5b4a-4321-8fed-cba987654321' } };
  // The same run once a reviewer answered: who, when, and the comment, as the sweep reads them (reconcile.ts).
  const answered = clone(parallel);
  answered.status = 'Succeeded';
  answered.updatedBy = 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice';
  answered.lastUpdateTime = new Date('2024-09-04T17:30:00.000Z');
  answered.output = {
    executionResult: {
      externalExecutionId: '9f8e7d6c-5b4a-4321-8fed-cba987654321',
      externalExecutionSummary: 'checked with the team',
    },
  };

  it('follows every page with the execution filter and normalises each entry', async () => {
    const { client, mock } = codepipeline();
    mock
      .on(ListActionExecutionsCommand)
      .resolvesOnce({ actionExecutionDetails: [details[0]!], nextToken: 'page-2' })
      .resolvesOnce({ actionExecutionDetails: [details[1]!], nextToken: 'page-3' })
      .resolvesOnce({ actionExecutionDetails: [parallel, answered] });
    const views = await new CodePipelineApprovals(client, fastRetry()).actionExecutions(
      'myPipeline',
      EXECUTION,
    );

    const inputs = mock.commandCalls(ListActionExecutionsCommand).map((c) => c.args[0].input);
    expect(inputs.map((i) => i.nextToken)).toEqual([undefined, 'page-2', 'page-3']);
    for (const i of inputs) {
      expect(i).toMatchObject({ pipelineName: 'myPipeline', filter: { pipelineExecutionId: EXECUTION } });
    }
    expect(views).toEqual([
      {
        stage: 'SecurityGate',
        action: 'ImageVulnerabilityApproval',
        actionExecutionId: '47f821c5-a902-44b2-ae61-b878d31ecd21',
        status: 'InProgress',
        customData: `{"repositoryName":"inspector2","imageDigest":"${DIGEST}","executionId":"${EXECUTION}"}`,
        externalExecutionId: undefined,
        startedAt: '2024-09-04T16:55:40.455Z',
        manualApproval: true,
        updatedBy: undefined,
        updatedAt: '2024-09-04T16:55:40.455Z',
        summary: undefined,
      },
      {
        stage: 'Source',
        action: 'ImageSource',
        actionExecutionId: '0c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f',
        status: 'Succeeded',
        customData: undefined,
        externalExecutionId: DIGEST,
        startedAt: '2024-09-04T16:55:28.500Z',
        // An ECR source: its external id is the image digest, not an approval token.
        manualApproval: false,
        updatedBy: undefined,
        updatedAt: '2024-09-04T16:55:30.101Z',
        summary: 'Image pushed',
      },
      {
        stage: 'SecurityGate',
        action: 'ImageVulnerabilityApproval',
        actionExecutionId: '5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9',
        status: 'InProgress',
        // The unresolved configuration, variables and all: the only CustomData there is.
        customData:
          '{"repositoryName":"#{SourceVariables.RepositoryName}","imageDigest":"#{SourceVariables.ImageDigest}","executionId":"#{codepipeline.PipelineExecutionId}"}',
        externalExecutionId: '9f8e7d6c-5b4a-4321-8fed-cba987654321',
        startedAt: '2024-09-04T16:55:40.455Z',
        manualApproval: true,
        updatedBy: undefined,
        updatedAt: '2024-09-04T16:55:40.455Z',
        summary: undefined,
      },
      {
        stage: 'SecurityGate',
        action: 'ImageVulnerabilityApproval',
        actionExecutionId: '5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9',
        status: 'Succeeded',
        customData:
          '{"repositoryName":"#{SourceVariables.RepositoryName}","imageDigest":"#{SourceVariables.ImageDigest}","executionId":"#{codepipeline.PipelineExecutionId}"}',
        externalExecutionId: '9f8e7d6c-5b4a-4321-8fed-cba987654321',
        startedAt: '2024-09-04T16:55:40.455Z',
        manualApproval: true,
        updatedBy: 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice',
        updatedAt: '2024-09-04T17:30:00.000Z',
        summary: 'checked with the team',
      },
    ]);
  });

  it('rejects when a later page fails: no partial list', async () => {
    const { client, mock } = codepipeline();
    mock
      .on(ListActionExecutionsCommand)
      .resolvesOnce({ actionExecutionDetails: [details[0]!], nextToken: 'page-2' })
      .rejectsOnce(serviceErrors(CodePipelineServiceException).denied());
    await expect(
      new CodePipelineApprovals(client, fastRetry()).actionExecutions('myPipeline', EXECUTION),
    ).rejects.toMatchObject({ name: 'AccessDeniedException' });
    expect(mock.commandCalls(ListActionExecutionsCommand)).toHaveLength(2);
  });

  it('refuses a nextToken it has seen before instead of paging forever', async () => {
    const { client, mock } = codepipeline();
    mock.on(ListActionExecutionsCommand).resolves({ actionExecutionDetails: [], nextToken: 'again' });
    await expect(
      new CodePipelineApprovals(client, fastRetry()).actionExecutions('myPipeline', EXECUTION),
    ).rejects.toThrow(/already returned/);
    expect(mock.commandCalls(ListActionExecutionsCommand)).toHaveLength(2);
  });
});

describe('CodePipeline: GetPipelineExecution', () => {
  it('gives the status, the execution mode and the variables by name', async () => {
    const { client, mock } = codepipeline();
    mock
      .on(GetPipelineExecutionCommand)
      .resolves(
        sample<GetPipelineExecutionCommandOutput>('get-pipeline-execution.v2-variables.model-derived.json'),
      );
    const view = await new CodePipelineApprovals(client, fastRetry()).pipelineExecution(
      'myPipeline',
      EXECUTION,
    );
    expect(mock.commandCalls(GetPipelineExecutionCommand)[0]!.args[0].input).toEqual({
      pipelineName: 'myPipeline',
      pipelineExecutionId: EXECUTION,
    });
    expect(view).toEqual({
      status: 'InProgress',
      executionMode: 'QUEUED',
      executionType: 'STANDARD',
      variables: { ImageDigest: DIGEST, RepositoryName: 'inspector2' },
    });
  });

  it('no such execution (or pipeline) is an answer, undefined; any other error is thrown', async () => {
    const { client, mock } = codepipeline();
    const approvals = new CodePipelineApprovals(client, fastRetry());
    mock
      .on(GetPipelineExecutionCommand)
      .rejects(new PipelineExecutionNotFoundException({ message: 'not found', $metadata: {} }));
    expect(await approvals.pipelineExecution('myPipeline', EXECUTION)).toBeUndefined();
    mock
      .on(GetPipelineExecutionCommand)
      .rejects(new PipelineNotFoundException({ message: 'gone', $metadata: {} }));
    expect(await approvals.pipelineExecution('myPipeline', EXECUTION)).toBeUndefined();
    mock.on(GetPipelineExecutionCommand).rejects(
      Object.assign(new Error('denied'), {
        name: 'AccessDeniedException',
        $metadata: { httpStatusCode: 403 },
      }),
    );
    await expect(approvals.pipelineExecution('myPipeline', EXECUTION)).rejects.toThrow('denied');
  });
});

describe('CodePipeline: PutApprovalResult', () => {
  const request = {
    pipeline: 'myPipeline',
    stage: 'SecurityGate',
    action: 'ImageVulnerabilityApproval',
    token: TOKEN,
    result: { status: 'Rejected', summary: 'REJECT by policy baseline: no-critical' },
  } as const;

  it('sends the result and answers accepted', async () => {
    const { client, mock } = codepipeline();
    mock
      .on(PutApprovalResultCommand)
      .resolves(sample<PutApprovalResultCommandOutput>('put-approval-result-output.model-derived.json'));
    expect(await new CodePipelineApprovals(client, fastRetry()).putApprovalResult(request)).toBe('accepted');
    expect(mock.commandCalls(PutApprovalResultCommand)[0]!.args[0].input).toEqual({
      pipelineName: 'myPipeline',
      stageName: 'SecurityGate',
      actionName: 'ImageVulnerabilityApproval',
      token: TOKEN,
      result: { status: 'Rejected', summary: 'REJECT by policy baseline: no-critical' },
    });
  });

  it('maps ApprovalAlreadyCompletedException to already-completed', async () => {
    const { client, mock } = codepipeline();
    mock
      .on(PutApprovalResultCommand)
      .rejects(
        new ApprovalAlreadyCompletedException({ message: 'The approval has been completed', $metadata: {} }),
      );
    expect(await new CodePipelineApprovals(client, fastRetry()).putApprovalResult(request)).toBe(
      'already-completed',
    );
    expect(mock.commandCalls(PutApprovalResultCommand)).toHaveLength(1);
  });

  it('already completed after a retry of a call that may have landed: not "someone else", the answer says so', async () => {
    const completed = () =>
      new ApprovalAlreadyCompletedException({ message: 'The approval has been completed', $metadata: {} });
    const reset = Object.assign(new Error('socket hang up'), { name: 'Error', code: 'ECONNRESET' });
    const { client, mock } = codepipeline();
    mock.on(PutApprovalResultCommand).rejectsOnce(reset).rejects(completed());
    expect(await new CodePipelineApprovals(client, fastRetry()).putApprovalResult(request)).toBe(
      'completed-after-lost-answer',
    );
    expect(mock.commandCalls(PutApprovalResultCommand)).toHaveLength(2);

    // The token refused after such a call ("already received a response"): the same, not a moved execution.
    const refusedToken = codepipeline();
    refusedToken.mock
      .on(PutApprovalResultCommand)
      .rejectsOnce(reset)
      .rejects(
        new InvalidApprovalTokenException({ message: 'The approval token is invalid', $metadata: {} }),
      );
    expect(await new CodePipelineApprovals(refusedToken.client, fastRetry()).putApprovalResult(request)).toBe(
      'completed-after-lost-answer',
    );

    // A connection never made cannot have landed either.
    const refused = codepipeline();
    refused.mock
      .on(PutApprovalResultCommand)
      .rejectsOnce(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))
      .rejects(completed());
    expect(await new CodePipelineApprovals(refused.client, fastRetry()).putApprovalResult(request)).toBe(
      'already-completed',
    );

    // Throttling is refused before any work: the retry's answer is about someone else.
    const throttled = codepipeline();
    throttled.mock
      .on(PutApprovalResultCommand)
      .rejectsOnce(serviceErrors(CodePipelineServiceException).throttle())
      .rejects(completed());
    expect(await new CodePipelineApprovals(throttled.client, fastRetry()).putApprovalResult(request)).toBe(
      'already-completed',
    );
  });

  it('already completed after a failure before the request went out: retried, and the answer is about someone else', async () => {
    const completed = () =>
      new ApprovalAlreadyCompletedException({ message: 'The approval has been completed', $metadata: {} });
    for (const failure of [
      networkError('ENOTFOUND'),
      networkError('EAI_AGAIN'),
      networkError('EHOSTUNREACH'),
      networkError('ENETUNREACH'),
      connectTimeout(),
    ]) {
      const { client, mock } = codepipeline();
      mock.on(PutApprovalResultCommand).rejectsOnce(failure).rejects(completed());
      expect(
        await new CodePipelineApprovals(client, fastRetry()).putApprovalResult(request),
        failure.message,
      ).toBe('already-completed');
      expect(mock.commandCalls(PutApprovalResultCommand)).toHaveLength(2);
      // And when the retry lands: accepted.
      const ok = codepipeline();
      ok.mock.on(PutApprovalResultCommand).rejectsOnce(failure).resolves({});
      expect(await new CodePipelineApprovals(ok.client, fastRetry()).putApprovalResult(request)).toBe(
        'accepted',
      );
    }
  });

  it('maps InvalidApprovalTokenException to invalid-token', async () => {
    const { client, mock } = codepipeline();
    const body = fixtureJson('aws/put-approval-result-error.invalid-token.shape-example.json') as {
      message: string;
    };
    mock
      .on(PutApprovalResultCommand)
      .rejects(
        new InvalidApprovalTokenException({ message: body.message, $metadata: { httpStatusCode: 400 } }),
      );
    expect(await new CodePipelineApprovals(client, fastRetry()).putApprovalResult(request)).toBe(
      'invalid-token',
    );
    expect(mock.commandCalls(PutApprovalResultCommand)).toHaveLength(1);
  });

  it('throws any other error, with the approval token cut out of it', async () => {
    const { client, mock } = codepipeline();
    const error = new CodePipelineServiceException({
      name: 'ValidationException',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
      message: `1 validation error detected: Value '${TOKEN}' at 'token' failed to satisfy constraint`,
    });
    mock.on(PutApprovalResultCommand).rejects(error);
    const thrown: unknown = await new CodePipelineApprovals(client, fastRetry())
      .putApprovalResult(request)
      .catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(Error);
    const e = thrown as Error;
    expect(e.name).toBe('ValidationException');
    expect(e.message).toContain('<approval token>');
    expect(e.message).not.toContain(TOKEN);
    expect(e.stack ?? '').not.toContain(TOKEN);
    expect(JSON.stringify(e)).not.toContain(TOKEN);
    expect(mock.commandCalls(PutApprovalResultCommand)).toHaveLength(1);
  });

  it('keeps the summary within 512 characters', async () => {
    const { client, mock } = codepipeline();
    mock.on(PutApprovalResultCommand).resolves({});
    const long = `REJECT ${'x'.repeat(600)}`;
    await new CodePipelineApprovals(client, fastRetry()).putApprovalResult({
      ...request,
      result: { status: 'Rejected', summary: long },
    });
    const sent = mock.commandCalls(PutApprovalResultCommand)[0]!.args[0].input.result!.summary!;
    expect(sent).toHaveLength(512);
    expect(sent.endsWith('…')).toBe(true);
    expect(sent.startsWith('REJECT xxx')).toBe(true);
  });

  it('truncateSummary leaves a summary of 512 alone and never splits a surrogate pair', () => {
    const exact = 'a'.repeat(512);
    expect(truncateSummary(exact)).toBe(exact);
    const emoji = `${'a'.repeat(510)}😀😀`;
    const cut = truncateSummary(emoji);
    expect(cut.length).toBeLessThanOrEqual(512);
    expect(cut).toBe(`${'a'.repeat(510)}…`);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Inspector2

function coveredResource(digest: string, reason = 'SUCCESSFUL', account = '123456789012'): CoveredResource {
  return {
    resourceType: 'AWS_ECR_CONTAINER_IMAGE',
    resourceId: `arn:aws:ecr:${REGION}:${account}:repository/inspector2/${digest}`,
    accountId: account,
    scanType: 'PACKAGE',
    scanStatus: { statusCode: 'ACTIVE', reason: reason as 'SUCCESSFUL' },
    lastScannedAt: new Date('2024-09-04T16:55:38.411Z'),
    resourceMetadata: { ecrImage: { tags: ['ubuntu_latest'] } },
  };
}

/** The view of `coveredResource(…, reason)`, as the adapter normalises it. */
const coverageOf = (reason: string) => ({
  statusCode: 'ACTIVE',
  reason,
  lastScannedAt: '2024-09-04T16:55:38.411Z',
});

const OTHER = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;

describe('Inspector2: ListCoverage', () => {
  it("asks for the image's resource id first: one request when Inspector covers it", async () => {
    const { client, mock } = inspector();
    mock.on(ListCoverageCommand).resolves({ coveredResources: [coveredResource(DIGEST)] });
    const view = await new InspectorFindings(client, fastRetry()).coverage(IMAGE);
    expect(view).toEqual(coverageOf('SUCCESSFUL'));
    const inputs = mock.commandCalls(ListCoverageCommand).map((c) => c.args[0].input);
    expect(inputs).toHaveLength(1);
    expect(inputs[0]!.filterCriteria).toEqual({
      ecrRepositoryName: [{ comparison: 'EQUALS', value: 'inspector2' }],
      resourceType: [{ comparison: 'EQUALS', value: 'AWS_ECR_CONTAINER_IMAGE' }],
      accountId: [{ comparison: 'EQUALS', value: '123456789012' }],
      resourceId: [
        { comparison: 'EQUALS', value: `arn:aws:ecr:${REGION}:123456789012:repository/inspector2/${DIGEST}` },
      ],
    });
    expect(partitionOf('cn-north-1')).toBe('aws-cn');
    expect(partitionOf('us-gov-west-1')).toBe('aws-us-gov');
    expect(partitionOf('eu-west-1')).toBe('aws');
  });

  it('the exact query finding nothing: not covered, with no listing of the repository (one call a sweep)', async () => {
    const { client, mock } = inspector();
    mock.on(ListCoverageCommand).resolves({ coveredResources: [] });
    expect(await new InspectorFindings(client, fastRetry()).coverage(IMAGE)).toBeUndefined();
    const inputs = mock.commandCalls(ListCoverageCommand).map((c) => c.args[0].input);
    expect(inputs).toHaveLength(1);
    expect(inputs[0]!.filterCriteria?.resourceId).toBeDefined();
  });

  it('with no registry to name the image exactly, lists the repository: pages until the image turns up, and normalises it', async () => {
    const { client, mock } = inspector();
    const listed = [
      { coveredResources: [coveredResource(OTHER(1)), coveredResource(OTHER(2))], nextToken: 'c2' },
      // Same digest in another account: not the image.
      { coveredResources: [coveredResource(DIGEST, 'SUCCESSFUL', '999999999999')], nextToken: 'c3' },
      { coveredResources: [coveredResource(DIGEST, 'PENDING_INITIAL_SCAN')], nextToken: 'c4' },
    ];
    mock.on(ListCoverageCommand).callsFake(async (input: ListCoverageCommandInput) => {
      return listed[input.nextToken === undefined ? 0 : Number(input.nextToken.slice(1)) - 1]!;
    });
    // The client's region unknown: the resource id cannot be written, the registry still filters.
    const view = await new InspectorFindings(noRegion(client), fastRetry()).coverage(IMAGE);
    expect(view).toEqual(coverageOf('PENDING_INITIAL_SCAN'));
    const inputs = mock.commandCalls(ListCoverageCommand).map((c) => c.args[0].input);
    expect(inputs.map((i) => [i.filterCriteria?.resourceId !== undefined, i.nextToken])).toEqual([
      [false, undefined],
      [false, 'c2'],
      [false, 'c3'],
    ]);
    expect(inputs[0]!.filterCriteria).toEqual({
      ecrRepositoryName: [{ comparison: 'EQUALS', value: 'inspector2' }],
      resourceType: [{ comparison: 'EQUALS', value: 'AWS_ECR_CONTAINER_IMAGE' }],
      accountId: [{ comparison: 'EQUALS', value: '123456789012' }],
    });
  });

  it('is undefined when no page covers the image, after every page', async () => {
    const { client, mock } = inspector();
    mock
      .on(ListCoverageCommand)
      .resolvesOnce({ coveredResources: [coveredResource(OTHER(1))], nextToken: 'c2' })
      .resolvesOnce({ coveredResources: [] });
    // No registry: no resource id to ask for, and no account filter.
    const view = await new InspectorFindings(client, fastRetry()).coverage({
      ...IMAGE,
      registryId: undefined,
    });
    expect(view).toBeUndefined();
    const inputs = mock.commandCalls(ListCoverageCommand).map((c) => c.args[0].input);
    expect(inputs.map((i) => i.nextToken)).toEqual([undefined, 'c2']);
    expect(inputs[0]!.filterCriteria?.accountId).toBeUndefined();
    expect(inputs[0]!.filterCriteria?.resourceId).toBeUndefined();
  });

  it('reads a large repository for one image at most COVERAGE_PAGES_MAX pages, then says not covered (pending)', async () => {
    const { client, mock } = inspector();
    let page = 0;
    mock.on(ListCoverageCommand).callsFake(async () => {
      page++;
      return { coveredResources: [coveredResource(OTHER(page % 9))], nextToken: `c${page + 1}` };
    });
    expect(
      await new InspectorFindings(client, fastRetry()).coverage({ ...IMAGE, registryId: undefined }),
    ).toBeUndefined();
    expect(page).toBe(COVERAGE_PAGES_MAX);
  });

  it('an image never scanned (no lastScannedAt) is no finished scan: manual frequency gets none, escalated at once', async () => {
    const { client, mock } = inspector();
    const { lastScannedAt: _, ...never } = coveredResource(DIGEST, 'SCAN_FREQUENCY_MANUAL');
    mock.on(ListCoverageCommand).resolves({ coveredResources: [never] });
    const findings = new InspectorFindings(client, fastRetry());
    const view = await findings.coverage(IMAGE);
    expect(view).toEqual({ ...coverageOf('SCAN_FREQUENCY_MANUAL'), lastScannedAt: undefined });
    expect(coverageState(view)).toEqual({
      state: 'unsupported',
      status: 'SCAN_FREQUENCY_MANUAL, never scanned',
    });
    // A time that is no time is no scan either.
    mock.on(ListCoverageCommand).resolves({
      coveredResources: [
        {
          ...never,
          scanStatus: { statusCode: 'ACTIVE', reason: 'SUCCESSFUL' },
          lastScannedAt: new Date(Number.NaN),
        },
      ],
    });
    expect(coverageState(await findings.coverage(IMAGE)).state).toBe('pending');
    // Scanned before the frequency became manual (on push): no longer scanned all the same, and that scan's
    // findings may be closed and deleted since, so no read of them is a finished scan's.
    mock
      .on(ListCoverageCommand)
      .resolves({ coveredResources: [coveredResource(DIGEST, 'SCAN_FREQUENCY_MANUAL')] });
    expect(coverageState(await findings.coverage(IMAGE))).toEqual({
      state: 'unsupported',
      status: 'SCAN_FREQUENCY_MANUAL',
    });
  });

  it('rejects when a later page fails', async () => {
    const { client, mock } = inspector();
    mock
      .on(ListCoverageCommand)
      .resolvesOnce({ coveredResources: [coveredResource(OTHER(1))], nextToken: 'c2' })
      .rejectsOnce(inspectorErrors.denied());
    await expect(new InspectorFindings(client, fastRetry()).coverage(IMAGE)).rejects.toBeInstanceOf(
      AccessDeniedException,
    );
  });
});

describe('Inspector2: ListFindings', () => {
  const base = (
    fixtureJson('aws/list-findings-response.ecr.derived-from-aws-docs-event.json') as { findings: unknown[] }
  ).findings[0] as Record<string, unknown>;

  /** A finding as the SDK returns it (Date timestamps), of one severity. */
  function finding(severity: string, n: number): Record<string, unknown> {
    const f = asSdk(clone(base)) as Record<string, unknown>;
    f.severity = severity;
    f.findingArn = `arn:aws:inspector2:${REGION}:123456789012:finding/${severity.toLowerCase()}-${n}`;
    return f;
  }

  function severityOf(input: ListFindingsCommandInput): string {
    const filters = input.filterCriteria?.severity ?? [];
    expect(filters).toHaveLength(1);
    expect(filters[0]!.comparison).toBe('EQUALS');
    return filters[0]!.value!;
  }

  /** Pages per severity chain; each page one finding; the nextToken names the chain and the page. */
  function pagedBySeverity(pagesPer: Readonly<Record<string, number>>, delayMs = 0) {
    return async (input: ListFindingsCommandInput): Promise<ListFindingsCommandOutput> => {
      const severity = severityOf(input);
      const page = input.nextToken === undefined ? 0 : Number(input.nextToken.split('#')[1]);
      if (delayMs > 0) await sleep(delayMs);
      const pages = pagesPer[severity] ?? 1;
      return {
        $metadata: {},
        findings: [finding(severity, page)] as unknown as ListFindingsCommandOutput['findings'],
        ...(page + 1 < pages ? { nextToken: `${severity}#${page + 1}` } : {}),
      };
    };
  }

  const PAGES = { CRITICAL: 1, HIGH: 3, MEDIUM: 2, LOW: 5, INFORMATIONAL: 1, UNTRIAGED: 1 };

  it('reads one chain per severity, every page of each, all chains at once', async () => {
    const { client, mock } = inspector();
    let inFlight = 0;
    let most = 0;
    const paged = pagedBySeverity(PAGES);
    mock.on(ListFindingsCommand).callsFake(async (input: ListFindingsCommandInput) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await sleep(2);
      inFlight--;
      return paged(input);
    });
    const read = await new InspectorFindings(client, fastRetry()).inspectorFindings(IMAGE);

    expect(read.pages).toBe(13);
    expect(read.longestChain).toBe(5);
    expect(read.table.length).toBe(13);
    expect(most).toBe(SEVERITY_CHAINS.length);

    const calls = mock.commandCalls(ListFindingsCommand).map((c) => c.args[0].input);
    const tokens = new Map<string, (string | undefined)[]>();
    for (const input of calls) {
      expect(input.maxResults).toBe(100);
      expect(input.filterCriteria?.ecrImageHash).toEqual([{ comparison: 'EQUALS', value: DIGEST }]);
      expect(input.filterCriteria?.ecrImageRepositoryName).toEqual([
        { comparison: 'EQUALS', value: 'inspector2' },
      ]);
      // The image's registry: a same-named repository of another account (a delegated admin sees all) is not it.
      expect(input.filterCriteria?.ecrImageRegistry).toEqual([
        { comparison: 'EQUALS', value: '123456789012' },
      ]);
      const severity = severityOf(input);
      tokens.set(severity, [...(tokens.get(severity) ?? []), input.nextToken]);
    }
    expect([...tokens.keys()].sort()).toEqual([...SEVERITY_CHAINS].sort());
    expect(tokens.get('LOW')).toEqual([undefined, 'LOW#1', 'LOW#2', 'LOW#3', 'LOW#4']);
    expect(tokens.get('HIGH')).toEqual([undefined, 'HIGH#1', 'HIGH#2']);
    expect(tokens.get('CRITICAL')).toEqual([undefined]);

    // Every page's findings, read by the core's reader from the SDK's Date timestamps.
    const rows = read.table.rows();
    expect(rows.filter((f) => f.severity === 'LOW')).toHaveLength(5);
    expect(new Set(rows.map((f) => f.key)).size).toBe(13);
    expect(rows[0]!.firstObservedAt).toBe(Date.parse('2024-09-04T16:55:38.411Z'));
    expect(rows[0]!.vulnerabilityId).toBe('CVE-2024-6119');
  });

  it('joins hundreds of pages: each page is a table of its own, and every one is kept', async () => {
    // 100 findings a page at most, often fewer: an image with thousands of findings is hundreds of pages (the
    // join once stopped at 255 of them, and such an image could never be decided on its findings).
    const { client, mock } = inspector();
    mock.on(ListFindingsCommand).callsFake(pagedBySeverity({ ...PAGES, LOW: 300, MEDIUM: 20 }));
    const read = await new InspectorFindings(client, fastRetry()).inspectorFindings(IMAGE);
    expect(read.pages).toBe(326);
    expect(read.table.length).toBe(326);
    // Every row rebuilds from its own page's record.
    const rows = read.table.rows();
    expect(rows.filter((f) => f.severity === 'LOW')).toHaveLength(300);
    expect(new Set(rows.map((f) => f.key)).size).toBe(326);
    expect(read.table.row(325).key).toBe(rows[325]!.key);
  });

  it('covers every severity the API can return: the SDK enum and the API model', () => {
    const chains = [...SEVERITY_CHAINS].sort();
    expect(chains).toEqual(Object.values(Severity).sort());
    const model = fixtureJson('aws/inspector2-api-model-extract.json') as {
      operations: {
        ListFindings: {
          output: { members: { findings: { member: { members: { severity: { enum: string[] } } } } } };
        };
      };
    };
    const modelEnum = model.operations.ListFindings.output.members.findings.member.members.severity.enum;
    expect(chains).toEqual([...modelEnum].sort());
    // And at compile time: a severity added to the SDK without a chain fails `tsc`.
    expectTypeOf<(typeof SEVERITY_CHAINS)[number]>().toEqualTypeOf<InspectorSeverity>();
  });

  it('rejects when a later page of one chain fails, and stops the other chains', async () => {
    const { client, mock } = inspector();
    const paged = pagedBySeverity({ ...PAGES, LOW: 1_000 }, 3);
    mock.on(ListFindingsCommand).callsFake(async (input: ListFindingsCommandInput) => {
      if (severityOf(input) === 'HIGH' && input.nextToken === 'HIGH#2') {
        await sleep(10);
        throw inspectorErrors.denied();
      }
      return paged(input);
    });
    await expect(new InspectorFindings(client, fastRetry()).inspectorFindings(IMAGE)).rejects.toBeInstanceOf(
      AccessDeniedException,
    );
    const lowCalls = () =>
      mock
        .commandCalls(ListFindingsCommand)
        .filter((c) => c.args[0].input.filterCriteria?.severity?.[0]?.value === 'LOW');
    const atFailure = lowCalls().length;
    await sleep(40);
    // At most the page in flight when the chain failed; then no more.
    expect(lowCalls().length).toBeLessThanOrEqual(atFailure + 1);
    expect(lowCalls().length).toBeLessThan(20);
    const last = lowCalls().at(-1)!;
    expect(sendOptionsOf(last)?.abortSignal?.aborted).toBe(true);
  });

  it('rejects when a later page fails after its retries (5xx every time)', async () => {
    const { client, mock } = inspector();
    const retry = fastRetry(3);
    const paged = pagedBySeverity(PAGES);
    mock.on(ListFindingsCommand).callsFake(async (input: ListFindingsCommandInput) => {
      if (severityOf(input) === 'LOW' && input.nextToken === 'LOW#4') throw inspectorErrors.server();
      return paged(input);
    });
    await expect(new InspectorFindings(client, retry).inspectorFindings(IMAGE)).rejects.toBeInstanceOf(
      InternalServerException,
    );
    const lastPage = mock
      .commandCalls(ListFindingsCommand)
      .filter((c) => c.args[0].input.nextToken === 'LOW#4');
    expect(lastPage).toHaveLength(3);
  });

  it("honours the caller's signal: rejects with its reason and stops requesting pages", async () => {
    const { client, mock } = inspector();
    mock.on(ListFindingsCommand).callsFake(pagedBySeverity({ ...PAGES, LOW: 1_000 }, 3));
    const controller = new AbortController();
    const reason = new Error('deadline');
    setTimeout(() => controller.abort(reason), 20);
    await expect(
      new InspectorFindings(client, fastRetry()).inspectorFindings(IMAGE, { signal: controller.signal }),
    ).rejects.toBe(reason);
    const calls = mock.commandCalls(ListFindingsCommand).length;
    await sleep(30);
    expect(mock.commandCalls(ListFindingsCommand).length).toBeLessThanOrEqual(calls + 1);
    for (const c of mock.commandCalls(ListFindingsCommand)) {
      expect(sendOptionsOf(c)?.abortSignal).toBeInstanceOf(AbortSignal);
    }
  });

  it('does not start when the signal has already fired', async () => {
    const { client, mock } = inspector();
    const controller = new AbortController();
    controller.abort(new Error('too late'));
    await expect(
      new InspectorFindings(client, fastRetry()).inspectorFindings(IMAGE, { signal: controller.signal }),
    ).rejects.toThrow('too late');
    expect(mock.commandCalls(ListFindingsCommand)).toHaveLength(0);
  });

  it('reads an empty page without a findings list as no findings', async () => {
    const { client, mock } = inspector();
    mock.on(ListFindingsCommand).resolves({});
    const read = await new InspectorFindings(client, fastRetry()).inspectorFindings(IMAGE);
    expect(read).toMatchObject({ pages: 6, longestChain: 1 });
    expect(read.table.length).toBe(0);
  });

  it('retries a throttled page within its chain, with backoff', async () => {
    const { client, mock } = inspector();
    const retry = fastRetry();
    const paged = pagedBySeverity(PAGES);
    let throttled = 0;
    mock.on(ListFindingsCommand).callsFake(async (input: ListFindingsCommandInput) => {
      if (severityOf(input) === 'HIGH' && input.nextToken === 'HIGH#1' && throttled < 2) {
        throttled++;
        throw inspectorErrors.throttle();
      }
      return paged(input);
    });
    const read = await new InspectorFindings(client, retry).inspectorFindings(IMAGE);
    expect(read).toMatchObject({ pages: 13, longestChain: 5 });
    expect(read.table.length).toBe(13);
    expect(retry.sleeps).toEqual([50, 100]);
  });
});

// ---------------------------------------------------------------------------------------------------------
// ECR

describe('ECR: DescribeImageScanFindings', () => {
  const basic = sample<DescribeImageScanFindingsCommandOutput>(
    'describe-image-scan-findings.basic.awscli-example.json',
  );
  const ECR_DIGEST = basic.imageId!.imageDigest!;
  const ecrImage: ImageLocator = {
    repository: 'sample-repo',
    digest: ECR_DIGEST,
    registryId: '123456789012',
  };

  function secondPage(): DescribeImageScanFindingsCommandOutput {
    const page = clone(basic);
    page.imageScanFindings!.findings![0]!.name = 'CVE-2020-0001';
    return page;
  }

  it('follows every page and joins them; the verdict is the scan status', async () => {
    const { client, mock } = ecr();
    mock
      .on(DescribeImageScanFindingsCommand)
      .resolvesOnce({ ...basic, nextToken: 'f2' })
      .resolvesOnce({ ...secondPage(), nextToken: 'f3' })
      .resolvesOnce({ ...basic, imageScanFindings: { findings: [] } });
    const read = await new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    expect(read.scan).toEqual({ complete: true, status: 'COMPLETE' });
    expect(read).toMatchObject({ pages: 3, longestChain: 3 });
    expect(read.table.rows().map((f) => f.vulnerabilityId)).toEqual(['CVE-2019-5188', 'CVE-2020-0001']);
    const inputs = mock.commandCalls(DescribeImageScanFindingsCommand).map((c) => c.args[0].input);
    expect(inputs.map((i) => i.nextToken)).toEqual([undefined, 'f2', 'f3']);
    expect(inputs[0]).toEqual({
      repositoryName: 'sample-repo',
      imageId: { imageDigest: ECR_DIGEST },
      registryId: '123456789012',
      maxResults: 1000,
    });
  });

  it('a list holding fewer findings than the response counts is not a finished scan (fail closed)', async () => {
    const { client, mock } = ecr();
    // Every page carries the whole scan's counts; the pages together list 1 MEDIUM where 2 CRITICAL are counted.
    const counted = { ...basic.imageScanFindings!, findingSeverityCounts: { CRITICAL: 2, MEDIUM: 1 } };
    mock.on(DescribeImageScanFindingsCommand).resolves({ ...basic, imageScanFindings: counted });
    const read = await new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    expect(read.scan).toEqual({
      complete: false,
      status: 'FINDINGS_SHORT_OF_COUNTS',
      reason: 'ECR listed fewer findings than its findingSeverityCounts (CRITICAL 0 listed of 2 counted)',
    });
    // No findings list at all, with findings counted: the same.
    mock
      .on(DescribeImageScanFindingsCommand)
      .resolves({ ...basic, imageScanFindings: { findingSeverityCounts: { HIGH: 1 } } });
    const none = await new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    expect(none.scan).toMatchObject({ complete: false, status: 'FINDINGS_SHORT_OF_COUNTS' });
    // A page with empty counts first does not hide a later page's: the largest per severity is the scan's.
    mock.reset();
    mock
      .on(DescribeImageScanFindingsCommand)
      .resolvesOnce({
        ...basic,
        nextToken: 'p2',
        imageScanFindings: { ...counted, findingSeverityCounts: {} },
      })
      .resolvesOnce({
        ...basic,
        imageScanFindings: { findings: [], findingSeverityCounts: { CRITICAL: 2 } },
      });
    const paged = await new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    expect(paged.scan).toMatchObject({ complete: false, status: 'FINDINGS_SHORT_OF_COUNTS' });
  });

  it('a finding listed twice does not make up for one the list lacks; a COMPLETE page with no findings part is not a clean scan', async () => {
    const { client, mock } = ecr();
    const one = basic.imageScanFindings!.findings![0]!;
    // 2 counted, one finding listed twice: one finding to the decision, so the list is short of its counts.
    mock.on(DescribeImageScanFindingsCommand).resolves({
      ...basic,
      imageScanFindings: { findings: [one, one], findingSeverityCounts: { [one.severity!]: 2 } },
    });
    const twice = await new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    expect(twice.scan).toMatchObject({ complete: false, status: 'FINDINGS_SHORT_OF_COUNTS' });
    // Status COMPLETE, and no imageScanFindings at all: it shows nothing of the scan it says finished.
    mock.reset();
    mock.on(DescribeImageScanFindingsCommand).resolves({ ...basic, imageScanFindings: undefined });
    const bare = await new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    expect(bare.scan).toEqual({
      complete: false,
      status: 'FINDINGS_MISSING',
      reason: 'the ECR response says the scan completed but carries no imageScanFindings',
    });
    // A clean image's answer has the part, with nothing in it: complete.
    mock.reset();
    mock.on(DescribeImageScanFindingsCommand).resolves({
      ...basic,
      imageScanFindings: { imageScanCompletedAt: new Date(), findingSeverityCounts: {} },
    });
    const clean = await new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    expect(clean.scan).toEqual({ complete: true, status: 'COMPLETE' });
    expect(clean.table.length).toBe(0);
  });

  it('COMPLETE with a findings part that shows nothing of the scan is not ready, never clean (aws/aws-sdk#289)', async () => {
    const { client, mock } = ecr();
    // The answer quoted in the issue: COMPLETE, `findings: []`, no completion time, no counts. Its findings
    // came seconds later: read as clean, with no scan event counts to compare, it would approve.
    const notReady = sample<DescribeImageScanFindingsCommandOutput>(
      'describe-image-scan-findings.complete-not-ready.aws-sdk-issue-289.json',
    );
    const read = async (page: DescribeImageScanFindingsCommandOutput) => {
      mock.reset();
      mock.on(DescribeImageScanFindingsCommand).resolves(page);
      return new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    };
    const first = await read(notReady);
    expect(first.scan).toEqual({
      complete: false,
      status: 'FINDINGS_NOT_READY',
      reason:
        'ECR says the scan is COMPLETE but its imageScanFindings has no findings, no enhancedFindings, no ' +
        'imageScanCompletedAt and no findingSeverityCounts: the findings may not be ready yet',
    });
    expect(first.scan.status).toBe(ECR_FINDINGS_NOT_READY);
    expect(first.table.length).toBe(0);
    // The gate waits on it (and fails closed at its deadline), as on a scan still running.
    expect(ecrScanState(first.scan.status!)).toBe('pending');
    // ACTIVE (continuous scanning), an empty enhanced list beside the empty basic one, an empty findings part.
    for (const imageScanFindings of [{ findings: [], enhancedFindings: [] }, { enhancedFindings: [] }, {}]) {
      for (const status of ['COMPLETE', 'ACTIVE'] as const) {
        const again = await read({ ...notReady, imageScanStatus: { status }, imageScanFindings });
        expect(again.scan).toMatchObject({ complete: false, status: 'FINDINGS_NOT_READY' });
      }
    }
    // The same answer once its findings are there: complete, and they are read.
    const listed = await read({
      ...notReady,
      imageScanFindings: { findings: basic.imageScanFindings!.findings },
    });
    expect(listed.scan).toEqual({ complete: true, status: 'COMPLETE' });
    expect(listed.table.length).toBe(1);
  });

  it("a clean scan's answer, with its completion time or its counts, is complete; so are enhanced findings without either", async () => {
    const { client, mock } = ecr();
    const read = async (page: DescribeImageScanFindingsCommandOutput) => {
      mock.reset();
      mock.on(DescribeImageScanFindingsCommand).resolves(page);
      return new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    };
    // The basic sample with its one finding gone: imageScanCompletedAt, vulnerabilitySourceUpdatedAt, counts {}.
    const clean = { ...basic.imageScanFindings!, findings: [], findingSeverityCounts: {} };
    const withTime = { findings: [], imageScanCompletedAt: basic.imageScanFindings!.imageScanCompletedAt };
    for (const imageScanFindings of [
      clean,
      withTime,
      { findings: [], findingSeverityCounts: { MEDIUM: 0 } },
    ]) {
      const r = await read({ ...basic, imageScanFindings });
      expect(r.scan).toEqual({ complete: true, status: 'COMPLETE' });
      expect(r.table.length).toBe(0);
    }
    // Counts that count nothing, and no completion time, show nothing of a finished scan: not ready yet.
    const empty = await read({ ...basic, imageScanFindings: { findings: [], findingSeverityCounts: {} } });
    expect(empty.scan.complete).toBe(false);
    // The moto fixture has no imageScanCompletedAt, but findings (and counts): complete, even without the counts.
    const enhanced = sample<DescribeImageScanFindingsCommandOutput>(
      'describe-image-scan-findings.enhanced.moto-fixture.json',
    );
    expect(enhanced.imageScanFindings!.imageScanCompletedAt).toBeUndefined();
    const { findingSeverityCounts: _, ...uncounted } = enhanced.imageScanFindings!;
    for (const imageScanFindings of [enhanced.imageScanFindings!, uncounted]) {
      const r = await read({ ...enhanced, imageScanFindings });
      expect(r.scan).toEqual({ complete: true, status: 'COMPLETE' });
      expect(r.table.length).toBe(2);
    }
  });

  it('one CVE in two versions of a package, or without a package, is several findings; one repeated is one', async () => {
    const { client, mock } = ecr();
    const finding = (version: string | undefined, extra: { uri?: string; description?: string } = {}) => ({
      name: 'CVE-2024-0001',
      severity: 'HIGH' as const,
      ...extra,
      attributes: [
        ...(version === undefined
          ? []
          : [
              { key: 'package_name', value: 'kernel' },
              { key: 'package_version', value: version },
            ]),
        { key: 'CVSS3_SCORE', value: '7.8' },
      ],
    });
    // Two kernel RPMs, and two findings of one CVE that name no package: four findings, as ECR counts them,
    // over two pages, the second one repeating a finding of the first.
    const kernels = [finding('5.10.1-1.amzn2'), finding('5.10.2-1.amzn2')];
    const loose = [
      finding(undefined, { uri: 'https://example.com/a', description: 'in a' }),
      finding(undefined, { uri: 'https://example.com/b', description: 'in b' }),
    ];
    const pages = (counted: number) => {
      mock.reset();
      const part = (findings: ReturnType<typeof finding>[]) => ({
        ...basic.imageScanFindings!,
        findings,
        findingSeverityCounts: { HIGH: counted },
      });
      mock
        .on(DescribeImageScanFindingsCommand)
        .resolvesOnce({ ...basic, imageScanFindings: part([...kernels, loose[0]!]), nextToken: 'p2' })
        .resolvesOnce({ ...basic, imageScanFindings: part([kernels[0]!, loose[1]!, loose[0]!]) });
      return new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    };
    const whole = await pages(4);
    expect(whole.scan).toEqual({ complete: true, status: 'COMPLETE' });
    expect(new Set(whole.table.rows().map((f) => f.key)).size).toBe(4);
    expect(whole.table.rows().map((f) => f.packages[0]?.version)).toContain('5.10.2-1.amzn2');
    // The repeats stand in for no finding: five counted is a list short of one.
    expect((await pages(5)).scan).toEqual({
      complete: false,
      status: 'FINDINGS_SHORT_OF_COUNTS',
      reason: 'ECR listed fewer findings than its findingSeverityCounts (HIGH 4 listed of 5 counted)',
    });
  });

  it('reads enhanced findings (Inspector through ECR)', async () => {
    const { client, mock } = ecr();
    const enhanced = sample<DescribeImageScanFindingsCommandOutput>(
      'describe-image-scan-findings.enhanced.moto-fixture.json',
    );
    mock.on(DescribeImageScanFindingsCommand).resolves(enhanced);
    const read = await new EcrScanFindings(client, fastRetry()).ecrScanFindings({
      ...ecrImage,
      registryId: undefined,
    });
    expect(read.table.length).toBe(enhanced.imageScanFindings!.enhancedFindings!.length);
    expect(read.table.row(0).vulnerabilityId).toBe('CVE-2024-9681');
    expect(mock.commandCalls(DescribeImageScanFindingsCommand)[0]!.args[0].input.registryId).toBeUndefined();
  });

  it('joins hundreds of pages of enhanced findings (ECR gives them 100 a page, whatever maxResults says)', async () => {
    const { client, mock } = ecr();
    const enhanced = sample<DescribeImageScanFindingsCommandOutput>(
      'describe-image-scan-findings.enhanced.moto-fixture.json',
    );
    const one = enhanced.imageScanFindings!.enhancedFindings![0]!;
    const pages = 300;
    mock.on(DescribeImageScanFindingsCommand).callsFake(async (input: { nextToken?: string }) => {
      const page = input.nextToken === undefined ? 0 : Number(input.nextToken);
      return {
        ...enhanced,
        imageScanFindings: {
          ...enhanced.imageScanFindings,
          findingSeverityCounts: { [one.severity!]: pages },
          enhancedFindings: [{ ...one, findingArn: `${one.findingArn}-${page}` }],
        },
        ...(page + 1 < pages ? { nextToken: String(page + 1) } : {}),
      };
    });
    const read = await new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    expect(read.scan).toMatchObject({ complete: true });
    expect(read.pages).toBe(pages);
    expect(read.table.length).toBe(pages);
    expect(new Set(read.table.rows().map((f) => f.key)).size).toBe(pages);
  });

  it('a scan still running is not complete, and a later page saying so wins', async () => {
    const { client, mock } = ecr();
    mock
      .on(DescribeImageScanFindingsCommand)
      .resolvesOnce({ ...basic, nextToken: 'f2' })
      .resolvesOnce({
        ...basic,
        imageScanStatus: { status: 'IN_PROGRESS', description: 'rescan' },
        imageScanFindings: undefined,
      });
    const read = await new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    expect(read.scan).toMatchObject({ complete: false, status: 'IN_PROGRESS' });
  });

  it('ScanNotFoundException is no scan yet: PENDING, with an empty table', async () => {
    const { client, mock } = ecr();
    mock.on(DescribeImageScanFindingsCommand).rejects(
      new ScanNotFoundException({
        message: 'Image scan does not exist',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const read = await new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    expect(read.scan).toEqual(NO_SCAN_YET);
    expect(read.scan).toEqual({ complete: false, status: 'PENDING', reason: 'no scan found for the image' });
    expect(read.table.length).toBe(0);
    expect(mock.commandCalls(DescribeImageScanFindingsCommand)).toHaveLength(1);
  });

  it('rejects when a later page fails: no partial table', async () => {
    const { client, mock } = ecr();
    mock
      .on(DescribeImageScanFindingsCommand)
      .resolvesOnce({ ...basic, nextToken: 'f2' })
      .rejectsOnce(new ScanNotFoundException({ message: 'gone', $metadata: { httpStatusCode: 400 } }));
    await expect(new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage)).rejects.toBeInstanceOf(
      ScanNotFoundException,
    );
  });

  it('pages of two scans (a rescan finished between page calls) are not joined: SCAN_CHANGED_WHILE_PAGING, pending', async () => {
    const { client, mock } = ecr();
    const first = basic.imageScanFindings!.imageScanCompletedAt!;
    expect(first).toBeInstanceOf(Date);
    const rescanned = new Date(first.getTime() + 60_000);
    // Two MEDIUM findings counted by each scan: page 1 of the first scan and page 2 of the rescan list one
    // each, so the joined list meets every count while missing a finding of each scan.
    const part = (name: string, at: Date | undefined) => ({
      findings: [{ ...basic.imageScanFindings!.findings![0]!, name }],
      findingSeverityCounts: { MEDIUM: 2 },
      ...(at === undefined ? {} : { imageScanCompletedAt: at }),
    });
    const read = async (second: Date | undefined, firstAt: Date | undefined = first) => {
      mock.reset();
      mock
        .on(DescribeImageScanFindingsCommand)
        .resolvesOnce({ ...basic, imageScanFindings: part('CVE-2019-5188', firstAt), nextToken: 'p2' })
        .resolvesOnce({ ...basic, imageScanFindings: part('CVE-2020-0002', second), nextToken: 'p3' })
        .resolvesOnce({ ...basic, imageScanFindings: { findings: [] } });
      return new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
    };
    const mixed = await read(rescanned);
    expect(mixed.scan).toEqual({
      complete: false,
      status: 'SCAN_CHANGED_WHILE_PAGING',
      reason: `the scan changed while its findings were read (a rescan?): page 2 is of a scan completed at ${rescanned.toISOString()}, page 1 of one completed at ${first.toISOString()}`,
    });
    // The gate waits and reads again, as on a scan still running; the pages after the change are not read.
    expect(ecrScanState(mixed.scan.status!)).toBe('pending');
    expect(mock.commandCalls(DescribeImageScanFindingsCommand)).toHaveLength(2);
    // One scan's pages (the same time as a new Date, and the empty last page without one): joined.
    const same = await read(new Date(first.getTime()));
    expect(same.scan).toEqual({ complete: true, status: 'COMPLETE' });
    expect(same).toMatchObject({ pages: 3 });
    const untimed = await read(undefined);
    expect(untimed.scan).toEqual({ complete: true, status: 'COMPLETE' });
    // A first page without a time gives no scan to hold a timed later page to: not shown to be one scan.
    const unknown = await read(rescanned, undefined);
    expect(unknown.scan).toMatchObject({ complete: false, status: 'SCAN_CHANGED_WHILE_PAGING' });
  });

  it('the image or repository gone on the first page is a final answer (unsupported, decided at once); mid-listing it rejects', async () => {
    const { client, mock } = ecr();
    const gone = [
      [
        new ImageNotFoundException({
          message: "The image with imageId {imageDigest:'sha256:74b2'} does not exist within the repository",
          $metadata: { httpStatusCode: 400 },
        }),
        'IMAGE_NOT_FOUND',
        'the image',
      ],
      [
        new RepositoryNotFoundException({
          message:
            "The repository with name 'sample-repo' does not exist in the registry with id '123456789012'",
          $metadata: { httpStatusCode: 400 },
        }),
        'REPOSITORY_NOT_FOUND',
        'the repository',
      ],
    ] as const;
    for (const [error, status, what] of gone) {
      mock.reset();
      mock.on(DescribeImageScanFindingsCommand).rejects(error);
      const read = await new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage);
      expect(read.scan).toEqual({
        complete: false,
        status,
        reason: `ECR has no scan findings to give: ${what} is not found (${error.name}: ${error.message})`,
      });
      expect(read.table.length).toBe(0);
      expect(ecrScanState(status)).toBe('unsupported');
      // A final answer: not retried.
      expect(mock.commandCalls(DescribeImageScanFindingsCommand)).toHaveLength(1);
      // After a page was read, the list is partial: a fault, not an answer about the image.
      mock.reset();
      mock
        .on(DescribeImageScanFindingsCommand)
        .resolvesOnce({ ...basic, nextToken: 'f2' })
        .rejectsOnce(error);
      await expect(new EcrScanFindings(client, fastRetry()).ecrScanFindings(ecrImage)).rejects.toBe(error);
    }
  });
});

describe('ECR: DescribeImages', () => {
  const ecrError = (name: string, message: string, status = 400) =>
    new ECRServiceException({
      name,
      $fault: status >= 500 ? 'server' : 'client',
      $metadata: { httpStatusCode: status },
      message,
    });

  it('resolves a tag to the digest it points at', async () => {
    const { client, mock } = ecr();
    mock.on(DescribeImagesCommand).resolves({
      imageDetails: [{ repositoryName: 'inspector2', imageDigest: DIGEST, imageTags: ['ubuntu_latest'] }],
    });
    const images = new EcrImages(client, fastRetry());
    expect(await images.resolveTag('inspector2', 'ubuntu_latest', '123456789012')).toEqual({
      digest: DIGEST,
    });
    expect(await images.resolveTag('inspector2', 'ubuntu_latest', undefined)).toEqual({ digest: DIGEST });
    // When it was pushed, as the SDK parses the epoch seconds ECR sends: the gate checks it against the start.
    mock.on(DescribeImagesCommand).resolves({
      imageDetails: [{ imageDigest: DIGEST, imagePushedAt: new Date(1_764_061_200_000) }],
    });
    expect(await images.resolveTag('inspector2', 'ubuntu_latest', undefined)).toEqual({
      digest: DIGEST,
      pushedAt: '2025-11-25T09:00:00.000Z',
    });
    const inputs = mock.commandCalls(DescribeImagesCommand).map((c) => c.args[0].input);
    expect(inputs).toEqual([
      { repositoryName: 'inspector2', imageIds: [{ imageTag: 'ubuntu_latest' }], registryId: '123456789012' },
      { repositoryName: 'inspector2', imageIds: [{ imageTag: 'ubuntu_latest' }] },
      { repositoryName: 'inspector2', imageIds: [{ imageTag: 'ubuntu_latest' }] },
    ]);
  });

  /** A DescribeImages answer as the SDK returns it: `imagePushedAt`'s epoch seconds a Date. */
  const describeImages = (path: string): DescribeImagesCommandOutput => {
    const out = fixtureJson(`aws/${path}`) as {
      imageDetails: (Record<string, unknown> & { imagePushedAt: number })[];
    };
    return {
      $metadata: {},
      imageDetails: out.imageDetails.map((d) => ({ ...d, imagePushedAt: new Date(d.imagePushedAt * 1000) })),
    };
  };

  it.each([
    ['an OCI image index', 'describe-images.oci-image-index.model-derived.json'],
    ['a Docker manifest list', 'describe-images.docker-manifest-list.model-derived.json'],
  ])(
    'refuses a tag that names %s (multi-architecture, or with attestations): no scanner scans it',
    async (_, path) => {
      const { client, mock } = ecr();
      const answer = describeImages(path);
      mock.on(DescribeImagesCommand).resolves(answer);
      const resolved = await new EcrImages(client, fastRetry()).resolveTag(
        'inspector2',
        'ubuntu_latest',
        '123456789012',
      );
      const detail = answer.imageDetails![0]!;
      // `missing`: the gate escalates at once with this as the image's problem, never judges the index's digest.
      expect(resolved).not.toHaveProperty('digest');
      expect(resolved).toEqual({ missing: expect.any(String) });
      const why = 'missing' in resolved ? resolved.missing : '';
      expect(why).toContain('inspector2:ubuntu_latest in registry 123456789012 names an image index');
      expect(why).toContain(detail.imageManifestMediaType!);
      expect(why).toContain(detail.imageDigest!);
      expect(why).toMatch(/multi-architecture image, or one pushed with attestations/);
      expect(why).toMatch(/Scanners do not scan an index/);
      expect(why).toMatch(/name a platform image's digest in CustomData/);
      expect(mock.commandCalls(DescribeImagesCommand)).toHaveLength(1);
    },
  );

  it.each([
    ['an OCI image index', 'describe-images.oci-image-index.model-derived.json', 'names an image index'],
    [
      'a Docker manifest list',
      'describe-images.docker-manifest-list.model-derived.json',
      'names an image index',
    ],
    ['an image manifest', 'describe-images.image-manifest.model-derived.json', undefined],
  ])('checks a digest named directly, by digest: %s', async (_, path, refused) => {
    const { client, mock } = ecr();
    mock.on(DescribeImagesCommand).resolves(describeImages(path));
    const checked = await new EcrImages(client, fastRetry()).checkDigest(
      'inspector2',
      DIGEST,
      '123456789012',
    );
    if (refused === undefined)
      expect(checked).toEqual({ digest: DIGEST, pushedAt: '2025-11-25T09:00:00.000Z' });
    else {
      expect(checked).toEqual({
        missing: expect.stringContaining(`inspector2@${DIGEST} in registry 123456789012 ${refused}`),
      });
      expect('missing' in checked && checked.missing).toMatch(/name a platform image's digest in CustomData/);
    }
    expect(mock.commandCalls(DescribeImagesCommand).map((c) => c.args[0].input)).toEqual([
      { repositoryName: 'inspector2', imageIds: [{ imageDigest: DIGEST }], registryId: '123456789012' },
    ]);
  });

  it('says why for a digest ECR does not have: an answer, not a fault', async () => {
    const { client, mock } = ecr();
    mock
      .on(DescribeImagesCommand)
      .rejects(new ImageNotFoundException({ message: 'not found', $metadata: { httpStatusCode: 400 } }));
    expect(await new EcrImages(client, fastRetry()).checkDigest('inspector2', DIGEST, undefined)).toEqual({
      missing: `ECR has no image inspector2@${DIGEST}`,
    });
  });

  it('resolves a tag that names an image manifest (Docker or OCI), as ECR describes it', async () => {
    const { client, mock } = ecr();
    const answer = describeImages('describe-images.image-manifest.model-derived.json');
    mock.on(DescribeImagesCommand).resolves(answer);
    const images = new EcrImages(client, fastRetry());
    const want = { digest: DIGEST, pushedAt: '2025-11-25T09:00:00.000Z' };
    expect(await images.resolveTag('inspector2', 'ubuntu_latest', '123456789012')).toEqual(want);
    const detail = answer.imageDetails![0]!;
    mock.on(DescribeImagesCommand).resolves({
      imageDetails: [
        {
          ...detail,
          imageManifestMediaType: 'application/vnd.oci.image.manifest.v1+json',
          artifactMediaType: 'application/vnd.oci.image.config.v1+json',
        },
      ],
    });
    expect(await images.resolveTag('inspector2', 'ubuntu_latest', '123456789012')).toEqual(want);
  });

  it('says why for a tag, a repository or a name ECR does not have, or may not be read: an answer, not a fault', async () => {
    const cases: [Error, RegExp][] = [
      [
        new ImageNotFoundException({ message: 'not found', $metadata: { httpStatusCode: 400 } }),
        /^ECR has no image inspector2:nope$/,
      ],
      [ecrError('RepositoryNotFoundException', 'no repository'), /no repository inspector2 in this account/],
      [
        ecrError('InvalidParameterException', 'bad\n  name'),
        /refuses inspector2:nope as an image name: bad name$/,
      ],
      [ecrError('AccessDeniedException', 'denied'), /may not read inspector2/],
    ];
    for (const [error, reason] of cases) {
      const { client, mock } = ecr();
      mock.on(DescribeImagesCommand).rejects(error);
      const resolved = await new EcrImages(client, fastRetry()).resolveTag('inspector2', 'nope', undefined);
      expect(resolved).toEqual({ missing: expect.stringMatching(reason) });
      expect(mock.commandCalls(DescribeImagesCommand)).toHaveLength(1);
    }
    const { client, mock } = ecr();
    mock.on(DescribeImagesCommand).resolves({ imageDetails: [] });
    expect(await new EcrImages(client, fastRetry()).resolveTag('a', 'b', '123456789012')).toEqual({
      missing: 'ECR has no image a:b in registry 123456789012',
    });
  });

  it('throws, after its retries, what may pass: throttling and server errors', async () => {
    const { client, mock } = ecr();
    mock.on(DescribeImagesCommand).rejects(ecrError('ThrottlingException', 'slow down', 400));
    await expect(
      new EcrImages(client, fastRetry()).resolveTag('nope', 'v1', undefined),
    ).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(mock.commandCalls(DescribeImagesCommand).length).toBeGreaterThan(1);
    mock.reset();
    mock.on(DescribeImagesCommand).rejects(ecrError('ServerException', 'oops', 500));
    await expect(
      new EcrImages(client, fastRetry()).resolveTag('nope', 'v1', undefined),
    ).rejects.toMatchObject({ name: 'ServerException' });
  });
});

// ---------------------------------------------------------------------------------------------------------
// SNS

const TOPIC = `arn:aws:sns:${REGION}:123456789012:tollgate-escalations`;

interface SnsBody {
  default: string;
  sqs: string;
  lambda: string;
  https: string;
  http: string;
}

describe('SNS: Publish', () => {
  function sns() {
    const client = new SNSClient({ region: REGION });
    return { client, mock: mockClient(client) };
  }

  it('sends text to email and the JSON to machine protocols, with the format attribute', async () => {
    const { client, mock } = sns();
    mock.on(PublishCommand).resolves({ MessageId: 'm-1' });
    const json = { version: 1, outcome: 'ESCALATE', violations: [{ rule: 'fixable-high', findings: [] }] };
    await new SnsNotifier(client, TOPIC, fastRetry()).publish({
      subject: 'Tollgate: ESCALATE - myPipeline/SecurityGate',
      text: 'Tollgate needs a person for this release.\n\nfixable-high: 2 findings',
      json,
    });
    const input = mock.commandCalls(PublishCommand)[0]!.args[0].input;
    expect(input).toMatchObject({
      TopicArn: TOPIC,
      Subject: 'Tollgate: ESCALATE - myPipeline/SecurityGate',
      MessageStructure: 'json',
      MessageAttributes: { 'tollgate-format': { DataType: 'String', StringValue: 'v1' } },
    });
    const body = JSON.parse(input.Message!) as SnsBody;
    // Email and every protocol without a key of its own get `default`: a second copy would only count
    // against the size limit.
    expect(Object.keys(body).sort()).toEqual(['default', 'http', 'https', 'lambda', 'sqs']);
    expect(body.default).toBe('Tollgate needs a person for this release.\n\nfixable-high: 2 findings');
    for (const key of ['sqs', 'lambda', 'https', 'http'] as const) {
      expect(typeof body[key]).toBe('string');
      expect(JSON.parse(body[key])).toEqual(json);
    }
  });

  it('keeps the subject on one line, without control characters, under 100 characters', async () => {
    const { client, mock } = sns();
    mock.on(PublishCommand).resolves({});
    const subject = `Tollgate: ESCALATE\r\n - ${'pipeline-'.repeat(20)}\tend\u0007\u2028x`;
    await new SnsNotifier(client, TOPIC, fastRetry()).publish({ subject, text: 't', json: {} });
    const sent = mock.commandCalls(PublishCommand)[0]!.args[0].input.Subject!;
    expect(sent.length).toBeLessThanOrEqual(SNS_SUBJECT_MAX);
    expect(SNS_SUBJECT_MAX).toBeLessThan(100);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the assertion is about control characters
    expect(sent).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
    expect(sent.startsWith('Tollgate: ESCALATE - pipeline-pipeline-')).toBe(true);
    expect(sent.endsWith('...')).toBe(true);
    expect(snsSubject('  \n ')).toBe('Tollgate escalation');
    expect(snsSubject('short one')).toBe('short one');
  });

  it('shrinks the JSON findings to fit 256 KB, and says so in the text', async () => {
    const { client, mock } = sns();
    mock.on(PublishCommand).resolves({});
    const manyFindings = Array.from({ length: 3_000 }, (_, i) => ({
      vulnerabilityId: `CVE-2024-${10_000 + i}`,
      package: 'openssl',
      installedVersion: '3.0.13-0ubuntu3.2',
      fixedInVersion: '3.0.13-0ubuntu3.4',
      severity: 'HIGH',
      score: 7.5,
      epss: 0.0123,
      exploitAvailable: false,
    }));
    const json = {
      outcome: 'ESCALATE',
      violations: [{ rule: 'fixable-high', findings: manyFindings, more: 0 }],
    };
    await new SnsNotifier(client, TOPIC, fastRetry()).publish({
      subject: 'Tollgate',
      text: 'Escalated.',
      json,
    });
    const input = mock.commandCalls(PublishCommand)[0]!.args[0].input;
    expect(Buffer.byteLength(input.Message!, 'utf8')).toBeLessThanOrEqual(SNS_MESSAGE_MAX_BYTES);
    const body = JSON.parse(input.Message!) as SnsBody;
    const sent = JSON.parse(body.sqs) as { violations: Record<string, unknown>[] };
    const kept = (sent.violations[0]!.findings as unknown[]).length;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(3_000);
    // The cut is counted where the list already counts what it lacks: the JSON keeps its shape.
    expect(sent.violations[0]!.more).toBe(3_000 - kept);
    expect(Object.keys(sent.violations[0]!)).toEqual(['rule', 'findings', 'more']);
    expect(body.default).toContain(`leaves out ${3_000 - kept} of 3000 findings`);
    expect(body.default.startsWith('Escalated.')).toBe(true);
    // As much as fits: one more finding would not.
    expect(Buffer.byteLength(input.Message!, 'utf8')).toBeGreaterThan(SNS_MESSAGE_MAX_BYTES - 2_000);
  });

  it('cuts the text when even the JSON without findings does not fit', async () => {
    const { client, mock } = sns();
    mock.on(PublishCommand).resolves({});
    const text = 'line of text\n'.repeat(30_000);
    await new SnsNotifier(client, TOPIC, fastRetry()).publish({
      subject: 's',
      text,
      json: { findings: [1, 2] },
    });
    const input = mock.commandCalls(PublishCommand)[0]!.args[0].input;
    expect(Buffer.byteLength(input.Message!, 'utf8')).toBeLessThanOrEqual(SNS_MESSAGE_MAX_BYTES);
    const body = JSON.parse(input.Message!) as SnsBody;
    expect(body.default).toMatch(/Cut to keep this message within the SNS size limit of 256 KB/);
    expect(body.default.startsWith('line of text\n')).toBe(true);
  });

  it('a whole text beside JSON reduced to its essentials says the JSON was reduced, not that the text was cut', async () => {
    const { client, mock } = sns();
    mock.on(PublishCommand).resolves({});
    const text = 'A release is waiting.\n\nLinks\n  Approval  https://console.aws.amazon.com/x\n';
    const json = { version: '1', gate: { pipeline: 'p' }, links: {}, notes: 'n'.repeat(300_000) };
    await new SnsNotifier(client, TOPIC, fastRetry()).publish({ subject: 's', text, json });
    const body = JSON.parse(mock.commandCalls(PublishCommand)[0]!.args[0].input.Message!) as SnsBody;
    expect(body.default.startsWith(text)).toBe(true);
    expect(body.default).toContain('the JSON sent to SQS, Lambda and HTTP(S) subscribers was reduced');
    expect(body.default).not.toContain('Cut to keep');
    expect(Object.keys(JSON.parse(body.sqs))).toEqual(['version', 'gate', 'links', 'truncated', 'reason']);
  });

  it('a cut text keeps its links and where to answer; JSON too large even emptied keeps the release and its links', async () => {
    const { client, mock } = sns();
    mock.on(PublishCommand).resolves({});
    const approve = 'Approve or reject in the CodePipeline console: https://console.aws.amazon.com/x';
    const text = `A release is waiting.\n\n${'finding line\n'.repeat(30_000)}\nLinks\n  Approval  https://console.aws.amazon.com/x\n\n${approve}\n`;
    const json = {
      version: '1',
      outcome: 'ESCALATE',
      summary: 'ESCALATE by policy p',
      gate: { pipeline: 'payments', executionId: 'e-1' },
      links: { approval: 'https://console.aws.amazon.com/x' },
      // A field no list shrinks, too large to send: only the essentials can go.
      notes: 'n'.repeat(300_000),
    };
    await new SnsNotifier(client, TOPIC, fastRetry()).publish({ subject: 's', text, json });
    const input = mock.commandCalls(PublishCommand)[0]!.args[0].input;
    expect(Buffer.byteLength(input.Message!, 'utf8')).toBeLessThanOrEqual(SNS_MESSAGE_MAX_BYTES);
    const body = JSON.parse(input.Message!) as SnsBody;
    expect(body.default).toMatch(/Cut to keep this message within the SNS size limit of 256 KB/);
    expect(body.default.startsWith('A release is waiting.')).toBe(true);
    expect(body.default.endsWith(`${approve}\n`)).toBe(true);
    expect(JSON.parse(body.sqs)).toEqual({
      version: '1',
      outcome: 'ESCALATE',
      summary: 'ESCALATE by policy p',
      gate: { pipeline: 'payments', executionId: 'e-1' },
      links: { approval: 'https://console.aws.amazon.com/x' },
      truncated: true,
      reason: 'larger than the SNS size limit of 256 KB; see the decision record',
    });
  });
});

// ---------------------------------------------------------------------------------------------------------
// EventBridge

describe('EventBridge: PutEvents', () => {
  function eventbridge() {
    const client = new EventBridgeClient({ region: REGION });
    return { client, mock: mockClient(client) };
  }

  const PIPELINE_ARN = `arn:aws:codepipeline:${REGION}:123456789012:myPipeline`;
  const event = (n: number, detail: Record<string, unknown> = {}): TollgateEvent => ({
    detailType: n % 2 === 0 ? 'Tollgate Decision' : 'Tollgate Gate State Change',
    resources: [PIPELINE_ARN],
    detail: { n, ...detail },
  });
  const ok = (count: number) => ({
    FailedEntryCount: 0,
    Entries: Array.from({ length: count }, (_, i) => ({ EventId: `e-${i}` })),
  });

  it('sends to the default bus in batches of at most 10', async () => {
    const { client, mock } = eventbridge();
    mock.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => ok(input.Entries.length));
    await new EventBridgeEvents(client, fastRetry()).publish(Array.from({ length: 23 }, (_, i) => event(i)));
    const batches = mock.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries!);
    expect(batches.map((b) => b.length)).toEqual([10, 10, 3]);
    expect(Math.max(...batches.map((b) => b.length))).toBe(PUT_EVENTS_MAX_ENTRIES);
    expect(batches[0]![0]).toEqual({
      Source: 'tollgate',
      DetailType: 'Tollgate Decision',
      Detail: '{"n":0}',
      Resources: [PIPELINE_ARN],
    });
    expect(batches[0]![0]).not.toHaveProperty('EventBusName');
    expect(batches.flat().map((e) => JSON.parse(e.Detail!).n)).toEqual(
      Array.from({ length: 23 }, (_, i) => i),
    );
  });

  it('also splits batches to stay within 256 KB a request', async () => {
    const { client, mock } = eventbridge();
    mock.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => ok(input.Entries.length));
    const big = 'x'.repeat(100_000);
    await new EventBridgeEvents(client, fastRetry()).publish([
      event(0, { big }),
      event(1, { big }),
      event(2, { big }),
    ]);
    expect(mock.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries!.length)).toEqual([2, 1]);
  });

  it('sends nothing for no events', async () => {
    const { client, mock } = eventbridge();
    await new EventBridgeEvents(client, fastRetry()).publish([]);
    expect(mock.commandCalls(PutEventsCommand)).toHaveLength(0);
  });

  it('retries the entries EventBridge refused, once, and only those', async () => {
    const { client, mock } = eventbridge();
    const retry = fastRetry();
    mock
      .on(PutEventsCommand)
      .resolvesOnce({
        FailedEntryCount: 1,
        Entries: [
          { EventId: 'e-0' },
          { ErrorCode: 'ThrottlingException', ErrorMessage: 'Rate exceeded' },
          { EventId: 'e-2' },
        ],
      })
      .resolvesOnce(ok(1));
    await new EventBridgeEvents(client, retry).publish([event(0), event(1), event(2)]);
    const calls = mock.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries!);
    expect(calls).toHaveLength(2);
    expect(calls[1]!.map((e) => JSON.parse(e.Detail!).n)).toEqual([1]);
    expect(retry.sleeps).toHaveLength(1);
  });

  it('throws naming the entries refused twice', async () => {
    const { client, mock } = eventbridge();
    mock
      .on(PutEventsCommand)
      .resolvesOnce({
        FailedEntryCount: 2,
        Entries: [
          { ErrorCode: 'InternalFailure', ErrorMessage: 'Internal' },
          { EventId: 'e-1' },
          { ErrorCode: 'ThrottlingException', ErrorMessage: 'Rate exceeded' },
        ],
      })
      .resolvesOnce({
        FailedEntryCount: 1,
        Entries: [{ EventId: 'e-0' }, { ErrorCode: 'ThrottlingException', ErrorMessage: 'Rate exceeded' }],
      });
    const error: unknown = await new EventBridgeEvents(client, fastRetry())
      .publish([event(0), event(1), event(2)])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PutEventsError);
    const e = error as PutEventsError;
    expect(e.failures).toEqual([
      {
        detailType: 'Tollgate Decision',
        resources: [PIPELINE_ARN],
        errorCode: 'ThrottlingException',
        errorMessage: 'Rate exceeded',
      },
    ]);
    expect(e.message).toContain('"Tollgate Decision"');
    expect(e.message).toContain('ThrottlingException');
    expect(mock.commandCalls(PutEventsCommand)).toHaveLength(2);
  });
});

describe('EventBridge: PutEvents, a failure in one batch', () => {
  const PIPELINE_ARN = `arn:aws:codepipeline:${REGION}:123456789012:myPipeline`;
  // Details carry the gate's key at their top, as every Tollgate event's does.
  const event = (n: number, detail: Record<string, unknown> = {}): TollgateEvent => ({
    detailType: n % 2 === 0 ? 'Tollgate Decision' : 'Tollgate Gate State Change',
    resources: [PIPELINE_ARN],
    detail: {
      pipeline: 'myPipeline',
      executionId: `exec-${n}`,
      stage: 'Deploy',
      action: 'SecurityGate',
      attempt: 1,
      n,
      ...detail,
    },
  });
  const ok = (count: number) => ({
    FailedEntryCount: 0,
    Entries: Array.from({ length: count }, (_, i) => ({ EventId: `11710aed-b79e-4468-a20b-bb3c0c3b4${i}` })),
  });
  const accessDenied = () =>
    new EventBridgeServiceException({
      name: 'AccessDeniedException',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
      message:
        'User: arn:aws:sts::123456789012:assumed-role/tollgate-sweep/tollgate-sweep is not authorized to perform: events:PutEvents on resource: arn:aws:events:eu-central-1:123456789012:event-bus/default',
    });
  const sentNs = (mock: ReturnType<typeof mockClient>) =>
    mock
      .commandCalls(PutEventsCommand)
      .map((c) => c.args[0].input.Entries!.map((e) => JSON.parse(e.Detail!).n as number));

  it('stops at a request that failed as a whole, and throws one error naming the 16 events lost', async () => {
    const client = new EventBridgeClient({ region: REGION });
    const mock = mockClient(client);
    const retry = fastRetry();
    const denied = accessDenied();
    mock
      .on(PutEventsCommand)
      .resolvesOnce({
        FailedEntryCount: 1,
        Entries: ok(10).Entries.map((e, i) =>
          i === 3 ? { ErrorCode: 'ThrottlingException', ErrorMessage: 'Rate exceeded' } : e,
        ),
      })
      .rejectsOnce(denied)
      .resolvesOnce(ok(5))
      .resolvesOnce({
        FailedEntryCount: 1,
        Entries: [{ ErrorCode: 'ThrottlingException', ErrorMessage: 'Rate exceeded' }],
      });
    const error: unknown = await new EventBridgeEvents(client, retry)
      .publish(Array.from({ length: 25 }, (_, i) => event(i)))
      .catch((e: unknown) => e);

    const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
    // Nothing after the request that failed as a whole: not the third batch, not the refused entry again
    // (each would take its retries' whole time against an EventBridge that is down).
    expect(sentNs(mock)).toEqual([range(0, 10), range(10, 20)]);

    expect(error).toBeInstanceOf(PutEventsError);
    const e = error as PutEventsError;
    expect(e.total).toBe(25);
    expect(e.failures).toHaveLength(16);
    expect(e.failures[0]).toEqual({
      detailType: 'Tollgate Gate State Change',
      resources: [PIPELINE_ARN],
      gate: 'myPipeline/exec-3/Deploy/SecurityGate',
      errorCode: 'ThrottlingException',
      errorMessage: 'Rate exceeded',
    });
    expect(e.failures.slice(1).map((f) => [f.gate, f.errorCode])).toEqual([
      ...range(10, 20).map((n) => [`myPipeline/exec-${n}/Deploy/SecurityGate`, 'AccessDeniedException']),
      ...range(20, 25).map((n) => [`myPipeline/exec-${n}/Deploy/SecurityGate`, 'NotSent']),
    ]);
    expect(e.cause).toBe(denied);
    expect(e.message).toMatch(/^EventBridge PutEvents lost 16 of 25 event\(s\): /);
    expect(e.message).toContain('10 × AccessDeniedException (User: arn:aws:sts::');
    expect(e.message).toContain('1 × ThrottlingException (Rate exceeded)');
    expect(e.message).toContain('5 × NotSent (an earlier request failed (AccessDeniedException))');
    for (const n of [3, ...range(10, 25)])
      expect(e.message).toContain(`myPipeline/exec-${n}/Deploy/SecurityGate`);
  });

  it('does not send again an entry EventBridge refused for good (MalformedDetail)', async () => {
    const client = new EventBridgeClient({ region: REGION });
    const mock = mockClient(client);
    const retry = fastRetry();
    mock.on(PutEventsCommand).resolves({
      FailedEntryCount: 1,
      Entries: [{ EventId: 'e-0' }, { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is malformed.' }],
    });
    const error: unknown = await new EventBridgeEvents(client, retry)
      .publish([event(0), event(1)])
      .catch((e: unknown) => e);
    expect(sentNs(mock)).toEqual([[0, 1]]);
    expect(retry.sleeps).toEqual([]);
    expect((error as PutEventsError).failures.map((f) => [f.gate, f.errorCode])).toEqual([
      ['myPipeline/exec-1/Deploy/SecurityGate', 'MalformedDetail'],
    ]);
  });

  it('does not wait to try again an entry too large for any request (EntryTooLarge)', async () => {
    const client = new EventBridgeClient({ region: REGION });
    const mock = mockClient(client);
    const retry = fastRetry();
    mock.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => ok(input.Entries.length));
    const error: unknown = await new EventBridgeEvents(client, retry)
      .publish([event(0), event(1, { big: 'x'.repeat(300_000) }), event(2)])
      .catch((e: unknown) => e);
    expect(sentNs(mock)).toEqual([[0, 2]]);
    expect(retry.sleeps).toEqual([]);
    expect(error).toBeInstanceOf(PutEventsError);
    expect((error as PutEventsError).failures.map((f) => [f.gate, f.errorCode])).toEqual([
      ['myPipeline/exec-1/Deploy/SecurityGate', 'EntryTooLarge'],
    ]);
    expect((error as PutEventsError).message).toContain('lost 1 of 3 event(s)');
  });
});

// ---------------------------------------------------------------------------------------------------------
// Retries, for every operation

interface OperationCase {
  readonly op: string;
  /** Calls one successful run makes. */
  readonly calls: number;
  readonly errors: { throttle(): Error; server(): Error; denied(): Error };
  /** Mocks the operation: fails once with `error` then succeeds, or fails every time; runs it. */
  run(error: Error, always: boolean): { readonly done: Promise<unknown>; count(): number };
  /** What access denied resolves to, where it is an answer rather than a fault (the default: it throws). */
  readonly deniedAnswer?: unknown;
}

const cpErrors = serviceErrors(CodePipelineServiceException);
const ecrErrors = serviceErrors(ECRServiceException);
const snsErrors = {
  ...serviceErrors(SNSServiceException, 'Throttling'),
  throttle: () => new ThrottledException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } }),
};
const ebErrors = {
  ...serviceErrors(EventBridgeServiceException),
  throttle: () =>
    new EventBridgeThrottlingException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } }),
};

const OPERATIONS: readonly OperationCase[] = [
  {
    op: 'GetPipelineState',
    calls: 1,
    errors: cpErrors,
    run(error, always) {
      const { client, mock } = codepipeline();
      const b = mock.on(GetPipelineStateCommand);
      if (always) b.rejects(error);
      else b.rejectsOnce(error).resolves({ stageStates: [] });
      return {
        done: new CodePipelineApprovals(client, fastRetry()).pipelineState('p'),
        count: () => mock.commandCalls(GetPipelineStateCommand).length,
      };
    },
  },
  {
    op: 'ListActionExecutions',
    calls: 1,
    errors: cpErrors,
    run(error, always) {
      const { client, mock } = codepipeline();
      const b = mock.on(ListActionExecutionsCommand);
      if (always) b.rejects(error);
      else b.rejectsOnce(error).resolves({ actionExecutionDetails: [] });
      return {
        done: new CodePipelineApprovals(client, fastRetry()).actionExecutions('p', EXECUTION),
        count: () => mock.commandCalls(ListActionExecutionsCommand).length,
      };
    },
  },
  {
    op: 'GetPipelineExecution',
    calls: 1,
    errors: cpErrors,
    run(error, always) {
      const { client, mock } = codepipeline();
      const b = mock.on(GetPipelineExecutionCommand);
      if (always) b.rejects(error);
      else b.rejectsOnce(error).resolves({ pipelineExecution: { status: 'InProgress' } });
      return {
        done: new CodePipelineApprovals(client, fastRetry()).pipelineExecution('p', EXECUTION),
        count: () => mock.commandCalls(GetPipelineExecutionCommand).length,
      };
    },
  },
  {
    op: 'PutApprovalResult',
    calls: 1,
    errors: cpErrors,
    run(error, always) {
      const { client, mock } = codepipeline();
      const b = mock.on(PutApprovalResultCommand);
      if (always) b.rejects(error);
      else b.rejectsOnce(error).resolves({ approvedAt: new Date() });
      return {
        done: new CodePipelineApprovals(client, fastRetry())
          .putApprovalResult({
            pipeline: 'p',
            stage: 's',
            action: 'a',
            token: TOKEN,
            result: { status: 'Approved', summary: 'ok' },
          })
          .then((outcome) => expect(outcome).toBe('accepted')),
        count: () => mock.commandCalls(PutApprovalResultCommand).length,
      };
    },
  },
  {
    op: 'ListCoverage',
    calls: 1,
    errors: inspectorErrors,
    run(error, always) {
      const { client, mock } = inspector();
      const b = mock.on(ListCoverageCommand);
      if (always) b.rejects(error);
      else b.rejectsOnce(error).resolves({ coveredResources: [coveredResource(DIGEST)] });
      return {
        done: new InspectorFindings(client, fastRetry()).coverage(IMAGE),
        count: () => mock.commandCalls(ListCoverageCommand).length,
      };
    },
  },
  {
    op: 'ListFindings',
    // One chain per severity, all started at once.
    calls: SEVERITY_CHAINS.length,
    errors: inspectorErrors,
    run(error, always) {
      const { client, mock } = inspector();
      const b = mock.on(ListFindingsCommand);
      if (always) b.rejects(error);
      else b.rejectsOnce(error).resolves({ findings: [] });
      return {
        done: new InspectorFindings(client, fastRetry()).inspectorFindings(IMAGE),
        count: () => mock.commandCalls(ListFindingsCommand).length,
      };
    },
  },
  {
    op: 'DescribeImageScanFindings',
    calls: 1,
    errors: ecrErrors,
    run(error, always) {
      const { client, mock } = ecr();
      const b = mock.on(DescribeImageScanFindingsCommand);
      if (always) b.rejects(error);
      else b.rejectsOnce(error).resolves({ imageScanStatus: { status: 'COMPLETE' }, imageScanFindings: {} });
      return {
        done: new EcrScanFindings(client, fastRetry()).ecrScanFindings(IMAGE),
        count: () => mock.commandCalls(DescribeImageScanFindingsCommand).length,
      };
    },
  },
  {
    op: 'DescribeImages',
    calls: 1,
    errors: ecrErrors,
    deniedAnswer: { missing: expect.stringContaining('AccessDeniedException') },
    run(error, always) {
      const { client, mock } = ecr();
      const b = mock.on(DescribeImagesCommand);
      if (always) b.rejects(error);
      else b.rejectsOnce(error).resolves({ imageDetails: [{ imageDigest: DIGEST }] });
      return {
        done: new EcrImages(client, fastRetry()).resolveTag('inspector2', 'ubuntu_latest', undefined),
        count: () => mock.commandCalls(DescribeImagesCommand).length,
      };
    },
  },
  {
    op: 'Publish',
    calls: 1,
    errors: snsErrors,
    run(error, always) {
      const client = new SNSClient({ region: REGION });
      const mock = mockClient(client);
      const b = mock.on(PublishCommand);
      if (always) b.rejects(error);
      else b.rejectsOnce(error).resolves({ MessageId: 'm' });
      return {
        done: new SnsNotifier(client, TOPIC, fastRetry()).publish({ subject: 's', text: 't', json: {} }),
        count: () => mock.commandCalls(PublishCommand).length,
      };
    },
  },
  {
    op: 'PutEvents',
    calls: 1,
    errors: ebErrors,
    run(error, always) {
      const client = new EventBridgeClient({ region: REGION });
      const mock = mockClient(client);
      const b = mock.on(PutEventsCommand);
      if (always) b.rejects(error);
      else b.rejectsOnce(error).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e' }] });
      return {
        // These cases are about how the request is retried: its own error, which PutEventsError carries.
        done: new EventBridgeEvents(client, fastRetry())
          .publish([{ detailType: 'Tollgate Decision', resources: [], detail: {} }])
          .catch((e: unknown) => {
            throw e instanceof PutEventsError ? e.cause : e;
          }),
        count: () => mock.commandCalls(PutEventsCommand).length,
      };
    },
  },
];

describe.each(OPERATIONS)('retries: $op', (c) => {
  it('throttling, then success', async () => {
    const run = c.run(c.errors.throttle(), false);
    await run.done;
    expect(run.count()).toBe(c.calls + 1);
  });

  it('a 5xx, then success', async () => {
    const run = c.run(c.errors.server(), false);
    await run.done;
    expect(run.count()).toBe(c.calls + 1);
  });

  it('a name that did not resolve (ENOTFOUND), then success', async () => {
    const run = c.run(networkError('ENOTFOUND'), false);
    await run.done;
    expect(run.count()).toBe(c.calls + 1);
  });

  it('access denied is not retried', async () => {
    const run = c.run(c.errors.denied(), true);
    if (c.deniedAnswer === undefined)
      await expect(run.done).rejects.toMatchObject({ name: 'AccessDeniedException' });
    else expect(await run.done).toEqual(c.deniedAnswer);
    expect(run.count()).toBe(c.calls);
  });

  if (c.calls === 1) {
    it('gives up after the configured attempts', async () => {
      const run = c.run(c.errors.throttle(), true);
      await expect(run.done).rejects.toBeInstanceOf(Error);
      expect(run.count()).toBe(5);
    });
  }
});

describe('withRetries and its classification', () => {
  it('waits with exponential backoff and full jitter, capped, honouring retryAfterSeconds', () => {
    const half = { attempts: 5, baseMs: 100, maxDelayMs: 1_000, random: () => 0.5 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, half))).toEqual([50, 100, 200, 400, 500, 500]);
    expect(backoffMs(1, { ...half, random: () => 0 })).toBe(0);
    expect(backoffMs(1, half, { retryAfterSeconds: 0.3 })).toBe(300);
    expect(backoffMs(1, half, { retryAfterSeconds: 60 })).toBe(1_000);
  });

  it.each([
    ['ThrottlingException', undefined, true],
    ['TooManyRequestsException', undefined, true],
    ['ProvisionedThroughputExceededException', undefined, true],
    ['RequestLimitExceeded', undefined, true],
    ['KMSThrottlingException', 400, true],
    ['ServiceUnavailable', undefined, true],
    ['InternalServerException', undefined, true],
    ['SomethingNew', 500, true],
    ['SomethingNew', 503, true],
    ['SomethingNew', 429, true],
    ['AccessDeniedException', 403, false],
    ['ValidationException', 400, false],
    ['LimitExceededException', 400, false],
    ['AbortError', undefined, false],
  ])('%s (HTTP %s) retryable: %s', (name, status, expected) => {
    const error = Object.assign(new Error('x'), {
      name,
      $metadata: status === undefined ? {} : { httpStatusCode: status },
    });
    expect(isRetryableAwsError(error)).toBe(expected);
  });

  it('retries the $retryable trait, network resets and a corrected clock skew', () => {
    expect(isRetryableAwsError(Object.assign(new Error('x'), { name: 'X', $retryable: {} }))).toBe(true);
    expect(isRetryableAwsError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe(
      true,
    );
    expect(
      isRetryableAwsError(
        Object.assign(new Error('x'), { name: 'X', $metadata: { clockSkewCorrected: true } }),
      ),
    ).toBe(true);
    expect(isRetryableAwsError('ThrottlingException')).toBe(false);
  });

  it.each([
    ['ENOTFOUND', 'getaddrinfo'],
    ['EAI_AGAIN', 'getaddrinfo'],
    ['EHOSTUNREACH', 'connect'],
    ['ENETUNREACH', 'connect'],
    ['ECONNREFUSED', 'connect'],
    ['ETIMEDOUT', 'connect'],
  ])('%s (%s) fails before the request goes out: retried, and it cannot have landed', (code, syscall) => {
    const error = networkError(code, syscall);
    expect(isRetryableAwsError(error)).toBe(true);
    expect(mayHaveLanded(error)).toBe(false);
  });

  it('on a connection already made, the same codes and timeouts may have landed; so may one without a syscall', () => {
    for (const code of ['EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']) {
      for (const syscall of ['read', 'write', undefined]) {
        const error = Object.assign(new Error(code), { code, ...(syscall === undefined ? {} : { syscall }) });
        expect(isRetryableAwsError(error), `${code} ${syscall}`).toBe(true);
        expect(mayHaveLanded(error), `${code} ${syscall}`).toBe(true);
      }
    }
    // The connection timeout says it never connected; the request timeout (ETIMEDOUT, connected) does not.
    expect(isRetryableAwsError(connectTimeout())).toBe(true);
    expect(mayHaveLanded(connectTimeout())).toBe(false);
    const older = Object.assign(
      new Error('Socket timed out without establishing a connection within 3000 ms'),
      {
        name: 'TimeoutError',
      },
    );
    expect(mayHaveLanded(older)).toBe(false);
    const request = Object.assign(
      new Error(
        '@smithy/node-http-handler - [ERROR] a request has exceeded the configured 20000 ms requestTimeout.',
      ),
      { name: 'TimeoutError', code: 'ETIMEDOUT' },
    );
    expect(mayHaveLanded(request)).toBe(true);
  });

  it('stops waiting as soon as the signal fires', async () => {
    const controller = new AbortController();
    let calls = 0;
    const started = Date.now();
    setTimeout(() => controller.abort(new Error('stop')), 10);
    await expect(
      withRetries(
        async () => {
          calls++;
          throw inspectorErrors.throttle();
        },
        { attempts: 5, baseMs: 60_000, random: () => 0.99 },
        controller.signal,
      ),
    ).rejects.toThrow('stop');
    expect(calls).toBe(1);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

// ---------------------------------------------------------------------------------------------------------
// The factory

describe('createAwsAdapters', () => {
  it('uses the clients it is given', async () => {
    const { client, mock } = codepipeline();
    mock.on(GetPipelineStateCommand).resolves({ stageStates: [{ stageName: 'Only', actionStates: [] }] });
    const adapters = createAwsAdapters({
      region: REGION,
      clients: { codepipeline: client },
      retry: fastRetry(),
    });
    expect(await adapters.approvals.pipelineState('p')).toEqual([
      { name: 'Only', executionId: undefined, actions: [] },
    ]);
    expect(Object.keys(adapters).sort()).toEqual(['approvals', 'events', 'findings', 'images', 'notifier']);
  });

  it("builds clients with the SDK's retries off, so that attempts do not multiply", async () => {
    const clients = createAwsClients(REGION);
    for (const c of Object.values(clients)) {
      expect(await c.config.maxAttempts()).toBe(1);
      expect(await c.config.region()).toBe(REGION);
    }
  });

  it('builds clients whose HTTP attempts time out (the SDK sets no request timeout of its own)', async () => {
    /** The handler's settings, as it resolves them before its first request. */
    const settings = (client: { config: { requestHandler: unknown } }) =>
      (client.config.requestHandler as { configProvider: Promise<Record<string, unknown>> }).configProvider;
    // The socket's idle timer runs while the service works on its answer too: never shorter than the request's.
    expect(HTTP_TIMEOUTS.socketTimeout).toBeGreaterThanOrEqual(HTTP_TIMEOUTS.requestTimeout);
    for (const c of Object.values(createAwsClients(REGION))) {
      expect(await settings(c)).toMatchObject({
        connectionTimeout: HTTP_TIMEOUTS.connectionTimeout,
        requestTimeout: HTTP_TIMEOUTS.requestTimeout,
        socketTimeout: HTTP_TIMEOUTS.socketTimeout,
        throwOnRequestTimeout: true,
      });
    }
    expect(await settings(createDocumentClient({ region: REGION }))).toMatchObject({
      requestTimeout: HTTP_TIMEOUTS.requestTimeout,
      socketTimeout: HTTP_TIMEOUTS.socketTimeout,
      throwOnRequestTimeout: true,
    });
  });

  /** Timeouts a test can wait out. */
  const TIGHT: HttpTimeouts = { connectionTimeout: 200, requestTimeout: 300, socketTimeout: 300 };
  /** A CodePipeline client as the factory builds it (or with these timeouts), sending to a local server. */
  const localCodePipeline = (port: number, timeouts?: HttpTimeouts) =>
    new CodePipelineClient({
      ...sdkClientConfig(REGION, timeouts),
      endpoint: `http://127.0.0.1:${port}`,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    });

  it('a connection that accepts and never answers fails the attempt as TimeoutError, which is retried and may have landed', async () => {
    const sockets: Socket[] = [];
    const server = createServer(() => undefined);
    server.on('connection', (s) => sockets.push(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const client = localCodePipeline(port, TIGHT);
      const started = Date.now();
      const error = await client.send(new GetPipelineStateCommand({ name: 'p' })).catch((e: unknown) => e);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(error).toMatchObject({ name: 'TimeoutError' });
      expect(isRetryableAwsError(error)).toBe(true);
      expect(mayHaveLanded(error)).toBe(true);
      client.destroy();
    } finally {
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  it('an answer whose body stalls after its headers fails the attempt as TimeoutError, which may have landed', async () => {
    // The request timeout ends when the headers are in: without the socket's, this attempt waits until Lambda
    // kills the function, and what the call did is never recorded.
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'content-length': '200' });
        res.write('{"pipelineName":"p",');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const client = localCodePipeline(port, TIGHT);
      const outcome = await Promise.race([
        client.send(new GetPipelineStateCommand({ name: 'p' })).catch((e: unknown) => e),
        new Promise((resolve) => setTimeout(() => resolve('still waiting'), 5_000).unref()),
      ]);
      expect(outcome).toMatchObject({ name: 'TimeoutError' });
      expect(isRetryableAwsError(outcome)).toBe(true);
      expect(mayHaveLanded(outcome)).toBe(true);
      client.destroy();
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('an answer of 200 whose body does not parse was carried out: it may have landed', async () => {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
        res.end('{"approvedAt": 17');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const client = localCodePipeline(port);
      const error = await client
        .send(
          new PutApprovalResultCommand({
            pipelineName: 'p',
            stageName: 's',
            actionName: 'a',
            token: '11111111-2222-3333-4444-555555555555',
            result: { status: 'Approved', summary: 'x' },
          }),
        )
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ $metadata: { httpStatusCode: 200 } });
      expect(mayHaveLanded(error)).toBe(true);
      // The adapter takes it for what it is, the result accepted, and does not send it again.
      let calls = 0;
      server.on('request', () => calls++);
      const outcome = await new CodePipelineApprovals(client, fastRetry()).putApprovalResult({
        pipeline: 'p',
        stage: 's',
        action: 'a',
        token: '11111111-2222-3333-4444-555555555555',
        result: { status: 'Approved', summary: 'x' },
      });
      expect([outcome, calls]).toEqual(['accepted', 1]);
      client.destroy();
    } finally {
      server.close();
    }
  });

  it('a name that does not resolve, and a connection never made within its timeout, are retried and cannot have landed', async () => {
    const client = (endpoint: string, httpAgent?: Agent) =>
      new CodePipelineClient({
        region: REGION,
        maxAttempts: 1,
        requestHandler: {
          ...httpHandlerConfig({ connectionTimeout: 200, requestTimeout: 300, socketTimeout: 300 }),
          ...(httpAgent === undefined ? {} : { httpAgent }),
        },
        endpoint,
        credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      });
    // A name that does not resolve, as getaddrinfo reports it; answered here, so the test does not depend on
    // the host's resolver (or on there being one).
    class Unresolved extends Agent {
      override createConnection(options: NetConnectOpts): Socket {
        return createConnection({
          ...options,
          lookup: (hostname, _options, callback) =>
            callback(
              Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
                code: 'ENOTFOUND',
                errno: -3008,
                syscall: 'getaddrinfo',
                hostname,
              }),
              '',
            ),
        });
      }
    }
    const unresolved = client('http://tollgate-test.invalid', new Unresolved());
    const dns = await unresolved.send(new GetPipelineStateCommand({ name: 'p' })).catch((e: unknown) => e);
    expect(dns).toMatchObject({
      code: 'ENOTFOUND',
      syscall: 'getaddrinfo',
      hostname: 'tollgate-test.invalid',
    });
    expect(isRetryableAwsError(dns)).toBe(true);
    expect(mayHaveLanded(dns)).toBe(false);
    unresolved.destroy();

    // A socket that never connects (its name lookup never answers): the handler's connection timeout.
    class Stalled extends Agent {
      override createConnection(options: NetConnectOpts): Socket {
        return createConnection({ ...options, lookup: () => undefined });
      }
    }
    const stalled = client('http://stalled.invalid', new Stalled());
    const started = Date.now();
    const timeout = await stalled.send(new GetPipelineStateCommand({ name: 'p' })).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(timeout).toMatchObject({ name: 'TimeoutError', message: expect.stringContaining('connection') });
    expect(isRetryableAwsError(timeout)).toBe(true);
    expect(mayHaveLanded(timeout)).toBe(false);
    stalled.destroy();
  });

  it('refuses to escalate without a topic', async () => {
    const adapters = createAwsAdapters({ region: REGION });
    await expect(adapters.notifier.publish({ subject: 's', text: 't', json: {} })).rejects.toThrow(
      /topicArn/,
    );
  });
});
