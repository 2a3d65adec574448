import {
  type ActionExecutionDetail,
  type CodePipelineClient,
  GetPipelineExecutionCommand,
  type GetPipelineExecutionCommandOutput,
  GetPipelineStateCommand,
  ListActionExecutionsCommand,
  ListPipelineExecutionsCommand,
  ListPipelinesCommand,
  PutApprovalResultCommand,
  type StageState,
} from '@aws-sdk/client-codepipeline';
import {
  type ActionExecutionView,
  type ApprovalsPort,
  ExecutionNotFound,
  type PipelineExecutionSummaryView,
  type PipelineExecutionView,
  type PipelineSummaryView,
  type PipelinesPort,
  type PutApprovalOutcome,
  type PutApprovalRequest,
  type RecentExecutions,
  resultMayHaveLanded,
  type StageStateView,
} from '../../shared/gate/ports.js';
import { DEFAULT_RETRY, everyPage, type RetryOptions, withRetries, withRetriesMayLand } from './retry.js';

/** `ApprovalSummary` in the CodePipeline API model: at most 512 characters. */
export const APPROVAL_SUMMARY_MAX = 512;

/**
 * Cuts a summary to `max` UTF-16 code units, ending in an ellipsis, without splitting a surrogate pair.
 * Code units, not code points: whichever way the service counts, the result fits.
 */
