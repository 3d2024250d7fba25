import Foundation
import Glibc
@testable import PicoRuntime
import PicoModel
import Testing

/// Echoes every byte back, pausing reading while its write queue is full.
final class EchoDelegate: ConnectionDelegate {
    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {
        connection.write(Array(bytes))
        if !connection.isWritable { connection.pauseReading() }
    }
    func connectionDidReadEOF(_ connection: Connection) { connection.closeWhenWritten() }
    func connectionDidDrain(_ connection: Connection) { connection.resumeReading() }
    func connectionDidClose(_ connection: Connection, error: SocketError?) {}
}

/// Runs a loop on its own thread for the duration of a test.
final class LoopThread: @unchecked Sendable {
    let loop: EventLoop
    private var thread: Thread?

    init() throws {
        self.loop = try EventLoop()
        let loop = self.loop
        let thread = Thread { loop.run() }
        self.thread = thread
        thread.start()
    }

    /// Runs `work` on the loop and waits for its result.
    func sync<T: Sendable>(_ work: @escaping @Sendable () throws -> T) throws -> T {
        let box = ResultBox<T>()
        self.loop.execute {
            box.set(Result { try work() })
        }
        return try box.wait().get()
    }

    func stop() { self.loop.stop() }
}

final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Result<T, Error>?
    func set(_ value: Result<T, Error>) {
        self.condition.lock()
        self.value = value
        self.condition.signal()
        self.condition.unlock()
    }
    func wait() -> Result<T, Error> {
        self.condition.lock()
        defer { self.condition.unlock() }
        while self.value == nil { self.condition.wait() }
        return self.value!
    }
}

@Suite("Event loop")
struct EventLoopTests {
    @Test func test_echoServer_returnsEveryByte_ofAPayloadLargerThanTheWriteQueue() throws {
        let thread = try LoopThread()
        defer { thread.stop() }
        let loop = thread.loop
        let port = try thread.sync {
            let listener = try Listener(address: Address(host: "127.0.0.1", port: 0), loop: loop) { fd in
                _ = Connection(fd: fd, loop: loop, connected: true, delegate: EchoDelegate())
            }
            return listener.address.port
        }
        let payload = (0..<(3 * 1_024 * 1_024)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(connected == 0)
        let writer = Thread {
            payload.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = send(fd, raw.baseAddress! + offset, raw.count - offset, 0)
                    if n <= 0 { break }
                    offset += n
                }
            }
            shutdown(fd, Int32(SHUT_WR))
        }
        writer.start()
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        close(fd)
        #expect(received.count == payload.count)
        #expect(received == payload)
    }

    @Test func test_timers_fireInDeadlineOrder_andCancelledOnesNever() throws {
        let loop = try EventLoop()
        var fired: [Int] = []
        let start = loop.now
        loop.schedule(at: start + .milliseconds(30)) { fired.append(3) }
        loop.schedule(at: start + .milliseconds(10)) { fired.append(1) }
        let cancelled = loop.schedule(at: start + .milliseconds(20)) { fired.append(2) }
        cancelled.cancel()
        let deadline = MonotonicClock.now() + .seconds(2)
        while fired.count < 2, MonotonicClock.now() < deadline { loop.turn(maximumWait: .milliseconds(50)) }
        #expect(fired == [1, 3])
    }

    /// A connection re-arms its idle timeout on every request: cancelled timers must leave the
    /// heap at once, or a busy loop holds millions of dead ones (memory, and a stale epoll timeout).
    @Test func test_cancelledTimers_leaveTheHeapAtOnce_andTheRestStillFireInOrder() throws {
        let loop = try EventLoop()
        let start = loop.now
        let dead = (0..<10_000).map { index in loop.schedule(at: start + .seconds(60 + index % 7)) {} }
        #expect(loop.armedTimerCount == 10_000)
        for timer in dead { timer.cancel() }
        #expect(loop.armedTimerCount == 0)

        var random = SplitMix64(seed: 7)
        var fired: [Int] = []
        var expected: [(Int, Int)] = []
        var cancelled: [LoopTimer] = []
        for index in 0..<300 {
            let offset = Int(random.next() % 40)
            let timer = loop.schedule(at: start + .milliseconds(offset)) { fired.append(index) }
            if random.next() % 3 == 0 { cancelled.append(timer) } else { expected.append((offset, index)) }
        }
        for timer in cancelled { timer.cancel() }
        #expect(loop.armedTimerCount == expected.count)
        let deadline = MonotonicClock.now() + .seconds(2)
        while fired.count < expected.count, MonotonicClock.now() < deadline { loop.turn(maximumWait: .milliseconds(20)) }
        #expect(fired == expected.sorted { $0 < $1 }.map(\.1))
        #expect(loop.armedTimerCount == 0)
    }

    /// A loop, a connection on it to one end of a socket pair (non-blocking), and the other end.
    static func connectionToAPeer() throws -> (EventLoop, Connection, Int32) {
        let loop = try EventLoop()
        var fds: [Int32] = [0, 0]
        socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds)
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        return (loop, Connection(fd: fds[0], loop: loop, connected: true, delegate: CloseRecorder()), fds[1])
    }

    /// Writes queue until the end of the loop's turn and then leave in one flush; a close right
    /// after a write still sends what was written (as an immediate write did).
    @Test func test_writes_waitForTheEndOfTheTurn_andACloseStillSendsThem() throws {
        let (loop, connection, peer) = try Self.connectionToAPeer()
        defer { close(peer) }
        for index in 0..<100 { connection.write([UInt8](repeating: UInt8(index), count: 10)) }
        #expect(connection.queuedByteCount == 1_000)
        #expect(connection.bytesWritten == 0)
        loop.turn(maximumWait: .zero)
        #expect(connection.queuedByteCount == 0)
        #expect(connection.bytesWritten == 1_000)
        connection.write(Array("bye".utf8))
        connection.close()
        var buffer = [UInt8](repeating: 0, count: 4_096)
        var received: [UInt8] = []
        while true {
            let count = recv(peer, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        #expect(received.count == 1_003)
        #expect(Array(received.suffix(3)) == Array("bye".utf8))
    }

    @Test func test_aLargeWrite_goesOutAtOnce_withWhatWasQueuedFirst_andTheRestIsQueuedInOrder() throws {
        let (loop, connection, peer) = try Self.connectionToAPeer()
        defer { close(peer) }
        // A small header is queued for the end of the turn; the large payload after it is sent
        // at once, header first, without waiting for the turn's end.
        connection.write(Array("head".utf8))
        let payload = (0..<(Connection.directWriteMinimum * 2)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        connection.write(payload)
        #expect(connection.bytesWritten == 4 + payload.count)
        #expect(connection.queuedByteCount == 0)
        // More than the socket buffer holds: what it does not take is queued, in order, behind
        // nothing, and a small write after it waits behind it.
        let large = (0..<(8 * 1_024 * 1_024)).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        connection.write(large)
        #expect(connection.queuedByteCount > 0, "the socket took only part of 8 MiB")
        connection.write(Array("tail".utf8))
        connection.closeWhenWritten()
        let result = ReceivedBytes()
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            var received: [UInt8] = []
            while true {
                let count = recv(peer, &buffer, buffer.count, 0)
                if count <= 0 { break }
                received += buffer[0..<count]
            }
            result.set(received)
        }
        reader.start()
        let deadline = Date().addingTimeInterval(10)
        while connection.queuedByteCount > 0, Date() < deadline { loop.turn(maximumWait: .milliseconds(10)) }
        loop.turn(maximumWait: .milliseconds(10))
        while result.get() == nil, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(result.get() == Array("head".utf8) + payload + large + Array("tail".utf8))
    }

    @Test func test_execute_fromAnotherThread_wakesTheLoop() throws {
        let thread = try LoopThread()
        defer { thread.stop() }
        let value = try thread.sync { 42 }
        #expect(value == 42)
    }

    @Test func test_writeStallTimeout_closesAConnectionWhosePeerStoppedReading_andOnlyThen() throws {
        let loop = try EventLoop()
        func stalledPair(timeout: Duration?) -> (Connection, CloseRecorder, Int32) {
            var fds: [Int32] = [0, 0]
            socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds)
            _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
            let recorder = CloseRecorder()
            let connection = Connection(fd: fds[0], loop: loop, connected: true, delegate: recorder)
            connection.writeStallTimeout = timeout
            for _ in 0..<64 { connection.write([UInt8](repeating: 7, count: 64 * 1_024)) }
            return (connection, recorder, fds[1])
        }
        let (stalled, stalledRecorder, stalledPeer) = stalledPair(timeout: .milliseconds(150))
        let (patient, patientRecorder, patientPeer) = stalledPair(timeout: nil)
        defer {
            close(stalledPeer)
            close(patientPeer)
            patient.close()
        }
        let deadline = MonotonicClock.now() + .seconds(3)
        while stalled.state != .closed, MonotonicClock.now() < deadline { loop.turn(maximumWait: .milliseconds(50)) }
        #expect(stalled.state == .closed)
        #expect(stalledRecorder.error?.code == ETIMEDOUT)
        #expect(patient.state == .open)
        #expect(patientRecorder.closed == false)
    }
}


