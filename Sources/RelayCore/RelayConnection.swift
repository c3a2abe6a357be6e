import Frames
import NIOCore

/// Which TCP connection of a relayed pair.
enum Side {
    case client
    case upstream

    var other: Side { self == .client ? .upstream : .client }
}

/// One TCP connection of a pair, as the loop sees it.
struct Leg {
    var fd: Int32 = -1
    /// Bytes owed to this leg that the socket did not take yet (a pool buffer, held only while non-empty).
    var pending: ByteBuffer?
    /// Close the socket once `pending` is written (the gateway's Close or a refusal is the last thing sent).
    var closeAfterFlush = false
    /// Edge-triggered reads: the socket may hold unread bytes (a read stopped for back-pressure).
    var readable = false
    /// No more reads: the peer broke the framing, or its Close passed.
    var stopped = false
}

/// One direction of the relay, named by its source, with the frame parser that validates it.
struct Flow {
    var parser: FrameParser
    /// Whether the last byte forwarded was inside a frame: a Close toward the destination may only be
    /// written between frames (RFC 6455 §5.4), so a Close owed mid-frame becomes a TCP close.
    var wireMidFrame = false
    /// The source's Close passed to the destination.
    var closePassed = false
}

/// The state of one relayed connection pair: a plain struct in the loop's ``Slab``, no object per
/// connection. An idle, relaying pair holds no buffer: `clientEarly`, `upstreamHead` and the legs'
/// `pending` are `nil`.
struct RelayConnection {
    enum Phase {
        /// A TLS listener's connection: the TLS handshake is under way (core22).
        case tlsHandshake
        /// Reading the client's upgrade request.
        case head
        /// The upstream's TCP connect is under way.
        case connecting
        /// The upgrade request went to the upstream; reading its 101.
        case awaitingSwitch
        /// Both 101s done: frames flow.
        case relaying
        /// A Close passed, a peer left or broke the framing: draining to the end.
        case closing
    }

    var phase: Phase
    /// The client leg's TLSShim `TLSEngine` (retained; `RelayTLS.with`/`free`), or nil on a plain listener.
    var tls: OpaquePointer?
    var client: Leg
    var upstream = Leg()
    /// The loop is draining and this connection still owes a leg its Close 1001 (sent at the direction's
    /// next message boundary, ``RelayDrain``). After a `Leg`, in its tail padding: no byte more per connection.
    var drainOwed = false
    var fromClient: Flow
    var fromUpstream: Flow
    /// The client's head as it arrives, then the frames that came after it before the 101.
    var clientEarly: ByteBuffer?
    /// The upstream's 101 as it arrives.
    var upstreamHead: ByteBuffer?
    var target = ""
    var clientAccept = ""
    var expectedAccept = ""
    /// The tick of the pending deadline (handshake or close), 0 for none.
    var deadline: UInt64 = 0

    init(client fd: Int32, limits: FrameParser.Configuration, tls: OpaquePointer? = nil) {
        self.phase = tls == nil ? .head : .tlsHandshake
        self.tls = tls
        self.client = Leg(fd: fd)
        self.fromClient = Flow(parser: FrameParser(role: .server, configuration: limits))
        self.fromUpstream = Flow(parser: FrameParser(role: .client, configuration: limits))
    }

    subscript(leg side: Side) -> Leg {
        get { side == .client ? self.client : self.upstream }
        _modify {
            if side == .client { yield &self.client } else { yield &self.upstream }
        }
    }

    /// The flow whose source is `side`.
    subscript(from side: Side) -> Flow {
        get { side == .client ? self.fromClient : self.fromUpstream }
        _modify {
            if side == .client { yield &self.fromClient } else { yield &self.fromUpstream }
        }
    }
}
