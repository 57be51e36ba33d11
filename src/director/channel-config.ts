/**
 * Channel configs with channelstream's keys. A channel first named by a
 * channelstream request (or by `channel_config`) gets channelstream's defaults
 * merged with the given config; a channel first used natively keeps the node's
 * history settings (that is what native recovery reads). Pure: no I/O.
 */
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import type { HistoryLimits } from './history.js';

export interface ChannelConfig {
  notify_presence: boolean;
  broadcast_presence_with_user_lists: boolean;
  notify_state: boolean;
  store_history: boolean;
  history_size: number;
  /** Seconds a message stays in history (0: until pushed out by size). */
  history_ttl: number;
  /** Whether channelstream connections that are away keep this channel's frames (catch-up). */
  store_frames: boolean;
}

const BOOL_KEYS = ['notify_presence', 'broadcast_presence_with_user_lists', 'notify_state', 'store_history', 'store_frames'] as const;
const MAX_HISTORY_SIZE = 1_000_000;
const MAX_HISTORY_TTL = 31_536_000;

/** channelstream's defaults for channels it creates. */
export function channelstreamDefaults(historyTtl: number): ChannelConfig {
  return {
    notify_presence: false,
    broadcast_presence_with_user_lists: false,
    notify_state: false,
    store_history: false,
    history_size: 10,
    history_ttl: historyTtl,
    store_frames: true,
  };
}

/** Defaults of channels used natively: history on, sized by the node's settings. */
export function nativeDefaults(historySize: number, historyTtl: number): ChannelConfig {
  return {
    notify_presence: false,
    broadcast_presence_with_user_lists: false,
    notify_state: false,
    store_history: historySize > 0,
    history_size: historySize,
    history_ttl: historyTtl,
    store_frames: true,
  };
}

/**
 * `base` changed by the keys of `raw` that are set (channelstream ignores null
 * values). Throws MISSING_FIELD naming the first bad key.
 */
export function mergeChannelConfig(base: ChannelConfig, raw: unknown, where: string): ChannelConfig {
  if (raw === undefined || raw === null) return { ...base };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new TidingsError(ErrorCodes.MISSING_FIELD, `${where} must be an object`);
  const r = raw as Record<string, unknown>;
  const out = { ...base };
  for (const k of BOOL_KEYS) {
    const v = r[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'boolean') throw new TidingsError(ErrorCodes.MISSING_FIELD, `${where}.${k} must be a boolean`);
    out[k] = v;
  }
  for (const [k, max] of [['history_size', MAX_HISTORY_SIZE], ['history_ttl', MAX_HISTORY_TTL]] as const) {
    const v = r[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
      throw new TidingsError(ErrorCodes.MISSING_FIELD, `${where}.${k} must be an integer from 0 to ${max}`);
    }
    out[k] = v;
  }
  return out;
}

/** The history bounds of a channel for a config; bytes per channel are the node's `history_channel_bytes`. */
export function historyLimits(cfg: ChannelConfig, channelBytes: number): HistoryLimits {
  return { maxCount: cfg.store_history ? cfg.history_size : 0, maxAgeMs: cfg.history_ttl * 1000, maxBytes: channelBytes };
}

/** Explicit configs by channel name; channels without one use the native defaults. */
export class ChannelConfigs {
  private readonly configs = new Map<string, ChannelConfig>();

  constructor(
    readonly native: ChannelConfig,
    readonly channelstream: ChannelConfig,
  ) {}

  get size(): number {
    return this.configs.size;
  }

  has(channel: string): boolean {
    return this.configs.has(channel);
  }

  effective(channel: string): ChannelConfig {
    return this.configs.get(channel) ?? this.native;
  }

  /**
   * channelstream's "applied when a channel is created": a channel without a
   * config gets channelstream's defaults with `raw` merged; one that has a
   * config keeps it. Returns the config in force.
   */
  createIfNew(channel: string, raw: unknown): ChannelConfig {
    const existing = this.configs.get(channel);
    if (existing) return existing;
    const cfg = mergeChannelConfig(this.channelstream, raw, `channel_configs.${channel}`);
    this.configs.set(channel, cfg);
    return cfg;
  }

  /** Reconfigure (channelstream's /channel_config): create with defaults or change the set keys. */
  reconfigure(channel: string, raw: unknown): ChannelConfig {
    const base = this.configs.get(channel) ?? this.channelstream;
    const cfg = mergeChannelConfig(base, raw, `channels.${channel}`);
    this.configs.set(channel, cfg);
    return cfg;
  }

  forget(channel: string): void {
    this.configs.delete(channel);
  }

  names(): IterableIterator<string> {
    return this.configs.keys();
  }
}
