import Teacher

/// Why the domain could not do what it was asked. The application says how each travels (HTTP
/// status, OpenAI error code); here they are only what went wrong.
public enum DistillError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The teacher could not answer.
    case teacher(TeacherError)
    /// A teacher answer could not be recorded, so it was withheld: it would be lost to training.
    case answerNotRecorded
    /// The store failed a read or write the operation needs.
    case storageUnavailable(String)
    /// No scope holding `holding` starts with the prefix (or it is shorter than 4 characters).
    case unknownScope(prefix: String, holding: String)
    /// The prefix starts `matches` scopes.
    case ambiguousScope(prefix: String, matches: Int)
    /// No teacher answers were logged in the scope.
    case noTeacherAnswers
    /// No scope has `distill.min_rows` teacher answers yet.
    case notEnoughAnswers(minRows: Int)
    case unknownVersion(Int64)
    /// There are no student versions (in the scope, when one was named).
    case noVersions(inScope: Bool)
    /// Several scopes have versions: the operation needs one named.
    case scopeRequired(scopes: Int)
    case nothingToRollBackTo
    case versionCannotServe(id: Int64, reason: String)
    /// The promotion gate rejected the version; promoting it needs `force`.
    case versionRejected(Int64)
    /// An imported entry's embedding has the wrong dimension.
    case invalidEmbedding(dimension: Int)

    public var description: String {
        switch self {
        case .teacher(let error): "\(error)"
        case .answerNotRecorded: "The answer could not be recorded, so it was not delivered. Try again later."
        case .storageUnavailable(let reason): "The store failed: \(reason)"
        case .unknownScope(let prefix, let holding): "No scope with \(holding) starts with '\(prefix)' (give at least 4 characters)."
        case .ambiguousScope(let prefix, let matches): "'\(prefix)' starts \(matches) scopes; give more of the key."
        case .noTeacherAnswers: "No teacher answers were logged in this scope."
        case .notEnoughAnswers(let minRows): "No scope has distill.min_rows (\(minRows)) teacher answers yet."
        case .unknownVersion(let id): "No student version \(id)."
        case .noVersions(let inScope): "There are no student versions\(inScope ? " in this scope" : "")."
        case .scopeRequired(let scopes): "\(scopes) scopes have student versions: name one."
        case .nothingToRollBackTo: "The scope has no earlier version that served."
        case .versionCannotServe(let id, let reason): "Version \(id) cannot serve: \(reason)."
        case .versionRejected(let id): "The promotion gate rejected version \(id) (cachectl student versions says why); promote it with --force to overrule the gate."
        case .invalidEmbedding(let dimension): "An entry's embedding does not have \(dimension) dimensions."
        }
    }
}
