extension GossipCodec {
    /// Encodes a push/pull state message.
    public static func encode(_ state: StateExchange) -> [UInt8] {
        var writer = ByteWriter(capacity: 64 + state.members.count * 96 + state.tombstones.count * 24)
        writer.writeByte(self.magic)
        writer.writeByte(self.version)
        let claims = !state.reservations.isEmpty || state.endpoints.contains { $0.entries.contains { !$0.claim.tenant.isEmpty } }
        writer.writeByte(claims ? Kind.stateExchangeWithClaims.rawValue : Kind.stateExchange.rawValue)
        writer.writeByte(state.purpose.rawValue)
        writer.writeByte(state.isReply ? 1 : 0)
        writer.writeUInt64(state.sender.rawValue)
        writer.writeVarint(UInt64(state.members.count))
        for member in state.members {
            self.writeInfo(member.info, into: &writer)
            writer.writeByte(member.state.status.rawValue)
            writer.writeVarint(member.state.incarnation)
            writer.writeByte(member.draining ? 1 : 0)
        }
        writer.writeVarint(UInt64(state.tombstones.count))
        for tombstone in state.tombstones {
            writer.writeUInt64(tombstone.uid.rawValue)
            writer.writeByte(tombstone.status.rawValue)
            writer.writeVarint(tombstone.incarnation)
            if let address = tombstone.address {
                writer.writeByte(1)
                self.writeAddress(address, into: &writer)
            } else {
                writer.writeByte(0)
            }
        }
        writer.writeVarint(UInt64(state.endpoints.count))
        for snapshot in state.endpoints {
            writer.writeUInt64(snapshot.owner.rawValue)
            writer.writeVarint(snapshot.version)
            writer.writeVarint(UInt64(snapshot.entries.count))
            for entry in snapshot.entries {
                writer.writeString(entry.endpoint)
                writer.writeVarint(UInt64(entry.count))
                writer.writeVarint(entry.version)
                if claims { self.writeClaim(entry.claim, into: &writer) }
            }
        }
        if claims {
            writer.writeVarint(UInt64(state.reservations.count))
            for record in state.reservations {
                writer.writeString(record.endpoint)
                self.writeClaim(record.claim, into: &writer)
                writer.writeVarint(record.remainingMilliseconds)
            }
        }
        return writer.bytes
    }

    /// Decodes a push/pull state message of untrusted bytes (at most `maxStateBytes`).
    public static func decodeStateExchange(_ bytes: [UInt8]) throws(WireDecodeError) -> StateExchange {
        guard bytes.count <= self.maxStateBytes else {
            throw WireDecodeError(.tooLarge(limit: self.maxStateBytes), field: "state", offset: 0)
        }
        var reader = ByteReader(bytes)
        try self.readHeader(&reader)
        let kindOffset = reader.offset
        let kind = try reader.readByte("state.kind")
        guard kind == Kind.stateExchange.rawValue || kind == Kind.stateExchangeWithClaims.rawValue else {
            throw WireDecodeError(.unknownKind(kind), field: "state.kind", offset: kindOffset)
        }
        let purposeOffset = reader.offset
        guard let purpose = StateExchange.Purpose(rawValue: try reader.readByte("state.purpose")) else {
            throw WireDecodeError(.invalidValue, field: "state.purpose", offset: purposeOffset)
        }
        let isReply = try self.readFlag(&reader, "state.isReply")
        let sender = try self.readUID(&reader, "state.sender")
        let members = try self.readMemberRecords(&reader)
        let tombstones = try self.readTombstoneRecords(&reader)
        let claims = kind == Kind.stateExchangeWithClaims.rawValue
        let endpoints = try self.readSnapshots(&reader, claims: claims)
        let reservations = claims ? try self.readReservations(&reader) : []
        try reader.expectEnd("state")
        return StateExchange(
            purpose: purpose, isReply: isReply, sender: sender, members: members, tombstones: tombstones, endpoints: endpoints,
            reservations: reservations)
    }

