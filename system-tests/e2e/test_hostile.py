"""End-to-end tests of `pico server` against hostile clients on loopback: metric label sets that
clients cannot grow, error answers that reach clients still sending, secrets kept out of the
access log, connection caps on every port, descriptor exhaustion under a low limit, and silent
or idle connections that cannot hold the proxy's cap.

Run: python3 system-tests/e2e/test_hostile.py <path to the pico binary>
"""
import http.server
import json
import os
import resource
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import unittest

import harness
from harness import Node, read_until_closed, request, start_agent, start_backend, wait_until

harness.configure(sys.argv.pop(1) if len(sys.argv) > 1 else ".build/debug/pico")

# The floods below hold more sockets than a default soft limit of 1024 allows.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))


def pipeline(port, heads, timeout=60):
    """Sends `heads` (complete request heads) on one connection from a second thread while
    reading; returns every byte received once as many answers as heads arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        sender = threading.Thread(target=lambda: s.sendall(b"".join(heads)))
        sender.start()
        received = b""
        while received.count(b"HTTP/1.1 ") < len(heads):
            piece = s.recv(1 << 20)
            if not piece:
                break
            received += piece
        sender.join()
        return received


def cpu_seconds(pid):
    """User plus system CPU time of process `pid`."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_flood(port, count):
    """`count` connections to `port` that send nothing (some may be refused or reset)."""
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sockets.append(s)
    return sockets


class CookieBackend(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a Set-Cookie and an ordinary header."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Set-Cookie", "session=s3cr3t")
        self.send_header("X-Other", "visible")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def wire_string(text):
    data = text.encode()
    return varint(len(data)) + data


def wire_address(host, port):
    return wire_string(host) + port.to_bytes(2, "big")


def big_state_exchange_request(entries):
    """A framed push/pull request (docs/wire-format.md) from a made-up member that is alive and
    holds `entries` endpoints with 240-byte names: the node takes them into its table, so its
    reply carries them all (about 250 bytes each)."""
    uid = 0xFEED0001
    message = bytearray([0xB7, 1, 0x20, 2, 0]) + uid.to_bytes(8, "big")
    message += varint(1) + uid.to_bytes(8, "big") + wire_string("made-up") + wire_address("10.99.0.1", 8003)
    message += wire_address("10.99.0.1", 8000) + wire_address("10.99.0.1", 8002) + varint(0)
    message += bytes([0]) + varint(0) + bytes([0])  # alive at incarnation 0, not draining
    message += varint(0)  # no tombstones
    message += varint(1) + uid.to_bytes(8, "big") + varint(entries) + varint(entries)
    for index in range(entries):
        message += wire_string(f"e{index:05d}" + "x" * 234) + varint(1) + varint(index + 1)
    return len(message).to_bytes(4, "big") + bytes(message)


