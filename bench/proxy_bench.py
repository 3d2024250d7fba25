"""Pico's data path against the reverse proxies people would pick instead, measured side by side.

Every configuration runs on loopback against the same nginx backend (fixed 0 B, 1 KiB and 64 KiB
responses, keep-alive) and is measured with the same wrk settings, one after another in one run,
so the ratios compare like with like even though absolute numbers drift between runs:

  direct        wrk -> backend (the physical limit of this machine)
  nginx         wrk -> nginx -> backend (upstream keep-alive)
  nginx-chain   wrk -> nginx -> nginx -> backend (the hop count of a tunnel)
  caddy         wrk -> caddy -> backend
  caddy-chain   wrk -> caddy -> caddy -> backend
  pico          wrk -> pico server -> tunnel -> pico agent http -> backend
  pico-forward  wrk -> pico server A -> pico server B -> tunnel -> agent -> backend
  nginx-chain-tls  wrk =TLS=> nginx =TLS (upstream keep-alive, session reuse)=> nginx -> backend
  pico-tls      wrk =TLS=> pico server =TLS tunnel=> pico agent http -> backend
  pico-auth-hs256, pico-auth-es256
                as pico, with proxy.auth on and every request carrying the same token (HS256 or
                ES256, made for the run with the openssl command line)

The TLS configurations share one ECDSA P-256 certificate from a CA made for the run, TLS 1.2
and 1.3 with the same forward-secret AEAD ciphers, and verify the next hop's certificate (the
agent and the first nginx both do). With --new-connections every request opens a new
connection (wrk with `Connection: close`), which measures handshakes per second.

CPU seconds per 10,000 requests counts the proxy layer only (every process of the configuration
except wrk and the backend), from /proc utime + stime before and after the measured interval.

All configurations run at once; each cell (size, connections) measures them back to back, so a
drift of the shared machine hits every configuration of a cell alike. --rounds N repeats each
cell and keeps the median round.

Run through bench/proxies; python3 bench/proxy_bench.py <pico binary> [--smoke] [--duration S]
[--connections 64,256] [--sizes 0,1024,65536] [--configs a,b] [--rounds N] [--json FILE].
With --smoke (the test suite's guard) it runs pico, nginx-chain and their TLS configurations
briefly and fails only when a configuration answers errors or nothing, never on speed.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system-tests"))
from pki import PKI  # noqa: E402  (system-tests/pki.py)

ENDPOINT = "bench"
ALL_CONFIGS = ["direct", "nginx", "nginx-chain", "caddy", "caddy-chain", "pico", "pico-forward", "nginx-chain-tls", "pico-tls",
               "pico-auth-hs256", "pico-auth-es256"]
AUTH_CONFIGS = {"pico-auth-hs256", "pico-auth-es256"}
TLS_CONFIGS = {"nginx-chain-tls", "pico-tls"}
# The same TLS 1.2 suites Pico offers (Sources/PicoRuntime/TLS/TLSContext.swift).
TLS12_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, headers=None, timeout=20.0, expect=200, ca=None):
    deadline = time.time() + timeout
    last = None
    context = ssl.create_default_context(cafile=ca) if ca else None
    while time.time() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                if response.status == expect:
                    return
                last = f"status {response.status}"
        except Exception as error:  # noqa: BLE001 - any failure means not ready yet
            last = error
        time.sleep(0.05)
    raise SystemExit(f"proxy bench: {url} not ready after {timeout:.0f} s ({last})")


class Processes:
    """Started processes: their CPU time (with nginx workers) and their shutdown."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.started = []

    def start(self, name, argv, env=None, proxy_layer=True):
        log = open(os.path.join(self.workdir, f"{name}.log"), "wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.started.append((name, process, proxy_layer))
        return process

    def check_alive(self):
        for name, process, _ in self.started:
            if process.poll() is not None:
                with open(os.path.join(self.workdir, f"{name}.log"), "rb") as f:
                    tail = f.read()[-2000:].decode(errors="replace")
                raise SystemExit(f"proxy bench: {name} exited with {process.returncode}\n{tail}")

    def proxy_cpu_seconds(self):
        """utime + stime of every proxy-layer process and its children (nginx workers)."""
        total = 0
        for _, process, proxy_layer in self.started:
            if proxy_layer:
                for pid in [process.pid] + children(process.pid):
                    total += cpu_ticks(pid)
        return total / CLOCK_TICKS

    def stop(self):
        for _, process, _ in reversed(self.started):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        self.started = []


def children(pid):
    found = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                found.append(int(child))
                found.extend(children(int(child)))
    except OSError:
        pass
    return found


def machine_ticks():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(value) for value in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return 0


NGINX_COMMON = """
daemon off;
worker_processes auto;
pid {pid};
error_log {error_log} warn;
events {{ worker_connections 4096; }}
"""


def nginx_backend_conf(workdir, port):
    return NGINX_COMMON.format(pid=f"{workdir}/backend.pid", error_log=f"{workdir}/backend.error.log") + f"""
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path {workdir}/tmp-backend;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        root {workdir}/www;
        location / {{ default_type application/octet-stream; }}
    }}
}}
"""


def nginx_proxy_conf(workdir, name, port, upstream_port, tls=None, upstream_tls=False):
    """A proxy to 127.0.0.1:upstream_port; with `tls` (certificate, key, CA paths) it listens
    with TLS, and with `upstream_tls` it speaks TLS to the next hop too, verifying it."""
    if tls:
        certificate, key, ca = tls
        listen = f"""listen 127.0.0.1:{port} ssl reuseport backlog=4096;
        ssl_certificate {certificate};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers {TLS12_CIPHERS};
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_session_cache shared:SSL-{name}:10m;
        ssl_session_tickets on;"""
        upstream_scheme = "https" if upstream_tls else "http"
        upstream_options = f"""proxy_ssl_session_reuse on;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {ca};
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;""" if upstream_tls else ""
    else:
        listen = f"listen 127.0.0.1:{port} reuseport backlog=4096;"
        upstream_scheme, upstream_options = "http", ""
    return NGINX_COMMON.format(pid=f"{workdir}/{name}.pid", error_log=f"{workdir}/{name}.error.log") + f"""
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path {workdir}/tmp-{name};
    proxy_temp_path {workdir}/tmp-{name}-proxy;
    upstream next {{
        server 127.0.0.1:{upstream_port};
        keepalive 512;
        keepalive_requests 1000000;
    }}
    server {{
        {listen}
        location / {{
            proxy_pass {upstream_scheme}://next;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            {upstream_options}
        }}
    }}
}}
"""


def caddy_conf(port, upstream_port):
    return f"""{{
    admin off
    auto_https off
}}
http://127.0.0.1:{port} {{
    reverse_proxy 127.0.0.1:{upstream_port} {{
        transport http {{
            keepalive 120s
            keepalive_idle_conns 1024
            keepalive_idle_conns_per_host 512
        }}
    }}
}}
"""


class Bench:
    def __init__(self, pico, workdir):
        self.pico = pico
        self.workdir = workdir
        self.backend_processes = Processes(workdir)
        self.backend_port = free_port()
        self.tls_files = None
        # The headers each configuration's requests carry beyond the endpoint (a token).
        self.headers = {}

    def certificates(self):
        """(certificate, key, CA) for localhost and 127.0.0.1, made once per run."""
        if self.tls_files is None:
            self.tls_files = PKI(os.path.join(self.workdir, "pki")).localhost()
        return self.tls_files

    def write(self, name, text):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_backend(self, sizes):
        os.makedirs(os.path.join(self.workdir, "www"), exist_ok=True)
        for size in sorted(set(sizes) | {0}):  # /0 also answers the readiness checks
            with open(os.path.join(self.workdir, "www", str(size)), "wb") as f:
                f.write(b"x" * size)
        conf = self.write("backend.conf", nginx_backend_conf(self.workdir, self.backend_port))
        self.backend_processes.start("backend", ["nginx", "-c", conf, "-e", f"{self.workdir}/backend.error.log"], proxy_layer=False)
        wait_http(f"http://127.0.0.1:{self.backend_port}/0")

    def start_config(self, config, processes):
        """Starts a configuration's proxy layer; returns the port wrk targets."""
        if config == "direct":
            return self.backend_port
        if config in ("nginx", "nginx-chain"):
            upstream = self.backend_port
            hops = 2 if config == "nginx-chain" else 1
            for index in range(hops):
                port = free_port()
                name = f"{config}-{index}"
                conf = self.write(f"{name}.conf", nginx_proxy_conf(self.workdir, name, port, upstream))
                processes.start(name, ["nginx", "-c", conf, "-e", f"{self.workdir}/{name}.error.log"])
                wait_http(f"http://127.0.0.1:{port}/0")
                upstream = port
            return upstream
        if config == "nginx-chain-tls":
            tls = self.certificates()
            upstream = self.backend_port
            for index in range(2):
                port = free_port()
                name = f"{config}-{index}"
                # The second hop (index 0) faces the backend in plain text; the first speaks TLS to it.
                conf = self.write(f"{name}.conf", nginx_proxy_conf(self.workdir, name, port, upstream, tls=tls, upstream_tls=index == 1))
                processes.start(name, ["nginx", "-c", conf, "-e", f"{self.workdir}/{name}.error.log"])
                wait_http(f"https://localhost:{port}/0", ca=tls[2])
                upstream = port
            return upstream
        if config == "pico-tls":
            certificate, key, ca = self.certificates()
            tls_flags = ["--proxy.tls.cert", certificate, "--proxy.tls.key", key, "--upstream.tls.cert", certificate, "--upstream.tls.key", key]
            node = self.start_pico(processes, f"{config}-node", join=None, extra=tls_flags)
            processes.start(f"{config}-agent", [self.pico, "agent", "http", ENDPOINT, f"127.0.0.1:{self.backend_port}",
                                               "--connect.url", f"https://localhost:{node['upstream']}", "--connect.tls.root-cas", ca, "--log.level", "warn"])
            wait_http(f"https://localhost:{node['proxy']}/0", headers={"x-pico-endpoint": ENDPOINT}, ca=ca)
            return node["proxy"]
        if config in ("caddy", "caddy-chain"):
            upstream = self.backend_port
            hops = 2 if config == "caddy-chain" else 1
            env = dict(os.environ, XDG_DATA_HOME=f"{self.workdir}/xdg-data", XDG_CONFIG_HOME=f"{self.workdir}/xdg-config", HOME=self.workdir)
            for index in range(hops):
                port = free_port()
                name = f"{config}-{index}"
                conf = self.write(f"{name}.Caddyfile", caddy_conf(port, upstream))
                processes.start(name, ["caddy", "run", "--config", conf, "--adapter", "caddyfile"], env=env)
                wait_http(f"http://127.0.0.1:{port}/0")
                upstream = port
            return upstream
        if config in AUTH_CONFIGS:
            flags, token = self.auth(config)
            self.headers[config] = [f"Authorization: Bearer {token}"]
            node = self.start_pico(processes, f"{config}-node", join=None, extra=flags)
            processes.start(f"{config}-agent", [self.pico, "agent", "http", ENDPOINT, f"127.0.0.1:{self.backend_port}",
                                               "--connect.url", f"http://127.0.0.1:{node['upstream']}", "--log.level", "warn"])
            wait_http(f"http://127.0.0.1:{node['proxy']}/0", headers={"x-pico-endpoint": ENDPOINT, "Authorization": f"Bearer {token}"})
            return node["proxy"]
        if config in ("pico", "pico-forward"):
            holder = self.start_pico(processes, f"{config}-holder", join=None)
            entry = holder
            if config == "pico-forward":
                entry = self.start_pico(processes, f"{config}-entry", join=holder["gossip"])
            processes.start(f"{config}-agent", [self.pico, "agent", "http", ENDPOINT, f"127.0.0.1:{self.backend_port}",
                                           "--connect.url", f"http://127.0.0.1:{holder['upstream']}", "--log.level", "warn"])
            wait_http(f"http://127.0.0.1:{entry['proxy']}/0", headers={"x-pico-endpoint": ENDPOINT})
            return entry["proxy"]
        raise SystemExit(f"proxy bench: unknown configuration {config!r} (known: {', '.join(ALL_CONFIGS)})")

    def auth(self, config):
        """(server flags, token) for an auth configuration: a token valid for a day, signed with
        HMAC-SHA256 (the standard library) or ECDSA P-256 (the openssl command line)."""
        import base64
        import hashlib
        import hmac
        b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()
        claims = b64(json.dumps({"exp": int(time.time()) + 86400, "pico": {"endpoints": [ENDPOINT]}}).encode())
        if config == "pico-auth-hs256":
            secret = "a-bench-secret-of-at-least-32-bytes!"
            signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{claims}"
            signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
            return ["--proxy.auth.hmac-secret-key", secret], f"{signing_input}.{b64(signature)}"
        key, public = os.path.join(self.workdir, "es256.key"), os.path.join(self.workdir, "es256.pub")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key], check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", public], check=True, capture_output=True)
        signing_input = f"{b64(json.dumps({'alg': 'ES256', 'typ': 'JWT'}).encode())}.{claims}"
        der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input.encode(), check=True, capture_output=True).stdout
        # DER ECDSA-Sig-Value: SEQUENCE { INTEGER r, INTEGER s } -> r || s, 32 bytes each.
        r_length = der[3]
        r = der[4:4 + r_length]
        s_length = der[5 + r_length]
        s_value = der[6 + r_length:6 + r_length + s_length]
        raw = r.lstrip(b"\0").rjust(32, b"\0") + s_value.lstrip(b"\0").rjust(32, b"\0")
        with open(public) as handle:
            return ["--proxy.auth.ecdsa-public-key", handle.read()], f"{signing_input}.{b64(raw)}"

    def start_pico(self, processes, name, join, extra=()):
        ports = {key: free_port() for key in ("proxy", "upstream", "admin", "gossip")}
        argv = [self.pico, "server", "--proxy.bind-addr", f"127.0.0.1:{ports['proxy']}", "--upstream.bind-addr", f"127.0.0.1:{ports['upstream']}",
                "--admin.bind-addr", f"127.0.0.1:{ports['admin']}", "--cluster.gossip.bind-addr", f"127.0.0.1:{ports['gossip']}",
                "--cluster.node-id-prefix", f"{name}-", "--log.level", "warn", "--proxy.http.max-connections", "4096"]
        if join is not None:
            argv += ["--cluster.join", f"127.0.0.1:{join}"]
        argv += list(extra)
        processes.start(name, argv)
        wait_http(f"http://127.0.0.1:{ports['admin']}/ready")
        return ports


