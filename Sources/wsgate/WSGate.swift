import ArgumentParser
import Gateway

@main
struct WSGate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wsgate",
        abstract: "An intercepting WebSocket gateway."
    )

    func run() throws {
        print(Gateway.embeddedDefaultDescription)
        throw ExitCode(2)
    }
}
