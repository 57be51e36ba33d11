/**
 * Tidings client SDK: browsers (`<script type="module">` with /tidings.js) and
 * Node (`import { TidingsClient } from 'tidings/client'`, passing `ws`).
 * See docs/sdk.md.
 */
export { TidingsClient } from './client.js';
export { Subscription } from './subscription.js';
export { RequestError } from './errors.js';
export { ClientReasons, reasonFromClose } from './reasons.js';
export { DEFAULT_RETRY, baseRetryDelay, retryDelay, retryDelayBounds, type RetryOptions } from './backoff.js';
export { CloseCodes, ErrorCodes } from '../protocol/errors.js';
export { fallbackUrl, HTTP_TRANSPORTS, type FallbackOption, type SockJSConstructor } from './fallback.js';
export type * from './types.js';
