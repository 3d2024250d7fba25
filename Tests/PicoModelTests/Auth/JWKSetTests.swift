@testable import PicoModel
import Testing

@Suite("JWK sets")
struct JWKSetTests {
    static let n = Base64URL.encode([UInt8](repeating: 0xC5, count: 256))
    static let x32 = Base64URL.encode([UInt8](repeating: 1, count: 32))
    static let x48 = Base64URL.encode([UInt8](repeating: 2, count: 48))

    func parse(_ text: String) -> Result<JWKSet.Contents, JWKSet.Refusal> { JWKSet.parse(Array(text.utf8)) }

    @Test func test_usableKeysAreRead_andEveryOtherIsSkippedWithAReason() throws {
        let text = """
        {"keys": [
          {"kty": "RSA", "kid": "r", "alg": "RS256", "use": "sig", "n": "\(Self.n)", "e": "AQAB"},
          {"kty": "EC", "kid": "e", "crv": "P-256", "x": "\(Self.x32)", "y": "\(Self.x32)"},
          {"kty": "EC", "kid": "e384", "crv": "P-384", "x": "\(Self.x48)", "y": "\(Self.x48)"},
          {"kty": "OKP", "kid": "o", "crv": "Ed25519", "x": "\(Self.x32)"},
          {"kty": "oct", "kid": "s", "k": "c2VjcmV0"},
          {"kty": "RSA", "kid": "enc", "use": "enc", "n": "\(Self.n)", "e": "AQAB"},
          {"kty": "RSA", "kid": "small", "n": "\(Base64URL.encode([UInt8](repeating: 9, count: 128)))", "e": "AQAB"},
          {"kty": "EC", "kid": "bad-alg", "alg": "RS256", "crv": "P-256", "x": "\(Self.x32)", "y": "\(Self.x32)"},
          {"kty": "EC", "kid": "short", "crv": "P-384", "x": "\(Self.x32)", "y": "\(Self.x32)"},
          {"kty": "OKP", "kid": "x448", "crv": "X448", "x": "\(Self.x32)"},
          {"kty": "RSA", "kid": "r", "n": "\(Self.n)", "e": "AQAB"},
          {"kid": "none"},
          "not an object"
        ]}
        """
        let contents = try self.parse(text).get()
        #expect(contents.keys.map(\.keyID) == ["r", "e", "e384", "o"])
        #expect(contents.keys.map(\.kind) == [.rsa, .ecP256, .ecP384, .ed25519])
        #expect(contents.keys[0].algorithm == .rs256)
        #expect(contents.skipped.count == 9)
        for reason in ["symmetric", "use enc", "1024 bits", "does not fit", "48 bytes", "Ed25519", "repeats", "kty missing", "not an object"] {
            #expect(contents.skipped.contains { $0.contains(reason) }, "\(reason)")
        }
    }

    @Test func test_keysThatVerifyForgeries_areSkipped_weakRSAExponentsAndSmallOrderEd25519() throws {
        let identity = Base64URL.encode([1] + [UInt8](repeating: 0, count: 31))
        let negatedIdentitySign = Base64URL.encode([1] + [UInt8](repeating: 0, count: 30) + [0x80])
        let nonCanonical = Base64URL.encode([0xEE] + [UInt8](repeating: 0xFF, count: 30) + [0x7F])
        let text = """
        {"keys": [
          {"kty": "RSA", "kid": "e1", "n": "\(Self.n)", "e": "AQ"},
          {"kty": "RSA", "kid": "e2", "n": "\(Self.n)", "e": "Ag"},
          {"kty": "RSA", "kid": "e3", "n": "\(Self.n)", "e": "Aw"},
          {"kty": "OKP", "kid": "identity", "crv": "Ed25519", "x": "\(identity)"},
          {"kty": "OKP", "kid": "identity-signed", "crv": "Ed25519", "x": "\(negatedIdentitySign)"},
          {"kty": "OKP", "kid": "y-above-p", "crv": "Ed25519", "x": "\(nonCanonical)"},
          {"kty": "OKP", "kid": "fine", "crv": "Ed25519", "x": "\(Self.x32)"}
        ]}
        """
        let contents = try self.parse(text).get()
        #expect(contents.keys.map(\.keyID) == ["e3", "fine"])
        #expect(contents.skipped.filter { $0.contains("exponent") }.count == 2)
        #expect(contents.skipped.filter { $0.contains("small order") }.count == 3)
        for y in JWKSet.smallOrderY { #expect(JWKSet.isWeakEd25519(y)) }
    }

    @Test func test_aSetThatIsNotOne_orTooLarge_orTooLong_isRefusedWhole() {
        for text in ["", "[]", #"{"key": []}"#, #"{"keys": {}}"#, String(repeating: "[", count: 50)] {
            #expect((try? self.parse(text).get()) == nil, "\(text.prefix(20))")
        }
        let many = #"{"keys": ["# + Array(repeating: #"{"kty": "oct"}"#, count: JWKSet.maxKeys + 1).joined(separator: ",") + "]}"
        #expect((try? self.parse(many).get()) == nil)
        let large = #"{"keys": [], "x": ""# + String(repeating: "a", count: JWKSet.maxBytes) + #""}"#
        #expect((try? self.parse(large).get()) == nil)
        #expect((try? self.parse(#"{"keys": []}"#).get())?.keys.isEmpty == true)
    }
}
