import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { TollgateDemoPipelineStack } from '../infra/demo-pipeline-stack.js';
import { acknowledgements, staleAcknowledgements } from './nag.js';

type Json = Record<string, unknown>;
type Statement = { Action: string | string[]; Effect: string; Resource: unknown; Condition?: unknown };

let stack: TollgateDemoPipelineStack;
let template: Template;

// About a second on an idle machine; the margin is for a loaded CI runner.
beforeAll(() => {
  stack = new TollgateDemoPipelineStack(new App(), 'Demo');
  template = Template.fromStack(stack);
}, 60_000);

function pipelineStages(t: Template = template): Array<{ Name: string; Actions: Json[] }> {
  const pipelines = Object.values(t.findResources('AWS::CodePipeline::Pipeline'));
  expect(pipelines).toHaveLength(1);
  return (pipelines[0] as { Properties: { Stages: Array<{ Name: string; Actions: Json[] }> } }).Properties
    .Stages;
}

function action(stageName: string, t: Template = template): Json {
  const stage = pipelineStages(t).find((s) => s.Name === stageName);
  expect(stage, `stage ${stageName}`).toBeDefined();
  expect(stage?.Actions).toHaveLength(1);
  return stage?.Actions[0] as Json;
}

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId(construct.node.defaultChild as never);
}

