import PicoModel

/// A node event in a canonical form: a kind and named fields whose text is produced by our own
/// formatting (integers in decimal, our identity types' documented descriptions), never by
/// `String(describing:)` of an enum or a standard-library type, whose output may change between
/// toolchains. The trace hash and `--trace` files are built from these, so a trace hash means the
/// same thing on every toolchain that runs the same model.
public struct TraceRecord: Hashable, Sendable {
    /// One named value.
    public struct Field: Hashable, Sendable {
        /// The field's name, e.g. `"uid"`.
        public var name: String
        /// The value as text.
        public var value: String
    }

    /// The event's kind, e.g. `"member-status"`.
    public var kind: String
    /// The event's fields, in a fixed order per kind.
    public var fields: [Field]

    init(_ kind: String, _ fields: [(String, String)]) {
        self.kind = kind
        self.fields = fields.map { Field(name: $0.0, value: $0.1) }
    }

    /// The canonical record of a node event.
    public init(_ event: ClusterEvent) {
        switch event {
        case .membership(let membership):
            self = Self.membership(membership)
        case .phaseChanged(let from, let to):
            self.init("phase", [("from", "\(from)"), ("to", "\(to)")])
        case .endpointChanged(let endpoint, let owner, let count):
            self.init("endpoint", [("endpoint", endpoint), ("owner", "\(owner)"), ("count", "\(count)")])
        case .tunnelRegistered(let tunnel, let endpoint):
            self.init("tunnel-registered", [("tunnel", "\(tunnel.rawValue)"), ("endpoint", endpoint)])
        case .tunnelRemoved(let tunnel, let endpoint):
            self.init("tunnel-removed", [("tunnel", "\(tunnel.rawValue)"), ("endpoint", endpoint)])
        case .tunnelRejected(let tunnel, let reason):
            self.init("tunnel-rejected", [("tunnel", "\(tunnel.rawValue)"), ("reason", reason)])
        case .rebalanceMoveAsked(let tunnel, let endpoint):
            self.init("rebalance-move", [("tunnel", "\(tunnel.rawValue)"), ("endpoint", endpoint)])
        case .rebalanceMoveDone(let tunnel, let endpoint):
            self.init("rebalance-moved", [("tunnel", "\(tunnel.rawValue)"), ("endpoint", endpoint)])
        case .malformedMessage(let from, let error):
            self.init("malformed", [("from", from.map { "\($0)" } ?? "-"), ("error", error.description)])
        case .unauthenticatedMessage(let from, let refusal):
            self.init("unauthenticated", [("from", from.map { "\($0)" } ?? "-"), ("refusal", refusal == .notSealed ? "not-sealed" : "no-key-opens")])
        case .datagramSendFailed(let to):
            self.init("send-failed", [("to", "\(to)")])
        case .stateExchangeFailed(let to, let reason):
            self.init("exchange-failed", [("to", "\(to)"), ("reason", reason)])
        case .routeRepairSync(let with):
            self.init("route-repair-sync", [("with", "\(with)")])
        }
    }

    static func membership(_ event: MembershipEvent) -> TraceRecord {
        switch event {
        case .memberJoined(let info):
            TraceRecord("member-joined", [("uid", "\(info.uid)"), ("name", info.name), ("gossip", "\(info.gossipAddress)"), ("epoch", "\(info.epoch)")])
        case .memberStatusChanged(let uid, let name, let from, let to):
            TraceRecord("member-status", [("uid", "\(uid)"), ("name", name), ("from", "\(from)"), ("to", "\(to)")])
        case .memberDraining(let uid, let name):
            TraceRecord("member-draining", [("uid", "\(uid)"), ("name", name)])
        case .memberRemoved(let uid, let name):
            TraceRecord("member-removed", [("uid", "\(uid)"), ("name", name)])
        case .refuted(let incarnation):
            TraceRecord("refuted", [("incarnation", "\(incarnation)")])
        case .forgedClaimDropped(let kind, let claimed, let own):
            TraceRecord("forged-claim-dropped", [("kind", kind.rawValue), ("claimed", "\(claimed)"), ("own", "\(own)")])
        case .reborn(let old, let new):
            TraceRecord("reborn", [("old", "\(old)"), ("new", "\(new)")])
        case .joined(let alone):
            TraceRecord("joined", [("alone", alone ? "true" : "false")])
        case .joinFailed:
            TraceRecord("join-failed", [])
        case .localPauseDetected(let gap):
            TraceRecord("local-pause", [("gapNanoseconds", "\(gap.nanosecondsClamped)")])
        case .leaveCompleted(let acknowledgements):
            TraceRecord("leave-completed", [("acknowledgements", "\(acknowledgements)")])
        case .probeAnswered(let uid, let directly):
            TraceRecord("probe-answered", [("uid", "\(uid)"), ("directly", directly ? "true" : "false")])
        }
    }

    /// Mixes the record into `hasher`: the kind, then each field's name and value.
    public func combine(into hasher: inout TraceHasher) {
        hasher.combine(self.kind)
        for field in self.fields {
            hasher.combine(field.name)
            hasher.combine(field.value)
        }
    }

    /// `kind name=value name=value`, for people.
    public var text: String {
        ([self.kind] + self.fields.map { "\($0.name)=\($0.value)" }).joined(separator: " ")
    }
}

extension TraceHasher {
    /// Mixes in one node event: its time, the pod index and its canonical record. The trace hash,
    /// the fuzzer's checkpoints and the tests all hash events this way.
    public mutating func combine(_ time: Instant, pod: Int, _ event: ClusterEvent) {
        self.combine(UInt64(bitPattern: time.nanoseconds))
        self.combine(UInt64(pod))
        TraceRecord(event).combine(into: &self)
    }
}