@Suite("Event loop wake-ups")
struct EventLoopWakeTests {
    /// Many posters racing the loop: every posted closure runs without waiting for some later
    /// event (a lost wake-up once left work stuck until an unrelated timer fired).
    @Test func test_executeFromRacingThreads_runsEveryClosurePromptly() throws {
        let thread = try LoopThread()
        defer { thread.stop() }
        let loop = thread.loop
        let counter = Counter()
        let posters = 4
        let perPoster = 25_000
        let done = DispatchGroup()
        for _ in 0..<posters {
            done.enter()
            Thread {
                for index in 0..<perPoster {
                    loop.execute { counter.add() }
                    if index % 64 == 0 { usleep(1) }
                }
                done.leave()
            }.start()
        }
        done.wait()
        let deadline = Date().addingTimeInterval(2)
        while counter.value < posters * perPoster, Date() < deadline { usleep(1_000) }
        #expect(counter.value == posters * perPoster)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { self.lock.withLock { self.count += 1 } }
    var value: Int { self.lock.withLock { self.count } }
}

final class CloseRecorder: ConnectionDelegate {
    var closed = false
    var error: SocketError?
    func connection(_ connection: Connection, didRead bytes: UnsafeRawBufferPointer) {}
    func connectionDidReadEOF(_ connection: Connection) {}
    func connectionDidClose(_ connection: Connection, error: SocketError?) {
        self.closed = true
        self.error = error
    }
}

/// Bytes a reader thread received, handed to the test's thread.
final class ReceivedBytes: @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: [UInt8]?
    func set(_ value: [UInt8]) { self.lock.withLock { self.bytes = value } }
    func get() -> [UInt8]? { self.lock.withLock { self.bytes } }
}
