"""
An Autobahn|Python component using Tidings as its WAMP router.

    python3 wamp_component.py ws://127.0.0.1:4242/wamp <ticket>

The ticket is a Tidings client token (`tidings token --user alice
--subscribe 'com.example.*' --publish 'com.example.*' --call 'com.example.*'
--register 'com.example.*'`). The component registers a procedure, subscribes
to a topic, calls the procedure and publishes to the topic, prints what it
gets, and leaves. With Debian's python3-autobahn (22.7), run the Component on
asyncio yourself as below: ApplicationRunner.run() fails on Python 3.11.
"""
import asyncio
import sys

try:
    import txaio
except ImportError:
    sys.exit(
        "wamp_component.py needs Autobahn|Python, which this Python (%s) lacks: `pip install autobahn`, "
        "or on Debian/Ubuntu `apt-get install python3-autobahn` and run it with /usr/bin/python3" % sys.executable
    )

txaio.use_asyncio()

from autobahn.asyncio.component import Component  # noqa: E402
from autobahn.wamp.types import PublishOptions  # noqa: E402

url, ticket = sys.argv[1], sys.argv[2]

async def work(loop, session):
    """Runs once the session has joined; the component leaves when it returns."""
    print("joined as", session.authid, "session", session.session_id)
    got_event = loop.create_future()

    def on_news(text, **kwargs):
        print("event:", text, kwargs)
        if not got_event.done():
            got_event.set_result(text)

    def add(a, b):
        return a + b

    await session.register(add, "com.example.add")
    await session.subscribe(on_news, "com.example.news")
    print("add(2, 3) =", await session.call("com.example.add", 2, 3))
    # Acknowledged, and not excluded, so this session receives its own event.
    await session.publish("com.example.news", "hello from python", mood="good",
                          options=PublishOptions(acknowledge=True, exclude_me=False))
    await asyncio.wait_for(got_event, 5)


component = Component(
    main=work,
    # Several URLs (one per node) let Autobahn reconnect to another node when one fails.
    transports=[{"url": url, "serializers": ["msgpack", "json"], "max_retries": 3}],
    realm="realm1",
    authentication={"ticket": {"authid": "ignored: the token's subject is the authid", "ticket": ticket}},
)


@component.on_leave
async def left(session, details):
    print("left:", details.reason)


async def main():
    done = component.start(loop=asyncio.get_event_loop())
    await done


if __name__ == "__main__":
    asyncio.run(main())
