import Configuration
import DistillCore
import Foundation
import SystemPackage
import Teacher

/// Everything an operator can set. Sources, strongest first: command-line flags, environment
/// variables (`DISTILL_<SECTION>_<KEY>`, e.g. `DISTILL_TEACHER_BASE_URL`), the YAML config file,
/// then the defaults below (which `config/distilld.yaml` documents).
public struct DistillConfig: Sendable, Equatable {
    public var server = Server()
    public var admin = Admin()
    public var store = Store()
    public var teacher = Teacher()
    public var cache = CacheSettings()
    public var embedding = Embedding()
    public var index = IndexSettings()
    public var student = StudentSettings()
    public var distill = DistillSettings()
    public var log = Log()

    public init() {}

    public struct Server: Sendable, Equatable {
        public init() {}

        /// TCP listener for the public API; nil when disabled.
        public var http: HostPort? = HostPort(host: "127.0.0.1", port: 8080)
        /// Unix socket (mode 0600) for the public and admin APIs; nil when disabled.
        public var socket: String? = "var/distilld.sock"
        /// Larger request bodies are refused with 413.
        public var maxBodyBytes = 1 << 20
        /// On SIGTERM, in-flight requests get this long to finish.
        public var shutdownGraceSeconds = 10.0
        /// Client API keys; when any is set, the public API needs one (and it is the tenant).
        public var apiKeys: [String] = []
        /// Requests per second and burst allowed to each API key (or tenant); 0: no limit.
        public var rateLimitPerSecond = 0.0
        public var rateLimitBurst = 20
        /// A request's head must arrive within this long of the connection opening, its body
        /// within `bodyTimeoutSeconds` of its head.
        public var headerTimeoutSeconds = 10.0
        public var bodyTimeoutSeconds = 60.0
        /// Open connections per listener; more wait to be accepted.
        public var maxConnections = 512
    }

    public struct Store: Sendable, Equatable {
        public init() {}

        /// Holds the SQLite database and the daemon's lock file.
        public var dataDir = "var"
        /// Teacher-log exchanges older than this many days are deleted (hourly); 0 keeps them all.
        public var teacherLogRetentionDays = 0.0
        public var databasePath: String { (dataDir as NSString).appendingPathComponent("distill.sqlite") }
        /// A PostgreSQL store shared by several nodes (`postgres://USER@HOST:PORT/DATABASE`); nil:
        /// SQLite in `dataDir` (StoreConfig.swift).
        public var url: String?
        public var passwordEnv = "PGPASSWORD"
        public var passwordFile: String?
        public var tls = "prefer"
    }

    public struct Teacher: Sendable, Equatable {
        public init() {}

        public var baseURL = "http://127.0.0.1:9090/v1"
        /// The environment variable holding the upstream's API key (the key itself is never in a file).
        public var apiKeyEnv = "OPENAI_API_KEY"
        /// When set, replaces the model of every request sent upstream.
        public var model: String?
        public var connectTimeoutSeconds = 5.0
        public var readTimeoutSeconds = 120.0
        public var requestTimeoutSeconds = 300.0
        public var maxAttempts = 3
        public var backoffInitialMilliseconds = 250.0
        public var backoffMaxMilliseconds = 4000.0
        public var maxRetryAfterSeconds = 30.0
        public var breakerFailureThreshold = 5
        public var breakerOpenSeconds = 30.0
        public var topLogprobs = 5
        public var maxConnections = 64
    }

    public struct Embedding: Sendable, Equatable {
        public init() {}

        /// A sentence-transformers model directory: config.json, vocab.txt, model.safetensors.
        public var modelDir = "models/all-MiniLM-L6-v2"
        /// Concurrent requests are embedded together, up to this many texts.
        public var maxBatch = 32
        /// How long a lone request may wait for company (0: a batch starts at once).
        public var maxWaitMilliseconds = 0.0
        /// Threads sharing each of the encoder's matrix products.
        public var threads = 2
    }

