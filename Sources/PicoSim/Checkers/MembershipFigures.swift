import PicoModel

/// The membership figures of a finished run, as `membership-anchors.md` §7 states them: how long
/// each crash took to be known at each pod, how long each join took to be known everywhere, how
/// often a running member was suspected or declared dead, and the gossip bytes over time.
/// `bench/membership` aggregates these over sizes and seeds (from `pico-sim run --json`).
public struct MembershipFigures: Sendable {
    /// One crashed process and when the other pods learned it was dead.
    public struct CrashDetection: Sendable {
        /// The crashed pod's name.
        public var pod: String
        /// When it crashed.
        public var at: Instant
        /// Seconds from the crash to the first suspicion anywhere (nil: never suspected).
        public var firstSuspicion: Double?
        /// For each pod that ran from the crash on, seconds until it listed the UID as dead or
        /// left, in pod order; pods still unaware at the end of the run are counted in `unaware`.
        public var known: [Double]
        /// Pods that ran from the crash to the end of the run without learning of it.
        public var unaware: Int
    }

    /// Every crash of the run, in time order.
    public var crashes: [CrashDetection] = []
    /// For each process started after `joinsAfter`, seconds until every pod running at the end
    /// listed it (processes some pod never listed are left out and counted in `joinsUnseen`).
    public var joins: [Double] = []
    /// Started processes some running pod never listed.
    public var joinsUnseen = 0
    /// Declarations (one per observing pod) that a running process's UID was dead.
    public var falseDeathDeclarations = 0
    /// Distinct running UIDs declared dead by some pod.
    public var falselyDeclaredUIDs = 0
    /// Distinct (UID, incarnation) suspicions of a running process: false suspicions.
    public var falseSuspicions = 0
    /// Refutations (a node raising its incarnation to answer a suspicion).
    public var refutations = 0
    /// New identities taken because a node learned it was declared dead.
    public var rebirths = 0
    /// Local pauses the nodes noticed (a frozen pod thawing).
    public var localPauses = 0
    /// `(time, datagram bytes sent by all pods so far)`, every 10 simulated seconds.
    public var byteSamples: [(Instant, Int)] = []
    /// `(time, running pods)` at the same instants as `byteSamples`.
    public var runningSamples: [(Instant, Int)] = []

    /// Works out the figures of `world`; joins count only processes started after `joinsAfter`.
    public init(_ world: SimWorld, joinsAfter: Instant) {
        var stoppedAt: [NodeUID: Instant] = [:]
        for stop in world.stops { if let uid = stop.uid, stoppedAt[uid] == nil { stoppedAt[uid] = stop.time } }
        func running(_ uid: NodeUID, at time: Instant) -> Bool { stoppedAt[uid].map { time < $0 } ?? true }

        var falseDeaths: Set<NodeUID> = []
        var suspicions: Set<SuspicionKey> = []
        for (time, _, event) in world.events {
            guard case .membership(let membership) = event else { continue }
            switch membership {
            case .memberStatusChanged(let uid, _, _, let to) where to.status == .dead && running(uid, at: time):
                self.falseDeathDeclarations += 1
                falseDeaths.insert(uid)
            case .memberStatusChanged(let uid, _, _, let to) where to.status == .suspect && running(uid, at: time):
                suspicions.insert(SuspicionKey(uid: uid, incarnation: to.incarnation))
            case .refuted: self.refutations += 1
            case .reborn: self.rebirths += 1
            case .localPauseDetected: self.localPauses += 1
            default: continue
            }
        }
        self.falselyDeclaredUIDs = falseDeaths.count
        self.falseSuspicions = suspicions.count
        self.crashes = Self.crashDetections(world)
        (self.joins, self.joinsUnseen) = Self.joinTimes(world, after: joinsAfter)
        self.byteSamples = world.byteSamples.map { ($0.time, $0.bytes) }
        self.runningSamples = world.byteSamples.map { ($0.time, $0.running) }
    }

    private struct SuspicionKey: Hashable {
        var uid: NodeUID
        var incarnation: UInt64
    }

    static func crashDetections(_ world: SimWorld) -> [CrashDetection] {
        var detections: [CrashDetection] = []
        for stop in world.stops {
            guard stop.crashed, let uid = stop.uid else { continue }
            var learned: [Int: Instant] = [:]
            var firstSuspicion: Instant?
            for (time, pod, event) in world.events where time >= stop.time {
                guard case .membership(.memberStatusChanged(let subject, _, _, let to)) = event, subject == uid else { continue }
                if to.status == .suspect, firstSuspicion == nil { firstSuspicion = time }
                if to.status.isTerminal, learned[pod] == nil { learned[pod] = time }
            }
            var known: [Double] = []
            var unaware = 0
            for pod in world.pods.indices where pod != stop.pod && Self.ranThrough(world, pod: pod, from: stop.time, to: learned[pod]) {
                if let time = learned[pod] { known.append((time - stop.time).secondsDouble) } else { unaware += 1 }
            }
            detections.append(CrashDetection(
                pod: world.pods[stop.pod].name, at: stop.time, firstSuspicion: firstSuspicion.map { ($0 - stop.time).secondsDouble },
                known: known, unaware: unaware))
        }
        return detections
    }

    /// True when `pod` had a process running at `from` that did not stop before `to` (or before
    /// the end of the run when `to` is nil).
    static func ranThrough(_ world: SimWorld, pod: Int, from: Instant, to: Instant?) -> Bool {
        guard let started = world.starts.last(where: { $0.pod == pod && $0.time <= from }) else { return false }
        let end = to ?? world.now
        return !world.stops.contains { $0.pod == pod && $0.time >= started.time && $0.time <= end }
    }

    static func joinTimes(_ world: SimWorld, after: Instant) -> ([Double], Int) {
        var times: [Double] = []
        var unseen = 0
        for start in world.starts where start.time > after {
            let observers = world.pods.indices.filter { $0 != start.pod && world.pods[$0].state == .running }
            var last = start.time
            var everyone = true
            for observer in observers {
                let learned = world.events.first { time, pod, event in
                    guard pod == observer, time >= start.time, case .membership(.memberJoined(let info)) = event else { return false }
                    return info.uid == start.uid
                }?.0
                guard let learned else {
                    everyone = false
                    break
                }
                last = max(last, learned)
            }
            if everyone { times.append((last - start.time).secondsDouble) } else { unseen += 1 }
        }
        return (times, unseen)
    }
}
