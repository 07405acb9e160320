import Foundation

/// How distill talks to the teacher: any OpenAI-compatible chat-completions upstream.
public struct TeacherConfiguration: Sendable, Equatable {
    /// e.g. `https://api.openai.com/v1`; requests go to `<baseURL>/chat/completions`.
    public var baseURL: String
    /// Sent as `Authorization: Bearer …` when set. Never logged.
    public var apiKey: String?
    /// When set, replaces the `model` of every request sent upstream.
    public var model: String?

    public var connectTimeout: Duration
    /// Longest silence allowed while waiting for (or reading) the answer.
    public var readTimeout: Duration
    /// Budget for one request, retries and backoff included.
    public var requestTimeout: Duration

    /// Attempts per request (1 = no retry). Retried: connect errors, 429, 5xx.
    public var maxAttempts: Int
    public var backoffInitial: Duration
    public var backoffMax: Duration
    /// A `Retry-After` longer than this is not waited for: the error goes back to the client.
    public var maxRetryAfter: Duration

    /// Consecutive failed requests that open the circuit breaker (a request that used up its
    /// attempts is one failure).
    public var breakerFailureThreshold: Int
    /// How long an open breaker refuses calls before letting one probe through.
    public var breakerOpenDuration: Duration

    /// Ask the upstream for `logprobs` with this many `top_logprobs` (0: don't ask). Stripped from
    /// the answer again when the client did not ask for them itself.
    public var topLogprobs: Int
    public var maxConnections: Int

    public init(
        baseURL: String, apiKey: String? = nil, model: String? = nil, connectTimeout: Duration = .seconds(5),
        readTimeout: Duration = .seconds(120), requestTimeout: Duration = .seconds(300), maxAttempts: Int = 3,
        backoffInitial: Duration = .milliseconds(250), backoffMax: Duration = .seconds(4),
        maxRetryAfter: Duration = .seconds(30), breakerFailureThreshold: Int = 5,
        breakerOpenDuration: Duration = .seconds(30), topLogprobs: Int = 5, maxConnections: Int = 64
    ) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.model = model
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
        self.requestTimeout = requestTimeout
        self.maxAttempts = maxAttempts
        self.backoffInitial = backoffInitial
        self.backoffMax = backoffMax
        self.maxRetryAfter = maxRetryAfter
        self.breakerFailureThreshold = breakerFailureThreshold
        self.breakerOpenDuration = breakerOpenDuration
        self.topLogprobs = topLogprobs
        self.maxConnections = maxConnections
    }

    /// `HOST:PORT` of the upstream, as errors name it.
    public var address: String {
        guard let url = URL(string: baseURL), let host = url.host else { return baseURL }
        let port = url.port ?? (url.scheme == "https" ? 443 : 80)
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    var chatCompletionsURL: String { endpoint("chat/completions") }
    var modelsURL: String { endpoint("models") }

    private func endpoint(_ path: String) -> String {
        (baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL) + "/" + path
    }
}