    public struct Log: Sendable, Equatable {
        public init() {}

        /// trace, debug, info, notice, warning, error or critical.
        public var level = "info"
        /// `text` (one readable line per record) or `json` (one JSON object per line, for a log shipper).
        public var format = LogFormat.text
    }

    public struct HostPort: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `HOST:PORT`, `[IPv6]:PORT`; nil for `""` or `off`.
        static func parse(_ text: String) -> HostPort?? {
            if text.isEmpty || text == "off" { return .some(nil) }
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                (0...65535).contains(port)
            else { return nil }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { return nil }
            return .some(HostPort(host: host, port: port))
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }
}

extension DistillConfig {
    /// A configuration as loaded: the values, and every key with its effective value (for
    /// `--check-config`).
    public struct Loaded: Sendable {
        public var config: DistillConfig
        public var settings: [(key: String, value: String)]
    }

    /// Reads and validates the configuration. `overrides` are flag values by config key
    /// (e.g. `"server.http"`). `checkFiles`: also require the files the daemon will open (the
    /// embedding model), as `--check-config` and start-up do.
    ///
    /// A mistake is refused, never ignored: an unknown key in the file, a value of the wrong shape,
    /// and a `DISTILL_` variable that names no key (a typo would otherwise leave the default in
    /// force). Each error names where the bad value came from.
    public static func load(
        file: String?, environment: [String: String], overrides: [String: String] = [:], checkFiles: Bool = false
    ) async throws(ConfigError) -> Loaded {
        var providers: [any ConfigProvider] = [
            InMemoryProvider(
                name: "flags",
                values: Dictionary(uniqueKeysWithValues: overrides.map { (AbsoluteConfigKey(ConfigKey($0.key)), ConfigValue(.string($0.value), isSecret: false)) })),
            EnvironmentVariablesProvider(environmentVariables: environment).prefixKeys(with: "distill"),
        ]
        var fileKeys: Set<String> = []
        if let file {
            fileKeys = try ConfigFile.keys(of: file, known: knownKeys, lists: listKeys)
            do {
                providers.append(try await FileProvider<YAMLSnapshot>(filePath: FilePath(file)))
            } catch {
                throw .invalidFile(path: file, reason: "\(error)")
            }
        }
        let unknownVariables = environment.keys.sorted().filter {
            $0.hasPrefix("DISTILL_") && !knownVariables.contains($0) && !otherVariables.contains($0)
        }
        guard unknownVariables.isEmpty else { throw .unknownVariables(unknownVariables) }

        var fields = ConfigFields(reader: ConfigReader(providers: providers))
        do {
            let config = try DistillConfig(fields: &fields)
            if checkFiles { try config.checkFiles() }
            return Loaded(config: config, settings: fields.settings)
        } catch {
            // Name the source of the value that won: flags over the environment over the file.
            guard case .invalidValue(let key, let value, let expected, .defaults) = error else { throw error }
            let variable = ConfigFields.environmentName(key)
            let source: ConfigSource =
                if overrides[key] != nil { .commandLine }
                else if environment[variable] != nil { .environment(variable) }
                else if let file, fileKeys.contains(key) { .file(file) }
                else { .defaults }
            throw .invalidValue(key: key, value: value, expected: expected, source: source)
        }
    }

    /// Every config key, and those that take a list: what the loader reads, found by loading the defaults.
    private static let schema: (keys: Set<String>, lists: Set<String>) = {
        var fields = ConfigFields(reader: ConfigReader(provider: InMemoryProvider(values: [:])))
        _ = try? DistillConfig(fields: &fields)
        return (Set(fields.settings.map(\.key)), fields.listKeys)
    }()
    static let knownKeys = schema.keys
    static let listKeys = schema.lists

    static let knownVariables = Set(knownKeys.map(ConfigFields.environmentName))

