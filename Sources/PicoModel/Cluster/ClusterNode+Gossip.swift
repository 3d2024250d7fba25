// ==== ---- Carrying out membership directives; datagrams and state exchanges -------------------------

extension ClusterNode {
    /// Turns membership directives into shell directives, reacting to membership events on the way
    /// (endpoint entries of dead owners go, a rebirth re-publishes ours, join/leave drive the
    /// lifecycle).
    mutating func interpret(_ produced: [MembershipDirective], now: Instant, into directives: inout [ClusterDirective]) {
        for directive in produced {
            switch directive {
            case .send(let messages, let address, let piggyback):
                directives.append(.sendDatagram(self.makeDatagram(messages, piggyback: piggyback), to: address))
            case .broadcast(let message):
                self.broadcasts.enqueue(message)
            case .schedule(let timer, let instant):
                directives.append(.schedule(timer, at: instant))
            case .exchangeState(let address, let purpose):
                self.openExchange(with: address, purpose: purpose, now: now, into: &directives)
            case .resolveSeeds:
                directives.append(.resolveSeeds(self.membership.seeds))
            case .event(.probeAnswered(let uid, let directly)):
                // Evidence for routing only (one per probe round: not worth an event).
                if directly || self.membership.isLive(uid) { self.reachability.noteProbeAnswered(uid, directly: directly) }
            case .event(let event):
                directives.append(.event(.membership(event)))
                self.react(to: event, now: now, into: &directives)
            }
        }
    }

    mutating func react(to event: MembershipEvent, now: Instant, into directives: inout [ClusterDirective]) {
        switch event {
        case .memberStatusChanged(let uid, _, _, let to) where to.status.isTerminal:
            self.endpointLag[uid] = nil
            self.reachability.forgetMember(uid)
            let changes = self.endpoints.removeOwner(uid)
            self.publish(changes, into: &directives)
            self.noteLostRoutes(changes)
        case .memberRemoved(let uid, _):
            self.endpoints.forgetRemovedOwner(uid)
        case .reborn(_, let new):
            let (changes, deltas) = self.endpoints.changeLocalOwner(to: new)
            self.publish(changes, into: &directives)
            for delta in deltas { self.broadcasts.enqueueLocalDelta(delta) }
            self.announceRebirth(deltas, now: now, into: &directives)
        case .joined:
            self.apply(lifecycle: .joined, now: now, into: &directives)
        case .joinFailed:
            self.apply(lifecycle: .joinFailed, now: now, into: &directives)
        case .leaveCompleted:
            self.apply(lifecycle: .leaveCompleted, now: now, into: &directives)
        case .memberJoined(let info):
            // Learned from gossip rather than from a full state: its endpoint entries may have been
            // broadcast while we could not hear them (another side of a partition, a process that
            // started meanwhile). Sync with it instead of waiting up to a push/pull period.
            let bound = self.configuration.maxPendingExchanges
            if !self.isMergingState, self.discoverySyncs.count < bound, !self.discoverySyncs.contains(info.gossipAddress) {
                self.discoverySyncs.append(info.gossipAddress)
            }
        case .memberStatusChanged, .memberDraining, .refuted, .forgedClaimDropped, .localPauseDetected, .probeAnswered:
            break
        }
    }

