/// The compact, versioned binary encoding of gossip datagrams and push/pull state messages.
///
/// Datagram layout (all integers big-endian or LEB128 varints):
///
///     magic 0xB7 | version 1 | sender UID (8) | sender endpoint version (varint) |
///     message count (varint) | messages…
///
/// Each message is a kind byte followed by its fields; `docs/wire-format.md` lists them. A state
/// exchange uses the same header with kind `0x20` and no sender count. Decoding never traps: any
/// malformed input yields a `WireDecodeError` naming the field and byte offset.
public enum GossipCodec {
    /// First byte of every Pico gossip message.
    public static let magic: UInt8 = 0xB7
    /// The wire version this build speaks.
    public static let version: UInt8 = 1
    /// Largest datagram header: magic, version, sender UID, endpoint version and message count.
    public static let maxDatagramHeaderSize = 2 + 8 + 10 + 2
    /// Most messages one datagram may carry.
    public static let maxMessagesPerDatagram = 255
    /// Longest node name accepted, in bytes.
    public static let maxNameBytes = 128
    /// Longest host accepted in an address, in bytes.
    public static let maxHostBytes = 253
    /// Bound on members, tombstones, owners and entries per owner in one state message.
    public static let maxStateItems = 65_536
    /// Largest state-exchange message accepted, in bytes (shells read at most this much).
    public static let maxStateBytes = 16 * 1024 * 1024

    enum Kind: UInt8 {
        case ping = 1
        case ack = 2
        case pingRequest = 3
        case nack = 4
        case alive = 5
        case suspect = 6
        case dead = 7
        case left = 8
        case leaveAck = 9
        case endpointDelta = 10
        /// An endpoint delta whose entries carry tenant claims (`upstream.tenants`); nodes built
        /// before tenants drop it, so a cluster turns tenants on once every node knows them.
        case endpointDeltaWithClaims = 11
        case stateExchange = 0x20
        /// A state exchange whose endpoint entries carry tenant claims.
        case stateExchangeWithClaims = 0x21
    }

    // MARK: - Datagrams

    /// A decoded datagram.
    public struct Datagram: Hashable, Sendable {
        /// The UID of the node that sent it.
        public var sender: NodeUID
        /// The sender's own endpoint-table version when it sent this (a scuttlebutt digest of one
        /// entry: a receiver that knows less of the sender's entries is missing some).
        public var senderEndpointVersion: UInt64
        /// Its messages, in order.
        public var messages: [GossipMessage]

        /// Creates a datagram.
        public init(sender: NodeUID, senderEndpointVersion: UInt64 = 0, messages: [GossipMessage]) {
            self.sender = sender
            self.senderEndpointVersion = senderEndpointVersion
            self.messages = messages
        }
    }

    /// Encodes one message on its own (as kept in the broadcast queue).
    public static func encode(_ message: GossipMessage) -> [UInt8] {
        var writer = ByteWriter(capacity: 64)
        self.write(message, into: &writer)
        return writer.bytes
    }

    /// Builds a datagram from already-encoded messages (at most `maxMessagesPerDatagram`).
    public static func datagram(sender: NodeUID, endpointVersion: UInt64 = 0, encodedMessages: [[UInt8]]) -> [UInt8] {
        precondition(encodedMessages.count <= self.maxMessagesPerDatagram, "too many messages for one datagram")
        let size = encodedMessages.reduce(self.maxDatagramHeaderSize) { $0 + $1.count }
        var writer = ByteWriter(capacity: size)
        writer.writeByte(self.magic)
        writer.writeByte(self.version)
        writer.writeUInt64(sender.rawValue)
        writer.writeVarint(endpointVersion)
        writer.writeVarint(UInt64(encodedMessages.count))
        for message in encodedMessages { writer.writeBytes(message) }
        return writer.bytes
    }

    /// Encodes `messages` into one datagram.
    public static func datagram(sender: NodeUID, endpointVersion: UInt64 = 0, messages: [GossipMessage]) -> [UInt8] {
        self.datagram(sender: sender, endpointVersion: endpointVersion, encodedMessages: messages.map { self.encode($0) })
    }

