"""Tokens on the proxy port, checked against token libraries no one here wrote: PyJWT and
`cryptography` make the keys and sign tokens of every algorithm Pico verifies; hostile tokens
are made by hand. Every refusal is a 401 with Piko's JSON body, and the node keeps serving.

Run: python3 system-tests/e2e/test_auth.py [path to pico, default .build/debug/pico]
"""
import base64
import hashlib
import signal
import struct
import hmac
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import harness
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from harness import Node, start_agent, start_backend

harness.configure(sys.argv.pop(1) if len(sys.argv) > 1 else ".build/debug/pico")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pki import PKI  # noqa: E402  (system-tests/pki.py)

SECRET = "a-shared-secret-of-at-least-32-bytes!"


def pem(public_key):
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header, claims, signature=b"sig"):
    """A token of any shape: `header` and `claims` as dicts or raw JSON text."""
    part = lambda value: b64(value.encode() if isinstance(value, str) else json.dumps(value).encode())
    return f"{part(header)}.{part(claims)}.{b64(signature)}"


class Keys:
    """One key of each type, made by `cryptography`."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.p256 = ec.generate_private_key(ec.SECP256R1())
        self.p384 = ec.generate_private_key(ec.SECP384R1())
        self.ed25519 = ed25519.Ed25519PrivateKey.generate()
        self.other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_p256 = ec.generate_private_key(ec.SECP256R1())
        self.other_p384 = ec.generate_private_key(ec.SECP384R1())
        self.other_ed25519 = ed25519.Ed25519PrivateKey.generate()

    def other_key(self, algorithm):
        """A key of the right type that the node does not hold."""
        return {"HS": "some-other-secret-of-32-bytes-or-more", "RS": self.other_rsa, "PS": self.other_rsa, "ES256": self.other_p256,
                "ES384": self.other_p384, "EdDSA": self.other_ed25519}.get(algorithm) or {"HS": "some-other-secret-of-32-bytes-or-more",
                                                                                        "RS": self.other_rsa, "PS": self.other_rsa}[algorithm[:2]]

    def signing_key(self, algorithm):
        return {"HS": SECRET, "RS": self.rsa, "PS": self.rsa, "ES256": self.p256, "ES384": self.p384, "EdDSA": self.ed25519}.get(
            algorithm, {"HS": SECRET, "RS": self.rsa, "PS": self.rsa}.get(algorithm[:2]))


def token(keys, algorithm="HS256", lifetime=300, **claims):
    body = {"exp": int(time.time()) + lifetime, **claims}
    return jwt.encode(body, keys.signing_key(algorithm), algorithm=algorithm)


def get(node, path="/", endpoint="app", headers=None, method="GET", body=None):
    connection = http.client.HTTPConnection(node.host, node.proxy, timeout=10)
    all_headers = {"x-pico-endpoint": endpoint} if endpoint else {}
    all_headers.update(headers or {})
    connection.request(method, path, body=body, headers=all_headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data, response


def bearer(value):
    return {"Authorization": f"Bearer {value}"}


def auth_flags(keys, port="proxy"):
    return [f"--{port}.auth.hmac-secret-key", SECRET, f"--{port}.auth.rsa-public-key", pem(keys.rsa.public_key()),
            f"--{port}.auth.ecdsa-public-key", pem(keys.p256.public_key()), f"--{port}.auth.ed25519-public-key", pem(keys.ed25519.public_key())]


def failures(node, port, reason, admin_token=None):
    connection = http.client.HTTPConnection(node.host, node.admin, timeout=10)
    connection.request("GET", "/metrics", headers=bearer(admin_token) if admin_token else {})
    for line in connection.getresponse().read().decode().splitlines():
        if line.startswith(f'pico_auth_failures_total{{port="{port}",reason="{reason}"}}'):
            return int(line.split()[-1])
    return 0


class ProcessesTestCase(unittest.TestCase):
    """A test class whose processes (nodes, agents, the backend) are killed after its tests."""

    @classmethod
    def setUpClass(cls):
        cls.processes = []
        cls.backend, cls.http_port, cls.ws_port = start_backend()
        cls.processes.append(cls.backend)

    @classmethod
    def tearDownClass(cls):
        for process in cls.processes:
            process.kill()

    def spawn_agent(self, node, endpoint, *flags, port=None, wait=True):
        """A `pico agent http` with one tunnel for `endpoint` on `node` (killed after the class),
        and its log's path; with `wait`, once the node lists the endpoint."""
        log = open(os.path.join(harness.TMP, f"agent-{endpoint}-{len(self.processes)}.log"), "w")
        process = subprocess.Popen([harness.PICO, "agent", "http", endpoint, str(port or self.http_port), "--connect.url", f"http://{node.host}:{node.upstream}",
                                    "--event-loops", "1", *flags], stderr=log)
        self.processes.append(process)
        if wait:
            harness.wait_until(lambda: json.loads(node.admin_get("/status/upstream/endpoints")[1]).get(endpoint, 0) >= 1, what=f"agent for {endpoint}")
        return process, log.name


