/**
 * Optional parts of an edge, kept out of the edge core: each adds routes,
 * client methods or hooks to an EdgeServer. The list is explicit so what an
 * edge serves can be read here.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import type { EdgeServer } from './edge-server.js';
import { presenceFeature } from './presence-feature.js';
import { compatFeature } from '../compat/feature.js';
import { debugFeature } from '../debug/debug-routes.js';
import { sdkBundleFeature } from '../demo/sdk-route.js';
import { demoFeature } from '../demo/demo-feature.js';
import { sockJsFeature } from '../sockjs/feature.js';
import { omnibusFeature } from '../omnibus/feature.js';
import { sethPusherFeature } from '../sethpusher/feature.js';
import { wampFeature } from '../wamp/edge-feature.js';
import { adminFeature } from '../admin/admin-feature.js';

export type EdgeFeature = (edge: EdgeServer, config: Config, log: Logger) => void;

const FEATURES: readonly EdgeFeature[] = [
  presenceFeature, // presence, presence_stats, user state; join/leave reports to the director
  sethPusherFeature, // Seth-Pusher's SockJS endpoint at /connect/ (before channelstream, which keeps POST /connect)
  omnibusFeature, // django-omnibus' /ec protocol over websocket and SockJS
  sockJsFeature, // sockjs-client's build, and the native protocol over SockJS (the SDK's fallback)
  compatFeature, // channelstream's signed API and /ws?conn_id= connections
  wampFeature, // WAMP v2 router for Autobahn clients: wamp_path, and /ws offering only WAMP subprotocols
  debugFeature, // /debug/ views behind admin_secret
  adminFeature, // the admin page and its API behind admin_secret; edges report their numbers to the director
  sdkBundleFeature, // GET <base>/tidings.js, the browser SDK
  demoFeature, // the demo chat and its token endpoint, only with the demo setting
];

export function installEdgeFeatures(edge: EdgeServer, config: Config, log: Logger): void {
  for (const f of FEATURES) f(edge, config, log);
}
