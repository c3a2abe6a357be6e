import Foundation
import NIOConcurrencyHelpers

/// `admin.token_file` (issue #14 §2): the bearer token that guards the dashboard's data: `/connections*` and
/// `/tap`. Read from its file at start and again on SIGHUP (a file that cannot be read then keeps the
/// token in force: the guard never falls open).
final class AdminToken: Sendable {
    /// One token's bytes.
    struct Value: Equatable, Sendable {
        let bytes: [UInt8]

        /// Whether `header` is `Bearer <this token>` (RFC 6750 §2.1; the scheme is case-insensitive,
        /// RFC 9110 §11.1). The token is compared in time that depends only on the lengths, so the
        /// answer's timing does not tell how many leading bytes of a guess were right.
        func authorizes(_ header: String?) -> Bool {
            guard let header else { return false }
            let utf8 = Array(header.utf8)
            guard utf8.count > 7, String(decoding: utf8[0..<7], as: UTF8.self).lowercased() == "bearer " else { return false }
            let presented = utf8[7...].drop { $0 == UInt8(ascii: " ") }
            return Self.constantTimeEqual(Array(presented), self.bytes)
        }

        static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
            var difference = UInt8(lhs.count == rhs.count ? 0 : 1)
            for index in 0..<max(lhs.count, rhs.count) {
                let left = index < lhs.count ? lhs[index] : 0
                let right = index < rhs.count ? rhs[index] : 0
                difference |= left ^ right
            }
            return difference == 0
        }
    }

    struct LoadError: Error, CustomStringConvertible {
        var path: String
        var reason: String
        var description: String { "admin.token_file \(self.path): \(self.reason)" }
    }

    private let current: NIOLockedValueBox<Value?>

    init(_ value: Value? = nil) {
        self.current = NIOLockedValueBox(value)
    }

    var value: Value? { self.current.withLockedValue { $0 } }

    func set(_ value: Value?) {
        self.current.withLockedValue { $0 = value }
    }

    /// The token in `path`: its first line without surrounding white space; empty is an error.
    static func load(path: String) throws(LoadError) -> Value {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LoadError(path: path, reason: FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        let text = String(decoding: data, as: UTF8.self)
        let token = (text.split(separator: "\n", omittingEmptySubsequences: true).first ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw LoadError(path: path, reason: "the file holds no token") }
        return Value(bytes: Array(token.utf8))
    }

    /// Whether `host` is a loopback address (the admin listener needs no token there).
    static func isLoopback(_ host: String) -> Bool {
        let lowered = host.lowercased()
        return lowered == "localhost" || lowered == "::1" || lowered == "[::1]" || lowered.hasPrefix("127.")
    }
}
