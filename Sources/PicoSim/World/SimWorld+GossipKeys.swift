import PicoModel

// ==== ---- Gossip keys: each pod's key file, as a Secret mounted in it ------------------------------

extension SimWorld {
    /// The key a name stands for in scenario files: 32 bytes drawn from the name alone, so the
    /// same name is the same key in every pod and every run.
    static func gossipKey(named name: String) -> GossipKey {
        var seed: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 { seed = (seed ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        var stream = SplitMix64(seed: seed)
        var bytes: [UInt8] = []
        while bytes.count < GossipKey.length {
            let word = stream.next()
            bytes += (0..<8).map { UInt8(truncatingIfNeeded: word >> ($0 * 8)) }
        }
        return GossipKey(bytes: Array(bytes.prefix(GossipKey.length)))!
    }

    /// The ring of key `names` (nil for none; the decoder checked the names are distinct).
    static func gossipKeyring(_ names: [String]) -> GossipKeyring? {
        names.isEmpty ? nil : GossipKeyring(keys: names.map(Self.gossipKey(named:)))
    }

    /// What a process started in pod `index` seals its gossip with: the pod's key file (nil:
    /// plain text), opened with the simulator's deterministic cipher.
    func gossipSecurity(for index: Int) -> GossipSecurity? {
        let names = self.gossipKeyNames[index] ?? self.defaultGossipKeyNames
        return Self.gossipKeyring(names).map { GossipSecurity(keyring: $0, cipher: DeterministicGossipCipher()) }
    }

    /// The key files of `pods` now hold `names` (`everyPod`: every pod's, also those that start
    /// later on other ordinals). Running processes load the new ring at once; a paused one when
    /// it resumes.
    mutating func setGossipKeys(_ names: [String], pods: [Int], everyPod: Bool) {
        if everyPod {
            self.defaultGossipKeyNames = names
            self.gossipKeyNames = [:]
        }
        guard let keyring = Self.gossipKeyring(names) else { return }
        for pod in pods {
            if !everyPod { self.gossipKeyNames[pod] = names }
            switch self.pods[pod].state {
            case .running: self.deliver(.gossipKeyringChanged(keyring), to: pod)
            case .paused: self.pods[pod].inbox.append(.input(pod: pod, boot: self.pods[pod].boot, .gossipKeyringChanged(keyring)))
            case .down, .exited: break
            }
        }
    }
}
