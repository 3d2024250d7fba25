import Foundation
@testable import PicoRuntime
import PicoModel
import Testing

/// Drives `TLSSession` pairs in memory (both ends OpenSSL through our context settings): the
/// handshake, data both ways, ALPN, close_notify, name checks, mTLS refusals and hostile input.
@Suite("TLSSession")
struct TLSSessionTests {
    /// Moves every queued byte between the two ends until neither has more; returns what each
    /// received as plaintext.
    static func pump(_ client: TLSSession, _ server: TLSSession) throws -> (atClient: [UInt8], atServer: [UInt8], serverClosed: Bool) {
        var atClient: [UInt8] = []
        var atServer: [UInt8] = []
        var serverClosed = false
        for _ in 0..<20 {
            var toServer: [UInt8] = []
            client.takeOutput(into: &toServer)
            if !toServer.isEmpty {
                let progress = try toServer.withUnsafeBytes { try server.receive($0) { atServer.append(contentsOf: $0); return true } }
                if progress == .peerClosed { serverClosed = true }
            }
            var toClient: [UInt8] = []
            server.takeOutput(into: &toClient)
            if !toClient.isEmpty {
                _ = try toClient.withUnsafeBytes { try client.receive($0) { atClient.append(contentsOf: $0); return true } }
            }
            if toServer.isEmpty, toClient.isEmpty { break }
        }
        return (atClient, atServer, serverClosed)
    }

