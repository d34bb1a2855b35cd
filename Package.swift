// swift-tools-version:6.0
// mdevsim: a simulated mdev vendor driver (a fake GVT-g GPU) served over FUSE.
//
// Layers, lowest first; nothing lower imports anything higher:
//   CFuse      libfuse3 through pkg-config (system library)
//   VirtualFS  a generic inode tree of directories, attributes and links; no FUSE, no GPUs
//   FuseBridge the libfuse low-level protocol bridge onto a VirtualFS tree; knows nothing of GPUs
//   GPUModel   simulated GVT-g hardware per vGPU: config space, MMIO, GGTT, memory, workload; no files
//   CVFIOIoctl, RealDevice  the kernel's v2 migration ioctls on a real VFIO device
//   CCRC32C    the SSE4.2 crc32 instruction, for StateStream's checksums
//   StateStream the device-state stream format: header, records, checksums, compatibility; no devices
//   Migration  the v2 state machine and save/resume of a GPUModel device over StateStream; no files
//   SysfsSnapshot  record a real sysfs subtree and serve it again
//   SafeYAML   YAML/JSON decoding that refuses what would crash or stall Yams (found by fuzzing)
//   Faults     fault plans applied to file operations through VirtualFS's hook; .mdevsim/ control files
//   Toolkit    record, inspect, verify, diff, replay, migrate, compat: over a device's files only
//   MdevCore   the mdev bus and the GVT-g-like parent driver: types, pool, create/remove; no files
//   MdevSysfs  the kernel's sysfs layout of an MdevCore host, as VirtualFS nodes
//   CLinux, VFIOEmulation  the kernel's VFIO uAPI for a process tree under a seccomp user-notification filter; no GPUs
//   UEvents    device events in libudev's netlink format, sent into a chosen network namespace
//   VFIOView   each vGPU's VFIO device (regions, info, reset, digest) under vfio/, as VirtualFS nodes
//   Simulator  one simulated host: the bus with both views on one tree
//   FuzzTargets, CFuzzDriver, mdevsim-fuzz  fuzz targets with their invariants; libFuzzer driver (scripts/fuzz.sh)
//   mdevsim    the thin CLI
import PackageDescription

let package = Package(
    name: "mdevsim",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mdevsim", targets: ["mdevsim"]),
        .executable(name: "mdevsim-bench", targets: ["mdevsim-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CFuse",
            path: "CFuse",
            pkgConfig: "fuse3",
            providers: [.apt(["libfuse3-dev"])]
        ),
        .systemLibrary(name: "CVFIO", path: "CVFIO"),
        .target(name: "VirtualFS"),
        .target(
            name: "FuseBridge",
            dependencies: [
                "CFuse", "VirtualFS",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "MdevCore",
            dependencies: [
                "SafeYAML",
                "StateStream",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(name: "GPUModel"),
        .target(name: "CCRC32C"),
        .target(name: "CVFIOIoctl"),
        .target(name: "CLinux"),
        .target(name: "VFIOEmulation", dependencies: ["CLinux", "CVFIO", "Migration"]),
        .target(name: "UEvents", dependencies: ["CLinux", "VirtualFS"]),
        .target(name: "RealDevice", dependencies: ["CVFIOIoctl", "Migration"]),
        .target(name: "StateStream", dependencies: ["CCRC32C"]),
        .target(name: "Migration", dependencies: ["CVFIO", "GPUModel", "StateStream"]),
        .target(
            name: "MdevSysfs",
            dependencies: ["GPUModel", "MdevCore", "VirtualFS"]
        ),
        .target(
            name: "VFIOView",
            dependencies: ["CVFIO", "GPUModel", "Migration", "MdevCore", "MdevSysfs", "StateStream", "VFIOEmulation", "VirtualFS"]
        ),
        .target(
            name: "Simulator",
            dependencies: ["Faults", "MdevCore", "MdevSysfs", "Migration", "StateStream", "UEvents", "VFIOEmulation", "VFIOView", "VirtualFS"]
        ),
        .target(name: "SysfsSnapshot", dependencies: ["VirtualFS"]),
        .target(name: "SafeYAML", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "Faults", dependencies: ["Migration", "SafeYAML", "VirtualFS", .product(name: "Yams", package: "Yams")]),
        .target(name: "Toolkit", dependencies: ["GPUModel", "Migration", "StateStream"]),
        .executableTarget(
            name: "mdevsim",
            dependencies: [
                "CLinux", "Faults", "FuseBridge", "MdevCore", "Migration", "RealDevice", "Simulator", "SysfsSnapshot", "Toolkit", "VFIOEmulation", "VirtualFS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "FuzzTargets",
            dependencies: ["Faults", "GPUModel", "MdevCore", "MdevSysfs", "Migration", "Simulator", "StateStream", "Toolkit", "VirtualFS"]
        ),
        .target(name: "CFuzzDriver"),
        .executableTarget(name: "mdevsim-fuzz", dependencies: ["CFuzzDriver", "FuzzTargets"]),
        .executableTarget(
            name: "mdevsim-bench",
            dependencies: ["GPUModel", "Migration", "StateStream", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "FuzzTests", dependencies: ["FuzzTargets"]),
        .testTarget(name: "SimulatorTests", dependencies: ["MdevCore", "Migration", "Simulator", "VirtualFS"]),
        .testTarget(name: "VirtualFSTests", dependencies: ["VirtualFS"]),
        .testTarget(name: "GPUModelTests", dependencies: ["GPUModel"]),
        .testTarget(name: "MigrationTests", dependencies: ["GPUModel", "Migration", "StateStream"]),
        .testTarget(name: "StateStreamTests", dependencies: ["StateStream"]),
        // A fake VFIO driver at the syscall boundary (it defines ioctl(2)) for the C ioctl layer's tests.
        .target(name: "CVFIOFake", path: "Tests/CVFIOFake"),
        .testTarget(name: "RealDeviceTests", dependencies: ["CVFIO", "CVFIOFake", "CVFIOIoctl", "Migration", "RealDevice"]),
        .testTarget(name: "MdevCoreTests", dependencies: ["MdevCore", "MdevSysfs", "VirtualFS"]),
        .testTarget(
            name: "MountTests",
            dependencies: ["Faults", "FuseBridge", "GPUModel", "MdevCore", "MdevSysfs", "Migration", "RealDevice", "Simulator", "StateStream", "SysfsSnapshot", "VFIOEmulation", "VirtualFS"]
        ),
    ]
)
