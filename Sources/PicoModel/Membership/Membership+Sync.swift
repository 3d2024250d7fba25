// ==== ---- Start, join, seed re-resolution, reconnect and push/pull ----------------------------------

extension Membership {
    /// Starts the protocol: arms the probe, gossip, push/pull and reconnect timers and, when seeds
    /// are configured, asks for them to be resolved (phase `joining`); without seeds the node is
    /// a cluster of one at once (`.joined(alone: true)`).
    public mutating func start(now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        guard self.phase == .idle else { return directives }
        self.lastInputAt = now
        directives.append(.schedule(.probe, at: now + self.settings.probeInterval))
        directives.append(.schedule(.gossip, at: now + self.settings.gossipInterval))
        directives.append(.schedule(.pushPull, at: now + self.pushPullPeriod()))
        directives.append(.schedule(.reconnect, at: now + self.settings.reconnectInterval))
        if self.seeds.isEmpty {
            self.phase = .running
            directives.append(.event(.joined(alone: true)))
        } else {
            self.phase = .joining
            self.join = JoinProgress(attemptsInFlight: 0, succeeded: false, retryDelay: self.settings.joinRetryMin)
            directives.append(.resolveSeeds)
            directives.append(.schedule(.joinDeadline, at: now + self.settings.joinTimeout))
        }
        return directives
    }

    /// The seed names resolved to `addresses`. While joining, contact up to `joinFanout` of the
    /// ones that are not us; none left means we are the first node and run alone. Afterwards,
    /// addresses that no live member holds (nodes that started at the same moment, or the other
    /// side of a partition) are contacted the same way. Re-resolution repeats every
    /// `seedResolveInterval`.
    public mutating func onSeedsResolved(_ addresses: [Address], now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        guard self.phase == .joining || self.phase == .running else { return directives }
        self.noteInput(now: now, into: &directives)
        let unique = Self.sortedUnique(addresses)
        self.resolvedSeeds = Array(unique.prefix(self.settings.maxMembers))
        self.cachedUnheldSeeds = nil
        let unknown = self.resolvedSeeds.filter { $0 != self.me.gossipAddress && self.addressIndex[$0] == nil }
        if self.phase == .joining {
            if unknown.isEmpty {
                self.finishJoin(alone: self.liveMemberCount == 0, now: now, into: &directives)
            } else {
                let chosen = self.rng.sample(unknown, count: self.settings.joinFanout)
                self.join?.attemptsInFlight += chosen.count
                for address in chosen { directives.append(.exchangeState(with: address, purpose: .join)) }
            }
        } else {
            for address in self.rng.sample(unknown, count: self.settings.joinFanout) {
                directives.append(.exchangeState(with: address, purpose: .reconnect))
            }
            directives.append(.schedule(.seedResolution, at: now + self.nextResolveDelay()))
        }
        return directives
    }

    /// Resolving the seed names failed (or the timer to retry fired): while joining, retry with
    /// backoff; when running, try again at the next interval.
    public mutating func onSeedResolutionFailed(now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        self.noteInput(now: now, into: &directives)
        switch self.phase {
        case .joining: self.scheduleJoinRetry(now: now, into: &directives)
        case .running: directives.append(.schedule(.seedResolution, at: now + self.nextResolveDelay()))
        default: break
        }
        return directives
    }

    /// The seed-resolution timer fired: ask the shell to resolve again.
    public mutating func onSeedResolutionTimer(now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        if (self.phase == .joining || self.phase == .running) && !self.seeds.isEmpty {
            directives.append(.resolveSeeds)
        }
        return directives
    }

    /// The join deadline passed while still joining: give up (`.joinFailed`) when
    /// `abortIfJoinFails`, else run alone and keep re-resolving.
    public mutating func onJoinDeadline(now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        guard self.phase == .joining else { return directives }
        if self.settings.abortIfJoinFails {
            self.phase = .finished
            directives.append(.event(.joinFailed))
        } else {
            self.finishJoin(alone: true, now: now, into: &directives)
        }
        return directives
    }

