import Dispatch
import Glibc
import PicoModel
import PicoRuntime
import Synchronization

/// `pico`: the server, the agent, and their help.
let version = "pico 0.5.0"
var arguments = Array(CommandLine.arguments.dropFirst())

func fail(_ message: String, status: Int32 = 2) -> Never {
    FileHandleText.standardError("pico: \(message)\n")
    exit(status)
}

/// Splits `--key value` / `--key=value` / boolean `--key` flags from positional arguments.
func parseFlags(_ arguments: [String], booleans: Set<String>) -> (flags: [(String, String)], positional: [String]) {
    var flags: [(String, String)] = []
    var positional: [String] = []
    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        index += 1
        guard argument.hasPrefix("--") else {
            positional.append(argument)
            continue
        }
        if let equals = argument.firstIndex(of: "=") {
            flags.append((String(argument[..<equals]), String(argument[argument.index(after: equals)...])))
        } else if booleans.contains(argument) {
            flags.append((argument, "true"))
        } else {
            guard index < arguments.count else { fail("flag \(argument) needs a value") }
            flags.append((argument, arguments[index]))
            index += 1
        }
    }
    return (flags, positional)
}

/// Runs `loop` on this thread; SIGTERM/SIGINT call `onSignal` on the loop, a second one exits 1;
/// SIGHUP calls `onReload` on the loop (ignored without one).
func runWithSignals(_ loop: EventLoop, onReload: (@Sendable () -> Void)? = nil, onSignal: @escaping @Sendable () -> Void) -> Never {
    Sockets.ignoreBrokenPipes()
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    signal(SIGHUP, SIG_IGN)
    let signals = SignalCount()
    var sources: [DispatchSourceSignal] = []
    if let onReload {
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler { loop.execute(onReload) }
        source.resume()
        sources.append(source)
    }
    for number in [SIGTERM, SIGINT] {
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            if signals.count.add(1, ordering: .relaxed).newValue > 1 { exit(1) }
            loop.execute(onSignal)
        }
        source.resume()
        sources.append(source)
    }
    loop.run()
    exit(0)
}

/// How many termination signals arrived (a second one exits at once).
final class SignalCount: Sendable {
    let count = Atomic<Int>(0)
}

enum FileHandleText {
    static func standardError(_ text: String) {
        _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }
    static func standardOutput(_ text: String) {
        _ = text.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
    }
    static func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0..<count]
            if bytes.count > YAMLReader.maxBytes { return nil }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

func environment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") { result[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
        pointer += 1
    }
    return result
}

func serverHelp() -> String {
    var text = "Usage: pico server [flags]\n\nRuns a Pico node: proxy, upstream and admin ports.\n\nFlags:\n"
    text += "  --config.path string            YAML config file (keys as below, dotted paths nested).\n"
    text += "  --config.expand-env             Expand $VAR, ${VAR} and ${VAR:default} in the config file.\n"
    text += "  --validate                      Load, expand and check the configuration, print `config ok` and exit.\n"
    for option in ServerOptions.all {
        text += "  " + option.flag.padding(30) + "  " + option.help + " (default " + option.defaultText + ")\n"
    }
    return text
}

extension String {
    func padding(_ width: Int) -> String { self.count >= width ? self : self + String(repeating: " ", count: width - self.count) }
}

func agentHelp() -> String {
    var text = """
    Usage: pico agent http <endpoint> <addr> [flags]
           pico agent tcp <endpoint> <addr> [flags]
           pico agent start --config.path <file> [flags]

    `http` exposes the local HTTP service at <addr> (a port, host:port or http:// URL) as
    <endpoint>; `tcp` exposes the local TCP service at <addr> (a port or host:port), which
    clients reach with `pico forward tcp` or the proxy port's /_pico/v1/tcp/<endpoint>
    WebSocket; `start` serves every listener of the config file.

    Flags:

    """
    for flag in AgentOptions.flags {
        text += "  " + flag.name.padding(24) + "  " + flag.help + " (default " + flag.defaultText + ")\n"
    }
    return text + "\n"
}

let mainHelp = """
Usage: pico <command> [flags]

Commands:
  server        Run a Pico node.
  agent http    Expose a local HTTP service through Pico.
  agent tcp     Expose a local TCP service through Pico.
  forward tcp   Listen locally and carry each connection to a TCP endpoint.
  forward start Open every port of a forward config file.
  agent start   Expose every listener of an agent config file.
  status        Ask a node about the cluster, its endpoints and gossip.
  test cluster  Run a development cluster on loopback behind a balancer.
  help configuration
                Print the configuration reference (Markdown) of server and agent.

Flags:
  --help        Show help (also after a command).
  --version     Print the version.

"""

