import PicoModel

/// The simulated world that runs real `ClusterNode`s: pods of a StatefulSet, the network between
/// them, a headless-service DNS name that lists ready pods after a lag, and the event queue that
/// drives it all in virtual time. Single-threaded and deterministic for a given master seed.
public struct SimWorld: Sendable {
    /// Settings of the world.
    public struct Settings: Sendable {
        /// The cluster configuration every pod starts from (addresses and seed are set per boot).
        public var node: ClusterConfiguration
        /// Delay between a readiness change and the DNS answer reflecting it.
        public var dnsLag: Duration = .seconds(1)
        /// Whether DNS also lists pods that are not ready (`publishNotReadyAddresses`).
        public var publishNotReadyAddresses = false
        /// Time a DNS query takes.
        public var dnsQueryTime: Duration = .milliseconds(2)
        /// How many inputs a paused process buffers before new ones are dropped.
        public var pausedInboxLimit = 1_024
        /// Check a pod's invariants after every `invariantCheckInterval`-th step it takes (1: every
        /// step). A check is O(members), so very large clusters sample.
        public var invariantCheckInterval = 1
        /// Delay between a readiness change and the load balancer acting on it.
        public var loadBalancerLag: Duration = .seconds(2)
        /// One-way latency between clients or agents and the load balancer's pods.
        public var edgeLatency: Duration = .milliseconds(1)
        /// How long the kubelet takes to restart an exited container.
        public var kubeletRestartDelay: Duration = .seconds(1)
        /// What every pod's request exchanges run with (the runtime's defaults).
        public var exchange = ExchangeSettings()
        /// How many requests one pod lets wait for a holder at once (`proxy.max_waiting`).
        public var maxWaitingRequests = 1_024

        /// Creates settings around a node configuration.
        public init(node: ClusterConfiguration) {
            self.node = node
        }
    }

    /// The world's settings.
    public let settings: Settings
    /// Current virtual time.
    public internal(set) var now: Instant = .zero
    /// The pods, by index.
    public internal(set) var pods: [SimPod] = []
    /// The network.
    public var network: SimNetwork
    /// Pods the DNS name currently lists (by index, sorted).
    public internal(set) var dnsListing: [Int] = [] {
        didSet { self.dnsAnswer = nil }
    }
    /// The listed pods' addresses in order, as a resolution answers them (nil: work it out again;
    /// cleared when the listing or a pod's address changes). The node sorts the answer itself;
    /// an answer in order already spares a hundred pods sorting a hundred addresses each time.
    var dnsAnswer: [Address]?
    /// The running trace hash of everything that happened.
    public internal(set) var trace = TraceHasher()
    /// Datagrams and bytes sent per pod (index), for traffic figures.
    public internal(set) var datagramsSent: [Int] = []
    /// Datagram bytes sent per pod.
    public internal(set) var bytesSent: [Int] = []
    /// `(time, datagram bytes sent by all pods so far, running pods)` every 10 simulated seconds,
    /// taken by `observe()` (steady-state gossip load is the difference between two samples).
    public internal(set) var byteSamples: [(time: Instant, bytes: Int, running: Int)] = []
    /// Invariant violations seen after any step: `(time, pod name, problem)`.
    public internal(set) var violations: [(Instant, String, String)] = []
    /// The rolling update in progress (or finished), if one was started.
    public internal(set) var rollout: SimRollout?
    /// The surge rolling update in progress (or finished), if one was started.
    public internal(set) var surgeRollout: SimSurgeRollout?
    /// Agents, clients, the load balancer and the request history.
    public internal(set) var traffic: SimTraffic
    /// When each process started, with its UID: join figures start here.
    public internal(set) var starts: [(time: Instant, pod: Int, uid: NodeUID)] = []
    /// When each process stopped (crash or exit): the checkers' detection windows start here.
    public internal(set) var stops: [(time: Instant, pod: Int, uid: NodeUID?, crashed: Bool)] = []
    /// Every event a node emitted: `(time, pod index, event)`.
    public internal(set) var events: [(Instant, Int, ClusterEvent)] = []
    /// Convergence and agent outages sampled over time (see `observe()`).
    public internal(set) var observations = Observations()
    /// When pods were frozen: `(pod, from, to)`, `to` nil while still paused.
    public internal(set) var pauses: [(pod: Int, from: Instant, to: Instant?)] = []
    /// Pods a timeline `crash` or `terminate` stopped and nothing restarted yet (`recover`
    /// restarts them).
    public internal(set) var stoppedByTimeline: Set<Int> = []
    /// Each pod's gossip key names, where a `gossip-keys` action named the pod.
    var gossipKeyNames: [Int: [String]] = [:]
    /// The gossip key names of every other pod (`spec.topology.gossipKeys`, or the last
    /// `gossip-keys` action for every pod).
    public var defaultGossipKeyNames: [String] = []
    /// Pods `recover` found still shutting down: the kubelet restarts each once it exits.
    public internal(set) var restartWhenExited: Set<Int> = []
    /// The hostile host outside the cluster (timeline `nemesis` entries).
    public internal(set) var nemesis = SimNemesis()
    /// The largest size each bounded table reached on any pod (in `ClusterNode.tableSizes` order).
    public internal(set) var tablePeaks: [TableSize] = []
    /// `pod/table` pairs already reported above their bound (each is reported once).
    var reportedBounds: Set<String> = []
    /// The last convergence verdicts `observe()` worked out, and what they read.
    var convergenceCache = ConvergenceCache()

