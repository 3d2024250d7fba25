@testable import PicoModel
import Testing

@Suite("Gossip codec")
struct GossipCodecTests {
    static let sampleMessages: [GossipMessage] = [
        .ping(sequence: 1, target: NodeUID(2)),
        .ping(sequence: UInt32.max, target: NodeUID(UInt64.max)),
        .ack(sequence: 300, target: NodeUID(0x1234_5678_9ABC), incarnation: 77),
        .pingRequest(sequence: 7, target: NodeUID(9), targetAddress: Address(host: "fd00::1", port: 8003)),
        .nack(sequence: 8, target: NodeUID(10)),
        .alive(info: Fixture.info(3), incarnation: 0, draining: false),
        .alive(info: Fixture.info(4, host: "pico-4.pico.default.svc.cluster.local", epoch: 1_763_000_000_000), incarnation: 1 << 40, draining: true),
        .suspect(subject: NodeUID(5), incarnation: 3, accuser: NodeUID(6)),
        .dead(subject: NodeUID(5), incarnation: 4, accuser: NodeUID(7)),
        .left(subject: NodeUID(8), incarnation: 9),
        .leaveAck(subject: NodeUID(8)),
        .endpointDelta(EndpointDelta(owner: NodeUID(11), base: 0, entries: [])),
        .endpointDelta(EndpointDelta(owner: NodeUID(11), base: 41, entries: [
            .init(endpoint: "svc", count: 2, version: 42),
            .init(endpoint: "ünïcødé-endpoint", count: 0, version: 50),
            .init(endpoint: String(repeating: "e", count: 255), count: UInt32.max, version: 51),
        ])),
    ]

