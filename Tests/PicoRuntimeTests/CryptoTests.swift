import PicoModel
@testable import PicoRuntime
import Testing

@Suite("Crypto")
struct CryptoTests {
    static let key = GossipKey(bytes: (0..<32).map { UInt8($0) })!
    static let other = GossipKey(bytes: [UInt8](repeating: 7, count: 32))!

    @Test func test_aesGCM_opensWhatItSealed_onlyWithItsKeyAndAssociatedData_andNoncesDiffer() {
        let cipher = AESGCMGossipCipher()
        let plain = Array("gossip".utf8) + [UInt8](repeating: 0xAB, count: 1_400)
        let sealed = cipher.seal(plain, key: Self.key, associatedData: [1, 2, 3])
        #expect(sealed.count == plain.count + GossipCipherLayout.overhead)
        #expect(cipher.open(sealed[...], key: Self.key, associatedData: [1, 2, 3]) == plain)
        #expect(cipher.open(sealed[...], key: Self.other, associatedData: [1, 2, 3]) == nil)
        #expect(cipher.open(sealed[...], key: Self.key, associatedData: [1, 2, 4]) == nil)
        for index in [0, 11, 12, sealed.count / 2, sealed.count - 16, sealed.count - 1] {
            var flipped = sealed
            flipped[index] ^= 0x80
            #expect(cipher.open(flipped[...], key: Self.key, associatedData: [1, 2, 3]) == nil, "bit flipped at \(index)")
        }
        #expect(cipher.open(sealed.prefix(27), key: Self.key, associatedData: [1, 2, 3]) == nil)
        #expect(cipher.seal(plain, key: Self.key, associatedData: []).prefix(12) != cipher.seal(plain, key: Self.key, associatedData: []).prefix(12))
        #expect(cipher.open(cipher.seal([], key: Self.key, associatedData: [])[...], key: Self.key, associatedData: []) == [])
    }

    @Test func test_theTokenCache_isKeyedByBytes_notByUnicodeEquivalence() {
        let cache = TokenCache(capacity: 2)
        let claims = TokenClaims(expiresAt: 99)
        cache.remember("a.K.c", claims: claims)
        #expect(cache.claims(of: "a.K.c") == claims)
        #expect(cache.claims(of: "a.\u{212A}.c") == nil, "the Kelvin sign is equivalent to K as a String, not as bytes")
        cache.remember("b", claims: claims)
        cache.remember("c", claims: claims)
        #expect(cache.count == 2 && cache.claims(of: "a.K.c") == nil, "the oldest goes at capacity")
    }

    @Test func test_forwardProofs_verifyUnderAnyKeyOfTheRing_withinTheWindow_andFollowARotation() {
        let signer = ForwardSigner(keyring: GossipKeyring(keys: [Self.key])!)
        let proof = signer.proof(method: "GET", target: "/a", endpoint: "svc", now: 1_000)!
        #expect(signer.check(proof, method: "GET", target: "/a", endpoint: "svc", now: 1_030) == .verified)
        #expect(signer.check(proof, method: "POST", target: "/a", endpoint: "svc", now: 1_030) == .refused)
        #expect(signer.check(proof, method: "GET", target: "/b", endpoint: "svc", now: 1_030) == .refused)
        #expect(signer.check(proof, method: "GET", target: "/a", endpoint: "other", now: 1_030) == .refused)
        #expect(signer.check(proof, method: "GET", target: "/a", endpoint: "svc", now: 1_061) == .refused)
        #expect(signer.check(proof, method: "GET", target: "/a", endpoint: "svc", now: 940) == .verified, "made 60 s ahead of this clock")
        #expect(signer.check(proof, method: "GET", target: "/a", endpoint: "svc", now: 939) == .refused, "made 61 s ahead of this clock")
        #expect(signer.check(nil, method: "GET", target: "/a", endpoint: "svc", now: 1_000) == .refused)
        let stranger = ForwardSigner(keyring: GossipKeyring(keys: [Self.other])!)
        #expect(stranger.check(proof, method: "GET", target: "/a", endpoint: "svc", now: 1_000) == .refused)
        stranger.update(GossipKeyring(keys: [Self.other, Self.key])!)
        #expect(stranger.check(proof, method: "GET", target: "/a", endpoint: "svc", now: 1_000) == .verified)
    }
}
