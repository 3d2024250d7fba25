import PicoModel

/// A StatefulSet rolling update: pods are replaced from the highest ordinal down, at most
/// `maxUnavailable` at a time. A replaced pod gets SIGTERM, is killed if it has not exited after
/// `terminationGracePeriod`, is started again as a new process, and counts as done once it has
/// been ready for `minReadySeconds`.
public struct SimRollout: Hashable, Sendable {
    /// Pods being replaced at once, at most.
    public var maxUnavailable: Int
    /// How long a new pod must stay ready before the next one is replaced.
    public var minReadySeconds: Duration
    /// How long a terminating pod may take before it is killed (Kubernetes' SIGKILL).
    public var terminationGracePeriod: Duration

    enum Step: Hashable, Sendable {
        /// SIGTERM went to process `boot` at `since`; any other boot is not this step's to kill.
        case terminating(since: Instant, boot: Int)
        case starting
    }

    var waiting: [Int]
    var steps: [Int: Step] = [:]
    /// Pods replaced so far, in order.
    public internal(set) var replaced: [Int] = []

    /// A rollout of `pods` (replaced highest ordinal first).
    public init(pods: [Int], maxUnavailable: Int = 1, minReadySeconds: Duration = .zero, terminationGracePeriod: Duration = .seconds(30)) {
        precondition(maxUnavailable >= 1, "a rollout must be allowed to replace at least one pod at a time")
        self.waiting = pods.sorted(by: >)
        self.maxUnavailable = maxUnavailable
        self.minReadySeconds = minReadySeconds
        self.terminationGracePeriod = terminationGracePeriod
    }

    /// True when every pod has been replaced and is available.
    public var isComplete: Bool { self.waiting.isEmpty && self.steps.isEmpty }
}

extension SimWorld {
    /// Starts a rolling update of every pod that has a process; the controller checks progress
    /// every 100 ms until it is complete.
    public mutating func startRollout(maxUnavailable: Int = 1, minReadySeconds: Duration = .zero, terminationGracePeriod: Duration = .seconds(30)) {
        let pods = self.pods.indices.filter { self.pods[$0].state.hasProcess }
        self.rollout = SimRollout(pods: pods, maxUnavailable: maxUnavailable, minReadySeconds: minReadySeconds, terminationGracePeriod: terminationGracePeriod)
        self.record("rollout", "start", UInt64(pods.count))
        self.queue.schedule(.traffic(.rolloutTick), at: self.now)
    }

    mutating func rolloutTick() {
        guard var rollout = self.rollout, !rollout.isComplete else { return }
        for pod in rollout.steps.keys.sorted() {
            switch rollout.steps[pod] {
            case .terminating(let since, let boot):
                if !self.pods[pod].state.hasProcess {
                    self.start(pod)
                    rollout.steps[pod] = .starting
                } else if self.pods[pod].boot != boot {
                    // Something else already started a new process here: it is the replacement.
                    rollout.steps[pod] = .starting
                } else if self.now - since >= rollout.terminationGracePeriod {
                    self.crash(pod)
                    self.start(pod)
                    rollout.steps[pod] = .starting
                }
            case .starting:
                if self.pods[pod].ready, let since = self.pods[pod].readySince, self.now - since >= rollout.minReadySeconds {
                    rollout.steps[pod] = nil
                    rollout.replaced.append(pod)
                    self.record("rollout", "replaced", UInt64(pod))
                } else if !self.pods[pod].state.hasProcess {
                    self.start(pod)
                }
            case nil:
                break
            }
        }
        while rollout.steps.count < rollout.maxUnavailable, !rollout.waiting.isEmpty {
            let pod = rollout.waiting.removeFirst()
            if self.pods[pod].state.hasProcess {
                rollout.steps[pod] = .terminating(since: self.now, boot: self.pods[pod].boot)
                self.terminate(pod)
            } else {
                self.start(pod)
                rollout.steps[pod] = .starting
            }
        }
        self.rollout = rollout
        if !rollout.isComplete { self.queue.schedule(.traffic(.rolloutTick), at: self.now + .milliseconds(100)) }
    }
}
