import COpenSSL
import PicoModel

/// AES-256-GCM from OpenSSL, for gossip: a fresh random 96-bit nonce per message (OpenSSL's
/// CSPRNG), a 128-bit tag. With random nonces one key should seal fewer than 2^32 messages
/// (NIST SP 800-38D §8.3): at 100 datagrams a second that is over a year, and keys rotate far
/// sooner. Stateless, so every loop may use it at once.
public struct AESGCMGossipCipher: GossipCipher {
    public init() {}

    public func seal(_ plaintext: [UInt8], key: GossipKey, associatedData: [UInt8]) -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: GossipCipherLayout.nonceLength)
        // Without randomness no nonce is safe: sealing nothing (the message is lost, like a
        // dropped datagram) beats reusing one.
        guard RAND_bytes(&nonce, Int32(nonce.count)) == 1 else { return [] }
        guard let context = EVP_CIPHER_CTX_new() else { return [] }
        defer { EVP_CIPHER_CTX_free(context) }
        var output = [UInt8](repeating: 0, count: plaintext.count + 16)
        var written: Int32 = 0
        var total = 0
        var tag = [UInt8](repeating: 0, count: GossipCipherLayout.tagLength)
        guard EVP_EncryptInit_ex(context, EVP_aes_256_gcm(), nil, key.bytes, nonce) == 1,
              associatedData.isEmpty || EVP_EncryptUpdate(context, nil, &written, associatedData, Int32(associatedData.count)) == 1,
              EVP_EncryptUpdate(context, &output, &written, plaintext, Int32(plaintext.count)) == 1 else { return [] }
        total = Int(written)
        let finished: Bool = output.withUnsafeMutableBufferPointer { buffer in
            EVP_EncryptFinal_ex(context, buffer.baseAddress! + total, &written) == 1
        }
        guard finished else { return [] }
        total += Int(written)
        guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, Int32(tag.count), &tag) == 1 else { return [] }
        return nonce + output.prefix(total) + tag
    }

    public func open(_ sealed: ArraySlice<UInt8>, key: GossipKey, associatedData: [UInt8]) -> [UInt8]? {
        guard sealed.count >= GossipCipherLayout.overhead, sealed.count - GossipCipherLayout.overhead <= Int(Int32.max) - 16 else { return nil }
        let nonce = Array(sealed.prefix(GossipCipherLayout.nonceLength))
        let ciphertext = Array(sealed.dropFirst(GossipCipherLayout.nonceLength).dropLast(GossipCipherLayout.tagLength))
        var tag = Array(sealed.suffix(GossipCipherLayout.tagLength))
        guard let context = EVP_CIPHER_CTX_new() else { return nil }
        defer {
            EVP_CIPHER_CTX_free(context)
            ERR_clear_error()
        }
        var output = [UInt8](repeating: 0, count: ciphertext.count + 16)
        var written: Int32 = 0
        guard EVP_DecryptInit_ex(context, EVP_aes_256_gcm(), nil, key.bytes, nonce) == 1,
              associatedData.isEmpty || EVP_DecryptUpdate(context, nil, &written, associatedData, Int32(associatedData.count)) == 1,
              EVP_DecryptUpdate(context, &output, &written, ciphertext, Int32(ciphertext.count)) == 1 else { return nil }
        let total = Int(written)
        guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, Int32(tag.count), &tag) == 1 else { return nil }
        let verified: Bool = output.withUnsafeMutableBufferPointer { buffer in
            EVP_DecryptFinal_ex(context, buffer.baseAddress! + total, &written) == 1
        }
        return verified ? Array(output.prefix(total)) : nil
    }
}
