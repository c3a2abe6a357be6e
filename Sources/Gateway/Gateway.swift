/// The gateway: listeners, upgrade, routing, policies and the relay (issue 4 builds it out).
public enum Gateway {
    /// What `wsgate` with no arguments will do once the gateway lands.
    public static let embeddedDefaultDescription = """
        wsgate will listen on ws://127.0.0.1:8080 and wss://127.0.0.1:8443 (self-signed certificate made \
        at start) in front of a built-in demo upstream with an echo route at /echo and a chat route at /chat.
        The gateway itself is not built yet; this build contains the Frames core (RFC 6455) only.
        """
}
