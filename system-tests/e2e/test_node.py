"""End-to-end tests of `pico server` + `pico agent http` on loopback with real clients: curl,
http.client (keep-alive, chunked uploads), websockets, and prometheus_client's parser.

Run: python3 system-tests/e2e/test_node.py <path to the pico binary>
"""
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

import yaml

from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect as ws_connect

import harness
from harness import HERE, Node, free_port, read_until_closed, request, start_agent, start_backend, wait_until

harness.configure(sys.argv.pop(1) if len(sys.argv) > 1 else ".build/debug/pico")


def metric(node, family):
    """The first sample of metric family `family` (a counter's name without `_total`) on the
    node's /metrics, read with prometheus_client's parser."""
    body = node.admin_get("/metrics")[1].decode()
    families = {parsed.name: parsed for parsed in text_string_to_metric_families(body)}
    return families[family].samples[0].value


class ProxyTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend, cls.http_port, cls.ws_port = start_backend()
        cls.node = Node("--proxy.timeout", "2s")
        cls.agents = [start_agent(cls.node, "app", cls.http_port), start_agent(cls.node, "ws", cls.ws_port),
                      start_agent(cls.node, "dead", free_port())]

    @classmethod
    def tearDownClass(cls):
        for agent in cls.agents:
            agent.kill()
        cls.node.stop()
        cls.backend.kill()

    def test_curl_getsTheBackendsAnswer_byHostLabel(self):
        out = subprocess.run(["curl", "-s", "-H", "Host: app.example.com", f"http://127.0.0.1:{self.node.proxy}/"], capture_output=True, timeout=10)
        self.assertEqual(out.stdout, b"hello from backend")

    def test_keepAlive_servesManyRequestsOnOneConnection(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.node.proxy, timeout=10)
        for index in range(50):
            connection.request("GET", f"/bytes/{index}", headers={"x-pico-endpoint": "app"})
            response = connection.getresponse()
            self.assertEqual((response.status, response.read()), (200, b"x" * index))
        self.assertIsNotNone(connection.sock, "the connection stayed open")

    def test_chunkedUpload_andLargeDownload_streamIntact(self):
        payload = os.urandom(3 * 1024 * 1024)
        chunks = (payload[i:i + 65536] for i in range(0, len(payload), 65536))
        connection = http.client.HTTPConnection("127.0.0.1", self.node.proxy, timeout=30)
        connection.request("POST", "/echo", body=chunks, headers={"x-pico-endpoint": "app"}, encode_chunked=True)
        response = connection.getresponse()
        self.assertEqual(response.status, 200)
        self.assertEqual(hashlib.sha256(response.read()).hexdigest(), hashlib.sha256(payload).hexdigest())
        status, body, _ = request(self.node, "GET", "/bytes/10000000", timeout=30)
        self.assertEqual((status, len(body)), (200, 10_000_000))

    def test_forwardingHeaders_areAdded_andHopByHopRemoved(self):
        status, body, _ = request(self.node, "GET", "/headers", headers={
            "Connection": "keep-alive, X-Drop", "X-Drop": "1", "Host": "app.example.com",
            "X-Forwarded-Host": "evil.example.com", "X-Forwarded-Proto": "https"})
        text = body.decode()
        self.assertEqual(status, 200)
        self.assertIn("x-forwarded-for: 127.0.0.1\n", text)
        # What the node saw, not what the client claimed.
        self.assertIn("x-forwarded-proto: http\n", text)
        self.assertIn("x-forwarded-host: app.example.com\n", text)
        self.assertNotIn("evil", text)
        self.assertNotIn("https", text)
        # The hop mark is for peers only; the backend never sees it.
        self.assertNotIn("x-pico-forward", text)
        self.assertNotIn("x-drop", text)

    def raw_exchange(self, data, timeout=5):
        """Sends `data` in one write and reads until the node closes; (seconds taken, bytes)."""
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.node.proxy), timeout=timeout) as client:
            client.sendall(data)
            return time.monotonic() - started, read_until_closed(client)

    def test_bareLineBreaks_areRefusedAtOnce_notAfterTheHeaderTimeout(self):
        chunked = b"POST /echo HTTP/1.1\r\nHost: app.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n"
        for data in (b"GET / HTTP/1.1\nHost: app.example.com\n\n", b"GET / HTTP/1.1\r\nHost: app.example.com\nX: 1\r\n\r\n", chunked):
            seconds, answer = self.raw_exchange(data)
            self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), answer[:80])
            self.assertLess(seconds, 2, "refused at once (the header timeout is 10 s)")

    def test_absoluteFormTarget_reachesTheBackendInOriginForm_withHostFromTheAuthority(self):
        _, answer = self.raw_exchange(b"GET http://app.example.com/headers?x=1 HTTP/1.1\r\nHost: other.example.com\r\nConnection: close\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:80])
        self.assertIn(b"host: app.example.com\n", answer)
        self.assertIn(b"x-forwarded-host: app.example.com\n", answer)
        _, refused = self.raw_exchange(b"GET http://user@app.example.com/ HTTP/1.1\r\nHost: app.example.com\r\n\r\n")
        self.assertTrue(refused.startswith(b"HTTP/1.1 400 "), refused[:80])

    def test_repeatedContentLength_reachesTheBackendAsOneField_andDifferingOnesAre400(self):
        for fields in (b"Content-Length: 2, 2\r\n", b"Content-Length: 2\r\nContent-Length: 2\r\n"):
            _, answer = self.raw_exchange(b"POST /headers-post HTTP/1.1\r\nHost: app.example.com\r\n" + fields + b"Connection: close\r\n\r\nhi")
            self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:80])
            self.assertEqual(answer.count(b"content-length: 2\n"), 1, answer)
            self.assertNotIn(b"2, 2", answer)
        _, refused = self.raw_exchange(b"POST / HTTP/1.1\r\nHost: app.example.com\r\nContent-Length: 2, 3\r\n\r\nhi")
        self.assertTrue(refused.startswith(b"HTTP/1.1 400 "), refused[:80])

    def test_framingFieldsInTrailers_neverReachTheBackend(self):
        data = (b"POST /trailers HTTP/1.1\r\nHost: app.example.com\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                b"2\r\nhi\r\n0\r\nContent-Length: 99\r\nX-Checksum: abc\r\nHost: evil\r\n\r\n")
        _, answer = self.raw_exchange(data)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:80])
        self.assertIn(b"x-checksum: abc\n", answer)
        self.assertNotIn(b"content-length: 99", answer)
        self.assertNotIn(b"evil", answer)

    def test_errors_havePikosCodesAndBodies(self):
        status, body, response = request(self.node, "GET", "/", endpoint=None, headers={"Host": "localhost"})
        self.assertEqual((status, json.loads(body)), (400, {"error": "missing endpoint id"}))
        self.assertEqual(response.getheader("Content-Type"), "application/json")
        status, body, _ = request(self.node, "GET", "/", endpoint="nobody")
        self.assertEqual((status, json.loads(body)), (502, {"error": "no available upstreams"}))
        status, body, _ = request(self.node, "GET", "/slow?s=4")
        self.assertEqual((status, json.loads(body)), (504, {"error": "upstream timeout"}))
        status, body, _ = request(self.node, "GET", "/", endpoint="dead")
        self.assertEqual((status, json.loads(body)), (502, {"error": "upstream unreachable"}))

    def test_pikosNames_reachTheSameUpstreams_andDisagreeingNamesAre400(self):
        status, body, _ = request(self.node, "GET", "/", endpoint=None, headers={"x-piko-endpoint": "app"})
        self.assertEqual((status, body), (200, b"hello from backend"))
        status, body, _ = request(self.node, "GET", "/", headers={"x-piko-endpoint": "app"})
        self.assertEqual((status, body), (200, b"hello from backend"))
        status, body, _ = request(self.node, "GET", "/", headers={"x-piko-endpoint": "ws"})
        self.assertEqual((status, json.loads(body)), (400, {"error": "x-pico-endpoint and x-piko-endpoint name different endpoints"}))
        for path in ("/_piko/v1/other", "/_pico/anything"):
            status, body, _ = request(self.node, "GET", path)
            self.assertEqual((status, json.loads(body)), (404, {"error": "not found"}), path)
        # The TCP route is reserved too, and answers a plain GET with what it needs.
        status, body, _ = request(self.node, "GET", "/_piko/v1/tcp/app")
        self.assertEqual(status, 426)
        self.assertTrue(json.loads(body)["error"].startswith("the TCP route needs a WebSocket handshake"))
        # An agent's handshake on Piko's upstream path is taken like one on Pico's.
        tokens = {"x-pico-authorization": "Bearer a", "x-piko-authorization": "Bearer b"}
        for path, extra, expected in (("/piko/v1/upstream/piko-named", {}, 101), ("/pico/v1/upstream/pico-named", {}, 101),
                                      ("/piko/v1/upstream/", {}, 400), ("/piko/v1/upstream/a/b", {}, 400), ("/piko/v2/upstream/x", {}, 404),
                                      ("/piko/v1/upstream/two-tokens", tokens, 101)):  # no upstream auth: only headers
            connection = http.client.HTTPConnection("127.0.0.1", self.node.upstream, timeout=10)
            connection.request("GET", path, headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13", **extra})
            self.assertEqual(connection.getresponse().status, expected, path)
            connection.close()

    def raw(self, data):
        with socket.create_connection(("127.0.0.1", self.node.proxy), timeout=10) as s:
            s.sendall(data)
            return read_until_closed(s)

    def test_hostileRequests_areRefused_andTheNodeKeepsServing(self):
        self.assertTrue(self.raw(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431"))
        smuggle = b"POST / HTTP/1.1\r\nHost: app.x.y\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        self.assertTrue(self.raw(smuggle).startswith(b"HTTP/1.1 400"))
        self.assertTrue(self.raw(b"POST / HTTP/1.1\r\nHost: app.x.y\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").startswith(b"HTTP/1.1 400"))
        self.assertTrue(self.raw(b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400"))
        self.assertEqual(request(self.node, "GET", "/")[0], 200)

    def test_webSocket_throughTheProxy_echoes(self):
        with ws_connect(f"ws://127.0.0.1:{self.node.proxy}/", additional_headers={"x-pico-endpoint": "ws"}) as websocket:
            for message in ["hello", "x" * 100000, b"\x00\x01binary"]:
                websocket.send(message)
                self.assertEqual(websocket.recv(timeout=10), message)
        # Closed from both sides: the connection and its request are finished, not left half-open.
        wait_until(lambda: b"pico_proxy_requests_in_flight 0" in self.node.admin_get("/metrics")[1], what="the upgraded request to end")

    def test_webSocket_clientThatFinishesBeforeThe101_hasItsEndPassedOn_andTheConnectionEnds(self):
        # The client half-closes right after its upgrade request: the upgrade is accepted after
        # that, and the WebSocket server must still learn that the client finished (it then
        # closes, and so does Pico's connection), rather than wait for good.
        connection = socket.create_connection(("127.0.0.1", self.node.proxy), timeout=10)
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nx-pico-endpoint: ws\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        connection.shutdown(socket.SHUT_WR)
        answer = read_until_closed(connection)
        connection.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 101"), answer)
        wait_until(lambda: b"pico_proxy_requests_in_flight 0" in self.node.admin_get("/metrics")[1], what="the upgraded request to end")

    def test_metrics_parseWithPrometheusClient(self):
        request(self.node, "GET", "/")
        status, body = self.node.admin_get("/metrics")
        self.assertEqual(status, 200)
        families = {family.name: family for family in text_string_to_metric_families(body.decode())}
        for name in ["pico_proxy_requests", "pico_proxy_request_latency_seconds", "pico_proxy_requests_in_flight",
                     "pico_upstreams_connected_upstreams", "pico_upstreams_registered_endpoints", "process_resident_memory_bytes",
                     "process_open_fds", "process_cpu_seconds"]:
            self.assertIn(name, families)
        self.assertGreaterEqual(families["pico_upstreams_connected_upstreams"].samples[0].value, 3)

    def test_statusRoutes_haveTheExpectedShapes(self):
        nodes = json.loads(self.node.admin_get("/status/cluster/nodes")[1])
        self.assertEqual(len(nodes), 1)
        self.assertEqual(set(nodes[0]), {"id", "status", "incarnation", "proxy_addr", "admin_addr", "endpoints", "upstreams", "last_heard"})
        self.assertIsNone(nodes[0]["last_heard"], "a node does not hear itself")
        local = json.loads(self.node.admin_get("/status/cluster/nodes/local")[1])
        self.assertEqual(local["endpoints"], {"app": 1, "dead": 1, "ws": 1})
        self.assertEqual(self.node.admin_get(f"/status/cluster/nodes/{local['id']}")[0], 200)
        self.assertEqual(self.node.admin_get("/status/cluster/nodes/nope")[0], 404)
        self.assertEqual(self.node.admin_get(f"/status/upstream/endpoints?forward={local['id']}")[0], 200)
        self.assertEqual(self.node.admin_get("/status/upstream/endpoints?forward=unknown")[0], 404)
        self.assertEqual(self.node.admin_get("/health")[0], 200)

    def status(self, *words):
        out = subprocess.run([harness.PICO, "status", *words, "--server.url", f"http://127.0.0.1:{self.node.admin}"], capture_output=True, text=True, timeout=20)
        return out.returncode, out.stdout, out.stderr

    def test_statusCli_printsTablesJsonAndYaml_ofTheAdminRoutes(self):
        for words, route in [(["cluster", "nodes"], "/status/cluster/nodes"), (["cluster", "node", "local"], "/status/cluster/nodes/local"),
                             (["upstream", "endpoints"], "/status/upstream/endpoints"), (["gossip", "nodes"], "/status/gossip/nodes")]:
            expected = json.loads(self.node.admin_get(route)[1])
            code, out, _ = self.status(*words, "-o", "json")
            self.assertEqual((code, json.loads(out)), (0, expected), words)
            code, out, _ = self.status(*words, "-o", "yaml")
            self.assertEqual((code, yaml.safe_load(out)), (0, expected), words)
        code, table, _ = self.status("upstream", "endpoints")
        self.assertEqual(code, 0)
        rows = [line.split() for line in table.splitlines()]
        self.assertEqual(rows[0], ["ENDPOINT", "UPSTREAMS"])
        self.assertIn(["app", "1"], rows)
        code, table, _ = self.status("cluster", "nodes", "--status", "active")
        header, row = table.splitlines()
        self.assertEqual(header.split(), ["ID", "STATUS", "INCARNATION", "PROXY_ADDR", "ADMIN_ADDR", "ENDPOINTS", "UPSTREAMS", "LAST_HEARD"])
        self.assertEqual(row.split()[1:], ["active", "0", f"127.0.0.1:{self.node.proxy}", f"127.0.0.1:{self.node.admin}", "3", "3", "-"])
        self.assertEqual(header.index("STATUS"), row.index("active"), "columns are aligned")
        code, _, error = self.status("cluster", "node", "nope")
        self.assertEqual(code, 1)
        self.assertIn("404", error)
        out = subprocess.run([harness.PICO, "status", "gossip", "nodes", "--server.url", f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 1)
        self.assertIn("cannot reach the node", out.stderr)


class EventLoopTests(unittest.TestCase):
    """A node with two event loops: client connections move to the loop of their tunnel."""

    @classmethod
    def setUpClass(cls):
        cls.backend, cls.http_port, cls.ws_port = start_backend()
        cls.node = Node("--event-loops", "2")
        cls.agents = [start_agent(cls.node, "app", cls.http_port), start_agent(cls.node, "ws", cls.ws_port)]

    @classmethod
    def tearDownClass(cls):
        for agent in cls.agents:
            agent.kill()
        cls.node.stop()
        cls.backend.kill()

    def metric(self, name):
        return metric(self.node, name)

    def test_connectionsOnEitherLoop_reachTheTunnel_withBodiesPipeliningAndWebSockets(self):
        payload = os.urandom(300_000)
        for index in range(8):
            connection = http.client.HTTPConnection("127.0.0.1", self.node.proxy, timeout=10)
            for _ in range(3):
                connection.request("GET", f"/bytes/{index}", headers={"x-pico-endpoint": "app"})
                response = connection.getresponse()
                self.assertEqual((response.status, response.read()), (200, b"x" * index))
                connection.request("POST", "/echo", body=payload, headers={"x-pico-endpoint": "app"})
                response = connection.getresponse()
                self.assertEqual((response.status, response.read() == payload), (200, True))
            connection.close()
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", self.node.proxy), timeout=10) as s:
                s.sendall(b"GET /bytes/3 HTTP/1.1\r\nHost: app.x\r\n\r\nGET /bytes/4 HTTP/1.1\r\nHost: app.x\r\nConnection: close\r\n\r\n")
                received = read_until_closed(s)
                self.assertEqual(received.count(b"HTTP/1.1 200"), 2)
                self.assertTrue(received.endswith(b"xxxx"))
            with ws_connect(f"ws://127.0.0.1:{self.node.proxy}/", additional_headers={"x-pico-endpoint": "ws"}) as websocket:
                websocket.send("moved")
                self.assertEqual(websocket.recv(timeout=10), "moved")
        self.assertGreater(self.metric("pico_proxy_connection_moves"), 0, "some connections moved to their tunnel's loop")
        wait_until(lambda: self.metric("pico_proxy_requests_in_flight") == 0, what="nothing in flight")

    def test_concurrentClients_allServed(self):
        failures = []

        def client():
            for _ in range(25):
                try:
                    status, body, _ = request(self.node, "GET", "/bytes/100")
                    if (status, len(body)) != (200, 100):
                        failures.append(status)
                except OSError as error:
                    failures.append(repr(error))

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(failures, [])


class FailureTests(unittest.TestCase):
    def setUp(self):
        self.backend, self.http_port, self.ws_port = start_backend()

    def tearDown(self):
        self.backend.kill()

    def test_agentKilledMidRequest_fails502_thenARestartedAgentServes(self):
        node = Node()
        try:
            agent = start_agent(node, "app", self.http_port)
            threading.Timer(0.5, agent.kill).start()
            status, body, _ = request(node, "GET", "/slow?s=3")
            self.assertEqual((status, json.loads(body)), (502, {"error": "upstream unreachable"}))
            wait_until(lambda: node.endpoints().get("app", 0) == 0, what="the dead tunnel to leave the registry")
            agent = start_agent(node, "app", self.http_port)
            self.assertEqual(request(node, "GET", "/")[:2], (200, b"hello from backend"))
            agent.kill()
        finally:
            node.stop()

    def test_silentAgent_isDroppedByKeepalive_andRejoinsWhenItWakes(self):
        # SIGSTOP keeps the agent's socket open but unanswered, like a host that vanished.
        node = Node("--upstream.keepalive-interval", "300ms", "--upstream.keepalive-timeout", "300ms")
        try:
            agent = start_agent(node, "app", self.http_port)
            agent.send_signal(signal.SIGSTOP)
            started = time.time()
            wait_until(lambda: node.endpoints().get("app", 0) == 0, timeout=5, what="the silent tunnel to be dropped")
            self.assertLess(time.time() - started, 2)
            self.assertEqual(request(node, "GET", "/")[0], 502)
            agent.send_signal(signal.SIGCONT)
            wait_until(lambda: node.endpoints().get("app", 0) == 1, timeout=10, what="the agent to reconnect")
            self.assertEqual(request(node, "GET", "/")[:2], (200, b"hello from backend"))
            agent.kill()
        finally:
            node.stop()

    def test_agentSigterm_finishesItsRequestInFlight_andExits0(self):
        node = Node()
        try:
            agent = start_agent(node, "app", self.http_port, "--grace-period", "10s")
            self.assert_sigterm_finishes_a_slow_request(node, agent)
        finally:
            node.stop()

    def assert_sigterm_finishes_a_slow_request(self, node, agent):
        """SIGTERM while a slow request is in flight: it is answered, the agent exits 0, and its
        tunnels leave the node."""
        outcome = {}
        in_flight = threading.Thread(target=lambda: outcome.update(answer=request(node, "GET", "/slow?s=1.5", timeout=15)[:2]))
        in_flight.start()
        time.sleep(0.4)
        agent.send_signal(signal.SIGTERM)
        self.assertEqual(agent.wait(timeout=10), 0)
        in_flight.join()
        self.assertEqual(outcome["answer"], (200, b"slow done"))
        wait_until(lambda: node.endpoints().get("app", 0) == 0, what="the tunnels to leave")

    def test_agentWithTwoLoops_opensATunnelPerLoop_servesThroughBoth_andDrainsBothOnSigterm(self):
        node = Node()
        try:
            agent = start_agent(node, "app", self.http_port, "--event-loops", "2", "--grace-period", "10s")
            wait_until(lambda: node.endpoints().get("app", 0) == 2, what="a tunnel from each agent loop")
            answers = [request(node, "GET", f"/echo?n={index}")[:2] for index in range(40)]
            self.assertEqual([status for status, _ in answers], [200] * 40)
            self.assert_sigterm_finishes_a_slow_request(node, agent)
        finally:
            node.stop()

    def test_agentRefusedWith404_stopsWithTheNodesMessage_andExits1(self):
        node = Node()
        try:
            # The admin port has no upstream route: a 404, which retrying cannot fix.
            out = subprocess.run([harness.PICO, "agent", "http", "app", str(self.http_port), "--connect.url", f"http://127.0.0.1:{node.admin}"],
                                 capture_output=True, text=True, timeout=20)
            self.assertEqual(out.returncode, 1)
            self.assertIn("not retrying", out.stderr)
            self.assertIn("404", out.stderr)
        finally:
            node.stop()

    def test_nodeDrain_agentOpensItsNewTunnelBeforeTheOldCloses_andInFlightRequestsFinish(self):
        # Two nodes behind a readiness-aware balancer on the upstream port; the agent dials the
        # balancer. Node A drains: it tells the agent to move, the agent lands on B (A is not
        # ready) while A's request in flight finishes on the old tunnel.
        a, b = Node("--grace-period", "20s"), Node("--grace-period", "20s")
        balancer_port = free_port()
        balancer = subprocess.Popen([sys.executable, os.path.join(HERE, "balancer.py"), str(balancer_port),
                                     f"{a.upstream}:{a.admin}", f"{b.upstream}:{b.admin}"])
        agent = None
        try:
            wait_until(lambda: socket.create_connection(("127.0.0.1", balancer_port), timeout=1).close() is None, what="balancer")
            log = open(os.path.join(harness.TMP, f"agent-move-{a.proxy}.log"), "w")
            agent = subprocess.Popen([harness.PICO, "agent", "http", "app", str(self.http_port), "--connect.url", f"http://127.0.0.1:{balancer_port}", "--event-loops", "1"], stderr=log)
            wait_until(lambda: a.endpoints().get("app", 0) == 1, what="the agent on node A")
            self.assertEqual(b.endpoints(), {})
            outcome = {}

            def slow():
                outcome["answer"] = request(a, "GET", "/slow?s=2", timeout=15)[:2]

            in_flight = threading.Thread(target=slow)
            in_flight.start()
            time.sleep(0.3)
            a.process.send_signal(signal.SIGTERM)
            wait_until(lambda: b.endpoints().get("app", 0) == 1, timeout=10, what="the new tunnel on node B")
            self.assertIsNone(a.process.poll(), "node A is still draining when the new tunnel is up")
            in_flight.join()
            self.assertEqual(outcome["answer"], (200, b"slow done"))
            self.assertEqual(a.process.wait(timeout=20), 0)
            self.assertEqual(request(b, "GET", "/")[:2], (200, b"hello from backend"))
            self.assertEqual(agent.poll(), None, "the agent kept running")
        finally:
            if agent:
                agent.kill()
            balancer.kill()
            a.stop()
            b.stop()

    def test_sigterm_duringSteadyTraffic_completesAcceptedRequests_andExits0(self):
        node = Node("--grace-period", "10s")
        agent = start_agent(node, "app", self.http_port)
        results = []
        stop = threading.Event()

        sigterm_at = [float("inf")]

        def client():
            while not stop.is_set():
                started = time.time()
                try:
                    status, body, _ = request(node, "GET", "/slow?s=0.05", timeout=15)
                    results.append((started, status))
                except ConnectionRefusedError:
                    results.append((started, "refused"))
                    time.sleep(0.05)
                except (ConnectionResetError, http.client.RemoteDisconnected, TimeoutError) as error:
                    results.append((started, f"broken: {error!r}"))

        threads = [threading.Thread(target=client) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1)
        started = time.time()
        sigterm_at[0] = started
        node.process.send_signal(signal.SIGTERM)
        status = node.process.wait(timeout=20)
        elapsed = time.time() - started
        stop.set()
        for thread in threads:
            thread.join()
        agent.kill()
        # Every request sent before SIGTERM (the node turns unready at once) is answered in full.
        before = [outcome for at, outcome in results if at < sigterm_at[0]]
        self.assertEqual([outcome for outcome in before if outcome != 200], [], f"{len(before)} requests before SIGTERM")
        self.assertGreater(len(before), 20)
        # After it, the node keeps serving through its drain: nothing it accepted is cut off.
        after = [outcome for at, outcome in results if at >= sigterm_at[0]]
        # A single node has nowhere to move its agent: once its tunnel is handed back, a request
        # sent after SIGTERM may find no upstream (502) until the node exits.
        unexpected = [outcome for outcome in after if outcome not in (200, 502, "refused") and not str(outcome).startswith("broken")]
        self.assertEqual(unexpected, [])
        self.assertGreater(after.count(200), 0, "the node served during its drain")
        self.assertEqual(status, 0)
        self.assertLess(elapsed, 10)

    def test_aBodyThatStalls_afterALocalAnswer_closesTheConnection_andNothingAfterItIsARequest(self):
        node = Node("--proxy.http.read-timeout", "1s")
        try:
            connection = socket.create_connection(("127.0.0.1", node.proxy), timeout=6)
            connection.sendall(b"POST /_pico/x HTTP/1.1\r\nHost: app.example\r\nContent-Length: 100\r\n\r\n0123456789")
            self.assertTrue(connection.recv(65536).startswith(b"HTTP/1.1 404"))
            time.sleep(2.5)
            try:
                connection.sendall(b"GET /_pico/smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n")
                rest = read_until_closed(connection)
            except OSError:
                rest = b""  # reset: closed with the late bytes unread
            self.assertNotIn(b"HTTP/1.1", rest, "the stalled body's connection closed; no second request was read")
            wait_until(lambda: metric(node, "pico_proxy_requests_in_flight") == 0, timeout=5, what="no request left in flight")
        finally:
            node.stop()

    def test_aRequestWithABody_doesNotWaitForAHolder_soNoBodyByteIsLost(self):
        node = Node("--proxy.upstream-wait", "10s")
        try:
            connection = socket.create_connection(("127.0.0.1", node.proxy), timeout=6)
            connection.sendall(b"POST /echo HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nAAAAA\r\n")
            answer = connection.recv(65536)
            self.assertTrue(answer.startswith(b"HTTP/1.1 502"), answer)
            self.assertIn(b"no available upstreams", answer)
            connection.close()
        finally:
            node.stop()

    def test_aBodylessRequest_waitsForAHolder_andIsServedWhenAnAgentConnects(self):
        # Four event loops: most waiting connections sit on another loop than the tunnel's and
        # move there once it appears; each request counts once as waited all the same.
        node = Node("--proxy.upstream-wait", "5s", "--event-loops", "4")
        try:
            results = []
            threads = [threading.Thread(target=lambda: results.append(request(node, "GET", "/"))) for _ in range(8)]
            for thread in threads:
                thread.start()
            time.sleep(0.5)
            agent = start_agent(node, "app", self.http_port)
            for thread in threads:
                thread.join(timeout=10)
            self.assertEqual([answer[:2] for answer in results], [(200, b"hello from backend")] * 8)
            self.assertGreater(metric(node, "pico_proxy_connection_moves"), 0)
            self.assertEqual(metric(node, "pico_proxy_requests_waited"), 8)
            agent.kill()
        finally:
            node.stop()

    def test_aTimedOutTunnelStream_isNoLongerInFlight_soTheDrainEndsPromptly(self):
        node = Node("--proxy.timeout", "1s", "--grace-period", "30s")
        agent = start_agent(node, "app", self.http_port)
        try:
            self.assertEqual(request(node, "GET", "/slow?s=3")[0], 504)
            time.sleep(0.5)
            started = time.monotonic()
            node.process.send_signal(signal.SIGTERM)
            node.process.wait(timeout=60)
            self.assertLess(time.monotonic() - started, 15, "the drain did not wait for a request that had ended")
        finally:
            agent.kill()
            node.stop()


class SettingsTests(unittest.TestCase):
    """Server settings that change what the node does on the wire and in its logs."""

    def setUp(self):
        self.backend, self.http_port, self.ws_port = start_backend()
        self.processes = []

    def tearDown(self):
        for process in self.processes:
            process.kill()
        self.backend.kill()

    def node(self, *flags, bind_host="127.0.0.1"):
        node = Node(*flags, bind_host=bind_host)
        self.processes.append(node.process)
        self.processes.append(start_agent(node, "app", self.http_port))
        return node

    def test_accessLog_showsOnlyAllowedRequestHeaders_andNoBlockedResponseHeaders(self):
        node = self.node("--proxy.access-log.request-headers.allow-list", "x-trace,host",
                         "--proxy.access-log.response-headers.block-list", "content-length")
        status, _, _ = request(node, "GET", "/bytes/5", headers={"X-Trace": "t-1", "Authorization": "Bearer secret"})
        self.assertEqual(status, 200)
        request(node, "GET", "/_pico/anything")
        node.process.send_signal(signal.SIGTERM)
        node.process.wait(timeout=20)
        with open(node.log.name) as log:
            lines = [json.loads(line) for line in log if line.startswith("{")]
        records = [line for line in lines if line.get("msg") == "request"]
        self.assertEqual(len(records), 1, "one access-log line; /_pico paths are not logged")
        record = records[0]
        self.assertEqual((record["level"], record["subsystem"]), ("info", "proxy.access"))
        self.assertEqual(record["request"]["request_headers"], {"Host": f"127.0.0.1:{node.proxy}", "X-Trace": "t-1"})
        self.assertEqual(record["request"]["path"], "/bytes/5")
        self.assertNotIn("Content-Length", record["request"]["response_headers"])
        self.assertNotIn("content-length", record["request"]["response_headers"])
        self.assertTrue(record["request"]["response_headers"], "other response headers are shown")

    def test_writeTimeout_closesAClientThatStopsReading_andOthersAreServed(self):
        node = self.node("--proxy.http.write-timeout", "1s")
        with socket.socket() as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(("127.0.0.1", node.proxy))
            stalled.sendall(b"GET /bytes/40000000 HTTP/1.1\r\nHost: app.example\r\n\r\n")
            time.sleep(1)
            self.assertEqual(request(node, "GET", "/")[:2], (200, b"hello from backend"))
            time.sleep(3)
            received = 0
            stalled.settimeout(10)
            try:
                while True:
                    piece = stalled.recv(1 << 20)
                    if not piece:
                        break
                    received += len(piece)
            except ConnectionResetError:
                pass
        self.assertLess(received, 40_000_000, "the node gave up on the stalled client")
        self.assertEqual(request(node, "GET", "/")[:2], (200, b"hello from backend"))

    def test_agentStart_servesEveryListenerOfItsConfigFile(self):
        node = Node()
        self.processes.append(node.process)
        config = os.path.join(harness.TMP, f"agent-{node.proxy}.yaml")
        with open(config, "w") as f:
            f.write(f"connect:\n  url: http://127.0.0.1:${{UPSTREAM_PORT}}\nlisteners:\n"
                    f"  - endpoint_id: one\n    addr: {self.http_port}\n    timeout: 1s\n"
                    f"  - endpoint_id: two\n    addr: 127.0.0.1:{self.http_port}\n    timeout: 5s\n")
        log = open(os.path.join(harness.TMP, f"agent-start-{node.proxy}.log"), "w")
        agent = subprocess.Popen([harness.PICO, "agent", "start", "--config.path", config, "--config.expand-env", "--event-loops", "1"], stderr=log,
                                 env={**os.environ, "UPSTREAM_PORT": str(node.upstream)})
        self.processes.append(agent)
        wait_until(lambda: node.endpoints() == {"one": 1, "two": 1}, what="both listeners")
        self.assertEqual(request(node, "GET", "/", endpoint="one")[:2], (200, b"hello from backend"))
        self.assertEqual(request(node, "GET", "/", endpoint="two")[:2], (200, b"hello from backend"))
        status, body, _ = request(node, "GET", "/slow?s=2", endpoint="one")
        self.assertEqual((status, json.loads(body)), (504, {"error": "upstream timeout"}), "listener one's own 1s timeout")
        self.assertEqual(request(node, "GET", "/slow?s=2", endpoint="two")[0], 200)
        bad = subprocess.run([harness.PICO, "agent", "start", "--config.path", config, "--config.expand-env", "--timeout", "1s"], capture_output=True, text=True,
                             timeout=10, env={**os.environ, "UPSTREAM_PORT": str(node.upstream)})
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--timeout applies to `pico agent http`", bad.stderr)

    def test_readTimeout_answers408ToAStalledBody_andMaxHeaderBytes_bound431(self):
        node = self.node("--proxy.http.read-timeout", "1s", "--proxy.http.max-header-bytes", "2048")
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as s:
            started = time.time()
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: app.example\r\nContent-Length: 100\r\n\r\n0123456789")
            answer = s.recv(65536)
            self.assertTrue(answer.startswith(b"HTTP/1.1 408"), answer[:80])
            self.assertIn(b"request body timeout", answer)
            self.assertLess(time.time() - started, 5)
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: app.example\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n")
            self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 431"))
        status, body, _ = request(node, "POST", "/echo", body=b"z" * 100_000, headers={"X-Small": "a" * 1000})
        self.assertEqual((status, len(body)), (200, 100_000))

    def test_aClientWaitingFor100Continue_isNotTimedOut_whileTheUpstreamTakesLongerThanTheReadTimeout(self):
        node = self.node("--proxy.http.read-timeout", "1s")
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as s:
            started = time.time()
            s.sendall(b"POST /slow-continue?s=2 HTTP/1.1\r\nHost: app.x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
            interim = s.recv(65536)
            self.assertTrue(interim.startswith(b"HTTP/1.1 100"), interim[:80])
            self.assertGreater(time.time() - started, 1.5, "the upstream's own 100, not an answer of Pico's")
            s.sendall(b"hel")
            time.sleep(0.3)
            s.sendall(b"lo")
            answer = read_until_closed(s)
            self.assertTrue(answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello"), answer[:80])
        # Once told to go on, the body owes its bytes within the read timeout again.
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as s:
            s.sendall(b"POST /slow-continue?s=0.1 HTTP/1.1\r\nHost: app.x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 100"))
            started = time.time()
            answer = read_until_closed(s)
            self.assertTrue(answer.startswith(b"HTTP/1.1 408") and b"request body timeout" in answer, answer[:80])
            self.assertLess(time.time() - started, 5)

    def test_anIdleTimeout_afterAnAnswerASlowReaderHasNotTakenYet_stillDeliversItWhole(self):
        # Readers that take nothing for longer than the idle timeout, with answers from 1 to 6 MiB:
        # some answers end (and the idle clock starts) while their tail still waits in Pico's
        # queue, where the socket buffers end (about 2.7 MiB on this host; the sweep finds it
        # wherever it is).
        # (The write timeout is long: the readers are read one after another.)
        node = self.node("--proxy.http.idle-timeout", "1s", "--proxy.http.write-timeout", "60s")
        sizes = range(1 << 20, 6 << 20, 256 << 10)
        readers = []
        for size in sizes:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(20)
            s.connect(("127.0.0.1", node.proxy))
            s.sendall(f"GET /bytes/{size} HTTP/1.1\r\nHost: app.x\r\n\r\n".encode())
            readers.append(s)
        time.sleep(3)
        for size, s in zip(sizes, readers):
            with s:
                head, _, body = read_until_closed(s).partition(b"\r\n\r\n")
                self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:80])
                self.assertEqual(len(body), size, f"a {size}-byte answer: the connection closed only once it was written")

    def test_expectContinue_connectionCap_andHeadAndIdleTimeouts(self):
        node = self.node("--proxy.http.max-connections", "3", "--proxy.http.idle-timeout", "1s", "--proxy.http.read-header-timeout", "1s")

        # Expect: 100-continue: the backend's 100 comes back before the body is sent.
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: app.x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
            self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 100"))
            s.sendall(b"hello")
            answer = read_until_closed(s)
            self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:60])
            self.assertTrue(answer.endswith(b"hello"))
        # At most three client connections: a fourth is told so, not left hanging.
        held = [socket.create_connection(("127.0.0.1", node.proxy), timeout=10) for _ in range(3)]
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as s:
            self.assertIn(b"too many connections", read_until_closed(s))
        # The idle timeout closes silent connections; a started head that stalls gets 408.
        started = time.time()
        held[1].sendall(b"GET / HTTP/1.1\r\nHost: app")
        self.assertEqual(read_until_closed(held[0]), b"")
        self.assertLess(time.time() - started, 5)
        self.assertTrue(read_until_closed(held[1]).startswith(b"HTTP/1.1 408"))
        for s in held:
            s.close()
        wait_until(lambda: request(node, "GET", "/")[0] == 200, what="the node to serve again")

    def test_wildcardBind_advertisesANonLoopbackAddress(self):
        addresses = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
        if not addresses:
            self.skipTest("this host has no non-loopback address")
        node = self.node(bind_host="0.0.0.0")
        local = json.loads(node.admin_get("/status/cluster/nodes/local")[1])
        host, _, port = local["proxy_addr"].rpartition(":")
        self.assertIn(host.strip("[]"), addresses)
        self.assertEqual(int(port), node.proxy)
        admin_host, _, admin_port = local["admin_addr"].rpartition(":")
        self.assertEqual((admin_host, int(admin_port)), (host, node.admin))


if __name__ == "__main__":
    print(f"logs in {harness.TMP}")
    unittest.main(verbosity=2)
