"""Steady HTTP load for the multi-host tests: `threads` clients, each sending GET requests on a
new connection every `interval` seconds to the balancer with `x-pico-endpoint`, recording every
outcome as a JSON line `{"t": start, "status": 200 | "error text", "ms": latency}` until SIGTERM.

Run: python3 load.py <host> <port> <endpoint> <out file> [threads] [interval]
"""
import http.client
import json
import signal
import sys
import threading
import time

host, port, endpoint, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
threads = int(sys.argv[5]) if len(sys.argv) > 5 else 8
interval = float(sys.argv[6]) if len(sys.argv) > 6 else 0.1
stop = threading.Event()
lock = threading.Lock()
sink = open(out, "w", buffering=1)


def client():
    while not stop.is_set():
        started = time.time()
        try:
            connection = http.client.HTTPConnection(host, port, timeout=10)
            connection.request("GET", "/bytes/64", headers={"x-pico-endpoint": endpoint, "Connection": "close"})
            response = connection.getresponse()
            body = response.read()
            outcome = response.status if len(body) == 64 or response.status != 200 else f"short body {len(body)}"
            connection.close()
        except Exception as error:  # every failure is an outcome to count
            outcome = f"{type(error).__name__}: {error}"
        with lock:
            sink.write(json.dumps({"t": started, "status": outcome, "ms": round((time.time() - started) * 1000, 1)}) + "\n")
        elapsed = time.time() - started
        if elapsed < interval:
            stop.wait(interval - elapsed)


signal.signal(signal.SIGTERM, lambda *_: stop.set())
workers = [threading.Thread(target=client) for _ in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
sink.close()