    /// A rebirth made every peer drop our endpoint entries (they went with the old UID). Our new
    /// identity and as many of our entries as fit one datagram go to every alive member directly
    /// (up to `directAnnouncementLimit`), besides the broadcasts, so routers serve our endpoints
    /// again within a round trip instead of a gossip round or a sync later (fuzz seed 2489: pods
    /// declared dead in a 6 s partition were reborn just after it healed, and a request waited
    /// its whole second for a holder its node had not yet heard of). Entries that do not fit
    /// follow by gossip, or by the sync a receiver starts when a datagram shows it behind.
    /// At most once per `forgeryRebirthInterval`: a `dead` about us is anyone's to send, and a
    /// flood of them must not make us send a datagram to every member each time.
    mutating func announceRebirth(_ deltas: [EndpointDelta], now: Instant, into directives: inout [ClusterDirective]) {
        if let last = self.lastRebirthAnnouncementAt, now - last < self.configuration.membership.forgeryRebirthInterval { return }
        self.lastRebirthAnnouncementAt = now
        let alive = self.membership.aliveMessage()
        var messages = [alive]
        var size = GossipCodec.maxDatagramHeaderSize + (self.security?.verifyOutgoing == true ? GossipSeal.overhead : 0)
            + GossipCodec.encode(alive).count
        for delta in deltas {
            let message = GossipMessage.endpointDelta(delta)
            let encoded = GossipCodec.encode(message).count
            guard size + encoded <= self.configuration.membership.maxPacketSize, messages.count < GossipCodec.maxMessagesPerDatagram else { break }
            messages.append(message)
            size += encoded
        }
        let limit = self.configuration.membership.directAnnouncementLimit
        for member in self.membership.aliveMembers().prefix(limit) {
            directives.append(.sendDatagram(self.makeDatagram(messages, piggyback: false), to: member.info.gossipAddress))
        }
    }

    func publish(_ changes: [EndpointTable.Change], into directives: inout [ClusterDirective]) {
        for change in changes {
            directives.append(.event(.endpointChanged(endpoint: change.endpoint, owner: change.owner, count: change.count)))
        }
    }

    /// Encodes `messages` and, when `piggyback`, fills the rest of `maxPacketSize` with broadcasts.
    mutating func makeDatagram(_ messages: [GossipMessage], piggyback: Bool) -> [UInt8] {
        var encoded = messages.map { GossipCodec.encode($0) }
        if piggyback {
            let sealing = self.security?.verifyOutgoing == true ? GossipSeal.overhead : 0
            let used = encoded.reduce(GossipCodec.maxDatagramHeaderSize + sealing) { $0 + $1.count }
            encoded += self.broadcasts.take(
                budget: self.configuration.membership.maxPacketSize - used,
                maxMessages: GossipCodec.maxMessagesPerDatagram - encoded.count,
                limit: self.membership.retransmitLimit)
        }
        for message in encoded { self.gossipTraffic.countSent(encoded: message) }
        let plain = GossipCodec.datagram(sender: self.me.uid, endpointVersion: self.endpoints.localVersion, encodedMessages: encoded)
        return GossipSeal.seal(plain, channel: .datagram, security: self.security)
    }

    /// The plaintext of a received message, or nil (with the event) when it does not
    /// authenticate: nothing of it is parsed then.
    func opened(_ bytes: [UInt8], channel: GossipSeal.Channel, from address: Address?, into directives: inout [ClusterDirective]) -> [UInt8]? {
        switch GossipSeal.open(bytes, channel: channel, security: self.security) {
        case .success(let plaintext): return plaintext
        case .failure(let refusal):
            directives.append(.event(.unauthenticatedMessage(from: address, refusal: refusal)))
            return nil
        }
    }

    mutating func onDatagram(_ sealed: [UInt8], from address: Address, now: Instant, into directives: inout [ClusterDirective]) {
        guard let bytes = self.opened(sealed, channel: .datagram, from: address, into: &directives) else { return }
        let datagram: GossipCodec.Datagram
        do {
            datagram = try GossipCodec.decodeDatagram(bytes)
        } catch {
            directives.append(.event(.malformedMessage(from: address, error: error)))
            return
        }
        for message in datagram.messages { self.gossipTraffic.countReceived(message) }
        let produced = self.membership.onDatagram(sender: datagram.sender, from: address, messages: datagram.messages, now: now)
        self.interpret(produced, now: now, into: &directives)
        for message in datagram.messages {
            guard case .endpointDelta(let delta) = message else { continue }
            if delta.owner == self.me.uid {
                self.checkOwnEndpointVersion(delta.lastVersion, now: now, into: &directives)
                continue
            }
            guard self.membership.isLive(delta.owner) else { continue }
            let changes = self.endpoints.apply(delta)
            guard !changes.isEmpty else { continue }
            self.publish(changes, into: &directives)
            self.noteLostRoutes(changes)
            self.broadcasts.enqueue(.endpointDelta(delta))
        }
        self.noteEndpointVersion(datagram.senderEndpointVersion, of: datagram.sender, at: address, now: now)
    }

