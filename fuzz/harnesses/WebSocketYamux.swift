// WebSocket framing and yamux (frame decoder and session), the two layers of a tunnel.
import PicoModel

/// Input: a control byte (piece sizes; bit 7: we are the client, so frames must be unmasked),
/// then the peer's bytes. Control frames carry at most 125 bytes; a close ends the stream.
enum WebSocketHarness {
    static func run(_ bytes: FuzzBytes) {
        var input = bytes
        let control = input.byte()
        var decoder = WebSocketFrameDecoder(role: control & 0x80 != 0 ? .client : .server)
        var fed = 0
        for piece in pieces(of: input.rest(), seed: control) {
            decoder.feed(piece)
            fed += piece.count
            while true {
                let event: WebSocketFrameDecoder.Event?
                do {
                    event = try decoder.next()
                } catch {
                    require([1002, 1003, 1007, 1009].contains(error.closeCode), "close code \(error.closeCode) for \(error)")
                    require((try? decoder.next()) == nil, "a failed decoder produced an event")
                    return
                }
                guard let event else { break }
                switch event {
                case .data(let bytes): require(!bytes.isEmpty, "an empty data event")
                case .emptyMessage: break
                case .ping(let bytes), .pong(let bytes): require(bytes.count <= 125, "control payload of \(bytes.count) bytes")
                case .close(let code, let reason):
                    require(reason.utf8.count <= 123, "close reason of \(reason.utf8.count) bytes")
                    // Close codes are passed on as sent (RFC 6455 §7.4 ranges are not checked
                    // by the decoder; noted in docs/fuzzing.md).
                    _ = code
                    require(decoder.state == .closed, "not closed after a close frame")
                }
            }
            require(decoder.bufferedByteCount <= fed, "buffered \(decoder.bufferedByteCount) of \(fed) bytes")
        }
        Self.bridge(bytes)
        // The same bytes as the start of a TCP stream that must carry a PROXY protocol header.
        var whole = bytes
        let start = Array(whole.rest())
        if case .header(let length) = ProxyProtocolV2.read(start) {
            require(length >= 16 && length <= ProxyProtocolV2.maxHeaderBytes && length <= start.count, "a header of \(length) bytes in \(start.count)")
        }
    }

    /// The TCP route's bridge over the same pieces: nothing is delivered or written after its
    /// close, which comes once, last.
    static func bridge(_ bytes: FuzzBytes) {
        var input = bytes
        let control = input.byte()
        var bridge = WebSocketStreamBridge(role: control & 0x80 != 0 ? .client : .server, halfClose: control & 0x40 != 0)
        var closed = false
        for (index, piece) in pieces(of: input.rest(), seed: control).enumerated() {
            var outputs = piece.withUnsafeBytes { bridge.received($0) }
            // Now and then the stream's side acts between the peer's pieces.
            switch (Int(control) + index) % 7 {
            case 0: outputs += bridge.streamEnded()
            case 1: outputs += bridge.idleTimedOut()
            case 2: outputs += bridge.streamFailed(reason: "reset")
            default: break
            }
            for output in outputs {
                require(!closed, "\(output) after the bridge closed")
                if output == .close { closed = true }
            }
            require(bridge.bufferedByteCount <= piece.count + 14, "\(bridge.bufferedByteCount) bytes held after a piece of \(piece.count)")
        }
        for output in bridge.peerConnectionEnded() {
            require(!closed, "\(output) after the bridge closed")
            if output == .close { closed = true }
        }
        require(closed, "the bridge did not close when the peer's connection ended")
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        var masked: [UInt8] = []
        WebSocketFrameEncoder.write(.binary, payload: Array("hello".utf8), maskingKey: key, into: &masked)
        WebSocketFrameEncoder.write(.binary, payload: [UInt8](repeating: 7, count: 300), fin: false, maskingKey: key, into: &masked)
        WebSocketFrameEncoder.write(.ping, payload: Array("p".utf8), maskingKey: key, into: &masked)
        WebSocketFrameEncoder.write(.continuation, payload: [UInt8](repeating: 9, count: 200), maskingKey: key, into: &masked)
        WebSocketFrameEncoder.write(.pong, payload: [], maskingKey: key, into: &masked)
        WebSocketFrameEncoder.writeClose(code: 1000, reason: "bye", maskingKey: key, into: &masked)
        var unmasked: [UInt8] = []
        WebSocketFrameEncoder.write(.binary, payload: Array("from server".utf8), into: &unmasked)
        WebSocketFrameEncoder.writeClose(code: 1001, into: &unmasked)
        var seeds: [(name: String, bytes: [UInt8])] = []
        seeds += withCuttings("client-frames", Array(masked.prefix(400)))
        seeds.append(("long", [3] + masked))
        seeds.append(("server-frames", [0x80] + unmasked))
        seeds.append(("text-frame", [0, 0x81, 0x81, 1, 2, 3, 4, 0x41]))
        seeds.append(("length-64bit-max", [0, 0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4]))
        seeds.append(("close-bad-code", [0, 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE7]))
        seeds.append(("ping-too-long", [0, 0x89, 0xFE, 0, 126, 0, 0, 0, 0]))
        return seeds
    }
}

