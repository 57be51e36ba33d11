"""
Drives real Autobahn (Debian's python3-autobahn) WAMP sessions for the tests,
on one asyncio loop in one process: commands arrive as JSON lines on stdin,
what the sessions see leaves as JSON lines on stdout. Each session is an
autobahn.asyncio.component.Component (ApplicationRunner.run() does not work
on Python 3.11), so Autobahn's own reconnect over its transport list is what
runs. Bytes travel as {"__bytes__": "<hex>"} in the JSON lines.
"""
import asyncio
import json
import sys

import txaio

txaio.use_asyncio()

from autobahn.asyncio.component import Component  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.types import PublishOptions, CallOptions  # noqa: E402

sessions = {}


def out(**kw):
    sys.stdout.write(json.dumps(kw, default=plain) + "\n")
    sys.stdout.flush()


def plain(v):
    if isinstance(v, (bytes, bytearray)):
        return {"__bytes__": bytes(v).hex()}
    return str(v)


def unplain(v):
    if isinstance(v, dict):
        if set(v.keys()) == {"__bytes__"}:
            return bytes.fromhex(v["__bytes__"])
        return {k: unplain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [unplain(x) for x in v]
    return v


class Driven:
    """One named client: a Component, what it wants subscribed and registered, its live session."""

    def __init__(self, name, cmd):
        self.name = name
        self.session = None
        self.topics = []
        self.procedures = []
        auth = None
        if cmd.get("ticket"):
            auth = {"ticket": {"authid": cmd.get("authid", "ignored-by-tidings"), "ticket": cmd["ticket"]}}
        transports = [
            {
                "type": "websocket",
                "url": url,
                "serializers": [cmd.get("serializer", "json")],
                "max_retries": cmd.get("max_retries", 0),
                "initial_retry_delay": 0.3,
                "retry_delay_growth": 1.5,
                "max_retry_delay": 1.0,
                "retry_delay_jitter": 0.1,
            }
            for url in cmd["urls"]
        ]
        self.component = Component(transports=transports, realm=cmd.get("realm", "realm1"), authentication=auth)
        self.component.on("join", self.on_join)
        self.component.on("leave", self.on_leave)
        self.component.on("disconnect", self.on_disconnect)

    async def on_join(self, session, details):
        self.session = session
        out(ev="join", name=self.name, session=details.session, authid=details.authid, authmethod=details.authmethod,
            url=session._transport.factory.url if hasattr(session._transport, "factory") else None)
        for topic in list(self.topics):
            await self.subscribe(topic, None)
        for proc, kind in list(self.procedures):
            await self.register(proc, kind, None)

    def on_leave(self, session, details):
        self.session = None
        out(ev="leave", name=self.name, reason=details.reason, message=details.message)

    def on_disconnect(self, session, was_clean):
        self.session = None
        out(ev="disconnect", name=self.name, clean=was_clean)

    async def subscribe(self, topic, req):
        def handler(*args, **kwargs):
            details = kwargs.pop("details", None)
            out(ev="event", name=self.name, topic=topic, args=list(args), kwargs=kwargs,
                publisher_authid=getattr(details, "publisher_authid", None))
        from autobahn.wamp.types import SubscribeOptions
        try:
            sub = await self.session.subscribe(handler, topic, options=SubscribeOptions(details_arg="details"))
            out(ev="subscribed", name=self.name, topic=topic, req=req, id=sub.id)
        except ApplicationError as e:
            out(ev="error", name=self.name, req=req, error=e.error, args=list(e.args))

    async def register(self, proc, kind, req):
        async def handler(*args, **kwargs):
            details = kwargs.pop("details", None)
            caller = getattr(details, "caller_authid", None)
            if kind == "add":
                return sum(args)
            if kind == "sleep":
                out(ev="invoked", name=self.name, procedure=proc, args=list(args))
                await asyncio.sleep(args[0])
                return "slept"
            if kind == "whoami":
                return caller
            if kind == "fail":
                raise ApplicationError("com.example.failed", "it failed on purpose", code=7)
            return list(args)  # echo, bytes included
        from autobahn.wamp.types import RegisterOptions
        for attempt in range(40):
            try:
                reg = await self.session.register(handler, proc, options=RegisterOptions(details_arg="details"))
                out(ev="registered", name=self.name, procedure=proc, req=req, id=reg.id, attempts=attempt + 1)
                return
            except ApplicationError as e:
                # After a node dies its registrations stay until presence expires: retry for a while.
                if e.error == "wamp.error.procedure_already_exists" and req is None:
                    await asyncio.sleep(0.25)
                    continue
                out(ev="error", name=self.name, req=req, error=e.error, args=list(e.args))
                return


async def handle(cmd):
    op = cmd["op"]
    name = cmd.get("name")
    if op == "open":
        d = Driven(name, cmd)
        sessions[name] = d
        d.component.start(loop=asyncio.get_event_loop())
        return
    d = sessions[name]
    req = cmd.get("req")
    if op == "close":
        await d.component.stop()
        return
    if d.session is None:
        out(ev="error", name=name, req=req, error="driver.not_joined", args=[])
        return
    s = d.session
    try:
        if op == "subscribe":
            d.topics.append(cmd["topic"])
            await d.subscribe(cmd["topic"], req)
        elif op == "register":
            d.procedures.append((cmd["procedure"], cmd.get("kind", "echo")))
            await d.register(cmd["procedure"], cmd.get("kind", "echo"), req)
        elif op == "publish":
            opts = PublishOptions(acknowledge=cmd.get("ack", True), exclude_me=cmd.get("exclude_me", True))
            pub = await s.publish(cmd["topic"], *unplain(cmd.get("args", [])), options=opts, **unplain(cmd.get("kwargs", {})))
            out(ev="published", name=name, req=req, id=pub.id if pub else None)
        elif op == "call":
            opts = CallOptions(timeout=cmd["timeout"]) if cmd.get("timeout") else None
            kw = unplain(cmd.get("kwargs", {}))
            if opts:
                kw["options"] = opts
            r = await s.call(cmd["procedure"], *unplain(cmd.get("args", [])), **kw)
            if hasattr(r, "results"):
                out(ev="result", name=name, req=req, args=list(r.results), kwargs=r.kwresults)
            else:
                out(ev="result", name=name, req=req, args=[r], kwargs={})
    except ApplicationError as e:
        out(ev="error", name=name, req=req, error=e.error, args=list(e.args), kwargs=e.kwargs)
    except Exception as e:  # noqa: BLE001
        out(ev="error", name=name, req=req, error="driver.exception", args=[repr(e)])


async def main():
    loop = asyncio.get_event_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out(ev="ready")
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        asyncio.ensure_future(handle(cmd))
    for d in sessions.values():
        try:
            await asyncio.wait_for(d.component.stop(), 2)
        except Exception:  # noqa: BLE001
            pass


if __name__ == "__main__":
    asyncio.run(main())
