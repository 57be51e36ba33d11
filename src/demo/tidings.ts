/**
 * The demo's view of the SDK. Type-checked against src/client; in the browser
 * build this import stays external (scripts/build-client.mjs) and resolves to
 * the SDK bundle the edge serves at <base>/tidings.js, next to the page.
 */
export * from '../client/index.js';
