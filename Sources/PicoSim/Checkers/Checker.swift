import PicoModel

/// The verdict of one checker: passed, or the first violation with its time and node.
public struct CheckResult: Hashable, Sendable {
    /// The checker's name as scenario files spell it.
    public var name: String
    /// When the first violation happened (nil when passed).
    public var violationTime: Instant?
    /// The pod (or client) involved.
    public var subject: String?
    /// What went wrong.
    public var message: String?
    /// Why a passing verdict is weaker than it looks (a bound that fell after the end of the run).
    public var note: String?

    /// True when nothing was violated.
    public var passed: Bool { self.violationTime == nil }

    static func pass(_ name: String, note: String? = nil) -> CheckResult {
        CheckResult(name: name, violationTime: nil, subject: nil, message: nil, note: note)
    }

    static func fail(_ name: String, at time: Instant, subject: String, _ message: String) -> CheckResult {
        CheckResult(name: name, violationTime: time, subject: subject, message: message)
    }
}

/// The promises a run is checked against. Each reads the client history, the nodes' events and
/// their views at the end of the run.
public enum Checker: Hashable, Sendable {
    /// No request issued inside any of `windows` fails or times out (graceful operations).
    case noFailedRequests(windows: [ClosedRange<Instant>], excuseUnreachable: Bool = false)
    /// Requests fail only within `detection` after a pod stopped (crash or exit).
    case routeOnlyToLiveOwners(detection: Duration)
    /// No request visits more than two pods (one forward hop).
    case atMostOneHop
    /// At the end, every running pod sees exactly the running pods' current UIDs as live; with
    /// `within`, and samples taken (`SimWorld.observe()`), it was so from at most `within` after
    /// the last disturbance onwards.
    case membershipConverged(within: Duration?)
    /// At the end, every running pod's endpoint table equals the tunnels that exist; with
    /// `within`, from at most `within` after the last disturbance onwards.
    case endpointTablesConverged(within: Duration?)
    /// No pod ever learns a UID again after it saw it dead or left (no ghosts, Piko #314).
    case noGhostMembers
    /// No machine invariant broke (incarnations monotonic, status lattice, bounds, …), and at the
    /// end every running node counts the requests in flight and the relays the world holds on it.
    case invariantsHold
    /// At the end, every agent has a tunnel that is not moving on a running pod; with `within`, no
    /// agent was ever without one for longer while the load balancer had a ready pod.
    case agentsRehomed(within: Duration?)
    /// No UID is declared dead while its process still runs (a false positive of failure detection).
    case noFalseDeaths
    /// Every request for an endpoint is answered by agents of one tenant, the first to answer
    /// one: no other tenant's agent ever takes its requests (no cross-tenant hijack).
    case oneTenantPerEndpoint
    /// No TCP connection is cut by a graceful shutdown before its process's drain deadline.
    case streamsNotCutEarly
    /// New TCP connections go to an agent's replacement tunnel, not the old one on a
    /// shutting-down pod, once the replacement is known.
    case newStreamsOnNewTunnels
    /// After the last disturbance, no stretch in which some active pod holds more than `ratio` ×
    /// the mean tunnels per active pod (and `floor`) lasts longer than `within`; with `moves`,
    /// rebalancing asked for at most `moves` × the fewest moves that balance the pods.
    case tunnelsBalanced(within: Duration, ratio: Double, moves: Double?, floor: Int)
    /// Every rebalancing move starts at most `within` after a disturbance or after some active
    /// pod held more than `ratio` × the mean (and `floor`), and no agent is moved twice within
    /// `within` with no disturbance between.
    case noOscillation(within: Duration, ratio: Double, floor: Int)

    /// The name used in scenario files.
    public var name: String {
        switch self {
        case .noFailedRequests: "no-failed-requests"
        case .routeOnlyToLiveOwners: "route-only-to-live-owners"
        case .atMostOneHop: "at-most-one-hop"
        case .membershipConverged: "membership-converged"
        case .endpointTablesConverged: "endpoint-tables-converged"
        case .noGhostMembers: "no-ghost-members"
        case .invariantsHold: "invariants-hold"
        case .agentsRehomed: "agents-rehomed"
        case .noFalseDeaths: "no-false-deaths"
        case .oneTenantPerEndpoint: "one-tenant-per-endpoint"
        case .streamsNotCutEarly: "streams-not-cut-early"
        case .newStreamsOnNewTunnels: "new-streams-on-new-tunnels"
        case .tunnelsBalanced: "tunnels-balanced"
        case .noOscillation: "no-oscillation"
        }
    }

    /// Checks `world` after its run.
    public func check(_ world: SimWorld) -> CheckResult {
        switch self {
        case .noFailedRequests(let windows, let excuse): Self.noFailedRequests(world, windows: windows, excuseUnreachable: excuse, name: self.name)
        case .routeOnlyToLiveOwners(let detection): Self.routeOnlyToLiveOwners(world, detection: detection, name: self.name)
        case .atMostOneHop: Self.atMostOneHop(world, name: self.name)
        case .membershipConverged(let within): Self.membershipConverged(world, within: within, name: self.name)
        case .endpointTablesConverged(let within): Self.endpointTablesConverged(world, within: within, name: self.name)
        case .noGhostMembers: Self.noGhostMembers(world, name: self.name)
        case .invariantsHold:
            if let first = world.violations.first {
                .fail(self.name, at: first.0, subject: first.1, first.2)
            } else if let mismatch = Self.accountingMismatch(world) {
                .fail(self.name, at: world.now, subject: mismatch.pod, "at the end: \(mismatch.message)")
            } else {
                .pass(self.name)
            }
        case .agentsRehomed(let within): Self.agentsRehomed(world, within: within, name: self.name)
        case .noFalseDeaths: Self.noFalseDeaths(world, name: self.name)
        case .streamsNotCutEarly: Self.streamsNotCutEarly(world, name: self.name)
        case .newStreamsOnNewTunnels: Self.newStreamsOnNewTunnels(world, name: self.name)
        case .tunnelsBalanced(let within, let ratio, let moves, let floor):
            Self.tunnelsBalanced(world, within: within, ratio: ratio, moves: moves, floor: floor, name: self.name)
        case .noOscillation(let within, let ratio, let floor): Self.noOscillation(world, within: within, ratio: ratio, floor: floor, name: self.name)
        case .oneTenantPerEndpoint:
            if let first = world.traffic.crossTenantAnswers.first {
                .fail(self.name, at: first.time, subject: first.agent,
                      "answered a request for \(first.endpoint), which \(first.first.isEmpty ? "agents without a tenant" : "tenant \(first.first)") served first")
            } else {
                .pass(self.name)
            }
        }
    }

    /// `SimWorld.accountingMismatch()` on a copy (checks read a finished world).
    static func accountingMismatch(_ world: SimWorld) -> (pod: String, message: String)? {
        var copy = world
        return copy.accountingMismatch()
    }
}