    @Test func test_readString_takesASCIIAsIs_validatesEverythingElse_andRejectsMalformedUTF8() throws {
        func read(_ payload: [UInt8]) throws(WireDecodeError) -> String {
            var reader = ByteReader([UInt8(payload.count)] + payload + [0x2A])
            let text = try reader.readString("name", maxBytes: 64)
            #expect(try reader.readByte("tail") == 0x2A, "the string's bytes, and only they, are consumed")
            return text
        }
        #expect(try read(Array("pico-0.example:8003".utf8)) == "pico-0.example:8003")
        #expect(try read(Array("zürich-名".utf8)) == "zürich-名")
        #expect(try read([]) == "")
        for malformed: [UInt8] in [[0x61, 0xC3], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xFF], [0x61, 0x80, 0x62]] {
            #expect(throws: WireDecodeError(.invalidUTF8, field: "name", offset: 0)) { _ = try read(malformed) }
        }
    }

    @Test(arguments: sampleMessages)
    func test_everyMessage_roundTripsThroughADatagram(message: GossipMessage) throws {
        let bytes = GossipCodec.datagram(sender: NodeUID(0xABC), endpointVersion: 300, messages: [message])
        let decoded = try GossipCodec.decodeDatagram(bytes)
        #expect(decoded == GossipCodec.Datagram(sender: NodeUID(0xABC), senderEndpointVersion: 300, messages: [message]))
    }

    @Test func test_datagramWithManyMessages_roundTrips() throws {
        let bytes = GossipCodec.datagram(sender: NodeUID(1), messages: Self.sampleMessages)
        #expect(try GossipCodec.decodeDatagram(bytes).messages == Self.sampleMessages)
    }

    @Test func test_stateExchange_roundTrips() throws {
        let state = StateExchange(
            purpose: .reconnect, isReply: true, sender: NodeUID(1),
            members: [
                .init(info: Fixture.info(1), state: MemberState(.alive, 3), draining: false),
                .init(info: Fixture.info(2), state: MemberState(.suspect, 1), draining: true),
            ],
            tombstones: [
                .init(uid: NodeUID(50), status: .dead, incarnation: 2, address: Address(host: "10.9.9.9", port: 8003)),
                .init(uid: NodeUID(51), status: .left, incarnation: 0, address: nil),
            ],
            endpoints: [
                .init(owner: NodeUID(1), version: 10, entries: [.init(endpoint: "a", count: 1, version: 3), .init(endpoint: "b", count: 2, version: 10)]),
                .init(owner: NodeUID(2), version: 0, entries: []),
            ])
        #expect(try GossipCodec.decodeStateExchange(GossipCodec.encode(state)) == state)
    }

    @Test func test_everyTruncation_ofAValidDatagram_isATypedError() {
        let bytes = GossipCodec.datagram(sender: NodeUID(1), messages: Self.sampleMessages)
        for length in 0..<bytes.count {
            #expect(throws: WireDecodeError.self) { try GossipCodec.decodeDatagram(Array(bytes.prefix(length))) }
        }
        let state = GossipCodec.encode(StateExchange(
            purpose: .join, isReply: false, sender: NodeUID(1),
            members: [.init(info: Fixture.info(1), state: MemberState(.alive, 0), draining: false)],
            tombstones: [.init(uid: NodeUID(2), status: .dead, incarnation: 0, address: nil)],
            endpoints: [.init(owner: NodeUID(1), version: 1, entries: [.init(endpoint: "x", count: 1, version: 1)])]))
        for length in 0..<state.count {
            #expect(throws: WireDecodeError.self) { try GossipCodec.decodeStateExchange(Array(state.prefix(length))) }
        }
    }

    @Test func test_specificMalformations_nameTheFieldAndOffset() {
        func error(_ bytes: [UInt8]) -> WireDecodeError? {
            do {
                _ = try GossipCodec.decodeDatagram(bytes)
                return nil
            } catch {
                return error
            }
        }
        #expect(error([0x00, 1])?.code == .badMagic)
        #expect(error([GossipCodec.magic, 9])?.code == .unsupportedVersion(9))
        let header: [UInt8] = [GossipCodec.magic, GossipCodec.version, 0, 0, 0, 0, 0, 0, 0, 1, 0]
        #expect(error(header + [1, 0x7F, 0])?.code == .unknownKind(0x7F))
        #expect(error(header + [1, 0x7F, 0])?.offset == 12)
        let zeroTarget = header + [1, 1, 5] + [UInt8](repeating: 0, count: 8)
        #expect(error(zeroTarget) == WireDecodeError(.invalidValue, field: "ping.target", offset: 14))
        let valid = GossipCodec.datagram(sender: NodeUID(1), messages: [.leaveAck(subject: NodeUID(2))])
        #expect(error(valid + [0])?.code == .trailingBytes)
        let longVarint = header + [1, 1] + [UInt8](repeating: 0xFF, count: 11)
        #expect(error(longVarint)?.code == .badVarint)
        let manyMessages = header + [0x80, 0x02]
        #expect(error(manyMessages)?.code == .tooLarge(limit: 255))
        var badString = GossipCodec.datagram(sender: NodeUID(1), messages: [.alive(info: Fixture.info(2), incarnation: 0, draining: false)])
        badString[23] = 0xFF
        #expect(error(badString)?.code == .invalidUTF8)
        let outOfOrder = GossipCodec.datagram(sender: NodeUID(1), messages: [.endpointDelta(EndpointDelta(owner: NodeUID(1), base: 5, entries: [.init(endpoint: "a", count: 1, version: 5)]))])
        #expect(error(outOfOrder)?.field == "endpointDelta.entry.version")
        #expect(error(valid)?.description == nil)
        #expect(WireDecodeError(.truncated, field: "ping.sequence", offset: 12).description == "input ends inside the field in ping.sequence at byte 12")
    }

    @Test func test_randomBytes_neverTrap() {
        var rng = SplitMix64(seed: 2026)
        let valid = GossipCodec.datagram(sender: NodeUID(1), messages: Self.sampleMessages)
        var decodedSomething = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<rng.index(below: 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if round % 4 == 0, bytes.count > 2 {
                    bytes[0] = GossipCodec.magic
                    bytes[1] = GossipCodec.version
                }
            } else {
                bytes = valid
                for _ in 0..<(1 + rng.index(below: 4)) {
                    bytes[rng.index(below: bytes.count)] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            if (try? GossipCodec.decodeDatagram(bytes)) != nil { decodedSomething += 1 }
            _ = try? GossipCodec.decodeStateExchange(bytes)
        }
        #expect(decodedSomething > 0, "some mutations still decode: the fuzzer reaches deep fields")
    }

    @Test func test_varintAndStringSizes_matchTheWriter() throws {
        for value: UInt64 in [0, 1, 127, 128, 16_383, 16_384, UInt64.max] {
            var writer = ByteWriter()
            writer.writeVarint(value)
            #expect(writer.count == ByteWriter.varintSize(value))
            var reader = ByteReader(writer.bytes)
            #expect(try reader.readVarint("v") == value)
        }
        #expect(ByteWriter.stringSize("héllo") == 7)
    }
}