def parse_duration(text):
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unreadable wrk latency {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(output):
    """Requests, requests/s, p50 and p99 in ms, errors (socket errors and non-2xx) from wrk --latency."""
    def number(pattern):
        match = re.search(pattern, output)
        if not match:
            raise ValueError(f"wrk output lacks {pattern!r}:\n{output}")
        return match.group(1)
    requests = int(number(r"(\d+) requests in"))
    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(group) for group in socket_errors.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    return {
        "requests": requests,
        "rps": float(number(r"Requests/sec:\s+([0-9.]+)")),
        "p50_ms": parse_duration(number(r"\n\s+50%\s+(\S+)")),
        "p99_ms": parse_duration(number(r"\n\s+99%\s+(\S+)")),
        "errors": errors,
    }


def run_wrk(port, size, connections, duration, processes, tls=False, new_connections=False, extra_headers=()):
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/{size}"
    headers = ["-H", f"x-pico-endpoint: {ENDPOINT}"] + (["-H", "Connection: close"] if new_connections else [])
    for header in extra_headers:
        headers += ["-H", header]
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", *headers, url]
    # A short warm-up fills every keep-alive pool before the measured interval.
    subprocess.run(argv[:3] + ["-d1s", *headers, url], capture_output=True, timeout=30)
    cpu_before = processes.proxy_cpu_seconds()
    busy_before, total_before = machine_ticks()
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    cpu = processes.proxy_cpu_seconds() - cpu_before
    busy_after, total_after = machine_ticks()
    if completed.returncode != 0:
        raise SystemExit(f"proxy bench: wrk failed ({completed.returncode}): {completed.stderr}")
    result = parse_wrk(completed.stdout)
    result["cpu_s_per_10k"] = cpu / result["requests"] * 10_000 if result["requests"] else None
    result["mib_per_s"] = result["rps"] * size / (1 << 20)
    # Cores the whole machine kept busy (wrk, backend and proxies): below the core count, the
    # configuration waits on something other than CPU.
    result["busy_cores"] = (busy_after - busy_before) / max(1, total_after - total_before) * os.cpu_count()
    return result


def ratio(numerator, denominator):
    return numerator / denominator if numerator is not None and denominator else None


def ratios(results, sizes, connections_list):
    """Pico's ratios against the references, per size and connection count."""
    rows = []
    for size in sizes:
        for connections in connections_list:
            def get(config, key):
                entry = results.get(config, {}).get(f"{size}/{connections}")
                return entry[key] if entry else None
            rows.append({
                "size": size,
                "connections": connections,
                "pico/nginx-chain rps": ratio(get("pico", "rps"), get("nginx-chain", "rps")),
                "pico/caddy-chain rps": ratio(get("pico", "rps"), get("caddy-chain", "rps")),
                "pico/direct rps": ratio(get("pico", "rps"), get("direct", "rps")),
                "pico p99/nginx-chain p99": ratio(get("pico", "p99_ms"), get("nginx-chain", "p99_ms")),
                "pico-forward/pico rps": ratio(get("pico-forward", "rps"), get("pico", "rps")),
                "pico-tls/nginx-chain-tls rps": ratio(get("pico-tls", "rps"), get("nginx-chain-tls", "rps")),
                "pico-auth-hs256/pico rps": ratio(get("pico-auth-hs256", "rps"), get("pico", "rps")),
                "pico-auth-es256/pico rps": ratio(get("pico-auth-es256", "rps"), get("pico", "rps")),
                "pico-tls p99/nginx-chain-tls p99": ratio(get("pico-tls", "p99_ms"), get("nginx-chain-tls", "p99_ms")),
            })
    return rows


def fmt(value, digits=2):
    return "-" if value is None else f"{value:,.{digits}f}"


def print_tables(results, ratio_rows, configs, sizes, connections_list):
    print()
    print("| configuration | size | conns | req/s | MiB/s | p50 ms | p99 ms | proxy CPU s / 10k req | busy cores | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        for connections in connections_list:
            for config in configs:
                entry = results.get(config, {}).get(f"{size}/{connections}")
                if entry:
                    print(f"| {config} | {size} | {connections} | {fmt(entry['rps'], 0)} | {fmt(entry['mib_per_s'], 1)} | {fmt(entry['p50_ms'])} | "
                          f"{fmt(entry['p99_ms'])} | {fmt(entry['cpu_s_per_10k'], 3)} | {fmt(entry['busy_cores'])} | {entry['errors']} |")
    print()
    keys = [key for key in ratio_rows[0] if key not in ("size", "connections")] if ratio_rows else []
    print("| size | conns | " + " | ".join(keys) + " |")
    print("|---:|---:|" + "---:|" * len(keys))
    for row in ratio_rows:
        print(f"| {row['size']} | {row['connections']} | " + " | ".join(fmt(row[key]) for key in keys) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pico")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--duration", type=int, default=None)
    parser.add_argument("--connections", default=None)
    parser.add_argument("--sizes", default=None)
    parser.add_argument("--configs", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--new-connections", action="store_true", help="a new connection per request (handshakes per second)")
    args = parser.parse_args()
    for tool in ("wrk", "nginx") + (() if args.smoke else ("caddy",)):
        if shutil.which(tool) is None:
            raise SystemExit(f"proxy bench: {tool} is not installed (bench/proxies installs it)")

    configs = args.configs.split(",") if args.configs else (["nginx-chain", "pico", "nginx-chain-tls", "pico-tls", "pico-auth-es256"] if args.smoke else ALL_CONFIGS)
    sizes = [int(size) for size in (args.sizes or ("0" if args.smoke else "0,1024,65536")).split(",")]
    connections_list = [int(c) for c in (args.connections or ("64" if args.smoke else "64,256")).split(",")]
    duration = args.duration or (2 if args.smoke else 15)
    for config in configs:
        if config not in ALL_CONFIGS:
            raise SystemExit(f"proxy bench: unknown configuration {config!r} (known: {', '.join(ALL_CONFIGS)})")

    workdir = tempfile.mkdtemp(prefix="pico-bench-")
    os.chmod(workdir, 0o755)  # nginx workers run as nobody when started by root
    bench = Bench(args.pico, workdir)
    results = {}
    failures = []
    running = {}
    try:
        bench.start_backend(sizes)
        # Every configuration runs at once (idle ones cost nothing) and each cell measures them
        # back to back, round after round, so a drift of the shared machine hits all alike; with
        # several rounds each figure is the median round (by requests/s).
        for config in configs:
            processes = Processes(workdir)
            running[config] = (processes, None)
            running[config] = (processes, bench.start_config(config, processes))
        for size in sizes:
            for connections in connections_list:
                rounds = {config: [] for config in configs}
                for _ in range(args.rounds):
                    for config in configs:
                        processes, port = running[config]
                        result = run_wrk(port, size, connections, duration, processes, tls=config in TLS_CONFIGS, new_connections=args.new_connections,
                                         extra_headers=bench.headers.get(config, ()))
                        processes.check_alive()
                        rounds[config].append(result)
                        if result["errors"] or result["requests"] == 0:
                            failures.append(f"{config} {size} B {connections} conns: {result['errors']} errors, {result['requests']} requests")
                for config in configs:
                    result = sorted(rounds[config], key=lambda entry: entry["rps"])[len(rounds[config]) // 2]
                    results.setdefault(config, {})[f"{size}/{connections}"] = result
                    print(f"{config:13} {size:>6} B {connections:>4} conns: {result['rps']:>10,.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
                          f"p99 {result['p99_ms']:.2f} ms  errors {result['errors']}", flush=True)
    finally:
        for processes, _ in running.values():
            processes.stop()
        bench.backend_processes.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    ratio_rows = ratios(results, sizes, connections_list)
    print_tables(results, ratio_rows, configs, sizes, connections_list)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "duration_s": duration, "rounds": args.rounds, "wrk": "-t1 --latency",
                       "new_connections": args.new_connections, "results": results, "ratios": ratio_rows}, f, indent=2)
        print(f"\nwritten: {args.json}")
    if failures:
        print("\nproxy bench: configurations answered errors:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
