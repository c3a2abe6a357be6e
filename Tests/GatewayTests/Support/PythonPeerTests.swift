import Foundation
import Testing

/// The test harness's own promise: a Python peer that serves until killed (the forward-auth service)
/// does not outlive its test. `Process.terminate()` sends SIGTERM, which the child inherits blocked
/// from the test runner, so such peers used to survive every run (17 per `scripts/test`).
@Suite struct PythonPeerTests {
    @Test func stopEndsAPeerThatServesUntilKilled() async throws {
        guard try await PythonPeer.require("signal") else { return }
        let peer = try PythonPeer(script: "import time\nprint('up', flush=True)\nwhile True: time.sleep(1)")
        #expect(try await peer.firstLine() == "up")
        peer.stop()
        let deadline = ContinuousClock.now + .seconds(5)
        while peer.process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!peer.process.isRunning, "the peer outlived stop()")
    }

    /// Lines printed together with the first one (read in the same chunk) reach `finish()`: a test that
    /// reads the first line, then the rest, sees everything the peer said.
    @Test func whatCameWithTheFirstLineIsNotLost() async throws {
        let peer = try PythonPeer(script: "import sys\nsys.stdout.write('one\\ntwo\\nthree\\n')")
        #expect(try await peer.firstLine() == "one")
        let (status, output) = try await peer.finish()
        #expect(status == 0 && output == "two\nthree\n", "\(output)")
    }
}