    /// `DISTILL_` variables that are not config keys but belong to distill's other tools (cachectl,
    /// the tests) or choose the embedding kernels; a shell that sets them may still start distilld.
    private static let otherVariables: Set<String> = ["DISTILL_ADMIN_URL", "DISTILL_BIN_DIR", "DISTILL_MODEL_DIR", "DISTILL_KERNELS"]

    /// The files the configuration names must be there: the embedding model, when something embeds.
    func checkFiles() throws(ConfigError) {
        guard cache.enabled || student.enabled else { return }
        let missing = ["config.json", "vocab.txt", "model.safetensors"].filter {
            !FileManager.default.isReadableFile(atPath: (embedding.modelDir as NSString).appendingPathComponent($0))
        }
        guard missing.isEmpty else {
            throw .invalidValue(
                key: "embedding.model_dir", value: embedding.modelDir,
                expected: "a model directory with config.json, vocab.txt and model.safetensors (run scripts/bootstrap); missing: \(missing.joined(separator: ", "))")
        }
    }

    private init(fields f: inout ConfigFields) throws(ConfigError) {
        self.init()
        let defaults = DistillConfig()
        let http = try f.string("server.http", default: defaults.server.http?.description ?? "")
        guard let parsedHTTP = HostPort.parse(http) else {
            throw .invalidValue(key: "server.http", value: http, expected: "HOST:PORT, or \"off\"")
        }
        server.http = parsedHTTP
        let socket = try f.string("server.socket", default: defaults.server.socket ?? "")
        server.socket = socket.isEmpty || socket == "off" ? nil : socket
        // sockaddr_un holds 108 bytes, the terminating NUL included.
        if let socket = server.socket, socket.utf8.count > 107 {
            throw .invalidValue(key: "server.socket", value: socket, expected: "a path of at most 107 bytes")
        }
        if server.http == nil, server.socket == nil {
            throw .invalidValue(key: "server.http", value: "off", expected: "a listener: server.http and server.socket cannot both be off")
        }
        server.maxBodyBytes = try f.int("server.max_body_bytes", default: defaults.server.maxBodyBytes, 1024...(256 << 20))
        server.shutdownGraceSeconds = try f.double("server.shutdown_grace_seconds", default: defaults.server.shutdownGraceSeconds, 0...600)
        try loadAccess(&f, defaults: defaults)

        store.dataDir = try f.string("store.data_dir", default: defaults.store.dataDir)
        if store.dataDir.isEmpty { throw .invalidValue(key: "store.data_dir", value: "", expected: "a directory") }
        store.teacherLogRetentionDays = try f.double(
            "store.teacher_log_retention_days", default: defaults.store.teacherLogRetentionDays, 0...36_500)
        try loadSharedStore(&f, defaults: defaults)

        let t = defaults.teacher
        teacher.baseURL = try f.string("teacher.base_url", default: t.baseURL)
        guard let url = URL(string: teacher.baseURL), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
            throw .invalidValue(key: "teacher.base_url", value: teacher.baseURL, expected: "an http:// or https:// URL")
        }
        teacher.apiKeyEnv = try f.string("teacher.api_key_env", default: t.apiKeyEnv)
        let model = try f.string("teacher.model", default: "")
        teacher.model = model.isEmpty ? nil : model
        teacher.connectTimeoutSeconds = try f.double("teacher.connect_timeout_seconds", default: t.connectTimeoutSeconds, 0.01...600)
        teacher.readTimeoutSeconds = try f.double("teacher.read_timeout_seconds", default: t.readTimeoutSeconds, 0.01...3600)
        teacher.requestTimeoutSeconds = try f.double("teacher.request_timeout_seconds", default: t.requestTimeoutSeconds, 0.01...3600)
        teacher.maxAttempts = try f.int("teacher.max_attempts", default: t.maxAttempts, 1...10)
        teacher.backoffInitialMilliseconds = try f.double("teacher.backoff_initial_ms", default: t.backoffInitialMilliseconds, 0...60_000)
        teacher.backoffMaxMilliseconds = try f.double("teacher.backoff_max_ms", default: t.backoffMaxMilliseconds, 0...600_000)
        teacher.maxRetryAfterSeconds = try f.double("teacher.max_retry_after_seconds", default: t.maxRetryAfterSeconds, 0...3600)
        teacher.breakerFailureThreshold = try f.int("teacher.breaker_failure_threshold", default: t.breakerFailureThreshold, 1...1000)
        teacher.breakerOpenSeconds = try f.double("teacher.breaker_open_seconds", default: t.breakerOpenSeconds, 0.01...3600)
        teacher.topLogprobs = try f.int("teacher.top_logprobs", default: t.topLogprobs, 0...20)
        teacher.maxConnections = try f.int("teacher.max_connections", default: t.maxConnections, 1...4096)

