@testable import PicoModel
import Testing

/// Two session ends joined back to back: what one writes the other reads.
struct YamuxPair {
    var client = YamuxSession(role: .client)
    var server = YamuxSession(role: .server)

    /// Moves bytes both ways until both are quiet; returns the events each side saw.
    mutating func exchange() throws -> (client: [YamuxSession.Event], server: [YamuxSession.Event]) {
        var clientEvents: [YamuxSession.Event] = []
        var serverEvents: [YamuxSession.Event] = []
        repeat {
            self.server.feed(self.client.takeOutput())
            while let event = try self.server.next() { serverEvents.append(event) }
            self.client.feed(self.server.takeOutput())
            while let event = try self.client.next() { clientEvents.append(event) }
        } while !self.client.output.isEmpty || !self.server.output.isEmpty
        return (clientEvents, serverEvents)
    }
}

@Suite("Yamux session")
struct YamuxSessionTests {
    @Test func test_streamOpenedByServer_isAcknowledged_carriesDataBothWays_andClosesOnBothFINs() throws {
        var pair = YamuxPair()
        let openedid = pair.server.openStream()
        let id = try #require(openedid)
        #expect(id == 2)
        pair.server.send(Array("GET / HTTP/1.1\r\n\r\n".utf8), on: id)
        pair.server.finish(id)
        var (client, server) = try pair.exchange()
        #expect(client == [.streamOpened(2), .data(2, ArraySlice("GET / HTTP/1.1\r\n\r\n".utf8)), .inputFinished(2)])
        #expect(server == [.streamAcknowledged(2)])
        pair.client.send(Array("HTTP/1.1 200 OK\r\n\r\n".utf8), on: id)
        pair.client.finish(id)
        (client, server) = try pair.exchange()
        #expect(client == [.streamClosed(2)])
        #expect(server == [.data(2, ArraySlice("HTTP/1.1 200 OK\r\n\r\n".utf8)), .inputFinished(2), .streamClosed(2)])
        #expect(pair.client.streamCount == 0 && pair.server.streamCount == 0)
    }

    /// An agent's TCP stream: acknowledged only once its service accepted the connection, and
    /// reset (which the opener hears before any acknowledgement) when it refused.
    @Test func test_withDeferredAcknowledgement_theOpenerHearsTheAckOnlyWhenTheOwnerGivesIt() throws {
        var settings = YamuxSession.Settings()
        settings.acknowledgesStreamsOnOpen = false
        var pair = YamuxPair()
        pair.client = YamuxSession(role: .client, settings: settings)
        let accepted = pair.server.openStream() ?? 0
        let refused = pair.server.openStream() ?? 0
        var (client, server) = try pair.exchange()
        #expect(client == [.streamOpened(accepted), .streamOpened(refused)])
        #expect(server.isEmpty, "no acknowledgement before the owner gives it")
        pair.client.acknowledge(accepted)
        pair.client.acknowledge(accepted)
        pair.client.reset(refused)
        (client, server) = try pair.exchange()
        #expect(server == [.streamAcknowledged(accepted), .streamReset(refused)])
        // Crediting bytes does not acknowledge; sending first does, once.
        let third = pair.server.openStream() ?? 0
        pair.server.send([UInt8](repeating: 7, count: 200_000), on: third)
        _ = try pair.exchange()
        pair.client.consumed(200_000, on: third)
        (client, server) = try pair.exchange()
        #expect(!server.contains(.streamAcknowledged(third)), "a window update is no acknowledgement")
        pair.client.send([1, 2], on: third)
        (client, server) = try pair.exchange()
        #expect(server == [.streamAcknowledged(third), .data(third, [1, 2])])
    }

