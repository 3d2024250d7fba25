"""The user documentation stays true: the getting-started commands work as written (node and
agent on their default ports, a real service, curl), the observability page lists exactly the
metrics a node exports with their labels, the simulator guide's example scenario runs and passes,
every relative link in README.md and docs/ points at a file that exists, and the folders of
Sources/PicoRuntime depend one way, as docs/runtime.md's layers say (runtime_layers.py), each
with a row in the README's folder table.

Run: python3 system-tests/docs/test_docs.py <pico binary> <pico-sim binary>
"""
import http.client
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "system-tests", "e2e"))
from harness import wait_until  # noqa: E402 - the e2e harness's polling helper
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runtime_layers  # noqa: E402 - the one-way check of the runtime's folders
DOCS = os.path.join(ROOT, "docs")
PICO = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else ".build/debug/pico")
PICO_SIM = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else ".build/debug/pico-sim")


def read(path):
    with open(path) as handle:
        return handle.read()


def code_blocks(text, language):
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def port_free(port):
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def admin_get(path, port=8002):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read().decode()


def exported_metrics(text):
    """{family: set of label names} from Prometheus text (histogram series folded into their family)."""
    families = {}
    kinds = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            families[name] = set()
            kinds[name] = kind
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            labels = set(re.findall(r'([a-zA-Z_]+)="', line.split("{", 1)[1])) if "{" in line else set()
            family = name
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and kinds.get(name[: -len(suffix)]) == "histogram":
                    family = name[: -len(suffix)]
                    labels.discard("le")
            families.setdefault(family, set()).update(labels)
    return families