    /// Decodes a datagram of untrusted bytes.
    public static func decodeDatagram(_ bytes: [UInt8]) throws(WireDecodeError) -> Datagram {
        var reader = ByteReader(bytes)
        try self.readHeader(&reader)
        let sender = try self.readUID(&reader, "datagram.sender")
        let endpointVersion = try reader.readVarint("datagram.endpointVersion")
        let count = try reader.readCount("datagram.count", limit: self.maxMessagesPerDatagram, minimumItemSize: 2)
        var messages: [GossipMessage] = []
        messages.reserveCapacity(count)
        for _ in 0..<count {
            messages.append(try self.readMessage(&reader))
        }
        try reader.expectEnd("datagram")
        return Datagram(sender: sender, senderEndpointVersion: endpointVersion, messages: messages)
    }

    // MARK: - Messages

    static func write(_ message: GossipMessage, into writer: inout ByteWriter) {
        switch message {
        case .ping(let sequence, let target):
            self.writeProbe(.ping, sequence, target, into: &writer)
        case .ack(let sequence, let target, let incarnation):
            self.writeProbe(.ack, sequence, target, into: &writer)
            writer.writeVarint(incarnation)
        case .nack(let sequence, let target):
            self.writeProbe(.nack, sequence, target, into: &writer)
        case .pingRequest(let sequence, let target, let address):
            self.writeProbe(.pingRequest, sequence, target, into: &writer)
            self.writeAddress(address, into: &writer)
        case .alive(let info, let incarnation, let draining):
            writer.writeByte(Kind.alive.rawValue)
            self.writeInfo(info, into: &writer)
            writer.writeVarint(incarnation)
            writer.writeByte(draining ? 1 : 0)
        case .suspect(let subject, let incarnation, let accuser):
            self.writeAccusation(.suspect, subject, incarnation, accuser, into: &writer)
        case .dead(let subject, let incarnation, let accuser):
            self.writeAccusation(.dead, subject, incarnation, accuser, into: &writer)
        case .left(let subject, let incarnation):
            writer.writeByte(Kind.left.rawValue)
            writer.writeUInt64(subject.rawValue)
            writer.writeVarint(incarnation)
        case .leaveAck(let subject):
            writer.writeByte(Kind.leaveAck.rawValue)
            writer.writeUInt64(subject.rawValue)
        case .endpointDelta(let delta):
            let claims = delta.entries.contains { !$0.claim.tenant.isEmpty }
            writer.writeByte(claims ? Kind.endpointDeltaWithClaims.rawValue : Kind.endpointDelta.rawValue)
            self.writeDelta(delta, claims: claims, into: &writer)
        }
    }

    static func readMessage(_ reader: inout ByteReader) throws(WireDecodeError) -> GossipMessage {
        let kindOffset = reader.offset
        let rawKind = try reader.readByte("message.kind")
        guard let kind = Kind(rawValue: rawKind), kind != .stateExchange else {
            throw WireDecodeError(.unknownKind(rawKind), field: "message.kind", offset: kindOffset)
        }
        switch kind {
        case .ping:
            let (sequence, target) = try self.readProbe(&reader, "ping")
            return .ping(sequence: sequence, target: target)
        case .ack:
            let (sequence, target) = try self.readProbe(&reader, "ack")
            return .ack(sequence: sequence, target: target, incarnation: try reader.readVarint("ack.incarnation"))
        case .nack:
            let (sequence, target) = try self.readProbe(&reader, "nack")
            return .nack(sequence: sequence, target: target)
        case .pingRequest:
            let (sequence, target) = try self.readProbe(&reader, "pingRequest")
            let address = try self.readAddress(&reader, "pingRequest.targetAddress")
            return .pingRequest(sequence: sequence, target: target, targetAddress: address)
        case .alive:
            let info = try self.readInfo(&reader, "alive.info")
            let incarnation = try reader.readVarint("alive.incarnation")
            let draining = try self.readFlag(&reader, "alive.draining")
            return .alive(info: info, incarnation: incarnation, draining: draining)
        case .suspect:
            let (subject, incarnation, accuser) = try self.readAccusation(&reader, "suspect")
            return .suspect(subject: subject, incarnation: incarnation, accuser: accuser)
        case .dead:
            let (subject, incarnation, accuser) = try self.readAccusation(&reader, "dead")
            return .dead(subject: subject, incarnation: incarnation, accuser: accuser)
        case .left:
            let subject = try self.readUID(&reader, "left.subject")
            return .left(subject: subject, incarnation: try reader.readVarint("left.incarnation"))
        case .leaveAck:
            return .leaveAck(subject: try self.readUID(&reader, "leaveAck.subject"))
        case .endpointDelta:
            return .endpointDelta(try self.readDelta(&reader, claims: false))
        case .endpointDeltaWithClaims:
            return .endpointDelta(try self.readDelta(&reader, claims: true))
        case .stateExchange, .stateExchangeWithClaims:
            throw WireDecodeError(.unknownKind(rawKind), field: "message.kind", offset: kindOffset)
        }
    }

