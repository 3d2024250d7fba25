"""A Kubernetes-Service-like TCP load balancer for the multi-host tests: listens on the proxy
and upstream ports, and sends each new connection to a random pod whose admin `/ready` answers
200 (checked at most every 200 ms per pod; over TLS, checking the pod's certificate for its IP,
when `BALANCER_ADMIN_CA` names a CA file). The pods come from a JSON file the harness rewrites:
`[{"ip": "10.77.0.11"}, ...]`. Bytes are piped both ways (TLS passes through untouched).

Run: python3 pod_balancer.py <pods.json> <listen ip> <port> [<port> ...]
"""
import http.client
import json
import os
import random
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from balancer import pipe  # noqa: E402  (the same byte pipe as the end-to-end tests' balancer)

ADMIN_PORT = 8002
_ready_cache = {}
_lock = threading.Lock()
_admin_tls = ssl.create_default_context(cafile=os.environ["BALANCER_ADMIN_CA"]) if os.environ.get("BALANCER_ADMIN_CA") else None


def ready(ip):
    now = time.time()
    with _lock:
        cached = _ready_cache.get(ip)
        if cached and now - cached[1] < 0.2:
            return cached[0]
    try:
        if _admin_tls:
            connection = http.client.HTTPSConnection(ip, ADMIN_PORT, timeout=1, context=_admin_tls)
        else:
            connection = http.client.HTTPConnection(ip, ADMIN_PORT, timeout=1)
        connection.request("GET", "/ready")
        answer = connection.getresponse().status == 200
    except OSError:
        answer = False
    with _lock:
        _ready_cache[ip] = (answer, now)
    return answer


def pods(path):
    try:
        with open(path) as f:
            return [pod["ip"] for pod in json.load(f)]
    except (OSError, ValueError):
        return []


def serve(client, path, port):
    candidates = [ip for ip in pods(path) if ready(ip)]
    random.shuffle(candidates)
    for ip in candidates:
        try:
            upstream = socket.create_connection((ip, port), timeout=3)
        except OSError:
            continue
        upstream.settimeout(None)
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        return
    client.close()


def listen(path, ip, port):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((ip, port))
    server.listen(512)
    while True:
        client, _ = server.accept()
        threading.Thread(target=serve, args=(client, path, port), daemon=True).start()


def main():
    path, ip = sys.argv[1], sys.argv[2]
    for port in sys.argv[3:]:
        threading.Thread(target=listen, args=(path, ip, int(port)), daemon=True).start()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