        let c = defaults.cache
        cache.enabled = try f.bool("cache.enabled", default: c.enabled)
        cache.similarityThreshold = try f.double("cache.similarity_threshold", default: c.similarityThreshold, 0...1)
        cache.ttlSeconds = try f.double("cache.ttl_seconds", default: c.ttlSeconds, 0...1e10)
        cache.maxEntries = try f.int("cache.max_entries", default: c.maxEntries, 1...100_000_000)
        cache.hotAnswerBytes = try f.int("cache.hot_answer_bytes", default: c.hotAnswerBytes, 0...(1 << 40))
        cache.temperatureCeiling = try f.double("cache.temperature_ceiling", default: c.temperatureCeiling, 0...2)
        cache.hitFlushSeconds = try f.double("cache.hit_flush_seconds", default: c.hitFlushSeconds, 0.01...3600)
        cache.snapshotIntervalSeconds = try f.double("cache.snapshot_interval_seconds", default: c.snapshotIntervalSeconds, 1...86400)
        cache.maxError = try f.double("cache.max_error", default: c.maxError, 0...1)
        if !(cache.maxError > 0 && cache.maxError < 1) {
            throw .invalidValue(
                key: "cache.max_error", value: String(cache.maxError), expected: "a share strictly between 0 and 1, e.g. 0.05")
        }
        cache.exploreShare = try f.double("cache.explore_share", default: c.exploreShare, 0...1)

        let e = defaults.embedding
        embedding.modelDir = try f.string("embedding.model_dir", default: e.modelDir)
        embedding.maxBatch = try f.int("embedding.max_batch", default: e.maxBatch, 1...1024)
        embedding.maxWaitMilliseconds = try f.double("embedding.max_wait_ms", default: e.maxWaitMilliseconds, 0...1000)
        embedding.threads = try f.int("embedding.threads", default: e.threads, 1...256)

        let i = defaults.index
        index.m = try f.int("index.m", default: i.m, 2...128)
        index.efConstruction = try f.int("index.ef_construction", default: i.efConstruction, 8...4096)
        index.efSearch = try f.int("index.ef_search", default: i.efSearch, 1...4096)
        index.flatUntil = try f.int("index.flat_until", default: i.flatUntil, 0...10_000_000)

        let s = defaults.student
        student.enabled = try f.bool("student.enabled", default: s.enabled)
        student.targetAgreement = try f.double("student.target_agreement", default: s.targetAgreement, 0.5...1)
        student.auditShare = try f.double("student.audit_share", default: s.auditShare, 0...1)
        student.auditWindow = try f.int("student.audit_window", default: s.auditWindow, 10...100_000)
        student.minSupport = try f.int("student.min_support", default: s.minSupport, 1...10_000)

