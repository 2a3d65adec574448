import { Command, InvalidArgumentError, Option } from 'commander';
import { parseIsoTime } from '../shared/dates.js';
import { InputError } from '../shared/errors.js';
import { repositoryOf } from '../shared/gate/image.js';
import { PIPELINE_NAME, PIPELINE_NAME_EXPECTED } from '../shared/gate/model.js';
import { registerAudit } from './audit.js';
import { EXIT } from './exit.js';

/*
 * Each command's own dependencies (the policy engine, the simulator with the AWS SDK and the local store)
 * are imported when that command runs: `tollgate --help`, a usage error or `tollgate evaluate` do not pay
 * for the others' start-up.
 */

const VERSION = '0.1.0';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

// `2026-11-25` or a timestamp with a zone: a decision's time is never guessed from the local zone.
function parseNow(value: string): Date {
  const ms = parseIsoTime(value);
  if (Number.isNaN(ms)) {
    throw new InvalidArgumentError(
      'expected an ISO-8601 date or timestamp with a zone, e.g. 2026-11-25T12:00:00Z',
    );
  }
  return new Date(ms);
}

// A policy's `repositories` match bare names: an ARN or an image URI is read down to one, anything else refused.
function parseRepository(value: string): string {
  const name = repositoryOf(value);
  if (name === undefined) {
    throw new InvalidArgumentError(
      'expected an ECR repository name (payments/api), its ARN, or an image URI naming it',
    );
  }
  return name;
}

