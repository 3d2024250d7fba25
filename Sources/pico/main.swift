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

/// Runs `loop` on this thread; SIGTERM/SIGINT call `onSignal` on the loop, a second one exits 1.
func runWithSignals(_ loop: EventLoop, onSignal: @escaping @Sendable () -> Void) -> Never {
    Sockets.ignoreBrokenPipes()
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    let signals = SignalCount()
    var sources: [DispatchSourceSignal] = []
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
           pico agent start --config.path <file> [flags]

    `http` exposes the local HTTP service at <addr> (a port, host:port or http:// URL) as
    <endpoint>; `start` serves every listener of the config file.

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
  agent start   Expose every listener of an agent config file.
  status        Ask a node about the cluster, its endpoints and gossip.

Flags:
  --help        Show help (also after a command).
  --version     Print the version.

"""

func runServer(_ arguments: [String]) -> Never {
    if arguments.contains("--help") || arguments.contains("-h") {
        FileHandleText.standardOutput(serverHelp())
        exit(0)
    }
    let (flags, positional) = parseFlags(arguments, booleans: ["--config.expand-env", "--proxy.access-log.disable", "--validate"])
    guard positional.isEmpty else { fail("unexpected argument \(positional[0])") }
    var yaml: String?
    var file = ""
    var expand = false
    var validateOnly = false
    var rest: [(String, String)] = []
    for (flag, value) in flags {
        switch flag {
        case "--config.path":
            file = value
            guard let text = FileHandleText.read(value) else { fail("cannot read config file \(value)") }
            yaml = text
        case "--config.expand-env": expand = value == "true"
        case "--validate": validateOnly = value == "true"
        default: rest.append((flag, value))
        }
    }
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
    runWithSignals(group.loops[0]) { node.shutdown() }
}

func runAgent(_ arguments: [String]) -> Never {
    if arguments.contains("--help") || arguments.contains("-h") {
        FileHandleText.standardOutput(agentHelp())
        exit(0)
    }
    let (flags, positional) = parseFlags(arguments, booleans: ["--config.expand-env"])
    let listener: (endpoint: String, addr: String)?
    switch positional.first {
    case "http":
        guard positional.count == 3 else { fail("expected `pico agent http <endpoint> <addr>`") }
        listener = (positional[1], positional[2])
    case "start":
        guard positional.count == 1 else { fail("unexpected argument \(positional[1]); `pico agent start` takes its listeners from --config.path") }
        listener = nil
    default:
        fail("expected `pico agent http <endpoint> <addr>` or `pico agent start --config.path <file>`")
    }
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
    let settings: AgentSettings
    do {
        settings = try AgentOptions.load(yaml: yaml, file: file, expandEnvironment: expand, environment: environment(), flags: rest, listener: listener)
    } catch {
        fail("config: \(error)")
    }
    let log = Logger(level: settings.logLevel, subsystem: "agent")
    let loop: EventLoop
    do { loop = try EventLoop() } catch { fail("\(error)", status: 1) }
    let agent = PicoAgent(settings: settings, loop: loop, log: log)
    agent.onExit = { status in exit(status) }
    agent.start()
    nonisolated(unsafe) let unsafeAgent = agent
    runWithSignals(loop) { unsafeAgent.shutdown() }
}

func runStatus(_ arguments: [String]) -> Never {
    if arguments.isEmpty || arguments.contains("--help") || arguments.contains("-h") {
        FileHandleText.standardOutput(StatusCommand.usage)
        exit(arguments.isEmpty ? 2 : 0)
    }
    let command: StatusCommand
    do { command = try StatusCommand.parse(arguments) } catch { fail("status: \(error); see pico status --help") }
    let response: AdminClient.Response
    do {
        response = try AdminClient.get(command.server, path: command.path, timeout: command.timeout)
    } catch {
        fail("status: cannot reach the node at \(command.server): \(error)", status: 1)
    }
    let (text, status) = command.render(status: response.status, body: response.body)
    if status == 0 { FileHandleText.standardOutput(text) } else { FileHandleText.standardError("pico: status: " + text) }
    exit(status)
}

switch arguments.first {
case "server" where arguments.dropFirst().first == "status": runStatus(Array(arguments.dropFirst(2)))
case "server": runServer(Array(arguments.dropFirst()))
case "status": runStatus(Array(arguments.dropFirst()))
case "agent": runAgent(Array(arguments.dropFirst()))
case "--version", "version": FileHandleText.standardOutput(version + "\n")
case "--help", "-h", "help", nil: FileHandleText.standardOutput(mainHelp)
default: fail("unknown command \(arguments[0]); see pico --help")
}
