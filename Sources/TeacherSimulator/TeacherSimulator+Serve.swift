import Hummingbird
import Logging
import ServiceLifecycle

extension TeacherSimulator {
    /// Serves the simulator on loopback, on a port the system picks, while `body` runs; `body`
    /// gets the OpenAI base URL (`http://127.0.0.1:PORT/v1`). Used by tests and benchmarks.
    public func serve<T>(_ body: (_ baseURL: String) async throws -> T) async throws -> T {
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let quiet = Logger(label: "teacher-sim", factory: { _ in SwiftLogNoOpLogHandler() })
        let app = Application(
            router: buildRouter(),
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "teacher-sim"),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: quiet)
        let server = ServiceGroup(configuration: .init(services: [app], logger: quiet))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                defer { portContinuation.finish() }
                try await server.run()
            }
            defer { tasks.cancelAll() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else {
                try await tasks.next()
                throw SimulatorError.didNotStart
            }
            return try await body("http://127.0.0.1:\(port)/v1")
        }
    }
}

public enum SimulatorError: Error {
    case didNotStart
    /// Thrown from a response body to drop the connection in the middle of an answer (the close fault).
    case closedMidAnswer
}
