// Builds the `tollgate` command into dist/ so the package's bin runs on plain Node, without a
// TypeScript loader: `npm ci` (prepare), a global install and `npm link` all get a working command.
import { build } from 'esbuild';

await build({
  entryPoints: { tollgate: 'cli/main.ts' },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
});
