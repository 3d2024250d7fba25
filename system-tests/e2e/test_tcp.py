"""End-to-end tests of TCP tunnels: `pico agent tcp` in front of a TCP service, `pico forward tcp`
in front of plain socket clients, and Python `websockets` clients on the proxy port's TCP route
(`/_pico/v1/tcp/<endpoint>` and Piko's `/_piko/v1/tcp/<endpoint>`), on one node and through a
cluster of two.

Run: python3 system-tests/e2e/test_tcp.py <path to the pico binary>
"""
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

import harness
from harness import EchoService, Node, bye, converse, free_port, read_until_closed, start_forward, start_tcp_agent, wait_until

harness.configure(sys.argv.pop(1) if len(sys.argv) > 1 else ".build/debug/pico")


class TCPOneNodeTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = Node("--proxy.upstream-wait", "300ms")
        cls.service = EchoService()
        cls.agent, cls.agent_log = start_tcp_agent(cls.node, "db", cls.service.port)
        cls.forward, cls.forward_port, cls.forward_log = start_forward(cls.node, "db")

    @classmethod
    def tearDownClass(cls):
        for process in (cls.forward, cls.agent):
            process.kill()
            process.wait()
        cls.node.stop()
        cls.service.close()

    def test_forwardTcp_carriesMegabytesBothWays_intact_andHalfCloseLetsTheServiceAnswerLast(self):
        payload = os.urandom(8 * 1024 * 1024)
        answer = converse(self.forward_port, payload)
        self.assertEqual(len(answer), len(payload) + len(bye(payload)))
        self.assertEqual(answer[:len(payload)], payload)
        self.assertEqual(answer[len(payload):], bye(payload), "the service answered after the client's half-close")

    def test_aServiceThatEndsFirstAndReadsSlowly_stillReadsEveryByte(self):
        """The client's bytes still queued in the node's stream when the WebSocket closes (the
        service ended its direction first, then reads slowly) reach the service whole."""
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        counts = []

        def serve():
            while True:
                try:
                    connection, _ = server.accept()
                except OSError:
                    return
                with connection:
                    connection.sendall(b"hi")
                    connection.shutdown(socket.SHUT_WR)
                    count = 0
                    while piece := connection.recv(65536):
                        count += len(piece)
                        time.sleep(0.01)
                    # (The forward's readiness probe opens one connection that sends nothing.)
                    if count:
                        counts.append(count)

        threading.Thread(target=serve, daemon=True).start()
        agent, _ = start_tcp_agent(self.node, "slow-sink", server.getsockname()[1])
        forward, port, _ = start_forward(self.node, "slow-sink")
        try:
            size = 2 * 1024 * 1024
            for attempt in range(3):
                self.assertEqual(converse(port, os.urandom(size), timeout=60), b"hi")
                wait_until(lambda: len(counts) == attempt + 1, timeout=30, what="the service to read to its end")
                self.assertEqual(counts[-1], size, f"attempt {attempt}")
        finally:
            for process in (forward, agent):
                process.kill()
                process.wait()
            server.close()

    def test_aClientThatFloodsPingsAndReadsLittle_doesNotGrowTheNodesMemory(self):
        def rss():
            return int(next(line for line in open(f"/proc/{self.node.process.pid}/status") if line.startswith("VmRSS")).split()[1]) // 1024

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", self.node.proxy))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(f"GET /_pico/v1/tcp/db HTTP/1.1\r\nHost: 127.0.0.1:{self.node.proxy}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        self.assertTrue(sock.recv(200).startswith(b"HTTP/1.1 101"))
        ping = bytes([0x89, 0x80 | 125]) + b"\0\0\0\0" + b"p" * 125  # masked with a zero key
        before = rss()
        started = time.time()
        sent = 0
        sock.settimeout(1)
        try:
            while time.time() - started < 4:
                sock.sendall(ping * 2000)
                sent += 2000 * len(ping)
                # Read a little now and then, so the node's write-stall timeout never ends it.
                try:
                    sock.recv(4096, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    pass
        except (TimeoutError, socket.timeout):
            pass
        finally:
            sock.close()
        grown = rss() - before
        print(f"\n  {sent >> 20} MiB of pings in 4 s; node memory grew {grown} MiB")
        self.assertLess(grown, 24, "pongs queued for a client that does not read them")

    def test_manyConcurrentForwardedConnections_eachGetTheirOwnBytes(self):
        results = {}

        def one(index):
            payload = os.urandom(1000 + index * 997)
            results[index] = converse(self.forward_port, payload) == payload + bye(payload)

        threads = [threading.Thread(target=one, args=(index,)) for index in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual(sorted(results), list(range(40)))
        self.assertTrue(all(results.values()), [index for index, ok in results.items() if not ok])

    def test_websocketsClients_onPicosAndPikosRoute_withAndWithoutHalfClose(self):
        for prefix in ("/_pico/v1/tcp/", "/_piko/v1/tcp/"):
            # With the subprotocol: an empty message ends the client's direction, the service
            # still answers, and its end arrives as an empty message before the close.
            with ws_connect(f"ws://127.0.0.1:{self.node.proxy}{prefix}db", subprotocols=["pico-tcp-half-close"], open_timeout=5) as ws:
                self.assertEqual(ws.subprotocol, "pico-tcp-half-close")
                ws.send(b"hello")
                self.assertEqual(ws.recv(timeout=5), b"hello")
                ws.send(b"")
                self.assertEqual(ws.recv(timeout=5), bye(b"hello"))
                with self.assertRaises(ConnectionClosed) as closed:
                    ws.recv(timeout=5)
                self.assertEqual(closed.exception.rcvd.code, 1000)
            # Piko's clients offer no subprotocol: the service's end closes the WebSocket.
            with ws_connect(f"ws://127.0.0.1:{self.node.proxy}{prefix}db", open_timeout=5) as ws:
                self.assertIsNone(ws.subprotocol)
                ws.send(b"abc")
                self.assertEqual(ws.recv(timeout=5), b"abc")
                ws.close()

    def test_refusals_haveTheirStatuses_andTheForwardLogsWhy(self):
        proxy = f"ws://127.0.0.1:{self.node.proxy}"
        for path, origin, status in [("/_pico/v1/tcp/nobody", None, 502), ("/_pico/v1/tcp/db", "https://evil.example", 403),
                                     ("/_pico/v1/tcp/a%2Fb", None, 400), ("/_pico/v1/other", None, 404)]:
            with self.assertRaises(InvalidStatus) as refused:
                ws_connect(proxy + path, origin=origin, open_timeout=5)
            self.assertEqual(refused.exception.response.status_code, status, path)
        # A plain GET on the route: 426 with a message naming the route.
        with socket.create_connection(("127.0.0.1", self.node.proxy), timeout=5) as sock:
            sock.sendall(b"GET /_pico/v1/tcp/db HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = read_until_closed(sock)
        self.assertTrue(answer.startswith(b"HTTP/1.1 426"), answer[:80])
        self.assertIn(b"the TCP route needs a WebSocket handshake", answer)
        # Through the forward: the local connection closes and the log names the node's answer.
        forward, port, log_path = start_forward(self.node, "nobody")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                self.assertEqual(read_until_closed(sock), b"")
            wait_until(lambda: "502: no available upstreams" in open(log_path).read(), what="the forward to log the 502")
        finally:
            forward.kill()
            forward.wait()

    def test_aServiceThatRefuses_isA502_andTheAgentLogsTheDial(self):
        closed = socket.create_server(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
        closed.close()
        agent, agent_log = start_tcp_agent(self.node, "refusing", dead_port)
        forward, port, log_path = start_forward(self.node, "refusing")
        try:
            with self.assertRaises(InvalidStatus) as refused:
                ws_connect(f"ws://127.0.0.1:{self.node.proxy}/_pico/v1/tcp/refusing", open_timeout=5)
            self.assertEqual(refused.exception.response.status_code, 502)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                self.assertEqual(read_until_closed(sock), b"")
            wait_until(lambda: "502: upstream unreachable" in open(log_path).read(), what="the forward to log the 502")
            wait_until(lambda: "tcp service unreachable" in open(agent_log).read(), what="the agent to log the refused dial")
        finally:
            for process in (forward, agent):
                process.kill()
                process.wait()

    def test_theNodeCountsTCPConnections(self):
        def count():
            body = self.node.admin_get("/metrics")[1].decode()
            return int(float(next(line.split()[1] for line in body.splitlines() if line.startswith("pico_proxy_tcp_connections_total "))))

        before = count()
        converse(self.forward_port, b"x")
        self.assertEqual(count(), before + 1)


def hs256(secret, claims):
    """A compact HS256 JWT (RFC 7519) with `claims`, signed with `secret`."""
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    return signing_input + "." + b64(hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest())


class TCPAuthTests(unittest.TestCase):
    SECRET = "tcp-route-secret"

    def test_withProxyAuth_theRouteNeedsATokenForItsEndpoint_andTheForwardSendsIt(self):
        node = Node("--proxy.auth.hmac-secret-key", self.SECRET)
        service = EchoService()
        agent, _ = start_tcp_agent(node, "db", service.port)
        good = hs256(self.SECRET, {"exp": int(time.time()) + 3600, "piko.endpoints": ["db"]})
        other = hs256(self.SECRET, {"exp": int(time.time()) + 3600, "piko.endpoints": ["web"]})
        with_token, port, _ = start_forward(node, "db", "--connect.token", good)
        without, bare_port, bare_log = start_forward(node, "db")
        try:
            route = f"ws://127.0.0.1:{node.proxy}/_pico/v1/tcp/db"
            for headers in ({}, {"Authorization": f"Bearer {other}"}, {"Authorization": "Bearer not.a.token"}):
                with self.assertRaises(InvalidStatus) as refused:
                    ws_connect(route, additional_headers=headers, open_timeout=5)
                self.assertEqual(refused.exception.response.status_code, 401, headers)
            with ws_connect(route, additional_headers={"Authorization": f"Bearer {good}"}, open_timeout=5) as ws:
                ws.send(b"ok")
                self.assertEqual(ws.recv(timeout=5), b"ok")
            self.assertEqual(converse(port, b"payload"), b"payload" + bye(b"payload"))
            with socket.create_connection(("127.0.0.1", bare_port), timeout=10) as sock:
                self.assertEqual(read_until_closed(sock), b"")
            wait_until(lambda: "401:" in open(bare_log).read(), what="the forward without a token to log the 401")
        finally:
            for process in (with_token, without, agent):
                process.kill()
                process.wait()
            node.stop()
            service.close()


class TCPHostileTests(unittest.TestCase):
    """Hostile input on the TCP route: garbage frames, a client that never reads, a service that
    accepts and never answers, and many idle connections, each with every other stream served."""

    @classmethod
    def setUpClass(cls):
        cls.node = Node()
        cls.service = EchoService()
        cls.agent, _ = start_tcp_agent(cls.node, "db", cls.service.port)
        silent = socket.create_server(("127.0.0.1", 0), backlog=4096)
        cls.silent = silent
        cls.silent_held = []

        def accept_and_hold():
            while True:
                try:
                    connection, _ = silent.accept()
                except OSError:
                    return
                cls.silent_held.append(connection)

        threading.Thread(target=accept_and_hold, daemon=True).start()
        cls.silent_agent, _ = start_tcp_agent(cls.node, "silent", silent.getsockname()[1])

    @classmethod
    def tearDownClass(cls):
        for process in (cls.agent, cls.silent_agent):
            process.kill()
            process.wait()
        cls.node.stop()
        cls.service.close()
        cls.silent.close()

    def route(self):
        sock = socket.create_connection(("127.0.0.1", self.node.proxy), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(f"GET /_pico/v1/tcp/db HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        return sock

    def assertServesOthers(self):
        with ws_connect(f"ws://127.0.0.1:{self.node.proxy}/_pico/v1/tcp/db", open_timeout=5) as ws:
            ws.send(b"still served")
            self.assertEqual(ws.recv(timeout=5), b"still served")

    def test_garbageFrames_closeWithAProtocolError_andOthersAreServed(self):
        for garbage in (os.urandom(4096), b"\x82\x05hello", b"\x81\x85" + b"\0" * 4 + b"hello", b"\x8f\x80\0\0\0\0"):
            with self.route() as sock:
                sock.sendall(garbage)
                answer = read_until_closed(sock)
                # A close frame (opcode 8) with a protocol-error code, then the end.
                self.assertEqual(answer[0], 0x88, answer[:8])
                self.assertIn(int.from_bytes(answer[2:4], "big"), (1002, 1003), answer[:8])
        self.assertServesOthers()

    def test_aClientThatNeverReads_isHeldBack_notBuffered(self):
        def rss():
            return int(next(line for line in open(f"/proc/{self.node.process.pid}/status") if line.startswith("VmRSS")).split()[1]) // 1024

        before = rss()
        sock = self.route()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        frame = bytes([0x82, 0xFE, 0xFF, 0xFF, 0, 0, 0, 0]) + b"x" * 65535  # 64 KiB, masked with a zero key
        sock.settimeout(0.5)
        sent = 0
        try:
            # The echo service sends everything back; the client reads none of it.
            for _ in range(1024):
                sock.sendall(frame)
                sent += len(frame)
        except (TimeoutError, socket.timeout):
            pass
        grown = rss() - before
        print(f"\n  the client wrote {sent >> 20} MiB before it was held back; node memory grew {grown} MiB")
        # The kernel's socket buffers on the way (client, node, agent, service; autotuned on
        # loopback) hold some megabytes; the node itself holds no more than its windows.
        self.assertLess(sent, 64 * 1024 * 1024, "the node kept reading a client whose echo nobody read")
        self.assertLess(grown, 24)
        self.assertServesOthers()
        sock.close()

    def test_aServiceThatAcceptsAndNeverAnswers_andManyIdleConnections_holdNothingElseUp(self):
        held = []
        try:
            for _ in range(300):
                ws = ws_connect(f"ws://127.0.0.1:{self.node.proxy}/_pico/v1/tcp/silent", open_timeout=10)
                ws.send(b"hello?")
                held.append(ws)
            for _ in range(300):
                held.append(ws_connect(f"ws://127.0.0.1:{self.node.proxy}/_pico/v1/tcp/db", open_timeout=10))
            wait_until(lambda: len(self.silent_held) >= 300, what="the silent service to hold 300 connections")
            self.assertServesOthers()
            # The idle echo connections still work after all that.
            held[-1].send(b"late")
            self.assertEqual(held[-1].recv(timeout=5), b"late")
        finally:
            for ws in held:
                ws.close()


class TCPIdleTests(unittest.TestCase):
    def test_anIdleConnection_isClosedWith4000_anActiveOneIsNot_andTheForwardLogsIt(self):
        node = Node("--proxy.tcp.idle-timeout", "700ms")
        service = EchoService()
        agent, _ = start_tcp_agent(node, "db", service.port)
        forward, port, log_path = start_forward(node, "db")
        try:
            route = f"ws://127.0.0.1:{node.proxy}/_pico/v1/tcp/db"
            with ws_connect(route, open_timeout=5) as idle, ws_connect(route, open_timeout=5) as active:
                started = time.time()
                while time.time() - started < 1.6:
                    active.send(b"tick")
                    self.assertEqual(active.recv(timeout=5), b"tick")
                    time.sleep(0.2)
                with self.assertRaises(ConnectionClosed) as closed:
                    idle.recv(timeout=5)
                self.assertEqual((closed.exception.rcvd.code, closed.exception.rcvd.reason), (4000, "idle timeout"))
                active.send(b"still here")
                self.assertEqual(active.recv(timeout=5), b"still here")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                self.assertEqual(read_until_closed(sock), b"")
            wait_until(lambda: "close code 4000: idle timeout" in open(log_path).read(), what="the forward to log the idle close")
        finally:
            for process in (forward, agent):
                process.kill()
                process.wait()
            node.stop()
            service.close()


NGINX_PROXY_PROTOCOL = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx-{port}.pid;
error_log {tmp}/nginx-{port}.error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-{port}-body;
    server {{
        listen 127.0.0.1:{port} proxy_protocol;
        location / {{ return 200 "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port"; }}
    }}
}}
"""


class TCPProxyProtocolTests(unittest.TestCase):
    """PROXY protocol v2 read by nginx (`listen ... proxy_protocol`), an implementation no one here
    wrote: it answers with the client address it parsed from Pico's header."""

    def nginx(self):
        port = free_port()
        config = os.path.join(harness.TMP, f"nginx-{port}.conf")
        with open(config, "w") as handle:
            handle.write(NGINX_PROXY_PROTOCOL.format(tmp=harness.TMP, port=port))
        process = subprocess.Popen(["nginx", "-c", config, "-p", harness.TMP], stderr=subprocess.DEVNULL)
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None, what="nginx")
        return process, port

    def test_theServiceReadsTheClientsAddress_directAndThroughACluster_andAnAgentWithoutItRefuses(self):
        nginx, nginx_port = self.nginx()
        holder = Node("--grace-period", "10s")
        entry = Node("--grace-period", "10s", "--cluster.join", f"127.0.0.1:{holder.gossip}", "--proxy.upstream-wait", "5s")
        agent, _ = start_tcp_agent(holder, "web", nginx_port, "--proxy-protocol")
        try:
            wait_until(lambda: len(json.loads(entry.admin_get("/status/cluster/nodes")[1])) == 2, what="two members")
            for node in (holder, entry):
                with ws_connect(f"ws://127.0.0.1:{node.proxy}/_pico/v1/tcp/web", open_timeout=5) as ws:
                    client_port = ws.socket.getsockname()[1]
                    ws.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    answer = b""
                    try:
                        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(str(node.proxy).encode()):
                            answer += ws.recv(timeout=5)
                    except ConnectionClosed:
                        pass
                body = answer.split(b"\r\n\r\n", 1)[1].decode()
                # The address the client's socket had, and the node it connected to.
                self.assertEqual(body.split(), ["127.0.0.1", str(client_port), "127.0.0.1", str(node.proxy)], f"through {node.proxy}")
        finally:
            for process in (agent, nginx):
                process.kill()
                process.wait()
            entry.stop()
            holder.stop()

    def test_aListenerThatAsksForTheHeader_neverPassesOnAStreamWithoutIt(self):
        # A node that sends no header is simulated by a service that checks: Pico's agent with
        # --proxy-protocol in front of a plain echo service gets the header from Pico's node, and
        # the echo service sees it first.
        node = Node()
        service = EchoService()
        agent, _ = start_tcp_agent(node, "echo", service.port, "--proxy-protocol")
        try:
            with ws_connect(f"ws://127.0.0.1:{node.proxy}/_pico/v1/tcp/echo", open_timeout=5) as ws:
                ws.send(b"after")
                echoed = b""
                while not echoed.endswith(b"after"):
                    echoed += ws.recv(timeout=5)
            self.assertTrue(echoed.startswith(bytes([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C])), echoed[:16])
            self.assertEqual(len(echoed), 28 + len(b"after"))
        finally:
            agent.kill()
            agent.wait()
            node.stop()
            service.close()


class TCPClusterTests(unittest.TestCase):
    def test_aConnectionEnteringANodeWithoutTheTunnel_isCarriedToTheHolder(self):
        holder = Node("--grace-period", "10s")
        entry = Node("--grace-period", "10s", "--cluster.join", f"127.0.0.1:{holder.gossip}", "--proxy.upstream-wait", "5s")
        service = EchoService()
        agent, _ = start_tcp_agent(holder, "db", service.port)
        forward, port, _ = start_forward(entry, "db")
        try:
            wait_until(lambda: len(json.loads(entry.admin_get("/status/cluster/nodes")[1])) == 2, what="two members")
            payload = os.urandom(2 * 1024 * 1024)
            self.assertEqual(converse(port, payload), payload + bye(payload))
            body = entry.admin_get("/metrics")[1].decode()
            self.assertIn("pico_upstreams_remote_requests_total{", body, "the entry node forwarded it")
        finally:
            for process in (forward, agent):
                process.kill()
                process.wait()
            entry.stop()
            holder.stop()
            service.close()

    def test_aDrainingEntryNode_keepsRelayingAnOpenConnection_andLeavesWhenItCloses(self):
        # Without a tunnel, the entry node would leave once its drain minimum (5 s) passed and
        # cut the relayed connection with its exit; it waits for the connection instead (until
        # its drain deadline, grace period minus the leave timeout: 35 s here).
        holder = Node("--grace-period", "40s")
        entry = Node("--grace-period", "40s", "--cluster.join", f"127.0.0.1:{holder.gossip}", "--proxy.upstream-wait", "5s")
        service = EchoService()
        agent, _ = start_tcp_agent(holder, "db", service.port)
        try:
            wait_until(lambda: len(json.loads(entry.admin_get("/status/cluster/nodes")[1])) == 2, what="two members")
            with ws_connect(f"ws://127.0.0.1:{entry.proxy}/_pico/v1/tcp/db", subprotocols=["pico-tcp-half-close"], open_timeout=5) as ws:
                ws.send(b"before")
                self.assertEqual(ws.recv(timeout=5), b"before")
                entry.process.terminate()
                time.sleep(12)
                self.assertIsNone(entry.process.poll(), "the entry node waits for the relayed connection")
                ws.send(b"after")
                self.assertEqual(ws.recv(timeout=5), b"after")
                ws.send(b"")
                self.assertEqual(ws.recv(timeout=5), bye(b"beforeafter"))
            wait_until(lambda: entry.process.poll() is not None, timeout=10, what="the entry node's exit once the connection closed")
            self.assertEqual(entry.process.returncode, 0)
        finally:
            agent.kill()
            agent.wait()
            entry.stop()
            holder.stop()
            service.close()


if __name__ == "__main__":
    print(f"logs in {harness.TMP}")
    unittest.main(verbosity=2)
