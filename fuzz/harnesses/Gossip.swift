// Gossip datagrams and state exchanges, decoded by `GossipCodec` and fed to a real `ClusterNode`
// (its membership machine, endpoint table and lifecycle) through `GossipFixture`.
@testable import PicoModel

/// Decoding is canonical: what decodes re-encodes to bytes that decode to the same value.
func checkRoundTrip(datagram bytes: [UInt8]) {
    guard let datagram = try? GossipCodec.decodeDatagram(bytes) else { return }
    let again = GossipCodec.datagram(sender: datagram.sender, endpointVersion: datagram.senderEndpointVersion, messages: datagram.messages)
    require((try? GossipCodec.decodeDatagram(again)) == datagram, "datagram does not survive re-encoding")
}

func checkRoundTrip(state bytes: [UInt8]) {
    guard let state = try? GossipCodec.decodeStateExchange(bytes) else { return }
    require((try? GossipCodec.decodeStateExchange(GossipCodec.encode(state))) == state, "state exchange does not survive re-encoding")
}

/// Input: steps (see `GossipFixture.run`): datagrams from chosen sources, time passing with the
/// node's timers firing, state exchanges, shutdown, tunnels.
enum GossipHarness {
    static func run(_ bytes: FuzzBytes) {
        var fixture = GossipFixture.prepared
        fixture.run(bytes.bytes)
    }

    /// Datagram step: op 0, source, the datagram.
    static func datagramStep(source: UInt8, sender: UInt64 = 2, endpointVersion: UInt64 = 0, _ messages: [GossipMessage]) -> [[UInt8]] {
        [[0, source] + GossipCodec.datagram(sender: NodeUID(sender), endpointVersion: endpointVersion, messages: messages)]
    }

    static func advanceStep(_ units: UInt8) -> [[UInt8]] { [[3, units]] }

    static func stateStep(source: UInt8 = 1, _ state: StateExchange) -> [[UInt8]] {
        [[4, source] + GossipCodec.encode(state)]
    }

    static let info = NodeInfo(
        uid: NodeUID(7), name: "fuzz-new", gossipAddress: Address(host: "10.0.0.20", port: 7946),
        proxyAddress: Address(host: "10.0.0.20", port: 8000), adminAddress: Address(host: "10.0.0.20", port: 8002), epoch: 9)

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let me = NodeUID(1), peer = NodeUID(3), dead = NodeUID(5), left = NodeUID(6)
        let delta = EndpointDelta(owner: NodeUID(2), base: 2, entries: [EndpointDelta.Entry(endpoint: "svc", count: 2, version: 3)])
        var seeds: [(name: String, steps: [[UInt8]])] = [
            ("ping-me", datagramStep(source: 1, [.ping(sequence: 1, target: me)])),
            ("ack", datagramStep(source: 1, [.ack(sequence: 1, target: NodeUID(2), incarnation: 1)]) + advanceStep(30)),
            ("ping-request", datagramStep(source: 1, [.pingRequest(sequence: 9, target: peer, targetAddress: GossipFixture.peers[1].gossipAddress)]) + advanceStep(20)),
            ("ping-request-dead", datagramStep(source: 1, [.pingRequest(sequence: 9, target: dead, targetAddress: GossipFixture.deadAddress)])),
            ("nack", datagramStep(source: 2, [.nack(sequence: 1, target: peer)])),
            ("alive-new", datagramStep(source: 5, sender: 7, [.alive(info: info, incarnation: 0, draining: false)]) + advanceStep(50)),
            ("alive-draining", datagramStep(source: 1, [.alive(info: GossipFixture.peers[1], incarnation: 2, draining: true)])),
            ("alive-dead", datagramStep(source: 4, sender: 5, [.alive(info: NodeInfo(
                uid: dead, name: "gone", gossipAddress: GossipFixture.deadAddress, proxyAddress: GossipFixture.deadAddress,
                adminAddress: GossipFixture.deadAddress, epoch: 1), incarnation: 4, draining: false)])),
            ("suspect-peer", datagramStep(source: 1, [.suspect(subject: peer, incarnation: 1, accuser: NodeUID(2))]) + advanceStep(255) + advanceStep(255)),
            ("suspect-me", datagramStep(source: 1, [.suspect(subject: me, incarnation: 0, accuser: NodeUID(2))])),
            ("dead-peer", datagramStep(source: 1, [.dead(subject: peer, incarnation: 1, accuser: NodeUID(2))]) + advanceStep(10)),
            ("dead-me", datagramStep(source: 1, [.dead(subject: me, incarnation: 0, accuser: NodeUID(2))]) + advanceStep(100)),
            ("left-peer", datagramStep(source: 2, sender: 3, [.left(subject: peer, incarnation: 1)])),
            ("left-known", datagramStep(source: 2, [.left(subject: left, incarnation: 1), .leaveAck(subject: me)])),
            ("endpoint-delta", datagramStep(source: 1, endpointVersion: 3, [.endpointDelta(delta)]) + advanceStep(30)),
            ("endpoint-lag", datagramStep(source: 1, endpointVersion: 9, [.ping(sequence: 2, target: me)]) + advanceStep(40)
                + datagramStep(source: 1, endpointVersion: 9, [.ping(sequence: 3, target: me)]) + advanceStep(40)),
            ("many", datagramStep(source: 3, sender: 4, [
                .ping(sequence: 4, target: me), .alive(info: GossipFixture.peers[2], incarnation: 3, draining: false),
                .suspect(subject: NodeUID(2), incarnation: 1, accuser: NodeUID(4)), .endpointDelta(delta),
            ]) + advanceStep(100)),
            ("stranger", datagramStep(source: 5, sender: 7, [.ping(sequence: 1, target: me)]) + advanceStep(25)),
            ("garbage", [[0, 1, 0xB7, 1, 0xFF, 0xFF]]),
            ("state", stateStep(GossipFixture.fixtureState) + advanceStep(50)),
            ("shutdown", [[7]] + advanceStep(200) + datagramStep(source: 1, [.leaveAck(subject: me)]) + advanceStep(255)),
            ("tunnels", [[15, 2, 0], [23, 1], [31, 0], [39, 5]]),
            ("idle", [[3, 255], [3, 255], [3, 255], [3, 255]]),
        ]
        // Extreme values about the node itself and about a peer.
        for (label, incarnation) in [("zero", UInt64(0)), ("one", 1), ("max-1", UInt64.max - 1), ("max", UInt64.max)] {
            for (who, uid) in [("me", me), ("peer", peer)] {
                seeds.append(("suspect-\(who)-\(label)", datagramStep(source: 1, [.suspect(subject: uid, incarnation: incarnation, accuser: NodeUID(2))])))
                seeds.append(("alive-\(who)-\(label)", datagramStep(source: 1, [.alive(
                    info: NodeInfo(uid: uid, name: "x", gossipAddress: GossipFixture.peers[1].gossipAddress, proxyAddress: GossipFixture.peers[1].proxyAddress,
                                   adminAddress: GossipFixture.peers[1].adminAddress, epoch: incarnation),
                    incarnation: incarnation, draining: false)])))
            }
        }
        return seeds.map { (name: $0.name, bytes: GossipFixture.join($0.steps)) }
    }
}

