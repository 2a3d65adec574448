import { fileURLToPath } from 'node:url';
import {
  type CfnElement,
  CfnOutput,
  Duration,
  RemovalPolicy,
  Stack,
  type StackProps,
  Token,
  Validations,
} from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Asset } from 'aws-cdk-lib/aws-s3-assets';
import type { Construct } from 'constructs';
import { REPOSITORY_NAME } from '../shared/gate/image.js';
import { PIPELINE_NAME } from '../shared/gate/model.js';
import { allowCloudWatchLogs } from './tollgate.js';

/**
 * The try-it stack: a sandbox pipeline that builds a small image, pushes it to a scanned ECR repository and
 * stops at a Manual approval Tollgate decides. Deploy it next to `TollgateStack` with
 * `-c tollgate:demoPipeline=true`, run it, watch the approval resolve itself, then `cdk destroy` it.
 *
 *   Source (S3: the sample app in infra/demo-app, shipped as a CDK asset)
 *   → Build (CodeBuild: docker build + push, exports IMAGE_URI as BuildVariables.IMAGE_URI)
 *   → SecurityGate (Manual approval `TollgateApproval`, CustomData `#{BuildVariables.IMAGE_URI}`)
 *   → Deploy (CodeBuild: echoes the image it would deploy; nothing is deployed)
 *
 * It synthesizes offline: no lookups, no Docker at synth (the image is built by CodeBuild in the account).
 */
export interface TollgateDemoPipelineStackProps extends StackProps {
  /** The approval action's name; it must match the gate's `tollgate:approvalActionNames`. */
  readonly approvalActionName?: string;
  /** The ECR repository the build pushes to. */
  readonly repositoryName?: string;
  /** The pipeline's name; it must match the gate's `tollgate:pipelines`. */
  readonly pipelineName?: string;
}

export const DEMO_DEFAULTS = {
  approvalActionName: 'TollgateApproval',
  repositoryName: 'tollgate-demo/app',
  pipelineName: 'tollgate-demo',
} as const;

/** The namespace of the build action's variables: the approval's CustomData reads `#{BuildVariables.IMAGE_URI}`. */
export const BUILD_VARIABLES_NAMESPACE = 'BuildVariables';

const SAMPLE_APP_DIR = fileURLToPath(new URL('./demo-app', import.meta.url));

function checkName(what: string, value: string, pattern: RegExp, rule: string, max: number, min = 1): string {
  if (value.length < min || value.length > max || !pattern.test(value)) {
    throw new Error(`TollgateDemoPipelineStack: ${what} "${value}" is not valid: ${rule}`);
  }
  return value;
}

export class TollgateDemoPipelineStack extends Stack {
  public readonly repository: ecr.Repository;
  public readonly pipeline: codepipeline.Pipeline;
  public readonly artifactBucket: s3.Bucket;
  public readonly encryptionKey: kms.Key;
  public readonly buildProject: codebuild.PipelineProject;
  public readonly deployProject: codebuild.PipelineProject;
  public readonly buildAction: actions.CodeBuildAction;
  public readonly approvalAction: actions.ManualApprovalAction;

