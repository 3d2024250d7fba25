"""Shared pieces of the end-to-end tests: free ports, waiting, `pico server` nodes, the test
backend, agents and requests. `PICO` and `TMP` are set by the test module that imports this.
"""
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
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
    log = open(os.path.join(TMP, f"agent-tcp-{endpoint}-{port}.log"), "a")
    process = subprocess.Popen([PICO, "agent", "tcp", endpoint, str(port), "--connect.url", f"http://{node.host}:{node.upstream}",
                                "--event-loops", "1", *flags], stderr=log)
    wait_until(lambda: node.endpoints().get(endpoint, 0) >= 1, what=f"tcp agent for {endpoint}")
    return process, log.name


def start_forward(node, endpoint, *flags):
    """`pico forward tcp` on a free port to `endpoint` through `node`: (process, port, log path)."""
    port = free_port()
    log_path = os.path.join(TMP, f"forward-{endpoint}-{port}.log")
    process = subprocess.Popen([PICO, "forward", "tcp", f"127.0.0.1:{port}", endpoint, "--connect.url", f"http://{node.host}:{node.proxy}", *flags],
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
