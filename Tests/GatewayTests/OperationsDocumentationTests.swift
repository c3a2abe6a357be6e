import Foundation
import TestPeers
import Testing

@testable import Gateway

/// README's production section cannot drift from the code: its configuration reference is compared,
/// mapping by mapping, with the schema the YAML parser reads, and its metrics list with the metric catalog and with
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
        // The parser's schema, mapping by mapping (`YAMLConfigurationReader.sections`, built from the
        // same `YAMLSchema` values that read the file).
        var accepted: [String: Set<String>] = [:]
        for section in YAMLConfigurationReader.sections {
            #expect(accepted.updateValue(Set(section.keys), forKey: section.path) == nil, "\(section.path) is listed twice")
        }
        #expect(Set(accepted.keys) == Set(documented.keys), "mappings: parser \(accepted.keys.sorted()), README \(documented.keys.sorted())")
        for (path, keys) in accepted {
            let where_ = path.isEmpty ? "(top level)" : path
            #expect(
                documented[path] == keys,
                "`\(where_)`: the parser accepts \(keys.sorted()), README documents \(documented[path]?.sorted() ?? [])"
            )
        }
    }

    @Test func theMetricsListIsTheCatalogAndTheCatalogHasEveryMetricTheSourcesRecord() throws {
        let rows = try Self.table("metrics")
        let documented = Dictionary(rows.map { ($0.key, $0.columns) }, uniquingKeysWith: { first, _ in first })
        #expect(Set(documented.keys) == Set(GatewayMetrics.catalog.map(\.name)))
        for metric in GatewayMetrics.catalog {
            guard let columns = documented[metric.name] else { continue }
            #expect(columns[0] == metric.kind.rawValue, "\(metric.name): type")
            let labels = columns[1].components(separatedBy: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " `")) }.filter {
                !$0.isEmpty
            }
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
        #expect(
            recorded.subtracting(GatewayMetrics.catalog.map(\.name)).isEmpty,
            "recorded but not catalogued: \(recorded.subtracting(GatewayMetrics.catalog.map(\.name)).sorted())"
        )
    }

    @Test func theReadmeStillStartsWithTheTwoSetUpCommands() throws {
        let readme = try Self.read("README.md")
        #expect(readme.hasPrefix("# wsgate\n\n```sh\nswift run wsgate "))
        #expect(readme.contains("\nswift run wsgate   #"))
        // The test command does its own set-up (issue #12 §1); .ci/run runs whatever this line says.
        #expect(readme.contains("\nscripts/test       #"))
        #expect(FileManager.default.isExecutableFile(atPath: TestPeers.packageRoot.appendingPathComponent("scripts/test").path))
    }
}