func runServer(_ arguments: [String]) -> Never {
    // SIGHUP reloads certificates once the node runs; until then it must not end the process.
    signal(SIGHUP, SIG_IGN)
    if arguments.contains("--help") || arguments.contains("-h") {
        FileHandleText.standardOutput(serverHelp())
        exit(0)
    }
    let (flags, positional) = parseFlags(arguments, booleans: ["--config.expand-env", "--proxy.access-log.disable", "--validate"])
    guard positional.isEmpty else { fail("unexpected argument \(positional[0])") }
    var (yaml, file, expand, rest) = configFile(flags)
    let validateOnly = rest.contains { $0.0 == "--validate" && $0.1 == "true" }
    rest.removeAll { $0.0 == "--validate" }
    let settings: ServerSettings
    do {
        settings = try ServerOptions.load(yaml: yaml, file: file, expandEnvironment: expand, environment: environment(), flags: rest)
    } catch {
        fail("config: \(error)")
    }
    if validateOnly {
        FileHandleText.standardOutput("config ok\n")
        exit(0)
    }
    let log = Logger(level: settings.logLevel, subsystem: "server", verboseSubsystems: settings.logSubsystems)
    let group: LoopGroup
    let node: PicoNode
    do {
        group = try LoopGroup(count: settings.eventLoops ?? LoopGroup.processorCount)
        node = try PicoNode(settings: settings, loops: group.loops, log: log)
        try group.start()
    } catch {
        log.error("failed to run server", [("error", .string("\(error)"))])
        exit(1)
    }
    node.onExit = { status in exit(status) }
    node.start()
    runWithSignals(group.loops[0], onReload: { node.reloadCertificates(.signal) }) { node.shutdown() }
}

func runAgent(_ arguments: [String]) -> Never {
    signal(SIGHUP, SIG_IGN)
    if arguments.contains("--help") || arguments.contains("-h") {
        FileHandleText.standardOutput(agentHelp())
        exit(0)
    }
    let (flags, positional) = parseFlags(arguments, booleans: ["--config.expand-env", "--proxy-protocol"])
    let listener: (endpoint: String, addr: String)?
    var listenerProtocol = AgentSettings.ListenerProtocol.http
    switch positional.first {
    case "http", "tcp":
        guard positional.count == 3 else { fail("expected `pico agent \(positional[0]) <endpoint> <addr>`") }
        listener = (positional[1], positional[2])
        if positional[0] == "tcp" { listenerProtocol = .tcp }
    case "start":
        guard positional.count == 1 else { fail("unexpected argument \(positional[1]); `pico agent start` takes its listeners from --config.path") }
        listener = nil
    default:
        fail("expected `pico agent http <endpoint> <addr>`, `pico agent tcp <endpoint> <addr>` or `pico agent start --config.path <file>`")
    }
    let (yaml, file, expand, rest) = configFile(flags)
    let settings: AgentSettings
    do {
        settings = try AgentOptions.load(yaml: yaml, file: file, expandEnvironment: expand, environment: environment(), flags: rest, listener: listener,
                                          listenerProtocol: listenerProtocol)
    } catch {
        fail("config: \(error)")
    }
    let log = Logger(level: settings.logLevel, subsystem: "agent")
    let group: LoopGroup
    do {
        group = try LoopGroup(count: settings.loopCount(processors: LoopGroup.processorCount))
        try group.start()
    } catch {
        fail("\(error)", status: 1)
    }
    let agent: PicoAgent
    do {
        agent = try PicoAgent(settings: settings, loops: group.loops, log: log)
    } catch {
        fail("\(error)", status: 1)
    }
    agent.onExit = { status in exit(status) }
    agent.start()
    runWithSignals(group.loops[0], onReload: { agent.reloadCertificates(.signal) }) { agent.shutdown() }
}