    // MARK: - Field helpers

    static func readHeader(_ reader: inout ByteReader) throws(WireDecodeError) {
        let magic = try reader.readByte("header.magic")
        guard magic == self.magic else { throw WireDecodeError(.badMagic, field: "header.magic", offset: 0) }
        let version = try reader.readByte("header.version")
        guard version == self.version else { throw WireDecodeError(.unsupportedVersion(version), field: "header.version", offset: 1) }
    }

    static func writeProbe(_ kind: Kind, _ sequence: UInt32, _ target: NodeUID, into writer: inout ByteWriter) {
        writer.writeByte(kind.rawValue)
        writer.writeVarint(UInt64(sequence))
        writer.writeUInt64(target.rawValue)
    }

    static func readProbe(_ reader: inout ByteReader, _ name: @autoclosure () -> String) throws(WireDecodeError) -> (UInt32, NodeUID) {
        let sequence = UInt32(try reader.readVarint("\(name()).sequence", limit: UInt64(UInt32.max)))
        return (sequence, try self.readUID(&reader, "\(name()).target"))
    }

    static func writeAccusation(_ kind: Kind, _ subject: NodeUID, _ incarnation: UInt64, _ accuser: NodeUID, into writer: inout ByteWriter) {
        writer.writeByte(kind.rawValue)
        writer.writeUInt64(subject.rawValue)
        writer.writeVarint(incarnation)
        writer.writeUInt64(accuser.rawValue)
    }

    static func readAccusation(_ reader: inout ByteReader, _ name: @autoclosure () -> String) throws(WireDecodeError) -> (NodeUID, UInt64, NodeUID) {
        let subject = try self.readUID(&reader, "\(name()).subject")
        let incarnation = try reader.readVarint("\(name()).incarnation")
        return (subject, incarnation, try self.readUID(&reader, "\(name()).accuser"))
    }

    static func readUID(_ reader: inout ByteReader, _ field: @autoclosure () -> String) throws(WireDecodeError) -> NodeUID {
        let offset = reader.offset
        let raw = try reader.readUInt64(field())
        guard raw != 0 else { throw WireDecodeError(.invalidValue, field: field(), offset: offset) }
        return NodeUID(raw)
    }

    static func readFlag(_ reader: inout ByteReader, _ field: @autoclosure () -> String) throws(WireDecodeError) -> Bool {
        let offset = reader.offset
        switch try reader.readByte(field()) {
        case 0: return false
        case 1: return true
        default: throw WireDecodeError(.invalidValue, field: field(), offset: offset)
        }
    }

    static func writeAddress(_ address: Address, into writer: inout ByteWriter) {
        writer.writeString(address.host)
        writer.writeUInt16(address.port)
    }

    static func readAddress(_ reader: inout ByteReader, _ field: @autoclosure () -> String, likelyHost: String? = nil) throws(WireDecodeError) -> Address {
        let offset = reader.offset
        let host = try reader.readString("\(field()).host", maxBytes: self.maxHostBytes, likely: likelyHost)
        guard !host.isEmpty else { throw WireDecodeError(.invalidValue, field: "\(field()).host", offset: offset) }
        return Address(host: host, port: try reader.readUInt16("\(field()).port"))
    }

    static func writeInfo(_ info: NodeInfo, into writer: inout ByteWriter) {
        writer.writeUInt64(info.uid.rawValue)
        writer.writeString(info.name)
        self.writeAddress(info.gossipAddress, into: &writer)
        self.writeAddress(info.proxyAddress, into: &writer)
        self.writeAddress(info.adminAddress, into: &writer)
        writer.writeVarint(info.epoch)
    }

