import Foundation
import PicoModel
@testable import PicoRuntime
import Testing

@Suite("TLS credentials")
struct TLSCredentialsTests {
    /// Copies `name`'s certificate and key from the PKI into `directory` as tls.crt and tls.key.
    func install(_ pki: TestPKI, _ name: String, key: String? = nil, in directory: String) throws {
        for (source, target) in [("\(name).crt", "tls.crt"), ("\(key ?? name).key", "tls.key")] {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(pki.directory)/\(source)"))
            try bytes.write(to: URL(fileURLWithPath: "\(directory)/\(target)"))
        }
    }

    @Test func test_newFilesLoadOnceTheyHoldStill_brokenOnesKeepTheOld_andASignalLoadsAtOnce() throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let directory = pki.directory + "/rotating"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try self.install(pki, "server", in: directory)
        let settings = TLSServerSettings(certificatePath: "\(directory)/tls.crt", keyPath: "\(directory)/tls.key")
        let credentials = try TLSCredentials.server(settings, name: "proxy.tls")
        let first = credentials.current
        guard case .unchanged = credentials.checkForReload(.periodic) else { Issue.record("nothing changed"); return }
        try self.install(pki, "client", in: directory)
        guard case .unchanged = credentials.checkForReload(.periodic) else { Issue.record("a first sight only settles"); return }
        #expect(credentials.current === first)
        guard case .loaded(let expiry) = credentials.checkForReload(.periodic) else { Issue.record("the second sight loads"); return }
        #expect(credentials.current !== first)
        #expect(expiry != nil && expiry == credentials.current.certificateExpiry)
        let second = credentials.current
        // A key that does not match its certificate: refused, the old context stays, and periodic
        // checks do not try the same files again.
        try self.install(pki, "client", key: "server", in: directory)
        _ = credentials.checkForReload(.periodic)
        guard case .refused(let error) = credentials.checkForReload(.periodic) else { Issue.record("mismatched files are refused"); return }
        #expect("\(error)".contains("key values mismatch"))
        #expect(credentials.current === second)
        guard case .unchanged = credentials.checkForReload(.periodic) else { Issue.record("not tried again"); return }
        // SIGHUP loads at once: here the first pair again.
        try self.install(pki, "server", in: directory)
        guard case .loaded = credentials.checkForReload(.signal) else { Issue.record("a signal loads at once"); return }
        #expect(credentials.current !== second)
        // A file that cannot be read fingerprints differently from an empty one, and one over
        // the size bound like an unreadable one.
        _ = FileManager.default.createFile(atPath: "\(directory)/empty", contents: Data())
        #expect(TLSCredentials.fingerprint(["\(directory)/missing"]) != TLSCredentials.fingerprint(["\(directory)/empty"]))
        #expect(TLSCredentials.fingerprint(["\(directory)/tls.crt"]) == CertificateReload.fingerprint([Array(try Data(contentsOf: URL(fileURLWithPath: "\(directory)/tls.crt")))]))
    }
}
