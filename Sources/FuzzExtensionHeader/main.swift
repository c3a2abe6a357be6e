import Frames

/// libFuzzer entry point for ``ExtensionHeader`` (build recipe: shared/TOOLCHAIN.md §5).
///
/// For each input it checks three properties and traps with `fatalError` (a bug found) when one fails:
/// 1. parse never traps, whatever the bytes (decoded leniently: invalid UTF-8 becomes U+FFFD, which the
///    grammar must reject like any non-ASCII byte);
/// 2. for every successful parse, `parse([serialize(x)]) == x` (serialisation round-trips);
/// 3. the input split into two header values at a byte chosen by the input parses exactly like the two
///    halves joined with a comma (RFC 7230 §3.2.2: repeated fields ≡ one comma-joined field).
///
/// The file holds only this function: no top-level code, so a normal `swift build` links it as a
/// program that does nothing, and only the `--sanitize=fuzzer` build runs libFuzzer's `main`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMe(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    /// Parses `values` and, on success, checks the serialise→parse round trip.
    func parseChecked(_ values: [String]) -> Result<[ExtensionOffer], FramesError> {
        let result = Result { () throws(FramesError) in try ExtensionHeader.parse(values) }
        if case .success(let offers) = result {
            let serialized = ExtensionHeader.serialize(offers)
            let reparsed = Result { () throws(FramesError) in try ExtensionHeader.parse([serialized]) }
            guard case .success(let again) = reparsed, again == offers else {
                fatalError("round trip failed: \(values) -> \(offers) -> \(serialized) -> \(reparsed)")
            }
        }
        return result
    }

    let bytes = UnsafeBufferPointer(start: data, count: size)
    _ = parseChecked([String(decoding: bytes, as: UTF8.self)])

    // Split at a byte derived from the input: its first byte, modulo the length (+1 so that both an empty
    // first and an empty second value are reachable).
    let cut = size == 0 ? 0 : Int(bytes[0]) % (size + 1)
    let first = String(decoding: UnsafeBufferPointer(rebasing: bytes[..<cut]), as: UTF8.self)
    let second = String(decoding: UnsafeBufferPointer(rebasing: bytes[cut...]), as: UTF8.self)
    let split = parseChecked([first, second])
    let joined = parseChecked([first + "," + second])
    guard split == joined else {
        fatalError("split values \([first, second]) parse as \(split) but joined as \(joined)")
    }
    return 0
}
