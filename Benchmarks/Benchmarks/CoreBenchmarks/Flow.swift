// `RelayFraming.swift` and `BufferPool.swift` in this folder are symbolic links to the RelayCore prototype's
// own files (Sources/RelayCore/): RelayCore is not a product of the root package, so the benchmark
// compiles the two files itself. `Flow` is the one other type they use; this copy must keep the fields
// `RelayFraming` touches of `Flow` in Sources/RelayCore/RelayConnection.swift (the build fails otherwise).

import Frames

/// One direction of the relay, named by its source (Sources/RelayCore/RelayConnection.swift).
struct Flow {
    var parser: FrameParser
    var wireMidFrame = false
    var closePassed = false
}
