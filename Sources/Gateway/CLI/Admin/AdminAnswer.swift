/// The admin API's JSON answers as the CLI reads them.
///
/// Decoded with `.convertFromSnakeCase`; unknown fields are ignored, so a newer gateway that
/// adds fields still works with this CLI. Fields the CLI only displays are optional, so that a
/// `null` (or an older gateway that lacks one) shows as `-` instead of failing the command.
enum AdminAnswer {
    /// `{"error": "message"}`, the body of every non-2xx answer.
    struct Failure: Decodable, Sendable {
        var error: String
    }

    /// `GET /processes`.
    struct ProcessList: Decodable, Sendable, Equatable {
        var processes: [Process]
    }

    /// One supervised instance, in `/processes` and in the answers of stop and start.
    struct Process: Decodable, Sendable, Equatable {
        var deployment: String?
        var instance: String
        var index: Int?
        var pid: Int?
        var port: Int?
        var state: String?
        var reason: String?
        var ready: Bool?
        var active: Int?
        var total: Int?
        var restarts: Int?
        var crashes: Int?
        var plannedRestarts: Int?
        var uptimeS: Double?
        var rssBytes: Int64?
        var cpuPercent: Double?
        var lastExit: String?
        /// The supervisor's own state when `state` shows a suspend (SUSPENDED, DRAINING).
        var processState: String?
        var trafficState: String?
        var suspendedBy: String?
        /// The argv as executed, `$PORT` expanded.
        var command: [String]?
    }

    /// `GET /deployments/D/instances/N/logs`.
    struct Logs: Decodable, Sendable, Equatable {
        var instance: String
        var lines: [LogLine]
        var lastSequence: Int
        var gap: Bool?
    }

    struct LogLine: Decodable, Sendable, Equatable {
        var sequence: Int
        var time: Double?
        var stream: String?
        var pid: Int32?
        var text: String
    }

    /// `POST /deployments/D/restart`, as 200 (`ok` true) or 500 (`ok` false).
    struct Restart: Decodable, Sendable, Equatable {
        var deployment: String?
        var ok: Bool
        var message: String?
        var steps: [RestartStep]?
    }

    /// One instance of a rolling restart.
    struct RestartStep: Decodable, Sendable, Equatable {
        var instance: String
        var oldPid: Int?
        var newPid: Int?
        var oldPort: Int?
        var newPort: Int?
        var drained: Bool?
        var drainMs: Double?
        var outOfRotationMs: Double?
        var error: String?
    }

    /// `POST /deployments/D[/instances/N]/stop|start|restart`.
    struct Instances: Decodable, Sendable, Equatable {
        var message: String?
        var instances: [Process]?
    }

    /// `POST /reload`.
    struct Reload: Decodable, Sendable, Equatable {
        var ok: Bool
        var changes: [String]?
    }

    /// `GET /health`.
    struct Health: Decodable, Sendable, Equatable {
        var state: String
        var pid: Int32?
        var keeperPid: Int32?
        var workerGeneration: Int?
        var version: String?
    }

    /// `POST /upgrade`.
    struct Upgrade: Decodable, Sendable, Equatable {
        var upgraded: Bool
        var message: String
        var oldWorkerPid: Int32
    }

    /// `POST /shutdown`.
    struct Shutdown: Decodable, Sendable, Equatable {
        var shuttingDown: Bool
        var timeoutS: Double?
    }

    /// `POST /suspend`.
    struct Suspend: Decodable, Sendable, Equatable {
        var scope: String
        var drained: Bool
        var active: Int
        var state: String
        var cancelled: Bool?
    }

    /// `POST /resume`.
    struct Resume: Decodable, Sendable, Equatable {
        var scope: String
        var state: String
        var previousState: String?
    }
}
