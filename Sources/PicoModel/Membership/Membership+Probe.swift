// ==== ---- Failure detection: probe, indirect probe, suspicion -------------------------------------

extension Membership {
    /// The probe timer fired: finish an overdue probe, probe the next member (a suspect only heard
    /// of first, else the next in round-robin order; `nextProbeTarget`), and always schedule the
    /// next round (`probeInterval × (localHealth + 1)`).
    public mutating func onProbeTick(now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        guard self.phase == .running || self.phase == .leaving || self.phase == .joining else { return directives }
        self.noteInput(now: now, into: &directives)
        if let overdue = self.probe, overdue.deadline <= now {
            self.failProbe(overdue, now: now, into: &directives)
        }
        self.reap(now: now, into: &directives)
        if self.probe == nil, self.phase != .leaving, let target = self.nextProbeTarget() {
            self.startProbe(of: target, now: now, into: &directives)
        }
        // ALWAYS schedule the next round.
        directives.append(.schedule(.probe, at: now + self.scaledByHealth(self.settings.probeInterval)))
        return directives
    }

    /// The direct ack of `sequence` did not arrive in time: ask up to `indirectChecks` helpers.
    public mutating func onProbeTimeout(sequence: UInt32, now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        self.noteInput(now: now, into: &directives)
        guard var probe = self.probe, probe.sequence == sequence, probe.phase == .direct,
            let target = self.members[probe.target], target.isLive
        else { return directives }
        let helpers = self.sampleAlive(count: self.settings.indirectChecks, excluding: probe.target)
        for helper in helpers {
            directives.append(.send(
                [.pingRequest(sequence: sequence, target: probe.target, targetAddress: target.info.gossipAddress)],
                to: helper.address, piggyback: true))
        }
        probe.phase = .indirect
        probe.expectedNacks = helpers.count
        self.probe = probe
        directives.append(.schedule(.probeDeadline(sequence: sequence), at: probe.deadline))
        return directives
    }

    /// Probe `sequence` reached its deadline: without an ack, the target becomes suspect.
    public mutating func onProbeDeadline(sequence: UInt32, now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        self.noteInput(now: now, into: &directives)
        if let probe = self.probe, probe.sequence == sequence, probe.deadline <= now {
            self.failProbe(probe, now: now, into: &directives)
        }
        return directives
    }

    /// A relay we run for someone else timed out: tell the origin with a nack.
    public mutating func onRelayTimeout(sequence: UInt32, now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        self.noteInput(now: now, into: &directives)
        if let relay = self.relays.removeValue(forKey: sequence) {
            directives.append(.send([.nack(sequence: relay.originSequence, target: relay.target)], to: relay.origin, piggyback: false))
        }
        return directives
    }

    /// The suspicion timer of `uid` fired. Before the (possibly shortened, possibly
    /// pause-extended) deadline: re-arm. After it: declare it dead on this node's own fresh
    /// evidence; with only hearsay (or an unconfirmed accusation of ours grown stale), probe it
    /// first, and let that probe decide.
    public mutating func onSuspicionTimer(_ uid: NodeUID, now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        guard self.phase == .running || self.phase == .joining || self.phase == .leaving else { return directives }
        self.noteInput(now: now, into: &directives)
        guard var suspicion = self.suspicions[uid], let member = self.members[uid], member.state.status == .suspect else {
            return directives
        }
        guard suspicion.deadline <= now else {
            directives.append(.schedule(.suspicion(uid), at: suspicion.deadline))
            return directives
        }
        if case .probeFailed(let at) = suspicion.evidence, now - at > self.settings.probeInterval {
            // Our own failed probe is older than a probe interval: stale. Check again before
            // declaring, confirmed or not; a running suspect's ack carries its refutation.
            // - fuzz seed 172 (3 pods at 10 % loss): nobody could confirm, the timeout fell to
            //   the minimum, and the refutation had reached the third pod but not the accuser.
            // - 200 pods at 10 % loss, an hour (bench/membership, seed 1): pico-58 heard pico-48
            //   accused, its own probe of it failed (both ways lost), and it missed the direct
            //   refutation and every gossiped copy of it, which 198 other pods all had within
            //   0.4 s; two other failed probes confirmed, and 7 s later it declared a running pod
            //   dead. Each of those three events is rare, but 5,300 false suspicions an hour
            //   times 199 observers made their conjunction about one run in five.
            suspicion.evidence = .hearsay
            self.suspicions[uid] = suspicion
        }
        guard case .probeFailed = suspicion.evidence else {
            // Only heard of (or answered since): probe it ourselves first (now, unless a probe is
            // running; then it is the next one). Its failure declares it dead (`failProbe`); an
            // ack clears it, or leaves it suspect but answered.
            if suspicion.evidence == .answered {
                suspicion.evidence = .hearsay
                self.suspicions[uid] = suspicion
            }
            if self.probe == nil, self.phase != .leaving { self.startProbe(of: member, now: now, into: &directives) }
            return directives
        }
        self.declareDead(uid, now: now, into: &directives)
        return directives
    }

