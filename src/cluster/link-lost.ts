/**
 * The "link lost" reply: [...route, LINK_LOST_ID, "error", json]. A forwarder
 * sends it to every caller it passed commands on for when its link to the
 * director drops. The director answers over the connection a request came
 * by, and a reconnected DEALER is a new connection to the director's ROUTER:
 * a request in flight on the old one can never be answered, so its caller
 * learns at once (113) instead of at its timeout. The id is not a request's
 * (request ids run from 1 to 2^31 - 1; a batch's is 0); a client that does
 * not know the signal finds no request with it and ignores it.
 */
export const LINK_LOST_ID = Buffer.from([0xff, 0xff, 0xff, 0xff]);

export function isLinkLost(id: Buffer): boolean {
  return id.length === 4 && id[0] === 0xff && id.equals(LINK_LOST_ID);
}
