import Glibc

/// A child process started with `posix_spawn`, its output appended to a log file.
public final class ChildProcess {
    /// Its process ID.
    public let pid: pid_t
    /// Set once it exited (the status `waitpid` reported, decoded).
    public private(set) var exitStatus: Int32?

    /// Starts `executable` with `arguments` (without the program name), stdout and stderr to
    /// `logPath`.
    public init(executable: String, arguments: [String], logPath: String) throws(SocketError) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard status == 0 else { throw SocketError("posix_spawn \(executable)", code: status) }
        self.pid = pid
    }

    /// Sends `signal` (ignored once it exited).
    public func send(_ signal: Int32) {
        guard self.exitStatus == nil else { return }
        kill(self.pid, signal)
    }

    /// Checks without blocking whether it exited; true once it has.
    @discardableResult
    public func poll() -> Bool {
        guard self.exitStatus == nil else { return true }
        var status: Int32 = 0
        guard waitpid(self.pid, &status, WNOHANG) == self.pid else { return false }
        // WIFEXITED / WEXITSTATUS, spelled out (they are macros in C).
        self.exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return true
    }
}
