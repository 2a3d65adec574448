import type { GateKey } from './model.js';
import type { ActionExecutionView, StageStateView } from './ports.js';
import { hashToken } from './work.js';

/** How long after its start an approval's run may still be missing from ListActionExecutions. */
export const LISTING_GRACE_MS = 5 * 60_000;

export type TokenCheck =
  | {
      readonly ok: true;
      readonly token: string;
      readonly mode: 'stage' | 'parallel';
      readonly actionExecutionId: string | undefined;
    }
  | { readonly ok: false; readonly reason: string; readonly final: boolean };

/**
 * Is this gate's approval still the one waiting, and with which token? The action event carries no token:
 * `GetPipelineState` has it, but only for the stage's latest execution, so that execution must be ours and
 * the action in progress. In PARALLEL execution mode the state shows no token; the action execution's
 * `externalExecutionId` is the token then. `final` says the execution has moved on for good (STALE).
 *
 * `actionExecutionId` is the gate's own run of the action, when known: a retried stage runs the action again
 * in the same execution, and another run's token or end is never taken for the gate's own.
 *
 * `justStarted`: the approval started moments ago (its STARTED event is being handled, or the gate is younger
 * than LISTING_GRACE_MS), when the run listing may not show it yet. Only then is a state naming another
 * execution, with our run unlisted, a lag to wait out; later it means the execution moved on.
 */
export function checkToken(
  key: GateKey,
  stages: readonly StageStateView[],
  executions: readonly ActionExecutionView[] | undefined,
  actionExecutionId?: string,
  justStarted = false,
): TokenCheck {
  const check = findToken(key, stages, executions, actionExecutionId, justStarted);
  // PutApprovalResult takes only a token of the API model's pattern. Anything else shown where the token
  // should be (an externalExecutionId that is not one) would be refused on every send and hashed as the
  // approval's: it is no token, and the gate goes on as without one (acting fails and is retried and alarmed;
  // an escalation goes out without it).
  if (check.ok && !APPROVAL_TOKEN.test(check.token)) {
    return {
      ok: false,
      reason: `the ${check.mode === 'parallel' ? "run's externalExecutionId" : "state's token"} is not an approval token (a lowercase UUID)`,
      final: false,
    };
  }
  return check;
}

/**
 * The token read now, for a gate that has already seen its approval's (`seenHash`): another token is another
 * approval, a later run of the action (the stage retried after the gate's run ended, its end event lost),
 * which a gate that knows no run id cannot tell from its own by the state alone. Final: the gate's approval
 * is over, and nothing of its decision is sent to the other run.
 */
export function ofSameApproval(check: TokenCheck, seenHash: string | undefined): TokenCheck {
  if (!check.ok || seenHash === undefined || hashToken(check.token) === seenHash) return check;
  return {
    ok: false,
    reason: "the approval's token changed: another run of the action",
    final: true,
  };
}

