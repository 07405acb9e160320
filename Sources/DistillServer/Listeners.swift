import Synchronization

/// The addresses distilld is listening on, as they come up (`cachectl status` shows them).
public final class Listeners: Sendable {
    private let addresses = Mutex<[String]>([])

    public init() {}

    public var all: [String] { addresses.withLock { $0 } }

    func add(_ address: String) {
        addresses.withLock { $0.append(address) }
    }
}
