#!/usr/bin/env python3
"""Publish to Tidings from a Python backend worker with pyzmq.

Usage: publish.py [ADDRESS [CHANNEL [COUNT]]] [--secret-key-file FILE --server-key KEY]
  ADDRESS  a publisher address: the director's, or the local forwarder's
           (default tcp://127.0.0.1:4244)
  --secret-key-file  this worker's CURVE key pair, as `tidings keygen --out`
                     writes it (NAME.key); its public key must be in the
                     node's curve_worker_keys
  --server-key       the CURVE public key of the node (Z85), or
  --server-key-file  a file holding it (the node's NAME.pub)
A node with CURVE keys admits only workers whose keys it lists; without
keys (the default on 127.0.0.1) no key is needed.

The native message is multipart:
  [b"tidings/1", b"channel" | b"user", name, data as JSON, options as JSON (optional)]
options: {"sender": "...", "no_history": true}

A plain PUB socket drops whatever it sends before the director's subscription
has reached it (ZeroMQ's "slow joiner"). An XPUB socket sees that subscription
arrive, so this worker waits for it before sending: nothing is lost.
"""
import argparse
import json
import sys

try:
    import zmq
except ImportError:
    sys.exit(
        "publish.py needs pyzmq, which this Python (%s) lacks: `pip install pyzmq`, "
        "or on Debian/Ubuntu `apt-get install python3-zmq` and run it with /usr/bin/python3" % sys.executable
    )


def read_key(path, section):
    """The key under "== CURVE <SECTION> KEY ==" in a `tidings keygen` file, or its only bare key line."""
    current, found = None, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("=="):
                current = "SECRET" if "SECRET" in line else "PUBLIC"
                continue
            if current in (None, section):
                found.append(line)
    if len(found) != 1:
        raise ValueError("%s: expected one %s key, found %d" % (path, section.lower(), len(found)))
    return found[0].encode()


def connect(address, timeout_ms=10000, secret_key=None, server_key=None):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.XPUB_NODROP, 1)  # block at the high-water mark, never drop
    sock.setsockopt(zmq.SNDHWM, 100000)
    if secret_key is not None:
        # CURVE: encrypted, and the node checks this worker's public key (and we check the node's).
        sock.curve_secretkey = secret_key
        sock.curve_publickey = zmq.curve_public(secret_key)
        sock.curve_serverkey = server_key
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


def join_key_arguments(argv, flags):
    """Write "--server-key KEY" as "--server-key=KEY".

    Z85 uses "-" among its characters, so one key in 85 starts with it and
    argparse would take it for an option.
    """
    out, i = [], 0
    while i < len(argv):
        if argv[i] in flags and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(argv[i] + "=" + argv[i + 1])
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main():
    p = argparse.ArgumentParser(description="Publish to Tidings over ZeroMQ")
    p.add_argument("address", nargs="?", default="tcp://127.0.0.1:4244")
    p.add_argument("channel", nargs="?", default="news")
    p.add_argument("count", nargs="?", type=int, default=10)
    p.add_argument("--secret-key-file")
    p.add_argument("--server-key")
    p.add_argument("--server-key-file")
    a = p.parse_args(join_key_arguments(sys.argv[1:], ("--server-key",)))
    secret_key = read_key(a.secret_key_file, "SECRET") if a.secret_key_file else None
    server_key = a.server_key.encode() if a.server_key else (read_key(a.server_key_file, "PUBLIC") if a.server_key_file else None)
    if (secret_key is None) != (server_key is None):
        p.error("CURVE needs --secret-key-file and --server-key (or --server-key-file)")
    sock = connect(a.address, secret_key=secret_key, server_key=server_key)
    address, channel, count = a.address, a.channel, a.count
    for i in range(count):
        publish(sock, channel, {"n": i, "text": "hello from python"}, sender="python-worker")
    # An omnibus publisher's single-frame form works too:
    sock.send_string('%s:{"type": "omnibus", "sender": "legacy", "payload": {"n": %d}}' % (channel, count))
    sock.close(linger=5000)
    zmq.Context.instance().term()


if __name__ == "__main__":
    main()