    /// A state exchange we started finished: `succeeded` when the peer answered and its state was
    /// merged. A successful join exchange ends the join phase; when every attempt of a join round
    /// failed, the next round is scheduled with backoff.
    public mutating func onStateExchangeFinished(purpose: StateExchange.Purpose, succeeded: Bool, now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        self.noteInput(now: now, into: &directives)
        guard self.phase == .joining, purpose == .join, var join = self.join else { return directives }
        join.attemptsInFlight = max(0, join.attemptsInFlight - 1)
        join.succeeded = join.succeeded || succeeded
        self.join = join
        if join.succeeded {
            self.finishJoin(alone: false, now: now, into: &directives)
        } else if join.attemptsInFlight == 0 {
            self.scheduleJoinRetry(now: now, into: &directives)
        }
        return directives
    }

    /// The push/pull timer fired: exchange full state with one random alive member.
    public mutating func onPushPullTick(now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        guard self.phase == .running || self.phase == .joining else { return directives }
        self.noteInput(now: now, into: &directives)
        if let peer = self.rng.sample(self.aliveMembers(), count: 1).first {
            directives.append(.exchangeState(with: peer.info.gossipAddress, purpose: .pushPull))
        }
        directives.append(.schedule(.pushPull, at: now + self.pushPullPeriod()))
        return directives
    }

    /// The reconnect timer fired: try one random address among dead members' addresses and seeds
    /// that no live member holds (how partitions heal), and re-resolve the seeds when our view is
    /// smaller than what they last resolved to.
    public mutating func onReconnectTick(now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        guard self.phase == .running else {
            if self.phase == .joining { directives.append(.schedule(.reconnect, at: now + self.settings.reconnectInterval)) }
            return directives
        }
        self.noteInput(now: now, into: &directives)
        self.tryReconnecting(into: &directives)
        let resolvedOthers = self.resolvedSeeds.filter { $0 != self.me.gossipAddress }.count
        if !self.seeds.isEmpty, self.liveMemberCount < resolvedOthers {
            directives.append(.resolveSeeds)
        }
        directives.append(.schedule(.reconnect, at: now + self.settings.reconnectInterval))
        return directives
    }

    /// A request waits for a holder of an endpoint no live member is known to hold: a partition
    /// that outlasted the gossip to the dead may have healed, and only a reconnect finds that
    /// out. Tries one dead member's address (or unheld seed) now, as the reconnect tick would; the
    /// caller bounds how often.
    public mutating func onHolderWanted(now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        guard self.phase == .running else { return directives }
        self.tryReconnecting(into: &directives)
        return directives
    }

    /// A state exchange with one random address among dead members' addresses and seeds that no
    /// live member holds (none when there is none).
    private mutating func tryReconnecting(into directives: inout [MembershipDirective]) {
        // Only the few unheld addresses are collected, sorted and made unique, and the seeds are
        // looked up again only after the address index changed (a set of every seed built and
        // looked up on each tick was a twentieth of a 100-pod simulation).
        var unheld = self.unheldSeeds()
        for (_, tombstone) in self.tombstones where tombstone.status == .dead {
            if let address = tombstone.address, self.isUnheld(address) { unheld.append(address) }
        }
        unheld = Self.sortedUnique(unheld)
        if let address = self.rng.sample(unheld, count: 1).first {
            directives.append(.exchangeState(with: address, purpose: .reconnect))
        }
    }

    /// The resolved seeds no member holds (other than our own address), in seed order.
    private mutating func unheldSeeds() -> [Address] {
        if let known = self.cachedUnheldSeeds, known.stamp == self.addressIndexChanges.value { return known.addresses }
        let unheld = self.resolvedSeeds.filter { self.isUnheld($0) }
        self.cachedUnheldSeeds = (self.addressIndexChanges.value, unheld)
        return unheld
    }

    /// Whether `address` is another process's gossip address that no member of ours has.
    private func isUnheld(_ address: Address) -> Bool {
        address != self.me.gossipAddress && self.addressIndex[address] == nil
    }

    /// `values` in order without repeats; a list that is so already (the simulator's DNS
    /// answers) is checked in one pass and returned as it is.
    static func sortedUnique<Value: Comparable & Hashable>(_ values: [Value]) -> [Value] {
        if zip(values, values.dropFirst()).allSatisfy({ $0 < $1 }) { return values }
        return Array(Set(values)).sorted()
    }

    // MARK: - Full state

