import Glibc
import PicoModel

/// The UDP half of the gossip port: datagrams to and from other nodes, on the control loop.
/// Addresses are IP literals (what nodes advertise after derivation) and are converted without
/// a name lookup; a datagram to a name is resolved off the loop first, then sent.
final class GossipSocket: LoopHandler {
    /// Packets and bytes in and out, and sends that failed.
    struct Figures: Sendable {
        var packetsIn: UInt64 = 0
        var bytesIn: UInt64 = 0
        var packetsOut: UInt64 = 0
        var bytesOut: UInt64 = 0
        var sendFailures: UInt64 = 0
    }

    /// Largest datagram read (anything larger is truncated by the kernel and then refused by the
    /// decoder).
    static let receiveLimit = 65_536
    /// Names resolved for sending, at most this many remembered.
    static let nameCacheLimit = 1_024

    let fd: Int32
    let loop: EventLoop
    private(set) var figures = Figures()
    /// Receives each datagram and its source.
    var onDatagram: ([UInt8], Address) -> Void = { _, _ in }
    /// Hears of each datagram that could not be sent.
    var onSendFailed: (Address) -> Void = { _ in }
    private var names: [Address: SocketAddressStorage] = [:]

    init(bind address: Address, loop: EventLoop) throws(SocketError) {
        self.fd = try Sockets.bindUDP(address)
        self.loop = loop
        loop.register(self.fd, handler: self, interest: .readable)
    }

    /// The bound address (the actual port when bound to port 0).
    var boundAddress: Address? { Sockets.localAddress(self.fd) }

    func close() {
        self.loop.unregister(self.fd)
        Glibc.close(self.fd)
    }

    /// Sends one datagram; a failure is reported (later, never from inside this call).
    func send(_ bytes: [UInt8], to address: Address) {
        guard let resolved = address.numeric() ?? self.names[address] else {
            self.resolveThenSend(bytes, to: address)
            return
        }
        let sent = bytes.withUnsafeBytes { raw in
            resolved.withSockaddr { sendto(self.fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL), $0, $1) }
        }
        guard sent == bytes.count else {
            self.figures.sendFailures += 1
            self.loop.schedule(after: .zero) { [weak self] in self?.onSendFailed(address) }
            return
        }
        self.figures.packetsOut += 1
        self.figures.bytesOut += UInt64(bytes.count)
    }

    private func resolveThenSend(_ bytes: [UInt8], to address: Address) {
        let loop = self.loop
        nonisolated(unsafe) let unsafeSelf = self
        do {
            try Threads.detach {
                let resolved = try? address.resolve().first
                loop.execute {
                    guard let resolved else {
                        unsafeSelf.figures.sendFailures += 1
                        unsafeSelf.onSendFailed(address)
                        return
                    }
                    if unsafeSelf.names.count >= Self.nameCacheLimit { unsafeSelf.names.removeAll() }
                    unsafeSelf.names[address] = resolved
                    unsafeSelf.send(bytes, to: address)
                }
            }
        } catch {
            self.figures.sendFailures += 1
            self.loop.schedule(after: .zero) { [weak self] in self?.onSendFailed(address) }
        }
    }

    func handleEvent(readable: Bool, writable: Bool, failed: Bool) {
        guard readable else { return }
        let buffer = self.loop.readBuffer
        for _ in 0..<64 {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let count = withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(self.fd, buffer.baseAddress, min(buffer.count, Self.receiveLimit), 0, $0, &length)
                }
            }
            guard count >= 0 else { return }
            let from = withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddressStorage($0, length: length).address }
            }
            self.figures.packetsIn += 1
            self.figures.bytesIn += UInt64(count)
            self.onDatagram(Array(UnsafeRawBufferPointer(rebasing: buffer[0..<count])), from)
        }
    }
}