class ProxyAuthTests(ProcessesTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.keys = Keys()
        cls.node = cls.start(*auth_flags(cls.keys))
        # A node that takes P-384 tokens and checks audience and issuer.
        cls.strict = cls.start("--proxy.auth.ecdsa-public-key", pem(cls.keys.p384.public_key()), "--proxy.auth.audience", "pico-proxy",
                               "--proxy.auth.issuer", "https://idp.test", "--proxy.auth.leeway", "2s")

    @classmethod
    def start(cls, *flags):
        node = Node(*flags)
        cls.processes.append(node.process)
        cls.processes.append(start_agent(node, "app", cls.http_port))
        cls.processes.append(start_agent(node, "other", cls.http_port))
        return node

    def assertRefused(self, node, headers, message, endpoint="app"):
        status, body, response = get(node, headers=headers, endpoint=endpoint)
        self.assertEqual((status, json.loads(body)), (401, {"error": message}), headers)
        self.assertEqual(response.getheader("WWW-Authenticate"), "Bearer")
        self.assertEqual(response.getheader("Content-Type"), "application/json")

    def test_everyAlgorithm_fromPyJWT_isVerified(self):
        algorithms = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "EdDSA"]
        for algorithm in algorithms:
            status, body, _ = get(self.node, headers=bearer(token(self.keys, algorithm)))
            self.assertEqual((status, body), (200, b"hello from backend"), algorithm)
            # The same algorithm under a key of the right type the node does not hold: refused.
            forged = jwt.encode({"exp": int(time.time()) + 300}, self.keys.other_key(algorithm), algorithm=algorithm)
            self.assertRefused(self.node, bearer(forged), "invalid token")
        # PS256 with the longest salt (as some issuers sign): verified, as golang-jwt does.
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        signing_input = f"{b64(json.dumps({'alg': 'PS256'}).encode())}.{b64(json.dumps({'exp': int(time.time()) + 300}).encode())}"
        signature = self.keys.rsa.sign(signing_input.encode(), padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH), hashes.SHA256())
        self.assertEqual(get(self.node, headers=bearer(f"{signing_input}.{b64(signature)}"))[0], 200)
        status, body, _ = get(self.strict, headers=bearer(token(self.keys, "ES384", aud="pico-proxy", iss="https://idp.test")))
        self.assertEqual((status, body), (200, b"hello from backend"))

    def test_theConsumedTokenHeader_neverReachesTheUpstream_butTheClientsOwnAuthorizationDoes(self):
        status, body, _ = get(self.node, "/headers", headers=bearer(token(self.keys)))
        self.assertEqual(status, 200)
        self.assertNotIn(b"authorization", body)
        own = "Basic dXBzdHJlYW06cGFzcw=="
        for name in ("x-pico-authorization", "x-piko-authorization"):
            status, body, _ = get(self.node, "/headers", headers={name: f"Bearer {token(self.keys, 'ES256')}", "Authorization": own})
            self.assertEqual(status, 200, name)
            self.assertIn(f"authorization: {own}".encode(), body)
            self.assertNotIn(name.encode(), body)

    def test_missingOrForeignCredentials_getPikosMessages(self):
        self.assertRefused(self.node, {}, "missing authorization")
        self.assertRefused(self.node, {"Authorization": "Basic dXNlcjpwYXNz"}, "unsupported auth type")
        self.assertRefused(self.node, {"Authorization": "Bearer"}, "invalid authorization")
        self.assertRefused(self.node, bearer(token(self.keys, lifetime=-10)), "expired token")
        self.assertGreaterEqual(failures(self.node, "proxy", "missing_authorization"), 1)
        self.assertGreaterEqual(failures(self.node, "proxy", "expired"), 1)

    def test_hostileTokens_get401_andTheNodeKeepsServing(self):
        now = int(time.time())
        rsa_pem = pem(self.keys.rsa.public_key()).encode()
        header = {"alg": "HS256", "typ": "JWT"}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps({'exp': now + 300}).encode())}"
        confusion = signing_input + "." + b64(hmac.new(rsa_pem, signing_input.encode(), hashlib.sha256).digest())
        forged_by_other_key = jwt.encode({"exp": now + 300}, self.keys.other_rsa, algorithm="RS256")
        cases = {
            "alg none": handmade({"alg": "none"}, {"exp": now + 300}, b""),
            "alg none, no signature": handmade({"alg": "none"}, {"exp": now + 300})[:-len(b64(b"sig"))],
            "HS256 keyed with the RSA public key": confusion,
            "signed by another RSA key": forged_by_other_key,
            "ES512": handmade({"alg": "ES512"}, {"exp": now + 300}),
            "not yet valid": token(self.keys, nbf=now + 3600),
            "bad base64": "!!!." + signing_input.split(".")[1] + ".abc",
            "two parts": signing_input,
            "deeply nested claims": handmade(header, '{"a":' + "[" * 5000 + "]" * 5000 + "}"),
            "claims not an object": handmade(header, "[1,2]"),
            "exp not a number": handmade(header, {"exp": "tomorrow"}),
            "kid like a path": jwt.encode({"exp": now + 300}, SECRET, algorithm="HS256", headers={"kid": "../../../../etc/passwd"})[:-4] + "AAAA",
            "crit header": jwt.encode({"exp": now + 300}, SECRET, algorithm="HS256", headers={"crit": ["exp"]}),
            "60 KiB of token": "e" * 60_000,
            "truncated signature": token(self.keys, "ES256")[:-10],
        }
        for name, value in cases.items():
            self.assertRefused(self.node, bearer(value), "invalid token")
        # A megabyte of token is over the head limit: 431, and the node goes on.
        big = socket.create_connection((self.node.host, self.node.proxy), timeout=10)
        big.sendall(b"GET / HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer " + b"e" * (1 << 20) + b"\r\n\r\n")
        self.assertIn(b" 431 ", big.recv(4096))
        big.close()
        status, _, _ = get(self.node, headers=bearer(token(self.keys)))
        self.assertEqual(status, 200)
        self.assertGreaterEqual(failures(self.node, "proxy", "bad_signature"), 2)
        self.assertGreaterEqual(failures(self.node, "proxy", "unsupported_algorithm"), 2)
        self.assertGreaterEqual(failures(self.node, "proxy", "malformed_token"), 5)

    def test_audienceIssuerAndLeeway_atTheStrictNode(self):
        good = {"aud": "pico-proxy", "iss": "https://idp.test"}
        self.assertRefused(self.strict, bearer(token(self.keys, "ES384", aud="elsewhere", iss="https://idp.test")), "invalid token")
        self.assertRefused(self.strict, bearer(token(self.keys, "ES384", aud=["a", "b"], iss="https://idp.test")), "invalid token")
        self.assertRefused(self.strict, bearer(token(self.keys, "ES384", aud="pico-proxy", iss="https://evil.test")), "invalid token")
        self.assertRefused(self.strict, bearer(token(self.keys, "ES384", iss="https://idp.test")), "invalid token")
        # The strict node has no P-256, HMAC or RSA key: those tokens cannot verify there.
        self.assertRefused(self.strict, bearer(token(self.keys, "ES256", **good)), "invalid token")
        self.assertRefused(self.strict, bearer(token(self.keys, "HS256", **good)), "invalid token")
        # Within the 2 s leeway: a token that expired a second ago and one valid a second from now.
        self.assertEqual(get(self.strict, headers=bearer(token(self.keys, "ES384", lifetime=-1, **good)))[0], 200)
        self.assertEqual(get(self.strict, headers=bearer(token(self.keys, "ES384", nbf=int(time.time()) + 1, **good)))[0], 200)
        self.assertRefused(self.strict, bearer(token(self.keys, "ES384", lifetime=-5, **good)), "expired token")
        self.assertEqual(failures(self.strict, "proxy", "wrong_audience"), 3)
        self.assertGreaterEqual(failures(self.strict, "proxy", "wrong_issuer"), 1)

    def test_endpointClaims_limitWhichEndpointsATokenReaches(self):
        # Piko's issuers nest the list ({"piko": {"endpoints": [...]}}); Pico's is the same under
        # "pico"; a flat dotted name limits the token too.
        for claims in ({"piko": {"endpoints": ["app"]}}, {"pico": {"endpoints": ["app"]}}, {"pico.endpoints": ["app"]}, {"piko.endpoints": ["app"]}):
            claim = json.dumps(claims)
            limited = token(self.keys, **claims)
            self.assertEqual(get(self.node, headers=bearer(limited))[0], 200, claim)
            self.assertRefused(self.node, bearer(limited), "endpoint not permitted", endpoint="other")
        for unlimited in (token(self.keys), token(self.keys, pico={"endpoints": []}), token(self.keys, piko={"tenant": "t"})):
            self.assertEqual(get(self.node, endpoint="other", headers=bearer(unlimited))[0], 200)
        self.assertGreaterEqual(failures(self.node, "proxy", "endpoint_not_permitted"), 2)

    def test_theCache_matchesTokensByTheirBytes(self):
        # A token whose signature holds a K, verified and cached; then the same bytes with that K
        # as the Kelvin sign (U+212A), which Swift's String equality takes as equal: refused.
        good = next(t for t in (token(self.keys, lifetime=300 + n) for n in range(200)) if "K" in t.rsplit(".", 1)[1])
        self.assertEqual(get(self.node, headers=bearer(good))[0], 200)
        head, signature = good.rsplit(".", 1)
        look_alike = head + "." + signature.replace("K", "\u212a", 1)
        connection = http.client.HTTPConnection(self.node.host, self.node.proxy, timeout=10)
        connection.putrequest("GET", "/")
        connection.putheader("x-pico-endpoint", "app")
        connection.putheader("Authorization", ("Bearer " + look_alike).encode("utf-8"))
        connection.endheaders()
        self.assertNotEqual(connection.getresponse().status, 200)

    def test_noPicoOrPikoTokenHeader_reachesTheUpstream_andTwoDifferentTokensAre400(self):
        one = token(self.keys)
        both = {"x-pico-authorization": f"Bearer {one}", "x-piko-authorization": f"Bearer {one}", "Authorization": "Basic b3du"}
        status, body, _ = get(self.node, "/headers", headers=both)
        self.assertEqual(status, 200)
        self.assertNotIn(b"x-pico-authorization", body)
        self.assertNotIn(b"x-piko-authorization", body)
        self.assertIn(b"authorization: Basic b3du", body)
        # Two different tokens: the client means one of them, and the node does not guess.
        different = {**both, "x-piko-authorization": f"Bearer {token(self.keys, 'ES256')}"}
        status, body, _ = get(self.node, "/headers", headers=different)
        self.assertEqual((status, json.loads(body)), (400, {"error": "x-pico-authorization and x-piko-authorization carry different tokens"}))

    def test_aCachedToken_stillExpiresOnTime(self):
        short = token(self.keys, lifetime=2)
        connection = http.client.HTTPConnection(self.node.host, self.node.proxy, timeout=10)
        for _ in range(5):
            connection.request("GET", "/", headers={"x-pico-endpoint": "app", **bearer(short)})
            response = connection.getresponse()
            self.assertEqual((response.status, response.read()), (200, b"hello from backend"))
        time.sleep(max(0, jwt.decode(short, options={"verify_signature": False})["exp"] - time.time()) + 0.2)
        connection.request("GET", "/", headers={"x-pico-endpoint": "app", **bearer(short)})
        response = connection.getresponse()
        self.assertEqual((response.status, json.loads(response.read())), (401, {"error": "expired token"}))
        # The connection stays open for the next request.
        connection.request("GET", "/", headers={"x-pico-endpoint": "app", **bearer(token(self.keys))})
        self.assertEqual(connection.getresponse().status, 200)

    def test_aRefusedPost_readsAndDropsItsBody_andTheConnectionGoesOn(self):
        connection = http.client.HTTPConnection(self.node.host, self.node.proxy, timeout=10)
        connection.request("POST", "/echo", body=b"x" * 100_000, headers={"x-pico-endpoint": "app"})
        response = connection.getresponse()
        self.assertEqual((response.status, json.loads(response.read())), (401, {"error": "missing authorization"}))
        connection.request("POST", "/echo", body=b"hello", headers={"x-pico-endpoint": "app", **bearer(token(self.keys))})
        response = connection.getresponse()
        self.assertEqual((response.status, response.read()), (200, b"hello"))