    /// Our live members (including ourselves) and tombstones, for a push/pull message.
    /// In UID order; takes the cached `memberOrder` (sorting every record for each exchange was a
    /// tenth of a 100-pod simulation).
    public mutating func stateRecords() -> (members: [StateExchange.MemberRecord], tombstones: [StateExchange.TombstoneRecord]) {
        let live = self.memberOrder().live
        var members: [StateExchange.MemberRecord] = []
        members.reserveCapacity(live.count + 1)
        let mine = StateExchange.MemberRecord(info: self.me, state: MemberState(.alive, self.incarnation), draining: self.isDraining)
        var mineWritten = false
        for uid in live {
            guard let member = self.members[uid] else { continue }
            if !mineWritten, self.me.uid < uid {
                members.append(mine)
                mineWritten = true
            }
            members.append(StateExchange.MemberRecord(info: member.info, state: member.state, draining: member.draining))
        }
        if !mineWritten { members.append(mine) }
        let tombstones = self.tombstoneList.map { entry in
            StateExchange.TombstoneRecord(
                uid: entry.uid, status: entry.tombstone.status, incarnation: entry.tombstone.incarnation,
                address: entry.tombstone.address)
        }
        return (members, tombstones)
    }

    /// Merges a peer's full state: tombstones first (authoritative: a UID dead anywhere is dead
    /// everywhere), then live members as if each had been gossiped by `sender`.
    public mutating func mergeState(
        members: [StateExchange.MemberRecord],
        tombstones: [StateExchange.TombstoneRecord],
        sender: NodeUID,
        now: Instant
    ) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        guard self.phase != .idle, self.phase != .finished else { return directives }
        self.noteInput(now: now, into: &directives)
        for record in tombstones where record.status.isTerminal {
            if record.status == .left {
                self.applyLeft(subject: record.uid, incarnation: record.incarnation, now: now, into: &directives)
            } else {
                self.applyDead(subject: record.uid, incarnation: record.incarnation, accuser: sender, now: now, into: &directives)
                if record.uid != self.me.uid, self.tombstones[record.uid]?.address == nil, let address = record.address {
                    self.tombstones[record.uid]?.address = address
                }
            }
        }
        for record in members {
            switch record.state.status {
            case .alive:
                self.applyAlive(record.info, incarnation: record.state.incarnation, draining: record.draining, now: now, into: &directives)
            case .suspect:
                self.applyAlive(record.info, incarnation: record.state.incarnation, draining: record.draining, now: now, into: &directives)
                // A full state does not say who suspected the member (it may even be our own
                // accusation, echoed), so it can start a suspicion but never confirm one.
                self.applySuspect(
                    subject: record.info.uid, incarnation: record.state.incarnation, accuser: sender, mayConfirm: false, now: now,
                    into: &directives)
            case .dead, .left:
                continue
            }
        }
        return directives
    }

    // MARK: - Helpers

    /// memberlist's push/pull scaling: ×1 up to 32 members, then `ceil(log2 N - log2 32) + 1`.
    func pushPullPeriod() -> Duration {
        let size = self.clusterSize
        guard size > 32 else { return self.settings.pushPullInterval }
        var doublings = 0
        var span = 32
        while span < size {
            span *= 2
            doublings += 1
        }
        return self.settings.pushPullInterval * (doublings + 1)
    }

    mutating func finishJoin(alone: Bool, now: Instant, into directives: inout [MembershipDirective]) {
        guard self.phase == .joining else { return }
        self.phase = .running
        self.join = nil
        directives.append(.event(.joined(alone: alone)))
        self.aloneResolveDelay = self.settings.joinRetryMin
        directives.append(.schedule(.seedResolution, at: now + self.nextResolveDelay()))
    }

    /// The delay before the next re-resolution: `seedResolveInterval`, except while we know no
    /// other member, when it starts at `joinRetryMin` and doubles (pods of a StatefulSet that
    /// started before DNS listed their peers find each other within seconds, not a full interval).
    mutating func nextResolveDelay() -> Duration {
        guard self.liveMemberCount == 0 else {
            self.aloneResolveDelay = self.settings.joinRetryMin
            return self.settings.seedResolveInterval
        }
        let delay = min(self.aloneResolveDelay, self.settings.seedResolveInterval)
        self.aloneResolveDelay = min(self.aloneResolveDelay * 2, self.settings.seedResolveInterval)
        return delay
    }

    mutating func scheduleJoinRetry(now: Instant, into directives: inout [MembershipDirective]) {
        guard var join = self.join else { return }
        directives.append(.schedule(.seedResolution, at: now + join.retryDelay))
        join.retryDelay = min(join.retryDelay * 2, self.settings.joinRetryMax)
        self.join = join
    }
}
