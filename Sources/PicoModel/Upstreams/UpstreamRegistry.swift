/// Identifies one upstream tunnel (one agent connection for one endpoint) on this node. Assigned
/// by the shell, unique for the life of the process.
public struct TunnelID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The shell's number for the tunnel.
    public var rawValue: UInt64

    /// Wraps the shell's number.
    public init(_ rawValue: UInt64) {
        self.rawValue = rawValue
    }

    public static func < (lhs: TunnelID, rhs: TunnelID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "tunnel-\(self.rawValue)" }
}

/// This node's upstream tunnels per endpoint.
///
/// Callers may rely on: adding a tunnel twice or removing it twice changes nothing the second time
/// (Piko double-decrements); in-flight counts never go below zero; round robin visits every
/// non-draining tunnel of an endpoint once before repeating; listener counts equal the number of
/// registered tunnels per endpoint.
public struct UpstreamRegistry: Hashable, Sendable {
    /// One registered tunnel.
    public struct Tunnel: Hashable, Sendable {
        /// The tunnel's ID.
        public var id: TunnelID
        /// The endpoint it serves.
        public var endpoint: String
        /// Whether its agent was asked to move (GoAway): it serves only when nothing else can.
        public var isDraining: Bool
        /// Requests routed to it whose stream has not finished.
        public var inFlight: Int
        /// Which agent opened it, as its handshake said.
        public var agent: TunnelAgent = .pico
        /// When it registered (the node's clock).
        public var openedAt: Instant = .zero

        /// Whether its agent opens a replacement before it lets go when asked to move (Pico's
        /// agents, on `/pico/v1/upstream/`); Piko's agents wait until the node closes the tunnel.
        public var reconnectsFirst: Bool { self.agent.reconnectsFirst }
    }

    /// What `add` did.
    public enum AddResult: Hashable, Sendable {
        /// Registered; the endpoint now has `count` tunnels here.
        case added(count: Int)
        /// Already registered: nothing changed.
        case alreadyPresent
    }

    /// What `remove` did.
    public enum RemoveResult: Hashable, Sendable {
        /// Removed; the endpoint now has `count` tunnels here.
        case removed(Tunnel, count: Int)
        /// Not registered (never, or already removed): nothing changed.
        case notPresent
    }

    private var tunnels: [TunnelID: Tunnel] = [:] { didSet { self.checkedState.bump() } }
    private var byEndpoint: [String: [TunnelID]] = [:] { didSet { self.checkedState.bump() } }
    /// Writes to `tunnels` and `byEndpoint`, all that `checkInvariants` reads (see `invariantStamp`).
    private var checkedState = ChangeCount()
    /// Requests in flight per tunnel (absent: none). Kept apart from `tunnels` so that a request
    /// starting or finishing does not change `invariantStamp`: with it inside, every request made
    /// the invariant check and the simulator's convergence sample read every tunnel again. Never
    /// negative: a finish below zero stays at zero.
    private var inFlightCounts: [TunnelID: Int] = [:]
    private var cursors: [String: Int] = [:]

    /// Creates an empty registry.
    public init() {}

    /// Registers `id` for `endpoint` (idempotent).
    public mutating func add(_ id: TunnelID, endpoint: String, draining: Bool = false, agent: TunnelAgent = .pico, at openedAt: Instant = .zero) -> AddResult {
        guard self.tunnels[id] == nil else { return .alreadyPresent }
        self.tunnels[id] = Tunnel(id: id, endpoint: endpoint, isDraining: draining, inFlight: 0, agent: agent, openedAt: openedAt)
        self.byEndpoint[endpoint, default: []].append(id)
        return .added(count: self.byEndpoint[endpoint]?.count ?? 0)
    }

    /// Unregisters `id` (idempotent).
    public mutating func remove(_ id: TunnelID) -> RemoveResult {
        guard let stored = self.tunnels.removeValue(forKey: id) else { return .notPresent }
        let tunnel = self.withInFlight(stored)
        self.inFlightCounts[id] = nil
        self.byEndpoint[tunnel.endpoint]?.removeAll { $0 == id }
        let count = self.byEndpoint[tunnel.endpoint]?.count ?? 0
        if count == 0 {
            self.byEndpoint[tunnel.endpoint] = nil
            self.cursors[tunnel.endpoint] = nil
        }
        return .removed(tunnel, count: count)
    }

    /// Marks `id` draining; returns false when it is unknown or already draining.
    public mutating func markDraining(_ id: TunnelID) -> Bool {
        guard var tunnel = self.tunnels[id], !tunnel.isDraining else { return false }
        tunnel.isDraining = true
        self.tunnels[id] = tunnel
        return true
    }

