import Foundation

/// The built `mdevsim` executable, beside the test bundle in the build folder.
let mdevsimBinary: String = {
    if let path = ProcessInfo.processInfo.environment["MDEVSIM_BIN"] { return path }
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    return dir.appendingPathComponent("mdevsim").path
}()

let haveMdevsimBinary = FileManager.default.isExecutableFile(atPath: mdevsimBinary)
let haveMdevctl = !hiddenPrerequisites.contains("mdevctl") && FileManager.default.isExecutableFile(atPath: "/usr/bin/mdevctl")
let isRoot = !hiddenPrerequisites.contains("root") && getuid() == 0

struct Ran: CustomStringConvertible {
    let status: Int32
    let out: String
    let err: String
    var description: String { "status \(status)\nstdout:\n\(out)\nstderr:\n\(err)" }
}

/// Runs a program to completion with stdin from `input`, capturing its output.
func run(_ program: String, _ arguments: [String], input: String? = nil, timeout: TimeInterval = 60) throws -> Ran {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    let outURL = URL(fileURLWithPath: makeTempDirectory("out") + "/out")
    let errURL = outURL.deletingLastPathComponent().appendingPathComponent("err")
    defer { try? FileManager.default.removeItem(at: outURL.deletingLastPathComponent()) }
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    let stdin = Pipe()
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try stdin.fileHandleForWriting.close()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning {
        if Date() > deadline { process.terminate(); break }
        usleep(2_000)
    }
    process.waitUntilExit()
    return Ran(status: process.terminationStatus,
               out: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
               err: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
}