    var queue = EventQueue<SimEvent>()
    let streams: RandomStreams
    var addressOwners: [Address: (pod: Int, boot: Int)] = [:]
    var nextAddress = 0
    var pendingStreams: [UInt64: (initiator: Int, boot: Int, exchange: ExchangeID, responder: Int)] = [:]
    var pendingDNS: [[Int]] = []
    /// Datagrams queued on held links, in send order, until those links are released.
    var heldDatagrams: [(link: SimNetwork.Link, boot: Int, input: ClusterInput)] = []
    var nextStreamID: UInt64 = 1

    /// Creates a world of `podCount` pods named `pico-0…`, none started, driven by `seed`.
    public init(podCount: Int, seed: UInt64, settings: Settings, network profile: LinkProfile = .lan) {
        self.settings = settings
        self.streams = RandomStreams(master: seed)
        self.network = SimNetwork(profile: profile, rng: self.streams.stream("network"))
        self.pods = (0..<podCount).map { SimPod(name: "pico-\($0)", index: $0) }
        self.traffic = SimTraffic(podCount: podCount, rng: self.streams.stream("workload"))
        self.datagramsSent = Array(repeating: 0, count: podCount)
        self.bytesSent = Array(repeating: 0, count: podCount)
    }

    // MARK: - Pod operations

    /// Starts a new process in pod `index` (a fresh UID, name suffix and IP).
    public mutating func start(_ index: Int) {
        self.stoppedByTimeline.remove(index)
        self.restartWhenExited.remove(index)
        var pod = self.pods[index]
        if let old = pod.address { self.addressOwners[old] = nil }
        pod.boot += 1
        let address = self.allocateAddress()
        var configuration = self.settings.node
        configuration.nodeNamePrefix = "\(pod.name)-"
        configuration.gossipAddress = address
        configuration.proxyAddress = Address(host: address.host, port: 8000)
        configuration.adminAddress = Address(host: address.host, port: 8002)
        configuration.epoch = UInt64(max(0, self.now.nanoseconds / 1_000_000))
        configuration.randomSeed = self.streams.seed("node/\(pod.name)/\(pod.boot)")
        do {
            pod.node = try ClusterNode(configuration: configuration, security: self.gossipSecurity(for: index))
        } catch {
            self.violations.append((self.now, pod.name, "invalid configuration: \(error)"))
            return
        }
        pod.state = .running
        pod.address = address

        pod.ready = false
        pod.timerGenerations = [:]
        pod.cleanStamp = nil
        pod.router = LoopRouter(loop: 0, seed: self.streams.seed("router/\(pod.name)/\(pod.boot)"))
        pod.waiting = []
        pod.inbox = []
        self.pods[index] = pod
        self.dnsAnswer = nil
        self.addressOwners[address] = (index, pod.boot)
        if let uid = pod.node?.me.uid { self.starts.append((self.now, index, uid)) }
        self.record("start", pod.name, UInt64(pod.boot))
        if self.settings.publishNotReadyAddresses {
            self.pendingDNS.append(self.currentListing())
            self.queue.schedule(.dnsRefresh, at: self.now + self.settings.dnsLag)
        }
        self.deliver(.start, to: index)
    }

