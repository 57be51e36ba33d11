/**
 * The development secrets: published in this repository (npm start, the
 * docs' examples, docker-compose.yml's fallbacks), so anyone can read them.
 * With the `development` setting, secrets left unset take these values and the
 * node prints them at start; without it a node refuses them, so a deployment
 * cannot run on them by mistake.
 */
export const DEVELOPMENT_SECRETS = Object.freeze({
  token_secret: 'dev-only-token-secret-not-for-production',
  api_keys: Object.freeze(['dev-only-api-key']) as readonly string[],
  admin_secret: 'dev-only-admin-secret',
});

/** Every value ever published as a development secret (older ones included), refused outside development. */
export const PUBLISHED_SECRETS: ReadonlySet<string> = new Set([
  DEVELOPMENT_SECRETS.token_secret,
  ...DEVELOPMENT_SECRETS.api_keys,
  DEVELOPMENT_SECRETS.admin_secret,
  'dev-only-demo-token-secret-not-for-production',
  'compose-dev-token-secret-change-me-0123456789',
  'compose-dev-api-key',
]);
