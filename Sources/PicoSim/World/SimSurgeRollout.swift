import PicoModel

/// A Deployment-style rolling update with surge: new pods (spare ordinals) are started before old
/// ones are terminated, keeping at most `replicas + maxSurge` processes and at least
/// `replicas - maxUnavailable` available ones (available: ready for `minReadySeconds`). The old
/// pods get SIGTERM, and SIGKILL after `terminationGracePeriod`. Kubernetes forbids
/// `maxSurge == 0 && maxUnavailable == 0`; so does this.
public struct SimSurgeRollout: Hashable, Sendable {
    /// Extra processes allowed above the replica count.
    public var maxSurge: Int
    /// Replicas allowed to be unavailable.
    public var maxUnavailable: Int
    /// How long a new pod must stay ready to count as available.
    public var minReadySeconds: Duration
    /// How long a terminating pod may take before it is killed.
    public var terminationGracePeriod: Duration
    /// The replica count to keep.
    public let replicas: Int
    var oldPods: [Int]
    var newPods: [Int] = []
    /// Old pods sent SIGTERM: when, and to which process (boot) of that ordinal.
    var terminating: [Int: Signalled] = [:]

    struct Signalled: Hashable, Sendable {
        var since: Instant
        var boot: Int
    }

    /// A rollout replacing `pods` (highest ordinal first) with new pods on spare ordinals.
    public init(pods: [Int], maxSurge: Int, maxUnavailable: Int, minReadySeconds: Duration, terminationGracePeriod: Duration) {
        precondition(maxSurge > 0 || maxUnavailable > 0, "maxSurge and maxUnavailable cannot both be 0")
        self.oldPods = pods.sorted(by: >)
        self.replicas = pods.count
        self.maxSurge = maxSurge
        self.maxUnavailable = maxUnavailable
        self.minReadySeconds = minReadySeconds
        self.terminationGracePeriod = terminationGracePeriod
    }

    /// True when every old pod is gone and `replicas` new pods are available.
    public var isComplete: Bool { self.oldPods.isEmpty && self.terminating.isEmpty && self.newPods.count == self.replicas }
}

extension SimWorld {
    /// Starts a surge rollout of every pod that has a process; new pods take spare ordinals.
    public mutating func startSurgeRollout(maxSurge: Int, maxUnavailable: Int, minReadySeconds: Duration, terminationGracePeriod: Duration) {
        let pods = self.pods.indices.filter { self.pods[$0].state.hasProcess }
        self.surgeRollout = SimSurgeRollout(
            pods: pods, maxSurge: maxSurge, maxUnavailable: maxUnavailable, minReadySeconds: minReadySeconds,
            terminationGracePeriod: terminationGracePeriod)
        self.record("surge-rollout", "start", UInt64(pods.count))
        self.queue.schedule(.traffic(.surgeRolloutTick), at: self.now)
    }

    func isAvailable(_ pod: Int, minReady: Duration) -> Bool {
        guard self.pods[pod].state == .running, self.pods[pod].ready, let since = self.pods[pod].readySince else { return false }
        return self.now - since >= minReady
    }

    mutating func surgeRolloutTick() {
        guard var rollout = self.surgeRollout, !rollout.isComplete else { return }
        // Terminating pods: done when the process is gone; SIGKILL after the grace period.
        // A process started on the ordinal since (a restart) is not the one being terminated.
        for (pod, signalled) in rollout.terminating.sorted(by: { $0.key < $1.key }) {
            if !self.pods[pod].state.hasProcess || self.pods[pod].boot != signalled.boot {
                rollout.terminating[pod] = nil
            } else if self.now - signalled.since >= rollout.terminationGracePeriod {
                self.crash(pod)
                rollout.terminating[pod] = nil
            }
        }
        let processes = self.pods.indices.filter { self.pods[$0].state.hasProcess }.count
        // Surge: start new pods on spare ordinals while within replicas + maxSurge.
        var running = processes
        while rollout.newPods.count < rollout.replicas, running < rollout.replicas + rollout.maxSurge,
            let spare = self.pods.indices.first(where: { !self.pods[$0].state.hasProcess && !rollout.newPods.contains($0) && rollout.terminating[$0] == nil && !rollout.oldPods.contains($0) })
        {
            self.start(spare)
            rollout.newPods.append(spare)
            running += 1
        }
        // Scale down old pods while enough pods stay available.
        let minimumAvailable = rollout.replicas - rollout.maxUnavailable
        var available = self.pods.indices.filter { pod in
            rollout.terminating[pod] == nil && self.isAvailable(pod, minReady: rollout.newPods.contains(pod) ? rollout.minReadySeconds : .zero)
        }.count
        while let old = rollout.oldPods.first, available - 1 >= minimumAvailable || !self.isAvailable(old, minReady: .zero) {
            rollout.oldPods.removeFirst()
            if self.isAvailable(old, minReady: .zero) { available -= 1 }
            if self.pods[old].state.hasProcess {
                rollout.terminating[old] = SimSurgeRollout.Signalled(since: self.now, boot: self.pods[old].boot)
                self.terminate(old)
            }
        }
        self.surgeRollout = rollout
        if rollout.isComplete {
            self.record("surge-rollout", "complete", UInt64(rollout.replicas))
        } else {
            self.queue.schedule(.traffic(.surgeRolloutTick), at: self.now + .milliseconds(100))
        }
    }
}
