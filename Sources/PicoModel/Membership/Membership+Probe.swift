// ==== ---- Failure detection: probe, indirect probe, suspicion -------------------------------------

extension Membership {
    /// The probe timer fired: finish an overdue probe, probe the next member in round-robin order,
    /// and always schedule the next round (`probeInterval × (localHealth + 1)`).
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
        let helpers = self.rng.sample(
            self.liveMembers { $0.state.status == .alive && $0.info.uid != probe.target },
            count: self.settings.indirectChecks)
        for helper in helpers {
            directives.append(.send(
                [.pingRequest(sequence: sequence, target: probe.target, targetAddress: target.info.gossipAddress)],
                to: helper.info.gossipAddress, piggyback: true))
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

    /// The suspicion timer of `uid` fired: declare it dead if the (possibly shortened, possibly
    /// pause-extended) deadline has passed, otherwise re-arm.
    public mutating func onSuspicionTimer(_ uid: NodeUID, now: Instant) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        self.noteInput(now: now, into: &directives)
        guard let suspicion = self.suspicions[uid], let member = self.members[uid], member.state.status == .suspect else {
            return directives
        }
        guard suspicion.deadline <= now else {
            directives.append(.schedule(.suspicion(uid), at: suspicion.deadline))
            return directives
        }
        let incarnation = member.state.incarnation
        self.markTerminal(uid, status: .dead, incarnation: incarnation, now: now, into: &directives)
        directives.append(.broadcast(.dead(subject: uid, incarnation: incarnation, accuser: self.me.uid)))
        return directives
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
    }

    /// `directly`: the ack came from the target itself (a late direct ack during the indirect
    /// phase still proves we reach it), not relayed by a helper.
    mutating func completeProbe(sequence: UInt32, target: NodeUID, directly: Bool, into directives: inout [MembershipDirective]) {
        guard let probe = self.probe, probe.sequence == sequence, probe.target == target else { return }
        self.probe = nil
        if probe.phase == .direct { self.adjustHealth(by: -1) }
        directives.append(.event(.probeAnswered(uid: target, directly: directly)))
    }

    /// The next live member in shuffled round-robin order; reshuffles after each full pass.
    mutating func nextProbeTarget() -> Member? {
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
    func makeSuspicion(of subject: NodeUID, accuser: NodeUID, now: Instant) -> Suspicion {
        let size = self.clusterSize
        let sizeFactor = max(1.0, log2Approx(Double(size)) / log2Approx(10))
        let minimum = self.settings.probeInterval.scaled(by: Double(self.settings.suspicionMultiplier) * sizeFactor)
        let maximum = minimum * self.settings.suspicionMaxTimeoutMultiplier
        // memberlist sets k = suspicionMultiplier - 2 and drops it to 0 when N - 2 < k, which lets a
        // lone accuser kill a member of a 3-node cluster after the minimum. We cap k at N - 2
        // instead, so one independent confirmation is still needed whenever one is possible.
        // And never more than anyone could still send (see `shortenSuspicionsAfterLosingConfirmer`).
        let expected = min(max(0, min(self.settings.suspicionMultiplier - 2, size - 2)), self.possibleConfirmers(of: subject, accuser: accuser, confirmers: []))
        var suspicion = Suspicion(
            accuser: accuser, confirmers: [], startedAt: now, minimum: minimum, maximum: maximum,
            expectedConfirmations: expected, deadline: now)
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
