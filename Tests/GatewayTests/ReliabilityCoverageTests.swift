import Foundation
import TestPeers
import Testing

/// The reliability catalog's coverage table (docs/RELIABILITY-COVERAGE.md) cannot drift from the tests:
/// it is compared with what `scripts/reliability-coverage` generates now from the committed ID list
/// (docs/reliability-catalog-ids.txt), the `/// Catalog X-NN:` lines above tests, and the
/// `### Deviation X-NN` headings of docs/DESIGN-NOTES.md. The catalog itself (../shared/RELIABILITY.md)
/// is not read: CI machines do not have it.
@Suite(.timeLimit(.minutes(1))) struct ReliabilityCoverageTests {
    static let root = TestPeers.packageRoot

    /// The generator's output for `root` (stdout), failing the test when it cannot run.
    static func generate(root: URL = root) throws -> String {
        let python = try TestPeers.executable("python3", package: "python3")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [
            Self.root.appendingPathComponent("scripts/reliability-coverage").path, "--stdout", "--root", root.path,
        ]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // Read before waiting: a table larger than the pipe's buffer would otherwise block the generator.
        let text = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "scripts/reliability-coverage failed: \(String(decoding: stderr, as: UTF8.self))")
        return String(decoding: text, as: UTF8.self)
    }

    /// The table's rows: ID and status.
    static func rows(_ table: String) -> [(id: String, status: String)] {
        table.split(separator: "\n").compactMap { line in
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count > 4, cells[1].range(of: #"^[A-Z]-\d\d$"#, options: .regularExpression) != nil else { return nil }
            return (cells[1], cells[3])
        }
    }

    /// The lines of the table's "Citation problems" section (empty when it says "None.").
    static func problems(_ table: String) -> [String] {
        guard let section = table.range(of: "## Citation problems\n") else { return ["the table has no Citation problems section"] }
        return table[section.upperBound...].split(separator: "\n").map(String.init).filter { $0.hasPrefix("- ") }
    }

    @Test func theCommittedTableIsWhatTheGeneratorProducesNow() throws {
        let generated = try Self.generate()
        let committed = try String(contentsOf: Self.root.appendingPathComponent("docs/RELIABILITY-COVERAGE.md"), encoding: .utf8)
        if committed != generated {
            let old = Set(committed.split(separator: "\n"))
            let changed = generated.split(separator: "\n").filter { !old.contains($0) }.prefix(10).joined(separator: "\n")
            Issue.record("docs/RELIABILITY-COVERAGE.md is stale: run scripts/reliability-coverage. Lines it would now contain:\n\(changed)")
        }
        let ids = try String(contentsOf: Self.root.appendingPathComponent("docs/reliability-catalog-ids.txt"), encoding: .utf8)
            .split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
        #expect(ids.count == 72, "the catalog has 72 entries")
        #expect(Self.rows(generated).map(\.id) == ids.map { String($0.prefix(4)) }, "one row per catalog ID, in catalog order")
    }

    @Test func everyCitationNamesACatalogIDAndSitsAboveATest() throws {
        let problems = Self.problems(try Self.generate())
        #expect(problems.isEmpty, "citations that name no catalog ID or no test:\n\(problems.joined(separator: "\n"))")
    }

    /// Every catalog entry has a test that cites it, or a documented deviation with a test of what wsgate
    /// does instead: a new entry, or a citation removed, fails here until it is covered again.
    @Test func everyIDHasATestOrADeviation() throws {
        let missing = Self.rows(try Self.generate()).filter { $0.status == "missing" }.map(\.id)
        #expect(missing.isEmpty, "no test and no deviation: \(missing.joined(separator: ", "))")
    }

    // MARK: The generator, on a fixture tree

    /// A tree laid out like the repository, with citations of every kind the generator must sort out.
    static func fixture() throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("coverage-\(UUID().uuidString)")
        func write(_ relative: String, _ text: String) throws {
            let url = root.appendingPathComponent(relative)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        try write("docs/reliability-catalog-ids.txt", "# comment\n## 4.1 Section\nP-01\tFirst\nP-02\tSecond | piped\nP-03\tThird\nP-04\tFourth\n")
        try write("docs/DESIGN-NOTES.md", "# Notes\n### Deviation P-03: we do otherwise\ntext\n### Deviation P-04: no test yet\n")
        try write(
            "Tests/ATests/BTests.swift",
            #"""
            import Testing
            @Suite(.timeLimit(.minutes(1))) struct BTests {
                let brace = "{ not a brace"
                let raw = #"a "}" b"#
                /// Catalog P-01: the first, asserted.
                /// Other doc text.
                @Test(arguments: [
                    1, 2,
                ])
                func first(value: Int) {}

                struct Nested {
                    /// Catalog P-03: what wsgate does instead.
                    /// Catalog P-01: and the first again.
                    @Test func inner() {}
                }

                /// Catalog P-09: not in the catalog.
                @Test func unknown() {}

                /// Catalog P-02: above a helper, not a test.
                func helper() {}

                /// Catalog P-02: above a property.
                let value = 1
            }
            extension BTests {
                /// Catalog P-01: from an extension.
                @Test func third() {}
            }
            """#
        )
        return root
    }

    @Test func theGeneratorNamesEachTestBySuiteAndSortsOutBadCitations() throws {
        let root = try Self.fixture()
        defer { try? FileManager.default.removeItem(at: root) }
        let table = try Self.generate(root: root)
        let lines = table.split(separator: "\n").map(String.init)
        #expect(
            lines.contains(
                "| P-01 | First | covered | `BTests/first` (Tests/ATests/BTests.swift)<br>`BTests.Nested/inner` (Tests/ATests/BTests.swift)"
                    + "<br>`BTests/third` (Tests/ATests/BTests.swift) | — |"
            ),
            "\(table)"
        )
        #expect(lines.contains("| P-02 | Second \\| piped | missing | — | — |"))
        #expect(
            lines.contains(
                "| P-03 | Third | deviation | `BTests.Nested/inner` (Tests/ATests/BTests.swift) | docs/DESIGN-NOTES.md: “Deviation P-03: we do otherwise” |"
            )
        )
        #expect(lines.contains("| P-04 | Fourth | missing | — | docs/DESIGN-NOTES.md: “Deviation P-04: no test yet” |"), "a deviation needs its test")
        #expect(lines.contains("4 entries: 1 covered, 1 deviation, 2 missing."))
        #expect(
            Self.problems(table) == [
                "- P-09: Tests/ATests/BTests.swift: `BTests/unknown` cites an ID that is not in the catalog",
                "- P-02: Tests/ATests/BTests.swift:21: cites `helper`, which is not a test",
                "- P-02: Tests/ATests/BTests.swift:24: not directly above a test",
            ]
        )
    }
}