    /// True when pod `index`'s process has begun its graceful shutdown (draining or later).
    public func isShuttingDown(_ index: Int) -> Bool {
        self.pods[index].node.map { $0.lifecycle.phase >= .draining } ?? true
    }

    /// A timeline fault stops pod `index` (SIGTERM when `graceful`, else a crash) and remembers it
    /// for `recover`, unless its process was already shutting down: a pod a rollout or scale-down
    /// is replacing stays the controller's, and a container that dies while terminating is not
    /// restarted (seed 11883: `recover` brought one back beside its replacement and the rollout
    /// SIGKILLed it 30 s later).
    public mutating func stopByTimeline(_ index: Int, graceful: Bool) {
        guard self.pods[index].state.hasProcess else { return }
        let controllerOwned = self.isShuttingDown(index)
        if graceful { self.terminate(index) } else { self.crash(index) }
        if !controllerOwned { self.stoppedByTimeline.insert(index) }
    }

    /// Kills pod `index`'s process without any goodbye.
    public mutating func crash(_ index: Int) {
        guard self.pods[index].state.hasProcess else { return }
        self.stopProcess(index, state: .down)
        self.record("crash", self.pods[index].name, UInt64(self.pods[index].boot))
    }

    /// Sends SIGTERM to pod `index`'s process (graceful shutdown).
    public mutating func terminate(_ index: Int) {
        switch self.pods[index].state {
        case .running:
            self.record("terminate", self.pods[index].name, UInt64(self.pods[index].boot))
            self.deliver(.shutdownRequested, to: index)
        case .paused:
            // A signal to a stopped process stays pending until it continues; it is never dropped,
            // whatever the inbox bound.
            self.record("terminate", self.pods[index].name, UInt64(self.pods[index].boot))
            self.pods[index].inbox.append(.input(pod: index, boot: self.pods[index].boot, .shutdownRequested))
        default:
            return
        }
    }

    /// Freezes pod `index`'s process: inputs wait until `resume`.
    public mutating func pause(_ index: Int) {
        guard self.pods[index].state == .running else { return }
        self.pods[index].state = .paused
        self.reachabilityMayHaveChanged()
        self.pauses.append((index, self.now, nil))
        self.record("pause", self.pods[index].name, UInt64(self.pods[index].boot))
    }

    /// The liveness phase begins: every attack stopped, every link healed and every held link released, impairments
    /// cleared, paused pods resumed, and pods in `stoppedByTimeline` restarted (those still shutting
    /// down after a `terminate` as soon as they exit, as the kubelet would). Returns how many pods
    /// were restarted now.
    public mutating func recover() -> Int {
        self.stopAllNemeses()
        self.network.healAll()
        self.reachabilityMayHaveChanged()
        let held = self.network.heldLinks.sorted()
        if !held.isEmpty { self.release(held) }
        for pod in self.pods.indices {
            self.network.impair(pod, with: nil)
            self.resume(pod)
        }
        let restarted = self.stoppedByTimeline.sorted().filter { !self.pods[$0].state.hasProcess }
        for pod in restarted { self.start(pod) }
        self.restartWhenExited.formUnion(self.stoppedByTimeline.filter { self.pods[$0].state.hasProcess })
        self.stoppedByTimeline = []
        return restarted.count
    }

