"""End-to-end tests of TCP tunnels: `pico agent tcp` in front of a TCP service, `pico forward tcp`
in front of plain socket clients, and Python `websockets` clients on the proxy port's TCP route
(`/_pico/v1/tcp/<endpoint>` and Piko's `/_piko/v1/tcp/<endpoint>`), on one node and through a
cluster of two.

Run: python3 system-tests/e2e/test_tcp.py <path to the pico binary>
"""
import hashlib
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
from harness import Node, free_port, read_until_closed, wait_until

harness.configure(sys.argv.pop(1) if len(sys.argv) > 1 else ".build/debug/pico")


class EchoService:
    """A TCP service on a free port: echoes what it reads; when the client ends its direction it
    answers `BYE <bytes read> <sha256 of them>` and ends its own."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.serve, args=(connection,), daemon=True).start()

    @staticmethod
    def serve(connection):
        digest, count = hashlib.sha256(), 0
        with connection:
            try:
                while True:
                    piece = connection.recv(65536)
                    if not piece:
                        break
                    digest.update(piece)
                    count += len(piece)
                    connection.sendall(piece)
                connection.sendall(f"BYE {count} {digest.hexdigest()}".encode())
                connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self):
        self.server.close()


def start_tcp_agent(node, endpoint, port, *flags):
    log = open(os.path.join(harness.TMP, f"agent-tcp-{endpoint}-{port}.log"), "a")
    process = subprocess.Popen([harness.PICO, "agent", "tcp", endpoint, str(port), "--connect.url", f"http://{node.host}:{node.upstream}",
                                "--event-loops", "1", *flags], stderr=log)
    wait_until(lambda: node.endpoints().get(endpoint, 0) >= 1, what=f"tcp agent for {endpoint}")
    return process, log.name


def start_forward(node, endpoint, *flags):
    """`pico forward tcp` on a free port to `endpoint` through `node`: (process, port, log path)."""
    port = free_port()
    log_path = os.path.join(harness.TMP, f"forward-{endpoint}-{port}.log")
    process = subprocess.Popen([harness.PICO, "forward", "tcp", f"127.0.0.1:{port}", endpoint, "--connect.url", f"http://{node.host}:{node.proxy}", *flags],
                               stderr=open(log_path, "a"))
    wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None, what="forward listening")
    return process, port, log_path


def converse(port, payload, timeout=20):
    """Sends `payload` through the forward at `port`, ends the direction, and returns everything
    that came back until the far end closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        received = bytearray()

        def reader():
            while True:
                piece = sock.recv(65536)
                if not piece:
                    return
                received.extend(piece)

        thread = threading.Thread(target=reader)
        thread.start()
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        thread.join(timeout)
        return bytes(received)


def bye(payload):
    return f"BYE {len(payload)} {hashlib.sha256(payload).hexdigest()}".encode()


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


if __name__ == "__main__":
    print(f"logs in {harness.TMP}")
    unittest.main(verbosity=2)
