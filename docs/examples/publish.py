#!/usr/bin/env python3
"""Publish to Tidings from a Python backend worker with pyzmq.

Usage: publish.py ADDRESS CHANNEL COUNT
  ADDRESS  a publisher address: the director's, or the local forwarder's
           (default tcp://127.0.0.1:4244)

The native message is multipart:
  [b"tidings/1", b"channel" | b"user", name, data as JSON, options as JSON (optional)]
options: {"sender": "...", "no_history": true}

A plain PUB socket drops whatever it sends before the director's subscription
has reached it (ZeroMQ's "slow joiner"). An XPUB socket sees that subscription
arrive, so this worker waits for it before sending: nothing is lost.
"""
import json
import sys

import zmq


def connect(address, timeout_ms=10000):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.XPUB_NODROP, 1)  # block at the high-water mark, never drop
    sock.setsockopt(zmq.SNDHWM, 100000)
    sock.connect(address)
    # The director's XSUB subscribes to everything: b"\x01" (empty topic).
    if not sock.poll(timeout_ms, zmq.POLLIN):
        raise TimeoutError("no Tidings director reachable at %s" % address)
    sub = sock.recv()
    assert sub[:1] == b"\x01", sub
    return sock


def publish(sock, channel, data, sender=None, no_history=False):
    options = {}
    if sender is not None:
        options["sender"] = sender
    if no_history:
        options["no_history"] = True
    frames = [b"tidings/1", b"channel", channel.encode(), json.dumps(data).encode()]
    if options:
        frames.append(json.dumps(options).encode())
    sock.send_multipart(frames)


def publish_to_user(sock, user, data, sender=None):
    frames = [b"tidings/1", b"user", user.encode(), json.dumps(data).encode()]
    if sender is not None:
        frames.append(json.dumps({"sender": sender}).encode())
    sock.send_multipart(frames)


def main():
    address = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:4244"
    channel = sys.argv[2] if len(sys.argv) > 2 else "news"
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    sock = connect(address)
    for i in range(count):
        publish(sock, channel, {"n": i, "text": "hello from python"}, sender="python-worker")
    # An omnibus publisher's single-frame form works too:
    sock.send_string('%s:{"type": "omnibus", "sender": "legacy", "payload": {"n": %d}}' % (channel, count))
    sock.close(linger=5000)
    zmq.Context.instance().term()


if __name__ == "__main__":
    main()
