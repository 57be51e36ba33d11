/**
 * V8 flags the node's main process is launched with: the image's entrypoint,
 * `npm start` and the `tidings` program's first line pass them to node
 * (test/unit/launch.test.ts keeps the three equal to this list). The main
 * process hosts the director and the forwarder. Edge workers inherit all but
 * the semi-space cap (they set their own, `worker_semi_space_mb`). A flag
 * cannot be set from inside the process once V8 has started, hence the
 * launch lines.
 *
 * --max-semi-space-size=4: V8 grows its young generation to 2 x 16 MB under
 * a connect burst and keeps it, 1.6 KB per connection at 10 000. Capped at
 * 4 MB per semi-space, measured alternating with V8's default: idle memory
 * per authenticated connection at 10 000 8.0-8.4 -> 6.2-6.9 KB, small rooms
 * and CPU per connect unchanged, the director's sequencing ceiling about 5 %
 * lower (docs/operations.md).
 *
 * --initial-old-space-size=64: a 64 MB floor under the heap size at which V8
 * runs its next full (mark-compact) collection. The main process' heap is
 * small (about 13 MB live) and V8 set that limit at about twice it, while
 * it counts external memory allocated since the last full collection
 * against it too: history's slabs, allocated at the rate the director
 * sequences and kept until evicted (received ZeroMQ frames stay a few MB;
 * heap snapshots, docs/benchmarks/gc-received-frames.md). A director
 * sequencing one busy channel ran 2-7 full collections a second, each
 * starting with the heap at 13 of its 25 MB (--trace-gc, 2026-12-02). With
 * the floor: 20 -> 3 in a director-ceiling run, 6-7 -> 0 in a small-rooms
 * run. Measured alternating with the base (11 pairs, load 7-16): the
 * director's publishes per CPU-second with one channel (director-ceiling.js)
 * on the publisher path x1.12 (per pair 0.77-1.83, 9 of 11 above 1), in
 * edge-style batches x1.33 (0.76-1.67, 10 of 11), one command a publish
 * x0.88 (0.51-1.71: noise); small rooms and cluster small rooms unchanged
 * within the noise; idle memory per authenticated connection at 10 000
 * 5.8 -> 6.3 KB (medians of 3).
 */
export const MAIN_PROCESS_NODE_ARGS: readonly string[] = Object.freeze(['--max-semi-space-size=4', '--initial-old-space-size=64']);

/**
 * The environment the same launch lines set (the image with ENV, `npm start`
 * and the `tidings` program with an assignment before `node`).
 * GLIBC_TUNABLES=glibc.malloc.hugetlb=1 has glibc's malloc ask for
 * transparent huge pages (madvise) for the memory it takes from the system:
 * history's slabs are malloc'd, and a director filling its history touches
 * fresh memory at the rate it sequences, one page fault per 4 KB, each
 * costly on a virtual machine. With 2 MB pages the director's publishes per
 * CPU-second on the publisher path rose 246 / 267 / 247 k -> 302 / 311 /
 * 337 k (bench/director-ceiling.js, alternating, 2026-12-02); idle memory
 * and CPU per connect unchanged (docs/operations.md). Where transparent huge
 * pages are `always` or `never`, or the C library is not glibc, it changes
 * nothing. Edge workers inherit it.
 */
export const MAIN_PROCESS_ENV: Readonly<Record<string, string>> = Object.freeze({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' });