class MetricsTests(unittest.TestCase):
    """No value a client chooses becomes a metric label without a bound."""

    def setUp(self):
        # Answers for the unknown endpoint at once: these tests count answers, not the wait for a
        # holder (10,000 pipelined requests would each wait `proxy.upstream_wait`).
        self.node = Node("--proxy.upstream-wait", "0s")

    def tearDown(self):
        self.node.stop()

    def test_tenThousandDistinctMethods_growMetricsByLessThan64KiB_countAsOther_andScrapesStayQuick(self):
        before = len(self.node.admin_get("/metrics")[1])
        heads = [f"M{index:05d} / HTTP/1.1\r\nHost: x\r\nx-pico-endpoint: none\r\n\r\n".encode() for index in range(10_000)]
        for start in range(0, len(heads), 2_000):
            answers = pipeline(self.node.proxy, heads[start:start + 2_000])
            self.assertEqual(answers.count(b"HTTP/1.1 "), 2_000)
        status, body = self.node.admin_get("/metrics")
        self.assertEqual(status, 200)
        growth = len(body) - before

        # Scrapes in a loop while clients send requests: both stay quick.
        stop = threading.Event()
        scrapes = []

        def scrape():
            while not stop.is_set():
                started = time.time()
                self.node.admin_get("/metrics")
                scrapes.append(time.time() - started)

        thread = threading.Thread(target=scrape)
        thread.start()
        latencies = []
        try:
            for _ in range(100):
                started = time.time()
                self.assertEqual(request(self.node, "GET", "/", endpoint="none")[0], 502)
                latencies.append(time.time() - started)
        finally:
            stop.set()
            thread.join()
        scrapes.sort()
        median = scrapes[len(scrapes) // 2]
        print(f"\n  /metrics grew by {growth} bytes for 10,000 distinct methods; median scrape {median * 1000:.1f} ms, "
              f"slowest proxy request during scrapes {max(latencies) * 1000:.1f} ms", file=sys.stderr)
        self.assertLess(growth, 64 * 1024)
        self.assertLess(median, 0.025, "a scrape is quick")
        self.assertLess(max(latencies), 0.5, "proxy requests during scrapes are quick")
        text = body.decode()
        self.assertFalse('method="M00001"' in text, "a method outside the standard set is no label")
        other = [line for line in text.splitlines() if line.startswith('pico_proxy_requests_total{method="OTHER"')]
        self.assertEqual(sum(float(line.split()[-1]) for line in other), 10_000)


class AdminPipelineTests(unittest.TestCase):
    """Pipelined admin requests whose answers are never read cannot queue answers without bound."""

    def setUp(self):
        self.node = Node()

    def tearDown(self):
        self.node.stop()

    def resident_bytes(self):
        with open(f"/proc/{self.node.process.pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

    def test_tenThousandPipelinedScrapesNeverRead_keepTheNodesMemoryBounded(self):
        before = self.resident_bytes()
        with socket.create_connection(("127.0.0.1", self.node.admin), timeout=10) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.setblocking(False)
            ask = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 10_000
            sent = 0
            deadline = time.time() + 5
            while sent < len(ask) and time.time() < deadline:
                try:
                    sent += s.send(ask[sent:])
                except BlockingIOError:
                    time.sleep(0.01)
            time.sleep(1)
            growth = self.resident_bytes() - before
            print(f"\n  resident memory grew by {growth // 1024} KiB for 10,000 unread pipelined scrapes ({sent} bytes sent)", file=sys.stderr)
            self.assertLess(growth, 8 * 1024 * 1024)
        self.assertEqual(self.node.admin_get("/ready")[0], 200)


class LingeringCloseTests(unittest.TestCase):
    """An error answer sent before closing a connection with unread input reaches the client."""

    def setUp(self):
        self.node = Node()

    def tearDown(self):
        self.node.stop()

    def test_hundredClientsSendingA2MiBHeadInOneWrite_allRead431(self):
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * 1024 * 1024) + b"\r\n\r\n"
        results = []

        def client():
            try:
                with socket.create_connection(("127.0.0.1", self.node.proxy), timeout=30) as s:
                    s.sendall(head)
                    results.append(read_until_closed(s)[:12])
            except OSError as error:
                results.append(repr(error))

        threads = [threading.Thread(target=client) for _ in range(100)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        read = sum(1 for result in results if result == b"HTTP/1.1 431")
        print(f"\n  {read} of 100 clients read the 431", file=sys.stderr)
        self.assertEqual(read, 100, [result for result in results if result != b"HTTP/1.1 431"][:5])
        self.assertEqual(request(self.node, "GET", "/", endpoint="none")[0], 502, "the node still serves")


class AccessLogTests(unittest.TestCase):
    """The access log leaves secrets out unless an allow list names them."""

    def setUp(self):
        self.backend = socketserver.ThreadingTCPServer(("127.0.0.1", 0), CookieBackend)
        self.backend.daemon_threads = True
        threading.Thread(target=self.backend.serve_forever, daemon=True).start()
        self.processes = []

    def tearDown(self):
        for process in self.processes:
            process.kill()
        self.backend.shutdown()
        self.backend.server_close()

    def logged_request(self, *flags):
        node = Node(*flags)
        self.processes.append(node.process)
        self.processes.append(start_agent(node, "app", self.backend.server_address[1]))
        secrets = {"Authorization": "Bearer a", "Proxy-Authorization": "Basic b", "Cookie": "c=d", "x-pico-authorization": "e", "X-Trace": "t-1"}
        status, body, _ = request(node, "GET", "/", headers=secrets)
        self.assertEqual((status, body), (200, b"ok"))
        node.process.send_signal(signal.SIGTERM)
        node.process.wait(timeout=20)
        with open(node.log.name) as log:
            records = [json.loads(line) for line in log if line.startswith("{") and '"msg":"request"' in line]
        self.assertEqual(len(records), 1)
        return records[0]["request"]

    def test_defaultLine_leavesOutAuthorizationCookiesAndPicoTokens(self):
        logged = self.logged_request()
        requested = {name.lower() for name in logged["request_headers"]}
        answered = {name.lower() for name in logged["response_headers"]}
        self.assertEqual(requested & {"authorization", "proxy-authorization", "cookie", "x-pico-authorization"}, set())
        self.assertIn("x-trace", requested)
        self.assertNotIn("set-cookie", answered)
        self.assertIn("x-other", answered)
        self.assertNotIn("s3cr3t", json.dumps(logged))
        self.assertNotIn("Bearer a", json.dumps(logged))

    def test_blockList_stillLeavesOutSecrets_andAnAllowListMayNameThem(self):
        logged = self.logged_request("--proxy.access-log.request-headers.block-list", "x-trace")
        self.assertEqual({name.lower() for name in logged["request_headers"]} & {"authorization", "cookie", "x-trace"}, set())
        logged = self.logged_request("--proxy.access-log.request-headers.allow-list", "authorization,cookie",
                                     "--proxy.access-log.response-headers.allow-list", "set-cookie")
        self.assertEqual(logged["request_headers"], {"Authorization": "Bearer a", "Cookie": "c=d"})
        self.assertEqual(logged["response_headers"], {"Set-Cookie": "session=s3cr3t"})


class SilentAndIdleConnectionTests(unittest.TestCase):
    """Silent and idle connections cannot hold the proxy's connection cap."""

    def setUp(self):
        self.nodes = []

    def tearDown(self):
        for node in self.nodes:
            node.stop()

    def node(self, *flags):
        node = Node(*flags)
        self.nodes.append(node)
        return node

    def test_aConnectionThatNeverSendsAByte_isClosedAfterTheHeaderTimeout_notTheIdleOne(self):
        node = self.node("--proxy.http.read-header-timeout", "1s", "--proxy.http.idle-timeout", "5m")
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=8) as s:
            started = time.time()
            self.assertEqual(read_until_closed(s), b"")
            self.assertLess(time.time() - started, 5)

    def test_atTheCap_idleKeepAliveConnectionsCloseFirst_andOnlyThenANewClientGets503(self):
        node = self.node("--proxy.http.max-connections", "3", "--proxy.http.read-header-timeout", "30s")
        ask = b"GET / HTTP/1.1\r\nHost: x\r\nx-pico-endpoint: none\r\n\r\n"

        def served(s):
            s.sendall(ask)
            answer = s.recv(65536)
            return answer.startswith(b"HTTP/1.1 502") and b"too many connections" not in answer

        idle = [socket.create_connection(("127.0.0.1", node.proxy), timeout=10) for _ in range(3)]
        for s in idle:
            self.assertTrue(served(s))
            time.sleep(0.05)
        # A fourth client at the cap: the longest-idle connection makes room.
        newcomer = socket.create_connection(("127.0.0.1", node.proxy), timeout=10)
        self.assertTrue(served(newcomer), "the new client is served, not refused")
        self.assertEqual(read_until_closed(idle[0]), b"", "the longest-idle connection was closed")
        # Three silent newcomers take the places of the three idle connections left...
        silent = [socket.create_connection(("127.0.0.1", node.proxy), timeout=10) for _ in range(3)]
        for s in idle[1:] + [newcomer]:
            self.assertEqual(read_until_closed(s), b"")
        # ...and with no idle connection left, the next client is told so.
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as s:
            self.assertIn(b"too many connections", read_until_closed(s))
        for s in idle + silent + [newcomer]:
            s.close()

    @staticmethod
    def unread_request(node, size):
        """A keep-alive connection that asks for a `size`-byte answer and reads nothing for 1.5 s."""
        reader = socket.create_connection(("127.0.0.1", node.proxy), timeout=20)
        reader.sendall(f"GET /bytes/{size} HTTP/1.1\r\nHost: x\r\nx-pico-endpoint: app\r\n\r\n".encode())
        time.sleep(1.5)
        return reader

    def unread_capacity(self, node):
        """Bytes the kernel buffers on both ends of a proxy connection whose client reads nothing
        (`ss`: the client's Recv-Q plus the node's Send-Q)."""
        with self.unread_request(node, 16 * 1024 * 1024) as reader:
            port = reader.getsockname()[1]
            rows = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{port} or dport = :{port} )"],
                                  capture_output=True, text=True).stdout.split("\n")
            return sum(int(row.split()[0]) + int(row.split()[1]) for row in rows if row.strip())

    def test_atTheCap_aKeepAliveClientStillReadingItsAnswer_isNotEvicted_anIdleOneIs(self):
        backend, http_port, _ = start_backend()
        agent = None
        try:
            node = self.node("--proxy.http.max-connections", "3", "--proxy.http.read-header-timeout", "30s")
            agent = start_agent(node, "app", http_port)
            # The answer must be larger than the kernel's buffers hold for a client that reads
            # nothing, by less than the node's write queue holds: measured first on this machine.
            size = self.unread_capacity(node) + 200_000
            reader = self.unread_request(node, size)
            idle = []
            for _ in range(2):
                s = socket.create_connection(("127.0.0.1", node.proxy), timeout=10)
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nx-pico-endpoint: none\r\n\r\n")
                self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 502"))
                idle.append(s)
                time.sleep(0.05)
            # A fourth client at the cap: an idle connection makes room, not the slow reader.
            with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as newcomer:
                newcomer.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nx-pico-endpoint: none\r\n\r\n")
                self.assertTrue(newcomer.recv(65536).startswith(b"HTTP/1.1 502"))
            received = b""
            while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < size:
                piece = reader.recv(1 << 20)
                if not piece:
                    break
                received += piece
            head, _, body = received.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:100])
            self.assertEqual(len(body), size, "the slow reader's answer arrives whole")
            self.assertEqual(read_until_closed(idle[0]), b"", "the node's longest-idle connection was closed instead")
            for s in idle + [reader]:
                s.close()
        finally:
            if agent:
                agent.kill()
            backend.kill()

    def test_aHeadTrickledByteByByte_gets408_andFreesItsCapSlotWithinASecond_notAfterALingeringClose(self):
        node = self.node("--proxy.http.max-connections", "1", "--proxy.http.read-header-timeout", "2s")
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=30) as s:
            stop = threading.Event()

            def trickle():
                # One byte every 0.5 s, on after the 408 too (until the node's close makes a send
                # fail): a 10 s lingering close would wait for them all.
                for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                    if stop.wait(0.5):
                        return
                    try:
                        s.send(bytes([byte]))
                    except OSError:
                        return
            sender = threading.Thread(target=trickle)
            sender.start()
            try:
                answer = read_until_closed(s)
                self.assertTrue(answer.startswith(b"HTTP/1.1 408"), answer[:100])
                time.sleep(1.5)
                # The one place at the cap is free again while the slow client still sends.
                status, body, _ = request(node, "GET", "/", endpoint="none", timeout=5)
                self.assertEqual((status, json.loads(body)), (502, {"error": "no available upstreams"}))
            finally:
                stop.set()
                sender.join()

    def test_silentAdminConnections_areClosedAfterTheHeaderTimeout_andProbesGetThroughAgain(self):
        node = self.node("--admin.max-connections", "8", "--proxy.http.read-header-timeout", "1s")
        silent = [socket.create_connection(("127.0.0.1", node.admin), timeout=5) for _ in range(8)]
        time.sleep(0.2)
        self.assertEqual(node.admin_get("/ready")[0], 503, "eight silent connections fill the admin cap")
        started = time.time()
        for s in silent:
            self.assertEqual(read_until_closed(s), b"")
            s.close()
        self.assertLess(time.time() - started, 3)
        self.assertEqual(node.admin_get("/ready")[0], 200)


