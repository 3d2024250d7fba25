// ==== ---- Dissemination, housekeeping and graceful leave --------------------------------------------

extension Membership {
    /// The gossip timer fired. When `hasBroadcasts` (the owner's queue is not empty) send one
    /// datagram of broadcasts to each of `gossipNodes` random members (alive, suspect, or dead for
    /// less than `gossipToTheDeadTime`, so the dead learn it). While leaving, retransmit `left` to
    /// the members that have not acknowledged it. Always schedules the next round.
    public mutating func onGossipTick(hasBroadcasts: Bool, now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        guard self.phase != .idle, self.phase != .finished else { return directives }
        self.noteInput(now: now, into: &directives)
        self.takeOwedForgeryRebirth(now: now, into: &directives)
        if hasBroadcasts {
            let order = self.memberOrder()
            let recentlyDead = order.dead.filter { uid in self.members[uid].map { now - $0.since < self.settings.gossipToTheDeadTime } ?? false }
            let candidates = recentlyDead.isEmpty ? order.live : (order.live + recentlyDead).sorted()
            for uid in self.rng.sample(candidates, count: self.settings.gossipNodes) {
                guard let target = self.members[uid] else { continue }
                directives.append(.send([], to: target.info.gossipAddress, piggyback: true))
            }
        }
        if self.phase == .running { self.tellTheDead(now: now, into: &directives) }
        if self.phase == .leaving, let leave = self.leave {
            for (uid, address) in leave.targets.sorted(by: { $0.key < $1.key }) where !leave.acknowledged.contains(uid) {
                directives.append(.send([.left(subject: self.me.uid, incarnation: self.incarnation)], to: address, piggyback: false))
            }
        }
        // ALWAYS schedule the next round.
        directives.append(.schedule(.gossip, at: now + self.settings.gossipInterval))
        return directives
    }

    /// Every gossip round, each member we declared dead less than `gossipToTheDeadTime` ago, whose
    /// address no live member holds, is sent its own death notice (up to `gossipNodes` of them per
    /// round, in a datagram of its own without piggybacked broadcasts, which a crashed address
    /// would only waste). Gossip to the dead exists so that they learn they were declared dead,
    /// but it carried whatever broadcasts were pending, and the `dead` itself was spent while the
    /// member was cut off: after a partition healed nothing crossed it until the 10 s reconnect
    /// tick or a probe that Lifeguard had stretched to 8 s, and requests for endpoints held on the
    /// other side got 502 for seconds although their holders were reachable again (fuzz seed 516).
    /// Now the first round after a heal crosses it: the member takes a new UID, tells us we are
    /// dead if it holds us dead too, and both sides announce themselves within a round or two.
    /// One that was already reborn answers with its new identity (`onDatagram`, fuzz seed 338).
    mutating func tellTheDead(now: Instant, into directives: inout [MembershipDirective]) {
        let dead = self.memberOrder().dead.compactMap { uid -> Member? in
            guard let member = self.members[uid], now - member.since < self.settings.gossipToTheDeadTime,
                  self.addressIndex[member.info.gossipAddress] == nil, member.info.gossipAddress != self.me.gossipAddress
            else { return nil }
            return member
        }
        guard !dead.isEmpty else { return }
        let sorted = dead.sorted { $0.info.uid < $1.info.uid }
        let chosen = sorted.count <= self.settings.gossipNodes ? sorted : self.rng.sample(sorted, count: self.settings.gossipNodes)
        for member in chosen {
            let notice = GossipMessage.dead(subject: member.info.uid, incarnation: member.state.incarnation, accuser: self.me.uid)
            directives.append(.send([notice], to: member.info.gossipAddress, piggyback: false))
        }
    }


    /// Announces that we are draining (a new incarnation with the draining flag), so routers stop
    /// preferring us while we keep serving.
    public mutating func startDraining(now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        guard !self.isDraining, self.phase == .running || self.phase == .joining else { return directives }
        self.isDraining = true
        guard self.raiseIncarnation(now: now, into: &directives) else { return directives }
        directives.append(.broadcast(self.aliveMessage()))
        // Every router must learn this before the drain ends, or it keeps choosing us over the
        // replacement and its requests fail once we close the tunnel and leave (fuzz seed 2622).
        self.announceDirectly(self.aliveMessage(), into: &directives)
        return directives
    }

