"""Shared pieces of the end-to-end tests: free ports, waiting, `pico server` nodes, the test
backend, agents and requests. `PICO` and `TMP` are set by the test module that imports this.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PICO = os.path.abspath(".build/debug/pico")
TMP = tempfile.mkdtemp(prefix="pico-e2e-")


def configure(pico):
    """Uses the `pico` binary at this path for every node and agent."""
    global PICO
    PICO = os.path.abspath(pico)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Node:
    """One `pico server` on free loopback ports, all bound to `bind_host` (any address of
    127/8 is local on Linux, so nodes on 127.0.0.2, 127.0.0.3, ... have distinct IPs)."""

    def __init__(self, *flags, bind_host="127.0.0.1", admin_tls=None, wait_for="/ready"):
        self.host = bind_host
        # An ssl.SSLContext when the admin port serves TLS (admin.tls.*).
        self.admin_tls = admin_tls
        # A port picked free may be taken by another process before the node binds it: then the
        # node exits at once, and it is started again on other ports.
        for _ in range(3):
            self.proxy, self.upstream, self.admin, self.gossip = free_port(), free_port(), free_port(), free_port()
            self.log = open(os.path.join(TMP, f"server-{self.proxy}.log"), "w")
            self.process = subprocess.Popen(
                [PICO, "server", "--proxy.bind-addr", f"{bind_host}:{self.proxy}", "--upstream.bind-addr", f"{bind_host}:{self.upstream}",
                 "--admin.bind-addr", f"{bind_host}:{self.admin}", "--cluster.gossip.bind-addr", f"{bind_host}:{self.gossip}", *flags], stderr=self.log)
            # `wait_for="/health"`: a node still joining (not ready yet) is enough.
            try:
                wait_until(lambda: self.process.poll() is not None or self.admin_get(wait_for)[0] == 200, what="server ready")
            except AssertionError:
                self.process.kill()
                raise
            if self.process.poll() is None:
                return
        raise AssertionError(f"pico server did not start; see {self.log.name}")

    def admin_get(self, path):
        if getattr(self, "admin_tls", None):
            connection = http.client.HTTPSConnection(self.host, self.admin, timeout=5, context=self.admin_tls)
        else:
            connection = http.client.HTTPConnection(self.host, self.admin, timeout=5)
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()

    def endpoints(self):
        return json.loads(self.admin_get("/status/upstream/endpoints")[1])

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_backend():
    """The test backend (HTTP and WebSocket echo) on free ports: (process, http port, ws port)."""
    http_port, ws_port = free_port(), free_port()
    process = subprocess.Popen([sys.executable, os.path.join(HERE, "backend.py"), str(http_port), str(ws_port)])
    wait_until(lambda: socket.create_connection(("127.0.0.1", http_port), timeout=1).close() is None, what="backend")
    return process, http_port, ws_port


def start_agent(node, endpoint, port, *flags):
    """An agent with one tunnel (one event loop) unless `flags` set --event-loops."""
    log = open(os.path.join(TMP, f"agent-{endpoint}-{port}.log"), "a")
    loops = [] if "--event-loops" in flags else ["--event-loops", "1"]
    process = subprocess.Popen([PICO, "agent", "http", endpoint, str(port), "--connect.url", f"http://{node.host}:{node.upstream}", *loops, *flags], stderr=log)
    wait_until(lambda: node.endpoints().get(endpoint, 0) >= 1, what=f"agent for {endpoint}")
    return process


def read_until_closed(sock):
    """Everything the peer sends on `sock` until it closes its side."""
    received = b""
    while True:
        piece = sock.recv(65536)
        if not piece:
            return received
        received += piece


def request(node, method, path, endpoint="app", body=None, headers=None, timeout=10, source=None):
    """One request to `node`'s proxy port, from the local address `source` when given."""
    connection = http.client.HTTPConnection(getattr(node, "host", "127.0.0.1"), node.proxy, timeout=timeout,
                                            source_address=(source, 0) if source else None)
    all_headers = {"x-pico-endpoint": endpoint} if endpoint else {}
    all_headers.update(headers or {})
    connection.request(method, path, body=body, headers=all_headers)
    response = connection.getresponse()
    return response.status, response.read(), response
