/** Peer: the naive Node ceiling. Each message is sent to each socket with ws.send (framed per socket). */
import { startChannelServer } from './channel-server.js';

startChannelServer((sockets, payload) => {
  for (const ws of sockets) ws.send(payload, { binary: false });
});
