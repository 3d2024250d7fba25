import Glibc

/// Lines typed on a descriptor (standard input), read on the loop; bounded to 4 KiB per line.
public final class LineInput: LoopHandler {
    let fd: Int32
    let loop: EventLoop
    private var pending: [UInt8] = []
    private let onLine: (String) -> Void
    private let onEnd: () -> Void

    /// Watches `fd`; `onLine` gets each line without its newline, `onEnd` the end of input.
    public init(fd: Int32, loop: EventLoop, onLine: @escaping (String) -> Void, onEnd: @escaping () -> Void) {
        self.fd = fd
        self.loop = loop
        self.onLine = onLine
        self.onEnd = onEnd
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        loop.register(fd, handler: self, interest: .readable)
    }

    public func handleEvent(readable: Bool, writable: Bool, failed: Bool) {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        let count = read(self.fd, &buffer, buffer.count)
        if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) {
            self.loop.unregister(self.fd)
            self.onEnd()
            return
        }
        guard count > 0 else { return }
        self.pending += buffer[0..<count]
        while let newline = self.pending.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: self.pending[..<newline], as: UTF8.self)
            self.pending.removeSubrange(...newline)
            self.onLine(line.trimmingCharacters(in: " \t\r"))
        }
        if self.pending.count > 4_096 { self.pending.removeAll() }
    }
}
