"""End-to-end tests of `pico server` nodes forming a cluster on loopback: gossip on real UDP and
TCP sockets, join by address and by name, crash detection, graceful leave, failed joins, and
hostile gossip input.

Run: python3 system-tests/e2e/test_cluster.py <path to the pico binary>
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

import hashlib

from prometheus_client.parser import text_string_to_metric_families

from websockets.sync.client import connect as ws_connect

import harness
from harness import Node, free_port, request, start_agent, start_backend, wait_until

harness.configure(sys.argv.pop(1) if len(sys.argv) > 1 else ".build/debug/pico")


def members(node):
    """{node id: status} as `node` sees the cluster."""
    return {row["id"]: row["status"] for row in json.loads(node.admin_get("/status/cluster/nodes")[1])}


def wait_forwarded_to(entry, holders):
    """Sends requests through `entry` until its metrics show forwards to every one of `holders`."""
    def forwarded():
        request(entry, "GET", "/bytes/1")
        metrics = entry.admin_get("/metrics")[1].decode()
        return all(f'pico_upstreams_remote_requests_total{{node_id="{node_id(node)}"}}' in metrics for node in holders)
    wait_until(forwarded, timeout=15, what="forwards to every holder")


def forward_retries(node):
    """`node`'s count of requests sent to another holder after a failed or unserved forward."""
    return [family for family in text_string_to_metric_families(node.admin_get("/metrics")[1].decode())
            if family.name == "pico_upstreams_forward_retries"][0].samples[0].value


class Front:
    """The `pico test cluster` balancer, addressed like a node."""
    host = "127.0.0.1"

    def __init__(self, base):
        self.proxy, self.upstream, self.admin = base, base + 1, base + 2

    def admin_get(self, path):
        return Node.admin_get(self, path)


def free_block():
    """A base port whose balancer ports (+0..+2) and node ports (+10..+43) are free now, below
    the kernel's ephemeral range (from 32768), so no outgoing connection can take one of them
    between this check and the nodes binding them."""
    for _ in range(50):
        base = random.randrange(20000, 32700, 100)
        ports = [base, base + 1, base + 2] + [base + 10 * i + j for i in range(1, 5) for j in range(4)]
        try:
            sockets = []
            for port in ports:
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                sockets.append(s)
            for s in sockets:
                s.close()
            return base
        except OSError:
            for s in sockets:
                s.close()
    raise AssertionError("no free block of ports")


def node_id(node):
    return json.loads(node.admin_get("/status/cluster/nodes/local")[1])["id"]