    /// Reservation records: a valid endpoint, a claim with a tenant, at most a day to run.
    static func readReservations(_ reader: inout ByteReader) throws(WireDecodeError) -> [StateExchange.ReservationRecord] {
        let count = try reader.readCount("state.reservations.count", limit: StateExchange.maxReservations, minimumItemSize: 5)
        var records: [StateExchange.ReservationRecord] = []
        records.reserveCapacity(count)
        for _ in 0..<count {
            let endpointOffset = reader.offset
            let endpoint = try reader.readString("state.reservation.endpoint", maxBytes: EndpointTable.maxEndpointLength)
            guard !endpoint.isEmpty else { throw WireDecodeError(.invalidValue, field: "state.reservation.endpoint", offset: endpointOffset) }
            let claimOffset = reader.offset
            let claim = try self.readClaim(&reader, "state.reservation.claim")
            guard !claim.tenant.isEmpty else { throw WireDecodeError(.invalidValue, field: "state.reservation.claim.tenant", offset: claimOffset) }
            let remaining = try reader.readVarint("state.reservation.remaining", limit: StateExchange.maxReservationMilliseconds)
            records.append(StateExchange.ReservationRecord(endpoint: endpoint, claim: claim, remainingMilliseconds: remaining))
        }
        return records
    }

    static func readMemberRecords(_ reader: inout ByteReader) throws(WireDecodeError) -> [StateExchange.MemberRecord] {
        let count = try reader.readCount("state.members.count", limit: self.maxStateItems, minimumItemSize: 20)
        var members: [StateExchange.MemberRecord] = []
        members.reserveCapacity(count)
        for _ in 0..<count {
            let info = try self.readInfo(&reader, "state.member.info")
            let status = try self.readStatus(&reader, "state.member.status", terminal: false)
            let incarnation = try reader.readVarint("state.member.incarnation")
            let draining = try self.readFlag(&reader, "state.member.draining")
            members.append(StateExchange.MemberRecord(info: info, state: MemberState(status, incarnation), draining: draining))
        }
        return members
    }

    /// Reads a status byte that must be terminal (tombstones) or not (members).
    static func readStatus(_ reader: inout ByteReader, _ field: @autoclosure () -> String, terminal: Bool) throws(WireDecodeError) -> MemberStatus {
        let offset = reader.offset
        guard let status = MemberStatus(rawValue: try reader.readByte(field())), status.isTerminal == terminal else {
            throw WireDecodeError(.invalidValue, field: field(), offset: offset)
        }
        return status
    }

    static func readTombstoneRecords(_ reader: inout ByteReader) throws(WireDecodeError) -> [StateExchange.TombstoneRecord] {
        let count = try reader.readCount("state.tombstones.count", limit: self.maxStateItems, minimumItemSize: 11)
        var tombstones: [StateExchange.TombstoneRecord] = []
        tombstones.reserveCapacity(count)
        for _ in 0..<count {
            let uid = try self.readUID(&reader, "state.tombstone.uid")
            let status = try self.readStatus(&reader, "state.tombstone.status", terminal: true)
            let incarnation = try reader.readVarint("state.tombstone.incarnation")
            let address = try self.readFlag(&reader, "state.tombstone.hasAddress")
                ? try self.readAddress(&reader, "state.tombstone.address") : nil
            tombstones.append(StateExchange.TombstoneRecord(uid: uid, status: status, incarnation: incarnation, address: address))
        }
        return tombstones
    }

    static func readSnapshots(_ reader: inout ByteReader, claims: Bool) throws(WireDecodeError) -> [StateExchange.EndpointSnapshot] {
        let count = try reader.readCount("state.endpoints.count", limit: self.maxStateItems, minimumItemSize: 10)
        var snapshots: [StateExchange.EndpointSnapshot] = []
        snapshots.reserveCapacity(count)
        for _ in 0..<count {
            let owner = try self.readUID(&reader, "state.endpoints.owner")
            let version = try reader.readVarint("state.endpoints.version")
            let entryCount = try reader.readCount("state.endpoints.entries.count", limit: self.maxStateItems, minimumItemSize: 3)
            var entries: [EndpointDelta.Entry] = []
            entries.reserveCapacity(entryCount)
            for _ in 0..<entryCount {
                let (endpoint, entryCount) = try self.readEndpointCount(&reader, "state.endpoints.entry")
                let versionOffset = reader.offset
                let entryVersion = try reader.readVarint("state.endpoints.entry.version")
                guard entryVersion > 0, entryVersion <= version else {
                    throw WireDecodeError(.invalidValue, field: "state.endpoints.entry.version", offset: versionOffset)
                }
                let claim = claims ? try self.readClaim(&reader, "state.endpoints.entry.claim") : .untenanted
                entries.append(EndpointDelta.Entry(endpoint: endpoint, count: entryCount, version: entryVersion, claim: claim))
            }
            snapshots.append(StateExchange.EndpointSnapshot(owner: owner, version: version, entries: entries))
        }
        return snapshots
    }
}