function parsePipeline(value: string): string {
  // The gate always knows its pipeline's name: one that cannot be (empty, or `payments-prod ` from a paste)
  // would match none of the policy's pipeline scopes, and the dry run would answer for no real pipeline.
  if (!PIPELINE_NAME.test(value)) {
    throw new InvalidArgumentError(
      `expected ${PIPELINE_NAME_EXPECTED}; got ${value === '' ? 'an empty string' : JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * Colours only on a terminal that shows them: not with --no-color or NO_COLOR, and not where Node says the
 * terminal has none (TERM=dumb, FORCE_COLOR=0).
 */
function colorOn(option: boolean): boolean {
  const out = process.stdout as NodeJS.WriteStream;
  return option && out.isTTY === true && !process.env.NO_COLOR && out.hasColors?.() !== false;
}

/**
 * The report, written whole; a reader that stops early (`| head`, `| grep -q`) closes the pipe, which is no
 * error of ours: the exit status stays the outcome's, with no stack trace on stderr.
 */
function writeReport(text: string): void {
  // Any other failure (a full disk, `> /dev/full`) leaves the report cut short: said in one line like every
  // other error, and exit 1 rather than the outcome's status, which a script would take for a whole report.
  process.stdout.once('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') return;
    process.stderr.write(`tollgate: cannot write the report: ${e.code ?? e.message}\n`);
    process.exitCode = EXIT.INPUT_ERROR;
  });
  process.stdout.write(text);
}

/** A message of commander's as one `tollgate: …` line, whatever the lines it came in. */
function usageLine(text: string): string {
  const lines = text
    .replace(/^error: /, '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  return `tollgate: ${lines.join(' ')}\n`;
}

export function buildProgram(): Command {
  const program = new Command('tollgate')
    .description('Security gate for AWS CodePipeline: judges container image findings against a policy.')
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .showSuggestionAfterError(true)
    // Commander's usage errors in the form of every other error, one line: `error: unknown option '--polcy'`
    // and its `(Did you mean --policy?)` on the next line become `tollgate: unknown option '--polcy' (Did
    // you mean --policy?)`. Set before the subcommands are added: each copies it when created.
    .configureOutput({ outputError: (text, write) => write(usageLine(text)) })
    .addHelpText(
      'after',
      `
Examples:
  tollgate evaluate --policy policy.yaml --findings findings.json
  tollgate simulate examples/scenarios/03-fixable-high-escalated-then-approved.json
  tollgate demo
  tollgate audit list --outcome REJECT --since 30d
  aws inspector2 list-findings --filter-criteria file://filter.json | tollgate evaluate --policy policy.yaml --findings -

Documentation: docs/policy.md (policy language), README.md`,
    );

  /**
   * An option that takes one value refuses a second: commander would keep the last, and `-p strict.yaml
   * -p advisory.yaml` (a wrapper script's default and the user's own) would judge under the one not meant;
   * `audit verify --pipeline a --pipeline b` would verify b alone and say OK. State lives in the closure, so
   * each program built counts afresh.
   */
  function once<T>(parse: (value: string) => T): (value: string) => T {
    let first: string | undefined;
    return (value: string) => {
      if (first !== undefined) {
        throw new InvalidArgumentError(`given twice (first ${JSON.stringify(first)}); it takes one value`);
      }
      first = value;
      return parse(value);
    };
  }

  // Keeps the choices' own check (and their listing in --help) under `once`.
  function singleValue(option: Option): Option {
    const check = option.parseArg as ((value: string, previous: unknown) => unknown) | undefined;
    return option.argParser(once((v) => (check ? check(v, undefined) : v)));
  }

  /**
   * Applied to every command once all are built, audit's too: an option added later is covered without
   * anyone remembering to. The repeatable ones say so by their parser (`collect`: --findings' pages).
   */
  function refuseRepeats(command: Command): void {
    for (const option of command.options) {
      const takesValue = option.required || option.optional;
      if (takesValue && !option.variadic && option.parseArg !== collect) singleValue(option);
    }
    for (const sub of command.commands) refuseRepeats(sub);
  }

  program
    .command('evaluate')
    .description(
      'Dry-run a policy on a findings export and print the decision (exit 0 APPROVE, 2 REJECT, 3 ESCALATE).',
    )
    .requiredOption('-p, --policy <file>', 'policy file (YAML or JSON, policy language v1)')
    .option(
      '-f, --findings <file>',
      'findings file, "-" for standard input; repeat for several pages of one export. Formats (detected): Inspector2 ListFindings response or findings report, list of Inspector2 findings, Inspector2 Finding event(s), ECR DescribeImageScanFindings (basic or enhanced)',
      collect,
    )
    .option(
      '--pipeline <name>',
      'pipeline name, for rules and exceptions scoped with "pipelines" (without it they are not applied: a warning on stderr names them)',
      parsePipeline,
    )
    .option(
      '--repository <name>',
      'image repository (bare name; an ARN or image URI is read down to it), when the findings do not name it, or the one to judge of several they name',
      parseRepository,
    )
    .option('--now <iso-8601>', 'evaluation time, e.g. 2026-11-25T12:00:00Z (default: now)', parseNow)
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .option(
      '--no-color',
      'plain text without colours (also when NO_COLOR is set, or output is not a terminal that shows them)',
    )
    .addHelpText(
      'after',
      `
Exit status:
  0  APPROVE (in advisory mode too, whatever the policy's rules would decide; what the gate cannot see is
     not softened: an error, an incomplete scan or an unknown severity still escalates or rejects)
  2  REJECT
  3  ESCALATE
  1  usage or input error: a message on standard error naming the file, line, column and key, nothing on
     standard output

Examples:
  tollgate evaluate --policy examples/policies/baseline.yaml --findings examples/findings/payments-api.list-findings.json
  tollgate evaluate -p policy.yaml -f page1.json -f page2.json --pipeline payments-prod --format json | jq .summary`,
    )
    .action(async function (this: Command, opts: RawEvaluateOptions) {
      if (!opts.findings || opts.findings.length === 0) {
        this.error("error: required option '-f, --findings <file>' not specified", {
          code: 'commander.missingMandatoryOptionValue',
        });
      }
      const useColor = colorOn(opts.color);
      const { runEvaluate } = await import('./evaluate.js');
      const { stdout, exitCode, warnings } = await runEvaluate({
        policy: opts.policy,
        findings: opts.findings ?? [],
        ...(opts.pipeline !== undefined ? { pipeline: opts.pipeline } : {}),
        ...(opts.repository !== undefined ? { repository: opts.repository } : {}),
        ...(opts.now !== undefined ? { now: opts.now } : {}),
        format: opts.format,
        color: useColor,
      });
      for (const warning of warnings) process.stderr.write(`tollgate: warning: ${warning}\n`);
      writeReport(stdout);
      process.exitCode = exitCode;
    });

  const simulation = (command: Command): Command =>
    command
      .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
      .option('--store <dir>', 'folder of the embedded store (dynalite, persisted)', '.tollgate/db')
      .option('--keep-store', 'replay on top of what the store holds (default: start from an empty table)')
      .addOption(
        new Option('--log-level <level>', "print the functions' structured logs (JSON, to stderr)")
          .choices(['SILENT', 'DEBUG', 'INFO', 'WARN', 'ERROR'])
          .default('SILENT'),
      )
      .option(
        '--no-color',
        'plain text without colours (also when NO_COLOR is set, or output is not a terminal that shows them)',
      );

  simulation(
    program
      .command('simulate')
      .argument('<scenario>', 'scenario file (JSON or YAML): the world, the events in order, what to expect')
      .description(
        "Replay one scenario through the same handlers and core as Lambda, on the local store, and print each gate's timeline and outcome.",
      ),
  )
    .addHelpText(
      'after',
      `
Exit status:
  0  replayed; every expectation of the scenario met (a scenario without "expect" checks only that the
     replay runs: it says "no expectations", and --format json "met": null)
  4  replayed, but a gate ended differently from the scenario's "expect"
  1  usage or input error (the message names the file, line, column and key)

The scenario format is documented in README.md ("Scenarios"); examples are in examples/scenarios/.`,
    )
    .action(async (scenario: string, opts: RawSimulateOptions) => {
      await simulate([scenario], opts, false);
    });

  simulation(
    program
      .command('demo')
      .argument(
        '[folder]',
        "folder of scenarios (default: the tollgate package's examples/scenarios, whatever the working folder)",
      )
      .description(
        'Replay every example scenario (what `npm start` runs): approvals, scans, escalations, timeouts, superseded executions.',
      ),
  ).action(async (folder: string | undefined, opts: RawSimulateOptions) => {
    const { defaultScenarioFolder, scenariosIn } = await import('./simulate.js');
    await simulate(scenariosIn(folder ?? defaultScenarioFolder()), opts, true);
  });

  registerAudit(program);
  refuseRepeats(program);

  return program;
}

interface RawSimulateOptions {
  format: 'text' | 'json';
  store: string;
  keepStore?: boolean;
  logLevel: 'SILENT' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
  color: boolean;
}

async function simulate(scenarios: string[], opts: RawSimulateOptions, many: boolean): Promise<void> {
  // Compact JSON, one log a line, unless POWERTOOLS_DEV asks for Powertools' pretty-printing.
  if (opts.logLevel !== 'SILENT') process.env.POWERTOOLS_DEV ??= 'false';
  // The replay never calls AWS: the SDK's notice about future Node versions would only be noise here.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { runSimulate } = await import('./simulate.js');
  const { stdout, exitCode } = await duringReplayStdoutIsStderr(() =>
    runSimulate({
      scenarios,
      format: opts.format,
      store: opts.store,
      keep: opts.keepStore === true,
      color: colorOn(opts.color),
      logLevel: opts.logLevel,
      many,
    }),
  );
  writeReport(stdout);
  process.exitCode = exitCode;
}

/**
 * Here stdout is the report alone (`--format json | jq`), written once the replay is over. The functions'
 * Logger writes INFO and DEBUG to stdout, as Lambda wants, on a Console of its own made over process.stdout
 * (functions/common/runtime.ts): no option of Powertools' sends them elsewhere, so while the replay runs,
 * what is written to process.stdout goes to stderr, where --log-level says the logs are.
 */
async function duringReplayStdoutIsStderr<T>(run: () => Promise<T>): Promise<T> {
  const out = process.stdout;
  const write = out.write;
  // A log reader that stops early (`2>&1 >report.json | head`) must not end the replay: the Logger's Console
  // listens for a failed write on the stream it thinks it wrote to, stdout, so stderr's own error would be
  // uncaught and the report lost. The logs stop; the replay and its report go on.
  const logsLost = (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  };
  process.stderr.on('error', logsLost);
  out.write = process.stderr.write.bind(process.stderr) as typeof out.write;
  try {
    return await run();
  } finally {
    out.write = write;
    process.stderr.off('error', logsLost);
  }
}

interface RawEvaluateOptions {
  policy: string;
  findings?: string[];
  pipeline?: string;
  repository?: string;
  now?: Date;
  format: 'text' | 'json';
  color: boolean;
}

export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (e) {
    process.exitCode = exitCodeOf(e);
  }
}

function exitCodeOf(e: unknown): number {
  if (e instanceof InputError) {
    process.stderr.write(`tollgate: ${e.message.split('\n').join('\ntollgate: ')}\n`);
    return EXIT.INPUT_ERROR;
  }
  // Commander has already printed its own message (usage errors) or the help/version (exit 0).
  const ce = e as { code?: string; exitCode?: number };
  if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
    return ce.exitCode === 0 ? 0 : EXIT.INPUT_ERROR;
  }
  process.stderr.write(
    `tollgate: internal error: ${e instanceof Error ? (process.env.TOLLGATE_DEBUG ? e.stack : e.message) : String(e)}\n`,
  );
  return EXIT.INPUT_ERROR;
}

await main(process.argv.slice(2));
