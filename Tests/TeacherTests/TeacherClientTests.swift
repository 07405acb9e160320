import DistillAPI
import Foundation
import Logging
import Testing
import TeacherSimulator

@testable import Teacher

@Suite struct TeacherClientTests {
    static let question = "where is my card"
    static let dataset = TeacherDataset(entries: [
        .init(text: question, gold: nil, answer: "card arrival", top: [("card arrival", 0.6), ("lost card", 0.3), ("top up", 0.1)])
    ])
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func request(_ extra: String = "") throws -> ChatRequest {
        try ChatRequest.parse(Data(#"{"model":"m","messages":[{"role":"user","content":"\#(Self.question)"}]\#(extra)}"#.utf8))
    }

    /// Runs `body` with a simulator on loopback and a client pointed at it.
    @discardableResult
    func withTeacher<T>(
        faults: SimulatorFaults = SimulatorFaults(), options: SimulatorOptions = SimulatorOptions(),
        configure: (inout TeacherConfiguration) -> Void = { _ in }, clock: ManualClock = ManualClock(),
        _ body: (TeacherClient, TeacherSimulator) async throws -> T
    ) async throws -> T {
        var options = options
        options.faults = faults
        let simulator = TeacherSimulator(dataset: Self.dataset, options: options)
        return try await simulator.serve { baseURL in
            var configuration = TeacherConfiguration(
                baseURL: baseURL, readTimeout: .seconds(10), requestTimeout: .seconds(20),
                backoffInitial: .milliseconds(5), backoffMax: .milliseconds(20), topLogprobs: 3)
            configure(&configuration)
            let client = TeacherClient(configuration: configuration, logger: Self.quiet, now: { clock.now })
            defer { Task { try? await client.shutdown() } }
            return try await body(client, simulator)
        }
    }

    @Test func completesAndKeepsTheLogprobsItAskedForOutOfTheClientsBody() async throws {
        try await withTeacher { client, _ in
            let completion = try await client.complete(try request(), requestID: "r1")
            #expect(completion.answer.text == "card arrival")
            #expect(completion.answer.attempts == 1)
            #expect(completion.answer.topLogprobs?.first?.topLogprobs.map(\.token) == ["card arrival", "lost card", "top up"])
            #expect(completion.answer.usage != nil)
            #expect(completion.clientBody["choices"]?.arrayValue?.first?["logprobs"] == .null)

            let asked = try await client.complete(try request(#","logprobs":true,"top_logprobs":1"#), requestID: "r2")
            let tokens = asked.clientBody["choices"]?.arrayValue?.first?["logprobs"]?["content"]?.arrayValue
            #expect(tokens?.first?["top_logprobs"]?.arrayValue?.count == 1, "the client's own top_logprobs wins")
        }
    }

    @Test func streamsChunksThenTheWholeAnswer() async throws {
        try await withTeacher { client, _ in
            let stream = try await client.stream(try request(#","stream":true"#), requestID: "r1")
            var events = stream.events()
            var text = ""
            var chunks: [JSONValue] = []
            var finished: TeacherAnswer?
            while let event = try await events.next() {
                switch event {
                case .chunk(let chunk):
                    #expect(finished == nil)
                    chunks.append(chunk)
                    text += chunk["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue ?? ""
                case .finished(let answer):
                    finished = answer
                }
            }
            #expect(text == "card arrival")
            #expect(finished?.text == "card arrival")
            #expect(finished?.usage != nil, "usage was asked for on distill's behalf")
            #expect(!chunks.contains { $0["usage"] != nil }, "and is not forwarded to a client that did not ask")
            #expect(finished?.topLogprobs?.count == 1)
        }
    }

    @Test func retriesServerErrorsThenGivesUpAndOpensTheBreakerAfterFailedRequests() async throws {
        var faults = SimulatorFaults()
        faults.errorRate = 1
        let clock = ManualClock()
        try await withTeacher(
            faults: faults, configure: { $0.maxAttempts = 3; $0.breakerFailureThreshold = 2; $0.breakerOpenDuration = .seconds(30) },
            clock: clock
        ) { client, simulator in
            // Each request makes its three attempts and is one failure.
            for (id, failures) in [("r1", 1), ("r2", 2)] {
                await #expect(throws: TeacherError.upstreamFailure(status: 500)) {
                    try await client.complete(try request(), requestID: id)
                }
                #expect(simulator.stats.errors == 3 * failures)
                #expect(client.breaker.snapshot.consecutiveFailures == failures)
            }
            #expect(client.breaker.snapshot.state == .open)
            await #expect(throws: TeacherError.circuitOpen(retryAfter: .seconds(30))) {
                try await client.complete(try request(), requestID: "r3")
            }
            #expect(simulator.stats.requests == 6, "an open breaker does not call the upstream")

            // After the open period one request probes, with all of its attempts; it fails, and the
            // breaker refuses calls for another full period.
            clock.advance(by: .seconds(30))
            await #expect(throws: TeacherError.upstreamFailure(status: 500)) {
                try await client.stream(try request(#","stream":true"#), requestID: "r4")
            }
            #expect(simulator.stats.requests == 9)
            #expect(client.breaker.snapshot == .init(state: .open, consecutiveFailures: 3))
            await #expect(throws: TeacherError.circuitOpen(retryAfter: .seconds(30))) {
                try await client.complete(try request(), requestID: "r5")
            }
            #expect(TeacherError.upstreamFailure(status: 500).apiError.status == 502)
        }
    }

    @Test func aProbeThatIsAnsweredClosesTheBreaker() async throws {
        let clock = ManualClock()
        try await withTeacher(configure: { $0.breakerFailureThreshold = 1; $0.breakerOpenDuration = .seconds(5) }, clock: clock) {
            client, simulator in
            client.breaker.recordFailure()
            await #expect(throws: TeacherError.circuitOpen(retryAfter: .seconds(5))) {
                try await client.complete(try request(), requestID: "r1")
            }
            clock.advance(by: .seconds(5))
            _ = try await client.complete(try request(), requestID: "r2")
            #expect(client.breaker.snapshot == .init(state: .closed, consecutiveFailures: 0))
            #expect(simulator.stats.answered == 1)
        }
    }

    @Test func honoursRetryAfterAndGivesUpWhenItIsTooLong() async throws {
        var faults = SimulatorFaults()
        faults.rateLimitRate = 1
        var options = SimulatorOptions()
        options.retryAfterSeconds = 1
        try await withTeacher(faults: faults, options: options, configure: { $0.maxAttempts = 2 }) { client, simulator in
            let started = ContinuousClock.now
            await #expect(throws: TeacherError.rateLimited(retryAfter: .seconds(1))) {
                try await client.complete(try request(), requestID: "r1")
            }
            #expect(ContinuousClock.now - started >= .seconds(1), "the retry waited for Retry-After")
            #expect(simulator.stats.rateLimited == 2)
            #expect(client.breaker.snapshot.consecutiveFailures == 0, "rate limiting is not a failure")
        }
        try await withTeacher(faults: faults, options: options, configure: { $0.maxRetryAfter = .milliseconds(500) }) { client, simulator in
            await #expect(throws: TeacherError.rateLimited(retryAfter: .seconds(1))) {
                try await client.complete(try request(), requestID: "r1")
            }
            #expect(simulator.stats.rateLimited == 1, "a Retry-After beyond max_retry_after is not waited for")
            #expect(TeacherError.rateLimited(retryAfter: .seconds(1)).apiError.retryAfterSeconds == 1)
        }
    }

    @Test func aHangingUpstreamTimesOut() async throws {
        var faults = SimulatorFaults()
        faults.hangRate = 1
        try await withTeacher(faults: faults, configure: { $0.readTimeout = .seconds(1) }) { client, simulator in
            await #expect(throws: TeacherError.timedOut) { try await client.complete(try request(), requestID: "r1") }
            #expect(simulator.stats.requests <= 1, "a timeout is not retried")
            #expect(TeacherError.timedOut.apiError.status == 504)
        }
    }

    @Test func aMalformedAnswerIsABadResponse() async throws {
        var faults = SimulatorFaults()
        faults.malformedRate = 1
        try await withTeacher(faults: faults) { client, _ in
            await #expect {
                try await client.complete(try request(), requestID: "r1")
            } throws: { error in
                guard case .badResponse = error as? TeacherError else { return false }
                return true
            }
            var events = try await client.stream(try request(#","stream":true"#), requestID: "r2").events()
            await #expect {
                while try await events.next() != nil {}
            } throws: { error in
                guard case .badResponse = error as? TeacherError else { return false }
                return true
            }
            // The stream's 2xx head counted as a success; its bad body as one failure.
            #expect(client.breaker.snapshot.consecutiveFailures == 1)
        }
    }

    @Test func anAnswerThatBreaksOffIsAnError() async throws {
        var faults = SimulatorFaults()
        faults.closeRate = 1
        try await withTeacher(faults: faults) { client, simulator in
            await #expect {
                try await client.complete(try request(), requestID: "r1")
            } throws: { error in
                // The upstream was reached (its head arrived): a bad answer, not an unreachable teacher.
                guard case .badResponse(let detail) = error as? TeacherError else { return false }
                return detail.hasPrefix("the answer broke off")
            }
            var events = try await client.stream(try request(#","stream":true"#), requestID: "r2").events()
            await #expect {
                while try await events.next() != nil {}
            } throws: { error in
                guard case .interrupted = error as? TeacherError else { return false }
                return true
            }
            #expect(simulator.stats.closed >= 2 && simulator.stats.answered == 0 && simulator.stats.streamed == 0)
        }
    }

    @Test func anUnreachableUpstreamIsRetriedThenReportedAndCountsOncePerRequest() async throws {
        // Take a free port and close it again: nothing listens there.
        let port = try await TeacherSimulator(dataset: Self.dataset, options: SimulatorOptions()).serve { url in
            Int(url.split(separator: ":").last!.split(separator: "/").first!)!
        }
        let client = TeacherClient(
            configuration: TeacherConfiguration(
                baseURL: "http://127.0.0.1:\(port)/v1", connectTimeout: .seconds(2), maxAttempts: 3,
                backoffInitial: .milliseconds(5), backoffMax: .milliseconds(10), breakerFailureThreshold: 2),
            logger: Self.quiet)
        // The second request is answered with the teacher's own error too, not refused by the breaker.
        for id in ["r1", "r2"] {
            await #expect {
                try await client.complete(try request(), requestID: id)
            } throws: { error in
                // One clean line that names where the teacher was looked for.
                guard case .unreachable = error as? TeacherError else { return false }
                return "\(error)" == "cannot reach the teacher at 127.0.0.1:\(port): connection refused"
            }
        }
        #expect(client.breaker.snapshot == .init(state: .open, consecutiveFailures: 2))
        await #expect {
            try await client.complete(try request(), requestID: "r3")
        } throws: { error in
            guard case .circuitOpen = error as? TeacherError else { return false }
            return true
        }
        #expect(TeacherError.unreachable(detail: "").apiError.status == 502)
        try await client.shutdown()
    }