    @Test func test_handshake_thenDataBothWays_http11ByALPN_andCloseNotify() throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let serverContext = try TLSContext.server(TLSServerSettings(certificatePath: pki.serverCertificate, keyPath: pki.serverKey))
        let clientContext = try TLSContext.client(TLSClientSettings(rootCAsPath: pki.caCertificate))
        let server = try TLSSession(server: serverContext, peer: "client")
        let client = try TLSSession(client: clientContext, serverName: "localhost", expectedName: "localhost", peer: "server")
        try Array("GET / HTTP/1.1\r\n\r\n".utf8).withUnsafeBytes { try client.send($0) }
        let first = try Self.pump(client, server)
        #expect(server.state == .established && client.state == .established)
        #expect(String(decoding: first.atServer, as: UTF8.self) == "GET / HTTP/1.1\r\n\r\n", "sent before the handshake, delivered after it")
        #expect(server.alpn == "http/1.1" && client.alpn == "http/1.1")
        #expect(["TLSv1.2", "TLSv1.3"].contains(server.version))
        let big = [UInt8](repeating: 7, count: 100_000)
        try big.withUnsafeBytes { try server.send($0) }
        let second = try Self.pump(client, server)
        #expect(second.atClient == big, "records larger than one read, in order")
        client.close()
        #expect(try Self.pump(client, server).serverClosed)
        #expect(throws: TLSError.self) { try [UInt8]("abc".utf8).withUnsafeBytes { try client.send($0) } }
    }

    @Test func test_theClientChecksTheServersNameOrAddress() throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let serverContext = try TLSContext.server(TLSServerSettings(certificatePath: pki.serverCertificate, keyPath: pki.serverKey))
        let clientContext = try TLSContext.client(TLSClientSettings(rootCAsPath: pki.caCertificate))
        let byAddress = try TLSSession(client: clientContext, serverName: "127.0.0.1", expectedName: "127.0.0.1", peer: "server")
        _ = try Self.pump(byAddress, try TLSSession(server: serverContext, peer: "client"))
        #expect(byAddress.state == .established, "the certificate names 127.0.0.1")

        let wrong = try TLSSession(client: clientContext, serverName: "pico-1.pico", expectedName: "pico-1.pico", peer: "pico-1")
        do {
            _ = try Self.pump(wrong, try TLSSession(server: serverContext, peer: "client"))
            Issue.record("a certificate for another name was accepted")
        } catch {
            #expect("\(error)".contains("TLS handshake with pico-1"), "\(error)")
            #expect("\(error)".contains("hostname mismatch"), "\(error)")
        }
        let untrusting = try TLSContext.client(TLSClientSettings(rootCAsPath: pki.strangerCertificate))
        let stranger = try TLSSession(client: untrusting, serverName: "localhost", expectedName: "localhost", peer: "server")
        #expect(throws: TLSError.self) { _ = try Self.pump(stranger, try TLSSession(server: serverContext, peer: "client")) }
    }

    @Test func test_mTLS_requiresAClientCertificateFromTheConfiguredCAs() throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let serverContext = try TLSContext.server(TLSServerSettings(certificatePath: pki.serverCertificate, keyPath: pki.serverKey, clientCAsPath: pki.caCertificate))
        let trusted = try TLSContext.client(TLSClientSettings(rootCAsPath: pki.caCertificate, certificatePath: pki.clientCertificate, keyPath: pki.clientKey))
        let server = try TLSSession(server: serverContext, peer: "agent")
        let client = try TLSSession(client: trusted, serverName: "localhost", expectedName: "localhost", peer: "server")
        try [UInt8(1)].withUnsafeBytes { try client.send($0) }
        let exchange = try Self.pump(client, server)
        #expect(exchange.atServer == [UInt8(1)])
        #expect(server.peerCertificateVerified)

        for (settings, why) in [(TLSClientSettings(rootCAsPath: pki.caCertificate), "peer did not return a certificate"),
                                (TLSClientSettings(rootCAsPath: pki.caCertificate, certificatePath: pki.strangerCertificate, keyPath: pki.strangerKey), "certificate")] {
            let refused = try TLSSession(server: serverContext, peer: "10.0.0.9:5000")
            let client = try TLSSession(client: try TLSContext.client(settings), serverName: "localhost", expectedName: "localhost", peer: "server")
            try [UInt8(1)].withUnsafeBytes { try client.send($0) }
            do {
                let result = try Self.pump(client, refused)
                #expect(result.atServer.isEmpty, "nothing from an unverified client reaches the server")
                #expect(refused.state == .failed || client.state == .failed)
            } catch {
                #expect("\(error)".contains(why), "\(error)")
                #expect(refused.state == .failed, "the server refused it: \(error)")
            }
        }
    }

    @Test func test_garbage_andAClientHelloInOneByteWrites() throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let serverContext = try TLSContext.server(TLSServerSettings(certificatePath: pki.serverCertificate, keyPath: pki.serverKey))
        let garbage = try TLSSession(server: serverContext, peer: "10.0.0.9:5000")
        do {
            _ = try Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8).withUnsafeBytes { try garbage.receive($0) { _ in true } }
            Issue.record("plain HTTP was taken for TLS")
        } catch {
            #expect("\(error)".contains("TLS handshake with 10.0.0.9:5000"), "\(error)")
        }
        #expect(garbage.state == .failed)
        #expect(throws: TLSError.self) { _ = try [UInt8(0x16)].withUnsafeBytes { try garbage.receive($0) { _ in true } } }

        let client = try TLSSession(client: try TLSContext.client(TLSClientSettings(rootCAsPath: pki.caCertificate)),
                                    serverName: "localhost", expectedName: "localhost", peer: "server")
        let server = try TLSSession(server: serverContext, peer: "client")
        var hello: [UInt8] = []
        client.takeOutput(into: &hello)
        #expect(hello.first == 0x16, "a handshake record")
        for byte in hello { _ = try [byte].withUnsafeBytes { try server.receive($0) { _ in true } } }
        _ = try Self.pump(client, server)
        #expect(server.state == .established)
    }

    @Test func test_aContextKnowsWhenItsCertificateExpires() throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let server = try TLSContext.server(TLSServerSettings(certificatePath: pki.serverCertificate, keyPath: pki.serverKey))
        let now = Int64(Date().timeIntervalSince1970)
        let expiry = try #require(server.certificateExpiry)
        #expect(abs(expiry - (now + 2 * 86_400)) < 600, "the test certificates are issued for two days")
        #expect(try TLSContext.client(TLSClientSettings(rootCAsPath: pki.caCertificate)).certificateExpiry == nil, "no certificate of its own")
    }

    @Test func test_filesThatDoNotLoad_areNamed() throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        #expect { _ = try TLSContext.server(TLSServerSettings(certificatePath: "/nonexistent/tls.crt", keyPath: pki.serverKey)) } throws: { error in
            "\(error)".hasPrefix("loading the certificate chain /nonexistent/tls.crt: No such file or directory")
        }
        #expect { _ = try TLSContext.server(TLSServerSettings(certificatePath: pki.serverCertificate, keyPath: pki.clientKey)) } throws: { error in
            (error as? TLSError)?.description == "loading the private key \(pki.clientKey): key values mismatch"
        }
        #expect { _ = try TLSContext.server(TLSServerSettings(certificatePath: pki.serverKey, keyPath: pki.serverKey)) } throws: { error in
            (error as? TLSError)?.context == "loading the certificate chain \(pki.serverKey)"
        }
        #expect(throws: TLSError.self) { _ = try TLSContext.client(TLSClientSettings(certificatePath: pki.clientCertificate)) }
    }
}