    /// Picks the next tunnel of `endpoint` in round-robin order, preferring non-draining ones
    /// (draining ones only when `allowDraining` and no other exists), and counts a request in
    /// flight on it.
    public mutating func choose(for endpoint: String, allowDraining: Bool) -> TunnelID? {
        guard let ids = self.byEndpoint[endpoint], !ids.isEmpty else { return nil }
        let start = self.cursors[endpoint] ?? 0
        var fallback: TunnelID?
        for step in 0..<ids.count {
            let position = (start + step) % ids.count
            let id = ids[position]
            // Only the flag is read: binding the tunnel copied it, on every request.
            guard let isDraining = self.tunnels[id]?.isDraining else { continue }
            if !isDraining {
                self.cursors[endpoint] = position + 1
                self.inFlightCounts[id, default: 0] += 1
                return id
            }
            if fallback == nil { fallback = id }
        }
        guard allowDraining, let fallback else { return nil }
        self.cursors[endpoint] = start + 1
        self.inFlightCounts[fallback, default: 0] += 1
        return fallback
    }

    /// Counts a request in flight on `id` that was routed elsewhere (a data loop's `LoopRouter`);
    /// false when the tunnel is unknown.
    @discardableResult
    public mutating func startStream(on id: TunnelID) -> Bool {
        guard self.tunnels[id] != nil else { return false }
        self.inFlightCounts[id, default: 0] += 1
        return true
    }

    /// A request stream on `id` finished; returns the tunnel's remaining in-flight count, or nil
    /// when the tunnel is unknown.
    public mutating func finishStream(on id: TunnelID) -> Int? {
        // One lookup for the usual case: only a registered tunnel has a count (every increment
        // checks registration, `remove` drops the count), and a count is at least 1.
        if let index = self.inFlightCounts.index(forKey: id) {
            let remaining = self.inFlightCounts.values[index] - 1
            if remaining > 0 {
                self.inFlightCounts.values[index] = remaining
                return remaining
            }
            self.inFlightCounts.remove(at: index)
            return 0
        }
        return self.tunnels[id] == nil ? nil : 0
    }

    /// The tunnel `id`, if registered.
    public func tunnel(_ id: TunnelID) -> Tunnel? {
        self.tunnels[id].map(self.withInFlight)
    }

    /// Every tunnel, sorted by ID.
    public var allTunnels: [Tunnel] {
        self.tunnels.values.sorted { $0.id < $1.id }.map(self.withInFlight)
    }

    /// `tunnel` with its current in-flight count (the stored record's is always zero).
    private func withInFlight(_ tunnel: Tunnel) -> Tunnel {
        var counted = tunnel
        counted.inFlight = self.inFlightCounts[tunnel.id] ?? 0
        return counted
    }

    /// Number of tunnels registered for `endpoint`.
    public func count(for endpoint: String) -> Int {
        self.byEndpoint[endpoint]?.count ?? 0
    }

    /// True when no tunnel is registered.
    public var isEmpty: Bool { self.tunnels.isEmpty }

    /// Number of tunnels registered, draining ones included.
    public var tunnelCount: Int { self.tunnels.count }

    /// The IDs of `endpoint`'s tunnels, in registration order.
    public func tunnelIDs(for endpoint: String) -> [TunnelID] {
        self.byEndpoint[endpoint] ?? []
    }

    /// Broken invariants (empty when consistent).
    public func checkInvariants() -> [String] {
        var problems: [String] = []
        var indexed = 0
        for (endpoint, ids) in self.byEndpoint.sorted(by: { $0.key < $1.key }) {
            if ids.isEmpty { problems.append("endpoint \(endpoint) indexed with no tunnels") }
            if Set(ids).count != ids.count { problems.append("endpoint \(endpoint) lists a tunnel twice") }
            for id in ids where self.tunnels[id]?.endpoint != endpoint {
                problems.append("\(id) indexed under \(endpoint) but not registered for it")
            }
            indexed += ids.count
        }
        if indexed != self.tunnels.count { problems.append("\(self.tunnels.count) tunnels but \(indexed) indexed") }
        return problems
    }

    /// Changes to everything `checkInvariants` reads (a stream starting or finishing is not one):
    /// while it reads the same, a check finds the same. Meaningful only compared with an earlier
    /// reading of this registry.
    public var invariantStamp: UInt64 { self.checkedState.value }

    /// True only when `checkInvariants()` would return nothing, without sorting or building a set
    /// (a short list is searched for a repeat in place). `stamp` is `invariantStamp` at an earlier
    /// check that found nothing (nil: none): while it reads the same, nothing is read. False says
    /// only "run the check".
    public func isConsistent(cleanAt stamp: UInt64?) -> Bool {
        guard stamp != self.invariantStamp else { return true }
        var indexed = 0
        for (endpoint, ids) in self.byEndpoint {
            guard !ids.isEmpty else { return false }
            if ids.count <= 16 {
                for position in ids.indices.dropFirst() where ids[..<position].contains(ids[position]) { return false }
            } else if Set(ids).count != ids.count {
                return false
            }
            for id in ids where self.tunnels[id]?.endpoint != endpoint { return false }
            indexed += ids.count
        }
        return indexed == self.tunnels.count
    }

    /// Number of endpoints with a registered tunnel.
    public var endpointCount: Int { self.byEndpoint.count }
}