/// Input: one state-exchange message (push/pull, join or reconnect, request or reply), decoded
/// and merged into the fixture node, which then runs for a minute of timers.
enum StateExchangeHarness {
    static func run(_ bytes: FuzzBytes) {
        var input = bytes
        let mode = input.byte()
        let message = Array(input.rest())
        checkRoundTrip(state: message)
        if mode & 1 == 0 {
            var fixture = GossipFixture.prepared
            fixture.apply(.stateExchangeRequested(ExchangeID(99), bytes: fixture.prepareState(message), from: fixture.source(mode >> 1)))
            self.settle(&fixture)
        } else {
            // The answer to a push/pull exchange the node opened itself.
            var fixture = GossipFixture.awaitingReply
            fixture.apply(.stateExchangeReplied(fixture.pendingExchanges.removeFirst(), bytes: fixture.prepareState(message)))
            self.settle(&fixture)
        }
    }

    /// Checks the node, lets its timers run for a while (suspicions expire), checks again.
    static func settle(_ fixture: inout GossipFixture) {
        fixture.check()
        fixture.advance(by: .seconds(8))
        fixture.check()
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let peers = GossipFixture.peers
        var reply = GossipFixture.fixtureState
        reply.isReply = true
        var join = GossipFixture.fixtureState
        join.purpose = .join
        let stranger = NodeInfo(uid: NodeUID(7), name: "s", gossipAddress: Address(host: "10.0.0.30", port: 1),
                                proxyAddress: Address(host: "h", port: 2), adminAddress: Address(host: "h", port: 3), epoch: 0)
        let wild = StateExchange(
            purpose: .reconnect, isReply: false, sender: NodeUID(7),
            members: [
                StateExchange.MemberRecord(info: stranger, state: MemberState(.suspect, UInt64.max), draining: true),
                StateExchange.MemberRecord(info: peers[1], state: MemberState(.alive, 0), draining: false),
                StateExchange.MemberRecord(info: NodeInfo(uid: NodeUID(1), name: "me", gossipAddress: peers[2].gossipAddress,
                    proxyAddress: peers[2].proxyAddress, adminAddress: peers[2].adminAddress, epoch: 5), state: MemberState(.alive, 3), draining: false),
            ],
            tombstones: [StateExchange.TombstoneRecord(uid: NodeUID(3), status: .dead, incarnation: 2, address: peers[1].gossipAddress),
                         StateExchange.TombstoneRecord(uid: NodeUID(1), status: .left, incarnation: 0, address: nil)],
            endpoints: [StateExchange.EndpointSnapshot(owner: NodeUID(7), version: UInt64.max, entries: [
                EndpointDelta.Entry(endpoint: "svc", count: UInt32.max, version: UInt64.max)])])
        let empty = StateExchange(purpose: .pushPull, isReply: true, sender: NodeUID(2), members: [], tombstones: [], endpoints: [])
        return [
            ("request", [2] + GossipCodec.encode(GossipFixture.fixtureState)),
            ("join", [2] + GossipCodec.encode(join)),
            ("reply", [1] + GossipCodec.encode(reply)),
            ("wild-request", [10] + GossipCodec.encode(wild)),
            ("empty-reply", [1] + GossipCodec.encode(empty)),
            ("truncated", [0] + GossipCodec.encode(GossipFixture.fixtureState).dropLast(3)),
        ]
    }
}