/// Takes `--config.path` (read here; a file that cannot be read ends the process) and
/// `--config.expand-env` out of `flags`: the file's text and path, whether to expand, the rest.
func configFile(_ flags: [(String, String)]) -> (yaml: String?, file: String, expand: Bool, rest: [(String, String)]) {
    var yaml: String?
    var file = ""
    var expand = false
    var rest: [(String, String)] = []
    for (flag, value) in flags {
        switch flag {
        case "--config.path":
            file = value
            guard let text = FileHandleText.read(value) else { fail("cannot read config file \(value)") }
            yaml = text
        case "--config.expand-env": expand = value == "true"
        default: rest.append((flag, value))
        }
    }
    return (yaml, file, expand, rest)
}

func forwardHelp() -> String {
    var text = """
    Usage: pico forward tcp <addr> <endpoint> [flags]
           pico forward start --config.path <file> [flags]

    `tcp` listens on <addr> (a port on localhost, or host:port) and carries every accepted
    connection to <endpoint> through the node's proxy port (its /_pico/v1/tcp/<endpoint>
    WebSocket); `start` opens every port of the config file.

    Flags:

    """
    for flag in ForwardOptions.flags {
        text += "  " + flag.name.padding(24) + "  " + flag.help + " (default " + flag.defaultText + ")\n"
    }
    return text + "\n"
}

func runForward(_ arguments: [String]) -> Never {
    signal(SIGHUP, SIG_IGN)
    if arguments.contains("--help") || arguments.contains("-h") {
        FileHandleText.standardOutput(forwardHelp())
        exit(0)
    }
    let (flags, positional) = parseFlags(arguments, booleans: ["--config.expand-env"])
    let port: (addr: String, endpoint: String)?
    switch positional.first {
    case "tcp":
        guard positional.count == 3 else { fail("expected `pico forward tcp <addr> <endpoint>`") }
        port = (positional[1], positional[2])
    case "start":
        guard positional.count == 1 else { fail("unexpected argument \(positional[1]); `pico forward start` takes its ports from --config.path") }
        port = nil
    default:
        fail("expected `pico forward tcp <addr> <endpoint>` or `pico forward start --config.path <file>`")
    }
    let (yaml, file, expand, rest) = configFile(flags)
    let settings: ForwardSettings
    do {
        settings = try ForwardOptions.load(yaml: yaml, file: file, expandEnvironment: expand, environment: environment(), flags: rest, port: port)
    } catch {
        fail("config: \(error)")
    }
    let log = Logger(level: settings.logLevel, subsystem: "forward")
    let group: LoopGroup
    let forwarder: PicoForwarder
    do {
        group = try LoopGroup(count: 1)
        forwarder = try PicoForwarder(settings: settings, loop: group.loops[0], log: log)
    } catch {
        fail("\(error)", status: 1)
    }
    forwarder.onExit = { status in exit(status) }
    runWithSignals(group.loops[0]) { forwarder.shutdown() }
}

func runStatus(_ arguments: [String]) -> Never {
    if arguments.isEmpty || arguments.contains("--help") || arguments.contains("-h") {
        FileHandleText.standardOutput(StatusCommand.usage)
        exit(arguments.isEmpty ? 2 : 0)
    }
    let command: StatusCommand
    do { command = try StatusCommand.parse(arguments) } catch { fail("status: \(error); see pico status --help") }
    var tls: TLSContext?
    if let settings = command.tls {
        do { tls = try TLSContext.client(settings) } catch { fail("status: \(error)") }
    }
    let token: String?
    do { token = try command.resolvedToken() } catch { fail("status: \(error)") }
    let response: AdminClient.Response
    do {
        response = try AdminClient.get(command.server, path: command.path, timeout: command.timeout, tls: tls, token: token)
    } catch {
        fail("status: cannot reach the node at \(command.server): \(error)", status: 1)
    }
    if command.asksEveryMember, response.status == 200 {
        guard let members = command.memberKeyPaths(nodesBody: response.body) else { fail("status: \(command.path): the node answered something that is not a list of nodes", status: 1) }
        var answers: [(id: String, status: Int, body: String)] = []
        for member in members {
            do {
                let answer = try AdminClient.get(command.server, path: member.path, timeout: command.timeout, tls: tls, token: token)
                answers.append((member.id, answer.status, answer.body))
            } catch {
                answers.append((member.id, 0, "\(error)"))
            }
        }
        let (text, status) = command.renderMemberKeys(answers)
        FileHandleText.standardOutput(text)
        exit(status)
    }
    let (text, status) = command.render(status: response.status, body: response.body)
    if status == 0 { FileHandleText.standardOutput(text) } else { FileHandleText.standardError("pico: status: " + text) }
    exit(status)
}

