/**
 * Serves the browser build of the client SDK at <base>/tidings.js (an ES
 * module built by scripts/build-client.mjs), on every edge: pages load the SDK
 * from the cluster they talk to.
 */
import type { EdgeFeature } from '../edge/features.js';
import { AssetFiles } from './assets.js';

export const sdkBundleFeature: EdgeFeature = (edge) => {
  const files = new AssetFiles({ '/tidings.js': 'client/tidings.js', '/tidings.js.map': 'client/tidings.js.map' });
  edge.addRoute((req, res, path) => {
    if (!files.has(path)) return false;
    files.serve(path, req.method, res);
    return true;
  });
};
