"""Separate network hosts on one machine for the multi-host tests: one network namespace per
host, joined by a bridge that lives in a namespace of its own, so no traffic touches the
machine's own network. Needs root (and `ip`, `nft`, `dnsmasq`, `ping`).

Hosts get 10.77.0.<n>/24. `/etc/netns/<namespace>/resolv.conf` points every host at the test
DNS server, which `ip netns exec` mounts over /etc/resolv.conf.
"""
import json
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from harness import wait_until  # noqa: E402,F401  (the multi-host tests wait the same way)

PREFIX = "pico-t"
SUBNET = "10.77.0"


def sh(*command, check=True, namespace=None):
    if namespace:
        command = ("ip", "netns", "exec", namespace) + command
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result.stdout


def available():
    """None when this machine can run the multi-host tests, else the reason it cannot."""
    if os.geteuid() != 0:
        return "not root"
    for tool in ("ip", "nft", "dnsmasq", "ping"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    probe = f"{PREFIX}-probe"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"cannot create network namespaces: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class Network:
    """A bridge and the hosts plugged into it."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.switch = f"{PREFIX}-sw"
        self.hosts = {}
        self.processes = []
        self.cleanup()
        sh("ip", "netns", "add", self.switch)
        sh("ip", "link", "add", "br0", "type", "bridge", namespace=self.switch)
        sh("ip", "link", "set", "br0", "up", namespace=self.switch)
        sh("ip", "link", "set", "lo", "up", namespace=self.switch)

    @staticmethod
    def cleanup():
        for line in sh("ip", "netns", "list", check=False).splitlines():
            name = line.split()[0] if line.strip() else ""
            if name.startswith(PREFIX):
                subprocess.run(["ip", "netns", "pids", name], capture_output=True)
                for pid in sh("ip", "netns", "pids", name, check=False).split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
                shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)

    def add_host(self, name, number, dns=None):
        """A host `name` at 10.77.0.<number>; returns its namespace."""
        namespace = f"{PREFIX}-{name}"
        sh("ip", "netns", "add", namespace)
        inside, outside = f"v{number}a", f"v{number}b"
        sh("ip", "link", "add", inside, "netns", namespace, "type", "veth", "peer", "name", outside, "netns", self.switch)
        sh("ip", "link", "set", outside, "master", "br0", namespace=self.switch)
        sh("ip", "link", "set", outside, "up", namespace=self.switch)
        sh("ip", "link", "set", inside, "name", "eth0", namespace=namespace)
        sh("ip", "addr", "add", f"{SUBNET}.{number}/24", "dev", "eth0", namespace=namespace)
        sh("ip", "link", "set", "eth0", "up", namespace=namespace)
        sh("ip", "link", "set", "lo", "up", namespace=namespace)
        if dns:
            os.makedirs(f"/etc/netns/{namespace}", exist_ok=True)
            with open(f"/etc/netns/{namespace}/resolv.conf", "w") as f:
                f.write(f"nameserver {dns}\noptions timeout:1 attempts:2\n")
        self.hosts[name] = (namespace, f"{SUBNET}.{number}", outside)
        return namespace

    def ip(self, name):
        return self.hosts[name][1]

    def start(self, name, command, log):
        """Runs `command` on host `name`; the process is stopped at teardown."""
        namespace = self.hosts[name][0]
        with open(os.path.join(self.workdir, log), "a") as output:
            process = subprocess.Popen(["ip", "netns", "exec", namespace, *command], stdout=output, stderr=output)
        self.processes.append(process)
        return process

    def isolate(self, names, isolated):
        """Moves the hosts `names` to a second bridge (they still reach each other, nobody
        else), or back to the main one."""
        if isolated and "br1" not in sh("ip", "link", "show", namespace=self.switch):
            sh("ip", "link", "add", "br1", "type", "bridge", namespace=self.switch)
            sh("ip", "link", "set", "br1", "up", namespace=self.switch)
        for name in names:
            sh("ip", "link", "set", self.hosts[name][2], "master", "br1" if isolated else "br0", namespace=self.switch)

    def link(self, name, up):
        """Plugs host `name` in or out (its port on the bridge)."""
        sh("ip", "link", "set", self.hosts[name][2], "up" if up else "down", namespace=self.switch)

    def loss(self, name, percent):
        """Drops `percent` % of the packets arriving at host `name` (so every link between two
        such hosts loses that share of its packets), with nftables; None stops it. (The
        machine's kernel has no `netem` qdisc.)"""
        namespace = self.hosts[name][0]
        sh("nft", "delete", "table", "inet", "pico_loss", check=False, namespace=namespace)
        if percent:
            sh("nft", "add", "table", "inet", "pico_loss", namespace=namespace)
            sh("nft", "add", "chain", "inet", "pico_loss", "input", "{ type filter hook input priority 0; }", namespace=namespace)
            sh("nft", "add", "rule", "inet", "pico_loss", "input", "iifname", "eth0", "numgen", "random", "mod", "100", "<", str(percent), "drop",
               namespace=namespace)

    def cut(self, name, peers):
        """Drops every packet (TCP, UDP, ICMP) arriving at host `name` from the hosts `peers`,
        with nftables; None or [] removes the cut. Cutting both hosts of a pair cuts the link
        both ways, silently, as a real network would (a drop on output would fail the sender's
        calls with EPERM instead)."""
        namespace = self.hosts[name][0]
        sh("nft", "delete", "table", "inet", "pico_cut", check=False, namespace=namespace)
        if peers:
            addresses = ", ".join(self.ip(peer) for peer in peers)
            sh("nft", "add", "table", "inet", "pico_cut", namespace=namespace)
            sh("nft", "add", "chain", "inet", "pico_cut", "input", "{ type filter hook input priority 0; }", namespace=namespace)
            sh("nft", "add", "rule", "inet", "pico_cut", "input", "iifname", "eth0", "ip", "saddr", f"{{ {addresses} }}", "drop", namespace=namespace)

    def reaches(self, name, peer):
        """True when one ping from host `name` to host `peer` is answered within a second."""
        result = subprocess.run(["ip", "netns", "exec", self.hosts[name][0], "ping", "-c", "1", "-W", "1", "-q", self.ip(peer)],
                                capture_output=True)
        return result.returncode == 0

    def teardown(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.cleanup()


class Dns:
    """dnsmasq as the headless service: `pico` resolves to the ready pods."""

    def __init__(self, network, host):
        self.network = network
        self.hosts_file = os.path.join(network.workdir, "pods.hosts")
        self.set_records([])
        self.process = network.start(host, ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", f"--addn-hosts={self.hosts_file}",
                                            f"--listen-address={network.ip(host)}", "--bind-interfaces", "--local-ttl=1", "--local=/pico/",
                                            "--pid-file=", "--log-facility=-"], "dnsmasq.log")

    def set_records(self, ips):
        with open(self.hosts_file, "w") as f:
            for ip in ips:
                f.write(f"{ip} pico\n")
        if getattr(self, "process", None) and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)


class PodSet:
    """The pods the balancer may send to, as its JSON file."""

    def __init__(self, workdir):
        self.path = os.path.join(workdir, "pods.json")
        self.write([])

    def write(self, ips):
        temporary = self.path + ".new"
        with open(temporary, "w") as f:
            json.dump([{"ip": ip} for ip in ips], f)
        os.replace(temporary, self.path)
