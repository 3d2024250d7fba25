import Foundation

/// A throw-away PKI made with the openssl command line for one test run: a CA, a server
/// certificate for `localhost` and 127.0.0.1, a client certificate, and a second CA nobody trusts.
struct TestPKI {
    let directory: String
    var caCertificate: String { self.directory + "/ca.crt" }
    var serverCertificate: String { self.directory + "/server.crt" }
    var serverKey: String { self.directory + "/server.key" }
    var clientCertificate: String { self.directory + "/client.crt" }
    var clientKey: String { self.directory + "/client.key" }
    var strangerCertificate: String { self.directory + "/stranger.crt" }
    var strangerKey: String { self.directory + "/stranger.key" }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func make() throws -> TestPKI {
        let directory = NSTemporaryDirectory() + "pico-pki-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pki = TestPKI(directory: directory)
        try pki.run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                     "-subj", "/CN=Pico Test CA", "-keyout", "ca.key", "-out", "ca.crt"])
        try pki.run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                     "-subj", "/CN=Stranger CA", "-keyout", "stranger-ca.key", "-out", "stranger-ca.crt"])
        try pki.issue("server", by: "ca", subject: "/CN=localhost", extensions: "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
        try pki.issue("client", by: "ca", subject: "/CN=agent-1", extensions: "extendedKeyUsage=clientAuth")
        try pki.issue("stranger", by: "stranger-ca", subject: "/CN=stranger", extensions: "extendedKeyUsage=clientAuth")
        return pki
    }

    private func issue(_ name: String, by ca: String, subject: String, extensions: String) throws {
        try extensions.write(toFile: "\(self.directory)/\(name).ext", atomically: true, encoding: .utf8)
        try self.run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", subject,
                      "-keyout", "\(name).key", "-out", "\(name).csr"])
        try self.run(["x509", "-req", "-in", "\(name).csr", "-CA", "\(ca).crt", "-CAkey", "\(ca).key", "-CAcreateserial",
                      "-days", "2", "-extfile", "\(name).ext", "-out", "\(name).crt"])
    }

    func run(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: self.directory)
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw Failure(description: "openssl \(arguments.joined(separator: " ")): \(text)")
        }
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}