    /// The metrics register every outcome's series at start-up from this list.
    @Test func everyOutcomeIsListed() {
        let failures: [TeacherError] = [
            .circuitOpen(retryAfter: .seconds(1)), .unreachable(detail: ""), .timedOut, .rateLimited(retryAfter: nil),
            .upstreamFailure(status: 500), .unauthorized(status: 401), .rejected(status: 400, error: nil),
            .badResponse(detail: ""), .interrupted(detail: ""), .cancelled,
        ]
        #expect(Set(failures.map(\.outcome)) == Set(TeacherError.outcomes))
        #expect(TeacherError.outcomes.count == failures.count)
    }

    @Test func theAddressIsTheBaseURLsHostAndPort() {
        #expect(TeacherConfiguration(baseURL: "https://api.openai.com/v1").address == "api.openai.com:443")
        #expect(TeacherConfiguration(baseURL: "http://127.0.0.1:9090/v1").address == "127.0.0.1:9090")
        #expect(TeacherConfiguration(baseURL: "http://[::1]:9090/v1").address == "[::1]:9090")
    }

    @Test func sendsTheAPIKey() async throws {
        var options = SimulatorOptions()
        options.apiKey = "sk-test"
        try await withTeacher(options: options, configure: { $0.apiKey = "sk-wrong" }) { client, _ in
            await #expect(throws: TeacherError.unauthorized(status: 401)) {
                try await client.complete(try request(), requestID: "r1")
            }
        }
        try await withTeacher(options: options, configure: { $0.apiKey = "sk-test" }) { client, _ in
            let completion = try await client.complete(try request(), requestID: "r1")
            #expect(completion.answer.text == "card arrival")
        }
    }

    @Test func aRejectedRequestKeepsTheUpstreamsStatusAndMessage() {
        let error = TeacherError.rejected(
            status: 404, error: .init(error: .init(message: "model not found", type: "invalid_request_error", param: "model", code: "model_not_found")))
        #expect(error.apiError == APIError(status: 404, type: "invalid_request_error", code: "model_not_found", param: "model", message: "model not found"))
    }
}
