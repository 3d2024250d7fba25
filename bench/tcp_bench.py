"""Pico's TCP tunnel against a chain of nginx `stream` proxies, measured side by side with iperf3.

  direct        iperf3 -c -> iperf3 -s
  nginx-chain   iperf3 -c -> nginx stream -> nginx stream -> nginx stream -> iperf3 -s
                (three proxies, as many hops as forward -> node -> agent)
  pico          iperf3 -c -> pico forward tcp -> pico server -> tunnel -> pico agent tcp -> iperf3 -s

For each configuration: throughput (iperf3's receiver bits per second, one stream, then
--parallel 4), and new TCP connections per second through it (a client that connects, sends 16
bytes to an echo service, reads them back and closes, one at a time and 8 at once). The configurations
run back to back in each round; --rounds N keeps the median round. Ratios are against the nginx
chain measured in the same run.

Run: python3 bench/tcp_bench.py <pico binary> [--smoke] [--seconds S] [--rounds N] [--json FILE]
(release build for real figures: swift build -c release). With --smoke (the test suite's guard)
it runs briefly and fails only when a configuration carries nothing, never on speed.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ENDPOINT_IPERF = "bench-iperf"
ENDPOINT_ECHO = "bench-echo"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


class Echo:
    """A threaded echo service."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(connection,), daemon=True).start()

    @staticmethod
    def serve(connection):
        with connection:
            try:
                while piece := connection.recv(65536):
                    connection.sendall(piece)
            except OSError:
                pass