    /// Compares what a sender says its endpoint version is with what we know of it. Still behind
    /// a probe interval later (the delta was not merely in flight) means we missed deltas: sync.
    mutating func noteEndpointVersion(_ version: UInt64, of sender: NodeUID, at address: Address, now: Instant) {
        guard sender != self.me.uid, self.membership.isLive(sender) else { return }
        guard self.endpoints.knownVersion(of: sender) < version else {
            self.endpointLag[sender] = nil
            return
        }
        guard let since = self.endpointLag[sender] else {
            if self.endpointLag.count < self.configuration.membership.maxMembers { self.endpointLag[sender] = now }
            return
        }
        guard now - since >= self.configuration.membership.probeInterval else { return }
        self.endpointLag[sender] = now
        if self.discoverySyncs.count < self.configuration.maxPendingExchanges, !self.discoverySyncs.contains(address) {
            self.discoverySyncs.append(address)
        }
    }

    // MARK: - Push/pull

    mutating func makeStateExchange(purpose: StateExchange.Purpose, isReply: Bool, now: Instant) -> StateExchange {
        let records = self.membership.stateRecords()
        let snapshots = self.endpoints.snapshots().filter { self.membership.isLive($0.owner) }
        return StateExchange(
            purpose: purpose, isReply: isReply, sender: self.me.uid, members: records.members,
            tombstones: records.tombstones, endpoints: snapshots, reservations: self.reservationRecords(now: now))
    }

    mutating func openExchange(with address: Address, purpose: StateExchange.Purpose, now: Instant, into directives: inout [ClusterDirective]) {
        guard self.pendingExchanges.count < self.configuration.maxPendingExchanges else { return }
        let id = ExchangeID(self.nextExchangeID)
        self.nextExchangeID += 1
        let deadline = now + self.configuration.stateExchangeTimeout
        self.pendingExchanges[id] = PendingExchange(address: address, purpose: purpose, deadline: deadline)
        let bytes = GossipCodec.encode(self.makeStateExchange(purpose: purpose, isReply: false, now: now))
        directives.append(.openStateExchange(id, to: address, bytes: GossipSeal.seal(bytes, channel: .stateRequest, security: self.security)))
        self.scheduleExchangeDeadline(into: &directives)
    }

    /// Fails every pending exchange past its deadline (as if the transport had reported a
    /// timeout), then re-arms the timer for the next one.
    mutating func failOverdueExchanges(now: Instant, into directives: inout [ClusterDirective]) {
        let overdue = self.pendingExchanges.filter { $0.value.deadline <= now }.keys.sorted()
        for id in overdue {
            self.onStateExchangeFailed(id, reason: "no answer within \(self.configuration.stateExchangeTimeout)", now: now, into: &directives)
        }
        self.scheduleExchangeDeadline(into: &directives)
    }

    func scheduleExchangeDeadline(into directives: inout [ClusterDirective]) {
        guard let earliest = self.pendingExchanges.values.map(\.deadline).min() else { return }
        directives.append(.schedule(.stateExchangeDeadline, at: earliest))
    }

    /// Starts at most one discovery sync per probe interval with a member still alive.
    mutating func runDiscoverySync(now: Instant, into directives: inout [ClusterDirective]) {
        guard now >= self.nextDiscoverySyncAt, self.membership.phase == .running else { return }
        while !self.discoverySyncs.isEmpty {
            let address = self.discoverySyncs.removeFirst()
            guard let holder = self.membership.addressIndex[address], self.membership.isLive(holder) else { continue }
            self.openExchange(with: address, purpose: .pushPull, now: now, into: &directives)
            self.nextDiscoverySyncAt = now + self.configuration.membership.probeInterval
            return
        }
    }