class StateExchangeTests(unittest.TestCase):
    def test_peersThatNeverReadTheirReply_cannotHoldTheStateExchangeCap(self):
        # Before: the 10 s deadline was dropped once the reply was queued, so a peer that sent a
        # request and never read a reply larger than the socket buffers held its slot forever.
        node = Node("--cluster.gossip.max-state-exchanges", "3")
        stuck = []
        try:
            request_bytes = big_state_exchange_request(16_000)
            for _ in range(3):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.connect(("127.0.0.1", node.gossip))
                s.sendall(request_bytes)
                stuck.append(s)
            time.sleep(1)

            def exchange_answers():
                """True when a new exchange gets the node's (large) reply; false when refused."""
                try:
                    with socket.create_connection(("127.0.0.1", node.gossip), timeout=5) as s:
                        s.sendall(request_bytes)
                        # Any reply will do: by the deadline the made-up member may be dead.
                        return len(s.recv(4)) == 4
                except (ConnectionResetError, BrokenPipeError):
                    return False

            self.assertFalse(exchange_answers(), "the cap is full while the stuck peers hold their slots")
            started = time.monotonic()
            wait_until(exchange_answers, timeout=20, what="a state exchange served after the stuck ones' deadline")
            self.assertLess(time.monotonic() - started, 15)
            for s in stuck:
                s.settimeout(5)
                try:
                    while s.recv(1 << 20):
                        pass
                except (ConnectionResetError, socket.timeout):
                    pass
        finally:
            for s in stuck:
                s.close()
            node.stop()


