import DistillAPI
import Foundation
import Storage
import Synchronization

/// What each scope is, for an operator who sees only a hash: its tenant (an API key's id, never the
/// key), its model and the first words of its system prompt. Written once per scope, with its first
/// teacher answer, to the store's metadata.
public final class ScopeCatalog: Sendable {
    let store: any DistillStore
    private let known = Mutex<[String: ScopeDescription]>([:])
    /// Words of the system prompt kept: enough to recognise it, not to copy it.
    static let systemPromptWords = 8

    public init(store: any DistillStore) { self.store = store }

    static func metadataKey(_ scope: String) -> String { "scope_description:" + scope }

    /// Records what `scope` is the first time it is seen; a failed write is tried again next time.
    func note(_ scope: Scope, request: ChatRequest, tenant: String) async {
        guard await description(of: scope.key) == nil else { return }
        let system = request.messages.first { $0.role == "system" || $0.role == "developer" }?.text
        let description = ScopeDescription(
            tenant: tenant, model: request.model,
            systemPrompt: system.map { $0.split(whereSeparator: \.isWhitespace).prefix(Self.systemPromptWords).joined(separator: " ") })
        guard let encoded = try? JSONEncoder().encode(description),
            (try? await store.setMetadata(Self.metadataKey(scope.key), String(decoding: encoded, as: UTF8.self))) != nil
        else { return }
        known.withLock { $0[scope.key] = description }
    }

    /// What `scope` is, if it was ever recorded.
    public func description(of scope: String) async -> ScopeDescription? {
        if let description = known.withLock({ $0[scope] }) { return description }
        guard let stored = try? await store.metadata(Self.metadataKey(scope)),
            let description = try? JSONDecoder().decode(ScopeDescription.self, from: Data(stored.utf8))
        else { return nil }
        known.withLock { $0[scope] = description }
        return description
    }
}
