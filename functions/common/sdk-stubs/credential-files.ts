/*
 * In the Lambda bundles only (an esbuild `alias`, infra/bundling.ts), this module stands in for the AWS
 * SDK's credential providers that read shared config files, run a credential process, log in with SSO or
 * exchange a web identity token file: `@aws-sdk/credential-provider-ini`, `-sso`, `-process` and
 * `-web-identity`. With their STS, SSO and sign-in clients they are ~85 KB of every bundle, and none of them
 * can ever answer in Lambda: there is no ~/.aws, no SSO session, no token file.
 *
 * The SDK's default chain (`@aws-sdk/credential-provider-node`) is kept as it is: the environment first (where
 * Lambda puts the execution role's credentials), then these (each now says "not here, try the next"), then
 * the container credentials endpoint. So a function finds its credentials exactly as before.
 */

/** A provider that is not in the bundles: it tells the SDK's chain to try its next provider. */
export function notBundled(name: string) {
  return () => async (): Promise<never> => {
    const error = new Error(
      `${name} is not in Tollgate's Lambda bundles: in Lambda the credentials come from the environment`,
    );
    // `tryNextLink`: the SDK's provider chain moves on to its next provider instead of failing.
    throw Object.assign(error, { name: 'CredentialsProviderError', tryNextLink: true });
  };
}

export const fromIni = notBundled('fromIni');
export const fromSSO = notBundled('fromSSO');
export const fromProcess = notBundled('fromProcess');
export const fromTokenFile = notBundled('fromTokenFile');
export const fromWebToken = notBundled('fromWebToken');
