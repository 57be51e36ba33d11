/**
 * channelstream's CORS answer (channelstream/utils.py handle_cors), sent on
 * every channelstream route and on `OPTIONS` preflights. `allow_cors` lists
 * `*`, origins or host names. Unlike channelstream, an origin matches a host
 * name exactly or as a subdomain (channelstream matched any origin that
 * contained the text: `example.com` let in `example.com.evil.net`), and a
 * listed origin is echoed with `Vary: Origin` so caches keep answers apart.
 */
import type { IncomingMessage } from 'node:http';

const ALLOW_HEADERS =
  'Content-Type, Depth, User-Agent, X-File-Size, X-Requested-With, If-Modified-Since, X-File-Name, Cache-Control, Pragma, Origin, Connection, Referer, Cookie';

export function originAllowed(origin: string, allowed: readonly string[]): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  const host = url.host.toLowerCase();
  const hostname = url.hostname.toLowerCase();
  for (const raw of allowed) {
    const entry = raw.toLowerCase().replace(/\/+$/, '');
    if (entry === '*') return true;
    if (entry.includes('://')) {
      if (entry === url.origin.toLowerCase()) return true;
      continue;
    }
    const bare = entry.replace(/^\*?\./, '');
    const target = bare.includes(':') ? host : hostname;
    if (target === bare || target.endsWith(`.${bare}`)) return true;
  }
  return false;
}

export function corsHeaders(req: IncomingMessage, allowed: readonly string[]): Record<string, string> {
  const h: Record<string, string> = {
    XDomainRequestAllowed: '1',
    'Access-Control-Allow-Methods': 'GET, POST, OPTIONS, PUT, DELETE, PATCH',
    'Access-Control-Allow-Headers': ALLOW_HEADERS,
    'Access-Control-Max-Age': '86400',
  };
  if (allowed.includes('*')) {
    h['Access-Control-Allow-Origin'] = '*';
    return h;
  }
  h['Vary'] = 'Origin';
  const origin = req.headers.origin;
  if (typeof origin === 'string' && originAllowed(origin, allowed)) h['Access-Control-Allow-Origin'] = origin;
  return h;
}
