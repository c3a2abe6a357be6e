import Foundation
import Logging
import Testing

@testable import Gateway

/// Issue #11 §4: every access-log line is valid JSON whatever a peer put in it, and the log file is
/// never reached through a symbolic link.
@Suite struct AccessLogTests {
    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "wsgate-accesslog-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    /// Writes `record` through a real file sink and parses the line back.
    private func logged(_ record: ConnectionRecord) throws -> [String: Any] {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/access.log"
        try AccessLog(.file(path)).record(record)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasSuffix("}\n") && text.filter { $0 == "\n" }.count == 1)
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try #require(object as? [String: Any])
    }

    @Test(arguments: ["١٢٣", "123", "007", "-1", "1e3", "½", "²", "", "a\"b\\c\n\u{1}\u{7f}\u{2028}é"])
    func aPeerChosenSubprotocolIsAlwaysAJSONString(_ subprotocol: String) throws {
        var record = ConnectionRecord(id: 7, listener: "main")
        record.subprotocol = subprotocol
        record.clientExtensions = "permessage-deflate; x=\"}\""
        record.refusal = "no route for \u{0}"
        record.clientAddress = "[::1]:1"
        let fields = try logged(record)
        #expect(fields["subprotocol"] as? String == subprotocol)
        #expect(fields["client_extensions"] as? String == "permessage-deflate; x=\"}\"")
        #expect(fields["refusal"] as? String == "no route for \u{0}")
        #expect(fields["client"] as? String == "[::1]:1")
    }

    @Test func countsAndCodesAreNumbers() throws {
        var record = ConnectionRecord(id: 42, listener: "007")
        record.status = 101
        record.closeCode = 1000
        record.clientBytes = 0
        let fields = try logged(record)
        #expect(fields["id"] as? Int == 42)
        #expect(fields["status"] as? Int == 101)
        #expect(fields["close_code"] as? Int == 1000)
        #expect(fields["client_to_upstream_bytes"] as? Int == 0)
        #expect(fields["listener"] as? String == "007")
    }

    @Test func jsonIntegersAreASCIIDigitsWithoutLeadingZeros() {
        for text in ["0", "7", "-12", "1015", "9223372036854775807"] { #expect(JSONLineLogHandler.isJSONInteger(text), "\(text)") }
        for text in ["", "-", "007", "-0x", "١٢٣", "½", "1.5", "1e3", "+1", " 1"] { #expect(!JSONLineLogHandler.isJSONInteger(text), "\(text)") }
        #expect(JSONLineLogHandler.json(.stringConvertible("123")) == "\"123\"")  // not an integer type: a string
        #expect(JSONLineLogHandler.json(.array([.string("a"), .stringConvertible(1)])) == "[\"a\",1]")
        #expect(JSONLineLogHandler.json(.dictionary(["k\"": .string("v")])) == "{\"k\\\"\":\"v\"}")
    }

    @Test func aSymbolicLinkAtTheLogPathIsRefusedAndItsTargetUntouched() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let victim = directory + "/victim"
        try Data("keep\n".utf8).write(to: URL(fileURLWithPath: victim))
        let link = directory + "/access.log"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: victim)
        #expect(throws: AccessLogError.self) { try AccessLog(.file(link)) }
        do {
            _ = try AccessLog(.file(link))
        } catch {
            #expect(error.code == .symbolicLink)
            #expect(error.description.contains("symbolic link"))
        }
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep\n")
        // A dangling link must not create its target either.
        let dangling = directory + "/dangling.log"
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: directory + "/created")
        #expect(throws: AccessLogError.self) { try AccessLog(.file(dangling)) }
        #expect(!FileManager.default.fileExists(atPath: directory + "/created"))
    }
}