  constructor(scope: Construct, id: string, props: TollgateDemoPipelineStackProps = {}) {
    super(scope, id, props);

    const nameRule = 'letters, digits, ".", "@", "_" and "-", at most 100 characters';
    const approvalActionName = checkName(
      'approvalActionName',
      props.approvalActionName ?? DEMO_DEFAULTS.approvalActionName,
      PIPELINE_NAME,
      nameRule,
      100,
    );
    const pipelineName = checkName(
      'pipelineName',
      props.pipelineName ?? DEMO_DEFAULTS.pipelineName,
      PIPELINE_NAME,
      nameRule,
      100,
    );
    const repositoryName = checkName(
      'repositoryName',
      props.repositoryName ?? DEMO_DEFAULTS.repositoryName,
      REPOSITORY_NAME,
      'lowercase letters and digits, separated by ".", "_", "-" or "/", 2 to 256 characters',
      256,
      2,
    );

    // One customer-managed key for what the pipeline writes: its artifacts and the build projects' outputs.
    this.encryptionKey = new kms.Key(this, 'ArtifactsKey', {
      description: 'Tollgate demo pipeline: artifacts and build outputs',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });

    // The repository scans on push. That is ECR *basic* scanning (`-c tollgate:scanSource=ecr`). With Amazon
    // Inspector enhanced scanning, the registry-level scanning configuration decides what is scanned and when
    // (continuous or on push, by repository filter); the repository's scanOnPush is then ignored. This stack
    // leaves the account-wide registry configuration alone: a demo must not change how every repository of
    // the account is scanned (see the README's Deploy section).
    this.repository = new ecr.Repository(this, 'Repository', {
      repositoryName,
      imageScanOnPush: true,
      // KMS with the AWS managed key (aws/ecr): encrypted at rest, with no key policy for ECR, Inspector
      // and the pullers to share.
      encryption: ecr.RepositoryEncryption.KMS,
      // Tags are the pipeline execution id and the build's number, never reused: an immutable tag is a digest
      // by another name.
      imageTagMutability: ecr.TagMutability.IMMUTABLE,
      lifecycleRules: [{ description: 'Keep the last 5 demo images', maxImageCount: 5 }],
      removalPolicy: RemovalPolicy.DESTROY,
      emptyOnDelete: true,
    });

    this.artifactBucket = new s3.Bucket(this, 'ArtifactBucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.encryptionKey,
      bucketKeyEnabled: true,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'ExpireDemoArtifacts', expiration: Duration.days(30) }],
      // A sandbox demo: `cdk destroy` removes the bucket and what the pipeline left in it.
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });

    // The sample app (a Dockerfile and one file), zipped and published to the CDK bootstrap bucket by
    // `cdk deploy`. That bucket is versioned, as an S3 source action requires; nothing has to be uploaded by hand.
    const sampleApp = new Asset(this, 'SampleApp', { path: SAMPLE_APP_DIR });

    // The build logs print the image's URI and the build's output: encrypted with the same key, as the
    // gate's are with its own.
    allowCloudWatchLogs(this.encryptionKey, 'the build logs');
    const buildLogs = new logs.LogGroup(this, 'BuildLogs', {
      encryptionKey: this.encryptionKey,
      retention: logs.RetentionDays.ONE_WEEK,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.buildProject = new codebuild.PipelineProject(this, 'BuildImage', {
      description: 'Tollgate demo: builds the sample image, pushes it, exports IMAGE_URI (by digest)',
      environment: {
        buildImage: codebuild.LinuxArmBuildImage.AMAZON_LINUX_2023_STANDARD_3_0,
        computeType: codebuild.ComputeType.SMALL,
        // docker build needs the Docker daemon, which CodeBuild runs only in privileged mode.
        privileged: true,
      },
      environmentVariables: {
        REPOSITORY_URI: { value: this.repository.repositoryUri },
      },
      encryptionKey: this.encryptionKey,
      timeout: Duration.minutes(20),
      logging: { cloudWatch: { logGroup: buildLogs } },
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        env: {
          shell: 'bash',
          // Read by the approval as #{BuildVariables.IMAGE_URI}.
          'exported-variables': ['IMAGE_URI', 'IMAGE_TAG'],
        },
        phases: {
          build: {
            commands: [
              'set -euo pipefail',
              'REGISTRY="$(echo "$REPOSITORY_URI" | cut -d / -f 1)"',
              'aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "$REGISTRY"',
              // The build's number too: a retried Build stage runs again in the same execution, and an
              // immutable tag cannot be pushed twice.
              'IMAGE_TAG="$PIPELINE_EXECUTION_ID-$CODEBUILD_BUILD_NUMBER"',
              'docker build --tag "$REPOSITORY_URI:$IMAGE_TAG" .',
              'docker push "$REPOSITORY_URI:$IMAGE_TAG"',
              // The pushed image by digest: the gate judges a digest, and a digest cannot move.
              `IMAGE_URI="$(docker inspect --format '{{index .RepoDigests 0}}' "$REPOSITORY_URI:$IMAGE_TAG")"`,
              'test -n "$IMAGE_URI"',
              'export IMAGE_URI IMAGE_TAG',
              'echo "pushed $IMAGE_URI (tag $IMAGE_TAG)"',
            ],
          },
        },
      }),
    });
    this.repository.grantPullPush(this.buildProject);

    this.deployProject = new codebuild.PipelineProject(this, 'NoopDeploy', {
      description: 'Tollgate demo: a no-op deploy that names the image the gate let through',
      environment: {
        buildImage: codebuild.LinuxArmBuildImage.AMAZON_LINUX_2023_STANDARD_3_0,
        computeType: codebuild.ComputeType.SMALL,
      },
      encryptionKey: this.encryptionKey,
      timeout: Duration.minutes(5),
      logging: { cloudWatch: { logGroup: buildLogs } },
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        phases: { build: { commands: ['echo "deployed $IMAGE_URI (no-op: the demo deploys nothing)"'] } },
      }),
    });

    const sourceOutput = new codepipeline.Artifact('SampleApp');
    const sourceAction = new actions.S3SourceAction({
      actionName: 'SampleApp',
      bucket: sampleApp.bucket,
      bucketKey: sampleApp.s3ObjectKey,
      // No CloudTrail data-event trail on the bootstrap bucket is assumed: runs start on creation, on
      // `aws codepipeline start-pipeline-execution`, or with "Release change" in the console.
      trigger: actions.S3Trigger.NONE,
      output: sourceOutput,
    });

    this.buildAction = new actions.CodeBuildAction({
      actionName: 'BuildImage',
      project: this.buildProject,
      input: sourceOutput,
      variablesNamespace: BUILD_VARIABLES_NAMESPACE,
      environmentVariables: {
        PIPELINE_EXECUTION_ID: { value: '#{codepipeline.PipelineExecutionId}' },
      },
    });

    // The gate: an ordinary Manual approval whose CustomData (CDK: additionalInformation; console:
    // "Comments") names the image. Tollgate approves, rejects or escalates it; no notification topic here,
    // escalations go to the gate's own topic.
    this.approvalAction = new actions.ManualApprovalAction({
      actionName: approvalActionName,
      additionalInformation: this.buildAction.variable('IMAGE_URI'),
    });

    const deployAction = new actions.CodeBuildAction({
      actionName: 'NoopDeploy',
      project: this.deployProject,
      input: sourceOutput,
      environmentVariables: {
        IMAGE_URI: { value: this.buildAction.variable('IMAGE_URI') },
      },
    });

    this.pipeline = new codepipeline.Pipeline(this, 'Pipeline', {
      pipelineName,
      pipelineType: codepipeline.PipelineType.V2,
      executionMode: codepipeline.ExecutionMode.SUPERSEDED,
      // Bucket's `isWebsite` getter is `boolean | undefined`, IBucket's an optional boolean: equal at run time,
      // apart only under exactOptionalPropertyTypes.
      artifactBucket: this.artifactBucket as s3.IBucket,
      restartExecutionOnUpdate: false,
      stages: [
        { stageName: 'Source', actions: [sourceAction] },
        { stageName: 'Build', actions: [this.buildAction] },
        { stageName: 'SecurityGate', actions: [this.approvalAction] },
        { stageName: 'Deploy', actions: [deployAction] },
      ],
    });

    new CfnOutput(this, 'PipelineName', {
      value: this.pipeline.pipelineName,
      description: 'Start a run: aws codepipeline start-pipeline-execution --name <this>',
    });
    new CfnOutput(this, 'RepositoryUri', { value: this.repository.repositoryUri });
    new CfnOutput(this, 'ApprovalAction', { value: `SecurityGate/${approvalActionName}` });

    this.acknowledgeNagFindings();
  }

  /**
   * The cdk-nag AwsSolutions findings this stack accepts, each acknowledged on the construct it concerns (never
   * on the stack) with the reason it is acceptable here. cdk-nag 3 names each wildcard finding separately.
   */
  private acknowledgeNagFindings(): void {
    const ack = (scope: Construct, id: string, reason: string): void => {
      Validations.of(scope).acknowledge({ id: `AwsSolutions-${id}`, reason });
    };
    const ref = (construct: Construct): string =>
      `<${this.getLogicalId(construct.node.defaultChild as CfnElement)}>`;
    const bucketObjects = `Resource::<${this.getLogicalId(this.artifactBucket.node.defaultChild as CfnElement)}.Arn>/*`;

    ack(
      this.artifactBucket,
      'S1',
      'Pipeline artifacts of a sandbox demo, expired after 30 days and deleted with the stack; every access is ' +
        'by the pipeline and CodeBuild roles of this stack and is recorded by CloudTrail management events. A ' +
        'second bucket for server access logs would outlive the demo it logs.',
    );

    const kmsReason =
      'CDK grant on the single customer-managed key of this stack (the artifacts key): ReEncrypt* and ' +
      'GenerateDataKey* are the encrypt half of reading and writing KMS-encrypted artifacts, on that key ARN only.';
    const artifactReadReason =
      'CDK grant to read the pipeline artifact bucket of this stack only: artifact object keys are generated per ' +
      'pipeline execution, so the object ARN ends in /*; GetObject*/GetBucket*/List* cover object versions and ' +
      'the bucket location CodePipeline and CodeBuild read.';

    // cdk-nag names a finding by the ARN as synthesized: the pseudo parameters of an environment-agnostic
    // stack, the literal account and region of a stack deployed to a given environment.
    const region = Token.isUnresolved(this.region) ? '<AWS::Region>' : this.region;
    const account = Token.isUnresolved(this.account) ? '<AWS::AccountId>' : this.account;
    for (const project of [this.buildProject, this.deployProject]) {
      const name = ref(project);
      ack(
        project,
        `IAM5[Resource::arn:<AWS::Partition>:logs:${region}:${account}:log-group:/aws/codebuild/${name}:*]`,
        "CodeBuild's default log group for this project only (/aws/codebuild/<project>); log stream names are " +
          'generated per build, so the ARN ends in :*. The builds log to the stack-owned BuildLogs group (7 days).',
      );
      ack(
        project,
        `IAM5[Resource::arn:<AWS::Partition>:codebuild:${region}:${account}:report-group/${name}-*]`,
        'CDK default for a CodeBuild project: test report groups CodeBuild creates on demand, named after this ' +
          'project only (<project>-<name>). The demo buildspecs define no reports.',
      );
      ack(project, 'IAM5[Action::kms:ReEncrypt*]', kmsReason);
      ack(project, 'IAM5[Action::kms:GenerateDataKey*]', kmsReason);
      ack(project, 'IAM5[Action::s3:GetObject*]', artifactReadReason);
      ack(project, 'IAM5[Action::s3:GetBucket*]', artifactReadReason);
      ack(project, 'IAM5[Action::s3:List*]', artifactReadReason);
      ack(project, `IAM5[${bucketObjects}]`, artifactReadReason);
    }
    ack(
      this.buildProject,
      'IAM5[Resource::*]',
      'ecr:GetAuthorizationToken (docker login to the registry) supports no resource-level permission; it is the ' +
        'only statement with Resource "*". Push and pull are granted on the demo repository ARN only.',
    );

    // The pipeline's role and its source action's role (children of the pipeline construct).
    const artifactWriteReason =
      'CDK grant to the pipeline role and the source action role on the pipeline artifact bucket of this stack ' +
      'only: CodePipeline writes, reads and replaces artifacts under keys generated per execution (hence /*), ' +
      'and DeleteObject*/Abort* let it clean up and abort multipart uploads of those artifacts.';
    for (const id of [
      'IAM5[Action::s3:GetObject*]',
      'IAM5[Action::s3:GetBucket*]',
      'IAM5[Action::s3:List*]',
      'IAM5[Action::s3:DeleteObject*]',
      'IAM5[Action::s3:Abort*]',
      `IAM5[${bucketObjects}]`,
    ]) {
      ack(this.pipeline, id, artifactWriteReason);
    }
    ack(this.pipeline, 'IAM5[Action::kms:ReEncrypt*]', kmsReason);
    ack(this.pipeline, 'IAM5[Action::kms:GenerateDataKey*]', kmsReason);
  }
}