    /// Sends `message` in its own datagram to each of `first`, then to the other alive members
    /// (sorted by UID) up to `directAnnouncementLimit` in all; gossip carries it beyond. For news
    /// every router needs at once (draining, leaving), which a broadcast delivers only with high
    /// probability.
    mutating func announceDirectly(_ message: GossipMessage, first: [Member] = [], into directives: inout [MembershipDirective]) {
        let firstUIDs = Set(first.map(\.info.uid))
        let others = self.aliveMembers { !firstUIDs.contains($0.info.uid) }
        for member in first + others.prefix(max(0, self.settings.directAnnouncementLimit - first.count)) {
            directives.append(.send([message], to: member.info.gossipAddress, piggyback: false))
        }
    }

    /// Starts the graceful leave: a self-issued `left`, sent directly to a few live members and
    /// broadcast, retransmitted until `leaveAcknowledgements` of them acknowledge it or
    /// `leaveTimeout` passes. Ends with `.leaveCompleted`.
    public mutating func startLeave(now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        guard self.phase == .running || self.phase == .joining else { return directives }
        self.phase = .leaving
        self.probe = nil
        let targets = self.rng.sample(self.aliveMembers(), count: max(3, self.settings.leaveAcknowledgements))
        var progress = LeaveProgress(targets: [:], acknowledged: [], needed: min(self.settings.leaveAcknowledgements, targets.count))
        for target in targets { progress.targets[target.info.uid] = target.info.gossipAddress }
        self.leave = progress
        let announcement = GossipMessage.left(subject: self.me.uid, incarnation: self.incarnation)
        // Every router should stop forwarding to us at once, not a few gossip rounds later (fuzz
        // seed 9901: a node forwarded to us 0.3 s after we left). Only the targets acknowledge.
        self.announceDirectly(announcement, first: targets, into: &directives)
        directives.append(.broadcast(announcement))
        if progress.needed == 0 {
            self.finishLeave(into: &directives)
        } else {
            directives.append(.schedule(.leaveDeadline, at: now + self.settings.leaveTimeout))
        }
        return directives
    }

    /// The leave deadline passed: finish without (all) acknowledgements.
    public mutating func onLeaveDeadline(now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        if self.phase == .leaving { self.finishLeave(into: &directives) }
        return directives
    }

    mutating func onLeaveAck(subject: NodeUID, from sender: NodeUID, now: Instant, into directives: inout [MembershipDirective]) {
        guard self.phase == .leaving, subject == self.me.uid, var leave = self.leave,
            leave.targets[sender] != nil, !leave.acknowledged.contains(sender)
        else { return }
        leave.acknowledged.append(sender)
        self.leave = leave
        if leave.acknowledged.count >= leave.needed { self.finishLeave(into: &directives) }
    }

    mutating func finishLeave(into directives: inout [MembershipDirective]) {
        self.phase = .finished
        directives.append(.event(.leaveCompleted(acknowledgements: self.leave?.acknowledged.count ?? 0)))
    }

    /// Drops dead/left members older than `gossipToTheDeadTime` from the list (their tombstones
    /// stay), expires tombstones, and forgets stale relays' rate-limit records.
    mutating func reap(now: Instant, into directives: inout [MembershipDirective]) {
        // Departed members in the order they departed: the expired ones are at the front (an
        // entry whose member was reaped, evicted or departed again since is stale and skipped).
        var expired: [NodeInfo] = []
        while let oldest = self.departedQueue.first, now - oldest.at >= self.settings.gossipToTheDeadTime {
            _ = self.departedQueue.popFirst()
            guard let member = self.members[oldest.uid], !member.isLive, member.since == oldest.at else { continue }
            expired.append(member.info)
        }
        expired.sort { $0.uid < $1.uid }
        for info in expired {
            self.members[info.uid] = nil
            directives.append(.event(.memberRemoved(uid: info.uid, name: info.name)))
        }
        if let earliest = self.earliestTombstoneExpiry, earliest <= now {
            self.tombstones = self.tombstones.filter { $0.value.expiresAt > now || self.members[$0.key] != nil }
            self.earliestTombstoneExpiry = self.tombstones.values.map(\.expiresAt).min()
            let tombstones = self.tombstones
            self.tombstoneQueue.trim(liveCount: tombstones.count) { tombstones[$0.uid]?.expiresAt == $0.at }
        }
        if !expired.isEmpty {
            let members = self.members
            self.departedQueue.trim(liveCount: members.count - self.liveMemberCount) { entry in
                members[entry.uid].map { !$0.isLive && $0.since == entry.at } ?? false
            }
        }
        self.toldDeadAt = self.toldDeadAt.filter { now - $0.value < self.settings.gossipInterval }
    }
}
