"""TLS on the proxy port, checked with clients no one here wrote: curl, Python's ssl and
http.client, `openssl s_client` and Python `websockets` over wss://. A test CA and certificates
are made with the openssl command line for each run.

Run: python3 system-tests/e2e/test_tls.py [path to pico, default .build/debug/pico]
"""
import http.client
import json
import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

import harness
from harness import Node, read_until_closed, start_agent, start_backend, wait_until
from websockets.sync.client import connect as ws_connect

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pki import PKI  # noqa: E402  (system-tests/pki.py)

harness.configure(sys.argv.pop(1) if len(sys.argv) > 1 else ".build/debug/pico")


class TestPKI(PKI):
    """A CA, a server certificate for localhost and 127.0.0.1, a client certificate, and a
    stranger CA with its own client certificate."""

    def __init__(self):
        super().__init__(os.path.join(harness.TMP, "pki"))
        self.ca("ca", "/CN=Pico Test CA")
        self.ca("stranger-ca", "/CN=Stranger CA")
        self.issue("server", "ca", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
        self.issue("client", "ca", "/CN=agent-1", "extendedKeyUsage=clientAuth")
        self.issue("stranger", "stranger-ca", "/CN=stranger", "extendedKeyUsage=clientAuth")
        self.issue_expired("expired", "ca", "/CN=agent-expired", "extendedKeyUsage=clientAuth\n")
        # Node certificates: by pod IP (each carries its own address), or by one shared name
        # (proxy.tls.client.server_name) and no address at all.
        for host in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
            self.issue(f"node-{host}", "ca", f"/CN=node {host}", f"subjectAltName=IP:{host}\nextendedKeyUsage=serverAuth,clientAuth")
        self.issue("peers", "ca", "/CN=pico peers", "subjectAltName=DNS:pico-peers.test\nextendedKeyUsage=serverAuth,clientAuth")
        # Two more server certificates for localhost, to rotate to.
        for name, days in (("rotated-1", "3"), ("rotated-2", "4")):
            self.issue(name, "ca", f"/CN={name}", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth", days=days)

    def client_context(self, certificate=None):
        context = ssl.create_default_context(cafile=self.path("ca.crt"))
        if certificate:
            context.load_cert_chain(self.path(f"{certificate}.crt"), self.path(f"{certificate}.key"))
        return context


class TLSTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = TestPKI()
        cls.backend, cls.http_port, cls.ws_port = start_backend()
        cls.processes = []

    @classmethod
    def tearDownClass(cls):
        for process in cls.processes:
            process.kill()
        cls.backend.kill()

    def node(self, *flags):
        node = Node("--proxy.tls.cert", self.pki.path("server.crt"), "--proxy.tls.key", self.pki.path("server.key"), *flags)
        self.processes.append(node.process)
        self.processes.append(start_agent(node, "app", self.http_port))
        self.processes.append(start_agent(node, "ws", self.ws_port))
        return node

    def node_client_certificate(self):
        """The flags of the certificate a node presents to peers' ports with client CAs."""
        return ["--proxy.tls.client.cert", self.pki.path("client.crt"), "--proxy.tls.client.key", self.pki.path("client.key")]

    def https(self, node, path="/", context=None, method="GET"):
        connection = http.client.HTTPSConnection("localhost", node.proxy, timeout=10, context=context or self.pki.client_context())
        connection.request(method, path, headers={"x-pico-endpoint": "app"})
        response = connection.getresponse()
        return response.status, response.read()

    def test_curl_pythonSsl_andOpensslSClient_reachTheUpstream_overTLS12Or13_withALPN(self):
        node = self.node()
        curl = subprocess.run(["curl", "-sS", "--cacert", self.pki.path("ca.crt"), "-H", "x-pico-endpoint: app",
                               f"https://localhost:{node.proxy}/bytes/5"], capture_output=True, text=True, timeout=20)
        self.assertEqual((curl.returncode, curl.stdout), (0, "xxxxx"), curl.stderr)
        # Keep-alive: three requests on one TLS connection.
        connection = http.client.HTTPSConnection("localhost", node.proxy, timeout=10, context=self.pki.client_context())
        for size in (1, 70_000, 3):
            connection.request("GET", f"/bytes/{size}", headers={"x-pico-endpoint": "app"})
            response = connection.getresponse()
            self.assertEqual((response.status, len(response.read())), (200, size))
        self.assertEqual(connection.sock.version() in ("TLSv1.2", "TLSv1.3"), True)
        connection.close()
        # By address: the certificate names 127.0.0.1 too.
        context = self.pki.client_context()
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            self.assertEqual(tls.selected_alpn_protocol(), None, "no ALPN offered, none chosen")
        for version, expected in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            probe = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{node.proxy}", "-servername", "localhost", version,
                                    "-alpn", "h2,http/1.1", "-CAfile", self.pki.path("ca.crt"), "-verify_return_error"],
                                   input="", capture_output=True, text=True, timeout=20)
            self.assertEqual(probe.returncode, 0, probe.stdout[-2000:] + probe.stderr[-2000:])
            self.assertIn(f"Protocol  : {expected}" if version == "-tls1_2" else "TLSv1.3", probe.stdout)
            self.assertIn("ALPN protocol: http/1.1", probe.stdout)
            self.assertIn("Verify return code: 0 (ok)", probe.stdout)
        old = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{node.proxy}", "-tls1_1"], input="", capture_output=True, text=True, timeout=20)
        self.assertNotEqual(old.returncode, 0, "TLS 1.1 is refused")
        weak = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{node.proxy}", "-tls1_2", "-cipher", "AES128-SHA:AES256-GCM-SHA384"],
                              input="", capture_output=True, text=True, timeout=20)
        self.assertNotEqual(weak.returncode, 0, "no cipher without forward secrecy")

    def test_aTLSConnection_movesToItsTunnelsLoop_withItsSession(self):
        node = self.node("--event-loops", "4")
        for _ in range(12):
            connection = http.client.HTTPSConnection("localhost", node.proxy, timeout=10, context=self.pki.client_context())
            for size in (5, 100_000):
                connection.request("POST", "/echo", body=b"y" * size, headers={"x-pico-endpoint": "app"})
                response = connection.getresponse()
                self.assertEqual((response.status, response.read()), (200, b"y" * size))
            connection.close()
        metrics = node.admin_get("/metrics")[1].decode()
        moves = next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("pico_proxy_connection_moves_total"))
        self.assertGreater(moves, 0, "some connections landed on a loop without the tunnel and moved, TLS and all")

    def test_testssl_findsNoOldProtocol_noWeakCipher_forwardSecrecy_andNoKnownVulnerability(self):
        node = self.node()
        report = os.path.join(harness.TMP, f"testssl-{node.proxy}.json")
        run = subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "off", "--jsonfile", report, "-p", "-s", "-f", "-U",
                              f"127.0.0.1:{node.proxy}"], capture_output=True, text=True, timeout=300)
        self.assertTrue(os.path.exists(report), run.stdout[-2000:] + run.stderr[-2000:])
        with open(report) as handle:
            findings = {finding["id"]: finding for finding in json.load(handle)}
        for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
            self.assertEqual(findings[old]["finding"], "not offered", old)
        self.assertEqual(findings["TLS1_2"]["finding"], "offered")
        self.assertTrue(findings["TLS1_3"]["finding"].startswith("offered"), findings["TLS1_3"])
        # testssl.sh 3.0's names (Debian 12); 3.1 splits AVERAGE and renames PFS to FS.
        for weak in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_AVERAGE",
                     "cipherlist_OBSOLETED", "cipherlist_STRONG_NOFS"):
            if weak in findings:
                self.assertEqual(findings[weak]["finding"], "not offered", weak)
        self.assertIn("cipherlist_NULL", findings, "testssl checked the cipher categories")
        forward_secrecy = findings.get("FS") or findings["PFS"]
        self.assertEqual(forward_secrecy["severity"], "OK", forward_secrecy)
        # The test CA's own traits (private, two days, no revocation URL) are not the server's.
        bad = [f"{key}: {finding['severity']} {finding['finding']}" for key, finding in findings.items()
               if finding["severity"] in ("MEDIUM", "HIGH", "CRITICAL") and not key.startswith("cert")]
        self.assertEqual(bad, [])

    def test_aCorruptRecordAfterAMove_closesWithoutAPlainTextAnswer(self):
        node = self.node("--event-loops", "4")
        for _ in range(16):
            with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as raw:
                tls = self.pki.client_context().wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=True)
                tls.sendall(b"GET /bytes/2 HTTP/1.1\r\nHost: localhost\r\nx-pico-endpoint: app\r\n\r\n")
                answer = b""
                while not answer.endswith(b"xx"):
                    answer += tls.recv(65536)
                # A forged application-data record on the socket itself, under the TLS layer.
                with socket.socket(fileno=os.dup(tls.fileno())) as under:
                    under.settimeout(10)
                    under.sendall(b"\x17\x03\x03\x00\x20" + os.urandom(32))
                    rest = b""
                    try:
                        while piece := under.recv(65536):
                            rest += piece
                    except ConnectionResetError:
                        pass
                tls.close()
                self.assertNotIn(b"HTTP/1.1", rest, "nothing in the clear inside a TLS connection")
        metrics = node.admin_get("/metrics")[1].decode()
        self.assertGreater(next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("pico_proxy_connection_moves_total")), 0)

    def test_aRefusedHandshake_tellsTheClientWhy_withAnAlert(self):
        node = self.node()
        weak = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{node.proxy}", "-tls1_2", "-cipher", "AES128-SHA"],
                              input="", capture_output=True, text=True, timeout=20)
        self.assertIn("alert handshake failure", weak.stdout + weak.stderr)
        mtls = self.node("--proxy.tls.client-cas", self.pki.path("ca.crt"), *self.node_client_certificate())
        anonymous = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{mtls.proxy}", "-tls1_2", "-CAfile", self.pki.path("ca.crt")],
                                   input="", capture_output=True, text=True, timeout=20)
        self.assertIn("alert", anonymous.stdout + anonymous.stderr, "a client without a certificate hears why")

    def test_atTheConnectionCap_aTLSClientIsClosed_notAnsweredInPlainText(self):
        node = self.node("--proxy.http.max-connections", "1")
        held = socket.create_connection(("127.0.0.1", node.proxy), timeout=10)
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as raw:
            with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError)) as refused:
                self.pki.client_context().wrap_socket(raw, server_hostname="localhost")
        self.assertNotIn("WRONG_VERSION_NUMBER", str(refused.exception))
        held.close()

    def test_eachTLSPortsCertificateExpiry_isAMetric(self):
        node = Node("--proxy.tls.cert", self.pki.path("server.crt"), "--proxy.tls.key", self.pki.path("server.key"),
                    "--upstream.tls.cert", self.pki.path("server.crt"), "--upstream.tls.key", self.pki.path("server.key"))
        self.processes.append(node.process)
        not_after = subprocess.run(["openssl", "x509", "-in", self.pki.path("server.crt"), "-noout", "-enddate"], capture_output=True, text=True, check=True).stdout
        expected = ssl.cert_time_to_seconds(not_after.strip().split("=", 1)[1])
        metrics = node.admin_get("/metrics")[1].decode()
        for listener in ("proxy", "upstream"):
            line = next(line for line in metrics.splitlines() if line.startswith(f'pico_tls_certificate_expiry_timestamp_seconds{{listener="{listener}"}}'))
            self.assertEqual(float(line.split()[-1]), expected, listener)
        self.assertNotIn('pico_tls_certificate_expiry_timestamp_seconds{listener="admin"}', metrics, "a plain port has no sample")

    def test_plainHTTP_toTheTLSPort_getsAPlainRefusal_andGarbageIsClosed(self):
        node = self.node()
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nx-pico-endpoint: app\r\n\r\n")
            answer = read_until_closed(s)
        self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer[:80])
        self.assertIn(b"plain HTTP request sent to a TLS port", answer)
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as s:
            s.sendall(b"GE")
            time.sleep(0.2)
            s.sendall(b"T / HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIn(b"plain HTTP request sent to a TLS port", read_until_closed(s), "a method split across reads")
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as s:
            s.sendall(b"\x16\x03\x01\x00\x05garbage-after-a-record-header" * 3)
            self.assertEqual(read_until_closed(s)[:1] in (b"", b"\x15"), True, "closed, at most after a TLS alert")
        self.assertEqual(self.https(node, "/bytes/2"), (200, b"xx"))

    def test_webSocket_overWss_echoes(self):
        node = self.node()
        with ws_connect(f"wss://localhost:{node.proxy}/", additional_headers={"x-pico-endpoint": "ws"},
                        ssl=self.pki.client_context()) as websocket:
            for message in ("one", "two" * 10_000):
                websocket.send(message)
                self.assertEqual(websocket.recv(timeout=10), message)

    def test_aClientHelloInOneByteWrites_isServed(self):
        node = self.node()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.pki.client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            hello = outgoing.read()
            for index in range(len(hello)):
                s.send(hello[index:index + 1])
                time.sleep(0.001)
            while True:
                data = s.recv(65536)
                self.assertNotEqual(data, b"", "the node closed during the handshake")
                incoming.write(data)
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    s.sendall(outgoing.read())
            s.sendall(outgoing.read())
            tls.write(b"GET /bytes/4 HTTP/1.1\r\nHost: localhost\r\nx-pico-endpoint: app\r\nConnection: close\r\n\r\n")
            s.sendall(outgoing.read())
            answer = b""
            while b"xxxx" not in answer:
                data = s.recv(65536)
                if not data:
                    break
                incoming.write(data)
                try:
                    while piece := tls.read(65536):  # one read gives at most one record
                        answer += piece
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    pass
        self.assertTrue(answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"xxxx"), answer[:80])

    def test_handshakesThatNeverFinish_areBounded_andOthersAreServed(self):
        node = self.node("--proxy.http.read-header-timeout", "6s")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
        stalled = []
        opening = time.time()
        for _ in range(5_000):
            s = socket.create_connection(("127.0.0.1", node.proxy), timeout=15)
            s.sendall(b"\x16\x03\x01\x02\x00\x01")  # a record header and one byte of a ClientHello
            stalled.append(s)
        started = time.time()
        self.assertLess(started - opening, 5, "all 5,000 are open and stalled while a client is served")
        self.assertEqual(self.https(node, "/bytes/3"), (200, b"xxx"))
        self.assertLess(time.time() - started, 2)
        # The header timeout closes them (no answer: nothing of a request was read).
        for s in stalled[:20] + stalled[-20:]:
            self.assertEqual(read_until_closed(s), b"")
        self.assertLess(time.time() - opening, 15)
        for s in stalled:
            s.close()

    def test_mTLS_requiresAClientCertificateFromTheConfiguredCA(self):
        node = self.node("--proxy.tls.client-cas", self.pki.path("ca.crt"), *self.node_client_certificate())
        self.assertEqual(self.https(node, "/bytes/1", context=self.pki.client_context("client")), (200, b"x"))
        for certificate in (None, "stranger", "expired"):
            with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected), msg=str(certificate)):
                self.https(node, "/bytes/1", context=self.pki.client_context(certificate))
        curl = subprocess.run(["curl", "-sS", "--cacert", self.pki.path("ca.crt"), "-H", "x-pico-endpoint: app", f"https://localhost:{node.proxy}/"],
                              capture_output=True, text=True, timeout=20)
        self.assertNotEqual(curl.returncode, 0, "curl without a client certificate is refused")
        with open(node.log.name) as log:
            text = log.read()
        self.assertIn("TLS connection failed", text)
        self.assertIn("peer did not return a certificate", text)
        self.assertIn("certificate: certificate has expired", text, "an expired client certificate is refused, and the log says so")

    def tls_upstream_node(self, *flags, bind_host="127.0.0.1"):
        node = Node("--upstream.tls.cert", self.pki.path("server.crt"), "--upstream.tls.key", self.pki.path("server.key"), *flags, bind_host=bind_host)
        self.processes.append(node.process)
        return node

    def agent(self, node, url, *flags):
        log = open(os.path.join(harness.TMP, f"agent-tls-{node.upstream}-{len(self.processes)}.log"), "w")
        process = subprocess.Popen([harness.PICO, "agent", "http", "app", str(self.http_port), "--connect.url", url, "--event-loops", "1", *flags], stderr=log)
        self.processes.append(process)
        return process, log.name

    def test_agentsDialTheUpstreamPortOverTLS_httpsAndWss_withRootsAndNames(self):
        node = self.tls_upstream_node()
        for url in (f"https://localhost:{node.upstream}", f"wss://127.0.0.1:{node.upstream}/"):
            process, _ = self.agent(node, url, "--connect.tls.root-cas", self.pki.path("ca.crt"))
            wait_until(lambda: node.endpoints().get("app", 0) >= 1, what=f"an agent over {url}")
            self.assertEqual(harness.request(node, "POST", "/echo", body=b"z" * 200_000)[:2], (200, b"z" * 200_000))
            process.kill()
            process.wait()
            wait_until(lambda: node.endpoints().get("app", 0) == 0, what="the agent gone")
        # A plain agent is told what is wrong; an agent that does not trust the node's CA says why.
        plain, plain_log = self.agent(node, f"http://127.0.0.1:{node.upstream}")
        untrusting, untrusting_log = self.agent(node, f"https://localhost:{node.upstream}", "--connect.tls.root-cas", self.pki.path("stranger-ca.crt"))
        # The certificate names localhost and 127.0.0.1, not 127.0.0.2.
        elsewhere = self.tls_upstream_node(bind_host="127.0.0.2")
        wrong_name, wrong_name_log = self.agent(elsewhere, f"https://127.0.0.2:{elsewhere.upstream}", "--connect.tls.root-cas", self.pki.path("ca.crt"))
        time.sleep(1.5)
        self.assertEqual(node.endpoints().get("app", 0) + elsewhere.endpoints().get("app", 0), 0, "none of them got a tunnel")
        for log, expected in ((plain_log, "400: plain HTTP request sent to a TLS port"),
                              (untrusting_log, "certificate verify failed; certificate: unable to get local issuer certificate"),
                              (wrong_name_log, "certificate verify failed; certificate: IP address mismatch")):
            with open(log) as handle:
                self.assertIn(expected, handle.read())
        for process in (plain, untrusting, wrong_name):
            process.kill()

    def test_upstreamMTLS_admitsOnlyAgentsWithACertificateFromItsCA(self):
        node = self.tls_upstream_node("--upstream.tls.client-cas", self.pki.path("ca.crt"))
        refused, refused_log = self.agent(node, f"https://localhost:{node.upstream}", "--connect.tls.root-cas", self.pki.path("ca.crt"))
        stranger, _ = self.agent(node, f"https://localhost:{node.upstream}", "--connect.tls.root-cas", self.pki.path("ca.crt"),
                                 "--connect.tls.cert", self.pki.path("stranger.crt"), "--connect.tls.key", self.pki.path("stranger.key"))
        time.sleep(1.5)
        self.assertEqual(node.endpoints().get("app", 0), 0)
        admitted, _ = self.agent(node, f"https://localhost:{node.upstream}", "--connect.tls.root-cas", self.pki.path("ca.crt"),
                                 "--connect.tls.cert", self.pki.path("client.crt"), "--connect.tls.key", self.pki.path("client.key"))
        wait_until(lambda: node.endpoints().get("app", 0) == 1, what="the agent with a certificate")
        self.assertEqual(harness.request(node, "GET", "/bytes/3")[:2], (200, b"xxx"))
        with open(node.log.name) as handle:
            self.assertIn("peer did not return a certificate", handle.read())
        for process in (refused, stranger, admitted):
            process.kill()

    def test_agentTLSSettings_areChecked(self):
        for flags, expected in (
            (["--connect.url", "http://localhost:8001", "--connect.tls.root-cas", "/x"], "connect.tls needs an https:// or wss:// connect.url"),
            (["--connect.url", "https://localhost:8001", "--connect.tls.cert", "/x"], "connect.tls.cert and connect.tls.key go together"),
            (["--connect.url", "ftp://localhost:8001"], "expected an http://, ws://, https:// or wss:// URL"),
        ):
            result = subprocess.run([harness.PICO, "agent", "http", "app", "3000", *flags], capture_output=True, text=True, timeout=20)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn(expected, result.stderr)
        missing = subprocess.run([harness.PICO, "agent", "http", "app", "3000", "--connect.url", "https://localhost:1", "--connect.tls.root-cas", "/nonexistent/ca.crt"],
                                 capture_output=True, text=True, timeout=20)
        self.assertEqual(missing.returncode, 1, missing.stderr)
        self.assertIn("connect.tls: loading the root CAs /nonexistent/ca.crt", missing.stderr)

    def test_badTLSSettings_stopTheNode_withTheKeyAndFileNamed(self):
        missing = subprocess.run([harness.PICO, "server", "--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0",
                                  "--admin.bind-addr", "127.0.0.1:0", "--cluster.gossip.bind-addr", "127.0.0.1:0",
                                  "--proxy.tls.cert", "/nonexistent/tls.crt", "--proxy.tls.key", self.pki.path("server.key")],
                                 capture_output=True, text=True, timeout=20)
        self.assertEqual(missing.returncode, 1)
        self.assertIn("proxy.tls: loading the certificate chain /nonexistent/tls.crt: No such file or directory", missing.stderr)
        mismatched = subprocess.run([harness.PICO, "server", "--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0",
                                     "--admin.bind-addr", "127.0.0.1:0", "--cluster.gossip.bind-addr", "127.0.0.1:0",
                                     "--proxy.tls.cert", self.pki.path("server.crt"), "--proxy.tls.key", self.pki.path("client.key")],
                                    capture_output=True, text=True, timeout=20)
        self.assertEqual(mismatched.returncode, 1)
        self.assertIn("key values mismatch", mismatched.stderr)
        half = subprocess.run([harness.PICO, "server", "--proxy.tls.key", self.pki.path("server.key")], capture_output=True, text=True, timeout=20)
        self.assertEqual(half.returncode, 2)
        self.assertIn("proxy.tls.key is set without proxy.tls.cert", half.stderr)

    # Admin port, `pico status`, node-to-node forwards and certificate reloads.

    def admin_context(self, certificate=None):
        return self.pki.client_context(certificate)

    def tls_node(self, host, certificate, *flags):
        """A node on `host` whose proxy and admin ports serve `certificate`, trusting the test CA
        for forwards."""
        node = Node("--proxy.tls.cert", self.pki.path(f"{certificate}.crt"), "--proxy.tls.key", self.pki.path(f"{certificate}.key"),
                    "--admin.tls.cert", self.pki.path(f"{certificate}.crt"), "--admin.tls.key", self.pki.path(f"{certificate}.key"),
                    "--proxy.tls.client.root-cas", self.pki.path("ca.crt"), *flags, bind_host=host, admin_tls=self.admin_context())
        self.processes.append(node.process)
        return node

    def status(self, node, *arguments):
        return subprocess.run([harness.PICO, "status", *arguments, "-o", "json", "--server.url", f"https://{node.host}:{node.admin}"],
                              capture_output=True, text=True, timeout=20)

    def https_to(self, node, path, context=None, server_hostname=None):
        context = context or self.pki.client_context()
        connection = http.client.HTTPSConnection(node.host, node.proxy, timeout=10, context=context)
        connection.request("GET", path, headers={"x-pico-endpoint": "app"})
        response = connection.getresponse()
        return response.status, response.read()

    def established(self, source, destination):
        """TCP connections from `source` (an IP) to `destination` (ip:port) now."""
        out = subprocess.run(["ss", "-Htn", "state", "established", "src", source, "dst", destination], capture_output=True, text=True).stdout
        return len([line for line in out.splitlines() if line.strip()])

    def test_adminPortTLS_servesStatusAndProbes_andPicoStatusSpeaksIt(self):
        node = self.tls_node("127.0.0.1", "server")
        self.assertEqual(node.admin_get("/health")[0], 200)
        out = self.status(node, "upstream", "endpoints", "--tls.root-cas", self.pki.path("ca.crt"))
        self.assertEqual((out.returncode, out.stdout.strip()), (0, "{}"), out.stderr)
        # The system's roots do not know the test CA: pico status says why.
        untrusted = self.status(node, "upstream", "endpoints")
        self.assertEqual(untrusted.returncode, 1)
        self.assertIn("certificate verify failed", untrusted.stderr)
        plain = subprocess.run([harness.PICO, "status", "upstream", "endpoints", "--server.url", f"http://127.0.0.1:{node.admin}"],
                               capture_output=True, text=True, timeout=20)
        self.assertEqual(plain.returncode, 1)
        self.assertIn("plain HTTP request sent to a TLS port", plain.stderr)
        for flags, expected in ((["--tls.root-cas", "/x"], "--tls.* flags need an https:// --server.url"),
                                (["--server.url", "https://localhost:1", "--tls.cert", "/x"], "--tls.cert and --tls.key go together")):
            bad = subprocess.run([harness.PICO, "status", "upstream", "endpoints", *flags], capture_output=True, text=True, timeout=20)
            self.assertEqual(bad.returncode, 2, bad.stderr)
            self.assertIn(expected, bad.stderr)
        expiry = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", self.pki.path("server.crt")], capture_output=True, text=True).stdout
        metrics = node.admin_get("/metrics")[1].decode()
        self.assertIn('pico_tls_certificate_expiry_timestamp_seconds{listener="admin"}', metrics)
        self.assertTrue(expiry.startswith("notAfter="))

    def test_adminMTLS_letsProbesThrough_andAsksACertificateForEverythingElse(self):
        node = self.tls_node("127.0.0.1", "server", "--admin.tls.client-cas", self.pki.path("ca.crt"),
                             "--proxy.tls.client.cert", self.pki.path("client.crt"), "--proxy.tls.client.key", self.pki.path("client.key"))
        for path in ("/health", "/ready", "/health?x=1"):
            self.assertEqual(node.admin_get(path)[0], 200, f"{path} without a certificate (a Kubernetes probe)")
        status, body = node.admin_get("/metrics")
        self.assertEqual((status, b"client certificate required" in body), (403, True))
        for path in ("/status/upstream/endpoints", "//metrics", "/health/../metrics", "/health?forward=anyone", "/ready?forward=x"):
            self.assertEqual(node.admin_get(path)[0], 403, f"{path}: no route and no dial to another node without a certificate")
        # HEAD gets a head, whatever the answer, so a kept-alive connection stays in step.
        connection = http.client.HTTPSConnection(node.host, node.admin, timeout=5, context=self.admin_context())
        for method, path, status in (("HEAD", "/metrics", 403), ("HEAD", "/health", 200), ("GET", "/health", 200)):
            connection.request(method, path)
            response = connection.getresponse()
            self.assertEqual((response.status, response.read()), (status, b""), f"{method} {path}")
        connection.close()
        with_certificate = Node.__new__(Node)
        with_certificate.host, with_certificate.admin, with_certificate.admin_tls = node.host, node.admin, self.admin_context("client")
        self.assertEqual(with_certificate.admin_get("/metrics")[0], 200)
        out = self.status(node, "cluster", "node", "local", "--tls.root-cas", self.pki.path("ca.crt"),
                          "--tls.cert", self.pki.path("client.crt"), "--tls.key", self.pki.path("client.key"))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["status"], "active")
        refused = self.status(node, "cluster", "node", "local", "--tls.root-cas", self.pki.path("ca.crt"))
        self.assertEqual(refused.returncode, 1)
        self.assertIn("client certificate required", refused.stderr)
        # A certificate from another CA is refused in the handshake, probes or not.
        stranger = Node.__new__(Node)
        stranger.host, stranger.admin, stranger.admin_tls = node.host, node.admin, self.admin_context("stranger")
        with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
            stranger.admin_get("/health")

    def test_forwardsAndAdminForwards_runOverTLS_onReusedConnections_checkedByNodeAddress(self):
        holder = self.tls_node("127.0.0.2", "node-127.0.0.2")
        entry = self.tls_node("127.0.0.3", "node-127.0.0.3", "--cluster.join", f"127.0.0.2:{holder.gossip}", "--event-loops", "1")
        self.processes.append(start_agent(holder, "app", self.http_port))
        wait_until(lambda: len(json.loads(entry.admin_get("/status/cluster/nodes")[1])) == 2, what="two members")
        wait_until(lambda: self.https_to(entry, "/bytes/1")[0] == 200, what="the entry node to route app")
        connection = http.client.HTTPSConnection(entry.host, entry.proxy, timeout=10, context=self.pki.client_context())
        for size in (3, 200_000, 5) * 7:
            connection.request("GET", f"/bytes/{size}", headers={"x-pico-endpoint": "app"})
            response = connection.getresponse()
            self.assertEqual((response.status, len(response.read())), (200, size))
        connection.close()
        # Sequential forwards from its one loop reuse one pooled TLS connection (the holder's
        # proxy port serves TLS only).
        self.assertEqual(self.established("127.0.0.3", f"127.0.0.2:{holder.proxy}"), 1)
        holder_id = json.loads(holder.admin_get("/status/cluster/nodes/local")[1])["id"]
        out = self.status(entry, "upstream", "endpoints", "--forward", holder_id, "--tls.root-cas", self.pki.path("ca.crt"))
        self.assertEqual((out.returncode, json.loads(out.stdout or 'null')), (0, {"app": 1}), out.stderr)
        # A node that does not trust the holder's CA forwards nothing, and says why.
        doubting = self.tls_node("127.0.0.4", "node-127.0.0.4", "--cluster.join", f"127.0.0.2:{holder.gossip}",
                                 "--proxy.tls.client.root-cas", self.pki.path("stranger-ca.crt"), "--proxy.upstream-wait", "0")
        wait_until(lambda: len(json.loads(doubting.admin_get("/status/cluster/nodes")[1])) == 3, what="three members")
        self.assertEqual(self.https_to(doubting, "/bytes/1")[0], 502)
        self.assertEqual(doubting.admin_get(f"/status/upstream/endpoints?forward={holder_id}")[0], 502)
        with open(doubting.log.name) as log:
            self.assertIn("certificate verify failed", log.read())

    def test_holdersWhoseTLSIsRefused_eitherWay_arePassedOver_evenForAPost(self):
        # The request waits inside the TLS session until the handshake completes: a refused
        # handshake sent nothing, so even a POST (bodyless here) goes to another holder. So does
        # one refused by a holder that does not accept this node's certificate: under TLS 1.3
        # that alert comes after the client's side of the handshake, but before the holder
        # reads a byte of the request.
        good = self.tls_node("127.0.0.2", "node-127.0.0.2")
        distrusted = Node("--proxy.tls.cert", self.pki.path("stranger.crt"), "--proxy.tls.key", self.pki.path("stranger.key"),
                          "--proxy.tls.client.root-cas", self.pki.path("ca.crt"), "--cluster.join", f"127.0.0.2:{good.gossip}", bind_host="127.0.0.4")
        self.processes.append(distrusted.process)
        refusing = self.tls_node("127.0.0.5", "node-127.0.0.5", "--cluster.join", f"127.0.0.2:{good.gossip}",
                                 "--proxy.tls.client-cas", self.pki.path("stranger-ca.crt"),
                                 "--proxy.tls.client.cert", self.pki.path("node-127.0.0.5.crt"), "--proxy.tls.client.key", self.pki.path("node-127.0.0.5.key"))
        entry = self.tls_node("127.0.0.3", "node-127.0.0.3", "--cluster.join", f"127.0.0.2:{good.gossip}",
                              "--proxy.tls.client.cert", self.pki.path("node-127.0.0.3.crt"), "--proxy.tls.client.key", self.pki.path("node-127.0.0.3.key"))
        for holder in (good, distrusted, refusing):
            self.processes.append(start_agent(holder, "app", self.http_port))
        wait_until(lambda: json.loads(entry.admin_get("/status/upstream/endpoints")[1]) == {} and
                   sum(1 for row in json.loads(entry.admin_get("/status/cluster/nodes")[1]) if row.get("endpoints")) == 3, what="three holders known")
        statuses = []
        connection = http.client.HTTPSConnection(entry.host, entry.proxy, timeout=10, context=self.pki.client_context())
        for _ in range(60):
            # No Content-Length at all: a request without a body, which a refused holder never saw.
            connection.putrequest("POST", "/echo")
            connection.putheader("x-pico-endpoint", "app")
            connection.endheaders()
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        connection.close()
        self.assertEqual(statuses, [200] * 60)
        with open(entry.log.name) as log:
            text = log.read()
        self.assertIn("unable to get local issuer certificate", text, "the distrusted holder was tried")
        self.assertIn("alert unknown ca", text, "the refusing holder was tried")

    def test_idleForwardConnections_closeBeforeThePeersIdleTimeout_soAReuseNeverMeetsItsClose(self):
        # Every node runs with idle_timeout 2s: pooled forward connections close after 1 s, so a
        # request never goes out on a connection the peer is just closing.
        holder = self.tls_node("127.0.0.2", "node-127.0.0.2", "--proxy.http.idle-timeout", "2s")
        entry = self.tls_node("127.0.0.3", "node-127.0.0.3", "--cluster.join", f"127.0.0.2:{holder.gossip}", "--proxy.http.idle-timeout", "2s",
                              "--event-loops", "1")
        self.processes.append(start_agent(holder, "app", self.http_port))
        wait_until(lambda: self.https_to(entry, "/bytes/1")[0] == 200, what="a forward")
        self.assertEqual(self.established("127.0.0.3", f"127.0.0.2:{holder.proxy}"), 1)
        time.sleep(1.6)
        self.assertEqual(self.established("127.0.0.3", f"127.0.0.2:{holder.proxy}"), 0, "the pool closed it first")
        self.assertEqual(self.https_to(entry, "/bytes/2"), (200, b"xx"))

    def test_sighupBeforeTheNodeRuns_doesNotEndIt_andDevClustersKeepAPlainAdminPort(self):
        # The config file is a FIFO: the node blocks reading it, mid-start, until the test writes.
        fifo = os.path.join(harness.TMP, "server-config.fifo")
        os.mkfifo(fifo)
        node_log = open(os.path.join(harness.TMP, "sighup-at-start.log"), "w")
        process = subprocess.Popen([harness.PICO, "server", "--config.path", fifo], stderr=node_log)
        self.processes.append(process)
        with open(fifo, "w") as config:  # opens once the node opened it to read
            process.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            self.assertIsNone(process.poll(), "SIGHUP while the node starts does not end it")
            admin = harness.free_port()
            config.write(f"proxy:\n  bind_addr: 127.0.0.1:0\nupstream:\n  bind_addr: 127.0.0.1:0\nadmin:\n  bind_addr: 127.0.0.1:{admin}\n"
                         f"cluster:\n  gossip:\n    bind_addr: 127.0.0.1:0\n")
        wait_until(lambda: http.client.HTTPConnection("127.0.0.1", admin, timeout=2).request("GET", "/ready") is None, what="the node up")
        process.send_signal(signal.SIGHUP)
        time.sleep(0.2)
        self.assertIsNone(process.poll(), "nor once it runs")
        refused = subprocess.run([harness.PICO, "test", "cluster", "--", "--admin.tls.cert", "/x"], capture_output=True, text=True, timeout=20)
        self.assertEqual(refused.returncode, 2)
        self.assertIn("pico test cluster keeps the admin ports plain", refused.stderr)

    def test_picoStatus_boundsTheWholeAnswer_againstAServerThatDrips(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        def drip():
            connection, _ = listener.accept()
            try:
                for _ in range(60):
                    connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    time.sleep(0.2)
            except OSError:
                pass
            connection.close()
        threading.Thread(target=drip, daemon=True).start()
        started = time.time()
        out = subprocess.run([harness.PICO, "status", "gossip", "nodes", "--server.url", f"http://127.0.0.1:{port}", "--timeout", "1s"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("did not end in time", out.stderr)
        self.assertLess(time.time() - started, 3)
        listener.close()

    def test_forwardsCheckASharedServerName_whenOneIsSet(self):
        flags = ("--proxy.tls.client.server-name", "pico-peers.test.")
        # The admin port keeps a per-address certificate here (the test's own client checks it).
        holder = Node("--proxy.tls.cert", self.pki.path("peers.crt"), "--proxy.tls.key", self.pki.path("peers.key"),
                      "--proxy.tls.client.root-cas", self.pki.path("ca.crt"), *flags, bind_host="127.0.0.2")
        self.processes.append(holder.process)
        self.processes.append(start_agent(holder, "app", self.http_port))
        entries = []
        for server_name in (True, False):
            entry = Node("--proxy.tls.cert", self.pki.path("peers.crt"), "--proxy.tls.key", self.pki.path("peers.key"),
                         "--proxy.tls.client.root-cas", self.pki.path("ca.crt"), *(flags if server_name else ()), "--proxy.upstream-wait", "0",
                         "--cluster.join", f"127.0.0.2:{holder.gossip}", bind_host="127.0.0.3" if server_name else "127.0.0.4")
            self.processes.append(entry.process)
            entries.append(entry)
        wait_until(lambda: len(json.loads(holder.admin_get("/status/cluster/nodes")[1])) == 3, what="three members")
        context = ssl.create_default_context(cafile=self.pki.path("ca.crt"))
        context.check_hostname = False  # the clients' side of this test is not what is checked
        named, unnamed = entries
        wait_until(lambda: self.https_to(named, "/bytes/2", context)[0] == 200, what="a forward checked by server name")
        self.assertEqual(self.https_to(named, "/bytes/4", context), (200, b"xxxx"))
        # Without server_name the certificate must carry the node's address, which this one does not.
        self.assertEqual(self.https_to(unnamed, "/bytes/4", context)[0], 502)
        with open(unnamed.log.name) as log:
            self.assertIn("IP address mismatch", log.read())

    def rotating_node(self, *flags):
        """A node serving localhost's certificate from files in a directory of its own."""
        directory = os.path.join(harness.TMP, f"rotating-{len(self.processes)}")
        os.makedirs(directory, exist_ok=True)
        self.install(directory, "server")
        node = Node("--proxy.tls.cert", os.path.join(directory, "tls.crt"), "--proxy.tls.key", os.path.join(directory, "tls.key"), *flags)
        self.processes.append(node.process)
        self.processes.append(start_agent(node, "app", self.http_port))
        return node, directory

    def install(self, directory, name, atomic=True):
        """Puts `name`'s certificate and key in place: atomically (written aside, renamed over, as
        Kubernetes does), or rewritten in place, the certificate first."""
        for suffix in ("crt", "key"):
            with open(self.pki.path(f"{name}.{suffix}"), "rb") as handle:
                data = handle.read()
            target = os.path.join(directory, f"tls.{suffix}")
            if atomic:
                with open(target + ".new", "wb") as handle:
                    handle.write(data)
                os.replace(target + ".new", target)
            else:
                with open(target, "wb") as handle:
                    handle.write(data)

    def served_name(self, node):
        context = self.pki.client_context()
        with socket.create_connection(("127.0.0.1", node.proxy), timeout=10) as raw, context.wrap_socket(raw, server_hostname="localhost") as tls:
            return dict(pair[0] for pair in tls.getpeercert()["subject"])["commonName"]

    def test_certificatesReloadOnSIGHUP_openConnectionsKeepTheirs_andABrokenFileKeepsTheOld(self):
        node, directory = self.rotating_node("--tls.reload-interval", "0")
        self.assertEqual(self.served_name(node), "localhost")
        kept = http.client.HTTPSConnection("localhost", node.proxy, timeout=10, context=self.pki.client_context())
        kept.request("GET", "/bytes/1", headers={"x-pico-endpoint": "app"})
        self.assertEqual(kept.getresponse().read(), b"x")
        self.install(directory, "rotated-1")
        time.sleep(0.3)
        self.assertEqual(self.served_name(node), "localhost", "without SIGHUP and with periodic checks off, nothing changes")
        node.process.send_signal(signal.SIGHUP)
        wait_until(lambda: self.served_name(node) == "rotated-1", what="the new certificate after SIGHUP")
        kept.request("GET", "/bytes/2", headers={"x-pico-endpoint": "app"})
        self.assertEqual(kept.getresponse().read(), b"xx", "an open connection carries on")
        kept.close()
        with open(os.path.join(directory, "tls.crt"), "w") as handle:
            handle.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        node.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "TLS certificate files not loaded" in open(node.log.name).read(), what="the refusal logged")
        self.assertEqual(self.served_name(node), "rotated-1", "the certificate in use stays")
        self.assertEqual(self.https(node, "/bytes/3"), (200, b"xxx"))
        with open(node.log.name) as log:
            text = log.read()
        self.assertIn('"tls":"proxy.tls"', text.replace(" ", ""))
        self.assertIn("TLS certificate files loaded", text)

    def test_aCertificateRotatedUnderTraffic_failsNoRequest_andTheExpiryMetricFollows(self):
        node, directory = self.rotating_node("--tls.reload-interval", "100ms")
        def expiry():
            metrics = node.admin_get("/metrics")[1].decode()
            return next(line.split()[-1] for line in metrics.splitlines() if line.startswith('pico_tls_certificate_expiry_timestamp_seconds{listener="proxy"}'))
        first_expiry = expiry()
        failures, answered, stop = [], [0], threading.Event()
        def client():
            while not stop.is_set():
                try:
                    # A new connection (and handshake) per request, so every rotation is met.
                    self.assertEqual(self.https(node, "/bytes/7"), (200, b"xxxxxxx"))
                    answered[0] += 1
                except Exception as error:  # noqa: BLE001 - every failure is counted
                    failures.append(repr(error))
        threads = [threading.Thread(target=client) for _ in range(4)]
        for thread in threads:
            thread.start()
        for round, name in enumerate(("rotated-1", "rotated-2", "server", "rotated-1", "rotated-2")):
            # Alternately renamed into place and rewritten in place, the certificate before its key.
            self.install(directory, name, atomic=round % 2 == 0)
            wait_until(lambda: self.served_name(node) == (name if name != "server" else "localhost"), what=f"{name} served")
        # SIGHUP under traffic too.
        self.install(directory, "rotated-1", atomic=False)
        node.process.send_signal(signal.SIGHUP)
        wait_until(lambda: self.served_name(node) == "rotated-1", what="rotated-1 after SIGHUP")
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join()
        self.assertEqual(failures, [])
        self.assertGreater(answered[0], 20)
        # rotated-1 is issued for 3 days, the first certificate for 2: the metric follows.
        openssl_end = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", self.pki.path("rotated-1.crt")], capture_output=True, text=True).stdout
        self.assertEqual(int(float(expiry())), ssl.cert_time_to_seconds(openssl_end.strip().split("=", 1)[1]))
        self.assertNotEqual(expiry(), first_expiry)

    def test_anAgentReloadsItsClientCertificate_onSIGHUP_andItsOpenTunnelCarriesOn(self):
        node = self.tls_upstream_node("--upstream.tls.client-cas", self.pki.path("ca.crt"))
        directory = os.path.join(harness.TMP, "agent-files")
        os.makedirs(directory, exist_ok=True)
        for suffix in ("crt", "key"):
            with open(self.pki.path(f"client.{suffix}"), "rb") as source, open(os.path.join(directory, f"tls.{suffix}"), "wb") as target:
                target.write(source.read())
        process, log = self.agent(node, f"https://localhost:{node.upstream}", "--connect.tls.root-cas", self.pki.path("ca.crt"),
                                  "--connect.tls.cert", os.path.join(directory, "tls.crt"), "--connect.tls.key", os.path.join(directory, "tls.key"))
        wait_until(lambda: node.endpoints().get("app", 0) == 1, what="the agent's tunnel")
        for suffix in ("crt", "key"):
            with open(self.pki.path(f"stranger.{suffix}"), "rb") as source, open(os.path.join(directory, f"tls.{suffix}"), "wb") as target:
                target.write(source.read())
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: "TLS certificate files loaded" in open(log).read(), what="the agent's reload")
        self.assertEqual(harness.request(node, "GET", "/bytes/3")[:2], (200, b"xxx"), "the open tunnel carries on")
        with open(os.path.join(directory, "tls.key"), "w") as handle:
            handle.write("broken")
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: "TLS certificate files not loaded" in open(log).read(), what="the agent's refusal")
        self.assertEqual(harness.request(node, "GET", "/bytes/3")[:2], (200, b"xxx"))


if __name__ == "__main__":
    print(f"logs in {harness.TMP}")
    unittest.main(verbosity=2)