class CountingUpstream:
    """An HTTP upstream on a free port that counts the requests it received per path and
    answers `/slow?seconds=S` after S seconds; `arrived` is set when a slow request came in."""

    def __init__(self):
        import http.server
        owner = self
        self.hits = {}
        self.arrived = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path, _, query = self.path.partition("?")
                owner.hits[path] = owner.hits.get(path, 0) + 1
                if path == "/slow":
                    owner.arrived.set()
                    time.sleep(float(query.split("=")[1]))
                body = path.encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class ClusterTests(unittest.TestCase):
    def setUp(self):
        self.nodes = []

    def tearDown(self):
        for node in self.nodes:
            node.stop()

    def start(self, *flags):
        node = Node("--grace-period", "10s", *flags)
        self.nodes.append(node)
        return node

    def test_nodesJoinByAddressAndName_detectACrash_andSeeALeave(self):
        seed = self.start()
        # One joins by IP:port, one by a DNS name with a port (localhost: A and AAAA records).
        second = self.start("--cluster.join", f"127.0.0.1:{seed.gossip}")
        third = self.start("--cluster.join", f"localhost:{seed.gossip}")
        ids = {node_id(node): node for node in (seed, second, third)}
        started = time.time()
        for node in (seed, second, third):
            wait_until(lambda: set(members(node).values()) == {"active"} and len(members(node)) == 3, timeout=10, what="three active members")
        print(f"\n  three nodes converged in {time.time() - started:.2f} s")
        # A crash: SIGKILL, then every survivor declares it dead.
        crashed = node_id(third)
        third.process.kill()
        killed_at = time.time()
        for node in (seed, second):
            wait_until(lambda: members(node).get(crashed) == "dead", timeout=20, what="the crashed node declared dead")
        print(f"  crash detected everywhere in {time.time() - killed_at:.2f} s")
        # A graceful leave: SIGTERM, exit 0, and the survivor sees it left.
        leaving = node_id(second)
        second.process.send_signal(signal.SIGTERM)
        self.assertEqual(second.process.wait(timeout=20), 0)
        wait_until(lambda: members(seed).get(leaving) == "left", timeout=5, what="the leave seen")
        self.assertEqual(members(seed)[node_id(seed)], "active")
        self.assertEqual(set(ids), {node_id(seed), crashed, leaving})
        # Members show their incarnation and when this node last heard from them.
        rows = {row["id"]: row for row in json.loads(seed.admin_get("/status/cluster/nodes")[1])}
        self.assertIsNone(rows[node_id(seed)]["last_heard"])
        self.assertRegex(rows[leaving]["last_heard"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertGreaterEqual(rows[crashed]["incarnation"], 0)

    def test_requestsForAnEndpointElsewhere_areForwardedOnce_overReusedConnections(self):
        backend, http_port, ws_port = start_backend()
        agents = []
        try:
            entry = self.start()
            holder = self.start("--cluster.join", f"127.0.0.1:{entry.gossip}")
            other = self.start("--cluster.join", f"127.0.0.1:{entry.gossip}")
            agents = [start_agent(holder, "app", http_port), start_agent(other, "ws", ws_port), start_agent(holder, "dead", free_port())]
            wait_until(lambda: request(entry, "GET", "/bytes/3")[:2] == (200, b"xxx"), timeout=10, what="the endpoint known at the entry node")
            # Bodies both ways, through the forward hop.
            payload = os.urandom(2 * 1024 * 1024)
            status, body, _ = request(entry, "POST", "/echo", body=payload, timeout=30)
            self.assertEqual((status, hashlib.sha256(body).digest()), (200, hashlib.sha256(payload).digest()))
            # The entry node marks the hop for its peer; the holder appends the entry's address and
            # keeps the entry's X-Forwarded-Host; the mark never reaches the backend.
            status, body, _ = request(entry, "GET", "/headers", headers={"Host": "app.example.com", "X-Forwarded-Host": "evil.example.com"})
            self.assertIn(b"x-forwarded-for: 127.0.0.1, 127.0.0.1\n", body)
            self.assertIn(b"x-forwarded-host: app.example.com\n", body)
            self.assertNotIn(b"x-pico-forward", body)
            # A WebSocket through the hop to the third node.
            with ws_connect(f"ws://127.0.0.1:{entry.proxy}/", additional_headers={"x-pico-endpoint": "ws"}) as websocket:
                websocket.send("through a peer")
                self.assertEqual(websocket.recv(timeout=10), "through a peer")
            # Errors keep their meaning: the holder's own 502, nobody anywhere, never forwarded twice.
            # (The entry node learns of the "dead" endpoint by gossip; until then it answers
            # "no available upstreams" itself.)
            wait_until(lambda: json.loads(request(entry, "GET", "/", endpoint="dead")[1]) != {"error": "no available upstreams"},
                       timeout=10, what="the dead endpoint known at the entry node")
            status, body, _ = request(entry, "GET", "/", endpoint="dead")
            self.assertEqual((status, json.loads(body)), (502, {"error": "upstream unreachable"}))
            status, body, _ = request(entry, "GET", "/", endpoint="nowhere")
            self.assertEqual((status, json.loads(body)), (502, {"error": "no available upstreams"}))
            status, body, _ = request(entry, "GET", "/", headers={"x-pico-forward": "true"})
            self.assertEqual((status, json.loads(body)), (502, {"error": "no available upstreams"}))
            # Keep-alive to the peer: many requests, few connections.
            for _ in range(30):
                self.assertEqual(request(entry, "GET", "/bytes/1")[0], 200)
            connections = subprocess.run(["ss", "-tn", "state", "established", f"( dport = :{holder.proxy} )"], capture_output=True, text=True).stdout
            self.assertLessEqual(len(connections.strip().splitlines()) - 1, 4, connections)
            metrics = entry.admin_get("/metrics")[1].decode()
            self.assertIn(f'pico_upstreams_remote_requests_total{{node_id="{node_id(holder)}"}}', metrics)
            # The holder crashes: requests fail fast, then find nobody once it is declared dead.
            holder.process.kill()
            status, _, _ = request(entry, "GET", "/bytes/1")
            self.assertEqual(status, 502)
            wait_until(lambda: json.loads(request(entry, "GET", "/bytes/1")[1]) == {"error": "no available upstreams"}, timeout=20,
                       what="the dead holder no longer chosen")
        finally:
            for agent in agents:
                agent.kill()
            backend.kill()

    def test_aForwardRefusedByACrashedHolder_goesToAnotherHolder_beforeGossipDeclaresItDead(self):
        backend, http_port, _ = start_backend()
        agents = []
        try:
            entry = self.start()
            crashing = self.start("--cluster.join", f"127.0.0.1:{entry.gossip}")
            surviving = self.start("--cluster.join", f"127.0.0.1:{entry.gossip}")
            agents = [start_agent(crashing, "app", http_port), start_agent(surviving, "app", http_port)]
            wait_forwarded_to(entry, (crashing, surviving))
            crashed = node_id(crashing)
            crashing.process.kill()
            crashing.process.wait()
            started = time.time()
            statuses = [request(entry, "GET", "/bytes/2")[0] for _ in range(40)]
            self.assertEqual(statuses, [200] * 40, "every request reaches the surviving holder")
            self.assertNotEqual(members(entry).get(crashed), "dead", f"gossip had not yet declared the crash ({time.time() - started:.2f} s)")
            self.assertGreater(forward_retries(entry), 0)
        finally:
            for agent in agents:
                agent.kill()
            backend.kill()


    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("nft"), "needs root and nft to hold back gossip on loopback")
    def test_aForwardToAHolderWhoseLastTunnelJustClosed_goesToAnotherHolder(self):
        """A forward can reach a holder just after its last tunnel for the endpoint closed, before
        gossip tells the entry node (issue 24's lossy rollouts found it). The holder's 502 says
        the request reached no upstream there (`x-pico-unserved`), and the entry node sends it
        to the other holder instead of failing it. nftables holds back every gossip datagram and
        sync to the entry node meanwhile, so it still believes both hold the endpoint (its probes
        every 5 s keep it from suspecting either while the rules stand)."""
        backend, http_port, _ = start_backend()
        agents = []
        table = f"pico_e2e_{os.getpid()}"
        try:
            entry = self.start("--cluster.gossip.probe-interval", "5s")
            emptied = self.start("--cluster.join", f"127.0.0.1:{entry.gossip}")
            holding = self.start("--cluster.join", f"127.0.0.1:{entry.gossip}")
            agents = [start_agent(emptied, "app", http_port), start_agent(holding, "app", http_port)]
            wait_forwarded_to(entry, (emptied, holding))
            # The holder itself answers a forwarded request it has no tunnel for with the mark.
            status, _, headers = request(holding, "GET", "/", endpoint="nowhere", headers={"x-pico-forward": "true"})
            self.assertEqual((status, headers.getheader("x-pico-unserved")), (502, "1"))
            before = forward_retries(entry)
            nft = ["nft", "add", "rule", "inet", table, "input"]
            subprocess.run(["nft", "add", "table", "inet", table], check=True)
            subprocess.run(["nft", "add", "chain", "inet", table, "input", "{ type filter hook input priority 0; }"], check=True)
            subprocess.run(nft + ["udp", "dport", str(entry.gossip), "drop"], check=True)
            subprocess.run(nft + ["tcp", "dport", str(entry.gossip), "drop"], check=True)
            subprocess.run(nft + ["tcp", "sport", f"{{ {emptied.gossip}, {holding.gossip} }}", "drop"], check=True)
            agents[0].kill()
            agents[0].wait()
            wait_until(lambda: request(emptied, "GET", "/", endpoint="app", headers={"x-pico-forward": "true"})[0] == 502, timeout=5,
                       what="the emptied holder's tunnel gone")
            statuses = [request(entry, "GET", "/bytes/2")[0] for _ in range(20)]
            self.assertEqual(statuses, [200] * 20, "every request reaches the holder that still has a tunnel")
            self.assertGreater(forward_retries(entry), before, "some requests went to the emptied holder first")
        finally:
            subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True)
            for agent in agents:
                agent.kill()
            backend.kill()

    def test_aSlowUpstreamIsWaitedOut_butAHolderThatFellSilent_isLeftForAnother(self):
        """Forward heartbeats (issue 21 item 4): a holder heartbeats a forward while its upstream
        works, so the entry node waits out a 3 s answer (sent once, never retried), and when the
        holder falls silent (SIGSTOP) after the request reached it, the entry node sends the GET
        to the other holder after `proxy.forward_answer_timeout` instead of `proxy.timeout`. Then
        the other holder falls silent too while an agent connects to the entry node itself: the
        retry goes to that local tunnel on the same event loop (this once crashed the node: the
        forward's answer decoder was reused)."""
        upstreams = [CountingUpstream(), CountingUpstream(), CountingUpstream()]
        agents = []
        stopped = []
        try:
            entry = self.start("--event-loops", "1")
            holders = [self.start("--cluster.join", f"127.0.0.1:{entry.gossip}") for _ in range(2)]
            agents = [start_agent(holder, "app", upstream.port) for holder, upstream in zip(holders, upstreams)]

            def both_answered():
                request(entry, "GET", "/fast")
                metrics = entry.admin_get("/metrics")[1].decode()
                return all(f'pico_upstreams_remote_requests_total{{node_id="{node_id(node)}"}}' in metrics for node in holders)
            # Answered forwards teach the entry node that both holders heartbeat.
            wait_until(both_answered, timeout=15, what="forwards answered by both holders")

            started = time.time()
            status, body, response = request(entry, "GET", "/slow?seconds=3", timeout=20)
            self.assertEqual((status, body), (200, b"/slow"))
            self.assertGreaterEqual(time.time() - started, 3)
            self.assertIsNone(response.getheader("x-pico-heartbeat"), "the holder's mark stays between the nodes")
            self.assertEqual(sum(upstream.hits.get("/slow", 0) for upstream in upstreams), 1, "a slow upstream is not mistaken for a lost node")

            for upstream in upstreams:
                upstream.arrived.clear()
            before = [upstream.hits.get("/slow", 0) for upstream in upstreams]
            outcome = {}
            def send():
                try:
                    outcome["result"] = request(entry, "GET", "/slow?seconds=2", timeout=25)
                except Exception as error:  # reported by the assertion below
                    outcome["result"] = (repr(error), b"")
            client = threading.Thread(target=send)
            started = time.time()
            client.start()
            wait_until(lambda: any(upstream.arrived.is_set() for upstream in upstreams), timeout=5, what="the request at an upstream")
            first = 0 if upstreams[0].arrived.is_set() else 1
            stopped.append(holders[first])
            holders[first].process.send_signal(signal.SIGSTOP)
            client.join(timeout=25)
            elapsed = time.time() - started
            self.assertEqual(outcome["result"][:2], (200, b"/slow"), "the other holder answered")
            self.assertEqual(upstreams[1 - first].hits.get("/slow", 0), before[1 - first] + 1)
            # 2 s until silence, 2 s at the other upstream; proxy.timeout would have been 30 s.
            self.assertLess(elapsed, 8, f"answered after {elapsed:.1f} s")
            print(f"\n  a holder fell silent mid-request: answered by the other after {elapsed:.2f} s")

            # The other holder falls silent too, and an agent connects to the entry node.
            second = 1 - first
            upstreams[second].arrived.clear()
            outcome.clear()
            client = threading.Thread(target=send)
            client.start()
            wait_until(lambda: upstreams[second].arrived.is_set(), timeout=5, what="the request at the other holder's upstream")
            stopped.append(holders[second])
            holders[second].process.send_signal(signal.SIGSTOP)
            agents.append(start_agent(entry, "app", upstreams[2].port))
            client.join(timeout=25)
            self.assertEqual(outcome["result"][:2], (200, b"/slow"), "the entry's own new tunnel answered")
            self.assertEqual(upstreams[2].hits.get("/slow", 0), 1)
            self.assertIsNone(entry.process.poll(), "the entry node is still running")
        finally:
            for node in stopped:
                node.process.send_signal(signal.SIGCONT)
            for agent in agents:
                agent.kill()
            for upstream in upstreams:
                upstream.close()

    def test_adminForward_reachesOtherNodes_andMetricsShowTheCluster(self):
        backend, http_port, _ = start_backend()
        agent = None
        try:
            first = self.start()
            second = self.start("--cluster.join", f"127.0.0.1:{first.gossip}")
            third = self.start("--cluster.join", f"127.0.0.1:{first.gossip}")
            agent = start_agent(third, "app", http_port)
            wait_until(lambda: len(members(first)) == 3, timeout=10, what="three members")
            status, body = first.admin_get(f"/status/upstream/endpoints?forward={node_id(third)}")
            self.assertEqual((status, json.loads(body)), (200, {"app": 1}))
            status, body = first.admin_get(f"/status/cluster/nodes/local?forward={node_id(second)}")
            self.assertEqual((status, json.loads(body)["id"]), (200, node_id(second)))
            self.assertEqual(first.admin_get("/status/upstream/endpoints?forward=nobody")[0], 404)
            out = subprocess.run([harness.PICO, "status", "upstream", "endpoints", "-o", "json", "--forward", node_id(third),
                                  "--server.url", f"http://127.0.0.1:{first.admin}"], capture_output=True, text=True, timeout=20)
            self.assertEqual((out.returncode, json.loads(out.stdout)), (0, {"app": 1}))
            def families():
                return {family.name: family for family in text_string_to_metric_families(first.admin_get("/metrics")[1].decode())}

            def kinds():
                return {(sample.labels["direction"], sample.labels["kind"]) for sample in families()["pico_gossip_messages"].samples}

            # Each node probes one member per second, round robin: within a few seconds every kind flows both ways.
            wait_until(lambda: {("in", "ping"), ("out", "ack"), ("out", "ping"), ("in", "ack")} <= kinds(), timeout=10, what="probes both ways")
            families_now = families
            families = families()
            nodes = {sample.labels["status"]: sample.value for sample in families["pico_cluster_nodes"].samples}
            self.assertEqual(nodes["active"], 3)
            packets = {sample.labels["direction"]: sample.value for sample in families["pico_gossip_packets"].samples}
            self.assertGreater(packets["in"], 0)
            self.assertGreater(packets["out"], 0)
            # Tunnels per member as the first node sees them, and its rebalancing figures.
            wait_until(lambda: {sample.labels["member"]: sample.value for sample in families_now()["pico_cluster_member_tunnels"].samples}.get(node_id(third)) == 1,
                       timeout=10, what="the third node's tunnel counted by the first")
            families = families_now()
            self.assertEqual([sample.value for sample in families["pico_rebalance_mean_tunnels"].samples], [0.33], "1 tunnel over 3 active members")
            self.assertEqual({sample.labels["result"]: sample.value for sample in families["pico_rebalance_moves"].samples}, {"asked": 0, "done": 0})
            out = subprocess.run([harness.PICO, "status", "cluster", "tunnels", "--server.url", f"http://127.0.0.1:{first.admin}"],
                                 capture_output=True, text=True, timeout=20)
            lines = out.stdout.splitlines()
            self.assertEqual((out.returncode, lines[0].split()), (0, ["ID", "STATUS", "TUNNELS", "OF_MEAN", "REBALANCE"]), out.stdout + out.stderr)
            self.assertEqual(lines[1].split(), [node_id(first), "active", "0", "0", "balanced"], "this node first, with its rule's state")
            self.assertIn([node_id(third), "active", "1", "3", "-"], [line.split() for line in lines[2:]])
        finally:
            if agent:
                agent.kill()
            backend.kill()

    def test_picoTestCluster_saysWhyANodeWithAdminTLSFromItsConfigFile_neverTurnsReady(self):
        directory = os.path.join(harness.TMP, "dev-admin-tls")
        os.makedirs(directory, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", "tls.key", "-out", "tls.crt"], cwd=directory, check=True, capture_output=True)
        config = os.path.join(directory, "server.yaml")
        with open(config, "w") as handle:
            handle.write(f"admin:\n  tls:\n    cert: {directory}/tls.crt\n    key: {directory}/tls.key\n")
        base = free_block()
        log = open(os.path.join(harness.TMP, "test-cluster-admin-tls.log"), "w")
        dev = subprocess.Popen([harness.PICO, "test", "cluster", "--nodes", "1", "--base-port", str(base), "--log-dir", directory, "--",
                                "--config.path", config], stdin=subprocess.PIPE, stdout=log, stderr=log, text=True)
        try:
            wait_until(lambda: "its admin port serves TLS, and pico test cluster needs it plain" in open(log.name).read(), timeout=15,
                       what="the reason the node never turns ready")
            dev.stdin.write("quit\n")
            dev.stdin.flush()
            dev.wait(timeout=30)
        finally:
            if dev.poll() is None:
                dev.kill()
        with open(log.name) as handle:
            self.assertEqual(handle.read().count("its admin port serves TLS"), 1, "said once, not every poll")

    def test_picoTestCluster_balances_restartsEveryNode_scales_andQuits(self):
        base = free_block()
        log = open(os.path.join(harness.TMP, "test-cluster.log"), "w")
        dev = subprocess.Popen([harness.PICO, "test", "cluster", "--nodes", "2", "--base-port", str(base), "--log-dir", harness.TMP],
                               stdin=subprocess.PIPE, stdout=log, stderr=log, text=True)
        backend, http_port, _ = start_backend()
        agent = None
        try:
            front = Front(base)
            wait_until(lambda: sorted(members(front).values()) == ["active", "active"], timeout=15, what="two nodes behind the balancer")
            agent = subprocess.Popen([harness.PICO, "agent", "http", "app", str(http_port), "--connect.url", f"http://127.0.0.1:{base + 1}", "--event-loops", "1"],
                                     stderr=open(os.path.join(harness.TMP, "test-cluster-agent.log"), "w"))
            wait_until(lambda: request(front, "GET", "/bytes/2")[:2] == (200, b"xx"), timeout=10, what="the endpoint through the balancer")
            before = set(members(front))
            dev.stdin.write("restart\n")
            dev.stdin.flush()
            wait_until(lambda: "rolling restart done" in open(log.name).read(), timeout=60, what="the rolling restart")
            # Every node came back under a new node ID, and the endpoint is served again.
            wait_until(lambda: {name for name, status in members(front).items() if status == "active"}.isdisjoint(before)
                       and list(members(front).values()).count("active") == 2, timeout=15, what="two new nodes")
            wait_until(lambda: request(front, "GET", "/bytes/2")[:2] == (200, b"xx"), timeout=15, what="the endpoint after the restart")
            dev.stdin.write("scale 3\n")
            dev.stdin.flush()
            wait_until(lambda: list(members(front).values()).count("active") == 3, timeout=15, what="three active nodes")
            dev.stdin.write("quit\n")
            dev.stdin.flush()
            self.assertEqual(dev.wait(timeout=40), 0)
        finally:
            if agent:
                agent.kill()
            backend.kill()
            if dev.poll() is None:
                dev.kill()

    def test_forwardsToOneNode_areBoundedPerLoop_andTheRestGet503(self):
        backend, http_port, _ = start_backend()
        agent = None
        try:
            entry = self.start("--event-loops", "1", "--proxy.forward-max-connections", "2")
            holder = self.start("--cluster.join", f"127.0.0.1:{entry.gossip}")
            agent = start_agent(holder, "app", http_port)
            wait_until(lambda: request(entry, "GET", "/bytes/1")[0] == 200, timeout=10, what="forwarding")
            results = []
            workers = [threading.Thread(target=lambda: results.append(request(entry, "GET", "/slow?s=1.5", timeout=10)[:2])) for _ in range(4)]
            for worker in workers:
                worker.start()
                time.sleep(0.1)
            for worker in workers:
                worker.join()
            statuses = sorted(status for status, _ in results)
            self.assertEqual(statuses, [200, 200, 503, 503], results)
            self.assertIn(b"too many requests forwarded", [body for status, body in results if status == 503][0])
            self.assertEqual(request(entry, "GET", "/bytes/1")[0], 200, "capacity comes back")
        finally:
            if agent:
                agent.kill()
            backend.kill()

    def test_joinThatReachesNobody_exits1_withAClearMessage_unlessToldToRunAlone(self):
        unreachable = f"127.0.0.1:{free_port()}"
        alone = self.start("--cluster.join", unreachable, "--cluster.join-timeout", "2s", "--cluster.abort-if-join-fails", "false")
        log_path = os.path.join(harness.TMP, "join-fails.log")
        with open(log_path, "w") as log:
            process = subprocess.Popen([harness.PICO, "server", "--proxy.bind-addr", f"127.0.0.1:{free_port()}",
                                        "--upstream.bind-addr", f"127.0.0.1:{free_port()}", "--admin.bind-addr", f"127.0.0.1:{free_port()}",
                                        "--cluster.gossip.bind-addr", f"127.0.0.1:{free_port()}", "--cluster.join", unreachable,
                                        "--cluster.join-timeout", "2s"], stderr=log)
            self.assertEqual(process.wait(timeout=20), 1)
        with open(log_path) as log:
            self.assertIn("could not join the cluster", log.read())
        time.sleep(1)
        self.assertIsNone(alone.process.poll(), "abort_if_join_fails false: the node runs alone")
        self.assertEqual(alone.admin_get("/ready")[0], 200)

    def test_hostileGossipInput_isDropped_andTheClusterCarriesOn(self):
        seed = self.start()
        other = self.start("--cluster.join", f"127.0.0.1:{seed.gossip}")
        wait_until(lambda: len(members(seed)) == 2, timeout=10, what="two members")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for payload in [b"", b"\x00", b"\xb7\x01" + os.urandom(60), os.urandom(1400), b"\xb7\x09garbage"]:
                udp.sendto(payload, ("127.0.0.1", seed.gossip))
        for frame in [b"\xff\xff\xff\xff", b"\x00\x00\x00\x04abcd", b"\x00\x00"]:
            with socket.create_connection(("127.0.0.1", seed.gossip), timeout=5) as tcp:
                tcp.sendall(frame)
                tcp.shutdown(socket.SHUT_WR)
                try:
                    tcp.recv(100)
                except OSError:
                    pass
        time.sleep(1)
        self.assertIsNone(seed.process.poll())
        self.assertEqual(set(members(seed).values()), {"active"})
        self.assertEqual(len(members(seed)), 2)
        self.assertEqual(set(members(other).values()), {"active"})

    def test_theForwardMark_isTrustedOnlyFromAMembersAddress_andNeverForwardedAgain_soNoRequestBounces(self):
        # The nodes live on 127.0.0.2 and 127.0.0.3; clients connect from 127.0.0.1.
        backend, http_port, _ = start_backend()
        agent = None
        try:
            entry = Node("--grace-period", "10s", bind_host="127.0.0.2")
            self.nodes.append(entry)
            holder = Node("--grace-period", "10s", "--cluster.join", f"127.0.0.2:{entry.gossip}", bind_host="127.0.0.3")
            self.nodes.append(holder)
            agent = start_agent(holder, "app", http_port)
            wait_until(lambda: request(entry, "GET", "/headers", headers={"Host": "app.example.com"})[0] == 200, timeout=10,
                       what="the endpoint known at the entry node")
            # Forwarded through the entry: the holder trusts the entry's mark (it comes from the
            # entry's advertised address) and keeps the entry's fields.
            status, body, _ = request(entry, "GET", "/headers", headers={"Host": "app.example.com"})
            self.assertEqual(status, 200, body)
            self.assertIn(b"x-forwarded-for: 127.0.0.1, 127.0.0.2\n", body)
            self.assertIn(b"x-forwarded-host: app.example.com\n", body)
            self.assertNotIn(b"x-pico-forward", body)
            forged = {"Host": "app.example.com", "x-pico-forward": "true", "X-Forwarded-Host": "evil.example.com", "X-Forwarded-Proto": "https"}
            # A marked request is never forwarded, whoever sent it: a node that does not know the
            # sender as a member yet must not make requests bounce between nodes. A client that
            # marks its own request only keeps it from being forwarded.
            status, body, _ = request(entry, "GET", "/headers", headers=forged)
            self.assertEqual((status, json.loads(body)), (502, {"error": "no available upstreams"}))
            # Sent straight to the holder: served there, and a client's mark does not make the node
            # keep the client's forwarded fields; it sets them from what it saw.
            status, body, _ = request(holder, "GET", "/headers", headers=forged)
            self.assertEqual(status, 200, body)
            self.assertIn(b"x-forwarded-host: app.example.com\n", body)
            self.assertIn(b"x-forwarded-proto: http\n", body)
            self.assertNotIn(b"evil.example.com", body)
            self.assertNotIn(b"x-pico-forward", body)
            # From a member's address the mark counts: never forwarded a second time.
            status, body, _ = request(entry, "GET", "/headers", headers=forged, source="127.0.0.3")
            self.assertEqual((status, json.loads(body)), (502, {"error": "no available upstreams"}))
        finally:
            if agent:
                agent.kill()
            backend.kill()


if __name__ == "__main__":
    print(f"logs in {harness.TMP}")
    unittest.main(verbosity=2)