    /// Merges a peer's full state. `dialed`: the address this node opened the exchange to, for a
    /// reply (nil for a request a peer opened): the sender's own snapshot in a reply from the
    /// sender's own gossip address is taken as the owner's word (`EndpointTable.applyFromOwner`).
    mutating func merge(_ state: StateExchange, dialed: Address? = nil, now: Instant, into directives: inout [ClusterDirective]) {
        self.isMergingState = true
        defer { self.isMergingState = false }
        let produced = self.membership.mergeState(members: state.members, tombstones: state.tombstones, sender: state.sender, now: now)
        self.interpret(produced, now: now, into: &directives)
        let ownerAnswered = dialed != nil && self.membership.member(state.sender)?.info.gossipAddress == dialed
        for snapshot in state.endpoints {
            if snapshot.owner == self.me.uid {
                self.checkOwnEndpointVersion(snapshot.version, now: now, into: &directives)
            } else if self.membership.isLive(snapshot.owner) {
                guard ownerAnswered, snapshot.owner == state.sender else {
                    self.publish(self.endpoints.apply(snapshot), into: &directives)
                    continue
                }
                let (changes, wentBack) = self.endpoints.applyFromOwner(snapshot)
                self.publish(changes, into: &directives)
                if wentBack, let dialed, self.discoverySyncs.count < self.configuration.maxPendingExchanges, !self.discoverySyncs.contains(dialed) {
                    // A change of the owner's may have overtaken its reply: ask once more (a
                    // probe interval later). After a forgery the next reply matches, and that ends it.
                    self.discoverySyncs.append(dialed)
                }
            }
        }
        self.adopt(state.reservations, now: now)
    }

    /// A delta or snapshot of our own entries came back. At or below our version it is an echo;
    /// above it, it is forged (only we write our entries), and peers that took it for news ignore
    /// our real updates from then on: `Membership.dropForgedClaim` reports it and takes a new UID.
    mutating func checkOwnEndpointVersion(_ version: UInt64, now: Instant, into directives: inout [ClusterDirective]) {
        guard version > self.endpoints.localVersion else { return }
        var produced: [MembershipDirective] = []
        self.membership.dropForgedClaim(.endpointVersion, claimed: version, own: self.endpoints.localVersion, now: now, into: &produced)
        self.interpret(produced, now: now, into: &directives)
    }

    mutating func onStateExchangeRequested(_ id: ExchangeID, bytes sealed: [UInt8], from address: Address, now: Instant, into directives: inout [ClusterDirective]) {
        guard let bytes = self.opened(sealed, channel: .stateRequest, from: address, into: &directives) else { return }
        let state: StateExchange
        do {
            state = try GossipCodec.decodeStateExchange(bytes)
        } catch {
            directives.append(.event(.malformedMessage(from: address, error: error)))
            return
        }
        guard !state.isReply, self.membership.phase != .finished else { return }
        self.merge(state, now: now, into: &directives)
        let reply = GossipCodec.encode(self.makeStateExchange(purpose: state.purpose, isReply: true, now: now))
        directives.append(.replyStateExchange(id, bytes: GossipSeal.seal(reply, channel: .stateReply, security: self.security)))
    }

    mutating func onStateExchangeReplied(_ id: ExchangeID, bytes sealed: [UInt8], now: Instant, into directives: inout [ClusterDirective]) {
        guard let pending = self.pendingExchanges.removeValue(forKey: id) else { return }
        var succeeded = false
        if let bytes = self.opened(sealed, channel: .stateReply, from: pending.address, into: &directives) {
            do {
                let state = try GossipCodec.decodeStateExchange(bytes)
                if state.isReply {
                    self.merge(state, dialed: pending.address, now: now, into: &directives)
                    succeeded = true
                }
            } catch {
                directives.append(.event(.malformedMessage(from: pending.address, error: error)))
            }
        }
        self.interpret(self.membership.onStateExchangeFinished(purpose: pending.purpose, succeeded: succeeded, now: now), now: now, into: &directives)
    }

    mutating func onStateExchangeFailed(_ id: ExchangeID, reason: String, now: Instant, into directives: inout [ClusterDirective]) {
        guard let pending = self.pendingExchanges.removeValue(forKey: id) else { return }
        directives.append(.event(.stateExchangeFailed(to: pending.address, reason: reason)))
        self.interpret(self.membership.onStateExchangeFinished(purpose: pending.purpose, succeeded: false, now: now), now: now, into: &directives)
    }
}
