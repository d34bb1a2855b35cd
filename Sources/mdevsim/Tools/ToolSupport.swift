import ArgumentParser
import Foundation
import Faults
import Migration
import RealDevice
import SysfsSnapshot
import Toolkit

/// Runs a tool body, turning its failure into a message on stderr and the exit code.
func runTool(_ name: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ToolError {
        FileHandle.standardError.write(Data("mdevsim \(name): \(e.message)\n".utf8))
        throw ExitCode(e.exitCode)
    } catch let e as ExitCode {
        throw e
    } catch {
        FileHandle.standardError.write(Data("mdevsim \(name): \(error)\n".utf8))
        throw ExitCode(1)
    }
}

/// Progress lines on stderr, only when stderr is a terminal (or --verbose).
func progress(_ verbose: Bool) -> ((String) -> Void)? {
    guard verbose || isatty(2) != 0 else { return nil }
    return { FileHandle.standardError.write(Data("  \($0)\n".utf8)) }
}

func printJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try! encoder.encode(value), as: UTF8.self))
}
