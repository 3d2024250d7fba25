import Glibc
import PicoModel

/// `pico forward`: listens on each configured local port and carries every accepted connection
/// to its endpoint through the node's TCP route (`ForwardConnection`). On one event loop.
public final class PicoForwarder: @unchecked Sendable {
    /// Its loop.
    public let loop: EventLoop
    /// Its settings.
    public let settings: ForwardSettings
    let log: Logger
    /// Its TLS to the node (an `https://` or `wss://` URL).
    let connectTLS: TLSCredentials?
    private var listeners: [Listener] = []
    private var connections: [ObjectIdentifier: ForwardConnection] = [:]
    private var stopping = false
    /// Called once with the exit status.
    public var onExit: ((Int32) -> Void)?

    /// Binds every port (throws naming the one that failed) and loads the TLS files.
    public init(settings: ForwardSettings, loop: EventLoop, log: Logger) throws {
        self.loop = loop
        self.settings = settings
        self.log = log
        do {
            self.connectTLS = try settings.connection.tls.map { try TLSCredentials.client($0, name: "connect.tls") }
        } catch {
            throw ConfigError("connect.tls: \(error)")
        }
        for port in settings.ports {
            do {
                let listener = try Listener(address: port.listen, loop: loop)
                listener.onAccept = { [unowned self] fd in self.accepted(fd, port: port) }
                self.listeners.append(listener)
                log.info("forwarding", [("addr", .string("\(listener.address)")), ("endpoint", .string(port.endpoint))])
            } catch {
                throw ConfigError("listen on \(port.listen): \(error)")
            }
        }
    }

    /// The addresses listened on, in the order of `settings.ports` (the actual port when bound
    /// to port 0).
    public var listenAddresses: [Address] { self.listeners.map(\.address) }

    private func accepted(_ fd: Int32, port: ForwardSettings.Port) {
        guard !self.stopping else {
            _ = Glibc.close(fd)
            return
        }
        let token: String?
        switch self.settings.connection.currentToken() {
        case .success(let current): token = current
        case .failure(let reason):
            self.log.warn("forward failed", [("endpoint", .string(port.endpoint)), ("error", .string(reason.message))])
            _ = Glibc.close(fd)
            return
        }
        let connection = ForwardConnection(fd: fd, forwarder: self, port: port, token: token)
        self.connections[ObjectIdentifier(connection)] = connection
    }

    func connectionEnded(_ connection: ForwardConnection) {
        self.connections[ObjectIdentifier(connection)] = nil
    }

    /// SIGTERM: stop accepting, close every forwarded connection, exit 0.
    public func shutdown() {
        guard !self.stopping else { return }
        self.stopping = true
        self.log.info("shutting down", [("connections", .int(self.connections.count))])
        for listener in self.listeners { listener.close() }
        for connection in self.connections.values { connection.local.close() }
        let callback = self.onExit
        self.onExit = nil
        self.loop.schedule(after: .milliseconds(50)) { callback?(0) }
    }
}
