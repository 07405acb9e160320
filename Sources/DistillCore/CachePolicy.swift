import DistillAPI

/// Whether a request may read and write the cache.
struct CachePolicy: Equatable {
    var read = true
    var write = true
    /// Why it may not, in the order found.
    var bypassReasons: [CacheBypassReason] = []

    init(request: ChatRequest, info: RequestInfo, temperatureCeiling: Double) {
        // Asking for variety: a cached answer would be the same answer every time.
        if let temperature = request.temperature, temperature > temperatureCeiling { bypass(.temperature, read: true, write: true) }
        if request.choiceCount > 1 { bypass(.n, read: true, write: true) }
        // A cached or student answer has no log probabilities to give; its answer is still worth keeping.
        if request.wantsLogprobs { bypass(.logprobs, read: true, write: false) }
        let directives = Set(
            (info.cacheControl ?? "").lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        if directives.contains("no-cache") { bypass(.noCache, read: true, write: false) }
        if directives.contains("no-store") { bypass(.noStore, read: false, write: true) }
        // Ask the teacher again and replace what is cached.
        if info.cacheDirective?.lowercased() == "refresh" { bypass(.refresh, read: true, write: false) }
    }

    private mutating func bypass(_ reason: CacheBypassReason, read skipRead: Bool, write skipWrite: Bool) {
        if skipRead { read = false }
        if skipWrite { write = false }
        bypassReasons.append(reason)
    }
}
