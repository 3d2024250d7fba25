import PicoModel

// ==== ---- Carrying out a node's directives in the simulated world ------------------------------------

extension SimWorld {
    mutating func carryOut(_ directive: ClusterDirective, from index: Int) {
        let boot = self.pods[index].boot
        switch directive {
        case .sendDatagram(let bytes, let address):
            self.datagramsSent[index] += 1
            self.bytesSent[index] += bytes.count
            self.nemesis.sniff(bytes)
            guard let target = self.addressOwners[address], let source = self.pods[index].address else { return }
            switch self.network.send(from: index, to: target.pod, now: self.now) {
            case .delivered(let times):
                for time in times {
                    self.queue.schedule(.input(pod: target.pod, boot: target.boot, .datagramReceived(bytes, from: source)), at: time)
                }
            case .held:
                if self.heldDatagrams.count < 100_000 {
                    let link = SimNetwork.Link(from: index, to: target.pod)
                    self.heldDatagrams.append((link, target.boot, .datagramReceived(bytes, from: source)))
                }
            case .dropped:
                break
            }
        case .openStateExchange(let exchange, let address, let bytes):
            self.openStream(exchange, from: index, to: address, bytes: bytes)
        case .replyStateExchange(let id, let bytes):
            guard let pending = self.pendingStreams.removeValue(forKey: id.rawValue) else { return }
            if let delay = self.network.streamDelay(from: index, to: pending.initiator) {
                self.queue.schedule(.input(pod: pending.initiator, boot: pending.boot, .stateExchangeReplied(pending.exchange, bytes: bytes)), at: self.now + delay)
            } else {
                self.failStream(pending.exchange, pod: pending.initiator, boot: pending.boot, reason: "connection reset")
            }
        case .schedule(let timer, let instant):
            let generation = (self.pods[index].timerGenerations[timer] ?? 0) + 1
            self.pods[index].timerGenerations[timer] = generation
            self.queue.schedule(.timer(pod: index, boot: boot, id: timer, generation: generation), at: max(instant, self.now))
        case .resolveSeeds:
            let addresses = self.dnsAnswer ?? self.dnsListing.compactMap { self.pods[$0].address }.sorted()
            self.dnsAnswer = addresses
            self.queue.schedule(.input(pod: index, boot: boot, .seedsResolved(addresses)), at: self.now + self.settings.dnsQueryTime)
        case .setReadiness(let ready):
            if self.pods[index].ready != ready { self.setReady(index, ready) }
        case .exit(let reason):
            self.stopProcess(index, state: .exited(reason))
            self.record("exit", self.pods[index].name, UInt64(boot))
        case .event(let event):
            self.events.append((self.now, index, event))
            if case .rebalanceMoveAsked(let tunnel, _) = event, let placement = self.traffic.placements[tunnel] {
                self.traffic.rebalanceMoves.append(SimTraffic.RebalanceMove(time: self.now, pod: index, agent: placement.agent))
            }
        case .routingChanged(let changes):
            for change in changes { self.pods[index].router.apply(change) }
            self.offerRoutingChange(at: index)
        case .tellAgentToMove(let tunnel):
            self.agentAskedToMove(tunnel)
        case .closeTunnel(let tunnel):
            self.tunnelClosedByNode(tunnel, pod: index)
        }
    }

    /// How long a TCP connect to an unreachable address takes to fail.
    static let connectTimeout: Duration = .seconds(2)

    mutating func openStream(_ exchange: ExchangeID, from index: Int, to address: Address, bytes: [UInt8]) {
        let boot = self.pods[index].boot
        guard let target = self.addressOwners[address], let source = self.pods[index].address,
            let delay = self.network.streamDelay(from: index, to: target.pod)
        else {
            // A TCP connect to an unreachable address fails after a timeout.
            self.failStream(exchange, pod: index, boot: boot, reason: "connect timeout", after: Self.connectTimeout)
            return
        }
        let id = self.nextStreamID
        self.nextStreamID += 1
        self.pendingStreams[id] = (index, boot, exchange, target.pod)
        self.queue.schedule(
            .input(pod: target.pod, boot: target.boot, .stateExchangeRequested(ExchangeID(id), bytes: bytes, from: source)),
            at: self.now + delay)
    }

    /// The responder of `stream` is gone: its initiator sees the reset once it crosses the network
    /// (or when its connect attempt times out, if the network between them is cut).
    mutating func resetStream(_ stream: UInt64, reason: String) {
        guard let pending = self.pendingStreams.removeValue(forKey: stream) else { return }
        if let delay = self.network.streamDelay(from: pending.responder, to: pending.initiator) {
            self.failStream(pending.exchange, pod: pending.initiator, boot: pending.boot, reason: reason, after: delay)
        } else {
            self.failStream(pending.exchange, pod: pending.initiator, boot: pending.boot, reason: "connect timeout", after: Self.connectTimeout)
        }
    }

    mutating func failStream(_ exchange: ExchangeID, pod: Int, boot: Int, reason: String, after delay: Duration = .milliseconds(1)) {
        self.queue.schedule(.input(pod: pod, boot: boot, .stateExchangeFailed(exchange, reason: reason)), at: self.now + delay)
    }
}
