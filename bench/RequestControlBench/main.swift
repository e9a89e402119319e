// Benchmark of the request path: begin+complete pairs on 1 and 2 threads.
// Run: swift run -c release RequestControlBench
// Fixed iteration counts, several repetitions, medians printed.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import RequestControl
import Synchronization

func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func f1(_ value: Double) -> String { fixed(value, 10) }
func f2(_ value: Double) -> String { fixed(value, 100) }
func fixed(_ value: Double, _ scale: Double) -> String {
    let scaled = Int((value * scale).rounded())
    let whole = scaled / Int(scale), frac = scaled % Int(scale)
    let digits = scale == 10 ? 1 : 2
    var f = String(frac)
    while f.count < digits { f = "0" + f }
    return "\(whole).\(f)"
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

@inline(never)
func pairs(_ point: ControlPoint, _ count: Int) -> Int {
    var rejected = 0
    for i in 0..<count {
        switch point.beginRequest() {
        case .run(let token):
            token.complete(status: i & 7 == 0 ? 404 : 200)
        case .rejected:
            rejected += 1
        }
    }
    return rejected
}

/// Runs `body(threadIndex)` on `threads` OS threads started together; returns wall nanoseconds.
func onThreads(_ threads: Int, _ body: @escaping @Sendable (Int) -> Void) -> UInt64 {
    final class Start: Sendable {
        let ready = Atomic<Int>(0)
        let go = Atomic<Bool>(false)
    }
    let start = Start()
    var handles: [pthread_t] = []
    final class Box: @unchecked Sendable {  // handed to exactly one thread, never shared
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }
    for index in 0..<threads {
        let box = Box {
            start.ready.wrappingAdd(1, ordering: .relaxed)
            while !start.go.load(ordering: .acquiring) {}
            body(index)
        }
        var handle = pthread_t()
        let unmanaged = Unmanaged.passRetained(box)
        pthread_create(&handle, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.run()
            return nil
        }, unmanaged.toOpaque())
        handles.append(handle)
    }
    while start.ready.load(ordering: .acquiring) < threads {}
    let t0 = nowNanoseconds()
    start.go.store(true, ordering: .releasing)
    for handle in handles { pthread_join(handle, nil) }
    return nowNanoseconds() - t0
}

let iterations = 5_000_000
let repetitions = 7

func configuration(deployments: Int) -> RequestControlConfiguration {
    RequestControlConfiguration(
        globalLimit: 1_000_000,
        deployments: (0..<deployments).map {
            .init(name: "d\($0)", limit: 1_000_000, entryPoints: [.init(name: "http", limit: 1_000_000)], backends: [])
        })
}

func bench(_ label: String, threads: Int, separateDeployments: Bool) {
    var nsPerPair: [Double] = []
    var pairsPerSecond: [Double] = []
    for _ in 0..<repetitions {
        let controller = RequestController(configuration: configuration(deployments: separateDeployments ? threads : 1))
        let points = (0..<threads).map {
            controller.controlPoint(deployment: separateDeployments ? "d\($0)" : "d0", entryPoint: "http")!
        }
        let elapsed = onThreads(threads) { index in
            precondition(pairs(points[index], iterations) == 0)
        }
        let snapshot = controller.snapshot()
        precondition(snapshot.total == threads * iterations && snapshot.active == 0)
        let total = Double(threads * iterations)
        // ns per pair as one thread sees it (wall time / pairs per thread), and throughput
        nsPerPair.append(Double(elapsed) / Double(iterations))
        pairsPerSecond.append(total / (Double(elapsed) / 1e9))
    }
    print("\(label): \(f1(median(nsPerPair))) ns/pair per thread, \(f2(median(pairsPerSecond) / 1e6)) M pairs/s total (median of \(repetitions) x \(threads) x \(iterations))")
}

@inline(never)
func backendPairs(_ backend: BackendCounter, _ count: Int) {
    for _ in 0..<count {
        precondition(backend.acquire())
        backend.release(failed: false)
    }
}

/// Two threads on two backends of one deployment: nothing is shared but cache lines, so this
/// is where false sharing between counters would show.
func benchBackends(threads: Int) {
    var nsPerPair: [Double] = []
    for _ in 0..<repetitions {
        let controller = RequestController(configuration: RequestControlConfiguration(
            globalLimit: nil,
            deployments: [.init(name: "d", limit: nil, entryPoints: [], backends: (0..<threads).map { "10.0.0.\($0):80" })]))
        let backends = (0..<threads).map { controller.backend(deployment: "d", address: "10.0.0.\($0):80")! }
        let elapsed = onThreads(threads) { index in backendPairs(backends[index], iterations) }
        nsPerPair.append(Double(elapsed) / Double(iterations))
    }
    print("backend acquire+release, \(threads) thread(s), one backend each: \(f1(median(nsPerPair))) ns/pair per thread")
}

func benchClock() {
    var ns: [Double] = []
    var nsContinuous: [Double] = []
    let count = 10_000_000
    for _ in 0..<repetitions {
        var sink: UInt64 = 0
        var t0 = nowNanoseconds()
        for _ in 0..<count { sink &+= nowNanoseconds() }
        ns.append(Double(nowNanoseconds() - t0) / Double(count))
        let clock = ContinuousClock()
        var zero = clock.now
        t0 = nowNanoseconds()
        for _ in 0..<count {
            let now = clock.now
            sink &+= UInt64(truncatingIfNeeded: (now - zero).components.attoseconds)
            zero = now
        }
        nsContinuous.append(Double(nowNanoseconds() - t0) / Double(count))
        if sink == 42 { print("") }
    }
    print("clock: clock_gettime(CLOCK_MONOTONIC) \(f1(median(ns))) ns/read, ContinuousClock.now+Duration \(f1(median(nsContinuous))) ns/read")
}

benchClock()
bench("1 thread", threads: 1, separateDeployments: false)
bench("2 threads, same entry point", threads: 2, separateDeployments: false)
bench("2 threads, separate deployments (global shared)", threads: 2, separateDeployments: true)
benchBackends(threads: 1)
benchBackends(threads: 2)
