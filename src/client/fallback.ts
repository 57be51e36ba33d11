/**
 * The SDK's HTTP fallback for networks that block websockets: the same
 * native protocol over SockJS (the edge's <base>/sockjs endpoint), used once a
 * websocket attempt has failed before opening `fallbackAfter` times in a row.
 *
 * In browsers `fallback: true` loads sockjs-client's build from the edge
 * (<base>/sockjs.min.js) on first need, so pages that never need it never
 * download it and the SDK bundle stays small. In Node pass the class
 * (`import SockJS from 'sockjs-client'`). No Node imports here.
 */
import type { WebSocketLike } from './types.js';

export type SockJSConstructor = new (url: string, reserved?: unknown, options?: { transports?: string[] }) => WebSocketLike;

/** `true` (browsers: load from the edge), a SockJS class, or a loader of one. */
export type FallbackOption = boolean | SockJSConstructor | (() => Promise<SockJSConstructor>);

/** sockjs-client's transports other than the websocket one: websockets are what failed. */
export const HTTP_TRANSPORTS = Object.freeze([
  'xhr-streaming',
  'xdr-streaming',
  'eventsource',
  'iframe-eventsource',
  'htmlfile',
  'iframe-htmlfile',
  'xhr-polling',
  'xdr-polling',
  'iframe-xhr-polling',
  'jsonp-polling',
]);

/** The SockJS URL of an edge's websocket URL: ws(s)://host/<base>/ws -> http(s)://host/<base>/sockjs. */
export function fallbackUrl(wsUrl: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : u.protocol === 'ws:' ? 'http:' : u.protocol;
  u.pathname = u.pathname.replace(/\/ws\/?$/, '') + '/sockjs';
  u.search = '';
  u.hash = '';
  return u.toString();
}

let loading: Promise<SockJSConstructor> | null = null;

/** Load sockjs-client from the edge that serves `sockjsUrl`, once per page. */
function loadFromEdge(sockjsUrl: string): Promise<SockJSConstructor> {
  const g = globalThis as { SockJS?: SockJSConstructor; document?: Document };
  if (g.SockJS) return Promise.resolve(g.SockJS);
  if (!g.document) return Promise.reject(new Error('fallback: true loads SockJS with a <script> tag: in Node pass the sockjs-client class instead'));
  loading ??= new Promise<SockJSConstructor>((resolve, reject) => {
    const script = g.document!.createElement('script');
    script.src = sockjsUrl.replace(/\/sockjs$/, '/sockjs.min.js');
    script.async = true;
    script.onload = () => (g.SockJS ? resolve(g.SockJS) : reject(new Error('sockjs.min.js did not define SockJS')));
    script.onerror = () => {
      loading = null;
      reject(new Error(`could not load ${script.src}`));
    };
    g.document!.head.appendChild(script);
  });
  return loading;
}

/** The SockJS class the option names (loading it if need be). */
export function resolveFallback(option: FallbackOption, sockjsUrl: string): Promise<SockJSConstructor> {
  if (option === true) return loadFromEdge(sockjsUrl);
  if (option === false) return Promise.reject(new Error('no fallback'));
  // A class has a prototype with methods; a loader is a plain (arrow or async) function.
  const proto = (option as { prototype?: { send?: unknown } }).prototype;
  if (proto && typeof proto.send === 'function') return Promise.resolve(option as SockJSConstructor);
  return (option as () => Promise<SockJSConstructor>)();
}