    static func readInfo(_ reader: inout ByteReader, _ field: @autoclosure () -> String) throws(WireDecodeError) -> NodeInfo {
        let uid = try self.readUID(&reader, "\(field()).uid")
        let name = try reader.readString("\(field()).name", maxBytes: self.maxNameBytes)
        let gossip = try self.readAddress(&reader, "\(field()).gossipAddress")
        let proxy = try self.readAddress(&reader, "\(field()).proxyAddress", likelyHost: gossip.host)
        let admin = try self.readAddress(&reader, "\(field()).adminAddress", likelyHost: proxy.host)
        let epoch = try reader.readVarint("\(field()).epoch")
        return NodeInfo(uid: uid, name: name, gossipAddress: gossip, proxyAddress: proxy, adminAddress: admin, epoch: epoch)
    }

    static func writeDelta(_ delta: EndpointDelta, claims: Bool, into writer: inout ByteWriter) {
        writer.writeUInt64(delta.owner.rawValue)
        writer.writeVarint(delta.base)
        writer.writeVarint(UInt64(delta.entries.count))
        var previous = delta.base
        for entry in delta.entries {
            writer.writeString(entry.endpoint)
            writer.writeVarint(UInt64(entry.count))
            writer.writeVarint(entry.version &- previous)
            previous = entry.version
            if claims { self.writeClaim(entry.claim, into: &writer) }
        }
    }

    /// A claim on the wire: the tenant ID, then `since` (omitted without a tenant).
    static func writeClaim(_ claim: EndpointClaim, into writer: inout ByteWriter) {
        writer.writeString(claim.tenant)
        if !claim.tenant.isEmpty { writer.writeVarint(claim.since) }
    }

    /// Reads a claim: an empty tenant, or a valid tenant ID and its `since`.
    static func readClaim(_ reader: inout ByteReader, _ field: @autoclosure () -> String) throws(WireDecodeError) -> EndpointClaim {
        let offset = reader.offset
        let tenant = try reader.readString("\(field()).tenant", maxBytes: EndpointClaim.maxTenantLength)
        guard !tenant.isEmpty else { return .untenanted }
        guard EndpointClaim.isValidTenant(tenant) else { throw WireDecodeError(.invalidValue, field: "\(field()).tenant", offset: offset) }
        return EndpointClaim(tenant: tenant, since: try reader.readVarint("\(field()).since"))
    }

    static func readDelta(_ reader: inout ByteReader, claims: Bool) throws(WireDecodeError) -> EndpointDelta {
        let owner = try self.readUID(&reader, "endpointDelta.owner")
        let base = try reader.readVarint("endpointDelta.base")
        let count = try reader.readCount("endpointDelta.count", limit: self.maxStateItems, minimumItemSize: 3)
        var entries: [EndpointDelta.Entry] = []
        entries.reserveCapacity(count)
        var previous = base
        for _ in 0..<count {
            var entry = try self.readEntry(&reader, "endpointDelta.entry", previous: previous)
            if claims { entry.claim = try self.readClaim(&reader, "endpointDelta.entry.claim") }
            entries.append(entry)
            previous = entry.version
        }
        let delta = EndpointDelta(owner: owner, base: base, entries: entries)
        guard delta.isWellFormed else { throw WireDecodeError(.invalidValue, field: "endpointDelta.entries", offset: reader.offset) }
        return delta
    }

    /// Reads a non-empty endpoint ID (at most `EndpointTable.maxEndpointLength` bytes) and its count.
    static func readEndpointCount(_ reader: inout ByteReader, _ field: @autoclosure () -> String) throws(WireDecodeError) -> (String, UInt32) {
        let endpointOffset = reader.offset
        let endpoint = try reader.readString("\(field()).endpoint", maxBytes: EndpointTable.maxEndpointLength)
        guard !endpoint.isEmpty else { throw WireDecodeError(.invalidValue, field: "\(field()).endpoint", offset: endpointOffset) }
        return (endpoint, UInt32(try reader.readVarint("\(field()).count", limit: UInt64(UInt32.max))))
    }

    /// Reads an entry whose version is stored as a positive step from `previous`.
    static func readEntry(_ reader: inout ByteReader, _ field: @autoclosure () -> String, previous: UInt64) throws(WireDecodeError) -> EndpointDelta.Entry {
        let (endpoint, count) = try self.readEndpointCount(&reader, field())
        let stepOffset = reader.offset
        let step = try reader.readVarint("\(field()).version")
        let (version, overflow) = previous.addingReportingOverflow(step)
        guard step > 0, !overflow else { throw WireDecodeError(.invalidValue, field: "\(field()).version", offset: stepOffset) }
        return EndpointDelta.Entry(endpoint: endpoint, count: count, version: version)
    }
}
