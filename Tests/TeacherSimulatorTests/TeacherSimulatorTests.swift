import AsyncHTTPClient
import DistillAPI
import Foundation
import NIOCore
import NIOFoundationCompat
import Testing
import TeacherSimulator

@Suite struct TeacherSimulatorTests {
    static let dataset = TeacherDataset(entries: [
        .init(text: "where is my card", gold: "card_arrival", answer: "card_arrival", top: [("card_arrival", 0.7), ("lost_or_stolen_card", 0.2)])
    ])

    func post(_ baseURL: String, _ body: String) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: "\(baseURL)/chat/completions")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let data = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), String(buffer: data))
    }

    @Test func answersFromTheDataSetWithLogprobsWhenAsked() async throws {
        let simulator = TeacherSimulator(dataset: Self.dataset, options: SimulatorOptions())
        try await simulator.serve { baseURL in
            let (status, body) = try await post(
                baseURL, #"{"model":"m","messages":[{"role":"user","content":"where is my card"}],"logprobs":true,"top_logprobs":5}"#)
            #expect(status == 200)
            let completion = try JSONDecoder().decode(ChatCompletion.self, from: Data(body.utf8))
            #expect(completion.choices[0].message.content == "card_arrival")
            let token = try #require(completion.choices[0].logprobs?.content?.first)
            #expect(token.topLogprobs.map(\.token) == ["card_arrival", "lost_or_stolen_card"])
            #expect(abs(token.topLogprobs[0].logprob - log(0.7)) < 1e-9)
            #expect(completion.usage != nil)

            let unknown = try await post(baseURL, #"{"model":"m","messages":[{"role":"user","content":"something else"}]}"#)
            #expect(try JSONDecoder().decode(ChatCompletion.self, from: Data(unknown.body.utf8)).choices[0].message.content == SimulatorOptions().fallbackAnswer)
        }
        #expect(simulator.stats.answered == 2 && simulator.stats.unknownQueries == 1)
    }

    @Test func streamsChunksThatAddUpToTheAnswer() async throws {
        let simulator = TeacherSimulator(dataset: TeacherDataset(entries: [.init(text: "q", gold: nil, answer: "three word answer", top: [("three word answer", 1)])]), options: SimulatorOptions())
        try await simulator.serve { baseURL in
            let (status, body) = try await post(
                baseURL, #"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"q"}]}"#)
            #expect(status == 200)
            var parser = ServerSentEventParser()
            let events = try parser.feed(body.utf8)
            #expect(events.last?.isDone == true)
            let chunks = try events.dropLast().map { try JSONDecoder().decode(ChatCompletionChunk.self, from: Data($0.data.utf8)) }
            #expect(chunks.compactMap { $0.choices.first?.delta.content }.joined() == "three word answer")
            #expect(chunks.filter { $0.choices.first?.delta.content?.isEmpty == false }.count == 3)
            #expect(chunks.last?.usage != nil && chunks.last?.choices.isEmpty == true)
        }
    }

    /// The same seed gives the same faults in the same order.
    @Test func faultsFollowTheSeed() async throws {
        func statuses(seed: UInt64) async throws -> [Int] {
            var options = SimulatorOptions()
            options.seed = seed
            options.faults.errorRate = 0.3
            options.faults.rateLimitRate = 0.3
            let simulator = TeacherSimulator(dataset: Self.dataset, options: options)
            return try await simulator.serve { baseURL in
                var statuses: [Int] = []
                for _ in 0..<40 {
                    statuses.append(try await post(baseURL, #"{"model":"m","messages":[{"role":"user","content":"where is my card"}]}"#).status)
                }
                return statuses
            }
        }
        let first = try await statuses(seed: 7)
        #expect(try await statuses(seed: 7) == first)
        #expect(Set(first) == [200, 429, 500])
        #expect(try await statuses(seed: 8) != first)
    }

    @Test func refusesAWrongAPIKey() async throws {
        var options = SimulatorOptions()
        options.apiKey = "sk-right"
        let simulator = TeacherSimulator(dataset: Self.dataset, options: options)
        try await simulator.serve { baseURL in
            let (status, body) = try await post(baseURL, #"{"model":"m","messages":[{"role":"user","content":"q"}]}"#)
            #expect(status == 401 && body.contains("invalid_api_key"))
        }
    }
}
