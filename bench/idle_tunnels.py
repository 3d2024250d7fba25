"""Idle-tunnel memory: resident memory per tunnel and time to register N tunnels on one node.

Opens N tunnels (the WebSocket upgrade on /pico/v1/upstream/<endpoint>, then silence) to a
fresh `pico server`, and as the reference measured in the same run, N idle client connections
to the proxy port of another fresh node: the runtime's floor cost of one connection. Then N
tunnels over TLS (TLS 1.3, a certificate made for the run) to a third node whose upstream port
serves TLS: the memory of an idle TLS tunnel, reported next to the plain one.

Run through bench/idle-tunnels; python3 bench/idle_tunnels.py <pico binary> [tunnels] [endpoints] [--smoke].
With --smoke (the test suite's guard that the script still works) the target is not enforced.
"""
import asyncio
import base64
import os
import re
import resource
import socket
import ssl
import subprocess
import tempfile
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system-tests"))
from pki import PKI  # noqa: E402  (system-tests/pki.py)

TARGET_KIB = 16.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def test_certificate():
    """(certificate, key, CA) for localhost, made with the openssl command line."""
    return PKI(tempfile.mkdtemp(prefix="pico-idle-tls-")).localhost()


class Node:
    def __init__(self, binary, connections, extra=()):
        self.proxy, self.upstream, self.admin = free_port(), free_port(), free_port()
        self.process = subprocess.Popen(
            [binary, "server", "--proxy.bind-addr", f"127.0.0.1:{self.proxy}", "--upstream.bind-addr", f"127.0.0.1:{self.upstream}",
             "--admin.bind-addr", f"127.0.0.1:{self.admin}", "--cluster.gossip.bind-addr", f"127.0.0.1:{free_port()}", "--upstream.keepalive-interval", "10m",
             "--proxy.http.idle-timeout", "10m", "--proxy.http.max-connections", str(connections + 100), "--log.level", "warn", *extra])
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("pico server did not become ready")

    def metric(self, name):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=10).read().decode()
        match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
        return float(match.group(1)) if match else 0.0

    def open_descriptors(self):
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def stop(self):
        self.process.kill()
        self.process.wait()


async def open_all(count, open_one, parallel=256):
    gate = asyncio.Semaphore(parallel)
    held = []

    async def one(index):
        async with gate:
            held.append(await open_one(index))

    await asyncio.gather(*(one(index) for index in range(count)))
    return held


async def tunnel(port, endpoint, tls=None):
    if tls:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls, server_hostname="localhost")
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /pico/v1/upstream/{endpoint} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"tunnel refused: {head[:80]!r}")
    return writer


async def idle_connection(port):
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    return writer


def wait_for(check, what, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


async def measure_tunnels(node, count, endpoints, tls=None):
    """Opens `count` idle tunnels to `node` (over TLS with a client context) and stops it:
    (resident KiB before, after, seconds to register them all, tunnels registered)."""
    try:
        time.sleep(0.5)
        before = rss_kib(node.process.pid)
        started = time.time()
        held = await open_all(count, lambda index: tunnel(node.upstream, f"endpoint-{index % endpoints}", tls=tls), parallel=64 if tls else 256)
        wait_for(lambda: node.metric("pico_upstreams_connected_upstreams") >= count, "tunnels to register")
        elapsed = time.time() - started
        await asyncio.sleep(0.5)
        after = rss_kib(node.process.pid)
        registered = node.metric("pico_upstreams_connected_upstreams")
        for writer in held:
            writer.close()
    finally:
        node.stop()
    return before, after, elapsed, registered


async def main(binary, count, endpoints, enforce):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < count + 200:
        raise SystemExit(f"the descriptor limit {hard} is below {count + 200}; raise `ulimit -n`")

    reference = Node(binary, count)
    try:
        time.sleep(0.5)
        before = rss_kib(reference.process.pid)
        base_fds = reference.open_descriptors()
        held = await open_all(count, lambda index: idle_connection(reference.proxy))
        wait_for(lambda: reference.open_descriptors() >= base_fds + count, "idle connections to be accepted")
        await asyncio.sleep(0.5)
        per_connection = (rss_kib(reference.process.pid) - before) / count
        for writer in held:
            writer.close()
    finally:
        reference.stop()

    before, after, elapsed, registered = await measure_tunnels(Node(binary, count), count, endpoints)
    certificate, key, ca = test_certificate()
    tls_before, tls_after, tls_elapsed, tls_registered = await measure_tunnels(
        Node(binary, count, extra=["--upstream.tls.cert", certificate, "--upstream.tls.key", key]), count, endpoints,
        tls=ssl.create_default_context(cafile=ca))

    per_tunnel = (after - before) / count
    per_tls_tunnel = (tls_after - tls_before) / count
    print(f"idle tunnels: {count} over {endpoints} endpoints, {int(registered)} registered")
    print(f"  time to register:     {elapsed:.2f} s ({count / elapsed:.0f} tunnels/s)")
    print(f"  resident memory:      {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after")
    print(f"  per tunnel:           {per_tunnel:.2f} KiB  (target {TARGET_KIB:.0f} KiB: ratio {TARGET_KIB / per_tunnel:.2f}, above 1.0 meets it)")
    ratio = f"{per_tunnel / per_connection:.2f}" if per_connection > 0 else "n/a"
    print(f"  reference, per idle proxy connection in the same run: {per_connection:.2f} KiB (tunnel / idle connection: {ratio})")
    print(f"  over TLS (1.3):       {per_tls_tunnel:.2f} KiB per idle tunnel ({per_tls_tunnel / per_tunnel:.2f}x the plain one; "
          f"{count / tls_elapsed:.0f} tunnels/s with a handshake each)")
    if int(registered) != count:
        raise SystemExit(f"only {int(registered)} of {count} tunnels registered")
    if int(tls_registered) != count:
        raise SystemExit(f"only {int(tls_registered)} of {count} TLS tunnels registered")
    if enforce and per_tunnel > TARGET_KIB:
        sys.exit(1)


if __name__ == "__main__":
    smoke = "--smoke" in sys.argv
    arguments = [argument for argument in sys.argv[1:] if argument != "--smoke"]
    binary = arguments[0]
    count = int(arguments[1]) if len(arguments) > 1 else 10_000
    endpoints = int(arguments[2]) if len(arguments) > 2 else 100
    asyncio.run(main(binary, count, endpoints, enforce=not smoke))