    /// Thaws pod `index`: buffered inputs are delivered now, in arrival order.
    public mutating func resume(_ index: Int) {
        guard self.pods[index].state == .paused else { return }
        self.pods[index].state = .running
        self.reachabilityMayHaveChanged()
        if let open = self.pauses.lastIndex(where: { $0.pod == index && $0.to == nil }) { self.pauses[open].to = self.now }
        self.record("resume", self.pods[index].name, UInt64(self.pods[index].boot))
        let inbox = self.pods[index].inbox
        self.pods[index].inbox = []
        for event in inbox { self.queue.schedule(event, at: self.now) }
    }

    /// Holds `links`: datagrams on them wait (turmoil's hold) instead of being delivered.
    public mutating func hold(_ links: [SimNetwork.Link]) {
        self.network.hold(links)
        self.record("hold", "", UInt64(links.count))
    }

    /// Releases `links`: what waited on them is delivered now, in send order.
    public mutating func release(_ links: [SimNetwork.Link]) {
        self.network.release(links)
        self.record("release", "", UInt64(links.count))
        let releasing = Set(links)
        var kept: [(link: SimNetwork.Link, boot: Int, input: ClusterInput)] = []
        for held in self.heldDatagrams {
            if releasing.contains(held.link) {
                let delay = self.network.profile(from: held.link.from, to: held.link.to).latency
                self.queue.schedule(.input(pod: held.link.to, boot: held.boot, held.input), at: self.now + delay)
            } else {
                kept.append(held)
            }
        }
        self.heldDatagrams = kept
    }

    // MARK: - Running

    /// Schedules a world action identified by `id`; `run` hands it to `perform` when due.
    public mutating func scheduleAction(_ id: Int, at time: Instant) {
        self.queue.schedule(.action(id), at: time)
    }

    /// Feeds an input to pod `index` now (as its shell would) and carries out the directives.
    public mutating func deliver(_ input: ClusterInput, to index: Int) {
        // A running pod always holds a node. Nothing here reads the pod whole: a read of a pod
        // through the array (even `pods[index].node != nil`) copied all 2 KB of it and retained
        // every table of its node, on every input (a fifth of the 20-pod rollout's time).
        guard self.pods[index].state == .running else { return }
        // Mutated in place: a copy of the node would retain and release every table per input.
        let now = self.now
        guard let directives = self.pods[index].node?.handle(input, now: now) else { return }
        // A request's accounting (a loop's route, a finished stream) only moves an in-flight count;
        // the invariants are checked at the node's next other input, a few milliseconds later at
        // most, instead of twice per request.
        switch input {
        case .routedByLoop, .streamFinished:
            for directive in directives { self.carryOut(directive, from: index) }
            return
        default:
            break
        }
        self.pods[index].steps += 1
        if self.pods[index].steps % max(1, self.settings.invariantCheckInterval) == 0 {
            let (problems, sizes) = self.pods[index].nodeHealth()
            for problem in problems { self.violations.append((self.now, self.pods[index].name, problem)) }
            self.checkTableBounds(sizes, pod: index)
        }
        for directive in directives { self.carryOut(directive, from: index) }
    }