/** `ApprovalToken` in CodePipeline's API model. */
export const APPROVAL_TOKEN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function findToken(
  key: GateKey,
  stages: readonly StageStateView[],
  executions: readonly ActionExecutionView[] | undefined,
  actionExecutionId: string | undefined,
  justStarted: boolean,
): TokenCheck {
  const stage = stages.find((s) => s.name === key.stage);
  const action = stage?.actions.find((a) => a.name === key.action);
  const ofAction = executions?.filter((e) => e.stage === key.stage && e.action === key.action) ?? [];
  // A stage retried within the execution runs the action again: each attempt is a run of its own, and a
  // gate that knows its run reads only that one (another attempt's status or token is not its own).
  const mine =
    actionExecutionId === undefined
      ? ofAction[0]
      : ofAction.find((e) => e.actionExecutionId === actionExecutionId);
  if (stage && action && stage.executionId === key.executionId) {
    // Is the run the state shows ours? Yes when the gate knows no run (as before runs were read) or the
    // state names ours; no when it names another; unknown when it names none (older API answers).
    const stateRun = action.actionExecutionId;
    const ours =
      actionExecutionId === undefined || stateRun === actionExecutionId
        ? true
        : stateRun !== undefined
          ? false
          : undefined;
    if (ours === true) {
      if (action.status === 'InProgress' && action.token) {
        return { ok: true, token: action.token, mode: 'stage', actionExecutionId: stateRun };
      }
      // The state can still show the action's previous run a moment after ours started: the action
      // executions, when read, have the last word before a gate is given up for good.
      if (action.status !== 'InProgress' && mine?.status !== 'InProgress') {
        return {
          ok: false,
          reason: `the approval is no longer in progress (${action.status ?? 'never ran'})`,
          final: true,
        };
      }
    } else if (
      ours === undefined &&
      mine?.status === 'InProgress' &&
      action.status === 'InProgress' &&
      action.token
    ) {
      // An unnamed run in progress while ours is: an action runs once at a time in an execution, so it is ours.
      return { ok: true, token: action.token, mode: 'stage', actionExecutionId };
    } else if (mine === undefined) {
      // Another run in the state (a retry after ours, or the run before ours while the state lags), or an
      // unnamed one, and our own run not read or not listed yet: nothing says which. Wait; the token and
      // the end come from our run once it is listed, or from the approval's end event.
      return {
        ok: false,
        reason: 'the state shows another run of the approval than this gate',
        final: false,
      };
    }
    // Otherwise our own run, below, says whether it is waiting and with which token.
  }
  if (mine) {
    if (mine.status === 'InProgress' && mine.externalExecutionId) {
      return {
        ok: true,
        token: mine.externalExecutionId,
        mode: 'parallel',
        actionExecutionId: mine.actionExecutionId,
      };
    }
    if (mine.status !== 'InProgress') {
      return { ok: false, reason: `the approval is no longer in progress (${mine.status})`, final: true };
    }
    // Ours, in progress, its token not shown yet. In PARALLEL mode the state names no execution of the
    // stage at all, which says nothing about ours.
    if (stage?.executionId === undefined || stage.executionId === key.executionId) {
      return { ok: false, reason: 'the approval has no token yet', final: false };
    }
    // The state names another execution while our run is in progress. In SUPERSEDED and QUEUED modes an
    // execution holds its stage until the stage is done, and a waiting approval is not done: no other one
    // can have taken the stage, so the state is behind (it still shows the execution before ours). Giving
    // the gate up here would leave the approval to no one; wait, and our run's end says when it is over.
    return {
      ok: false,
      reason: `the stage state still shows execution ${stage.executionId} while this gate's run is in progress`,
      final: false,
    };
  }
  if (!stage || !action) {
    return {
      ok: false,
      reason: `the pipeline has no stage ${key.stage} with action ${key.action}`,
      final: true,
    };
  }
  // PARALLEL mode names no execution of the stage: with our run not listed yet, nothing says it is over.
  if (stage.executionId === undefined && executions !== undefined) {
    return { ok: false, reason: 'the approval run is not listed yet', final: false };
  }
  if (stage.executionId !== key.executionId) {
    // The runs were read and ours is not among them yet: just after STARTED both reads can lag, the state
    // still naming the execution before ours. An execution whose approval started holds the stage until the
    // approval ends, so nothing here says it is over; giving the gate up would leave it to no one. Past the
    // grace, a run never listed is one that is gone (a pipeline deleted and made again under its name), and
    // waiting on would decide and act for an approval that no longer exists.
    if (executions !== undefined && justStarted) {
      return {
        ok: false,
        reason: `the stage state shows execution ${stage.executionId ?? 'none'} and this gate's run is not listed yet`,
        final: false,
      };
    }
    return {
      ok: false,
      reason: `execution ${key.executionId} was superseded: stage ${key.stage} now runs ${stage.executionId ?? 'nothing'}`,
      final: true,
    };
  }
  // Our execution, in progress, but no token yet: CodePipeline fills it in a moment after the event.
  return { ok: false, reason: 'the approval has no token yet', final: false };
}
