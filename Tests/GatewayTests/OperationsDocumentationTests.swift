import Foundation
import Testing

@testable import Gateway

/// README's production section cannot drift from the code: its configuration reference is compared
/// with the key lists the YAML parser accepts, and its metrics list with the metric catalog and with
/// every metric name the sources record.
@Suite struct OperationsDocumentationTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // GatewayTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    static func read(_ relative: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8)
    }

    /// The first column of the table between `<!-- name:begin -->` and `<!-- name:end -->`, unquoted, and
    /// the other columns.
    static func table(_ name: String) throws -> [(key: String, columns: [String])] {
        let readme = try read("README.md")
        guard let begin = readme.range(of: "<!-- \(name):begin -->"), let end = readme.range(of: "<!-- \(name):end -->") else {
            Issue.record("README.md has no \(name) table")
            return []
        }
        return readme[begin.upperBound..<end.lowerBound]
            .split(separator: "\n")
            .filter { $0.hasPrefix("| `") }
            .map { line in
                let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                return (String(cells[0].dropFirst().dropLast()), Array(cells.dropFirst()))
            }
    }

    /// The schema the YAML parser accepts: every `mapping(keys: [...])` list in the gateway's sources,
    /// read from the source text so that a section another change adds is covered without touching
    /// this test.
    static func acceptedKeyLists() throws -> [Set<String>] {
        let directory = root.appendingPathComponent("Sources/Gateway")
        var lists: [Set<String>] = []
        let files = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil)!
        for case let file as URL in files where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            let calls = text.components(separatedBy: ".mapping(keys:").dropFirst()
            for call in calls {
                let trimmed = call.drop { $0.isWhitespace }
                #expect(trimmed.hasPrefix("["), "\(file.lastPathComponent): mapping(keys:) takes a literal list, so that the documentation test can read it")
                guard trimmed.hasPrefix("["), let close = trimmed.firstIndex(of: "]") else { continue }
                let literal = trimmed[trimmed.index(after: trimmed.startIndex)..<close]
                let keys = literal.components(separatedBy: "\"").enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
                lists.append(Set(keys))
            }
        }
        return lists
    }

    @Test func theConfigurationReferenceDocumentsExactlyTheKeysTheParserAccepts() throws {
        let rows = try Self.table("configuration-reference")
        #expect(rows.count > 30)
        for row in rows {
            #expect(row.columns.count == 3 && row.columns.allSatisfy { !$0.isEmpty }, "\(row.key): type, default and meaning are all required")
        }
        // Documented keys grouped by the mapping they belong to: `listeners[].tls.sni[].names` is key
        // `names` of the mapping at `listeners[].tls.sni[]`.
        var documented: [String: Set<String>] = [:]
        for row in rows {
            var components = row.key.components(separatedBy: ".")
            let key = components.removeLast().replacingOccurrences(of: "[]", with: "")
            documented[components.joined(separator: "."), default: []].insert(key)
        }
        let accepted = try Self.acceptedKeyLists()
        #expect(!accepted.isEmpty)
        // Every key list of the parser is one documented mapping, and every documented mapping is one
        // key list of the parser, key for key.
        for keys in accepted {
            #expect(documented.values.contains(keys), "the parser accepts \(keys.sorted()) in one mapping; README's configuration reference has no mapping with exactly these keys")
        }
        for (parent, keys) in documented {
            #expect(accepted.contains(keys), "README documents \(keys.sorted()) under `\(parent.isEmpty ? "(top level)" : parent)`; the parser has no mapping with exactly these keys")
        }
    }

    @Test func theMetricsListIsTheCatalogAndTheCatalogHasEveryMetricTheSourcesRecord() throws {
        let rows = try Self.table("metrics")
        let documented = Dictionary(rows.map { ($0.key, $0.columns) }, uniquingKeysWith: { first, _ in first })
        #expect(Set(documented.keys) == Set(GatewayMetrics.catalog.map(\.name)))
        for metric in GatewayMetrics.catalog {
            guard let columns = documented[metric.name] else { continue }
            #expect(columns[0] == metric.kind.rawValue, "\(metric.name): type")
            let labels = columns[1].components(separatedBy: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " `")) }.filter { !$0.isEmpty }
            #expect(labels == metric.labels, "\(metric.name): labels")
        }
        // Every metric name a source file records (a string literal starting with `wsgate_`) is in the
        // catalog: a counter added elsewhere fails here until it is catalogued and documented.
        let directory = Self.root.appendingPathComponent("Sources/Gateway")
        var recorded: Set<String> = []
        let files = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil)!
        for case let file as URL in files where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for piece in text.components(separatedBy: "\"wsgate_").dropFirst() {
                recorded.insert("wsgate_" + piece.prefix { $0.isLetter || $0.isNumber || $0 == "_" })
            }
        }
        #expect(recorded.subtracting(GatewayMetrics.catalog.map(\.name)).isEmpty, "recorded but not catalogued: \(recorded.subtracting(GatewayMetrics.catalog.map(\.name)).sorted())")
    }

    @Test func theReadmeStillStartsWithTheTwoSetUpCommands() throws {
        let readme = try Self.read("README.md")
        #expect(readme.hasPrefix("# wsgate\n\n```sh\nswift run wsgate "))
        #expect(readme.contains("\nswift test --no-parallel "))
    }
}