    /// Declares the suspect `uid` dead on this node's own evidence and tells everyone.
    mutating func declareDead(_ uid: NodeUID, now: Instant, into directives: inout [MembershipDirective]) {
        guard let member = self.members[uid], member.state.status == .suspect else { return }
        let incarnation = member.state.incarnation
        self.markTerminal(uid, status: .dead, incarnation: incarnation, now: now, into: &directives)
        directives.append(.broadcast(.dead(subject: uid, incarnation: incarnation, accuser: self.me.uid)))
    }

    // MARK: - Probe helpers

    mutating func startProbe(of target: Member, now: Instant, into directives: inout [MembershipDirective]) {
        let sequence = self.nextProbeSequence()
        let deadline = now + self.scaledByHealth(self.settings.probeInterval)
        self.probe = ProbeInProgress(
            target: target.info.uid, sequence: sequence, startedAt: now, deadline: deadline,
            phase: .direct, expectedNacks: 0, nacks: 0)
        var messages: [GossipMessage] = []
        if target.state.status == .suspect {
            // Lifeguard's buddy system: tell the suspect directly so it can refute at once; placed
            // before the ping, so the ack already carries the refuted incarnation.
            let accuser = self.suspicions[target.info.uid]?.accuser ?? self.me.uid
            messages.append(.suspect(subject: target.info.uid, incarnation: target.state.incarnation, accuser: accuser))
        }
        messages.append(.ping(sequence: sequence, target: target.info.uid))
        directives.append(.send(messages, to: target.info.gossipAddress, piggyback: true))
        directives.append(.schedule(.probeTimeout(sequence: sequence), at: now + self.scaledByHealth(self.settings.probeTimeout)))
    }

    mutating func failProbe(_ probe: ProbeInProgress, now: Instant, into directives: inout [MembershipDirective]) {
        self.probe = nil
        let missedNacks = probe.expectedNacks > 0 ? probe.expectedNacks - probe.nacks : 1
        self.adjustHealth(by: max(0, missedNacks))
        guard let target = self.members[probe.target], target.isLive else { return }
        self.applySuspect(subject: probe.target, incarnation: target.state.incarnation, accuser: self.me.uid, now: now, into: &directives)
        // Our own evidence now, whether or not it counted as a confirmation; a suspicion already
        // past its deadline (we had only heard of it) ends here.
        guard var suspicion = self.suspicions[probe.target] else { return }
        suspicion.evidence = .probeFailed(at: now)
        self.suspicions[probe.target] = suspicion
        if suspicion.deadline <= now { self.declareDead(probe.target, now: now, into: &directives) }
    }

    /// `directly`: the ack came from the target itself (a late direct ack during the indirect
    /// phase still proves we reach it), not relayed by a helper.
    mutating func completeProbe(sequence: UInt32, target: NodeUID, directly: Bool, into directives: inout [MembershipDirective]) {
        guard let probe = self.probe, probe.sequence == sequence, probe.target == target else { return }
        self.probe = nil
        if probe.phase == .direct { self.adjustHealth(by: -1) }
        // A suspect that answered without refuting (a node leaving, or one that dropped the
        // accusation as forged) is not probed first again: only at the suspicion's deadline.
        if var suspicion = self.suspicions[target], suspicion.evidence == .hearsay {
            suspicion.evidence = .answered
            self.suspicions[target] = suspicion
        }
        directives.append(.event(.probeAnswered(uid: target, directly: directly)))
    }

    /// The next member to probe: a suspect this node has only heard accused (chosen at random among
    /// them, so that the nodes that heard spread their probes over the suspects), else the next
    /// live member in shuffled round-robin order (reshuffled after each full pass).
    ///
    /// Probing the accused first costs no datagram (it takes the round's probe) and makes every
    /// node check a suspect itself within a probe interval or two of hearing: a crashed member
    /// collects its confirmations at once, and a running one refutes to each prober in its ack.
    mutating func nextProbeTarget() -> Member? {
        if let suspect = self.nextHeardOfSuspect() { return suspect }
        var examined = 0
        while examined < self.probeOrder.count + 1 {
            if self.probeCursor >= self.probeOrder.count {
                self.probeOrder.removeAll { !(self.members[$0]?.isLive ?? false) }
                self.rng.shuffle(&self.probeOrder)
                self.probeCursor = 0
                if self.probeOrder.isEmpty { return nil }
            }
            let uid = self.probeOrder[self.probeCursor]
            self.probeCursor += 1
            examined += 1
            if let member = self.members[uid], member.isLive { return member }
        }
        return nil
    }

    /// A live suspect this node has only heard accused, at random (nil when there is none).
    mutating func nextHeardOfSuspect() -> Member? {
        guard !self.suspicions.isEmpty else { return nil }
        let heard = self.suspicions.keys.sorted().filter { uid in
            guard let suspicion = self.suspicions[uid], suspicion.evidence == .hearsay else { return false }
            return self.members[uid]?.state.status == .suspect
        }
        guard !heard.isEmpty else { return nil }
        return self.members[heard[self.rng.index(below: heard.count)]]
    }