function statements(): Statement[] {
  return Object.values(template.findResources('AWS::IAM::Policy')).flatMap(
    (p) =>
      (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
}

const actionsOf = (s: Statement): string[] => (Array.isArray(s.Action) ? s.Action : [s.Action]);

describe('the demo pipeline', () => {
  it('is a V2 pipeline in SUPERSEDED mode with Source, Build, SecurityGate and Deploy stages', () => {
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', {
      Name: 'tollgate-demo',
      PipelineType: 'V2',
      ExecutionMode: 'SUPERSEDED',
    });
    expect(pipelineStages().map((s) => s.Name)).toEqual(['Source', 'Build', 'SecurityGate', 'Deploy']);
  });

  it('gates with a Manual approval named TollgateApproval whose CustomData is #{BuildVariables.IMAGE_URI}', () => {
    expect(action('SecurityGate')).toEqual({
      Name: 'TollgateApproval',
      ActionTypeId: { Category: 'Approval', Owner: 'AWS', Provider: 'Manual', Version: '1' },
      Configuration: { CustomData: '#{BuildVariables.IMAGE_URI}' },
      RunOrder: 1,
      RoleArn: expect.anything(),
    });
  });

  it('builds in the BuildVariables namespace, tags by execution id, and exports IMAGE_URI', () => {
    const build = action('Build');
    expect(build.Namespace).toBe('BuildVariables');
    expect(build.ActionTypeId).toEqual({
      Category: 'Build',
      Owner: 'AWS',
      Provider: 'CodeBuild',
      Version: '1',
    });
    const config = build.Configuration as { ProjectName: unknown; EnvironmentVariables: string };
    expect(config.ProjectName).toEqual({ Ref: logicalId(stack.buildProject) });
    expect(JSON.parse(config.EnvironmentVariables)).toEqual([
      { name: 'PIPELINE_EXECUTION_ID', type: 'PLAINTEXT', value: '#{codepipeline.PipelineExecutionId}' },
    ]);

    const project = template.toJSON().Resources[logicalId(stack.buildProject)].Properties;
    expect(project.Environment).toMatchObject({
      Type: 'ARM_CONTAINER',
      Image: 'aws/codebuild/amazonlinux-aarch64-standard:3.0',
      PrivilegedMode: true,
    });
    expect(project.EncryptionKey).toEqual({ 'Fn::GetAtt': [logicalId(stack.encryptionKey), 'Arn'] });
    const buildSpec = JSON.parse(project.Source.BuildSpec) as {
      env: { 'exported-variables': string[] };
      phases: { build: { commands: string[] } };
    };
    expect(buildSpec.env['exported-variables']).toContain('IMAGE_URI');
    const commands = buildSpec.phases.build.commands.join('\n');
    expect(commands).toContain('docker push "$REPOSITORY_URI:$IMAGE_TAG"');
    expect(commands).toMatch(/IMAGE_URI="\$\(docker inspect --format '\{\{index \.RepoDigests 0\}\}'/);
    expect(commands).toContain('export IMAGE_URI IMAGE_TAG');
  });

  it('reads the sample app from the bootstrap bucket without polling, and deploys nothing but an echo', () => {
    const source = action('Source');
    expect(source.ActionTypeId).toEqual({ Category: 'Source', Owner: 'AWS', Provider: 'S3', Version: '1' });
    expect(source.Configuration).toMatchObject({
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a CloudFormation Fn::Sub string, not a JS template
      S3Bucket: { 'Fn::Sub': 'cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}' },
      S3ObjectKey: expect.stringMatching(/^[0-9a-f]{64}\.zip$/),
      PollForSourceChanges: false,
    });

    const deploy = action('Deploy');
    const config = deploy.Configuration as { EnvironmentVariables: string };
    expect(JSON.parse(config.EnvironmentVariables)).toEqual([
      { name: 'IMAGE_URI', type: 'PLAINTEXT', value: '#{BuildVariables.IMAGE_URI}' },
    ]);
    const project = template.toJSON().Resources[logicalId(stack.deployProject)].Properties;
    expect(project.Environment.PrivilegedMode).toBe(false);
    expect(JSON.parse(project.Source.BuildSpec).phases.build.commands).toEqual([
      'echo "deployed $IMAGE_URI (no-op: the demo deploys nothing)"',
    ]);
  });

  it('names another approval action and repository when asked', () => {
    const other = new TollgateDemoPipelineStack(new App(), 'Other', {
      approvalActionName: 'TollgateSecurity',
      repositoryName: 'sandbox/web',
      pipelineName: 'web-demo',
    });
    const t = Template.fromStack(other);
    expect(action('SecurityGate', t)).toMatchObject({
      Name: 'TollgateSecurity',
      Configuration: { CustomData: '#{BuildVariables.IMAGE_URI}' },
    });
    t.hasResourceProperties('AWS::ECR::Repository', { RepositoryName: 'sandbox/web' });
    t.hasResourceProperties('AWS::CodePipeline::Pipeline', { Name: 'web-demo' });
  });

  it('rejects names CodePipeline or ECR would refuse, with the rule in the message', () => {
    expect(
      () => new TollgateDemoPipelineStack(new App(), 'A', { approvalActionName: 'Tollgate Approval' }),
    ).toThrow(/approvalActionName "Tollgate Approval" is not valid: letters, digits/);
    expect(() => new TollgateDemoPipelineStack(new App(), 'B', { repositoryName: 'Demo/App' })).toThrow(
      /repositoryName "Demo\/App" is not valid: lowercase letters and digits/,
    );
    expect(() => new TollgateDemoPipelineStack(new App(), 'C', { pipelineName: 'x'.repeat(101) })).toThrow(
      /pipelineName "x+" is not valid/,
    );
  });
});

describe('the demo repository', () => {
  it('scans on push, is KMS-encrypted, keeps 5 images with immutable tags, and empties on delete', () => {
    template.hasResource('AWS::ECR::Repository', {
      Properties: {
        RepositoryName: 'tollgate-demo/app',
        ImageScanningConfiguration: { ScanOnPush: true },
        EncryptionConfiguration: { EncryptionType: 'KMS' },
        ImageTagMutability: 'IMMUTABLE',
        EmptyOnDelete: true,
        LifecyclePolicy: {
          LifecyclePolicyText: Match.serializedJson(
            Match.objectLike({
              rules: [
                Match.objectLike({
                  selection: Match.objectLike({ countType: 'imageCountMoreThan', countNumber: 5 }),
                }),
              ],
            }),
          ),
        },
      },
      DeletionPolicy: 'Delete',
    });
  });

  it('lets only the build push, and only to this repository', () => {
    const pushers = statements().filter((s) => actionsOf(s).includes('ecr:PutImage'));
    expect(pushers).toHaveLength(1);
    expect(pushers[0]?.Resource).toEqual({ 'Fn::GetAtt': [logicalId(stack.repository), 'Arn'] });
  });
});

describe('the artifact store and the roles', () => {
  it('keeps artifacts in a KMS-encrypted, SSL-only, private bucket', () => {
    const bucket = logicalId(stack.artifactBucket);
    const key = { 'Fn::GetAtt': [logicalId(stack.encryptionKey), 'Arn'] };
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          {
            ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: key },
            BucketKeyEnabled: true,
          },
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: bucket },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Principal: { AWS: '*' },
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    // The build logs too, with CloudWatch Logs let in for this account's log groups only.
    template.hasResourceProperties('AWS::Logs::LogGroup', { KmsKeyId: key, RetentionInDays: 7 });
    const policy = Object.values(template.findResources('AWS::KMS::Key'))[0]?.Properties.KeyPolicy as {
      Statement: Json[];
    };
    const logsStatement = policy.Statement.find((st) => JSON.stringify(st.Principal).includes('logs.'));
    expect(logsStatement).toMatchObject({
      Effect: 'Allow',
      Condition: { ArnLike: { 'kms:EncryptionContext:aws:logs:arn': expect.anything() } },
    });
    expect(JSON.stringify(logsStatement?.Condition)).toContain(':log-group:*');
    template.hasResourceProperties('AWS::CodePipeline::Pipeline', {
      ArtifactStore: { Type: 'S3', Location: { Ref: bucket }, EncryptionKey: { Type: 'KMS', Id: key } },
    });
  });

  it('grants no action wildcard, and Resource "*" only for ecr:GetAuthorizationToken', () => {
    const all = statements();
    expect(all.length).toBeGreaterThan(0);
    for (const s of all) {
      expect(s.Effect).toBe('Allow');
      for (const a of actionsOf(s)) expect(a).not.toMatch(/^(\*|[a-z0-9-]+:\*)$/);
    }
    const star = all.filter(
      (s) => s.Resource === '*' || (Array.isArray(s.Resource) && s.Resource.includes('*')),
    );
    expect(star).toEqual([{ Action: 'ecr:GetAuthorizationToken', Effect: 'Allow', Resource: '*' }]);
  });

  it('passes no secret to the builds: plain-text variables only, none naming a secret', () => {
    for (const project of Object.values(template.findResources('AWS::CodeBuild::Project'))) {
      const vars = (project as { Properties: { Environment: { EnvironmentVariables?: Json[] } } }).Properties
        .Environment.EnvironmentVariables;
      for (const v of vars ?? []) {
        expect(v.Type).toBe('PLAINTEXT');
        expect(String(v.Name)).not.toMatch(/SECRET|TOKEN|PASSWORD|KEY/i);
      }
    }
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('finds nothing unacknowledged, through validateScope and through Validations at synth', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`)).toEqual(
      [],
    );
    expect(report.success).toBe(true);

    const app = new App();
    new TollgateDemoPipelineStack(app, 'Demo');
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).not.toThrow();
  });

  it('finds nothing unacknowledged in a stack bound to an account and region, as the app deploys it', () => {
    // The ARNs then hold the literal account and region, and so do the names of their findings.
    const bound = new TollgateDemoPipelineStack(new App(), 'Bound', {
      env: { account: '123456789012', region: 'eu-west-1' },
    });
    expect(new AwsSolutionsChecks().validateScope(bound).violations.map((v) => v.ruleName)).toEqual([]);
  });

  it('acknowledges only findings that occur, on the construct they concern, each with a specific reason', () => {
    const acks = acknowledgements(stack);
    expect(acks.length).toBeGreaterThan(0);
    expect(acks.some((a) => a.path === stack.node.path)).toBe(false); // nothing acknowledged stack-wide
    for (const a of acks) {
      expect(a.id).toMatch(/^AwsSolutions-/);
      expect(a.reason.length, `${a.path} ${a.id}`).toBeGreaterThan(60);
    }

    // Every acknowledgement must match a finding at or under the construct that carries it (no stale or
    // speculative acknowledgements).
    expect(staleAcknowledgements(stack, acks)).toEqual([]);
  });
});
