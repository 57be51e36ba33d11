/**
 * The figures of one chaos run, from what the publisher and the subscribers
 * recorded (a pure function: the unit tests feed it records).
 *
 * - published: publishes sent; acknowledged: those the director answered
 *   with an offset (the rest were refused or timed out).
 * - delivered: messages the subscribers' applications received, each message
 *   counted once per subscriber.
 * - missing: acknowledged messages a subscriber never received. Every
 *   subscriber was subscribed before the first publish and wanted the channel
 *   to the end, so every subscriber should have every acknowledged message.
 * - duplicated: a message received again by the same subscriber.
 * - reordered: a message received after one the director sequenced later
 *   (within an epoch by offset; a later epoch comes after an earlier one).
 * - recovery: from the fault until every subscriber has received a message
 *   published after the fault (null when some subscriber never did).
 * - publish recovery: from the fault until the first publish sent after it
 *   was acknowledged.
 */
import type { PublishRecord } from './publisher.js';
import type { SubscriberRecord } from './subscribers.js';

export interface Figures {
  subscribers: number;
  /** Subscribers whose connection was lost at or after the fault. */
  affected: number;
  published: number;
  acknowledged: number;
  /** Publishes not acknowledged that subscribers received anyway (sequenced, but the reply was lost or late). */
  unacknowledgedDelivered: number;
  delivered: number;
  missing: number;
  /** Subscribers missing at least one acknowledged message. */
  subscribersMissing: number;
  duplicated: number;
  reordered: number;
  /** Resubscribes the server answered with recovered: false (it could not replay everything missed). */
  unrecovered: number;
  recoveryMs: number | null;
  publishRecoveryMs: number | null;
}

/** Ranks epochs by the first time anyone saw them: a director restart's epoch comes after the one before. */
function epochRanks(pubs: readonly PublishRecord[], subs: readonly SubscriberRecord[]): Map<string, number> {
  const first = new Map<string, number>();
  const see = (epoch: string | undefined, at: number | undefined): void => {
    if (epoch === undefined || at === undefined) return;
    const t = first.get(epoch);
    if (t === undefined || at < t) first.set(epoch, at);
  };
  for (const p of pubs) see(p.epoch, p.ackedAt);
  for (const s of subs) for (const d of s.deliveries) see(d.epoch, d.at);
  return new Map([...first.entries()].sort((a, b) => a[1] - b[1]).map(([e], i) => [e, i]));
}

export function analyse(pubs: readonly PublishRecord[], subs: readonly SubscriberRecord[], faultAt: number): Figures {
  const acked = pubs.filter((p) => p.offset !== undefined);
  const ackedSeqs = new Set(acked.map((p) => p.seq));
  const sentAt = new Map(pubs.map((p) => [p.seq, p.sentAt]));
  const ranks = epochRanks(pubs, subs);
  const unackedDelivered = new Set<number>();

  let delivered = 0;
  let missing = 0;
  let subscribersMissing = 0;
  let duplicated = 0;
  let reordered = 0;
  let unrecovered = 0;
  let affected = 0;
  let recoveryMs: number | null = 0;

  for (const s of subs) {
    const seen = new Set<number>();
    let maxRank = -1;
    let maxOffset = -1;
    let recoveredAt: number | null = null;
    for (const d of s.deliveries) {
      if (seen.has(d.seq)) {
        duplicated++;
        continue;
      }
      seen.add(d.seq);
      if (!ackedSeqs.has(d.seq)) unackedDelivered.add(d.seq);
      const rank = ranks.get(d.epoch) ?? -1;
      if (rank < maxRank || (rank === maxRank && d.offset < maxOffset)) reordered++;
      else [maxRank, maxOffset] = [rank, d.offset];
      const sent = sentAt.get(d.seq);
      if (recoveredAt === null && d.at >= faultAt && sent !== undefined && sent >= faultAt) recoveredAt = d.at;
    }
    delivered += seen.size;
    let own = 0;
    for (const seq of ackedSeqs) if (!seen.has(seq)) own++;
    missing += own;
    if (own > 0) subscribersMissing++;
    unrecovered += s.subscribes.filter((x) => x.resubscribed && !x.recovered).length;
    if (s.disconnects.some((x) => x.at >= faultAt)) affected++;
    if (recoveredAt === null) recoveryMs = null;
    else if (recoveryMs !== null) recoveryMs = Math.max(recoveryMs, recoveredAt - faultAt);
  }

  let publishRecoveryMs: number | null = null;
  for (const p of acked) {
    if (p.sentAt < faultAt) continue;
    const ms = p.ackedAt! - faultAt;
    if (publishRecoveryMs === null || ms < publishRecoveryMs) publishRecoveryMs = ms;
  }

  return {
    subscribers: subs.length,
    affected,
    published: pubs.length,
    acknowledged: acked.length,
    unacknowledgedDelivered: unackedDelivered.size,
    delivered,
    missing,
    subscribersMissing,
    duplicated,
    reordered,
    unrecovered,
    recoveryMs: subs.length === 0 ? null : recoveryMs,
    publishRecoveryMs,
  };
}
