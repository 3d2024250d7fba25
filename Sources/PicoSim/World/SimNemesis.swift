import PicoModel

/// The hostile host outside the cluster: the attacks under way, the datagrams it captured from
/// the network for replays, and what it sent. Part of `SimWorld`; `SimWorld+Nemesis` drives it.
public struct SimNemesis: Sendable {
    /// One attack (a timeline `nemesis` entry) and its own random stream.
    struct Running: Sendable {
        var id: Int
        var attack: NemesisAttack
        var identities: [NodeUID]
        var rng: SplitMix64
    }

    /// When an attack ran: from its start to its end (nil while it runs).
    public struct Window: Hashable, Sendable {
        /// When it started.
        public var from: Instant
        /// When it stopped (nil while running).
        public var to: Instant?
    }

    /// Whether datagrams between pods are captured (only scenarios with a nemesis pay for it).
    public var sniffing = false
    /// Every attack's window, in start order.
    public internal(set) var windows: [Window] = []
    /// Inputs sent, by kind (in `NemesisAttack.Kind.allCases` order).
    public internal(set) var sent: [Int] = Array(repeating: 0, count: NemesisAttack.Kind.allCases.count)
    /// Inputs the network delivered to a pod (datagrams can be lost on impaired links).
    public internal(set) var delivered = 0
    var running: [Running] = []
    var sniffed: [[UInt8]] = []
    var sniffHead = 0

    /// Creates a nemesis with nothing under way.
    public init() {}

    /// Inputs sent of `kind`.
    public func sent(_ kind: NemesisAttack.Kind) -> Int {
        self.sent[NemesisAttack.Kind.allCases.firstIndex(of: kind) ?? 0]
    }

    /// True when an attack is under way.
    public var isAttacking: Bool { !self.running.isEmpty }

    /// Captured datagrams, oldest first.
    var capture: [[UInt8]] {
        Array(self.sniffed[self.sniffHead...] + self.sniffed[..<self.sniffHead])
    }

    /// Keeps `bytes` in the bounded ring of captured datagrams.
    mutating func sniff(_ bytes: [UInt8]) {
        guard self.sniffing else { return }
        if self.sniffed.count < NemesisAttack.sniffedLimit {
            self.sniffed.append(bytes)
        } else {
            self.sniffed[self.sniffHead] = bytes
            self.sniffHead = (self.sniffHead + 1) % NemesisAttack.sniffedLimit
        }
    }

    /// The windows as closed ranges, a running attack ending at `end`.
    public func attackRanges(end: Instant) -> [ClosedRange<Instant>] {
        self.windows.map { $0.from...max($0.from, $0.to ?? end) }
    }
}
