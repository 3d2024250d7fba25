import Glibc
import PicoModel

/// `pico test cluster`: N `pico server` child processes on loopback, with a front balancer on the
/// proxy, upstream and admin ports that sends each connection to a ready node, like a Kubernetes
/// Service. Nodes can be scaled and restarted one at a time (new node IDs), so a person can watch
/// `pico status cluster nodes` while it happens. Loop-confined.
public final class DevCluster {
    /// One node slot: its ports and its current process.
    final class Slot {
        let index: Int
        let proxy: UInt16
        let upstream: UInt16
        let admin: UInt16
        let gossip: UInt16
        var process: ChildProcess?
        var ready = false
        var generation = 0
        /// The generation last told that its admin port serves TLS (said once per start).
        var toldAdminTLS: Int?
        /// Part of the cluster the person asked for (its gossip address is a join seed).
        var wanted = false

        init(index: Int, base: UInt16) {
            self.index = index
            let first = base + 10 * UInt16(index + 1)
            (self.proxy, self.upstream, self.admin, self.gossip) = (first, first + 1, first + 2, first + 3)
        }
    }

    public let loop: EventLoop
    let executable: String
    let basePort: UInt16
    let logDirectory: String
    let extraFlags: [String]
    private var slots: [Slot] = []
    private var balancers: [FrontBalancer] = []
    private var pollTimer: LoopTimer?
    private var busy = false
    private var next = 0
    /// Lines for the person at the terminal.
    public var say: (String) -> Void = { _ in }

    /// Most nodes a development cluster runs.
    public static let maxNodes = 9

    public init(executable: String, basePort: UInt16, logDirectory: String, extraFlags: [String], loop: EventLoop) {
        self.executable = executable
        self.basePort = basePort
        self.logDirectory = logDirectory
        self.extraFlags = extraFlags
        self.loop = loop
    }

    /// Starts `nodes` nodes and the balancer on `basePort` (proxy), +1 (upstream), +2 (admin).
    public func start(nodes: Int) throws(SocketError) {
        let host = "127.0.0.1"
        self.balancers = [
            try FrontBalancer(address: Address(host: host, port: self.basePort), loop: self.loop) { [unowned self] in self.pick(\.proxy) },
            try FrontBalancer(address: Address(host: host, port: self.basePort + 1), loop: self.loop) { [unowned self] in self.pick(\.upstream) },
            try FrontBalancer(address: Address(host: host, port: self.basePort + 2), loop: self.loop) { [unowned self] in self.pick(\.admin) },
        ]
        for index in 0..<min(nodes, Self.maxNodes) { self.slot(index).wanted = true }
        for index in 0..<min(nodes, Self.maxNodes) { self.launch(self.slot(index)) }
        self.poll()
    }

    /// The balancer's addresses and every node's, for the terminal.
    public func describe() -> String {
        var text = "front balancer (ready nodes only): proxy http://127.0.0.1:\(self.basePort)  upstream http://127.0.0.1:\(self.basePort + 1)  admin http://127.0.0.1:\(self.basePort + 2)\n"
        for slot in self.slots where slot.process != nil {
            text += "  node \(slot.index): proxy :\(slot.proxy) upstream :\(slot.upstream) admin :\(slot.admin) gossip :\(slot.gossip) \(slot.ready ? "ready" : "not ready")  log \(self.logPath(slot))\n"
        }
        return text
    }

    /// Runs one command line: `scale <n>`, `restart`, `nodes`; answers through `say`.
    public func command(_ line: String) {
        let words = line.split(separator: " ").map(String.init)
        switch words.first {
        case "nodes", "status":
            self.say(self.describe())
        case "scale":
            guard words.count == 2, let count = Int(words[1]), (1...Self.maxNodes).contains(count) else {
                self.say("usage: scale <1-\(Self.maxNodes)>\n")
                return
            }
            self.scale(to: count)
        case "restart":
            guard !self.busy else {
                self.say("a rolling restart is already running\n")
                return
            }
            self.rollingRestart(self.slots.filter { $0.process != nil }.map(\.index))
        case nil:
            break
        default:
            self.say("commands: nodes, scale <n>, restart, quit\n")
        }
    }

    /// Stops every node gracefully (SIGTERM), then calls `done`.
    public func shutdown(_ done: @escaping () -> Void) {
        for balancer in self.balancers { balancer.close() }
        for slot in self.slots { slot.process?.send(SIGTERM) }
        self.waitForExits(done)
    }

    // MARK: Nodes

    private func slot(_ index: Int) -> Slot {
        while self.slots.count <= index { self.slots.append(Slot(index: self.slots.count, base: self.basePort)) }
        return self.slots[index]
    }

    private func logPath(_ slot: Slot) -> String { "\(self.logDirectory)/node-\(slot.index).log" }