class UpstreamAndAdminAuthTests(ProcessesTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.keys = Keys()
        cls.node = Node(*auth_flags(cls.keys, "upstream"), *auth_flags(cls.keys, "admin"))
        cls.processes.append(cls.node.process)
        cls.admin_token = token(cls.keys, "EdDSA", lifetime=3600)

    def admin(self, path, headers=None):
        connection = http.client.HTTPConnection(self.node.host, self.node.admin, timeout=10)
        connection.request("GET", path, headers={**bearer(self.admin_token), **(headers or {})} if headers is None else headers)
        response = connection.getresponse()
        return response.status, response.read()

    def agent(self, endpoint, *flags, wait=True):
        # The node's admin port needs a token: wait through the class's own admin client.
        process, log = self.spawn_agent(self.node, endpoint, *flags, wait=False)
        if wait:
            harness.wait_until(lambda: json.loads(self.admin("/status/upstream/endpoints")[1]).get(endpoint, 0) >= 1, what=f"agent for {endpoint}")
        return process, log

    def test_agentsNeedATokenThatListsTheirEndpoint_soNoOneHijacksAnother(self):
        owner_token = token(self.keys, "RS256", lifetime=3600, **{"pico.endpoints": ["payments"]})
        self.agent("payments", "--connect.token", owner_token)
        # Without a token, with a token for another endpoint, or with a forged one: refused, and
        # the agent (a static token cannot get better) exits 1 naming the reason.
        for flags, reason in (([], "missing authorization"),
                              (["--connect.token", token(self.keys, "ES256", piko={"endpoints": ["other"]})], "endpoint not permitted"),
                              (["--connect.token", token(self.keys, "ES256", pico={"endpoints": ["other"]})], "endpoint not permitted"),
                              (["--connect.token", jwt.encode({"exp": int(time.time()) + 60}, self.keys.other_rsa, algorithm="RS256")], "invalid token")):
            process, log = self.agent("payments", *flags, wait=False)
            self.assertEqual(process.wait(timeout=20), 1)
            with open(log) as handle:
                self.assertIn(f"401: {reason}", handle.read())
        self.assertEqual(json.loads(self.admin("/status/upstream/endpoints")[1]).get("payments"), 1, "only the owner's tunnel")
        self.assertGreaterEqual(failures(self.node, "upstream", "endpoint_not_permitted", self.admin_token), 1)

    def test_twoDifferentTokens_inPicosAndPikosFields_are400_afterTheTokenVerified(self):
        good = f"Bearer {token(self.keys, 'RS256')}"
        self.assertEqual(TenantTests.handshake(self.node, "two", {"x-pico-authorization": good, "x-piko-authorization": "Bearer other"}),
                         (400, b'{"error":"x-pico-authorization and x-piko-authorization carry different tokens"}\n'))
        self.assertEqual(TenantTests.handshake(self.node, "two", {"x-pico-authorization": "Bearer bad", "x-piko-authorization": good})[0], 401)
        self.assertEqual(TenantTests.handshake(self.node, "two", {"x-pico-authorization": good, "x-piko-authorization": good})[0], 101)

    def test_aTunnelEndsWhenItsTokenExpires_andATokenFileRenewsItWithoutALostRequest(self):
        path = os.path.join(harness.TMP, "agent.token")
        with open(path, "w") as handle:
            handle.write(token(self.keys, "HS256", lifetime=3) + "\n")
        _, log = self.agent("renewed", "--connect.token-file", path)
        static, static_log = self.agent("fixed", "--connect.token", token(self.keys, "HS256", lifetime=3))
        with open(path, "w") as handle:
            handle.write(token(self.keys, "PS256", lifetime=3600))
        deadline = time.time() + 6
        statuses = []
        while time.time() < deadline:
            statuses.append(get(self.node, endpoint="renewed")[0])
            time.sleep(0.02)
        self.assertEqual(set(statuses), {200}, "the renewed agent served throughout")
        with open(log) as handle:
            self.assertGreaterEqual(handle.read().count("connected"), 2, "it dialled again with the file's new token")
        # The fixed token expired: its tunnel is gone and its agent, refused, exits.
        self.assertEqual(static.wait(timeout=20), 1)
        with open(static_log) as handle:
            self.assertIn("401: expired token", handle.read())
        self.assertNotIn("fixed", json.loads(self.admin("/status/upstream/endpoints")[1]))

    def test_refusedAgents_areLoggedAtMostFiveTimesASecond(self):
        started = time.time()
        for _ in range(200):
            connection = socket.create_connection((self.node.host, self.node.upstream), timeout=5)
            connection.sendall(b"GET /pico/v1/upstream/flood HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            self.assertIn(b" 401 ", connection.recv(4096))
            connection.close()
        seconds = time.time() - started
        with open(self.node.log.name) as handle:
            lines = handle.read().count('"agent refused"')
        self.assertLessEqual(lines, 5 * (int(seconds) + 2) * 2, f"{lines} lines in {seconds:.1f} s")

    def test_disableDisconnectOnExpiry_keepsTheTunnel(self):
        node = Node(*auth_flags(self.keys, "upstream"), "--upstream.auth.disable-disconnect-on-expiry", "true")
        self.processes.append(node.process)
        process, _ = self.spawn_agent(node, "kept", "--connect.token", token(self.keys, lifetime=2))
        time.sleep(3.5)
        self.assertEqual(json.loads(node.admin_get("/status/upstream/endpoints")[1]).get("kept"), 1, "the tunnel outlived its token")
        self.assertEqual(get(node, endpoint="kept")[0], 200)
        self.assertIsNone(process.poll())

    def test_adminRoutesNeedAToken_butTheProbesDoNot(self):
        for path in ("/health", "/ready"):
            self.assertEqual(self.admin(path, headers={})[0], 200, path)
        for path in ("/metrics", "/status/upstream/endpoints", "/status/cluster/nodes", "/status/gossip/nodes", "/health?forward=x"):
            status, body = self.admin(path, headers={})
            self.assertEqual((status, json.loads(body)), (401, {"error": "missing authorization"}), path)
        self.assertEqual(self.admin("/metrics", headers=bearer(token(self.keys, lifetime=-5)))[0], 401)
        status, body = self.admin("/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b'pico_auth_failures_total{port="admin",reason="missing_authorization"}', body)

    def test_picoStatus_sendsItsToken(self):
        url = ["--server.url", f"http://{self.node.host}:{self.node.admin}"]
        refused = subprocess.run([harness.PICO, "status", "cluster", "nodes", *url], capture_output=True, text=True, timeout=20)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("missing authorization", refused.stderr)
        answered = subprocess.run([harness.PICO, "status", "cluster", "nodes", *url, "--server.token", self.admin_token, "-o", "json"],
                                  capture_output=True, text=True, timeout=20)
        self.assertEqual(answered.returncode, 0, answered.stderr)
        self.assertIn(self.node.host, answered.stdout)
        path = os.path.join(harness.TMP, "status.token")
        with open(path, "w") as handle:
            handle.write(self.admin_token + "\n")
        from_file = subprocess.run([harness.PICO, "status", "upstream", "endpoints", *url, "--server.token-file", path], capture_output=True, text=True, timeout=20)
        self.assertEqual(from_file.returncode, 0, from_file.stderr)


def gossip_key():
    return base64.b64encode(os.urandom(32)).decode()


def gossip_aad(channel):
    """The associated data of a sealed gossip message: datagram 1, state request 2, reply 3."""
    return b"pico-gossip" + bytes([0xB8, 0x01, channel])


def metric(node, name):
    for line in node.admin_get("/metrics")[1].decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


class GossipSecurityTests(ProcessesTestCase):
    """Sealed gossip, checked against the `cryptography` package's AES-GCM."""

    def node(self, *flags, wait_for="/ready"):
        node = Node(*flags, wait_for=wait_for)
        self.processes.append(node.process)
        return node

    def members(self, node):
        return {row["id"]: row["status"] for row in json.loads(node.admin_get("/status/cluster/nodes")[1])}

    def test_aNodesGossip_opensWithAnIndependentAESGCM_andOnlyWithItsKey(self):
        key = gossip_key()
        # A UDP and a TCP socket on one port number (a free UDP port's TCP twin may be taken).
        for _ in range(20):
            seed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            seed.bind(("127.0.0.1", 0))
            listener = socket.socket()
            try:
                listener.bind(("127.0.0.1", seed.getsockname()[1]))
                break
            except OSError:
                seed.close()
                listener.close()
        seed.settimeout(10)
        listener.listen(4)
        node = self.node("--cluster.gossip.secret-keys", key, "--cluster.join", f"127.0.0.1:{seed.getsockname()[1]}", "--cluster.abort-if-join-fails", "false",
                         wait_for="/health")
        # The join's state exchange arrives on TCP (length-prefixed), its probes on UDP.
        listener.settimeout(10)
        connection, _ = listener.accept()
        connection.settimeout(10)
        length = struct.unpack(">I", connection.recv(4, socket.MSG_WAITALL))[0]
        request = connection.recv(length, socket.MSG_WAITALL)
        self.assertEqual(request[:2], b"\xb8\x01")
        plain = AESGCM(base64.b64decode(key)).decrypt(request[2:14], request[14:], gossip_aad(2))
        self.assertEqual(plain[:2], b"\xb7\x01", "a plain gossip message inside")
        with self.assertRaises(Exception):
            AESGCM(base64.b64decode(gossip_key())).decrypt(request[2:14], request[14:], gossip_aad(2))
        with self.assertRaises(Exception):
            AESGCM(base64.b64decode(key)).decrypt(request[2:14], request[14:], gossip_aad(1))
        connection.close()
        listener.close()
        seed.close()
        # A state request sealed by `cryptography` is opened and answered by the node, and its
        # sealed reply opens with `cryptography` under the reply channel.
        exchange = socket.create_connection((node.host, node.gossip), timeout=10)
        nonce = os.urandom(12)
        sealed = b"\xb8\x01" + nonce + AESGCM(base64.b64decode(key)).encrypt(nonce, plain, gossip_aad(2))
        exchange.sendall(struct.pack(">I", len(sealed)) + sealed)
        length = struct.unpack(">I", exchange.recv(4, socket.MSG_WAITALL))[0]
        reply = exchange.recv(length, socket.MSG_WAITALL)
        exchange.close()
        self.assertEqual(AESGCM(base64.b64decode(key)).decrypt(reply[2:14], reply[14:], gossip_aad(3))[:2], b"\xb7\x01")
        reply_plain = plain
        # Garbage, a flipped bit and plain text, sent to the node's gossip port: dropped unread.
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        forged = bytearray(b"\xb8\x01" + nonce + AESGCM(base64.b64decode(key)).encrypt(nonce, reply_plain, gossip_aad(1)))
        forged[-1] ^= 1
        for datagram in (bytes(forged), b"\xb7\x01" + os.urandom(60), b"\xb8\x01" + os.urandom(40)):
            sender.sendto(datagram, (node.host, node.gossip))
        harness.wait_until(lambda: metric(node, "pico_gossip_unauthenticated_total") >= 3, what="the forged datagrams counted")
        self.assertEqual(len(self.members(node)), 1)

    def test_nodesSharingAKeyJoin_aNodeWithAnotherKeyIsNeverHeard(self):
        key = gossip_key()
        first = self.node("--cluster.gossip.secret-keys", key)
        # The second also holds a key the first lacks: it seals with the shared one, its first.
        second = self.node("--cluster.gossip.secret-keys", f"{key},{gossip_key()}", "--cluster.join", f"127.0.0.1:{first.gossip}")
        harness.wait_until(lambda: len(self.members(first)) == 2 and len(self.members(second)) == 2, what="the keyed nodes joined")
        stranger = Node.__new__(Node)
        log = open(os.path.join(harness.TMP, "stranger.log"), "w")
        process = subprocess.Popen([harness.PICO, "server", "--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0",
                                    "--admin.bind-addr", "127.0.0.1:0", "--cluster.gossip.bind-addr", "127.0.0.1:0",
                                    "--cluster.gossip.secret-keys", gossip_key(), "--cluster.join", f"127.0.0.1:{first.gossip}",
                                    "--cluster.join-timeout", "3s"], stderr=log)
        self.processes.append(process)
        self.assertEqual(process.wait(timeout=30), 1, "the stranger could not join and gave up")
        self.assertEqual(len(self.members(first)), 2)
        self.assertGreater(metric(first, "pico_gossip_unauthenticated_total"), 0)
        plain = self.node("--cluster.join", f"127.0.0.1:{first.gossip}", "--cluster.abort-if-join-fails", "false", wait_for="/health")
        time.sleep(2)
        self.assertEqual(len(self.members(first)), 2, "a node without keys is not heard either")
        self.assertEqual(len(self.members(plain)), 1)

    def test_liveKeyRotation_acrossThreeNodes_underTraffic_losesNothing(self):
        http_port = self.http_port
        old, new = gossip_key(), gossip_key()
        files = [os.path.join(harness.TMP, f"gossip-keys-{index}") for index in range(3)]
        for path in files:
            with open(path, "w") as handle:
                handle.write(old + "\n")
        flags = ["--tls.reload-interval", "200ms"]
        nodes = [self.node("--cluster.gossip.secret-keys-file", files[0], *flags)]
        for index in (1, 2):
            nodes.append(self.node("--cluster.gossip.secret-keys-file", files[index], "--cluster.join", f"127.0.0.1:{nodes[0].gossip}", *flags))
        harness.wait_until(lambda: all(len(self.members(node)) == 3 for node in nodes), what="three nodes")
        self.processes.append(start_agent(nodes[2], "app", http_port))
        harness.wait_until(lambda: all(get(node)[0] == 200 for node in nodes), what="every node routes to the agent")
        failures_seen = []
        statuses = []

        def traffic(seconds):
            deadline = time.time() + seconds
            while time.time() < deadline:
                for node in nodes[:2]:
                    status = get(node)[0]
                    statuses.append(status)
                    if status != 200:
                        failures_seen.append(status)
                time.sleep(0.01)

        def fingerprint(key):
            return hashlib.sha256(base64.b64decode(key)).digest()[:8].hex()

        def keys_seen_through(node):
            """`pico status gossip keys` asked through `node`: every member's key fingerprints."""
            result = subprocess.run([harness.PICO, "status", "gossip", "keys", "-o", "json", "--server.url", f"http://127.0.0.1:{node.admin}"],
                                    capture_output=True, text=True, timeout=20)
            self.assertEqual(result.returncode, 0, result.stderr)
            return sorted(tuple(row["keys"]) for row in json.loads(result.stdout))

        self.assertEqual(keys_seen_through(nodes[2]), [(fingerprint(old),)] * 3)
        steps = (f"{old}\n{new}\n", f"{new}\n{old}\n", f"{new}\n")
        for number, step in enumerate(steps):
            # One node at a time, as a rollout of a Secret would reach them.
            for index, path in enumerate(files):
                with open(path, "w") as handle:
                    handle.write(step)
                if index == 1:
                    nodes[index].process.send_signal(signal.SIGHUP)
                if number == 0 and index == 0:
                    # An operator following the rotation sees which member has the step.
                    harness.wait_until(lambda: keys_seen_through(nodes[2]) == [(fingerprint(old),)] * 2 + [(fingerprint(old), fingerprint(new))],
                                       what="the first step seen on node 0 only")
                traffic(0.7)
            traffic(1.0)
        self.assertEqual(keys_seen_through(nodes[1]), [(fingerprint(new),)] * 3)
        table = subprocess.run([harness.PICO, "status", "gossip", "keys", "--server.url", f"http://127.0.0.1:{nodes[0].admin}"], capture_output=True, text=True, timeout=20)
        self.assertIn("every member that answered holds the same keys", table.stdout)
        self.assertNotIn(new, table.stdout + "".join(open(node.log.name).read() for node in nodes), "a key never appears, only its fingerprint")
        self.assertEqual(failures_seen, [], f"{len(failures_seen)} of {len(statuses)} requests failed")
        self.assertGreater(len(statuses), 100, "traffic ran through every step")
        for node in nodes:
            self.assertEqual(set(self.members(node).values()), {"active"}, "nobody suspected or declared dead")
            self.assertEqual(metric(node, "pico_gossip_unauthenticated_total"), 0)
            with open(node.log.name) as handle:
                self.assertEqual(handle.read().count("gossip keys loaded"), 3)
        # The old key is gone everywhere: gossip sealed with it is refused now.
        forged_nonce = os.urandom(12)
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(
            b"\xb8\x01" + forged_nonce + AESGCM(base64.b64decode(old)).encrypt(forged_nonce, b"\xb7\x01" + bytes(20), gossip_aad(1)), (nodes[0].host, nodes[0].gossip))
        harness.wait_until(lambda: metric(nodes[0], "pico_gossip_unauthenticated_total") == 1, what="the old key refused")

    def test_badGossipKeySettings_areRefused(self):
        for flags, expected in ((["--cluster.gossip.secret-keys", "short"], "key 1 is not Base64"),
                                (["--cluster.gossip.secret-keys", base64.b64encode(b"x" * 16).decode()], "key 1 has 16 bytes, not 32"),
                                (["--cluster.gossip.secret-keys", gossip_key(), "--cluster.gossip.secret-keys-file", "/x"], "give one of them"),
                                (["--cluster.gossip.verify-incoming", "false"], "apply with gossip keys only")):
            result = subprocess.run([harness.PICO, "server", "--validate", *flags], capture_output=True, text=True, timeout=20)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn(expected, result.stderr)
        missing = subprocess.run([harness.PICO, "server", "--cluster.gossip.secret-keys-file", "/nonexistent/keys"], capture_output=True, text=True, timeout=20)
        self.assertNotEqual(missing.returncode, 0)
        self.assertIn("cluster.gossip.secret_keys_file: reading /nonexistent/keys: No such file or directory", missing.stderr)


class ClusterAuthTests(ProcessesTestCase):
    """Tokens across a forward: every node checks the token; with sealed gossip a member's proof
    only makes its forwarded fields trusted."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.keys = Keys()

    def pair(self, *flags):
        holder = Node(*auth_flags(self.keys), *flags)
        entry = Node(*auth_flags(self.keys), *flags, "--cluster.join", f"127.0.0.1:{holder.gossip}")
        self.processes += [holder.process, entry.process]
        self.processes.append(start_agent(holder, "app", self.http_port))
        harness.wait_until(lambda: get(entry, headers=bearer(token(self.keys, "ES256")))[0] == 200, what="the entry node routes to the holder")
        return holder, entry

    def test_withSealedGossip_aProvenForwardIsTrusted_butEveryNodeChecksTheToken(self):
        holder, entry = self.pair("--cluster.gossip.secret-keys", gossip_key())
        status, body, _ = get(entry, "/headers", headers=bearer(token(self.keys, "ES256")))
        self.assertEqual(status, 200)
        self.assertNotIn(b"authorization", body)
        self.assertNotIn(b"x-pico-forward", body)
        # A client posing as a node, at the holder: a mark without a proof, with a made-up one,
        # or with one made under another key is not a member's.
        mac = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
        for proof in (None, f"{int(time.time())}.{mac}", "garbage"):
            headers = {"x-pico-forward": "true", **({"x-pico-forward-proof": proof} if proof else {})}
            status, body, _ = get(holder, headers=headers)
            self.assertEqual((status, json.loads(body)), (401, {"error": "missing authorization"}), proof)
        # With a token, a client's mark gets it served but trusted for nothing.
        status, body, _ = get(holder, "/headers", headers={"x-pico-forward": "true", "X-Forwarded-Proto": "https", **bearer(token(self.keys))})
        self.assertEqual(status, 200)
        self.assertIn(b"x-forwarded-proto: http\n", body)

    def test_aMembersProof_neverStandsInForAToken(self):
        # An entry node without proxy.auth (a half-done rollout, a misconfigured pod) in front of
        # a holder with it: the holder still wants a token.
        key = gossip_key()
        holder = Node(*auth_flags(self.keys), "--cluster.gossip.secret-keys", key)
        entry = Node("--cluster.gossip.secret-keys", key, "--cluster.join", f"127.0.0.1:{holder.gossip}")
        self.processes += [holder.process, entry.process]
        self.processes.append(start_agent(holder, "app", self.http_port))
        harness.wait_until(lambda: get(entry, headers=bearer(token(self.keys)))[0] == 200, what="the entry node routes to the holder")
        self.assertEqual(get(entry)[0], 401, "no token, no request, whichever node it entered")

    def test_turningSealingOn_keyedAndPlainNodesServeTokensBothWays(self):
        # The first step of turning sealing on: the keyed node neither requires nor sends sealed
        # gossip, and forwards between it and a node without keys keep working with tokens.
        plain = Node(*auth_flags(self.keys))
        keyed = Node(*auth_flags(self.keys), "--cluster.gossip.secret-keys", gossip_key(), "--cluster.gossip.verify-incoming", "false",
                     "--cluster.gossip.verify-outgoing", "false", "--cluster.join", f"127.0.0.1:{plain.gossip}")
        self.processes += [plain.process, keyed.process]
        self.processes.append(start_agent(plain, "on-plain", self.http_port))
        self.processes.append(start_agent(keyed, "on-keyed", self.http_port))
        for entry, endpoint in ((keyed, "on-plain"), (plain, "on-keyed")):
            harness.wait_until(lambda: get(entry, endpoint=endpoint, headers=bearer(token(self.keys)))[0] == 200, what=f"{endpoint} through the other node")
            self.assertEqual(get(entry, endpoint=endpoint)[0], 401)

    def test_withoutGossipKeys_theHolderChecksTheTokenAgain(self):
        holder, entry = self.pair()
        status, body, _ = get(entry, "/headers", headers=bearer(token(self.keys, "RS256")))
        self.assertEqual(status, 200)
        self.assertNotIn(b"authorization", body)
        self.assertEqual(get(entry)[0], 401)


class TenantTests(ProcessesTestCase):
    """`upstream.tenants`: each tenant's agents need a token its keys verify and name their
    tenant; an endpoint one tenant holds cannot be taken by another, on any node."""

    BLUE = "blue-tenant-secret-of-at-least-32-bytes"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.keys = Keys()
        cls.config = os.path.join(harness.TMP, f"tenants-{os.getpid()}.yaml")
        red = pem(cls.keys.p256.public_key()).strip().replace("\n", "\n          ")
        with open(cls.config, "w") as handle:
            handle.write("upstream:\n  tenants:\n"
                         f"    - id: blue\n      auth:\n        hmac_secret_key: {cls.BLUE}\n"
                         f"    - id: red\n      auth:\n        ecdsa_public_key: |\n          {red}\n")

    def node(self, *flags):
        node = Node("--config.path", self.config, *flags)
        self.processes.append(node.process)
        return node

    def blue(self, lifetime=300, **claims):
        return jwt.encode({"exp": int(time.time()) + lifetime, **claims}, self.BLUE, algorithm="HS256")

    def red(self, lifetime=300, **claims):
        return jwt.encode({"exp": int(time.time()) + lifetime, **claims}, self.keys.p256, algorithm="ES256")

    def agent(self, node, endpoint, tenant, token, wait=True):
        return self.spawn_agent(node, endpoint, "--connect.token", token, *(["--connect.tenant-id", tenant] if tenant else []), wait=wait)

    @staticmethod
    def handshake(node, endpoint, headers):
        """The status and body of a tunnel handshake with `headers`."""
        connection = http.client.HTTPConnection(node.host, node.upstream, timeout=10)
        connection.request("GET", f"/pico/v1/upstream/{endpoint}", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                                          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13", **headers})
        response = connection.getresponse()
        return response.status, response.read()

    def test_agentsNameTheirTenant_andOnlyItsKeysVerifyThem(self):
        node = self.node()
        self.agent(node, "svc", "blue", self.blue())
        self.assertEqual(get(node, endpoint="svc")[0], 200)
        cases = [({**bearer(self.blue())}, 401, "unknown tenant"),                                   # no tenant: upstream.auth is not used
                 ({**bearer(self.blue()), "x-pico-tenant-id": "green"}, 401, "unknown tenant"),
                 ({**bearer(self.red()), "x-pico-tenant-id": "blue"}, 401, "invalid token"),           # red's key cannot sign for blue
                 ({**bearer(self.blue()), "x-pico-tenant-id": "blue", "x-piko-tenant-id": "red"}, 400, "x-pico-tenant-id and x-piko-tenant-id name different tenants"),
                 ({**bearer(self.blue()), "x-pico-tenant-id": "../etc"}, 400, "tenant id must be 1 to 64 letters, digits, '.', '_' or '-'"),
                 ({"x-pico-tenant-id": "blue"}, 401, "missing authorization")]
        for headers, status, message in cases:
            self.assertEqual(self.handshake(node, "other", headers), (status, json.dumps({"error": message}, separators=(",", ":")).encode() + b"\n"), headers)
        # Piko's field names the tenant as well.
        self.assertEqual(self.handshake(node, "svc", {**bearer(self.blue()), "x-piko-tenant-id": "blue"})[0], 101)
        self.assertGreaterEqual(failures(node, "upstream", "unknown_tenant"), 2)

    def test_anEndpointATenantHolds_cannotBeTakenByAnother_onAnyNode(self):
        first = self.node()
        second = self.node("--cluster.join", f"127.0.0.1:{first.gossip}")
        self.agent(first, "payments", "blue", self.blue())
        harness.wait_until(lambda: json.loads(second.admin_get("/status/upstream/tenants")[1]) == {"payments": {"tenant": "blue", "reserved": False}}, what="the second node learns blue holds payments")
        # Red, with a token of its own, is refused at both nodes before its tunnel opens.
        for node in (first, second):
            self.assertEqual(self.handshake(node, "payments", {**bearer(self.red()), "x-pico-tenant-id": "red"}),
                             (409, b'{"error":"endpoint held by another tenant"}\n'))
            # Without a token that verifies, nobody learns who holds what.
            self.assertEqual(self.handshake(node, "payments", {"x-pico-tenant-id": "red"})[0], 401)
        process, log = self.agent(second, "payments", "red", self.red(), wait=False)
        time.sleep(2)
        self.assertIsNone(process.poll(), "409 is retried: the endpoint may be let go")
        with open(log) as handle:
            self.assertIn("409: endpoint held by another tenant", handle.read())
        self.assertEqual(second.endpoints(), {})
        # Every request for payments still reaches blue's agent, through either node.
        self.assertEqual([get(node, endpoint="payments")[0] for node in (first, second, first, second)], [200] * 4)
        # Red registers endpoints no one holds; the metrics count each tenant's own.
        self.agent(second, "reports", "red", self.red())
        harness.wait_until(lambda: json.loads(first.admin_get("/status/upstream/tenants")[1]) == {"payments": {"tenant": "blue", "reserved": False}, "reports": {"tenant": "red", "reserved": False}}, what="both tenants listed")
        metrics = second.admin_get("/metrics")[1].decode()
        self.assertIn('pico_upstreams_tenant_tunnels{tenant="red"} 1', metrics)
        self.assertIn('pico_upstreams_tenant_tunnels{tenant="blue"} 0', metrics)
        self.assertIn('pico_upstreams_tenant_endpoints{tenant="red"} 1', metrics)
        status = subprocess.run([harness.PICO, "status", "upstream", "tenants", "--server.url", f"http://127.0.0.1:{second.admin}"], capture_output=True, text=True, timeout=10)
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertIn("payments", status.stdout)
        self.assertIn("blue", status.stdout)

    def test_aNodeWithoutTenants_cannotTakeATenantsEndpoint(self):
        # A pod started without upstream.tenants (a misconfiguration, or an attacker's node that
        # got in) lets an agent serve `pay` with no token, alone at first; then a bridge joins it
        # to the tenants' cluster. Nodes with tenants never count its claim: blue keeps `pay`.
        first = self.node()
        self.agent(first, "pay", "blue", self.blue())
        rogue = Node()
        self.processes.append(rogue.process)
        directory = tempfile.mkdtemp()
        attacker = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", directory],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.processes.append(attacker)
        attacker_port = int(attacker.stdout.readline().split(" port ")[1].split(" ")[0])
        self.spawn_agent(rogue, "pay", port=attacker_port)
        bridge = self.node("--cluster.join", f"127.0.0.1:{first.gossip},127.0.0.1:{rogue.gossip}")
        harness.wait_until(lambda: sum(row["upstreams"] for row in json.loads(bridge.admin_get("/status/cluster/nodes")[1])) == 2,
                           what="the bridge sees both agents")
        bodies = {get(bridge, endpoint="pay")[1] for _ in range(20)} | {get(first, endpoint="pay")[1] for _ in range(5)}
        self.assertEqual(bodies, {b"hello from backend"}, "only blue's backend answers")
        time.sleep(1)
        self.assertEqual(first.endpoints(), {"pay": 1}, "blue's tunnel stays")
        with open(first.log.name) as handle:
            self.assertNotIn("held by another tenant", handle.read())

    def test_twoTenantsOnTwoSidesThatMeetLater_theOlderClaimKeepsTheEndpoint(self):
        # Two nodes that do not know each other yet (as two sides of a partition): blue takes
        # `shared` on one, red a second later on the other. A third node joins both, the sides
        # merge, and red's tunnel (the younger claim) is closed; its agent is refused after.
        left = self.node()
        right = self.node()
        self.agent(left, "shared", "blue", self.blue())
        time.sleep(1.1)
        process, log = self.agent(right, "shared", "red", self.red())
        bridge = self.node("--cluster.join", f"127.0.0.1:{left.gossip},127.0.0.1:{right.gossip}")
        harness.wait_until(lambda: right.endpoints().get("shared", 0) == 0 and
                           json.loads(right.admin_get("/status/upstream/tenants")[1]).get("shared") == {"tenant": "blue", "reserved": False}, timeout=30,
                           what="red's younger claim gives way on the right node")
        for node in (left, right, bridge):
            self.assertEqual(get(node, endpoint="shared")[0], 200)
        self.assertEqual(left.endpoints(), {"shared": 1})
        with open(right.log.name) as handle:
            self.assertIn("endpoint shared is held by another tenant", handle.read())
        harness.wait_until(lambda: "409: endpoint held by another tenant" in open(log).read(), timeout=30, what="red's agent refused when it dials again")

    def test_aTenantsQuota_boundsItsTunnelsOnANode_andTheAgentBacksOff(self):
        path = os.path.join(harness.TMP, f"tenants-quota-{os.getpid()}.yaml")
        with open(path, "w") as handle:
            handle.write(f"upstream:\n  tenants:\n    - id: blue\n      max_tunnels: 2\n      max_endpoints: 1\n      auth:\n        hmac_secret_key: {self.BLUE}\n")
        node = Node("--config.path", path)
        self.processes.append(node.process)
        self.agent(node, "svc", "blue", self.blue())
        self.agent(node, "svc", "blue", self.blue())
        harness.wait_until(lambda: node.endpoints().get("svc") == 2, what="two tunnels")
        self.agent(node, "svc", "blue", self.blue(), wait=False)
        self.agent(node, "other", "blue", self.blue(), wait=False)
        time.sleep(3)
        self.assertEqual(node.endpoints(), {"svc": 2})
        metrics = node.admin_get("/metrics")[1].decode()
        self.assertIn('pico_upstreams_tenant_tunnels{tenant="blue"} 2', metrics)
        with open(node.log.name) as handle:
            log = handle.read()
        self.assertIn("tenant blue has 2 tunnels on this node, its max_tunnels", log)
        # The refused agents back off instead of dialling in a loop: a few attempts in 3 s.
        self.assertLess(log.count("its max_tunnels"), 20)

    def test_tenantsFromAFile_takeTheirSecretsVerbatim(self):
        # As a Kubernetes Secret mounted as a file: a secret with '#' and '$' is not cut short or
        # expanded, even with --config.expand-env.
        secret = "tenant#secret$with-{odd}-characters-0123456789"
        path = os.path.join(harness.TMP, f"tenants-file-{os.getpid()}.yaml")
        with open(path, "w") as handle:
            handle.write(f"- id: blue\n  auth:\n    hmac_secret_key: '{secret}'\n")
        node = Node("--upstream.tenants-file", path, "--config.expand-env")
        self.processes.append(node.process)
        self.agent(node, "svc", "blue", jwt.encode({"exp": int(time.time()) + 300}, secret, algorithm="HS256"))
        self.assertEqual(get(node, endpoint="svc")[0], 200)
        both = subprocess.run([harness.PICO, "server", "--config.path", self.config, "--upstream.tenants-file", path], capture_output=True, text=True, timeout=10)
        self.assertIn("upstream.tenants and upstream.tenants_file: give one of them", both.stderr)
        missing = subprocess.run([harness.PICO, "server", "--upstream.tenants-file", "/nonexistent/tenants.yaml"], capture_output=True, text=True, timeout=10)
        self.assertIn("upstream.tenants_file: reading /nonexistent/tenants.yaml", missing.stderr)
        with open(path, "w") as handle:
            handle.write("- id: blue\n  auth: {}\n")
        empty = subprocess.run([harness.PICO, "server", "--upstream.tenants-file", path], capture_output=True, text=True, timeout=10)
        self.assertIn(f"{path}:1: upstream.tenants[0]: tenant auth disabled", empty.stderr)

    def test_tenantSettings_mistakesNameTheKey(self):
        cases = [("upstream:\n  tenants:\n    - auth:\n        hmac_secret_key: x\n", "upstream.tenants[0]: missing tenant id"),
                 ("upstream:\n  tenants:\n    - id: a\n", "upstream.tenants[0]: tenant auth disabled"),
                 ("upstream:\n  tenants:\n    - id: a b\n      auth:\n        hmac_secret_key: x\n", "upstream.tenants[0].id: expected 1 to 64"),
                 (f"upstream:\n  tenants:\n    - id: a\n      auth:\n        hmac_secret_key: {SECRET}\n    - id: a\n      auth:\n        hmac_secret_key: {SECRET}\n",
                  "upstream.tenants[1].id: tenant a is listed twice"),
                 ("upstream:\n  tenants:\n    - id: a\n      auth:\n        hmac_secret_keys: x\n", "unknown key upstream.tenants[0].auth.hmac_secret_keys"),
                 ("upstream:\n  tenants:\n    - id: a\n      auth:\n        rsa_public_key: not a key\n", "upstream.tenants[0].auth.rsa_public_key"),
                 ("upstream:\n  tenants:\n    - id: a\n      auth:\n        jwks:\n          endpoint: /nonexistent/jwks.json\n", "upstream.tenants[0].auth.jwks.endpoint file:///nonexistent/jwks.json"),
                 ("upstream:\n  tenants: blue\n", "upstream.tenants: expected a list of {id, auth}"),
                 ("upstream:\n  tenants:\n    - id: a\n      auth: hmac\n", "upstream.tenants[0].auth: expected a mapping of auth keys"),
                 ("upstream:\n  tenants:\n    - id: a\n      auth:\n        rsa_public_key: not a key\n", ":3: upstream.tenants[0].auth.rsa_public_key"),
                 (f"upstream:\n  tenants:\n    - id: a\n      max_tunnels: 0\n      auth:\n        hmac_secret_key: {SECRET}\n", "upstream.tenants[0].max_tunnels: expected a whole number from 1 to 1000000"),
                 ("cluster:\n  max_endpoints_per_member: 70000\n", "cluster.max_endpoints_per_member: expected a whole number from 1 to 65536")]
        for text, expected in cases:
            path = os.path.join(harness.TMP, f"tenants-bad-{os.getpid()}.yaml")
            with open(path, "w") as handle:
                handle.write(text)
            result = subprocess.run([harness.PICO, "server", "--config.path", path], capture_output=True, text=True, timeout=10)
            self.assertNotEqual(result.returncode, 0, text)
            self.assertIn(expected, result.stderr, text)


class KeySetTests(ProcessesTestCase):
    """Keys from a JSON Web Key Set made by jwcrypto, from a file and over https."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from jwcrypto import jwk
        cls.jwk = jwk
        cls.keys = {
            "rsa-1": jwk.JWK.generate(kty="RSA", size=2048, kid="rsa-1"),
            "ec-1": jwk.JWK.generate(kty="EC", crv="P-256", kid="ec-1"),
            "ec-384": jwk.JWK.generate(kty="EC", crv="P-384", kid="ec-384"),
            "ed-1": jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="ed-1"),
            "rsa-2": jwk.JWK.generate(kty="RSA", size=2048, kid="rsa-2"),
        }

    def key_set(self, kids, extra=()):
        keys = [json.loads(self.keys[kid].export_public()) for kid in kids]
        return json.dumps({"keys": keys + list(extra)})

    def upstream_key_set_node(self, name, kids):
        """A node whose upstream port takes the key set in file `name` (fetched every second),
        which holds `kids` at first; returns the node and the file's path."""
        path = os.path.join(harness.TMP, name)
        with open(path, "w") as handle:
            handle.write(self.key_set(kids))
        node = Node("--upstream.auth.jwks.endpoint", path, "--upstream.auth.jwks.cache-ttl", "1s")
        self.processes.append(node.process)
        return node, path

    def token(self, kid, algorithm, lifetime=300):
        private = self.keys[kid].export_to_pem(private_key=True, password=None)
        return jwt.encode({"exp": int(time.time()) + lifetime}, private, algorithm=algorithm, headers={"kid": kid})

    def node(self, *flags):
        node = Node(*flags)
        self.processes.append(node.process)
        self.processes.append(start_agent(node, "app", self.http_port))
        return node

    def test_aKeySetFile_verifiesEveryKeyType_andFollowsRotation(self):
        path = os.path.join(harness.TMP, "jwks.json")
        skipped = [{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}, {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
                   {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"}]
        with open(path, "w") as handle:
            handle.write(self.key_set(["rsa-1", "ec-1", "ec-384", "ed-1"], skipped))
        # One event loop: the cached token below is cached where every request lands.
        node = self.node("--proxy.auth.jwks.endpoint", f"file://{path}", "--proxy.auth.jwks.cache-ttl", "10s", "--event-loops", "1")
        for kid, algorithm in (("rsa-1", "RS256"), ("rsa-1", "PS384"), ("ec-1", "ES256"), ("ec-384", "ES384"), ("ed-1", "EdDSA")):
            self.assertEqual(get(node, headers=bearer(self.token(kid, algorithm)))[0], 200, f"{kid} {algorithm}")
        # A kid the set lacks, and a key of the set's kid that is not the set's: refused.
        self.assertEqual(get(node, headers=bearer(self.token("rsa-2", "RS256")))[0], 401)
        impostor = jwt.encode({"exp": int(time.time()) + 60}, self.keys["rsa-2"].export_to_pem(private_key=True, password=None), algorithm="RS256", headers={"kid": "rsa-1"})
        self.assertEqual(get(node, headers=bearer(impostor))[0], 401)
        with open(node.log.name) as handle:
            log = handle.read()
        self.assertIn('"msg":"key set loaded"', log)
        self.assertIn("a symmetric key", log)
        # Rotation: the IdP adds rsa-2; a token naming it makes the node fetch the set again.
        with open(path, "w") as handle:
            handle.write(self.key_set(["rsa-1", "rsa-2"]))
        time.sleep(10.2)
        harness.wait_until(lambda: get(node, headers=bearer(self.token("rsa-2", "RS256")))[0] == 200, timeout=15, what="rsa-2 learned")
        # The IdP drops rsa-1: once the set is fetched again, rsa-1's tokens (cached or not) fail.
        cached = self.token("rsa-1", "RS256")
        self.assertEqual(get(node, headers=bearer(cached))[0], 200)
        with open(path, "w") as handle:
            handle.write(self.key_set(["rsa-2"]))
        harness.wait_until(lambda: get(node, headers=bearer(cached))[0] == 401, timeout=25, what="rsa-1 refused after the set changed")

    def test_removingAKeyFromTheUpstreamKeySet_closesTheTunnelsItLetIn(self):
        node, path = self.upstream_key_set_node("upstream-jwks.json", ["ec-1", "ed-1"])
        agents = {}
        for name, kid, algorithm in (("doomed", "ec-1", "ES256"), ("kept", "ed-1", "EdDSA")):
            agents[name] = self.spawn_agent(node, name, "--connect.token", self.token(kid, algorithm, lifetime=3600))[0]
        with open(path, "w") as handle:
            handle.write(self.key_set(["ed-1"]))
        # Within a cache_ttl the set is fetched again: the tunnel ec-1 let in is told to go, and
        # its agent, whose token no key verifies now, is refused and exits.
        self.assertEqual(agents["doomed"].wait(timeout=40), 1)
        harness.wait_until(lambda: "doomed" not in node.endpoints(), what="the tunnel gone")
        self.assertEqual(node.endpoints().get("kept"), 1, "the other key's tunnel stays")
        self.assertEqual(get(node, endpoint="kept")[0], 200)
        with open(node.log.name) as handle:
            self.assertIn("the key that verified its token left the key set", handle.read())

    def test_aKeyThatLeavesTheSetDuringAHandshake_keepsItsTunnelOut(self):
        node, path = self.upstream_key_set_node("race-jwks.json", ["ec-1", "ed-1"])
        # A handshake whose head arrives now and whose one-byte body after the key left the set.
        connection = socket.create_connection((node.host, node.upstream), timeout=20)
        connection.sendall(b"GET /pico/v1/upstream/late HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 1\r\n"
                           + f"Authorization: Bearer {self.token('ec-1', 'ES256', lifetime=3600)}\r\n\r\n".encode())
        with open(path, "w") as handle:
            handle.write(self.key_set(["ed-1"]))
        harness.wait_until(lambda: open(node.log.name).read().count('"msg":"key set loaded"') >= 2, timeout=20, what="the set fetched again")
        connection.sendall(b"x")
        self.assertIn(b" 401 ", connection.recv(4096))
        connection.close()
        self.assertNotIn("late", node.endpoints())

    def test_aTenantsKeySet_verifiesItsAgents_andAKeyLeavingItEndsTheirTunnels(self):
        path = os.path.join(harness.TMP, "tenant-jwks.json")
        with open(path, "w") as handle:
            handle.write(self.key_set(["ec-1", "ed-1"]))
        config = os.path.join(harness.TMP, "tenant-jwks.yaml")
        with open(config, "w") as handle:
            handle.write(f"upstream:\n  tenants:\n    - id: green\n      auth:\n        jwks:\n          endpoint: {path}\n          cache_ttl: 1s\n")
        node = Node("--config.path", config)
        self.processes.append(node.process)
        self.spawn_agent(node, "green-app", "--connect.tenant-id", "green", "--connect.token", self.token("ec-1", "ES256", lifetime=3600))
        self.assertEqual(json.loads(node.admin_get("/status/upstream/tenants")[1]), {"green-app": {"tenant": "green", "reserved": False}})
        with open(path, "w") as handle:
            handle.write(self.key_set(["ed-1"]))
        harness.wait_until(lambda: "green-app" not in node.endpoints(), timeout=20, what="the tunnel its removed key let in ends")
        self.assertEqual(json.loads(node.admin_get("/status/upstream/tenants")[1]), {"green-app": {"tenant": "green", "reserved": True}}, "kept for green meanwhile")
        with open(node.log.name) as handle:
            text = handle.read()
        self.assertIn('"auth":"upstream.tenants[0]"', text)
        self.assertIn("the key that verified its token left the key set", text)

    def test_keysAnyoneCouldForgeFor_areRefused(self):
        # An RSA exponent of 1 and Ed25519's identity point verify made-up signatures.
        weak_rsa = json.loads(self.keys["rsa-1"].export_public())
        weak_rsa.update(kid="e1", e="AQ")
        identity = {"kty": "OKP", "crv": "Ed25519", "kid": "id", "x": b64(b"\x01" + bytes(31))}
        path = os.path.join(harness.TMP, "weak-jwks.json")
        with open(path, "w") as handle:
            handle.write(json.dumps({"keys": [weak_rsa, identity]}))
        result = subprocess.run([harness.PICO, "server", "--proxy.auth.jwks.endpoint", path], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("an RSA exponent of 1", result.stderr)
        self.assertIn("small order", result.stderr)
        ed_pem = "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(bytes.fromhex("302a300506032b6570032100") + b"\x01" + bytes(31)).decode() + "\n-----END PUBLIC KEY-----\n"
        result = subprocess.run([harness.PICO, "server", "--validate", "--proxy.auth.ed25519-public-key", ed_pem], capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 2)
        self.assertIn("small order", result.stderr)

    def test_aKeySetOverHTTPS_andBadOnesStopTheNode(self):
        import http.server
        import ssl
        import threading
        certificate, key, ca = PKI(os.path.join(harness.TMP, "jwks-pki")).localhost()
        body = self.key_set(["ec-1"]).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"https://localhost:{server.server_address[1]}/.well-known/jwks.json"
        node = self.node("--proxy.auth.jwks.endpoint", url, "--proxy.auth.jwks.root-cas", ca)
        self.assertEqual(get(node, headers=bearer(self.token("ec-1", "ES256")))[0], 200)
        self.assertEqual(get(node, headers=bearer(self.token("rsa-1", "RS256")))[0], 401)
        for flags, expected in (
            (["--proxy.auth.jwks.endpoint", url], "certificate verify failed"),
            (["--proxy.auth.jwks.endpoint", url.replace("jwks.json", "missing"), "--proxy.auth.jwks.root-cas", ca], "the server answered 404"),
            (["--proxy.auth.jwks.endpoint", "http://localhost/jwks.json"], "http:// is refused"),
            (["--proxy.auth.jwks.endpoint", "/nonexistent/jwks.json"], "No such file or directory"),
            (["--proxy.auth.jwks.endpoint", "/dev/null"], "invalid JSON at byte 0"),
            (["--proxy.auth.jwks.endpoint", url, "--proxy.auth.hmac-secret-key", SECRET], "cannot be combined"),
        ):
            result = subprocess.run([harness.PICO, "server", "--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0",
                                     "--admin.bind-addr", "127.0.0.1:0", "--cluster.gossip.bind-addr", "127.0.0.1:0", *flags],
                                    capture_output=True, text=True, timeout=30)
            self.assertNotEqual(result.returncode, 0, flags)
            self.assertIn(expected, result.stderr, flags)
        big = os.path.join(harness.TMP, "big-jwks.json")
        with open(big, "w") as handle:
            handle.write(json.dumps({"keys": [], "padding": "x" * 300_000}))
        result = subprocess.run([harness.PICO, "server", "--proxy.auth.jwks.endpoint", big], capture_output=True, text=True, timeout=30)
        self.assertIn("larger than 262144 bytes", result.stderr)
        server.shutdown()


class AuthSettingsTests(unittest.TestCase):
    def run_server(self, *flags):
        return subprocess.run([harness.PICO, "server", "--validate", *flags], capture_output=True, text=True, timeout=20)

    def test_badKeys_stopTheNode_withTheSettingNamed(self):
        keys = Keys()
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        for flags, expected in (
            (["--proxy.auth.rsa-public-key", "not a key"], "proxy.auth.rsa_public_key: not a PEM public key"),
            (["--upstream.auth.rsa-public-key", pem(small.public_key())], "upstream.auth.rsa_public_key: an RSA key of 1024 bits"),
            (["--admin.auth.rsa-public-key", pem(keys.p256.public_key())], "admin.auth.rsa_public_key holds a key of type ec-p256"),
            (["--proxy.auth.ecdsa-public-key", pem(keys.ed25519.public_key())], "proxy.auth.ecdsa_public_key holds a key of type ed25519"),
            (["--proxy.auth.leeway", "2d"], "--proxy.auth.leeway: expected a duration from 0s to 24h"),
            (["--proxy.auth.hmac-secret-key", ""], "--proxy.auth.hmac-secret-key: expected a value"),
        ):
            result = self.run_server(*flags)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn(expected, result.stderr)
            for value in flags[1::2]:
                for line in value.splitlines()[1:-1]:
                    self.assertNotIn(line, result.stderr, "a key's text is never echoed")
        self.assertEqual(self.run_server(*auth_flags(keys)).returncode, 0)
        rules_only = self.run_server("--proxy.auth.audience", "pico")
        self.assertEqual(rules_only.returncode, 2)
        self.assertIn("proxy.auth.audience set, but no key", rules_only.stderr)
        path = os.path.join(harness.TMP, "list-audience.yaml")
        with open(path, "w") as handle:
            handle.write(f"proxy:\n  auth:\n    hmac_secret_key: {SECRET}\n    audience: [pico, other]\n")
        listed = self.run_server("--config.path", path)
        self.assertEqual(listed.returncode, 2)
        self.assertIn("proxy.auth.audience: expected one value, not a list", listed.stderr)
        self.assertNotIn(SECRET, listed.stderr)
        self.assertEqual(self.run_server("--proxy.auth.ecdsa-public-key", pem(keys.p384.public_key())).returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
