@testable import PicoModel

/// Configurations, addresses and routing views for tests that drive one `ClusterNode` directly.
extension Fixture {
    /// The address of node `index` on the test network (`10.0.0.<index + 1>`).
    static func address(_ index: Int, port: UInt16 = 8003) -> Address {
        Address(host: "10.0.0.\(index + 1)", port: port)
    }

    /// A valid configuration for node `index`, its RNG seeded from `seed` and `index`.
    static func configuration(_ index: Int, seed: UInt64, join: [String], epoch: UInt64 = 0) -> ClusterConfiguration {
        var configuration = ClusterConfiguration(
            gossipAddress: address(index), proxyAddress: address(index, port: 8000), adminAddress: address(index, port: 8002),
            randomSeed: seed &* 1_000_003 &+ UInt64(index))
        configuration.nodeNamePrefix = "pico-\(index)-"
        configuration.join = join
        configuration.epoch = epoch
        return configuration
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