        let d = defaults.distill
        distill.enabled = try f.bool("distill.enabled", default: d.enabled)
        distill.intervalSeconds = try f.double("distill.interval_seconds", default: d.intervalSeconds, 0.1...86400)
        distill.minNewRows = try f.int("distill.min_new_rows", default: d.minNewRows, 1...10_000_000)
        distill.minRows = try f.int("distill.min_rows", default: d.minRows, 100...10_000_000)
        distill.maxRows = try f.int("distill.max_rows", default: d.maxRows, 10...10_000_000)
        distill.holdoutShare = try f.double("distill.holdout_share", default: d.holdoutShare, 0.05...0.5)
        if distill.maxRows < distill.minRows {
            throw .invalidValue(key: "distill.max_rows", value: String(distill.maxRows), expected: "at least distill.min_rows (\(distill.minRows))")
        }

        log.level = try f.string("log.level", default: defaults.log.level)
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard levels.contains(log.level) else {
            throw .invalidValue(key: "log.level", value: log.level, expected: "one of \(levels.joined(separator: ", "))")
        }
        let format = try f.string("log.format", default: defaults.log.format.rawValue)
        guard let parsedFormat = LogFormat(rawValue: format) else {
            throw .invalidValue(key: "log.format", value: format, expected: "text or json")
        }
        log.format = parsedFormat
    }

    /// The teacher client's settings, with the API key read from the named environment variable.
    public func teacherConfiguration(environment: [String: String]) -> TeacherConfiguration {
        let key = environment[teacher.apiKeyEnv].flatMap { $0.isEmpty ? nil : $0 }
        return TeacherConfiguration(
            baseURL: teacher.baseURL, apiKey: key, model: teacher.model,
            connectTimeout: .seconds(teacher.connectTimeoutSeconds), readTimeout: .seconds(teacher.readTimeoutSeconds),
            requestTimeout: .seconds(teacher.requestTimeoutSeconds), maxAttempts: teacher.maxAttempts,
            backoffInitial: .milliseconds(teacher.backoffInitialMilliseconds),
            backoffMax: .milliseconds(teacher.backoffMaxMilliseconds),
            maxRetryAfter: .seconds(teacher.maxRetryAfterSeconds),
            breakerFailureThreshold: teacher.breakerFailureThreshold,
            breakerOpenDuration: .seconds(teacher.breakerOpenSeconds), topLogprobs: teacher.topLogprobs,
            maxConnections: teacher.maxConnections)
    }
}

public enum ConfigError: Error, Equatable, CustomStringConvertible {
    /// `source` is filled in by `DistillConfig.load`: where the value that won came from.
    case invalidValue(key: String, value: String, expected: String, source: ConfigSource = .defaults)
    case unknownKeys([String], file: String)
    case unknownVariables([String])
    /// The file cannot be read at all.
    case unreadableFile(path: String, reason: String)
    /// The file is read but is no configuration: empty, not YAML, not a mapping of sections.
    case invalidFile(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidValue(let key, let value, let expected, let source):
            "\(source.prefix)\(key) must be \(expected); got \"\(value.prefix(200))\""
        case .unknownKeys(let keys, let file):
            "\(file): unknown key\(keys.count == 1 ? "" : "s") "
                + keys.map { key in
                    DistillConfig.knownKeys.closest(to: key).map { "\(key) (did you mean \($0)?)" } ?? key
                }.joined(separator: ", ")
        case .unknownVariables(let variables):
            "unknown environment variable\(variables.count == 1 ? "" : "s") "
                + variables.map { variable in
                    DistillConfig.knownVariables.closest(to: variable).map { "\(variable) (did you mean \($0)?)" } ?? variable
                }.joined(separator: ", ")
                + ": DISTILL_ variables must name a config key (docs/operations.md)"
        case .unreadableFile(let path, let reason):
            "cannot read the config file \(path): \(reason)"
        case .invalidFile(let path, let reason):
            "\(path): \(reason)"
        }
    }
}

/// Where a setting's value came from.
public enum ConfigSource: Sendable, Equatable {
    case commandLine
    case environment(String)
    case file(String)
    case defaults

    /// How an error message starts: the source, as a compiler names a file.
    var prefix: String {
        switch self {
        case .commandLine: "command line: "
        case .environment(let variable): "\(variable): "
        case .file(let path): "\(path): "
        case .defaults: ""
        }
    }
}

