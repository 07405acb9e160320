import HTTPTypes
import Hummingbird

/// The request context of distilld's routes: Hummingbird's core plus the request's id.
public struct DistillRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `DistillMiddleware`: the client's `x-request-id` if usable, else a new one.
    public var requestID = ""

    public init(source: Source) {
        self.coreContext = .init(source: source)
    }
}

extension HTTPField.Name {
    static let requestID = Self("x-request-id")!
    static let distillSource = Self("x-distill-source")!
    static let distillSimilarity = Self("x-distill-similarity")!
    /// The student's calibrated confidence, when a student looked at the request.
    static let distillConfidence = Self("x-distill-confidence")!
    static let distillCache = Self("x-distill-cache")!
}
