/**
 * Edge feature: Seth-Pusher's SockJS endpoint at sethpusher_base_url
 * (`/connect`), with sethpusher_enabled. Its REST routes
 * (`POST /api/channels/<c>/`, `POST /api/users/<id>/`) are the publish API's
 * and reach these clients through the cluster like every other publish.
 * `POST /connect` itself stays channelstream's route.
 */
import type { EdgeFeature } from '../edge/features.js';
import { installSockJsEndpoint } from '../sockjs/endpoint.js';
import { SethConnection } from './connection.js';

export const sethPusherFeature: EdgeFeature = (edge, config, log) => {
  if (!edge.websocketEnabled || !config.sethpusher_enabled) return;
  const slog = log.child({ component: 'sethpusher' });
  const connections = new Set<SethConnection>();
  installSockJsEndpoint(edge, config, slog, {
    path: config.sethpusher_base_url,
    name: 'sethpusher',
    exactPathMethods: ['GET', 'HEAD', 'OPTIONS'],
    onSession: (session) => {
      const conn = new SethConnection(session, edge, slog, (c) => connections.delete(c));
      connections.add(conn);
    },
  });
};