    private func launch(_ slot: Slot) {
        slot.generation += 1
        // Seeds are the nodes that are (or are about to be) running: a join never waits on
        // addresses nobody listens on.
        let join = self.slots.filter(\.wanted).map { "127.0.0.1:\($0.gossip)" }.joined(separator: ",")
        let arguments = ["server", "--proxy.bind-addr", "127.0.0.1:\(slot.proxy)", "--upstream.bind-addr", "127.0.0.1:\(slot.upstream)",
                         "--admin.bind-addr", "127.0.0.1:\(slot.admin)", "--cluster.gossip.bind-addr", "127.0.0.1:\(slot.gossip)",
                         "--cluster.join", join, "--cluster.abort-if-join-fails", "false", "--cluster.node-id-prefix", "node-\(slot.index)-",
                         "--grace-period", "10s"] + self.extraFlags
        do {
            slot.process = try ChildProcess(executable: self.executable, arguments: arguments, logPath: self.logPath(slot))
            slot.ready = false
            self.say("node \(slot.index) started (pid \(slot.process!.pid))\n")
        } catch {
            self.say("node \(slot.index) could not start: \(error)\n")
        }
    }

    private func scale(to count: Int) {
        let running = self.slots.filter { $0.process != nil }
        if count > running.count {
            var added: [Slot] = []
            for index in 0..<Self.maxNodes where self.slot(index).process == nil && running.count + added.count < count {
                self.slot(index).wanted = true
                added.append(self.slot(index))
            }
            for slot in added { self.launch(slot) }
        } else {
            for slot in running.sorted(by: { $0.index > $1.index }).prefix(running.count - count) {
                slot.wanted = false
                slot.ready = false
                slot.generation += 1
                slot.process?.send(SIGTERM)
                self.say("node \(slot.index) stopping (SIGTERM)\n")
            }
        }
    }

    /// One node at a time: out of the balancer, SIGTERM, wait for its exit, start it again, wait
    /// until it is ready, then the next.
    private func rollingRestart(_ indexes: [Int]) {
        guard let index = indexes.first else {
            self.busy = false
            self.say("rolling restart done\n")
            return
        }
        self.busy = true
        let slot = self.slot(index)
        slot.ready = false
        slot.generation += 1
        slot.process?.send(SIGTERM)
        self.say("restarting node \(index)\n")
        self.whenExited(slot) { [unowned self] in
            self.launch(slot)
            self.whenReady(slot) { [unowned self] in self.rollingRestart(Array(indexes.dropFirst())) }
        }
    }

    private func whenExited(_ slot: Slot, _ then: @escaping () -> Void) {
        guard let process = slot.process, !process.poll() else {
            slot.process = nil
            then()
            return
        }
        self.loop.schedule(after: .milliseconds(100)) { [unowned self] in self.whenExited(slot, then) }
    }

    private func whenReady(_ slot: Slot, _ then: @escaping () -> Void) {
        guard slot.ready else {
            self.loop.schedule(after: .milliseconds(100)) { [unowned self] in self.whenReady(slot, then) }
            return
        }
        then()
    }

    private func waitForExits(_ done: @escaping () -> Void) {
        let running = self.slots.filter { slot in slot.process.map { !$0.poll() } ?? false }
        guard running.isEmpty else {
            self.loop.schedule(after: .milliseconds(100)) { [unowned self] in self.waitForExits(done) }
            return
        }
        done()
    }

    // MARK: Readiness and balancing

    /// Asks every node's `/ready` every 200 ms, and notices exits.
    private func poll() {
        for slot in self.slots {
            guard let process = slot.process else { continue }
            if process.poll() {
                if !self.busy { self.say("node \(slot.index) exited with status \(process.exitStatus ?? -1)\n") }
                if !self.busy { slot.process = nil }
                slot.ready = false
                continue
            }
            // An answer about an earlier process of the slot (it was restarted meanwhile) is stale.
            let generation = slot.generation
            AdminForward.get("/ready", from: Address(host: "127.0.0.1", port: slot.admin), loop: self.loop, tls: nil) { [unowned self] answer in
                guard slot.generation == generation, slot.process != nil else { return }
                slot.ready = answer?.status == 200
                // A node given admin.tls (in a config file) answers the plain poll 400: say why it
                // never turns ready, once per start of the node.
                if answer?.status == 400, slot.toldAdminTLS != generation {
                    slot.toldAdminTLS = generation
                    self.say("node \(slot.index) answers /ready with 400: its admin port serves TLS, and pico test cluster needs it plain\n")
                }
            }
        }
        self.pollTimer = self.loop.schedule(after: .milliseconds(200)) { [unowned self] in self.poll() }
    }

    /// A ready node's port for a new connection, round robin.
    private func pick(_ port: KeyPath<Slot, UInt16>) -> Address? {
        let ready = self.slots.filter { $0.ready && $0.process != nil }
        guard !ready.isEmpty else { return nil }
        self.next &+= 1
        return Address(host: "127.0.0.1", port: ready[self.next % ready.count][keyPath: port])
    }
}
