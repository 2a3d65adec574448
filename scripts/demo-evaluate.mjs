// `npm start`: dry-runs the example policies on the example findings exports through the real `tollgate`
// command, one evaluation per outcome, so a newcomer sees every kind of decision and its exit status.
import { spawnSync } from 'node:child_process';

const runs = [
  ['baseline.yaml', ['payments-api.list-findings.json'], ['--pipeline', 'payments-prod']],
  ['baseline.yaml', ['web-frontend.awscli.json'], ['--pipeline', 'web-prod']],
  ['baseline.yaml', ['batch-reports.ecr-basic-unsupported.json'], []],
  ['advisory.yaml', ['payments-api.list-findings.json'], []],
];
const meaning = { 0: 'APPROVE', 1: 'input error', 2: 'REJECT', 3: 'ESCALATE' };
let failed = false;
for (const [policy, findings, extra] of runs) {
  const args = [
    'evaluate',
    '--policy',
    `examples/policies/${policy}`,
    ...findings.flatMap((f) => ['--findings', `examples/findings/${f}`]),
    ...extra,
  ];
  process.stdout.write(`\n$ tollgate ${args.join(' ')}\n\n`);
  const r = spawnSync(process.execPath, ['bin/tollgate.js', ...args], { stdio: 'inherit' });
  process.stdout.write(`\n(exit ${r.status}: ${meaning[r.status] ?? 'unexpected'})\n`);
  if (r.status === 1 || r.status === null) failed = true;
}
process.exitCode = failed ? 1 : 0;
