"""Idle TCP tunnels: N connections held open on the proxy port's TCP route, each a yamux stream
to `pico agent tcp` and a connection to the service, all silent; then a fresh connection must
still be served. Reports the time to open them and the resident memory per idle connection on
the node and on the agent.

Run: python3 bench/idle_tcp.py <pico binary> [connections] [--smoke]
(release build for real figures). With --smoke (the test suite's guard) it opens 500 and fails
only when a connection is refused or the fresh one is not served, never on memory.
"""
import asyncio
import base64
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idle_tunnels import free_port, rss_kib  # noqa: E402  (bench/idle_tunnels.py)


AGENT_LOOPS = int(os.environ.get("PICO_BENCH_AGENT_LOOPS", "4"))


def handshake(port):
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /_pico/v1/tcp/idle HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


async def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


async def main(pico, count, smoke):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * count + 1024)), hard))
    # The service runs in a process of its own: it holds as many sockets as the clients do.
    service_port = free_port()
    service = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--service", str(service_port)])
    await wait_port(service_port)
    proxy, upstream, admin, gossip = free_port(), free_port(), free_port(), free_port()
    logs = tempfile.mkdtemp(prefix="pico-idle-tcp-")
    node = subprocess.Popen([pico, "server", "--proxy.bind-addr", f"127.0.0.1:{proxy}", "--upstream.bind-addr", f"127.0.0.1:{upstream}",
                             "--admin.bind-addr", f"127.0.0.1:{admin}", "--cluster.gossip.bind-addr", f"127.0.0.1:{gossip}",
                             "--proxy.http.max-connections", str(count + 1000), "--log.level", "warn"], stderr=open(os.path.join(logs, "server.log"), "w"))
    agent = None
    held = []
    try:
        await wait_port(admin)
        # A tunnel carries at most 4,096 streams at once (yamux's maxStreams): 10,000 connections
        # need three tunnels, which an agent with four event loops opens.
        agent = subprocess.Popen([pico, "agent", "tcp", "idle", str(service_port), "--connect.url", f"http://127.0.0.1:{upstream}",
                                  "--event-loops", str(AGENT_LOOPS), "--log.level", "warn"], stderr=open(os.path.join(logs, "agent.log"), "w"))
        await asyncio.sleep(1.5)
        node_before, agent_before = rss_kib(node.pid), rss_kib(agent.pid)
        limit = asyncio.Semaphore(256)
        refused = []

        async def open_one():
            async with limit:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", proxy)
                    writer.write(handshake(proxy))
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as error:
                    refused.append(repr(error))
                    return
                if not head.startswith(b"HTTP/1.1 101"):
                    refused.append(head.split(b"\r\n")[0].decode(errors="replace"))
                    writer.close()
                    return
                held.append((reader, writer))

        started = time.time()
        await asyncio.gather(*(open_one() for _ in range(count)))
        opened_in = time.time() - started
        await asyncio.sleep(1.0)
        node_after, agent_after = rss_kib(node.pid), rss_kib(agent.pid)
        # A fresh connection is served while the others are held.
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy)
        writer.write(handshake(proxy))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        writer.write(bytes([0x82, 0x84, 0, 0, 0, 0]) + b"ping")
        echoed = await asyncio.wait_for(reader.readexactly(6), 30)
        fresh_ok = head.startswith(b"HTTP/1.1 101") and echoed == bytes([0x82, 0x04]) + b"ping"
        writer.close()
        opened = len(held)
        print(f"{opened} idle TCP route connections opened in {opened_in:.1f} s ({len(refused)} refused"
              f"{': ' + refused[0] if refused else ''})")
        if opened:
            print(f"node: {node_before / 1024:.1f} -> {node_after / 1024:.1f} MiB, {(node_after - node_before) / opened:.1f} KiB per connection")
            print(f"agent: {agent_before / 1024:.1f} -> {agent_after / 1024:.1f} MiB, {(agent_after - agent_before) / opened:.1f} KiB per connection")
        print(f"a fresh connection while they are held: {'served' if fresh_ok else 'NOT served'}")
        if refused or not fresh_ok or opened != count:
            sys.exit(1)
    finally:
        for _, writer in held:
            writer.close()
        for process in (agent, node):
            if process is not None:
                process.kill()
                process.wait()
        service.kill()
        service.wait()


async def echo_service(port):
    """An echo service that holds every connection it accepts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def serve(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (asyncio.CancelledError, OSError):
            pass

    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--service"]:
        asyncio.run(echo_service(int(sys.argv[2])))
        sys.exit(0)
    arguments = [argument for argument in sys.argv[1:] if argument != "--smoke"]
    smoke = "--smoke" in sys.argv
    count = 500 if smoke else int(arguments[1]) if len(arguments) > 1 else 10_000
    asyncio.run(main(arguments[0], count, smoke))
