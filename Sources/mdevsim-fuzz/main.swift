import CFuzzDriver
import Foundation
import FuzzTargets

// mdevsim-fuzz TARGET [libFuzzer options] [CORPUS_DIR...]
// mdevsim-fuzz TARGET FILE...          (a build without libFuzzer: run each input once)
// mdevsim-fuzz seeds DIR               (write every target's seed corpus under DIR/<target>/)
//
// scripts/fuzz.sh builds this with -sanitize=fuzzer and runs every target.

let usage = """
usage: mdevsim-fuzz TARGET [libFuzzer options] [CORPUS_DIR...]
       mdevsim-fuzz seeds DIR
targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))
Build with scripts/fuzz.sh (libFuzzer, -sanitize=fuzzer); an ordinary build runs each given input once.
"""

nonisolated(unsafe) var selected = FuzzTarget.stream

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data((usage + "\n").utf8))
    exit(2)
}

if arguments[1] == "seeds" {
    guard arguments.count == 3 else { FileHandle.standardError.write(Data((usage + "\n").utf8)); exit(2) }
    for target in FuzzTarget.allCases {
        let dir = arguments[2] + "/" + target.rawValue
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for seed in FuzzSeeds.seeds(for: target) {
            FileManager.default.createFile(atPath: dir + "/" + seed.name, contents: Data(seed.bytes))
        }
        print("\(dir): \(FuzzSeeds.seeds(for: target).count) seeds")
    }
    exit(0)
}

guard let target = FuzzTarget(rawValue: arguments[1]) else {
    FileHandle.standardError.write(Data("mdevsim-fuzz: unknown target '\(arguments[1])'\n\(usage)\n".utf8))
    exit(2)
}
selected = target

if mdevsim_fuzz_have_libfuzzer() != 0 {
    // libFuzzer sees argv without the target name.
    var argv: [UnsafeMutablePointer<CChar>?] = ([arguments[0]] + arguments.dropFirst(2)).map { strdup($0) } + [nil]
    var argc = Int32(argv.count - 1)
    let rc = argv.withUnsafeMutableBufferPointer { buffer -> Int32 in
        var base: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
        return mdevsim_fuzz_run_driver(&argc, &base) { data, size in
            selected.run(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        }
    }
    exit(rc)
}

// Without libFuzzer: run every file given (or every file in a directory given) once.
var ran = 0
for path in arguments.dropFirst(2) {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        FileHandle.standardError.write(Data("mdevsim-fuzz: \(path): no such file or directory\n".utf8))
        exit(2)
    }
    let files = isDir.boolValue ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 } : [path]
    for file in files {
        guard let data = FileManager.default.contents(atPath: file) else { continue }
        target.run(Array(data))
        ran += 1
    }
}
print("\(target.rawValue): \(ran) inputs ran without a broken invariant (built without libFuzzer: no fuzzing; see scripts/fuzz.sh)")
