extension DistillConfig {
    public struct Admin: Sendable, Equatable {
        public init() {}

        /// When set, the admin API is also served on TCP, to requests that present it as a bearer
        /// token; without it the admin API is on the Unix socket only.
        public var token: String?
    }

    /// The keys that decide who may call the APIs, and how often.
    mutating func loadAccess(_ f: inout ConfigFields, defaults: DistillConfig) throws(ConfigError) {
        server.apiKeys = try f.strings("server.api_keys", secret: true)
        for key in server.apiKeys where !Self.isUsableSecret(key, minimumLength: 16) {
            throw .invalidValue(
                key: "server.api_keys", value: "<redacted>",
                expected: "keys of at least 16 printable ASCII characters without spaces")
        }
        server.rateLimitPerSecond = try f.double(
            "server.rate_limit_per_second", default: defaults.server.rateLimitPerSecond, 0...1_000_000)
        server.rateLimitBurst = try f.int("server.rate_limit_burst", default: defaults.server.rateLimitBurst, 1...1_000_000)
        server.headerTimeoutSeconds = try f.double(
            "server.header_timeout_seconds", default: defaults.server.headerTimeoutSeconds, 0.1...600)
        server.bodyTimeoutSeconds = try f.double("server.body_timeout_seconds", default: defaults.server.bodyTimeoutSeconds, 0.1...3600)
        server.maxConnections = try f.int("server.max_connections", default: defaults.server.maxConnections, 1...1_000_000)

        let token = try f.string("admin.token", default: "", secret: true)
        // Anyone who can reach the TCP port can try tokens: a short one could be guessed.
        guard token.isEmpty || Self.isUsableSecret(token, minimumLength: 32) else {
            throw .invalidValue(
                key: "admin.token", value: "<redacted>", expected: "at least 32 printable ASCII characters without spaces")
        }
        admin.token = token.isEmpty ? nil : token
    }

    /// A secret that travels in an `Authorization` header: visible ASCII, long enough.
    private static func isUsableSecret(_ secret: String, minimumLength: Int) -> Bool {
        secret.utf8.count >= minimumLength && secret.utf8.allSatisfy { (0x21...0x7E).contains($0) }
    }
}
