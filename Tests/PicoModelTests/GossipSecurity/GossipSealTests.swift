@testable import PicoModel
import Testing

@Suite("Gossip seal")
struct GossipSealTests {
    static let keyA = GossipKey(bytes: [UInt8](repeating: 0xA1, count: 32))!
    static let keyB = GossipKey(bytes: (0..<32).map { UInt8($0) })!
    static let keyC = GossipKey(bytes: [UInt8](repeating: 0xC3, count: 32))!

    static func security(_ keys: [GossipKey], verifyIncoming: Bool = true, verifyOutgoing: Bool = true) -> GossipSecurity {
        GossipSecurity(keyring: GossipKeyring(keys: keys)!, cipher: DeterministicGossipCipher(), verifyIncoming: verifyIncoming, verifyOutgoing: verifyOutgoing)
    }

    @Test func test_aKeyringParses_base64Keys_andRefusesBadOnesWithoutEchoingThem() throws {
        let text = "# the new key first\n\(Base64.encode(Self.keyB.bytes))\n\n  \(Base64.encode(Self.keyA.bytes))  \n"
        #expect(try GossipKeyring.parse(text).get().keys == [Self.keyB, Self.keyA])
        #expect(try GossipKeyring.parse("\(Base64.encode(Self.keyA.bytes)),\(Base64.encode(Self.keyC.bytes))").get().primary == Self.keyA)
        let short = Base64.encode([UInt8](repeating: 7, count: 16))
        for (text, message) in [("", "no key"), ("not base64!", "key 1 is not Base64"), (short, "key 1 has 16 bytes, not 32"),
                                ("\(Base64.encode(Self.keyA.bytes))\n\(Base64.encode(Self.keyA.bytes))", "key 2 repeats an earlier key"),
                                ((0..<5).map { Base64.encode([UInt8](repeating: UInt8($0), count: 32)) }.joined(separator: "\n"), "5 keys; at most 4")] {
            guard case .failure(let error) = GossipKeyring.parse(text) else { Issue.record("\(message)"); continue }
            #expect(error.message.hasPrefix(message), "\(error)")
            #expect(!error.message.contains(short))
        }
        #expect("\(Self.keyA)" == "GossipKey(32 bytes)")
    }

    @Test func test_sealedGossip_opensWithAnyKeyOfTheRing_andNothingElseOpensIt() {
        let plain = Array("hello gossip".utf8)
        let sealed = GossipSeal.seal(plain, channel: .datagram, security: Self.security([Self.keyA]))
        #expect(sealed.count == plain.count + GossipSeal.overhead && sealed[0] == GossipSeal.magic)
        #expect(try! GossipSeal.open(sealed, channel: .datagram, security: Self.security([Self.keyB, Self.keyA])).get() == plain)
        #expect(GossipSeal.open(sealed, channel: .datagram, security: Self.security([Self.keyB])) == .failure(.noKeyOpens))
        #expect(GossipSeal.open(sealed, channel: .stateRequest, security: Self.security([Self.keyA])) == .failure(.noKeyOpens), "another channel")
        for index in sealed.indices.dropFirst(2) {
            var flipped = sealed
            flipped[index] ^= 0x01
            #expect(GossipSeal.open(flipped, channel: .datagram, security: Self.security([Self.keyA])) == .failure(.noKeyOpens), "bit flipped at \(index)")
        }
        #expect(GossipSeal.open(plain, channel: .datagram, security: Self.security([Self.keyA])) == .failure(.notSealed))
        #expect(GossipSeal.open(Array(sealed.prefix(10)), channel: .datagram, security: Self.security([Self.keyA])) == .failure(.notSealed))
        // Turning encryption on across a running cluster: plain text still taken, sealed too.
        let lenient = Self.security([Self.keyA], verifyIncoming: false)
        #expect(try! GossipSeal.open(plain, channel: .datagram, security: lenient).get() == plain)
        #expect(try! GossipSeal.open(sealed, channel: .datagram, security: lenient).get() == plain)
        #expect(GossipSeal.seal(plain, channel: .datagram, security: Self.security([Self.keyA], verifyOutgoing: false)) == plain)
        #expect(GossipSeal.seal(plain, channel: .datagram, security: nil) == plain)
    }

    /// Two nodes, each with `keys`, one joining the other; datagrams and state exchanges carried
    /// between them by hand. Returns whether they came to know each other.
    static func join(_ first: [GossipKey]?, _ second: [GossipKey]?) -> (met: Bool, refused: Int) {
        var a = try! ClusterNode(configuration: Fixture.configuration(0, seed: 3, join: []), security: first.map { Self.security($0) })
        var b = try! ClusterNode(configuration: Fixture.configuration(1, seed: 3, join: [Fixture.address(0).description]),
                                 security: second.map { Self.security($0) })
        var refused = 0
        var queue: [(to: Int, input: ClusterInput)] = [(0, .start), (1, .start), (1, .seedsResolved([Fixture.address(0)]))]
        var now = Instant.zero
        var steps = 0
        while !queue.isEmpty, steps < 200 {
            steps += 1
            let (target, input) = queue.removeFirst()
            now = now + .milliseconds(10)
            let directives = target == 0 ? a.handle(input, now: now) : b.handle(input, now: now)
            for directive in directives {
                switch directive {
                case .sendDatagram(let bytes, _): queue.append((1 - target, .datagramReceived(bytes, from: Fixture.address(target))))
                case .openStateExchange(let id, _, let bytes): queue.append((1 - target, .stateExchangeRequested(id, bytes: bytes, from: Fixture.address(target))))
                case .replyStateExchange(let id, let bytes): queue.append((1 - target, .stateExchangeReplied(id, bytes: bytes)))
                case .event(.unauthenticatedMessage): refused += 1
                default: break
                }
            }
        }
        return (a.memberViews.count == 2 && b.memberViews.count == 2, refused)
    }

    @Test func test_nodesWithAKeyInCommonJoin_othersRefuseEachOthersGossip() {
        #expect(Self.join(nil, nil) == (true, 0))
        #expect(Self.join([Self.keyA], [Self.keyA]) == (true, 0))
        // Mid-rotation: one node seals with the new key, the other still with the old; each
        // holds both.
        #expect(Self.join([Self.keyB, Self.keyA], [Self.keyA, Self.keyB]) == (true, 0))
        let strangers = Self.join([Self.keyA], [Self.keyB])
        #expect(!strangers.met && strangers.refused > 0)
        let plainToSealed = Self.join([Self.keyA], nil)
        #expect(!plainToSealed.met && plainToSealed.refused > 0, "a node without keys is not heard")
    }

    @Test func test_aChangedKeyring_sealsWithItsNewFirstKey() {
        var node = try! ClusterNode(configuration: Fixture.configuration(0, seed: 3, join: []), security: Self.security([Self.keyA]))
        _ = node.handle(.gossipKeyringChanged(GossipKeyring(keys: [Self.keyB, Self.keyA])!), now: .zero)
        #expect(node.security?.keyring.primary == Self.keyB)
        var plain = try! ClusterNode(configuration: Fixture.configuration(1, seed: 3, join: []))
        _ = plain.handle(.gossipKeyringChanged(GossipKeyring(keys: [Self.keyB])!), now: .zero)
        #expect(plain.security == nil, "turning sealing on takes a restart")
    }
}