let testClusterHelp = """
Usage: pico test cluster [--nodes 3] [--base-port 8000] [--log-dir DIR] [-- server flags]

Runs a development cluster of `pico server` processes on loopback, behind a balancer that sends
each connection to a ready node: proxy on the base port, upstream on +1, admin on +2; node i uses
base+10(i+1) to base+10(i+1)+3. Type commands while it runs:
  nodes          list the nodes and their ports and logs
  scale <n>      run n nodes (1 to 9); extra nodes stop gracefully
  restart        restart every node, one at a time, with new node IDs
  quit           stop every node gracefully and exit (also SIGTERM or Ctrl-C)

"""

func runTestCluster(_ arguments: [String]) -> Never {
    if arguments.contains("--help") || arguments.contains("-h") || arguments.first != "cluster" {
        FileHandleText.standardOutput(testClusterHelp)
        exit(arguments.first == "cluster" || arguments.contains("--help") ? 0 : 2)
    }
    var rest = Array(arguments.dropFirst())
    var serverFlags: [String] = []
    if let separator = rest.firstIndex(of: "--") {
        serverFlags = Array(rest[rest.index(after: separator)...])
        rest = Array(rest[..<separator])
    }
    let (flags, positional) = parseFlags(rest, booleans: [])
    guard positional.isEmpty else { fail("unexpected argument \(positional[0])") }
    var nodes = 3
    var base: UInt16 = 8000
    var logDirectory: String?
    for (flag, value) in flags {
        switch flag {
        case "--nodes":
            guard let count = Int(value), (1...DevCluster.maxNodes).contains(count) else { fail("--nodes: expected 1 to \(DevCluster.maxNodes)") }
            nodes = count
        case "--base-port":
            guard let port = UInt16(value), port <= 65_000 else { fail("--base-port: expected a port up to 65000") }
            base = port
        case "--log-dir": logDirectory = value
        default: fail("unknown flag \(flag)")
        }
    }
    // The cluster watches each node's /ready in plain HTTP, so the admin port stays plain.
    if let flag = serverFlags.first(where: { $0.hasPrefix("--admin.tls.") }) {
        fail("\(flag): pico test cluster keeps the admin ports plain (it polls /ready); TLS on the proxy and upstream ports works")
    }
    let directory = logDirectory ?? {
        var template = Array("/tmp/pico-test-cluster-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }()
    let loop: EventLoop
    do { loop = try EventLoop() } catch { fail("\(error)", status: 1) }
    // The nodes run this same binary (by its real path, so `ps` shows what they are).
    var path = [CChar](repeating: 0, count: 4_096)
    let length = readlink("/proc/self/exe", &path, path.count - 1)
    let executable = length > 0 ? String(decoding: path[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    let cluster = DevCluster(executable: executable, basePort: base, logDirectory: directory, extraFlags: serverFlags, loop: loop)
    cluster.say = { FileHandleText.standardOutput($0) }
    do { try cluster.start(nodes: nodes) } catch { fail("cannot start the cluster: \(error)", status: 1) }
    FileHandleText.standardOutput(cluster.describe() + "commands: nodes, scale <n>, restart, quit\n")
    nonisolated(unsafe) let unsafeCluster = cluster
    let quit: @Sendable () -> Void = {
        unsafeCluster.say("stopping every node\n")
        unsafeCluster.shutdown { exit(0) }
    }
    let input = LineInput(fd: 0, loop: loop, onLine: { line in
        if line == "quit" || line == "exit" { quit() } else { cluster.command(line) }
    }, onEnd: {})
    _ = input
    runWithSignals(loop) { quit() }
}

switch arguments.first {
case "test": runTestCluster(Array(arguments.dropFirst()))
case "server" where arguments.dropFirst().first == "status": runStatus(Array(arguments.dropFirst(2)))
case "server": runServer(Array(arguments.dropFirst()))
case "status": runStatus(Array(arguments.dropFirst()))
case "agent": runAgent(Array(arguments.dropFirst()))
case "forward": runForward(Array(arguments.dropFirst()))
case "--version", "version": FileHandleText.standardOutput(version + "\n")
case "help" where arguments.dropFirst().first == "configuration": FileHandleText.standardOutput(ConfigurationReference.markdown())
case "--help", "-h", "help", nil: FileHandleText.standardOutput(mainHelp)
default: fail("unknown command \(arguments[0]); see pico --help")
}
