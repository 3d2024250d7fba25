// ==== ---- Invariants ------------------------------------------------------------------------------

extension Membership {
    /// Every broken invariant, one line each; empty when the machine is consistent. Tests and the
    /// simulator call this after every step. Checked: the status lattice only moved forward per UID
    /// and our own incarnation never decreased for one UID (both recorded as they happen); no
    /// tombstoned UID is alive or suspect; we are neither a member nor tombstoned under our current
    /// UID; suspicions exist exactly for suspect members; the address index matches live members;
    /// the local health score and every bounded collection are within their limits.
    public func checkInvariants() -> [String] {
        var problems = self.invariantViolations
        if self.members[self.me.uid] != nil { problems.append("self \(self.me.uid) is listed as a member") }
        if self.tombstones[self.me.uid] != nil { problems.append("self \(self.me.uid) is tombstoned") }
        for (uid, member) in self.members {
            if member.info.uid != uid { problems.append("member keyed \(uid) describes \(member.info.uid)") }
            if member.isLive, self.tombstones[uid] != nil { problems.append("tombstoned \(uid) is \(member.state)") }
            if !member.isLive, self.tombstones[uid] == nil { problems.append("\(uid) is \(member.state) without a tombstone") }
            if member.state.status == .suspect, self.suspicions[uid] == nil { problems.append("suspect \(uid) has no suspicion timer") }
            if member.isLive, self.addressIndex[member.info.gossipAddress] != uid {
                problems.append("live \(uid) is missing from the address index at \(member.info.gossipAddress)")
            }
        }
        for uid in self.suspicions.keys where self.members[uid]?.state.status != .suspect {
            problems.append("suspicion held for \(uid), which is not suspect")
        }
        for (address, uid) in self.addressIndex {
            guard let member = self.members[uid], member.isLive, member.info.gossipAddress == address else {
                problems.append("address index maps \(address) to \(uid), which is not live there")
                continue
            }
        }
        if !(0..<self.settings.awarenessMaxMultiplier).contains(self.localHealth) {
            problems.append("local health \(self.localHealth) out of range")
        }
        if self.relays.count > self.settings.maxRelays { problems.append("\(self.relays.count) relays exceed maxRelays") }
        if self.tombstones.count > self.settings.maxTombstones { problems.append("\(self.tombstones.count) tombstones exceed maxTombstones") }
        let counted = self.members.values.reduce(0) { $0 + ($1.isLive ? 1 : 0) }
        if counted != self.liveMemberCount { problems.append("\(counted) live members but \(self.liveMemberCount) in the address index") }
        if self.liveMemberCount > self.settings.maxMembers { problems.append("\(self.liveMemberCount) live members exceed maxMembers") }
        if self.members.count - self.liveMemberCount > self.settings.maxMembers {
            problems.append("\(self.members.count - self.liveMemberCount) departed members exceed maxMembers")
        }
        // Dictionary order differs between processes: sort only the (normally empty) findings.
        return problems.sorted()
    }
}

// ==== ---- The same checks, answered yes or no --------------------------------------------------------

extension Membership {
    /// Changes to what the O(members) part of `checkInvariants` reads (`me`, `members`,
    /// `tombstones`, `addressIndex`, `suspicions`): while it reads the same, that part finds the
    /// same. Meaningful only compared with an earlier reading of this machine.
    public var invariantStamp: UInt64 { self.checkedState.value }

    /// True only when `checkInvariants()` would return nothing, without building a line or
    /// copying a table. `stamp` is `invariantStamp` at an earlier check that found nothing (nil:
    /// none): while it reads the same, only the O(1) checks run. False says only "run the check".
    public func isConsistent(cleanAt stamp: UInt64?) -> Bool {
        guard self.invariantViolations.isEmpty,
              (0..<self.settings.awarenessMaxMultiplier).contains(self.localHealth),
              self.relays.count <= self.settings.maxRelays,
              self.tombstones.count <= self.settings.maxTombstones,
              self.liveMemberCount <= self.settings.maxMembers,
              self.members.count - self.liveMemberCount <= self.settings.maxMembers
        else { return false }
        return stamp == self.invariantStamp || self.tablesAgree
    }

    /// The O(members) part of `checkInvariants`, with two lookups per member fewer: an address
    /// index whose every entry names a live member at that address, as many entries as live
    /// members, is exactly the live members' addresses (distinct entries name distinct members);
    /// likewise, suspicions that each name a suspect member, as many as suspect members, are one
    /// per suspect member.
    var tablesAgree: Bool {
        guard self.members[self.me.uid] == nil, self.tombstones[self.me.uid] == nil else { return false }
        var live = 0
        var suspect = 0
        for (uid, member) in self.members {
            guard member.info.uid == uid, member.isLive == (self.tombstones[uid] == nil) else { return false }
            if member.isLive { live += 1 }
            if member.state.status == .suspect { suspect += 1 }
        }
        guard live == self.liveMemberCount, suspect == self.suspicions.count else { return false }
        for uid in self.suspicions.keys where self.members[uid]?.state.status != .suspect { return false }
        for (address, uid) in self.addressIndex {
            guard let member = self.members[uid], member.isLive, member.info.gossipAddress == address else { return false }
        }
        return true
    }
}
