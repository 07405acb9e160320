import Crypto
import DistillAPI
import Foundation
import Storage

/// A hard partition of cached answers and of the student: requests share a scope only when they
/// differ in nothing but their last user message (and in parameters that do not change what the
/// right answer is). The key is a SHA-256, so no tenant can craft a collision with another's scope.
public struct Scope: Hashable, Sendable, CustomStringConvertible {
    /// Lower-case hex SHA-256 of the scope's canonical form.
    public let key: String

    public init(key: String) { self.key = key }

    public var description: String { String(key.prefix(16)) }

    /// Fields that do not change which answer is right: transport, sampling and bookkeeping.
    /// Every other field (known or not) is part of the scope, so an unknown field errs on the
    /// side of separating answers.
    static let fieldsOutsideScope: Set<String> = [
        "messages", "stream", "stream_options", "n", "logprobs", "top_logprobs", "temperature", "top_p", "seed",
        "frequency_penalty", "presence_penalty", "user", "metadata", "store", "service_tier",
    ]

    /// The scope of `request` for `tenant`: the tenant, the model, every message but the last
    /// user message, and the answer-changing parameters.
    public init(of request: ChatRequest, tenant: String) {
        let lastUser = request.messages.lastIndex { $0.role == "user" }
        let context = request.messages.indices.filter { $0 != lastUser }.map { request.messages[$0].raw }
        let parameters = request.body.filter { !Self.fieldsOutsideScope.contains($0.key) }
        let canonical: JSONValue = [
            "v": 1, "tenant": .string(tenant), "context": .array(context), "parameters": .object(parameters),
        ]
        let digest = SHA256.hash(data: canonical.encoded())
        key = hex(digest)
    }
}

extension Scope {
    /// The tenant of a request: the API key it presents (its SHA-256, so the key itself is not
    /// kept), or `anonymous`. Two keys never share a scope.
    public static func tenant(authorization: String?) -> String {
        guard let token = bearerToken(authorization) else { return "anonymous" }
        return "key:" + hex(SHA256.hash(data: Data(token.utf8)).prefix(16))
    }

    /// The token of an `Authorization: Bearer TOKEN` header; nil without one.
    public static func bearerToken(_ authorization: String?) -> String? {
        guard let authorization, authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else {
            return nil
        }
        let token = authorization.dropFirst(7).trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }
}

extension Scope {
    /// The full key that `prefix` (at least 4 characters) starts among `scopes`, the scopes holding
    /// `what`; a full key is taken as it is, so that a scope can be named before it holds anything.
    public static func resolve(_ prefix: String, among scopes: [String], holding what: String) throws(DistillError) -> String {
        if prefix.count == 64, prefix.allSatisfy(\.isHexDigit) { return prefix.lowercased() }
        let matches = scopes.filter { $0.hasPrefix(prefix.lowercased()) }
        guard prefix.count >= 4, matches.count == 1 else {
            throw matches.count > 1 ? .ambiguousScope(prefix: prefix, matches: matches.count) : .unknownScope(prefix: prefix, holding: what)
        }
        return matches[0]
    }

    /// `resolve` among the scopes with teacher answers in `store`.
    public static func resolve(_ prefix: String, amongTeacherLogScopesOf store: any DistillStore) async throws(DistillError) -> String {
        let scopes: [String]
        do {
            scopes = Array(try await store.teacherLogActivity().keys)
        } catch {
            throw .storageUnavailable("\(error)")
        }
        return try resolve(prefix, among: scopes, holding: "teacher answers")
    }
}

/// Lower-case hex of `bytes`. (`String(format:)` per byte cost a tenth of an exact cache hit.)
func hex(_ bytes: some Sequence<UInt8>) -> String {
    var text: [UInt8] = []
    text.reserveCapacity(2 * bytes.underestimatedCount)
    for byte in bytes {
        text.append(hexDigits[Int(byte >> 4)])
        text.append(hexDigits[Int(byte & 0xF)])
    }
    return String(decoding: text, as: UTF8.self)
}

private let hexDigits = Array("0123456789abcdef".utf8)