    /// hashicorp/yamux resets every SYN beyond its accept backlog (256 unaccepted streams); its
    /// own opener waits instead, and so does ours.
    @Test func test_opensBeyondTheUnacknowledgedLimit_wait_andGoOutAsAcknowledgementsFreePlaces() throws {
        var settings = YamuxSession.Settings()
        settings.maxUnacknowledgedOpens = 2
        var peer = YamuxSession.Settings()
        peer.acknowledgesStreamsOnOpen = false
        var pair = YamuxPair()
        pair.server = YamuxSession(role: .server, settings: settings)
        pair.client = YamuxSession(role: .client, settings: peer)
        let first = pair.server.openStream() ?? 0
        let second = pair.server.openStream() ?? 0
        let third = pair.server.openStream() ?? 0
        let fourth = pair.server.openStream() ?? 0
        pair.server.send([3, 3], on: third)
        pair.server.finish(third)
        pair.server.send([4], on: fourth)
        var (client, server) = try pair.exchange()
        #expect(client == [.streamOpened(first), .streamOpened(second)], "two places: the others wait, unseen by the peer")
        #expect(server.isEmpty)
        // A reset of a waiting stream sends nothing (the peer never heard of it).
        pair.server.reset(fourth)
        #expect(pair.server.output.isEmpty)
        pair.client.acknowledge(first)
        (client, server) = try pair.exchange()
        #expect(client == [.streamOpened(third), .data(third, [3, 3]), .inputFinished(third)], "the acknowledgement let the third out, with its bytes and FIN")
        #expect(server == [.streamAcknowledged(first), .sendWindowOpened(third)], "its sender may go on")
        // A reset by the peer frees a place too.
        let fifth = pair.server.openStream() ?? 0
        (client, _) = try pair.exchange()
        #expect(client.isEmpty)
        pair.client.reset(second)
        (client, server) = try pair.exchange()
        #expect(server == [.streamReset(second)])
        #expect(client == [.streamOpened(fifth)])
        // The peer's go-away: opens still waiting never go out, and say so (nothing was sent).
        let sixth = pair.server.openStream() ?? 0
        pair.server.send([6], on: sixth)
        pair.client.goAway()
        (client, server) = try pair.exchange()
        #expect(server == [.goAway(.normal), .streamRefused(sixth)])
        #expect(client.isEmpty)
        pair.client.acknowledge(third)
        (client, _) = try pair.exchange()
        #expect(client.isEmpty, "a freed place opens nothing after the go-away")
    }

    @Test func test_sendFinishing_carriesTheFINOnTheDataFrame_andClosesLikeFinish() throws {
        var pair = YamuxPair()
        let opened = pair.server.openStream()
        let id = try #require(opened)
        pair.server.send(Array("GET / HTTP/1.1\r\n\r\n".utf8), on: id)
        pair.server.finish(id)
        _ = try pair.exchange()
        pair.client.send(Array("HTTP/1.1 200 OK\r\n\r\n".utf8), on: id, finishing: true)
        let frame = pair.client.output
        #expect(frame.count == 12 + 19, "one data frame, no FIN frame of its own")
        #expect(YamuxHeader.Flags(rawValue: UInt16(frame[2]) << 8 | UInt16(frame[3])).contains(.fin))
        let refused = pair.client.send([1], on: id)
        #expect(!refused, "nothing more after finishing")
        let (client, server) = try pair.exchange()
        #expect(client == [.streamClosed(2)])
        #expect(server == [.data(2, ArraySlice("HTTP/1.1 200 OK\r\n\r\n".utf8)), .inputFinished(2), .streamClosed(2)])
        #expect(pair.client.streamCount == 0 && pair.server.streamCount == 0)
    }

    @Test func test_sendFinishing_beyondTheWindow_sendsTheFINAfterTheQueue() throws {
        var pair = YamuxPair()
        let opened = pair.server.openStream()
        let id = try #require(opened)
        _ = try pair.exchange()
        let body = [UInt8](repeating: 3, count: 300 * 1_024)
        pair.server.send(body, on: id, finishing: true)
        var received = 0
        var finished = false
        for _ in 0..<10 where !finished {
            let (client, _) = try pair.exchange()
            for event in client {
                if case .data(_, let bytes) = event { received += bytes.count; pair.client.consumed(bytes.count, on: id) }
                if event == .inputFinished(id) { finished = true }
            }
        }
        #expect(received == body.count && finished)
    }

