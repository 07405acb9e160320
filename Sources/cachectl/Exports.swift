import DistillAPI
import Foundation

/// Writes the pages `fetch` returns, from the one after `after` until it says there is no next,
/// as JSON Lines: to stdout, or to a file that replaces `path` only once every page is in it (a
/// failed export leaves the previous one). Returns how many lines were written.
func exportPages<Line: Encodable>(
    to path: String?, after: Int64, _ fetch: (_ after: Int64) async throws -> (lines: [Line], next: Int64?)
) async throws -> Int {
    func write(to sink: FileHandle, named name: String) async throws -> Int {
        let encoder = JSONEncoder.admin
        var cursor: Int64? = after
        var count = 0
        while let after = cursor {
            let page = try await fetch(after)
            var lines = Data()
            for line in page.lines {
                lines.append(try encoder.encode(line))
                lines.append(UInt8(ascii: "\n"))
            }
            do {
                try sink.write(contentsOf: lines)
            } catch {
                throw CachectlError("cannot write \(name): \(error.localizedDescription)")
            }
            count += page.lines.count
            cursor = page.next
        }
        return count
    }
    guard let path else { return try await write(to: .standardOutput, named: "stdout") }
    return try await ReplacementFile.write(path) { file in try await write(to: file.handle, named: file.partial) }
}
