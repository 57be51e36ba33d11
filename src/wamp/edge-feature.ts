/**
 * Edge feature: the WAMP v2 router (broker and dealer's edge side) for
 * Autobahn and every other WAMP client, at `wamp_path` and at `/ws` when the
 * client offers only WAMP subprotocols. See docs/wamp.md.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import type { EdgeServer } from '../edge/edge-server.js';
import { stateLinkOf } from '../edge/state-link.js';
import { WampEdge } from './edge.js';

export function wampFeature(edge: EdgeServer, config: Config, log: Logger): void {
  if (!config.wamp || !edge.websocketEnabled) return;
  const link = stateLinkOf(edge, log.child({ component: 'state-link' }));
  const wamp = new WampEdge(edge, config, link, log.child({ component: 'wamp' }));
  // INVOCATIONs and INTERRUPTs; the server API's disconnect / unsubscribe reach sessions through the state link.
  edge.controlHandlers.push((body) => wamp.onControl(body));
  edge.upgradeHooks.push((req, socket, head, _url, path) => wamp.onUpgrade(req, socket, head, path));
  edge.stopHooks.push(() => wamp.stop());
}