    @Test func test_streamIDs_haveTheRoleParity_andIncrease() throws {
        var pair = YamuxPair()
        #expect(pair.client.openStream() == 1)
        #expect(pair.client.openStream() == 3)
        #expect(pair.server.openStream() == 2)
        #expect(pair.server.openStream() == 4)
        let (client, server) = try pair.exchange()
        #expect(server.filter { if case .streamOpened = $0 { true } else { false } } == [.streamOpened(1), .streamOpened(3)])
        #expect(client.filter { if case .streamOpened = $0 { true } else { false } } == [.streamOpened(2), .streamOpened(4)])
    }

    @Test func test_sender_neverExceedsTheWindow_andResumesWhenTheReceiverConsumes() throws {
        var pair = YamuxPair()
        let openedid = pair.server.openStream()
        let id = try #require(openedid)
        let body = [UInt8](repeating: 7, count: 600 * 1_024)
        pair.server.send(body, on: id)
        var (client, _) = try pair.exchange()
        var received = client.reduce(0) { total, event in if case .data(_, let bytes) = event { total + bytes.count } else { total } }
        #expect(received == Int(YamuxHeader.initialWindow))
        #expect(pair.server.pendingSendCount(id) == body.count - Int(YamuxHeader.initialWindow))

        // Consuming less than half the window gives nothing back yet.
        pair.client.consumed(100 * 1_024, on: id)
        #expect(pair.client.output.isEmpty)
        pair.client.consumed(28 * 1_024, on: id)
        var server: [YamuxSession.Event]
        (client, server) = try pair.exchange()
        #expect(server == [.sendWindowOpened(id)])
        received += client.reduce(0) { total, event in if case .data(_, let bytes) = event { total + bytes.count } else { total } }
        #expect(received == Int(YamuxHeader.initialWindow) + 128 * 1_024)
        while pair.server.pendingSendCount(id) > 0 {
            pair.client.consumed(128 * 1_024, on: id)
            (client, _) = try pair.exchange()
            received += client.reduce(0) { total, event in if case .data(_, let bytes) = event { total + bytes.count } else { total } }
        }
        #expect(received == body.count)
    }

    @Test func test_dataBeyondTheWindow_isAProtocolError_answeredWithGoAway() throws {
        var session = YamuxSession(role: .client)
        var bytes: [UInt8] = []
        YamuxHeader(.windowUpdate, flags: .syn, streamID: 2, length: 0).write(into: &bytes)
        for _ in 0..<2 {
            YamuxHeader(.data, streamID: 2, length: 200 * 1_024).write(into: &bytes)
            bytes += [UInt8](repeating: 1, count: 200 * 1_024)
        }
        session.feed(bytes)
        var failure: YamuxProtocolError?
        do { while try session.next() != nil {} } catch { failure = error }
        #expect(failure?.message.contains("exceeds stream 2's window of 57344") == true, "\(String(describing: failure))")
        let output = session.takeOutput()
        #expect(Array(output.suffix(12)) == [0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
        #expect(throws: YamuxProtocolError.self) { _ = try session.next() }
    }

    @Test func test_hostileStreamIDs_areProtocolErrors() {
        let cases: [([YamuxHeader], String)] = [
            ([YamuxHeader(.windowUpdate, flags: .syn, streamID: 1, length: 0)], "this side's parity"),
            ([YamuxHeader(.windowUpdate, flags: .syn, streamID: 4, length: 0), YamuxHeader(.windowUpdate, flags: .syn, streamID: 2, length: 0)], "reused or reordered"),
            ([YamuxHeader(.windowUpdate, flags: .syn, streamID: 2, length: 0), YamuxHeader(.windowUpdate, streamID: 2, length: UInt32.max)], "overflows"),
        ]
        for (headers, message) in cases {
            var session = YamuxSession(role: .client)
            var bytes: [UInt8] = []
            for header in headers { header.write(into: &bytes) }
            session.feed(bytes)
            do {
                while try session.next() != nil {}
                Issue.record("accepted: \(message)")
            } catch {
                #expect(error.message.contains(message), "\(error)")
            }
        }
    }

