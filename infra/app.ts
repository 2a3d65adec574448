import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { InputError } from '../shared/errors.js';
import { compileGlobSet } from '../shared/glob.js';
import { TollgateConfigError } from './patterns.js';
import { CONTEXT_KEYS, configFromContext, gatedGlobs, tollgateStackFromContext } from './stack.js';

/*
 * The CDK app (`cdk.json`: `npx tsx infra/app.ts`): the Tollgate stack configured from context, checked by
 * cdk-nag's AwsSolutions pack (synth fails on any finding not acknowledged with a reason), and, with
 * `-c tollgate:demoPipeline=true`, the try-it pipeline stack beside it.
 */

// No CDKMetadata resource: the template says what Tollgate deploys and nothing else.
const app = new App({ analyticsReporting: false });
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));

try {
  const config = configFromContext(app);
  // Loaded only when asked for: the gate's synth does not depend on the demo's code.
  const demo = config.demoPipeline ? await import('./demo-pipeline-stack.js') : undefined;
  if (demo) {
    // The demo is only worth deploying if this gate answers its approval. Checked before the gate's stack is
    // built: building it bundles every function, seconds of work to throw away on a configuration to refuse.
    const { DEMO_DEFAULTS } = demo;
    const gate = gatedGlobs(config);
    if (!compileGlobSet(gate.pipelines).test(DEMO_DEFAULTS.pipelineName)) {
      throw new TollgateConfigError(
        CONTEXT_KEYS.pipelines,
        `globs that include the demo pipeline "${DEMO_DEFAULTS.pipelineName}" (${CONTEXT_KEYS.demoPipeline} is true)`,
        JSON.stringify(gate.pipelines),
      );
    }
    if (!compileGlobSet(gate.approvalActionNames).test(DEMO_DEFAULTS.approvalActionName)) {
      throw new TollgateConfigError(
        CONTEXT_KEYS.approvalActionNames,
        `globs that include the demo approval "${DEMO_DEFAULTS.approvalActionName}" (${CONTEXT_KEYS.demoPipeline} is true)`,
        JSON.stringify(gate.approvalActionNames),
      );
    }
  }
  const { stack } = tollgateStackFromContext(app, config);
  if (demo) {
    new demo.TollgateDemoPipelineStack(app, `${stack.stackName}DemoPipeline`, {
      env: { account: stack.account, region: stack.region },
    });
  }
} catch (e) {
  // A configuration mistake is the user's to fix: its message, not a stack trace.
  if (e instanceof TollgateConfigError) {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  }
  if (e instanceof InputError) {
    // As `tollgate evaluate` prints it.
    process.stderr.write(`tollgate: ${e.message.split('\n').join('\ntollgate: ')}\n`);
    process.exit(1);
  }
  throw e;
}

app.synth();