class GettingStartedTests(unittest.TestCase):
    """Runs the getting-started page's commands, with `swift run -c release pico` replaced by
    the binary under test."""

    def setUp(self):
        self.processes = []

    def tearDown(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()

    def start(self, command, cwd=None):
        argv = shlex.split(command.replace("swift run -c release pico", PICO, 1))
        process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def test_theCommandsOfTheGettingStartedPage_work_asWritten(self):
        blocks = [block.strip() for block in code_blocks(read(os.path.join(DOCS, "getting-started.md")), "sh")]
        service, node, agent, by_header, by_host = blocks[:5]
        self.assertEqual(service, "python3 -m http.server 3000")
        self.assertEqual(node, "swift run -c release pico server")
        self.assertEqual(agent, "swift run -c release pico agent http my-app 3000")
        busy = [port for port in (3000, 8000, 8001, 8002, 8003) if not port_free(port)]
        self.assertEqual(busy, [], "the page uses the default ports; something else holds these")
        with tempfile.TemporaryDirectory() as directory:
            open(os.path.join(directory, "hello-from-pico.txt"), "w").close()
            self.start(service, cwd=directory)
            wait_until(lambda: socket.create_connection(("127.0.0.1", 3000), timeout=1).close() is None, 10, "the service")
            self.start(node)
            wait_until(lambda: admin_get("/ready")[0] == 200, 15, "the node ready")
            self.start(agent)
            wait_until(lambda: '"my-app"' in admin_get("/status/upstream/endpoints")[1], 15, "the agent's tunnel")
            for command in (by_header, by_host):
                result = subprocess.run(shlex.split(command) + ["--silent", "--show-error", "--max-time", "10"], capture_output=True, text=True)
                self.assertEqual(result.returncode, 0, f"{command}: {result.stderr}")
                self.assertIn("hello-from-pico.txt", result.stdout, command)
            result = subprocess.run(["curl", "--silent", "http://localhost:8000/"], capture_output=True, text=True)
            self.assertEqual(result.stdout.strip(), '{"error":"missing endpoint id"}')
            result = subprocess.run(["curl", "--silent", "-H", "x-pico-endpoint: other", "http://localhost:8000/"], capture_output=True, text=True)
            self.assertEqual(result.stdout.strip(), '{"error":"no available upstreams"}')
            # The TCP example: a stand-in for the database (an echo service on 5432), the agent
            # and the forward as written, and bytes through the local port both ways.
            tcp_agent, tcp_forward, tcp_client = blocks[5:8]
            self.assertEqual(tcp_agent, "swift run -c release pico agent tcp my-db 5432")
            self.assertEqual(tcp_forward, "swift run -c release pico forward tcp 15432 my-db")
            self.assertEqual(tcp_client, "psql -h localhost -p 15432 -U postgres")
            self.assertEqual([port for port in (5432, 15432) if not port_free(port)], [], "the TCP example's ports are taken")
            database = socket.create_server(("127.0.0.1", 5432))

            def echo(connection):
                with connection:
                    while piece := connection.recv(65536):
                        connection.sendall(piece)

            def accept():
                while True:
                    try:
                        connection, _ = database.accept()
                    except OSError:
                        return
                    threading.Thread(target=echo, args=(connection,), daemon=True).start()

            threading.Thread(target=accept, daemon=True).start()
            self.start(tcp_agent)
            wait_until(lambda: '"my-db"' in admin_get("/status/upstream/endpoints")[1], 15, "the TCP agent's tunnel")
            self.start(tcp_forward)
            wait_until(lambda: socket.create_connection(("127.0.0.1", 15432), timeout=1).close() is None, 10, "the forward")
            with socket.create_connection(("127.0.0.1", 15432), timeout=10) as client:
                client.sendall(b"SELECT 1")
                self.assertEqual(client.recv(100), b"SELECT 1")
            database.close()
            # The observability page lists exactly what a node exports (after some requests, so
            # labelled series exist).
            metrics = exported_metrics(admin_get("/metrics")[1])
            documented = {}
            for name, labels in re.findall(r"^\| `([a-z_]+)(?:\{([a-z_,]+)\})?` \|", read(os.path.join(DOCS, "observability.md")), re.M):
                documented[name] = set(labels.split(",")) if labels else set()
            self.assertEqual(sorted(documented), sorted(metrics))
            # A lone node has no samples of some labelled families (no peers, no forwards).
            for name, labels in metrics.items():
                if labels:
                    self.assertEqual(documented[name], labels, name)
            # Every Pico metric the migration page names is one the node exports.
            migrating = read(os.path.join(DOCS, "migrating-from-piko.md"))
            for name in set(re.findall(r"`(pico_[a-z_]+)", migrating)):
                self.assertIn(name, metrics, f"docs/migrating-from-piko.md names {name}")


class SimulatorGuideTests(unittest.TestCase):
    def test_theGuidesExampleScenario_runsAndPasses(self):
        example = code_blocks(read(os.path.join(DOCS, "simulator-guide.md")), "yaml")[0]
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
            handle.write(example)
        result = subprocess.run([PICO_SIM, "run", handle.name, "--quiet"], capture_output=True, text=True)
        os.unlink(handle.name)
        self.assertEqual(result.returncode, 0, result.stdout[-2000:] + result.stderr[-2000:])


class LinkTests(unittest.TestCase):
    def test_relativeLinks_pointAtFilesThatExist_andTheReadmeLinksEveryGuide(self):
        pages = [os.path.join(ROOT, "README.md")] + [os.path.join(DOCS, name) for name in sorted(os.listdir(DOCS)) if name.endswith(".md")]
        for page in pages:
            for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", read(page)):
                if re.match(r"[a-z]+://", target):
                    continue
                path = os.path.normpath(os.path.join(os.path.dirname(page), target))
                self.assertTrue(os.path.exists(path), f"{os.path.relpath(page, ROOT)} links {target}, which does not exist")
        readme = read(os.path.join(ROOT, "README.md"))
        for guide in ("getting-started.md", "configuration.md", "kubernetes.md", "clustering.md", "observability.md", "simulator-guide.md",
                      "migrating-from-piko.md", "tcp-tunnels.md"):
            self.assertIn(f"(docs/{guide})", readme)


class RuntimeLayerTests(unittest.TestCase):
    def test_runtimeFolders_useOnlyLowerLayers_asDocsRuntimeSays(self):
        problems = runtime_layers.violations(ROOT)
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_everyRuntimeFolder_hasARowInTheReadmesFolderTable(self):
        readme = read(os.path.join(ROOT, "README.md"))
        for folder in sorted(runtime_layers.read_folders(ROOT)):
            self.assertIn(f"| `Sources/PicoRuntime/{folder}` |", readme)


if __name__ == "__main__":
    unittest.main(verbosity=2)
