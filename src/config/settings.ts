/**
 * Every setting of `tidings serve`: its name (config-file key; the flag is the
 * same name with dashes, the environment variable TIDINGS_<NAME>), type,
 * default and help text. Names follow django-omnibus' settings.
 */

export type SettingType = 'string' | 'int' | 'bool' | 'list' | 'address' | 'addresses' | 'level' | 'duration' | 'choice';

export interface SettingSpec {
  readonly name: string;
  readonly type: SettingType;
  readonly default: string | number | boolean | readonly string[] | null;
  readonly describe: string;
  readonly min?: number;
  readonly max?: number;
  /** Secrets are never logged. */
  readonly secret?: boolean;
  /** A shorter flag, as in DESIGN.md (--director, --forwarder, --edge). */
  readonly alias?: string;
  /** The values a choice (or string) setting may take. */
  readonly choices?: readonly string[];
}

const s = (spec: SettingSpec): SettingSpec => Object.freeze(spec);

export const SETTINGS: readonly SettingSpec[] = Object.freeze([
  s({ name: 'server_host', type: 'string', default: '127.0.0.1', describe: 'Address the websocket/HTTP server listens on (0.0.0.0 in containers)' }),
  s({ name: 'server_port', type: 'int', default: 4242, min: 0, max: 65535, describe: 'Port of the websocket/HTTP server' }),
  s({ name: 'tls_cert_file', type: 'string', default: null, describe: 'PEM certificate file: serve HTTPS and wss:// (with tls_key_file)' }),
  s({ name: 'tls_key_file', type: 'string', default: null, secret: true, describe: 'PEM private key file of tls_cert_file' }),
  s({ name: 'server_base_url', type: 'string', default: '', describe: 'Path prefix of every route, e.g. /tidings (websocket at <prefix>/ws)' }),
  s({ name: 'director_enabled', type: 'bool', default: true, alias: 'director', describe: 'Run the director on this node' }),
  s({ name: 'forwarder_enabled', type: 'bool', default: false, alias: 'forwarder', describe: 'Run a forwarder proxy between this node and the director' }),
  s({ name: 'edge_enabled', type: 'bool', default: true, alias: 'edge', describe: 'Run websocket edge processes on this node' }),
  s({ name: 'workers', type: 'int', default: 1, min: 1, max: 256, describe: 'Edge processes sharing the server port' }),
  s({ name: 'worker_semi_space_mb', type: 'int', default: 2, min: 0, max: 64, describe: "V8 young-generation semi-space of each edge process in MB (--max-semi-space-size): a small one keeps memory per idle connection low, as V8 grows it to 16 MB while connections pour in and keeps it; 0 leaves V8's default" }),
  s({ name: 'subscriber_address', type: 'address', default: 'tcp://127.0.0.1:4243', describe: "This node's subscriber address (director XPUB, or the forwarder's local XPUB); edges connect to it" }),
  s({ name: 'publisher_address', type: 'address', default: 'tcp://127.0.0.1:4244', describe: "This node's publisher address (director XSUB, or the forwarder's local XSUB); workers publish to it" }),
  s({ name: 'command_address', type: 'address', default: 'tcp://127.0.0.1:4245', describe: "This node's command address (director ROUTER, or the forwarder's local ROUTER)" }),
  s({ name: 'director_subscriber_address', type: 'addresses', default: [], describe: "The director's subscriber address (needed by a forwarder); with several directors, every director's, comma-separated, in the same order in all three director_*_address settings" }),
  s({ name: 'director_publisher_address', type: 'addresses', default: [], describe: "The director's publisher address (needed by a forwarder); with several directors, every director's, comma-separated" }),
  s({ name: 'director_command_address', type: 'addresses', default: [], describe: "The director's command address (needed by a forwarder); with several directors, every director's, comma-separated: the forwarder asks each which is active and follows it" }),
  s({ name: 'curve_secret_key', type: 'string', default: null, secret: true, describe: "This node's CURVE secret key (Z85, 40 characters; `tidings keygen` makes a pair): turns on CURVE encryption and authentication on every ZeroMQ address of the node" }),
  s({ name: 'curve_secret_key_file', type: 'string', default: null, describe: 'File holding curve_secret_key (what `tidings keygen` prints, or the key alone)' }),
  s({ name: 'curve_director_key', type: 'string', default: null, describe: "The director's CURVE public key, checked when this node connects to the director's addresses (default: this node's own public key, as when nodes share one key pair); with several directors, the one public key they all share" }),
  s({ name: 'curve_director_key_file', type: 'string', default: null, describe: 'File holding curve_director_key' }),
  s({ name: 'curve_node_keys', type: 'list', default: [], describe: "Comma-separated CURVE public keys of other nodes, allowed on every address of this node (its own key always is)" }),
  s({ name: 'curve_node_keys_file', type: 'list', default: [], describe: 'Comma-separated files of node public keys (one per line, or `tidings keygen` .pub files)' }),
  s({ name: 'curve_worker_keys', type: 'list', default: [], describe: 'Comma-separated CURVE public keys of backend workers: allowed on the publisher address only' }),
  s({ name: 'curve_worker_keys_file', type: 'list', default: [], describe: 'Comma-separated files of worker public keys' }),
  s({ name: 'zmq_insecure', type: 'bool', default: false, describe: 'Allow non-loopback ZeroMQ addresses without CURVE keys (anyone who reaches them can read and publish everything); without it such a node refuses to start' }),
  s({ name: 'node_id', type: 'string', default: null, describe: 'Name of this node in logs and debug views (default: hostname-pid)' }),
  s({ name: 'secret', type: 'string', default: null, secret: true, describe: 'Secret that signs server API requests (channelstream x-channelstream-secret)' }),
  s({ name: 'admin_secret', type: 'string', default: null, secret: true, describe: 'Secret of the admin and debug views' }),
  s({ name: 'token_secret', type: 'string', default: null, secret: true, describe: 'HS256 key of client tokens (JWT); at least 32 characters' }),
  s({ name: 'api_keys', type: 'list', default: [], secret: true, describe: 'Comma-separated API keys accepted by the HTTP publish API' }),
  s({ name: 'allow_posting_from', type: 'list', default: [], describe: 'Comma-separated source addresses allowed to call the server API (empty: any)' }),
  s({ name: 'allow_anonymous', type: 'bool', default: false, describe: 'Accept websocket clients without a token (read-only, user null)' }),
  s({ name: 'anonymous_channels', type: 'list', default: ['*'], describe: 'Channel grants of anonymous clients (subscribe only)' }),
  s({ name: 'demo', type: 'bool', default: false, describe: 'Serve the demo page and its demo-only token endpoint (never in production)' }),
  s({ name: 'log_level', type: 'level', default: 'info', describe: 'Log level: fatal, error, warn, info, debug, trace, silent' }),
  s({ name: 'log_format', type: 'choice', default: 'auto', choices: ['auto', 'json', 'pretty'], describe: 'Log format: json (pino JSON lines), pretty (pino-pretty, for people) or auto (pretty when stdout is a terminal, else json)' }),
  s({ name: 'development', type: 'bool', default: false, describe: "Development mode (npm start): token_secret, api_keys and admin_secret left unset take the repository's published development values, printed at start; without it a node refuses those values" }),
  s({ name: 'ping_interval', type: 'duration', default: 25, min: 1, max: 3600, describe: 'Seconds between server pings to clients' }),
  s({ name: 'idle_timeout', type: 'duration', default: 60, min: 2, max: 86400, describe: 'Seconds of client silence before the connection is closed (4004)' }),
  s({ name: 'connect_timeout', type: 'duration', default: 10, min: 1, max: 600, describe: 'Seconds a new connection has to authenticate (4003)' }),
  s({ name: 'max_message_size', type: 'int', default: 65536, min: 256, max: 16777216, describe: 'Largest client frame, HTTP body or published payload, in bytes' }),
  s({ name: 'client_send_buffer', type: 'int', default: 4194304, min: 65536, max: 1073741824, describe: 'Bytes queued to one client before it is cut off as a slow consumer (4005); a busy channel\'s messages reach an edge in batches of up to 256 KB, queued at once, so below about 300 KB a client that keeps up can be cut at saturation' }),
  s({ name: 'client_max_inflight', type: 'int', default: 128, min: 1, max: 100000, describe: 'Commands one connection may have in flight (sent, not yet answered); more are refused with 135 too_many_commands' }),
  s({ name: 'client_history_bytes', type: 'int', default: 67108864, min: 65536, max: 1099511627776, describe: 'Bytes of history (history replies and recoveries) one connection may read per client_history_window; past it history commands get 136 history_limit and recoveries wait' }),
  s({ name: 'client_history_window', type: 'duration', default: 10, min: 0.1, max: 3600, describe: 'Seconds in which a connection\'s client_history_bytes allowance refills (continuously)' }),
  s({ name: 'write_coalesce_ms', type: 'duration', default: 1, min: 0, max: 50, describe: 'Under load, the least milliseconds between socket flushes (the gap also grows to the last flush time, at most 50 ms) so each write carries more messages; 0 flushes every event-loop turn' }),
  s({ name: 'max_subscriptions', type: 'int', default: 512, min: 1, max: 100000, describe: 'Channels one connection may subscribe to' }),
  s({ name: 'max_connections', type: 'int', default: 100000, min: 1, max: 10000000, describe: 'Connections one edge process accepts' }),
  s({ name: 'overload_lag_ms', type: 'duration', default: 0, min: 0, max: 60000, describe: 'While an edge process\'s event loop runs this many ms late (a reconnect storm), it refuses new websocket upgrades with 503, error 215 overloaded and Retry-After, so clients back off and those already connected keep their latency; 0 (the default) never refuses. A safety valve for nodes that take the clients of a failed node (e.g. 200-500); see docs/benchmarks.md for what it did in the storm bench' }),
  s({ name: 'command_timeout', type: 'duration', default: 5, min: 0.1, max: 300, describe: 'Seconds an edge waits for the director to answer a command' }),
  s({ name: 'zmq_high_water_mark', type: 'int', default: 200000, min: 1000, max: 100000000, describe: 'ZeroMQ send/receive high-water marks, in units of one ZeroMQ message of up to 2 KB: channel messages (director -> nodes -> edges) go in batches of up to 256 KB and publishes (workers -> director) of up to 64 KB, so their pipes hold this x 2 KB / 256 KB (or / 64 KB) ZeroMQ messages (at least 8) and their send queues this x 2 KB bytes, as many bytes as with 2 KB batches; sockets block, never drop' }),
  s({ name: 'forwarder_minor_gc_mb', type: 'int', default: 4, min: 0, max: 1024, describe: "A forwarder asks V8 for a young-generation collection (well under a millisecond) after every this many MB of frames received: ZeroMQ's received batches are freed only when V8 collects them, and a forwarder allocates too little for V8 to collect on its own before a full collection every second or two (0: never)" }),
  s({ name: 'zmq_block_timeout', type: 'duration', default: 5, min: 0, max: 3600, describe: 'Seconds a forwarder waits for an edge that stopped reading (at its high-water mark), and half of what the director waits for such a node, before sending channel messages on without it; its edges then see the gap and close those channels\' subscribers with 4006 so they recover from history. 0 waits forever' }),
  s({ name: 'history_size', type: 'int', default: 100000, min: 0, max: 10000000, describe: 'Most messages of history kept per channel (0: no history); history is also bounded by history_ttl, history_channel_bytes and history_total_bytes' }),
  s({ name: 'history_ttl', type: 'duration', default: 300, min: 0, max: 31536000, describe: 'Seconds a message stays in history (0: until pushed out by another bound)' }),
  s({ name: 'history_channel_bytes', type: 'int', default: 33554432, min: 1024, max: 1099511627776, describe: 'Bytes of history kept per channel (each message counts its size plus 300 bytes of bookkeeping); the oldest messages go first' }),
  s({ name: 'history_total_bytes', type: 'int', default: 268435456, min: 65536, max: 1099511627776, describe: "Bytes of history the director keeps over all channels; past it the director's oldest messages go first, whatever their channel" }),
  s({ name: 'channel_idle_timeout', type: 'duration', default: 60, min: 1, max: 86400, describe: 'Seconds a channel with no listener, no presence and no history is kept before it is collected' }),
  s({ name: 'state_engine', type: 'string', default: 'memory', describe: 'Where the director keeps channel state: memory (this process, nothing to set up) or redis (redis_url; several directors, one active by lease, the others standing by)' }),
  s({ name: 'redis_url', type: 'string', default: 'redis://127.0.0.1:6379', secret: true, describe: 'Redis of the redis state engine: redis://[:password@]host:port[/db], rediss:// (TLS), or redis+sentinel://[:password@]host:port[,host:port...]/<master name> to follow the master Sentinel names' }),
  s({ name: 'redis_replicas_ack', type: 'int', default: 0, min: 0, max: 16, describe: 'Acknowledge a publish only once this many Redis replicas hold it (WAIT): 1 with Sentinel, so a promoted replica has every acknowledged message' }),
  s({ name: 'redis_prefix', type: 'string', default: 'tidings', describe: 'Prefix of every Redis key of this cluster (several clusters or shards can share one Redis)' }),
  s({ name: 'director_lease', type: 'duration', default: 2, min: 0.5, max: 60, describe: 'Seconds of the active director lease (redis engine): a standby takes over within about this plus 0.5 s after the active dies' }),
  s({ name: 'presence_ttl', type: 'duration', default: 15, min: 2, max: 3600, describe: 'Seconds after which connections of a silent node leave presence' }),
  s({ name: 'http_headers_timeout', type: 'duration', default: 10, min: 0.2, max: 300, describe: 'Seconds a client has to send its HTTP request headers (slow ones are answered 408 and cut within this plus a quarter of it, at most 1 s more)' }),
  s({ name: 'token_max_lifetime', type: 'duration', default: 86400, min: 0, max: 31536000, describe: 'Longest life of a client token in seconds: a token must carry exp and serves at most this long after its iat (or after connect when it has none), its connection closed with 4002 then; 0 accepts tokens without exp, with no limit' }),
  s({ name: 'worker_restart_reset', type: 'duration', default: 30, min: 0.5, max: 3600, describe: 'Seconds an edge worker must run before its restart delay starts again from 100 ms (a worker that dies sooner waits twice as long as last time, up to 5 s)' }),
  s({ name: 'channelstream_signed_value', type: 'string', default: 'path', choices: ['path', 'any'], describe: "What the x-channelstream-secret signature must sign: path (the endpoint path, e.g. /message) or any (any value, as channelstream 0.7 accepts: its JS signer and demo sign 'channelstream')" }),
  s({ name: 'allow_cors', type: 'list', default: ['*'], describe: "Origins whose browsers may call the channelstream routes cross-origin (channelstream's allow_cors): * for any, or origins (https://app.example) and host names (app.example, which also covers its subdomains)" }),
  s({ name: 'reattach_window', type: 'duration', default: 1, min: 0, max: 3600, describe: 'Seconds a channelstream connection whose websocket closed without /disconnect stays registered, so its client may come back with the same conn_id and catch up; then it parts (channelstream: about 1 s)' }),
  s({ name: 'catchup_max_bytes', type: 'int', default: 1048576, min: 1024, max: 1073741824, describe: 'Bytes of frames kept for one registered channelstream connection while no client holds it (catch-up); past this the connection is dropped (parted) and its client must /connect again' }),
  s({ name: 'omnibus_authenticator', type: 'string', default: 'off', describe: "django-omnibus endpoint and its authenticator: off (no endpoint), noop (development only, needs allow_anonymous), user (omnibus' UserAuthenticator: HMAC-SHA1 of the user id keyed by django_secret_key) or http (ask auth_url)" }),
  s({ name: 'omnibus_base_url', type: 'string', default: '/ec', describe: "Path of the omnibus endpoint (omnibus' SERVER_BASE_URL): a websocket at <path>, SockJS under <path>/" }),
  s({ name: 'django_secret_key', type: 'string', default: null, secret: true, describe: "The Django SECRET_KEY that keys omnibus' user tokens (omnibus_authenticator user)" }),
  s({ name: 'sethpusher_enabled', type: 'bool', default: false, describe: "Serve Seth-Pusher's SockJS endpoint at sethpusher_base_url" }),
  s({ name: 'sethpusher_base_url', type: 'string', default: '/connect', describe: 'SockJS prefix of the Seth-Pusher endpoint' }),
  s({ name: 'native_sockjs', type: 'bool', default: true, describe: 'Serve the native protocol over SockJS at <base>/sockjs, the SDK fallback when websockets are blocked' }),
  s({ name: 'sockjs_heartbeat', type: 'duration', default: 25, min: 1, max: 3600, describe: 'Seconds between SockJS heartbeat frames' }),
  s({ name: 'sockjs_disconnect_delay', type: 'duration', default: 5, min: 1, max: 300, describe: 'Seconds a SockJS session without a receiving request is kept before it closes' }),
  s({ name: 'auth_url', type: 'string', default: null, describe: 'URL of the web app\'s HTTP authenticator: asked to allow connect, subscribe, unsubscribe and publish (docs/authenticators.md)' }),
  s({ name: 'auth_native', type: 'bool', default: false, describe: 'Native clients that connect without a token are authenticated by auth_url, which also allows each subscribe and publish (like connect and subscribe proxies)' }),
  s({ name: 'auth_timeout', type: 'duration', default: 3, min: 0.1, max: 60, describe: 'Seconds auth_url has to answer; no answer denies (error 165)' }),
  s({ name: 'auth_cache_ttl', type: 'duration', default: 30, min: 0, max: 86400, describe: "Seconds an auth_url answer is reused for the same question (0: never); an answer's ttl overrides" }),
  s({ name: 'auth_cache_size', type: 'int', default: 10000, min: 0, max: 10000000, describe: 'auth_url answers kept per edge process, at most (least recently used go first)' }),
  s({ name: 'metrics', type: 'bool', default: true, describe: 'Serve Prometheus metrics at /metrics' }),
  s({ name: 'wamp', type: 'bool', default: true, describe: 'Serve WAMP v2 clients (Autobahn) at wamp_path, and at /ws when they offer only WAMP subprotocols' }),
  s({ name: 'wamp_path', type: 'string', default: '/wamp', describe: 'Websocket path of WAMP clients (under server_base_url)' }),
  s({ name: 'wamp_realm', type: 'string', default: 'realm1', describe: 'The one WAMP realm clients join; HELLO for another realm gets ABORT wamp.error.no_such_realm' }),
  s({ name: 'wamp_call_timeout', type: 'duration', default: 60, min: 0.1, max: 3600, describe: "Longest a WAMP call waits for its callee (a caller's timeout option may shorten it), then wamp.error.timeout" }),
  s({ name: 'wamp_max_calls', type: 'int', default: 100000, min: 1, max: 10000000, describe: 'WAMP calls in flight in the whole cluster (kept by the director); past it calls get tidings.error.limit_exceeded' }),
]);

export const SETTING_NAMES: ReadonlySet<string> = new Set(SETTINGS.map((x) => x.name));

export function envName(name: string): string {
  return `TIDINGS_${name.toUpperCase()}`;
}

export function flagName(name: string): string {
  return name.replace(/_/g, '-');
}
