import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The tests never call AWS; the SDK's notice about future Node versions is only noise in their output.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', POWERTOOLS_METRICS_DISABLED: 'true' },
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
  },
});