    /// Processes every event up to `deadline`; world actions go to `perform`.
    public mutating func run(until deadline: Instant, perform: (inout SimWorld, Int) -> Void = { _, _ in }) {
        while let time = self.queue.nextTime, time <= deadline, let event = self.queue.popEvent() {
            self.now = time
            switch event {
            case .action(let id):
                perform(&self, id)
            case .dnsRefresh:
                if !self.pendingDNS.isEmpty { self.dnsListing = self.pendingDNS.removeFirst() }
            case .kubeletRestart(let pod):
                if !self.pods[pod].state.hasProcess { self.start(pod) }
            case .timer(let pod, let boot, let id, let generation):
                guard self.isCurrent(pod, boot), self.pods[pod].timerGenerations[id] == generation else { continue }
                self.receive(event, pod: pod, input: .timerFired(id))
            case .input(let pod, let boot, let input):
                guard self.isCurrent(pod, boot) else {
                    if case .stateExchangeRequested(let stream, _, _) = input { self.resetStream(stream.rawValue, reason: "connection refused") }
                    continue
                }
                self.receive(event, pod: pod, input: input)
            case .traffic(let event):
                self.handle(event)
            case .nemesis(let id):
                self.nemesisTick(id: id)
            }
        }
        self.now = max(self.now, deadline)
    }

    // MARK: - Internals

    func isCurrent(_ pod: Int, _ boot: Int) -> Bool {
        self.pods[pod].boot == boot && self.pods[pod].state.hasProcess
    }

    mutating func receive(_ event: SimEvent, pod: Int, input: ClusterInput) {
        if self.pods[pod].state == .paused {
            if self.pods[pod].inbox.count < self.settings.pausedInboxLimit { self.pods[pod].inbox.append(event) }
            return
        }
        self.deliver(input, to: pod)
    }

    mutating func stopProcess(_ index: Int, state: SimPod.State) {
        self.pods[index].state = state
        self.reachabilityMayHaveChanged()
        if case .exited = state, self.restartWhenExited.remove(index) != nil {
            self.queue.schedule(.kubeletRestart(pod: index), at: self.now + self.settings.kubeletRestartDelay)
        }
        let parked = self.pods[index].inbox
        self.pods[index].inbox = []
        // Tunnels dialled while it was frozen were never answered: the agents see the reset.
        for case .traffic(.tunnelArrives(let agent, _, _)) in parked { self.drive(agent: agent, .dialFailed) }
        self.stops.append((self.now, index, self.pods[index].nodeInfo()?.uid, state == .down))
        if self.pods[index].ready { self.setReady(index, false) }
        self.processStopped(index)
    }

    mutating func allocateAddress() -> Address {
        let number = self.nextAddress
        self.nextAddress += 1
        return Address(host: "10.\(1 + number / 62_500).\(number / 250 % 250).\(number % 250 + 1)", port: 8003)
    }

    mutating func record(_ what: String, _ subject: String, _ value: UInt64) {
        self.trace.combine(UInt64(self.now.nanoseconds))
        self.trace.combine(what)
        self.trace.combine(subject)
        self.trace.combine(value)
    }

    /// Records a readiness change; DNS reflects the listing as of now after `dnsLag`.
    mutating func setReady(_ index: Int, _ ready: Bool) {
        self.pods[index].ready = ready
        self.pods[index].readySince = ready ? self.now : nil
        self.record(ready ? "ready" : "unready", self.pods[index].name, UInt64(self.pods[index].boot))
        self.pendingDNS.append(self.currentListing())
        self.queue.schedule(.dnsRefresh, at: self.now + self.settings.dnsLag)
        // A paused pod still counts: its readiness is what it last reported (a snapshot that
        // dropped paused pods stayed in force after they resumed, leaving nobody behind the
        // load balancer: fuzz seeds 742, 1579).
        let beliefs = self.pods.indices.map { self.pods[$0].ready && self.pods[$0].state.hasProcess }
        self.queue.schedule(.traffic(.believe(beliefs)), at: self.now + self.settings.loadBalancerLag)
    }


    /// Pods the headless service would list right now.
    func currentListing() -> [Int] {
        self.pods.indices.filter { index in
            self.pods[index].state.hasProcess && (self.pods[index].ready || self.settings.publishNotReadyAddresses)
        }
    }
}
