@testable import PicoModel
@testable import PicoSim
import Testing

/// Worlds and views for the cluster tests: a cluster joined pod by pod, member statuses as one
/// pod sees them, partitions, in-place restarts, and a data loop's routing view of a pod.
enum ClusterWorld {
    /// Settings as `WorldTests.world`: every pod joins through the headless-service name.
    static func settings() -> SimWorld.Settings {
        let configuration = ClusterConfiguration(
            gossipAddress: Address(host: "0.0.0.0", port: 8003), proxyAddress: Address(host: "0.0.0.0", port: 8000),
            adminAddress: Address(host: "0.0.0.0", port: 8002), randomSeed: 0)
        var settings = SimWorld.Settings(node: configuration)
        settings.node.join = ["pico"]
        return settings
    }

    /// A world of `pods` pods started one at a time, each once the previous one is ready and
    /// listed by DNS (an ordered StatefulSet start), so all of them form one cluster.
    static func joined(pods: Int, seed: UInt64, network: LinkProfile = .lan, settings: SimWorld.Settings = Self.settings()) -> SimWorld {
        var world = SimWorld(podCount: pods, seed: seed, settings: settings, network: network)
        for index in 0..<pods {
            world.start(index)
            let deadline = world.now + .seconds(20)
            while !(world.pods[index].ready && world.dnsListing.contains(index)), world.now < deadline {
                world.run(until: world.now + .milliseconds(100))
            }
        }
        return world
    }

    /// The status pod `observer` holds for `uid` (a member's, else a tombstone's).
    static func status(of uid: NodeUID, seenBy observer: Int, in world: SimWorld) -> MemberStatus? {
        guard let node = world.pods[observer].node else { return nil }
        return node.membership.member(uid)?.state.status ?? node.membership.tombstone(uid)?.status
    }

    /// The statuses `uid` moved to as pod `observer` saw it, in order.
    static func statusChanges(of uid: NodeUID, seenBy observer: Int, in world: SimWorld) -> [MemberStatus] {
        world.events.compactMap { _, pod, event in
            guard pod == observer, case .membership(.memberStatusChanged(let subject, _, _, let to)) = event, subject == uid else { return nil }
            return to.status
        }
    }

    /// Cuts every link between different `sides`.
    static func partition(_ world: inout SimWorld, _ sides: [[Int]]) {
        var unused = SplitMix64(seed: 0)
        world.network.block(PartitionShape.sides(sides).links(among: Array(world.pods.indices), rng: &unused))
    }

    /// A data loop's router as the runtime would keep it for `node`: every tunnel the node holds
    /// (with its draining flag) and the node's alive remote holders of each of `endpoints`.
    static func loopRouter(of node: ClusterNode, endpoints: [String], seed: UInt64 = 1) -> LoopRouter {
        var router = LoopRouter(loop: 0, seed: seed)
        for tunnel in node.tunnelView {
            router.apply(.tunnelAdded(tunnel.id, endpoint: tunnel.endpoint, loop: 0, draining: tunnel.isDraining))
        }
        for endpoint in endpoints {
            router.apply(.remoteHolders(endpoint: endpoint, node.remoteUpstreams(for: endpoint)))
        }
        return router
    }
}

extension SimWorld {
    /// Kills pod `index`'s process and starts a new one at the same pod IP, as a container
    /// restart does (`start` after a crash models a new pod, with a new IP).
    mutating func restartInPlace(_ index: Int) {
        guard let address = self.pods[index].address else { return }
        self.crash(index)
        let next = self.nextAddress
        var probe = self
        let number = (0..<next).first { number in
            probe.nextAddress = number
            return probe.allocateAddress() == address
        }
        self.nextAddress = number ?? next
        self.start(index)
        self.nextAddress = max(self.nextAddress, next)
    }

    /// Makes agent `agent` slow to reconnect: its next dial starts `delay` from now, whatever it
    /// is told meanwhile (its machine counts a dial as under way, so a GoAway does not dial at once).
    mutating func delayNextDial(ofAgent agent: Int, by delay: Duration) {
        var unused = SplitMix64(seed: 0)
        _ = self.traffic.agents[agent].machine.handle(.dialDue, now: self.now, rng: &unused)
        self.scheduleTraffic(.agentConnect(agent: agent), after: delay)
    }
}