    @Test func test_dataAfterFIN_isAProtocolError() {
        var session = YamuxSession(role: .client)
        var bytes: [UInt8] = []
        YamuxHeader(.data, flags: [.syn, .fin], streamID: 2, length: 1).write(into: &bytes)
        bytes.append(9)
        YamuxHeader(.data, streamID: 2, length: 1).write(into: &bytes)
        bytes.append(9)
        session.feed(bytes)
        var events: [YamuxSession.Event] = []
        do {
            while let event = try session.next() { events.append(event) }
            Issue.record("accepted data after FIN")
        } catch {
            #expect(error.message.contains("after its FIN"))
        }
        #expect(events == [.streamOpened(2), .data(2, [9]), .inputFinished(2)])
    }

    @Test func test_reset_forgetsTheStream_onBothSides_andLateFramesAreIgnored() throws {
        var pair = YamuxPair()
        let openedid = pair.server.openStream()
        let id = try #require(openedid)
        _ = try pair.exchange()
        pair.client.send([1, 2, 3], on: id)
        pair.server.reset(id)
        let (client, server) = try pair.exchange()
        #expect(client == [.streamReset(id)])
        #expect(server.isEmpty, "data that crossed the RST is dropped silently")
        #expect(pair.client.streamCount == 0 && pair.server.streamCount == 0)
        let accepted = pair.client.send([4], on: id)
        #expect(!accepted)
    }

    @Test func test_goAway_refusesNewStreamsFromThePeer_butOpenStreamsGoOn() throws {
        var pair = YamuxPair()
        let openedopen = pair.server.openStream()
        let open = try #require(openedopen)
        _ = try pair.exchange()
        pair.client.goAway()
        var (client, server) = try pair.exchange()
        #expect(server == [.goAway(.normal)])
        #expect(pair.server.remoteGoAway)
        let refused = pair.server.openStream()
        #expect(refused == nil)
        // The client, which sent go-away, still opens streams; the server (told to go away) refuses nothing it is sent,
        // but a SYN reaching the side that said go-away is reset.
        pair.server.send([5], on: open)
        var bytes: [UInt8] = []
        YamuxHeader(.windowUpdate, flags: .syn, streamID: 8, length: 0).write(into: &bytes)
        pair.client.feed(bytes)
        (client, server) = try pair.exchange()
        #expect(client == [.data(open, [5])])
        #expect(server.isEmpty)
        #expect(!pair.client.isOpen(8))
    }

    @Test func test_tooManyStreams_areRefusedWithRST() throws {
        var settings = YamuxSession.Settings()
        settings.maxStreams = 1
        var pair = YamuxPair(client: YamuxSession(role: .client, settings: settings))
        let openedfirst = pair.server.openStream()
        let first = try #require(openedfirst)
        let openedsecond = pair.server.openStream()
        let second = try #require(openedsecond)
        let (client, server) = try pair.exchange()
        #expect(client == [.streamOpened(first)])
        #expect(server == [.streamAcknowledged(first), .streamReset(second)])
    }

    @Test func test_pings_areAnswered_andAnUnansweredOneMeansDead() throws {
        var pair = YamuxPair()
        let start = Instant(nanoseconds: 0)
        #expect(pair.server.keepaliveTick(now: start) == .alive)
        let (_, server) = try pair.exchange()
        #expect(server == [.pong(1)])
        #expect(pair.server.keepaliveTick(now: start + .seconds(30)) == .alive)
        _ = pair.server.takeOutput()  // the ping is lost
        #expect(pair.server.keepaliveTick(now: start + .seconds(35)) == .alive)
        #expect(pair.server.keepaliveTick(now: start + .seconds(40)) == .dead)
    }

    @Test func test_finishAfterQueuedData_sendsFINOnlyAfterTheData() throws {
        var pair = YamuxPair()
        let openedid = pair.server.openStream()
        let id = try #require(openedid)
        pair.server.send([UInt8](repeating: 1, count: Int(YamuxHeader.initialWindow) + 10), on: id)
        pair.server.finish(id)
        var (client, _) = try pair.exchange()
        #expect(!client.contains(.inputFinished(id)))
        pair.client.consumed(Int(YamuxHeader.initialWindow), on: id)
        (client, _) = try pair.exchange()
        #expect(client == [.data(id, ArraySlice(repeating: 1, count: 10)), .inputFinished(id)])
    }
}
