"""Pico against an implementation no one here wrote: `system-tests/piko-sdk/main.go`, built from
Debian's Go, hashicorp/yamux and gorilla/websocket, follows the protocol of Piko's Go SDK (a
WebSocket on the upstream path, a yamux client session, one stream per request or connection;
binary messages on the TCP route). It serves HTTP and TCP through Pico on Piko's and Pico's
paths, dials the TCP route as Piko's Dialer does, and runs hashicorp's yamux against ours: 1,000
concurrent streams and 64 MiB each way with window updates, pings every 100 ms both ways, a
handler that stops reading, streams the node resets, and the agent's go-away.

Run: python3 system-tests/e2e/test_piko_sdk.py <path to the pico binary>
"""
import http.client
import json
import os
import subprocess
import sys
import unittest

import harness
from harness import EchoService, Node, converse, start_forward, start_tcp_agent, wait_until

harness.configure(sys.argv.pop(1) if len(sys.argv) > 1 else ".build/debug/pico")

SOURCE = os.path.join(os.path.dirname(harness.HERE), "piko-sdk", "main.go")
PIKOSDK = os.path.join(harness.TMP, "pikosdk")


def build():
    environment = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOCACHE=os.path.join(harness.TMP, "gocache"), GOFLAGS="")
    subprocess.run(["go", "build", "-o", PIKOSDK, SOURCE], check=True, env=environment, cwd=os.path.dirname(SOURCE))


def run(*args, timeout=300):
    """Runs one pikosdk command to its end: its JSON report."""
    result = subprocess.run([PIKOSDK, *args], capture_output=True, text=True, timeout=timeout)
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines else {}
    return result.returncode, report, result.stderr


def serve(node, kind, path, endpoint):
    log = open(os.path.join(harness.TMP, f"pikosdk-{kind}-{endpoint}.log"), "w")
    process = subprocess.Popen([PIKOSDK, f"serve-{kind}", f"ws://127.0.0.1:{node.upstream}", path, endpoint], stderr=log)
    wait_until(lambda: node.endpoints().get(endpoint, 0) >= 1, what=f"the Go upstream for {endpoint}")
    return process


class PikoSDKTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        build()
        cls.node = Node("--proxy.upstream-wait", "200ms")
        cls.processes = []

    @classmethod
    def tearDownClass(cls):
        for process in cls.processes:
            process.kill()
            process.wait()
        cls.node.stop()

    def serve(self, kind, path, endpoint):
        process = serve(self.node, kind, path, endpoint)
        self.processes.append(process)
        return process

    def test_httpUpstreams_onPikosAndPicosUpstreamPaths_areServed(self):
        for path, endpoint in (("/piko/v1/upstream/", "go-http-piko"), ("/pico/v1/upstream/", "go-http-pico")):
            self.serve("http", path, endpoint)
            for header in ("x-piko-endpoint", "x-pico-endpoint"):
                connection = http.client.HTTPConnection("127.0.0.1", self.node.proxy, timeout=10)
                connection.request("GET", "/hello", headers={header: endpoint})
                response = connection.getresponse()
                self.assertEqual((response.status, response.read()), (200, f"hello from {endpoint} via 127.0.0.1".encode()))

    def test_tcp_goUpstreamsAndGoDialers_onBothPaths_andWithPicosOwnAgentAndForward(self):
        service = EchoService()
        agent, _ = start_tcp_agent(self.node, "pico-agent-tcp", service.port)
        self.processes.append(agent)
        for path, endpoint in (("/piko/v1/upstream/", "go-tcp-piko"), ("/pico/v1/upstream/", "go-tcp-pico")):
            self.serve("tcp", path, endpoint)
            for route in ("/_piko/v1/tcp/", "/_pico/v1/tcp/"):
                status, report, stderr = run("dial-tcp", f"ws://127.0.0.1:{self.node.proxy}", route, endpoint, str(3 * 1024 * 1024))
                self.assertEqual((status, report), (0, {"bytes": 3 * 1024 * 1024, "intact": True}), stderr)
        # Piko's dialer to Pico's agent; Pico's forward to the Go upstream.
        status, report, stderr = run("dial-tcp", f"ws://127.0.0.1:{self.node.proxy}", "/_piko/v1/tcp/", "pico-agent-tcp", str(1024 * 1024))
        self.assertEqual((status, report["intact"]), (0, True), stderr)
        forward, port, _ = start_forward(self.node, "go-tcp-piko")
        self.processes.append(forward)
        payload = os.urandom(1024 * 1024)
        # The Go upstream echoes; its stream ends when ours does (it closes after the copy).
        self.assertEqual(converse(port, payload), payload)
        service.close()

    def test_hashicorpsYamux_againstPicos_streamsWindowsPingsResetsAndGoAway(self):
        node = Node("--proxy.upstream-wait", "100ms", "--upstream.keepalive-interval", "100ms", "--upstream.keepalive-timeout", "2s")
        try:
            status, report, stderr = run("stress", f"ws://127.0.0.1:{node.upstream}", f"http://127.0.0.1:{node.proxy}", "stress",
                                         "1000", "4", str(8 * 1024 * 1024), timeout=600)
            print(f"\n  {report}")
            self.assertEqual(status, 0, f"{report} {stderr[-2000:]}")
            self.assertGreaterEqual(report["bytes_up"], 64 * 1024 * 1024 - 1000)
            self.assertGreater(report["peak_open_streams"], 100, "the exchanges overlapped")
        finally:
            node.stop()


if __name__ == "__main__":
    print(f"logs in {harness.TMP}")
    unittest.main(verbosity=2)
