import DistillAPI

/// What the request path needs of a teacher: `TeacherClient` is the real one (any OpenAI-compatible
/// upstream); tests give the domain a fake of their own.
public protocol TeacherUpstream: Sendable {
    associatedtype AnswerStream: TeacherAnswerStream
    /// Where the teacher is (`HOST:PORT`), as the logs name it when a call fails.
    var address: String { get }
    func complete(_ request: ChatRequest, requestID: String) async throws(TeacherError) -> TeacherCompletion
    /// Opens a streamed answer; throws before anything was received when none can start.
    func stream(_ request: ChatRequest, requestID: String) async throws(TeacherError) -> AnswerStream
    func models() async throws(TeacherError) -> JSONValue
}

/// A streamed teacher answer: one reader calls `events()` once and reads them to the end.
public protocol TeacherAnswerStream: Sendable {
    associatedtype Events: TeacherStreamEvents
    func events() -> Events
}

public protocol TeacherStreamEvents {
    /// The next event, or nil after `.finished`. Throws if the stream breaks off or lies.
    mutating func next() async throws(TeacherError) -> TeacherStream.Event?
}

extension TeacherClient: TeacherUpstream {}
extension TeacherStream: TeacherAnswerStream {}
extension TeacherStream.Events: TeacherStreamEvents {}