NGINX = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx.error.log;
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
events {{ worker_connections 4096; }}
stream {{
{servers}
}}
"""


def nginx_chain(directory, target):
    """Three stream proxies in a row in front of `target`; returns (process, entry port)."""
    ports = [free_port() for _ in range(3)]
    hops = ports[1:] + [target]
    servers = "\n".join(f"    server {{ listen 127.0.0.1:{port}; proxy_pass 127.0.0.1:{hop}; }}" for port, hop in zip(ports, hops))
    config = os.path.join(directory, f"nginx-{ports[0]}.conf")
    with open(config, "w") as handle:
        handle.write(NGINX.format(dir=directory, servers=servers))
    process = subprocess.Popen(["nginx", "-c", config, "-p", directory], stderr=subprocess.DEVNULL)
    wait_port(ports[0])
    return process, ports[0]


class PicoChain:
    """A node, `pico agent tcp` for each target and `pico forward tcp` for each endpoint."""

    def __init__(self, pico, directory, targets):
        self.processes = []
        self.proxy, upstream, admin, gossip = free_port(), free_port(), free_port(), free_port()
        log = open(os.path.join(directory, "pico-server.log"), "w")
        self.start([pico, "server", "--proxy.bind-addr", f"127.0.0.1:{self.proxy}", "--upstream.bind-addr", f"127.0.0.1:{upstream}",
                    "--admin.bind-addr", f"127.0.0.1:{admin}", "--cluster.gossip.bind-addr", f"127.0.0.1:{gossip}", "--log.level", "warn"], log)
        wait_port(admin)
        self.ports = {}
        for endpoint, port in targets.items():
            self.start([pico, "agent", "tcp", endpoint, str(port), "--connect.url", f"http://127.0.0.1:{upstream}", "--log.level", "warn"],
                       open(os.path.join(directory, f"agent-{endpoint}.log"), "w"))
        deadline = time.time() + 15
        while time.time() < deadline:
            body = subprocess.run(["curl", "-s", f"http://127.0.0.1:{admin}/status/upstream/endpoints"], capture_output=True, text=True).stdout
            if all(f'"{endpoint}"' in body for endpoint in targets):
                break
            time.sleep(0.1)
        for endpoint in targets:
            local = free_port()
            self.start([pico, "forward", "tcp", f"127.0.0.1:{local}", endpoint, "--connect.url", f"http://127.0.0.1:{self.proxy}", "--log.level", "warn"],
                       open(os.path.join(directory, f"forward-{endpoint}.log"), "w"))
            wait_port(local)
            self.ports[endpoint] = local

    def start(self, argv, log):
        self.processes.append(subprocess.Popen(argv, stderr=log, stdout=subprocess.DEVNULL))

    def stop(self):
        for process in reversed(self.processes):
            process.kill()
            process.wait()


def iperf(port, seconds, parallel):
    result = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-P", str(parallel), "-J"],
                            capture_output=True, text=True, timeout=seconds + 60)
    try:
        report = json.loads(result.stdout)
        return report["end"]["sum_received"]["bits_per_second"] / 1e9
    except (ValueError, KeyError):
        return 0.0


def connections_per_second(port, seconds, workers):
    """New connections per second: connect, 16 bytes there and back, close."""
    done = [0]
    failures = [0]
    stop = time.time() + seconds
    lock = threading.Lock()

    def work():
        while time.time() < stop:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    sock.sendall(b"0123456789abcdef")
                    got = b""
                    while len(got) < 16:
                        piece = sock.recv(16)
                        if not piece:
                            break
                        got += piece
                    ok = got == b"0123456789abcdef"
            except OSError:
                ok = False
            with lock:
                if ok:
                    done[0] += 1
                else:
                    failures[0] += 1

    threads = [threading.Thread(target=work) for _ in range(workers)]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0] / (time.time() - started), failures[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("pico")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.rounds = 1, 1
    for tool in ("iperf3", "nginx", "curl"):
        if not shutil.which(tool):
            raise SystemExit(f"bench/tcp_bench.py: {tool} is missing (scripts/test installs it)")
    directory = tempfile.mkdtemp(prefix="pico-tcp-bench-")
    iperf_port = free_port()
    iperf_server = subprocess.Popen(["iperf3", "-s", "-p", str(iperf_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(iperf_port)
    echo = Echo()
    nginx_iperf, nginx_iperf_port = nginx_chain(directory, iperf_port)
    nginx_echo, nginx_echo_port = nginx_chain(directory, echo.port)
    pico = PicoChain(args.pico, directory, {ENDPOINT_IPERF: iperf_port, ENDPOINT_ECHO: echo.port})
    configs = {
        "direct": (iperf_port, echo.port),
        "nginx-chain": (nginx_iperf_port, nginx_echo_port),
        "pico": (pico.ports[ENDPOINT_IPERF], pico.ports[ENDPOINT_ECHO]),
    }
    rows = {name: [] for name in configs}
    failed = False
    try:
        for _ in range(args.rounds):
            for name, (throughput_port, echo_port) in configs.items():
                one = iperf(throughput_port, args.seconds, 1)
                four = iperf(throughput_port, args.seconds, 4)
                serial, serial_failures = connections_per_second(echo_port, args.seconds, 1)
                parallel, parallel_failures = connections_per_second(echo_port, args.seconds, 8)
                rows[name].append({"gbps_1": one, "gbps_4": four, "conns_1": serial, "conns_8": parallel,
                                   "failures": serial_failures + parallel_failures})
                if one == 0 or four == 0 or serial == 0 or parallel == 0:
                    failed = True
    finally:
        pico.stop()
        for process in (nginx_iperf, nginx_echo, iperf_server):
            process.kill()
            process.wait()
    median = {name: {key: statistics.median(row[key] for row in runs) for key in runs[0]} for name, runs in rows.items()}
    reference = median["nginx-chain"]
    print(f"{'config':<12} {'Gbit/s x1':>10} {'x4':>8} {'conn/s x1':>10} {'x8':>8} {'failures':>9}   ratios to nginx-chain (x1, x4, conn x1, conn x8)")
    for name, figures in median.items():
        ratios = [figures[key] / reference[key] if reference[key] else 0 for key in ("gbps_1", "gbps_4", "conns_1", "conns_8")]
        print(f"{name:<12} {figures['gbps_1']:>10.2f} {figures['gbps_4']:>8.2f} {figures['conns_1']:>10.0f} {figures['conns_8']:>8.0f} "
              f"{int(figures['failures']):>9}   " + "  ".join(f"{ratio:.2f}" for ratio in ratios))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"seconds": args.seconds, "rounds": args.rounds, "median": median, "rounds_raw": rows}, handle, indent=2)
    if failed or any(figures["failures"] for figures in median.values()):
        print("a configuration carried nothing, or connections failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
