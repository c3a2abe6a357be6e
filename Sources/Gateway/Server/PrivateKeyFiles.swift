#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The permission check on every private-key file the configuration names (issue #11 §4), run when an
/// environment is compiled (start and each reload), before OpenSSL reads the keys.
///
/// - **Others can read, or anyone but the owner can write** → the gateway refuses to start (or to
///   reload): a key any local user can read, or replace, is no longer private.
/// - **Only the group can read** → allowed with a loud warning at every start and reload. Kubernetes
///   makes exactly this mode out of a secret mounted for a non-root user (`fsGroup` adds group read to
///   `defaultMode: 0400`), and Debian's `ssl-cert` group uses it on purpose; refusing would break both.
///   Operators who do not mean it see the warning and `chmod 600` the file.
///
/// The mode checked is the one of the file actually read (`stat` follows symbolic links, as the key
/// loader does; certbot's `live/` names are links).
enum PrivateKeyFiles {
    enum Verdict: Equatable {
        case ok
        case groupReadable
        /// Refused: readable by others or writable by group or others.
        case exposed
    }

    static func verdict(mode: mode_t) -> Verdict {
        if mode & (S_IROTH | S_IWOTH | S_IWGRP) != 0 { return .exposed }
        if mode & S_IRGRP != 0 { return .groupReadable }
        return .ok
    }

    /// The key files of `configuration` in the order the configuration lists them.
    static func paths(in configuration: GatewayConfiguration) -> [String] {
        var paths: [String] = []
        for listener in configuration.listeners {
            guard let tls = listener.tls else { continue }
            paths += ([tls.defaultIdentity] + tls.virtualHosts.map(\.identity)).compactMap(\.privateKey.filePath)
        }
        for route in configuration.routes {
            if let path = route.upstreamTLS?.configuration.identity?.privateKey.filePath { paths.append(path) }
        }
        var seen = Set<String>()
        return paths.filter { seen.insert($0).inserted }
    }

    /// Throws for an exposed key; returns one warning line per group-readable key. A file that cannot
    /// be `stat`ed is left to the key loader, whose error names the real problem.
    static func check(_ configuration: GatewayConfiguration) throws(GatewayError) -> [String] {
        var warnings: [String] = []
        for path in Self.paths(in: configuration) {
            var info = stat()
            guard stat(path, &info) == 0 else { continue }
            let mode = String(info.st_mode & 0o777, radix: 8)
            switch Self.verdict(mode: info.st_mode) {
            case .ok: break
            case .groupReadable:
                warnings.append(
                    "private key \(path) is readable by its group (mode \(mode)): every member of the group can read it; chmod 600 unless that is intended"
                )
            case .exposed:
                throw GatewayError(
                    "private key \(path) has mode \(mode): other users can read it or someone but its owner can write it; chmod 600 (or 640 for a group that must read it) and start again"
                )
            }
        }
        return warnings
    }
}
