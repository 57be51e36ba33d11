/**
 * V8 flags the node's main process is launched with: the image's entrypoint,
 * `npm start` and the `tidings` program's first line pass them to node
 * (test/unit/launch.test.ts keeps the three equal to this list). The main
 * process hosts the director and the forwarder; V8 grows its young generation
 * to 2 x 16 MB under a connect burst and keeps it, 1.6 KB per connection at
 * 10 000. Capped at 4 MB per semi-space, measured alternating with V8's
 * default: idle memory per authenticated connection at 10 000 8.0-8.4 ->
 * 6.2-6.9 KB, small rooms and CPU per connect unchanged, the director's
 * sequencing ceiling about 5 % lower (docs/operations.md). Edge workers set
 * their own (`worker_semi_space_mb`). A flag cannot be set from inside the
 * process once V8 has started, hence the launch lines.
 */
export const MAIN_PROCESS_NODE_ARGS: readonly string[] = Object.freeze(['--max-semi-space-size=4']);
