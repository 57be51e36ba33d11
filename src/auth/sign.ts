/** Signing client tokens (JWT HS256), for `tidings token`, backends and tests. */
import { SignJWT } from 'jose';

export interface TokenRequest {
  secret: string;
  user: string;
  /** Lifetime in seconds. */
  ttl: number;
  subscribe?: string[];
  publish?: string[];
  presence?: string[];
  history?: string[];
  /** WAMP procedures the user may call. */
  call?: string[];
  /** WAMP procedures the user may register. */
  register?: string[];
}

export async function signToken(req: TokenRequest): Promise<string> {
  const grants: Record<string, string[]> = {};
  for (const k of ['subscribe', 'publish', 'presence', 'history', 'call', 'register'] as const) {
    if (req[k]) grants[k] = req[k]!;
  }
  return new SignJWT({ grants })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(req.user)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + req.ttl)
    .sign(new TextEncoder().encode(req.secret));
}
