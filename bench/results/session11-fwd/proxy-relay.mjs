// A bare forwarder for bench/forwarder-hop.ts: down in JavaScript; up in JavaScript, or in a native
// zeromq Proxy (libuv thread-pool thread) when RELAY_UP_PROXY=1; both in Proxies when RELAY_DOWN_PROXY=1 too.
import { XPublisher, XSubscriber, Router, Dealer, Proxy } from 'zeromq';
const e = process.env;
const relay = async (from, to) => { for (;;) { const m = await from.receive(); await to.send(m); } };
const downIn = new XSubscriber({ receiveHighWaterMark: 100000 });
const downOut = new XPublisher({ sendHighWaterMark: 100000 });
const upIn = new XSubscriber({ receiveHighWaterMark: 100000 });
const upOut = new XPublisher({ sendHighWaterMark: 100000, noDrop: true });
await downOut.bind(e.TIDINGS_SUBSCRIBER_ADDRESS);
await upIn.bind(e.TIDINGS_PUBLISHER_ADDRESS);
downIn.connect(e.TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS);
upOut.connect(e.TIDINGS_DIRECTOR_PUBLISHER_ADDRESS);
if (e.RELAY_DOWN_PROXY === '1') void new Proxy(downIn, downOut).run();
else { void relay(downIn, downOut); void relay(downOut, downIn); }
if (e.RELAY_UP_PROXY === '1') void new Proxy(upIn, upOut).run();
else { void relay(upIn, upOut); void relay(upOut, upIn); }
console.log(JSON.stringify({ msg: 'node ready' }));
process.on('SIGTERM', () => process.exit(0));
