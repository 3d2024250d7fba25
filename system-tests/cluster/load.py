"""Steady HTTP load for the multi-host tests: `threads` clients, each sending GET requests on a
new connection every `interval` seconds to the balancer with `x-pico-endpoint`, recording every
outcome as a JSON line `{"t": start, "status": 200 | "error text", "ms": latency}` (with the
start of the body as "error" for a status other than 200) until SIGTERM.

The client's timeout is 10 s per socket operation (connect, each read), unless `deadline` is
given: then it is `deadline` seconds per operation and an answer that completes later than
`deadline` seconds after the request started counts as failed too ("late 200 after N ms"), so
`deadline` bounds the whole request as a client's total timeout would.

With `LOAD_CA` set in the environment (a CA file), every request goes over TLS (a new
handshake per request), checking the server's certificate for `host`.

Run: python3 load.py <host> <port> <endpoint> <out file> [threads] [interval] [deadline]
"""
import http.client
import json
import os
import signal
import ssl
import sys
import threading
import time

host, port, endpoint, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
threads = int(sys.argv[5]) if len(sys.argv) > 5 else 8
interval = float(sys.argv[6]) if len(sys.argv) > 6 else 0.1
deadline = float(sys.argv[7]) if len(sys.argv) > 7 else None
stop = threading.Event()
lock = threading.Lock()
sink = open(out, "w", buffering=1)
tls = ssl.create_default_context(cafile=os.environ["LOAD_CA"]) if os.environ.get("LOAD_CA") else None
# A bearer token every request carries (a proxy port with proxy.auth), from LOAD_TOKEN.
token_headers = {"Authorization": f"Bearer {os.environ['LOAD_TOKEN']}"} if os.environ.get("LOAD_TOKEN") else {}


def client():
    while not stop.is_set():
        started = time.time()
        error = None
        try:
            if tls:
                connection = http.client.HTTPSConnection(host, port, timeout=deadline or 10, context=tls)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=deadline or 10)
            connection.request("GET", "/bytes/64", headers={"x-pico-endpoint": endpoint, "Connection": "close", **token_headers})
            response = connection.getresponse()
            body = response.read()
            outcome = response.status if len(body) == 64 or response.status != 200 else f"short body {len(body)}"
            if response.status != 200:
                error = body[:120].decode("utf-8", "replace")
            connection.close()
        except Exception as failure:  # every failure is an outcome to count
            outcome = f"{type(failure).__name__}: {failure}"
        ms = round((time.time() - started) * 1000, 1)
        if deadline and outcome == 200 and ms > deadline * 1000:
            outcome = f"late 200 after {ms:.0f} ms"
        record = {"t": started, "status": outcome, "ms": ms}
        if error is not None:
            record["error"] = error
        with lock:
            sink.write(json.dumps(record) + "\n")
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
