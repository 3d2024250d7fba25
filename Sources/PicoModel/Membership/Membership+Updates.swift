// ==== ---- Incoming datagrams and membership updates ------------------------------------------------

extension Membership {
    /// A datagram from `sender` (the UID in its header) arrived from `address`. Handles every
    /// membership message in it, in order; endpoint deltas are ignored here (the owner applies
    /// them). A sender we hold as dead is told so (at most once per gossip interval), which makes
    /// it take a new UID and rejoin.
    public mutating func onDatagram(
        sender: NodeUID,
        from address: Address,
        messages: [GossipMessage],
        now: Instant
    ) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        guard self.phase != .idle, self.phase != .finished else { return directives }
        self.noteInput(now: now, into: &directives)
        let senderIsTombstoned = self.tombstones[sender] != nil
        let senderIsLeaving = messages.contains { if case .left(let subject, _) = $0 { return subject == sender } else { return false } }
        if senderIsTombstoned, !senderIsLeaving { self.tellDead(sender, at: address, now: now, into: &directives) }
        for message in messages {
            switch message {
            case .ping(let sequence, let target):
                guard !senderIsTombstoned else { continue }
                if target == self.me.uid {
                    directives.append(.send([.ack(sequence: sequence, target: target, incarnation: self.incarnation)], to: address, piggyback: true))
                } else {
                    // A ping for an earlier process at our address: introduce ourselves so the
                    // sender learns at once that the old UID is gone.
                    directives.append(.send([self.aliveMessage()], to: address, piggyback: false))
                }
            case .ack(let sequence, let target, let incarnation):
                self.onAck(sequence: sequence, target: target, incarnation: incarnation, directly: sender == target, now: now, into: &directives)
            case .pingRequest(let sequence, let target, let targetAddress):
                guard !senderIsTombstoned else { continue }
                self.onPingRequest(sequence: sequence, target: target, targetAddress: targetAddress, origin: address, now: now, into: &directives)
            case .nack(let sequence, _):
                if self.probe?.sequence == sequence { self.probe?.nacks += 1 }
            case .alive(let info, let incarnation, let draining):
                self.applyAlive(info, incarnation: incarnation, draining: draining, now: now, into: &directives)
            case .suspect(let subject, let incarnation, let accuser):
                self.applySuspect(subject: subject, incarnation: incarnation, accuser: accuser, now: now, into: &directives)
            case .dead(let subject, let incarnation, let accuser):
                if self.previousUIDs.contains(subject), !senderIsTombstoned, self.phase == .running || self.phase == .joining {
                    // The death of an identity we already left behind: its sender may not know the
                    // new one. Our own announcement of it may have been spent while we were cut
                    // off (a one-way cut let the news of our death in, nothing out), so introduce
                    // ourselves, as to a ping for an earlier process at our address (fuzz seed 338).
                    directives.append(.send([self.aliveMessage()], to: address, piggyback: false))
                }
                self.applyDead(subject: subject, incarnation: incarnation, accuser: accuser, now: now, into: &directives)
            case .left(let subject, let incarnation):
                if subject == sender, subject != self.me.uid {
                    directives.append(.send([.leaveAck(subject: subject)], to: address, piggyback: false))
                }
                self.applyLeft(subject: subject, incarnation: incarnation, now: now, into: &directives)
            case .leaveAck(let subject):
                self.onLeaveAck(subject: subject, from: sender, now: now, into: &directives)
            case .endpointDelta:
                continue
            }
        }
        self.syncWithStranger(sender, at: address, now: now, into: &directives)
        return directives
    }

    /// A datagram from a UID we have never heard of (not a member, not a tombstone), which did not
    /// introduce itself: a node that joined through someone else while the `alive` broadcast that
    /// announced it missed us (gossip reaches each node with high, not certain, probability, and
    /// members not yet known dead dilute it; fuzz seed 798 waited 30 s for push/pull). A full state
    /// exchange with it brings both views together at once. At most one per probe interval.
    mutating func syncWithStranger(_ sender: NodeUID, at address: Address, now: Instant, into directives: inout [MembershipDirective]) {
        guard self.phase == .running, sender != self.me.uid, !self.previousUIDs.contains(sender),
            self.members[sender] == nil, self.tombstones[sender] == nil
        else { return }
        if let last = self.lastStrangerSyncAt, now - last < self.settings.probeInterval { return }
        self.lastStrangerSyncAt = now
        directives.append(.exchangeState(with: address, purpose: .pushPull))
    }

    /// Our current `alive` announcement.
    public func aliveMessage() -> GossipMessage {
        .alive(info: self.me, incarnation: self.incarnation, draining: self.isDraining)
    }

    // MARK: - Probe replies

    /// `directly`: the target itself sent the ack (a relayed one comes from the helper).
    mutating func onAck(sequence: UInt32, target: NodeUID, incarnation: UInt64, directly: Bool = true, now: Instant,
                        into directives: inout [MembershipDirective]) {
        if let probe = self.probe, probe.sequence == sequence, probe.target == target {
            self.completeProbe(sequence: sequence, target: target, directly: directly, into: &directives)
            // The target answered at a newer incarnation than we suspect it at: it refuted, and we
            // missed the broadcast. Treat the ack as its alive announcement.
            if let member = self.members[target], member.state.status == .suspect, incarnation > member.state.incarnation {
                self.applyAlive(member.info, incarnation: incarnation, draining: member.draining, now: now, into: &directives)
            }
            return
        }
        if let relay = self.relays[sequence], relay.target == target {
            self.relays[sequence] = nil
            directives.append(.send([.ack(sequence: relay.originSequence, target: target, incarnation: incarnation)], to: relay.origin, piggyback: false))
        }
        // A late ack, or one we relay: still the target's incarnation, so still its refutation.
        if let member = self.members[target], member.state.status == .suspect, incarnation > member.state.incarnation {
            self.applyAlive(member.info, incarnation: incarnation, draining: member.draining, now: now, into: &directives)
        }
    }

    mutating func onPingRequest(
        sequence: UInt32,
        target: NodeUID,
        targetAddress: Address,
        origin: Address,
        now: Instant,
        into directives: inout [MembershipDirective]
    ) {
        if target == self.me.uid {
            directives.append(.send([.ack(sequence: sequence, target: target, incarnation: self.incarnation)], to: origin, piggyback: false))
            return
        }
        if let tombstone = self.tombstones[target] {
            // The origin probes a UID we know is gone: tell it instead of relaying a ping nobody
            // will answer.
            self.echoTombstone(target, tombstone, suspectedAt: tombstone.incarnation, directlyTo: origin, into: &directives)
            return
        }
        guard self.relays.count < self.settings.maxRelays else { return }
        let relaySequence = self.nextProbeSequence()
        self.relays[relaySequence] = Relay(origin: origin, originSequence: sequence, target: target)
        directives.append(.send([.ping(sequence: relaySequence, target: target)], to: targetAddress, piggyback: true))
        directives.append(.schedule(.relayTimeout(sequence: relaySequence), at: now + self.settings.indirectProbeTimeout))
    }

    // MARK: - Status updates

    mutating func applyAlive(_ info: NodeInfo, incarnation: UInt64, draining: Bool, now: Instant, into directives: inout [MembershipDirective]) {
        if info.uid == self.me.uid {
            if incarnation > self.incarnation {
                self.dropForgedClaim(.alive, claimed: incarnation, own: self.incarnation, now: now, into: &directives)
            } else if incarnation == self.incarnation, draining != self.isDraining, self.phase == .running || self.phase == .joining {
                self.refute(now: now, into: &directives)
            }
            return
        }
        if let tombstone = self.tombstones[info.uid] {
            // A refutation that outran nobody's tombstone but ours (it was held, or it reached a
            // node cut off when the death was announced): whoever gossips it has taken it for
            // news. Answer with the tombstone at that incarnation, or it lists a ghost until its
            // own probes and a lone suspicion run out (fuzz seed 2911).
            if incarnation > tombstone.incarnation {
                self.echoTombstone(info.uid, tombstone, suspectedAt: incarnation, directlyTo: nil, into: &directives)
            }
            return
        }
        if var member = self.members[info.uid] {
            let next = MemberState(.alive, incarnation)
            if member.state == next, draining, !member.draining {
                // Draining only ever turns on within an incarnation: an `alive` at the same one
                // that says so is news even though the state is not, or an earlier record of that
                // incarnation without the flag (an ack carries no flag) would hide the drain.
                member.draining = true
                self.members[info.uid] = member
                directives.append(.event(.memberDraining(uid: info.uid, name: info.name)))
                directives.append(.broadcast(.alive(info: member.info, incarnation: incarnation, draining: true)))
                return
            }
            guard member.state < next else { return }
            self.suspicions[info.uid] = nil
            self.transition(info.uid, to: next, now: now, into: &directives)
            member = self.members[info.uid] ?? member
            if draining, !member.draining { directives.append(.event(.memberDraining(uid: info.uid, name: info.name))) }
            member.draining = draining
            self.members[info.uid] = member
            directives.append(.broadcast(.alive(info: member.info, incarnation: incarnation, draining: draining)))
            return
        }
        self.admitNewMember(info, incarnation: incarnation, draining: draining, now: now, into: &directives)
    }

    mutating func admitNewMember(_ info: NodeInfo, incarnation: UInt64, draining: Bool, now: Instant, into directives: inout [MembershipDirective]) {
        if info.gossipAddress == self.me.gossipAddress {
            // Only one process can hold our address: ourselves. Anything else is an earlier boot.
            self.recordTombstone(info.uid, status: .dead, incarnation: incarnation, address: nil, name: info.name, now: now)
            return
        }
        if let holderUID = self.addressIndex[info.gossipAddress], let holder = self.members[holderUID], holder.isLive {
            guard info.supersedesAtSameAddress(holder.info) else {
                self.recordTombstone(info.uid, status: .dead, incarnation: incarnation, address: nil, name: info.name, now: now)
                return
            }
            // A new UID on a known address: the old process is gone, no suspicion needed.
            self.markTerminal(holderUID, status: .dead, incarnation: holder.state.incarnation, now: now, into: &directives)
            directives.append(.broadcast(.dead(subject: holderUID, incarnation: holder.state.incarnation, accuser: self.me.uid)))
        }
        guard self.liveMemberCount < self.settings.maxMembers else { return }
        self.addMember(info, incarnation: incarnation, draining: draining, now: now, into: &directives)
        directives.append(.broadcast(.alive(info: info, incarnation: incarnation, draining: draining)))
    }

    mutating func applySuspect(
        subject: NodeUID,
        incarnation: UInt64,
        accuser reported: NodeUID,
        mayConfirm: Bool = true,
        now: Instant,
        into directives: inout [MembershipDirective]
    ) {
        let accuser = self.author(reported)
        if subject == self.me.uid {
            if incarnation > self.incarnation {
                self.dropForgedClaim(.suspect, claimed: incarnation, own: self.incarnation, now: now, into: &directives)
            } else if incarnation == self.incarnation, self.phase == .running || self.phase == .joining {
                self.refute(now: now, into: &directives)
            }
            return
        }
        if let tombstone = self.tombstones[subject] {
            let suspecter = self.members[accuser].flatMap { $0.isLive ? $0.info.gossipAddress : nil }
            self.echoTombstone(subject, tombstone, suspectedAt: incarnation, directlyTo: suspecter, into: &directives)
            return
        }
        guard let member = self.members[subject], member.isLive, incarnation >= member.state.incarnation else { return }
        if member.state.status == .suspect, member.state.incarnation == incarnation, var suspicion = self.suspicions[subject] {
            guard mayConfirm, accuser != self.author(suspicion.accuser), !suspicion.confirmers.contains(where: { self.author($0) == accuser }),
                suspicion.confirmers.count < suspicion.expectedConfirmations
            else { return }
            suspicion.confirmers.append(accuser)
            suspicion.deadline = suspicion.startedAt + suspicion.timeout(confirmations: suspicion.confirmers.count)
            self.suspicions[subject] = suspicion
            directives.append(.schedule(.suspicion(subject), at: max(now, suspicion.deadline)))
            directives.append(.broadcast(.suspect(subject: subject, incarnation: incarnation, accuser: accuser)))
            return
        }
        self.transition(subject, to: MemberState(.suspect, incarnation), now: now, into: &directives)
        let suspicion = self.makeSuspicion(of: subject, accuser: accuser, ownProbe: reported == self.me.uid, now: now)
        self.suspicions[subject] = suspicion
        directives.append(.schedule(.suspicion(subject), at: suspicion.deadline))
        directives.append(.broadcast(.suspect(subject: subject, incarnation: incarnation, accuser: accuser)))
    }

    /// Someone still suspects a UID we know is gone (it left, or was declared dead, while that node
    /// missed the news): say so again. Only the suspecting node would otherwise probe it, and with
    /// nobody able to confirm it waits Lifeguard's maximum timeout (fuzz seeds 332 and 2911: a
    /// ghost member for 30 s). Tombstones are authoritative: a UID never comes back (a process
    /// told it is dead takes a new UID), so the echo carries the incarnation the suspecter knows
    /// when that is higher than ours, or a refutation we never saw would make it ignore the echo.
    /// The echo is broadcast, and also sent straight to `address` (the suspecter, or whoever
    /// asked us to probe the UID): gossip reaches a given node only with high probability, and
    /// the one node that needs the news must not depend on it (fuzz seed 2911: four echoes were
    /// gossiped, none reached the suspecter).
    mutating func echoTombstone(
        _ subject: NodeUID,
        _ tombstone: Tombstone,
        suspectedAt incarnation: UInt64,
        directlyTo address: Address?,
        into directives: inout [MembershipDirective]
    ) {
        let incarnation = max(incarnation, tombstone.incarnation)
        let message: GossipMessage =
            tombstone.status == .left
            ? .left(subject: subject, incarnation: incarnation)
            : .dead(subject: subject, incarnation: incarnation, accuser: self.me.uid)
        directives.append(.broadcast(message))
        if let address { directives.append(.send([message], to: address, piggyback: false)) }
    }

    mutating func applyDead(subject: NodeUID, incarnation: UInt64, accuser: NodeUID, now: Instant, into directives: inout [MembershipDirective]) {
        if subject == self.me.uid {
            if self.phase == .running || self.phase == .joining { self.rebirth(now: now, into: &directives) }
            return
        }
        if self.tombstones[subject] != nil { return }
        guard let member = self.members[subject] else {
            // Unknown UID: remember it so that a late rumour of it alive cannot add it.
            self.recordTombstone(subject, status: .dead, incarnation: incarnation, address: nil, name: nil, now: now)
            return
        }
        guard incarnation >= member.state.incarnation else { return }
        self.markTerminal(subject, status: .dead, incarnation: incarnation, now: now, into: &directives)
        directives.append(.broadcast(.dead(subject: subject, incarnation: incarnation, accuser: accuser)))
    }

    mutating func applyLeft(subject: NodeUID, incarnation: UInt64, now: Instant, into directives: inout [MembershipDirective]) {
        if subject == self.me.uid {
            // Only we announce our leave. While we run, a `left` about us is forged (or a peer
            // believed one): peers that hold it would answer us with it forever and never list
            // us again. As for a `dead` about us, a new UID rejoins.
            if self.phase == .running || self.phase == .joining { self.rebirth(now: now, into: &directives) }
            return
        }
        if let tombstone = self.tombstones[subject], tombstone.status == .left { return }
        if self.members[subject] != nil {
            self.markTerminal(subject, status: .left, incarnation: incarnation, now: now, into: &directives)
        } else {
            self.recordTombstone(subject, status: .left, incarnation: incarnation, address: nil, name: nil, now: now)
        }
        directives.append(.broadcast(.left(subject: subject, incarnation: incarnation)))
    }

    /// SWIM refutation of an accusation at our current incarnation: raise it by one and announce
    /// ourselves alive.
    ///
    /// The refutation also goes in its own datagram to every alive member (up to
    /// `directAnnouncementLimit`), as a drain does: every member heard the accusation and starts
    /// its own suspicion timer, and one that the broadcast happens to miss would declare us dead
    /// at its deadline (at 50 pods and 10 % loss, a broadcast missed one member in about 30).
    ///
    /// The direct copies go out at most once per probe interval: one datagram of accusations
    /// at successive incarnations (or a stream of them) must not make us send a copy to every
    /// member per accusation. Within the interval the broadcast alone carries the newer ones.
    mutating func refute(now: Instant, into directives: inout [MembershipDirective]) {
        guard self.raiseIncarnation(now: now, into: &directives) else { return }
        self.adjustHealth(by: 1)
        directives.append(.broadcast(self.aliveMessage()))
        if self.lastDirectRefutationAt.map({ now - $0 >= self.settings.probeInterval }) ?? true {
            self.lastDirectRefutationAt = now
            self.announceDirectly(self.aliveMessage(), into: &directives)
        }
        directives.append(.event(.refuted(incarnation: self.incarnation)))
    }

    /// Raises our incarnation by one; true when it did. Only we raise it, one step per refutation
    /// or drain (claims above it are dropped as forged), so it cannot realistically reach the
    /// maximum; if it ever did, a new identity takes over (and announces itself) instead of an
    /// increment that would trap, and this returns false.
    mutating func raiseIncarnation(now: Instant, into directives: inout [MembershipDirective]) -> Bool {
        guard self.incarnation < UInt64.max else {
            self.rebirth(now: now, into: &directives)
            return false
        }
        self.incarnation += 1
        return true
    }

    /// A message about us claims an incarnation (or an endpoint version) above our own. Only we
    /// raise those, and every boot is a new UID, so nobody can know a higher one: the message is
    /// forged, or built on a forged one. It is dropped and reported, never adopted: adopting it
    /// would let one datagram pin us at the maximum, where no refutation is possible.
    ///
    /// Peers may have taken the forgery for news (a forger can feed them directly): they would
    /// then ignore our real announcements, at lower numbers, for as long as this UID lives (a
    /// drain nobody hears; a suspicion we cannot refute). So we also take a new identity, as a
    /// `dead` about us makes us do, at most once per `forgeryRebirthInterval`: every peer drops
    /// what it was told about the old UID, and the cluster converges once the forgeries stop.
    mutating func dropForgedClaim(
        _ kind: MembershipEvent.ForgedClaim, claimed: UInt64, own: UInt64, now: Instant, into directives: inout [MembershipDirective]
    ) {
        directives.append(.event(.forgedClaimDropped(kind, claimedIncarnation: claimed, ownIncarnation: own)))
        guard self.phase == .running || self.phase == .joining else { return }
        switch self.forgeryRebirth {
        case .owed:
            return
        case .took(let last) where now - last < self.settings.forgeryRebirthInterval:
            self.forgeryRebirth = .owed(after: last)
        case .none, .took:
            self.rebirthAfterForgery(now: now, into: &directives)
        }
    }

    /// Takes the new identity a forged claim made us owe, once `forgeryRebirthInterval` allows.
    mutating func takeOwedForgeryRebirth(now: Instant, into directives: inout [MembershipDirective]) {
        guard case .owed(let last) = self.forgeryRebirth, now - last >= self.settings.forgeryRebirthInterval,
            self.phase == .running || self.phase == .joining
        else { return }
        self.rebirthAfterForgery(now: now, into: &directives)
    }

    private mutating func rebirthAfterForgery(now: Instant, into directives: inout [MembershipDirective]) {
        self.rebirth(now: now, into: &directives)
        self.forgeryRebirth = .took(at: now)
    }

    /// We were declared dead: that UID is gone for good, so take a new one and rejoin.
    mutating func rebirth(now: Instant, into directives: inout [MembershipDirective]) {
        // Whatever was forged about the old UID no longer matters: nothing is owed any more.
        if case .owed(let last) = self.forgeryRebirth { self.forgeryRebirth = .took(at: last) }
        let old = self.me.uid
        self.recordTombstone(old, status: .dead, incarnation: self.incarnation, address: nil, name: self.me.name, now: now)
        self.previousUIDs.append(old)
        if self.previousUIDs.count > 16 { self.previousUIDs.removeFirst() }
        self.me.uid = NodeIdentity.makeUID(using: &self.rng)
        self.me.epoch &+= 1
        self.incarnation = 0
        directives.append(.event(.reborn(old: old, new: self.me.uid)))
        directives.append(.broadcast(self.aliveMessage()))
    }

    /// Who made an accusation: our earlier UIDs (from before a rebirth, echoed back by gossip) are
    /// us, so our own accusations never count as independent confirmations.
    func author(_ accuser: NodeUID) -> NodeUID {
        self.previousUIDs.contains(accuser) ? self.me.uid : accuser
    }

    /// Tells a tombstoned sender it is dead (rate-limited per UID to one per gossip interval).
    mutating func tellDead(_ uid: NodeUID, at address: Address, now: Instant, into directives: inout [MembershipDirective]) {
        guard let tombstone = self.tombstones[uid] else { return }
        if let last = self.toldDeadAt[uid], now - last < self.settings.gossipInterval { return }
        if self.toldDeadAt.count >= self.settings.maxRelays { self.toldDeadAt.removeAll() }
        self.toldDeadAt[uid] = now
        let message: GossipMessage =
            tombstone.status == .left
            ? .left(subject: uid, incarnation: tombstone.incarnation)
            : .dead(subject: uid, incarnation: tombstone.incarnation, accuser: self.me.uid)
        directives.append(.send([message], to: address, piggyback: false))
    }
}