/// Input: a control byte (bit 0: we are the server; bits 1-3: stream cap 1 to 8), then steps:
/// peer bytes, or local commands (open, send, finish, reset, consume, go away, keep-alive).
/// Whatever the peer does, the streams stay within the cap and everything the session writes is
/// a well-formed frame sequence.
enum YamuxHarness {
    static func run(_ bytes: FuzzBytes) {
        var input = bytes
        let control = input.byte()
        var settings = YamuxSession.Settings()
        settings.maxStreams = 1 + Int((control >> 1) & 7)
        settings.maxFrameSize = 1_024
        // Few places for unacknowledged opens, so opens wait; sometimes acknowledgements wait too.
        settings.maxUnacknowledgedOpens = 1 + Int((control >> 4) & 3)
        settings.acknowledgesStreamsOnOpen = control & 0x40 == 0
        var session = YamuxSession(role: control & 1 == 0 ? .client : .server, settings: settings)
        var written = YamuxFrameDecoder(maxDataFrame: settings.maxFrameSize)
        var opened: [UInt32] = []
        var now = Instant(nanoseconds: 0)
        var failed = false
        var steps = 0
        while !input.isEmpty, steps < 256 {
            steps += 1
            let op = input.byte()
            let stream = opened.isEmpty ? UInt32(op >> 3) : opened[Int(op >> 3) % opened.count]
            switch op & 7 {
            case 0, 1:
                session.feed(input.piece())
            case 2:
                if let id = session.openStream() { opened.append(id) }
            case 3:
                _ = session.send([UInt8](repeating: 0x61, count: Int(input.byte()) * 40), on: stream, finishing: input.byte() & 1 == 1)
            case 4:
                if op & 0x80 != 0 { session.acknowledge(stream) } else { session.finish(stream) }
            case 5:
                session.reset(stream)
            case 6:
                session.consumed(Int(input.uint16()) * 8, on: stream)
            default:
                if op & 0x80 != 0 { session.goAway() } else {
                    now = now + .seconds(Int64(op >> 3))
                    _ = session.keepaliveTick(now: now)
                }
            }
            while !failed {
                do {
                    guard let event = try session.next() else { break }
                    switch event {
                    case .streamOpened(let id):
                        // Not necessarily open still: a SYN|RST frame opens and resets at once.
                        opened.append(id)
                    case .data(let id, let bytes):
                        require(!bytes.isEmpty, "an empty data event")
                        session.consumed(bytes.count, on: id)
                    default: break
                    }
                } catch {
                    failed = true
                }
            }
            require(session.streamCount <= settings.maxStreams, "\(session.streamCount) streams above the cap of \(settings.maxStreams)")
            written.feed(session.takeOutput())
            do {
                while try written.next() != nil {}
            } catch {
                require(false, "the session wrote a malformed frame: \(error)")
            }
        }
    }

    static func frame(_ type: YamuxHeader.FrameType, _ flags: YamuxHeader.Flags, _ id: UInt32, _ length: UInt32, payload: [UInt8] = []) -> [UInt8] {
        var bytes: [UInt8] = []
        YamuxHeader(type, flags: flags, streamID: id, length: length).write(into: &bytes)
        bytes += payload
        return [0, UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let hello = Array("hello".utf8)
        return [
            ("peer-opens", [1] + frame(.windowUpdate, .syn, 1, 0) + frame(.data, [], 1, 5, payload: hello) + frame(.data, .fin, 1, 0) + [4]),
            ("peer-data-syn", [1] + frame(.data, .syn, 1, 5, payload: hello) + [3, 20, 0, 4]),
            ("we-open", [0, 2, 3, 30, 1] + frame(.windowUpdate, .ack, 1, 0) + frame(.windowUpdate, [], 1, 1_000_000) + [3, 255, 0]),
            ("window-max", [0, 2] + frame(.windowUpdate, .ack, 1, UInt32.max) + frame(.windowUpdate, [], 1, UInt32.max) + [3, 255, 0]),
            ("ping", [0] + frame(.ping, .syn, 0, 7) + [7, 7, 0x57] + frame(.ping, .ack, 0, 1)),
            ("go-away", [0] + frame(.goAway, [], 0, 1) + [2, 0x87]),
            ("rst", [1] + frame(.windowUpdate, .syn, 1, 0) + frame(.windowUpdate, .rst, 1, 0) + [5]),
            ("cap", [1] + frame(.windowUpdate, .syn, 1, 0) + frame(.windowUpdate, .syn, 3, 0) + frame(.windowUpdate, .syn, 5, 0)),
            ("overflow-window", [1] + frame(.windowUpdate, .syn, 1, 0) + frame(.data, [], 1, 1_024, payload: [UInt8](repeating: 1, count: 1_024)) + [6, 0xFF, 0xFF]),
            ("bad-version", [0, 0, 0, 12, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
        ]
    }
}