class DescriptorLimitTests(unittest.TestCase):
    """Under `prlimit --nofile=1024`, a flood on one port leaves the others serving, and running
    out of descriptors pauses accepting instead of spinning."""

    def setUp(self):
        self.backend = socketserver.ThreadingTCPServer(("127.0.0.1", 0), CookieBackend)
        self.backend.daemon_threads = True
        threading.Thread(target=self.backend.serve_forever, daemon=True).start()
        wrapper = os.path.join(harness.TMP, "pico-nofile-1024")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nexec prlimit --nofile=1024:1024 {harness.PICO} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        pico, harness.PICO = harness.PICO, wrapper
        try:
            self.node = Node("--proxy.http.read-header-timeout", "60s")
        finally:
            harness.PICO = pico
        self.agent = start_agent(self.node, "app", self.backend.server_address[1])
        self.floods = []

    def tearDown(self):
        self.release()
        self.agent.kill()
        self.node.stop()
        self.backend.shutdown()
        self.backend.server_close()

    def release(self):
        for s in self.floods:
            s.close()
        self.floods = []

    def metric(self, name, listener):
        text = self.node.admin_get("/metrics")[1].decode()
        line = next(line for line in text.splitlines() if line.startswith(f'{name}{{listener="{listener}"}}'))
        return float(line.split()[-1])

    def proxied(self, endpoint="app"):
        try:
            return request(self.node, "GET", "/", endpoint=endpoint, timeout=5)[:2] == (200, b"ok")
        except OSError:
            return False

    def assert_a_new_tunnel_connects(self, endpoint, flooded):
        """An agent connects through the upstream port: seen by the admin port while the proxy
        port is `flooded`, else by serving through the proxy."""
        log = open(os.path.join(harness.TMP, f"agent-{endpoint}.log"), "w")
        agent = subprocess.Popen([harness.PICO, "agent", "http", endpoint, str(self.backend.server_address[1]),
                                  "--connect.url", f"http://127.0.0.1:{self.node.upstream}", "--event-loops", "1"], stderr=log)
        try:
            if flooded == "proxy":
                wait_until(lambda: self.node.endpoints().get(endpoint, 0) >= 1, what=f"a tunnel for {endpoint}")
            else:
                wait_until(lambda: self.proxied(endpoint), what=f"a tunnel for {endpoint}")
        finally:
            agent.kill()
            agent.wait()

    def test_aFloodOnEachPort_leavesTheOtherPortsServing(self):
        ports = {"proxy": self.node.proxy, "admin": self.node.admin, "upstream": self.node.upstream, "gossip": self.node.gossip}
        for name, port in ports.items():
            self.floods = open_flood(port, 1_100)
            time.sleep(1.5)
            if name != "proxy":
                self.assertTrue(self.proxied(), f"the proxy serves during a flood on the {name} port")
            if name != "admin":
                self.assertEqual(self.node.admin_get("/ready")[0], 200, f"/ready answers during a flood on the {name} port")
                self.assertGreater(self.metric("pico_listener_refused_total", name), 0, f"the {name} port's cap refused the flood's excess")
            if name != "upstream":
                self.assert_a_new_tunnel_connects(f"extra-{name}", flooded=name)
            self.release()
            wait_until(lambda: self.proxied() and self.node.admin_get("/ready")[0] == 200, what=f"serving after the {name} flood")
        self.assertGreater(self.metric("pico_listener_refused_total", "admin"), 0)
        with open(self.node.log.name) as log:
            limit = next(json.loads(line) for line in log if '"msg":"descriptor limit"' in line)
        self.assertEqual((limit["soft_limit"], limit["proxy_max_connections"], limit["admin_max_connections"]), (1024, 768, 256))

    def test_runningOutOfDescriptors_pausesAccepting_insteadOfSpinning(self):
        # Two ports flooded at once take more descriptors than the limit allows.
        self.floods = open_flood(self.node.proxy, 900) + open_flood(self.node.upstream, 900)
        time.sleep(1)
        before = cpu_seconds(self.node.process.pid)
        time.sleep(3)
        busy = cpu_seconds(self.node.process.pid) - before
        print(f"\n  CPU while out of descriptors: {busy / 3 * 100:.0f} % of one core", file=sys.stderr)
        self.release()
        self.assertLess(busy, 0.6, "the node does not spin while out of descriptors")
        wait_until(lambda: self.proxied() and self.node.admin_get("/ready")[0] == 200, timeout=20, what="serving again")
        self.assertGreater(self.metric("pico_listener_accept_backoffs_total", "proxy") + self.metric("pico_listener_accept_backoffs_total", "upstream"), 0,
                           "the node did run out of descriptors")


if __name__ == "__main__":
    print(f"logs in {harness.TMP}")
    unittest.main(verbosity=2)
