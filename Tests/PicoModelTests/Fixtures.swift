@testable import PicoModel
import Testing

/// Fixed identities for unit tests.
enum Fixture {
    static func info(_ number: UInt64, host: String? = nil, epoch: UInt64 = 0) -> NodeInfo {
        let host = host ?? "10.0.1.\(number)"
        return NodeInfo(
            uid: NodeUID(number * 0x1111), name: "node-\(number)", gossipAddress: Address(host: host, port: 8003),
            proxyAddress: Address(host: host, port: 8000), adminAddress: Address(host: host, port: 8002), epoch: epoch)
    }

    static let me = info(1)

    static func membership(seeds: [String] = [], settings: MembershipSettings = MembershipSettings(), seed: UInt64 = 7) -> Membership {
        try! Membership(me: me, seeds: seeds, settings: settings, rng: SplitMix64(seed: seed))
    }

    /// A started membership that already knows the peers `2...(1 + peers)` as alive.
    static func running(peers: Int, settings: MembershipSettings = MembershipSettings(), seed: UInt64 = 7) -> Membership {
        var membership = self.membership(settings: settings, seed: seed)
        _ = membership.start(now: .zero)
        let messages = (0..<peers).map { GossipMessage.alive(info: info(UInt64($0 + 2)), incarnation: 0, draining: false) }
        _ = membership.onDatagram(sender: info(2).uid, from: info(2).gossipAddress, messages: messages, now: .zero)
        return membership
    }
}

extension Membership {
    /// Feeds a datagram from peer `number` and checks invariants.
    mutating func receive(_ messages: [GossipMessage], from number: UInt64, now: Instant) -> [MembershipDirective] {
        let peer = Fixture.info(number)
        let directives = self.onDatagram(sender: peer.uid, from: peer.gossipAddress, messages: messages, now: now)
        #expect(self.checkInvariants() == [])
        return directives
    }
}

extension Array where Element == MembershipDirective {
    var sends: [(messages: [GossipMessage], to: Address, piggyback: Bool)] {
        self.compactMap { if case .send(let messages, let address, let piggyback) = $0 { return (messages, address, piggyback) } else { return nil } }
    }

    var broadcasts: [GossipMessage] {
        self.compactMap { if case .broadcast(let message) = $0 { return message } else { return nil } }
    }

    var events: [MembershipEvent] {
        self.compactMap { if case .event(let event) = $0 { return event } else { return nil } }
    }

    func scheduled(_ timer: TimerID) -> Instant? {
        self.compactMap { if case .schedule(let id, let at) = $0, id == timer { return at } else { return nil } }.last
    }

    var probeSequence: UInt32? {
        for send in self.sends {
            for message in send.messages { if case .ping(let sequence, _) = message { return sequence } }
        }
        return nil
    }
}