export function truncateSummary(summary: string, max = APPROVAL_SUMMARY_MAX): string {
  if (summary.length <= max) return summary;
  let cut = max - 1;
  const last = summary.charCodeAt(cut - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut--;
  return `${summary.slice(0, cut)}…`;
}

export class CodePipelineApprovals implements ApprovalsPort {
  constructor(
    private readonly client: CodePipelineClient,
    private readonly retry: RetryOptions = DEFAULT_RETRY,
  ) {}

  /** A pipeline that does not exist (deleted since its event) has no stages: its gates are stale, not retried. */
  async pipelineState(pipeline: string): Promise<readonly StageStateView[]> {
    try {
      const out = await withRetries(
        () => this.client.send(new GetPipelineStateCommand({ name: pipeline })),
        this.retry,
      );
      return (out.stageStates ?? []).map(stageView);
    } catch (e) {
      if (isPipelineNotFound(e)) return [];
      throw e;
    }
  }

  async actionExecutions(pipeline: string, executionId: string): Promise<readonly ActionExecutionView[]> {
    const views: ActionExecutionView[] = [];
    try {
      const pages = everyPage('ListActionExecutions', this.retry, (nextToken) =>
        this.client.send(
          new ListActionExecutionsCommand({
            pipelineName: pipeline,
            filter: { pipelineExecutionId: executionId },
            maxResults: 100,
            ...(nextToken === undefined ? {} : { nextToken }),
          }),
        ),
      );
      for await (const page of pages) {
        for (const detail of page.actionExecutionDetails ?? []) views.push(actionExecutionView(detail));
      }
    } catch (e) {
      if (isPipelineNotFound(e)) return [];
      // "cannot be found, or does not belong to the pipeline" (the API model): the execution is gone, which no
      // retry changes. Not an empty list: in PARALLEL mode that reads as a run not listed yet, for ever.
      if (e instanceof Error && e.name === 'PipelineExecutionNotFoundException') {
        throw new ExecutionNotFound(pipeline, executionId, { cause: e });
      }
      throw e;
    }
    return views;
  }

  async pipelineExecution(pipeline: string, executionId: string): Promise<PipelineExecutionView | undefined> {
    let out: GetPipelineExecutionCommandOutput;
    try {
      out = await withRetries(
        () =>
          this.client.send(
            new GetPipelineExecutionCommand({ pipelineName: pipeline, pipelineExecutionId: executionId }),
          ),
        this.retry,
      );
    } catch (e) {
      // No such execution, or pipeline: an answer, not a failure (a retry would get the same).
      if (isPipelineNotFound(e) || (e instanceof Error && e.name === 'PipelineExecutionNotFoundException')) {
        return undefined;
      }
      throw e;
    }
    const execution = out.pipelineExecution;
    const variables: Record<string, string> = {};
    for (const v of execution?.variables ?? []) {
      if (v.name !== undefined && v.resolvedValue !== undefined) variables[v.name] = v.resolvedValue;
    }
    return {
      status: execution?.status,
      executionMode: execution?.executionMode,
      executionType: execution?.executionType,
      variables,
    };
  }

  async putApprovalResult(request: PutApprovalRequest): Promise<PutApprovalOutcome> {
    // PutApprovalResult is not idempotent: after a timeout, a reset connection or a 5xx, the call may have
    // landed with only its answer lost, and the retry then hears that the approval is already completed.
    try {
      await withRetriesMayLand(
        () =>
          this.client.send(
            new PutApprovalResultCommand({
              pipelineName: request.pipeline,
              stageName: request.stage,
              actionName: request.action,
              token: request.token,
              result: { status: request.result.status, summary: truncateSummary(request.result.summary) },
            }),
          ),
        this.retry,
      );
      return 'accepted';
    } catch (e) {
      const landed = resultMayHaveLanded(e, false);
      // By name, not instanceof: an error from another copy of the SDK module is the same answer.
      const name = e instanceof Error ? e.name : undefined;
      if (name === 'ApprovalAlreadyCompletedException')
        return landed ? 'completed-after-lost-answer' : 'already-completed';
      // "Already received a response or has expired": after an attempt that may have landed, that response
      // may be this call's own, not a sign the execution moved on.
      if (name === 'InvalidApprovalTokenException')
        return landed ? 'completed-after-lost-answer' : 'invalid-token';
      const error = redactToken(e, request.token);
      // The gate keeps a result that may have gone out in mind (`resultMayHaveLanded` in the ports).
      if (error instanceof Error) Object.assign(error, { resultMayHaveLanded: landed });
      throw error;
    }
  }
}

/**
 * Pages of `ListPipelineExecutions` read for one pipeline at most: 2,000 executions. Reaching it with recent
 * ones left, the listing says it is not complete (discovery looks through what it read, then counts and
 * alarms on the rest) rather than passing for "nothing older waits".
 */
export const EXECUTION_PAGES_MAX = 20;

/**
 * `ListPipelines` and `ListPipelineExecutions`, apart from `CodePipelineApprovals`: only the sweep looks for
 * approvals no event announced, so only its bundle carries the commands.
 */
export class CodePipelineDirectory implements PipelinesPort {
  constructor(
    private readonly client: CodePipelineClient,
    private readonly retry: RetryOptions = DEFAULT_RETRY,
  ) {}

  /** The execution mode as the summary gives it (the API's default, SUPERSEDED, is not assumed when absent). */
  async pipelineSummaries(): Promise<readonly PipelineSummaryView[]> {
    const summaries: PipelineSummaryView[] = [];
    const pages = everyPage('ListPipelines', this.retry, (nextToken) =>
      this.client.send(
        new ListPipelinesCommand({ maxResults: 1000, ...(nextToken === undefined ? {} : { nextToken }) }),
      ),
    );
    for await (const page of pages) {
      for (const p of page.pipelines ?? []) {
        if (p.name) summaries.push({ name: p.name, executionMode: p.executionMode });
      }
    }
    return summaries;
  }

  async recentExecutions(pipeline: string, since: Date): Promise<RecentExecutions> {
    const views = new Map<string, PipelineExecutionSummaryView>();
    let read = 0;
    try {
      const pages = everyPage('ListPipelineExecutions', this.retry, (nextToken) =>
        this.client.send(
          new ListPipelineExecutionsCommand({
            pipelineName: pipeline,
            maxResults: 100,
            ...(nextToken === undefined ? {} : { nextToken }),
          }),
        ),
      );
      for await (const page of pages) {
        read++;
        let recent = false;
        for (const summary of page.pipelineExecutionSummaries ?? []) {
          // An execution without a start time may be recent, and the listing goes on.
          if (summary.startTime === undefined || summary.startTime >= since) recent = true;
          // Older ones on a page read are kept: one still in progress is still worth a look. An execution
          // that started while the pages were read moves the others down a place: read twice, kept once.
          if (summary.pipelineExecutionId === undefined || views.has(summary.pipelineExecutionId)) continue;
          views.set(summary.pipelineExecutionId, {
            executionId: summary.pipelineExecutionId,
            status: summary.status,
            startedAt: summary.startTime?.toISOString(),
            executionMode: summary.executionMode,
          });
        }
        // Newest first: a page with nothing recent ends it. Not the first older one, so that executions a
        // moment out of order at a page's end are still read.
        if (!recent || !page.nextToken) break;
        if (read === EXECUTION_PAGES_MAX) return { executions: [...views.values()], complete: false };
      }
    } catch (e) {
      if (isPipelineNotFound(e)) return { executions: [], complete: true };
      throw e;
    }
    return { executions: [...views.values()], complete: true };
  }
}

/**
 * `PipelineNotFoundException`: the pipeline is gone (or never was, in this account and region). A retry
 * cannot bring it back, and throwing would dead-letter the event after Lambda's retries for nothing.
 * By name, not instanceof, as above.
 */
function isPipelineNotFound(e: unknown): boolean {
  return e instanceof Error && e.name === 'PipelineNotFoundException';
}

function stageView(stage: StageState): StageStateView {
  return {
    name: stage.stageName ?? '',
    executionId: stage.latestExecution?.pipelineExecutionId,
    actions: (stage.actionStates ?? []).map((a) => ({
      name: a.actionName ?? '',
      status: a.latestExecution?.status,
      token: a.latestExecution?.token,
      actionExecutionId: a.latestExecution?.actionExecutionId,
      since: a.latestExecution?.lastStatusChange?.toISOString(),
    })),
  };
}

function actionExecutionView(d: ActionExecutionDetail): ActionExecutionView {
  return {
    stage: d.stageName ?? '',
    action: d.actionName ?? '',
    actionExecutionId: d.actionExecutionId ?? '',
    status: d.status ?? '',
    // The resolved value has the pipeline's variables filled in; the raw one is all older executions have.
    customData: d.input?.resolvedConfiguration?.CustomData ?? d.input?.configuration?.CustomData,
    externalExecutionId: d.output?.executionResult?.externalExecutionId,
    startedAt: d.startTime?.toISOString(),
    updatedBy: d.updatedBy || undefined,
    updatedAt: d.lastUpdateTime?.toISOString(),
    summary: d.output?.executionResult?.externalExecutionSummary,
    manualApproval:
      d.input?.actionTypeId === undefined
        ? undefined
        : d.input.actionTypeId.category === 'Approval' &&
          d.input.actionTypeId.owner === 'AWS' &&
          d.input.actionTypeId.provider === 'Manual',
  };
}

const REDACTED = '<approval token>';

/**
 * Approval tokens are credentials: whoever holds one can approve. Errors get logged, and some services echo
 * request values in their messages, so the token is cut out of every text the error carries.
 */
function redactToken(error: unknown, token: string): unknown {
  if (!(error instanceof Error) || token === '') return error;
  const scrub = (text: string) => text.split(token).join(REDACTED);
  if (error.message.includes(token)) error.message = scrub(error.message);
  if (error.stack?.includes(token)) error.stack = scrub(error.stack);
  const fields = error as unknown as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    if (typeof value === 'string' && value.includes(token)) fields[key] = scrub(value);
  }
  return error;
}
