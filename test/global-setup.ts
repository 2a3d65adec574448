import { execFileSync } from 'node:child_process';

// The CLI tests spawn the real `tollgate` command, which runs from dist/: build it once per test run.
export default function setup(): void {
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
}