    /// Detects a local pause (a gap between inputs above `localPauseThreshold`): pushes every
    /// suspicion deadline back by the gap and abandons the probe in progress.
    mutating func noteInput(now: Instant, into directives: inout [MembershipDirective]) {
        defer { self.lastInputAt = now }
        guard let last = self.lastInputAt else { return }
        let gap = now - last
        guard gap > self.settings.localPauseThreshold else { return }
        for uid in self.suspicions.keys.sorted() {
            guard var suspicion = self.suspicions[uid] else { continue }
            suspicion.deadline = suspicion.deadline + gap
            self.suspicions[uid] = suspicion
            directives.append(.schedule(.suspicion(uid), at: suspicion.deadline))
        }
        self.probe = nil
        directives.append(.event(.localPauseDetected(gap: gap)))
    }

    /// Builds a new suspicion with Lifeguard's bounds for the current cluster size.
    /// `ownProbe`: the accusation is this UID's own failed probe (not one of ours from before a
    /// rebirth, echoed back by gossip: that counts as ours for confirmations, through `author`,
    /// but says nothing about the suspect now).
    func makeSuspicion(of subject: NodeUID, accuser: NodeUID, ownProbe: Bool, now: Instant) -> Suspicion {
        let size = self.clusterSize
        // memberlist scales the minimum by max(1, log10 N), the time a refutation takes to spread
        // by gossip. Ours does not spread only by gossip: the suspect sends it to every member
        // directly (`refute`), and every member probes a suspect it heard of itself, whose ack
        // carries the refutation (`nextProbeTarget`); so the minimum does not grow with N.
        let minimum = self.settings.probeInterval * self.settings.suspicionMultiplier
        let maximum = minimum * self.settings.suspicionMaxTimeoutMultiplier
        // memberlist sets k = suspicionMultiplier - 2 and drops it to 0 when N - 2 < k, which lets a
        // lone accuser kill a member of a 3-node cluster after the minimum. Our k is its own
        // setting, capped at N - 2, so one independent confirmation is still needed whenever one
        // is possible.
        // And never more than anyone could still send (see `shortenSuspicionsAfterLosingConfirmer`).
        let expected = min(max(0, min(self.settings.suspicionConfirmations, size - 2)), self.possibleConfirmers(of: subject, accuser: accuser, confirmers: []))
        var suspicion = Suspicion(
            accuser: accuser, confirmers: [], startedAt: now, minimum: minimum, maximum: maximum,
            expectedConfirmations: expected, deadline: now,
            evidence: ownProbe ? .probeFailed(at: now) : .hearsay)
        suspicion.deadline = now + suspicion.timeout(confirmations: 0)
        return suspicion
    }

    /// Members that could still send an independent confirmation of a suspicion of `subject`: this
    /// node (its own probe) and live peers that it does not suspect, other than the subject, the
    /// accuser and those who confirmed already.
    func possibleConfirmers(of subject: NodeUID, accuser: NodeUID, confirmers: [NodeUID]) -> Int {
        let accuser = self.author(accuser)
        func mayStillConfirm(_ uid: NodeUID) -> Bool {
            uid != accuser && !confirmers.contains(where: { self.author($0) == uid })
        }
        var count = mayStillConfirm(self.me.uid) ? 1 : 0
        for (uid, member) in self.members where member.state.status == .alive && uid != subject && mayStillConfirm(uid) {
            count += 1
        }
        return count
    }

    /// A peer stopped being able to confirm (we suspect it, or it is dead or left): an open
    /// suspicion waiting for more confirmations than anyone left could send now expects only those
    /// possible, so its timeout drops to Lifeguard's minimum once everyone able to confirm has.
    /// Without this a lone survivor (both peers of a three-node cluster crashed) waits the maximum
    /// timeout (24 s at defaults) for a confirmation nobody can send. Only ever shortens deadlines.
    mutating func shortenSuspicionsAfterLosingConfirmer(now: Instant, into directives: inout [MembershipDirective]) {
        guard !self.suspicions.isEmpty else { return }
        for uid in self.suspicions.keys.sorted() {
            guard var suspicion = self.suspicions[uid] else { continue }
            let possible = suspicion.confirmers.count
                + self.possibleConfirmers(of: uid, accuser: suspicion.accuser, confirmers: suspicion.confirmers)
            guard possible < suspicion.expectedConfirmations else { continue }
            suspicion.expectedConfirmations = possible
            let shortened = suspicion.startedAt + suspicion.timeout(confirmations: suspicion.confirmers.count)
            if shortened < suspicion.deadline {
                suspicion.deadline = shortened
                directives.append(.schedule(.suspicion(uid), at: max(now, shortened)))
            }
            self.suspicions[uid] = suspicion
        }
    }
}
