import Glibc

/// Reads small files whole (tokens, key files), bounded so a wrong path (a device, a huge log)
/// cannot hold the caller or its memory.
public enum SmallFile {
    /// The bytes of the file at `path`, at most `limit` of them; throws with the path and the
    /// system's reason when it cannot be read, or when it is larger than `limit`.
    public static func read(_ path: String, limit: Int) throws(SocketError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw SocketError("reading \(path)") }
        defer { close(fd) }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        while true {
            let count = Glibc.read(fd, &chunk, chunk.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw SocketError("reading \(path)")
            }
            if count == 0 { return contents }
            guard contents.count + count <= limit else { throw SocketError("reading \(path): larger than \(limit) bytes", code: 0) }
            contents += chunk[0..<count]
        }
    }
}
