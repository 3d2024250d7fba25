import PicoModel

/// What a hostile host outside the cluster sends the pods during a timeline `nemesis` entry: forged
/// and garbled gossip from its own address, through the simulated network, into each pod's real
/// `ClusterNode.handle(.datagramReceived…)` (and `.stateExchangeRequested…`) path.
public struct NemesisAttack: Hashable, Sendable {
    /// One kind of hostile input.
    public enum Kind: String, CaseIterable, Hashable, Sendable, Comparable {
        /// Random bytes: pure noise, a valid header followed by noise, or a real datagram with
        /// flipped bits or cut short.
        case garbage
        /// Well-formed datagrams of every message kind with extreme values (0, 1, max−1, max)
        /// about real members, about the target itself and about made-up UIDs.
        case extreme
        /// Datagrams captured earlier in the run between pods, sent again.
        case replay
        /// Datagrams whose header names a real member as sender, with plausible claims about
        /// real members (suspect, dead, left, alive at their current incarnations, pings).
        case impersonate
        /// `alive` announcements of made-up members at made-up addresses (sometimes at a real
        /// member's address with a later epoch).
        case forgedMembers = "forged-members"
        /// Endpoint deltas of real and made-up owners, with extreme versions and counts.
        case forgedEndpoints = "forged-endpoints"
        /// State exchanges opened to the pod over the stream path: garbage, or full states with
        /// made-up members, tombstones of real members and endpoint snapshots.
        case forgedExchange = "forged-exchange"

        public static func < (lhs: Kind, rhs: Kind) -> Bool {
            Self.allCases.firstIndex(of: lhs) ?? 0 < Self.allCases.firstIndex(of: rhs) ?? 0
        }
    }

    /// Most datagrams per second one nemesis entry may send.
    public static let highestRate = 10_000.0
    /// Fewest datagrams per second.
    public static let lowestRate = 0.1
    /// Most made-up identities one entry may use.
    public static let mostIdentities = 100_000
    /// Captured datagrams the attacker keeps for replays (the oldest is dropped beyond it).
    public static let sniffedLimit = 256
    /// The attacker's address: outside the pods' 10.0.0.0/8, in TEST-NET-1.
    public static let attackerAddress = Address(host: "192.0.2.66", port: 8003)

    /// Datagrams (and exchanges) per second, over all targets.
    public var rate: Double
    /// The kinds sent, each send drawing one uniformly.
    public var kinds: [Kind]
    /// Target pods by ordinal; empty means every pod with a process at each send.
    public var pods: [Int]
    /// How many made-up UIDs the attacker uses (`forged-members`, `extreme`, made-up owners).
    public var identities: Int

    /// Creates an attack.
    public init(rate: Double, kinds: [Kind] = Kind.allCases, pods: [Int] = [], identities: Int = 16) {
        self.rate = rate
        self.kinds = kinds
        self.pods = pods
        self.identities = identities
    }
}
