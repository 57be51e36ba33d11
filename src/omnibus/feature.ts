/**
 * Edge feature: django-omnibus' endpoint at omnibus_base_url (`/ec`), over a
 * plain websocket at the path itself and over SockJS below it (omnibus
 * offered either, by its WEBAPP_FACTORY; Tidings serves both at once). Off
 * unless omnibus_authenticator names an authenticator.
 */
import type { Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import type { EdgeFeature } from '../edge/features.js';
import { requestInfo } from '../edge/edge-server.js';
import { WsSession, type Session } from '../edge/session.js';
import { installSockJsEndpoint, sockJsSessionCount } from '../sockjs/endpoint.js';
import { HttpOmnibusAuthenticator, NoopAuthenticator, UserAuthenticator, type OmnibusAuthenticator } from './authenticators.js';
import { OmnibusConnection } from './connection.js';

export const omnibusFeature: EdgeFeature = (edge, config, log) => {
  if (!edge.websocketEnabled || config.omnibus_authenticator === 'off') return;
  const olog = log.child({ component: 'omnibus' });
  let authenticator: OmnibusAuthenticator;
  if (config.omnibus_authenticator === 'noop') authenticator = new NoopAuthenticator();
  else if (config.omnibus_authenticator === 'user') authenticator = new UserAuthenticator(config.django_secret_key!);
  else authenticator = new HttpOmnibusAuthenticator(edge.httpAuth!);

  const connections = new Set<OmnibusConnection>();
  const serve = (session: Session): void => {
    const conn = new OmnibusConnection(session, edge, authenticator, olog, (c) => connections.delete(c));
    connections.add(conn);
  };

  // The plain websocket at the path itself, with the server's heartbeat omnibus never had.
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.max_message_size, perMessageDeflate: false, clientTracking: false });
  const sessions = new Set<WsSession>();
  const timer = setInterval(() => {
    const now = Date.now();
    for (const s of sessions) s.tick(now, config.ping_interval * 1000, config.idle_timeout * 1000);
  }, 1000);
  timer.unref();
  edge.upgradeHooks.push((req, socket, head, _url, path) => {
    if (path !== config.omnibus_base_url) return false;
    if (sessions.size + sockJsSessionCount() + edge.connectionCount >= config.max_connections) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return true;
    }
    const info = requestInfo(req);
    wss.handleUpgrade(req, socket, head, (ws) => {
      (socket as Socket).setNoDelay(true);
      const session = new WsSession(ws, socket as Socket, info, config.client_send_buffer, edge.scheduler);
      sessions.add(session);
      ws.once('close', () => sessions.delete(session));
      serve(session);
    });
    return true;
  });

  installSockJsEndpoint(edge, config, olog, { path: config.omnibus_base_url, name: 'omnibus', onSession: serve });
  olog.debug({ path: config.omnibus_base_url, authenticator: config.omnibus_authenticator }, 'omnibus endpoint ready');
};
