/**
 * Edge feature: SockJS. Serves the sockjs-client browser build at
 * <base>/sockjs.min.js (the page SockJS' iframe transports load, and the SDK's
 * fallback loads on demand), and, with native_sockjs, the native protocol
 * over SockJS at <base>/sockjs for clients whose websockets are blocked.
 */
import type { EdgeFeature } from '../edge/features.js';
import { AssetFiles } from '../demo/assets.js';
import { installSockJsEndpoint } from './endpoint.js';
import { adoptNativeSession } from './native.js';

/** Path of the native protocol's SockJS endpoint. */
export const NATIVE_SOCKJS_PATH = '/sockjs';

export const sockJsFeature: EdgeFeature = (edge, config, log) => {
  const files = new AssetFiles({ '/sockjs.min.js': 'client/sockjs.min.js' });
  edge.addRoute((req, res, path) => {
    if (!files.has(path)) return false;
    files.serve(path, req.method, res);
    return true;
  });
  if (!edge.websocketEnabled || !config.native_sockjs) return;
  installSockJsEndpoint(edge, config, log.child({ component: 'sockjs-native' }), {
    path: NATIVE_SOCKJS_PATH,
    name: 'native',
    onSession: (session) => adoptNativeSession(edge, session),
  });
};
