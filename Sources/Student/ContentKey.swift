import Crypto
import Foundation

/// A number in [0, 1) fixed by some content (the first 8 bytes of its SHA-256), the same on every machine and
/// in every run: the daemon's choices that must not depend on the order concurrent requests arrive or commit
/// in (which answers a training holds out, which requests are audited) draw on it.
public enum ContentKey {
    public static func unit(_ bytes: some Sequence<UInt8>) -> Double {
        let key = SHA256.hash(data: Data(bytes)).prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Double(key >> 11) / 0x1p53
    }
}