extension Set<String> {
    /// The member nearest to a misspelling of it (a quarter of its characters wrong at most).
    func closest(to word: String) -> String? {
        let limit = Swift.max(2, word.count / 4)
        return self.map { ($0, editDistance($0, word)) }.filter { $0.1 <= limit }.min { ($0.1, $0.0) < ($1.1, $1.0) }?.0
    }
}

/// Levenshtein distance: insertions, deletions and substitutions.
private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in a.indices {
        var current = [i + 1]
        for j in b.indices {
            current.append(Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (a[i] == b[j] ? 0 : 1)))
        }
        previous = current
    }
    return previous[b.count]
}

/// Reads typed values and records each key with its effective value, so that unknown keys can
/// be reported and the whole configuration shown.
struct ConfigFields {
    let reader: ConfigReader
    private(set) var settings: [(key: String, value: String)] = []
    private(set) var listKeys: Set<String> = []

    init(reader: ConfigReader) { self.reader = reader }

    static func environmentName(_ key: String) -> String {
        "DISTILL_" + key.uppercased().map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
    }

    /// A secret (`secret: true`) is shown as set or not, never as its value.
    mutating func string(_ key: String, default defaultValue: String, secret: Bool = false) throws(ConfigError) -> String {
        let value = reader.string(forKey: ConfigKey(key), isSecret: secret) ?? defaultValue
        settings.append((key, secret ? (value.isEmpty ? "" : "<redacted>") : value))
        return value
    }

    /// A list: a YAML sequence, or comma-separated in the environment.
    mutating func strings(_ key: String, secret: Bool = false) throws(ConfigError) -> [String] {
        listKeys.insert(key)
        var values: [String] = []
        if let read = reader.stringArray(forKey: ConfigKey(key), isSecret: secret) {
            values = read
        } else if reader.string(forKey: ConfigKey(key), isSecret: secret) != nil {
            throw .invalidValue(key: key, value: secret ? "<redacted>" : "", expected: "a list")
        }
        settings.append((key, secret ? "<\(values.count) redacted>" : values.joined(separator: ",")))
        return values
    }

    mutating func bool(_ key: String, default defaultValue: Bool) throws(ConfigError) -> Bool {
        var value = defaultValue
        if let read = reader.bool(forKey: ConfigKey(key)) {
            value = read
        } else if let raw = reader.string(forKey: ConfigKey(key)) {
            throw .invalidValue(key: key, value: raw, expected: "true or false")
        }
        settings.append((key, String(value)))
        return value
    }

    mutating func int(_ key: String, default defaultValue: Int, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let expected = "an integer from \(range.lowerBound) to \(range.upperBound)"
        var value = defaultValue
        if let read = reader.int(forKey: ConfigKey(key)) {
            guard range.contains(read) else { throw .invalidValue(key: key, value: String(read), expected: expected) }
            value = read
        } else if let raw = reader.string(forKey: ConfigKey(key)) {
            throw .invalidValue(key: key, value: raw, expected: expected)
        }
        settings.append((key, String(value)))
        return value
    }

    mutating func double(_ key: String, default defaultValue: Double, _ range: ClosedRange<Double>) throws(ConfigError) -> Double {
        let expected = "a number from \(range.lowerBound.formatted()) to \(range.upperBound.formatted())"
        var value = defaultValue
        if let read = reader.double(forKey: ConfigKey(key)) ?? reader.int(forKey: ConfigKey(key)).map(Double.init) {
            guard range.contains(read), read.isFinite else {
                throw .invalidValue(key: key, value: String(read), expected: expected)
            }
            value = read
        } else if let raw = reader.string(forKey: ConfigKey(key)) {
            throw .invalidValue(key: key, value: raw, expected: expected)
        }
        settings.append((key, value.formatted(.number.grouping(.never))))
        return value
    }
}
