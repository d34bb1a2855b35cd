import Foundation
import Testing

/// In CI every prerequisite of the mount and interop suites must be present:
/// a machine without one fails here, by name, instead of passing by skipping.
@Suite("prerequisites of the mount and interop suites")
struct PrerequisiteTests {
    static let all: [(what: String, met: Bool)] = [
        ("/dev/fuse readable and writable, and /usr/bin/fusermount3 (apt-get install fuse3)", canMount),
        ("root (mounts in a private namespace, mdevctl, exec)", isRoot),
        ("/usr/bin/mdevctl (apt-get install mdevctl)", haveMdevctl),
        ("the mdevsim binary at \(mdevsimBinary) (swift build)", haveMdevsimBinary),
        ("/usr/bin/lspci and /usr/bin/setpci (apt-get install pciutils)",
         FileManager.default.isExecutableFile(atPath: "/usr/bin/lspci") && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpci")),
        ("/usr/bin/udevadm (apt-get install udev)", FileManager.default.isExecutableFile(atPath: "/usr/bin/udevadm")),
        ("\(qemuBinary) (apt-get install qemu-system-x86)", haveQEMU),
        ("/usr/sbin/ip (apt-get install iproute2)", FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")),
        ("libvirtd, virsh and virt-xml-validate (apt-get install libvirt-daemon libvirt-clients)", haveLibvirt),
    ]

    @Test("CI has every prerequisite", .enabled(if: isCI, "outside CI (CI=true) a suite whose prerequisite is missing is skipped instead"))
    func present() {
        let missing = Self.all.filter { !$0.met }.map(\.what)
        #expect(missing.isEmpty, "CI=true but missing: \(missing.joined(separator: "; ")); the suites that need them fail")
    }
}
